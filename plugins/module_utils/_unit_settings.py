# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""What systemd (252, Debian 12) makes of a service's LimitMEMLOCK=, CapabilityBoundingSet= and
AmbientCapabilities= lines across its unit file and drop-ins.

LimitMEMLOCK=: the last value systemd can parse wins; a value it cannot parse (the empty one
included) is logged and ignored, so the one before it stays.

CapabilityBoundingSet= and AmbientCapabilities= (config_parse_capability_set() in
src/core/load-fragment.c) start from every capability and from none. A list that names
nothing (empty, '~', only unknown names) REPLACES the set, as does any list while the set still
is its starting value; otherwise a list is added ('~LIST': removed). So
``CapabilityBoundingSet=CAP_IPC_LOCK`` in a drop-in of a unit that restricts nothing leaves
the service with CAP_IPC_LOCK alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capability_names import (
    CAP_IPC_LOCK,
    CAPABILITY_NAMES,
    CAPABILITY_NUMBERS,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, SizeError, systemd_limit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_files import UnitSource, service_values

LIMIT_KEY = "LimitMEMLOCK"
BOUNDING_KEY = "CapabilityBoundingSet"
AMBIENT_KEY = "AmbientCapabilities"

CAP_ALL = 2**64 - 1  # systemd 252's CAP_ALL: the bounding set of a unit that restricts nothing
EVERY_NAMED = (1 << len(CAPABILITY_NAMES)) - 1
IPC_LOCK_BIT = 1 << CAP_IPC_LOCK

_NUMBER_RE = re.compile(r"^[+-]?[0-9]+$")  # safe_atoi() takes a sign


@dataclass(frozen=True)
class LimitSetting:
    """One ``LimitMEMLOCK=`` line; ``limit`` is None when systemd ignores the value, ``problem`` says why."""

    path: str
    value: str
    limit: Optional[MemlockLimit]
    problem: Optional[str] = None


@dataclass(frozen=True)
class EffectiveLimit:
    """The LimitMEMLOCK= systemd applies, and which file decides it.

    ``limit`` is None when no file sets it: then systemd's DefaultLimitMEMLOCK= applies.
    """

    limit: Optional[MemlockLimit]
    source: Optional[str]
    settings: Tuple[LimitSetting, ...]


@dataclass(frozen=True)
class CapabilitySet:
    """A capability set as systemd merges it: a 64-bit mask, and the files whose lines made it."""

    mask: int
    sources: Tuple[str, ...]

    def has(self, bit: int) -> bool:
        return bool(self.mask & bit)

    @property
    def restricted(self) -> bool:
        """Whether some capability the kernel knows is left out (only meaningful for the bounding set)."""
        return self.mask & EVERY_NAMED != EVERY_NAMED

    @property
    def names(self) -> List[str]:
        return capability_names(self.mask)


def read_limit_settings(path: str, text: str) -> List[LimitSetting]:
    """Every LimitMEMLOCK= in the [Service] section of one file, in order."""
    return [_limit_setting(path, value) for path, value in service_values([UnitSource(path, text)], LIMIT_KEY)]


def _limit_setting(path: str, value: str) -> LimitSetting:
    try:
        return LimitSetting(path, value, systemd_limit(value))
    except SizeError as exc:
        return LimitSetting(path, value, None, str(exc))


def effective_limit(sources: List[UnitSource]) -> EffectiveLimit:
    """The LimitMEMLOCK= in force from the files systemd reads, in their order."""
    settings = [_limit_setting(path, value) for path, value in service_values(sources, LIMIT_KEY)]
    winner = None
    for setting in settings:
        if setting.limit is not None:
            winner = setting
    if winner is None:
        return EffectiveLimit(None, None, tuple(settings))
    return EffectiveLimit(winner.limit, winner.path, tuple(settings))


def _words(text: str) -> List[str]:
    """extract_first_word() with white space as separator and EXTRACT_UNQUOTE: quotes go, '\\' escapes.

    An unbalanced quote ends the list there, as it ends systemd's loop.
    """
    words: List[str] = []
    index = 0
    while True:
        while index < len(text) and text[index] in " \t\n\r":
            index += 1
        if index >= len(text):
            return words
        word: List[str] = []
        quote = ""
        while index < len(text):
            char = text[index]
            if char == "\\" and index + 1 < len(text):
                word.append(text[index + 1])
                index += 2
                continue
            if char == "\\":
                return words
            if quote:
                if char == quote:
                    quote = ""
                else:
                    word.append(char)
            elif char in "'\"":
                quote = char
            elif char in " \t\n\r":
                break
            else:
                word.append(char)
            index += 1
        if quote:
            return words
        words.append("".join(word))


def capability_number(word: str) -> Optional[int]:
    """capability_from_name(): a number below 64, or a name such as CAP_IPC_LOCK in any case."""
    if _NUMBER_RE.match(word):
        number = int(word)
        return number if 0 <= number < 64 else None
    return CAPABILITY_NUMBERS.get(word.lower())


def capability_mask(text: str) -> int:
    """The capabilities a list names; unknown names count for nothing, as systemd ignores them."""
    mask = 0
    for word in _words(text):
        number = capability_number(word)
        if number is not None:
            mask |= 1 << number
    return mask


def merge_capability_line(current: int, value: str, initial: int) -> int:
    """The set after one ``CapabilityBoundingSet=``/``AmbientCapabilities=`` line."""
    invert = value.startswith("~")
    named = capability_mask(value[1:] if invert else value)
    if named == 0 or current == initial:
        return CAP_ALL & ~named if invert else named
    return current & ~named if invert else current | named


def capability_set(sources: List[UnitSource], key: str) -> CapabilitySet:
    """The bounding (``BOUNDING_KEY``) or ambient (``AMBIENT_KEY``) set from the files systemd reads."""
    initial = CAP_ALL if key == BOUNDING_KEY else 0
    mask = initial
    paths: List[str] = []
    for path, value in service_values(sources, key):
        mask = merge_capability_line(mask, value, initial)
        if path not in paths:
            paths.append(path)
    return CapabilitySet(mask, tuple(paths))


def capability_names(mask: int) -> List[str]:
    """The names of the capabilities in ``mask`` the kernel knows, as ``systemctl show`` lists them."""
    return [name for number, name in enumerate(CAPABILITY_NAMES) if mask >> number & 1]
