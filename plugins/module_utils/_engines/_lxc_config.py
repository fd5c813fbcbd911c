# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""A liblxc container's own configuration file, LXCPATH/NAME/config, and the lxcpaths of a host.

liblxc reads ``key = value`` lines (white space around both is ignored, ``#`` starts a comment
line) and, for ``lxc.prlimit.memlock``, a value that is ``unlimited`` or a plain number of
bytes, optionally ``SOFT:HARD``: no size suffix (``4M`` makes lxc-start refuse the whole
configuration). The last of two lines would win in liblxc, but two lines are a mistake this
collection refuses to guess about: it names both and writes nothing.

The same line editing serves Proxmox VE's ``/etc/pve/lxc/VMID.conf`` (_pve_config), whose raw
``lxc.*`` keys are written ``key: value``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import EngineError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, format_lxd, parse_limit

DEFAULT_LXCPATH = "/var/lib/lxc"
LXC_CONF = "/etc/lxc/lxc.conf"
PRLIMIT_MEMLOCK = "lxc.prlimit.memlock"
CONFIG_NAME = "config"
LIBLXC_FORM = "'unlimited' or a number of bytes (no suffix such as K or M), or SOFT:HARD made of two of these"
# liblxc reads each side with strtoull(): an optional sign, decimal digits, nothing after them.
_LIBLXC_SIDE = re.compile(r"unlimited|[+-]?[0-9]+")
_ULLONG_MAX = 2**64 - 1  # RLIM_INFINITY


def _liblxc_side(text: str) -> Optional[int]:
    if text == "unlimited":
        return None
    magnitude = int(text.lstrip("+-"))
    if magnitude > _ULLONG_MAX:
        raise ValueError("is too large")
    value = (-magnitude) % 2**64 if text.startswith("-") else magnitude  # strtoull wraps a negative number
    return None if value == _ULLONG_MAX else value


def liblxc_limit(value: str) -> MemlockLimit:
    """The limit liblxc reads from an ``lxc.prlimit.*`` value; ValueError for one it refuses.

    As liblxc 5.0.2 reads it (``lxc-info -c`` compared in molecule/lxc): 'unlimited' or strtoull()'s number
    (-1 and 18446744073709551615 are RLIM_INFINITY), one ':' at most, no suffix.
    """
    sides = value.split(":")
    if len(sides) > 2 or not all(_LIBLXC_SIDE.fullmatch(side) for side in sides):
        raise ValueError(f"{value!r} is not a value liblxc accepts; expected {LIBLXC_FORM}")
    try:
        soft, hard = (_liblxc_side(side) for side in (sides * 2)[:2])
    except ValueError:
        raise ValueError(f"{value!r} is too large for liblxc; expected {LIBLXC_FORM}") from None
    if hard is not None and (soft is None or soft > hard):
        # liblxc reads it, and prlimit(2) refuses it when the container starts.
        raise ValueError(f"{value!r}: the soft limit is above the hard one, which no container can start with")
    return MemlockLimit(soft, hard)


def render_liblxc(limit_text: str, option: str = "limit") -> str:
    """A systemd-style limit ('infinity', '8M', '1048576', 'SOFT:HARD') as liblxc stores it: bytes or 'unlimited'.

    Raises SizeError, naming ``option``, for a text systemd would refuse.
    """
    return format_lxd(parse_limit(limit_text, option))


# --- lines of a configuration file --------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One line that sets a key: its index in the file's lines (0-based) and its value."""

    index: int
    value: str


@dataclass(frozen=True)
class LineSyntax:
    """How a file writes a key: the pattern of a setting line (groups: key, value) and how to write one."""

    pattern: "re.Pattern[str]"
    separator: str  # ' = ' or ': '


LXC_SYNTAX = LineSyntax(re.compile(r"^\s*([^#=\s][^=]*?)\s*=\s*(.*?)\s*$"), " = ")


def find_settings(lines: Sequence[str], key: str, syntax: LineSyntax, end: Optional[int] = None) -> List[Setting]:
    """Every line among ``lines[:end]`` that sets ``key``."""
    found = []
    for index, line in enumerate(lines[:end]):
        match = syntax.pattern.match(line)
        if match and match.group(1) == key:
            found.append(Setting(index, match.group(2)))
    return found


def one_setting(path: str, lines: Sequence[str], key: str, syntax: LineSyntax,
                end: Optional[int] = None) -> Optional[Setting]:
    """The one line of ``path`` that sets ``key``; None when none does; EngineError naming both lines of two."""
    found = find_settings(lines, key, syntax, end)
    if len(found) > 1:
        where = ", ".join(f"line {setting.index + 1}" for setting in found)
        raise EngineError(f"{path}: {key} is set more than once ({where}); liblxc would take the last one "
                          "silently: remove all but one and run again (nothing was written)")
    return found[0] if found else None


def checked_limit(path: str, key: str, setting: Optional[Setting]) -> Optional[MemlockLimit]:
    """The limit a setting line gives, or EngineError naming the file and line of one liblxc refuses."""
    if setting is None:
        return None
    try:
        return liblxc_limit(setting.value)
    except ValueError as exc:
        raise EngineError(f"{path} line {setting.index + 1}: {key}: {exc}; lxc-start refuses this "
                          "configuration: correct the line and run again (nothing was written)") from None


def edited_lines(lines: Sequence[str], key: str, value: Optional[str], syntax: LineSyntax,
                 setting: Optional[Setting], insert_at: int) -> List[str]:
    """``lines`` with the key set to ``value`` (its line changed in place, else inserted at ``insert_at``) or, for
    None, its line removed. Every other line stays as it was."""
    result = list(lines)
    line = f"{key}{syntax.separator}{value}"
    if setting is not None and value is not None:
        result[setting.index] = line
    elif setting is not None:
        del result[setting.index]
    elif value is not None:
        result.insert(insert_at, line)
    return result


def split_lines(text: str) -> List[str]:
    return text.split("\n")


def end_of_content(lines: Sequence[str], end: int) -> int:
    """Where a new line goes among ``lines[:end]``: after the last line that is not blank."""
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    return end


# --- plain LXC: lxcpaths and LXCPATH/NAME/config ------------------------------------------------


def read_lxcpath_setting(lxc_conf: str = LXC_CONF) -> Optional[str]:
    """``lxc.lxcpath`` of the system's lxc.conf; None when unset or the file is missing."""
    try:
        with open(lxc_conf, encoding="utf-8", errors="replace") as stream:
            lines = split_lines(stream.read())
    except FileNotFoundError:
        return None
    setting = one_setting(lxc_conf, lines, "lxc.lxcpath", LXC_SYNTAX)
    return setting.value if setting and setting.value else None


def lxcpaths(lxc_conf: str = LXC_CONF, default: str = DEFAULT_LXCPATH) -> List[str]:
    """The lxcpaths a host uses: liblxc's default (or lxc.lxcpath of lxc.conf), and the default besides."""
    found = [default]
    configured = read_lxcpath_setting(lxc_conf)
    if configured and os.path.normpath(configured) != os.path.normpath(default):
        found.insert(0, configured)
    return found


def list_containers(paths: Sequence[str]) -> List[Tuple[str, str]]:
    """(lxcpath, name) of every container of ``paths``: each directory holding a ``config`` file."""
    found = []
    for lxcpath in paths:
        try:
            names = sorted(os.listdir(lxcpath))
        except OSError:
            continue
        found.extend((lxcpath, name) for name in names
                     if os.path.isfile(os.path.join(lxcpath, name, CONFIG_NAME)))
    return found


def config_path(lxcpath: str, name: str) -> str:
    return os.path.join(lxcpath, name, CONFIG_NAME)
