# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""File capabilities in libcap's text form, as setcap reads them and getcap prints them.

A text is a list of clauses separated by white space (cap_from_text(3)). Each clause is a
list of capabilities (names or numbers separated by commas; ``all`` or nothing means every
capability) followed by one or more operator groups: ``=FLAGS`` (clear, then raise),
``+FLAGS`` (raise), ``-FLAGS`` (lower), FLAGS being letters among ``e``, ``i``, ``p``.
Only the first operator of a clause may be ``=``, and a clause without a list has only that
one. Clauses apply one after the other, starting from the empty set, so
``=ep cap_sys_admin-ep`` is everything but cap_sys_admin.

format_capabilities() writes the text exactly as getcap of libcap >= 2.41 prints it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Optional

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capability_names import (
    ACCEPTED_NAMES,
    ALL_NAMED,
    CAPABILITY_BITS,
    CAPABILITY_NAMES,
    CAPABILITY_NUMBERS,
    capability_name,
)

FLAG_LETTERS = "eip"
WHITESPACE = " \t\n\v\f\r"  # C isspace() in the "C" locale, as libcap uses it

ACCEPTED_FORM = (
    "libcap's text form (cap_from_text(3)): clauses like 'cap_ipc_lock=ep', 'cap_ipc_lock+ep' or "
    "'cap_ipc_lock,cap_net_bind_service=ep', separated by spaces; a clause is a comma-separated list of "
    "capabilities ('all' or nothing means all of them) followed by '=FLAGS', then optionally '+FLAGS' or "
    "'-FLAGS' groups, where FLAGS are the lowercase letters e (effective), i (inheritable) and p (permitted)"
)
# libcap ranks a capability's flags as a number (e=1, p=2, i=4) to group equal ones.
_RANK_E, _RANK_P, _RANK_I = 1, 2, 4


class CapabilityError(ValueError):
    """A capability text, set or file that cannot be used. The message names the option and why."""


@dataclass(frozen=True)
class CapabilitySet:
    """Capability numbers carrying each flag: the three sets a file capability holds."""

    effective: frozenset[int] = frozenset()
    inheritable: frozenset[int] = frozenset()
    permitted: frozenset[int] = frozenset()

    @classmethod
    def from_flags(cls, flags_by_number: Mapping[int, str]) -> CapabilitySet:
        """Build from {number: 'ep', ...}."""
        return cls(
            effective=frozenset(n for n, flags in flags_by_number.items() if "e" in flags),
            inheritable=frozenset(n for n, flags in flags_by_number.items() if "i" in flags),
            permitted=frozenset(n for n, flags in flags_by_number.items() if "p" in flags),
        )

    def flags(self, number: int) -> str:
        """The flags of one capability in libcap's order, e.g. 'eip', 'ep', ''."""
        return (
            ("e" if number in self.effective else "")
            + ("i" if number in self.inheritable else "")
            + ("p" if number in self.permitted else "")
        )

    def as_flags(self) -> dict[int, str]:
        """{number: flags} for every capability with at least one flag."""
        return {number: self.flags(number) for number in sorted(self.numbers())}

    def numbers(self) -> frozenset[int]:
        return self.effective | self.inheritable | self.permitted

    def is_empty(self) -> bool:
        return not self.numbers()

    def union(self, other: CapabilitySet) -> CapabilitySet:
        return CapabilitySet(
            self.effective | other.effective,
            self.inheritable | other.inheritable,
            self.permitted | other.permitted,
        )

    def difference(self, other: CapabilitySet) -> CapabilitySet:
        return CapabilitySet(
            self.effective - other.effective,
            self.inheritable - other.inheritable,
            self.permitted - other.permitted,
        )


# --- parsing -------------------------------------------------------------------------------

def _is_word_char(char: str) -> bool:
    # C isalnum() in the "C" locale, plus '_': what may start or continue a capability name.
    return char == "_" or ("a" <= char <= "z") or ("A" <= char <= "Z") or ("0" <= char <= "9")


def _number_end(text: str, start: int) -> tuple[int, int]:
    """Read a number as strtoul(..., 0) does: 0x1f hex, 017 octal, 15 decimal -> (value, end)."""
    if text[start:start + 2].lower() == "0x" and start + 2 < len(text) and text[start + 2] in "0123456789abcdefABCDEF":
        end = start + 2
        while end < len(text) and text[end] in "0123456789abcdefABCDEF":
            end += 1
        return int(text[start + 2:end], 16), end
    digits = "01234567" if text[start] == "0" else "0123456789"
    end = start + 1
    while end < len(text) and text[end] in digits:
        end += 1
    return int(text[start:end], 8 if text[start] == "0" else 10), end


class _Parser:
    """One pass over a capability text; applies each clause to the set built so far."""

    def __init__(self, text: str, option: str, bare_names: bool) -> None:
        self.text = text
        self.option = option
        self.bare_names = bare_names
        self.pos = 0
        self.flags: dict[int, set] = {}

    def fail(self, why: str) -> CapabilityError:
        return CapabilityError(f"{self.option}: {self.text!r} {why}; expected {ACCEPTED_FORM}")

    def at_clause_end(self) -> bool:
        return self.pos >= len(self.text) or self.text[self.pos] in WHITESPACE

    def parse(self) -> CapabilitySet:
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in WHITESPACE:
                self.pos += 1
            if self.pos >= len(self.text):
                break
            self.clause()
        return CapabilitySet.from_flags({n: "".join(sorted(f)) for n, f in self.flags.items() if f})

    def clause(self) -> None:
        char = self.text[self.pos]
        if _is_word_char(char):
            numbers = self.caplist()
            if self.at_clause_end():
                if not self.bare_names:
                    raise self.fail(
                        f"has no operator and flags after the capability list ending at position {self.pos}; "
                        "add them, as in 'cap_ipc_lock=ep' (only state=absent accepts bare names, to remove "
                        "those capabilities entirely)"
                    )
                self.apply("+", numbers, FLAG_LETTERS)
                return
        elif char in "+-":
            raise self.fail(f"has {char!r} at position {self.pos + 1} without a capability list before it")
        else:
            numbers = ALL_NAMED
        self.operators(numbers, listed=_is_word_char(char))

    def caplist(self) -> frozenset[int]:
        numbers = set()
        while True:
            found = self.capability()
            # libcap lets 'all' replace what the list named before it (it assigns the mask).
            numbers = set(found) if found == ALL_NAMED else numbers | found
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
                if self.pos >= len(self.text) or not _is_word_char(self.text[self.pos]):
                    raise self.fail(f"has a ',' at position {self.pos} not followed by a capability")
                continue
            return frozenset(numbers)

    def capability(self) -> frozenset[int]:
        start = self.pos
        if "0" <= self.text[start] <= "9":
            number, end = _number_end(self.text, start)
            self.pos = end
            if number >= CAPABILITY_BITS:
                raise CapabilityError(
                    f"{self.option}: capability number {self.text[start:end]!r} in {self.text!r} is too large; "
                    f"accepted: {ACCEPTED_NAMES}"
                )
            if self.pos < len(self.text) and _is_word_char(self.text[self.pos]):
                raise self.unknown_name(start)
            return frozenset((number,))
        end = start
        while end < len(self.text) and _is_word_char(self.text[end]):
            end += 1
        word = self.text[start:end].lower()
        self.pos = end
        if word == "all":
            return ALL_NAMED
        if word not in CAPABILITY_NUMBERS:
            raise self.unknown_name(start)
        return frozenset((CAPABILITY_NUMBERS[word],))

    def unknown_name(self, start: int) -> CapabilityError:
        end = start
        while end < len(self.text) and _is_word_char(self.text[end]):
            end += 1
        return CapabilityError(
            f"{self.option}: unknown capability {self.text[start:end]!r} in {self.text!r}; accepted: {ACCEPTED_NAMES}"
        )

    def operators(self, numbers: frozenset[int], listed: bool) -> None:
        if self.pos >= len(self.text) or self.text[self.pos] not in "=+-":
            found = "the end" if self.pos >= len(self.text) else repr(self.text[self.pos])
            raise self.fail(f"has {found} at position {self.pos + 1} where '=', '+' or '-' was expected")
        operator = self.text[self.pos]
        self.pos += 1
        while True:
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] in FLAG_LETTERS:
                self.pos += 1
            letters = self.text[start:self.pos]
            if operator != "=" and not letters:
                raise self.fail(f"has {operator!r} without flags at position {start}; '+' and '-' need e, i or p")
            self.apply(operator, numbers, letters)
            if self.at_clause_end():
                return
            char = self.text[self.pos]
            if char in "+-" and not listed:
                raise self.fail(
                    f"has {char!r} at position {self.pos + 1} after a clause without a capability list; "
                    "write 'all' before the '=' to chain '+' or '-' groups"
                )
            if char in "+-":
                operator = char
                self.pos += 1
                continue
            if char == "=":
                raise self.fail(f"has '=' at position {self.pos + 1}; only the first operator of a clause may be '='")
            if char in "EIP":
                raise self.fail(f"has {char!r} at position {self.pos + 1}; flags are lowercase e, i, p")
            raise self.fail(f"has {char!r} at position {self.pos + 1} where a flag (e, i, p), '+', '-' or a space "
                            "was expected")

    def apply(self, operator: str, numbers: Iterable[int], letters: str) -> None:
        for number in numbers:
            current = self.flags.setdefault(number, set())
            if operator == "=":
                current.clear()
            if operator == "-":
                current.difference_update(letters)
            else:
                current.update(letters)


def parse_capabilities(text: str, option: str = "capability", bare_names: bool = False) -> CapabilitySet:
    """Parse libcap's text form into a CapabilitySet, as cap_from_text(3) reads it.

    With ``bare_names`` a clause may be a capability list alone; it then means every flag of
    those capabilities (for removing them). An empty text is the empty set, as in libcap.
    """
    if not isinstance(text, str):
        raise CapabilityError(f"{option}: {text!r} is not a text; expected {ACCEPTED_FORM}")
    return _Parser(text, option, bare_names).parse()


# --- formatting ----------------------------------------------------------------------------

def _rank(caps: CapabilitySet, number: int) -> int:
    return (
        (_RANK_E if number in caps.effective else 0)
        | (_RANK_P if number in caps.permitted else 0)
        | (_RANK_I if number in caps.inheritable else 0)
    )


def _rank_letters(rank: int) -> str:
    return ("e" if rank & _RANK_E else "") + ("i" if rank & _RANK_I else "") + ("p" if rank & _RANK_P else "")


def format_capabilities(caps: CapabilitySet) -> str:
    """The text getcap prints for these capabilities, character for character.

    libcap picks the flag combination most named capabilities share (ties go to the lower
    rank, e=1 p=2 i=4, so 'none' wins) and writes it as a leading '=FLAGS'; then, by
    falling rank, each other combination as 'names+raised-lowered' relative to it, the
    first one with '=' when nothing leads. Unnamed bits (41-63) come last, as numbers with
    '+FLAGS'. The empty set is '='.
    """
    ranks = {number: _rank(caps, number) for number in range(CAPABILITY_BITS)}
    named_counts = [0] * 8
    for number in ALL_NAMED:
        named_counts[ranks[number]] += 1
    prevailing = max(range(8), key=lambda rank: (named_counts[rank], -rank))

    clauses: list[str] = []
    if prevailing:
        clauses.append("=" + _rank_letters(prevailing))
    for rank in range(7, -1, -1):
        if rank == prevailing or not named_counts[rank]:
            continue
        names = ",".join(CAPABILITY_NAMES[n] for n in sorted(ALL_NAMED) if ranks[n] == rank)
        raised, lowered = rank & ~prevailing, prevailing & ~rank
        clause = names
        if raised:
            clause += ("=" if not clauses and not prevailing else "+") + _rank_letters(raised)
        if lowered:
            clause += "-" + _rank_letters(lowered)
        clauses.append(clause)
    if not clauses:
        clauses.append("=")
    for rank in range(7, 0, -1):
        unnamed = [str(n) for n in range(len(CAPABILITY_NAMES), CAPABILITY_BITS) if ranks[n] == rank]
        if unnamed:
            clauses.append(",".join(unnamed) + "+" + _rank_letters(rank))
    return " ".join(clauses)


# --- what a file can hold ------------------------------------------------------------------

def storable_problem(caps: CapabilitySet) -> Optional[str]:
    """Why a file cannot carry this set, or None when it can.

    The file format has one effective flag: when set, the kernel raises every permitted and
    inheritable capability at exec. So e must be on all capabilities that have p or i, or on
    none, and e alone (without p or i) means nothing.
    """
    granted = caps.permitted | caps.inheritable
    lonely = sorted(caps.effective - granted)
    if lonely:
        names = ",".join(capability_name(n) for n in lonely)
        return (
            f"{names} would have e without p or i, and a file's effective flag only raises capabilities "
            f"it also permits or inherits (write {names}=ep)"
        )
    if caps.effective and granted - caps.effective:
        missing = ",".join(capability_name(n) for n in sorted(granted - caps.effective))
        return (
            f"{format_capabilities(caps)!r} has e on some capabilities but not on {missing}, and a file stores "
            "one effective flag for all its capabilities: give e to every capability with p or i, or to none"
        )
    return None


def check_storable(caps: CapabilitySet, option: str = "capability") -> None:
    problem = storable_problem(caps)
    if problem:
        raise CapabilityError(f"{option}: the file format cannot store this: {problem}")


def combine(current: CapabilitySet, requested: CapabilitySet, state: str) -> CapabilitySet:
    """The set a file should end with: present adds, absent removes, exact replaces.

    Removing p and i from a capability leaves its e meaningless, so absent drops that e too.
    """
    if state == "present":
        return current.union(requested)
    if state == "absent":
        left = current.difference(requested)
        return CapabilitySet(left.effective & (left.permitted | left.inheritable), left.inheritable, left.permitted)
    if state == "exact":
        return requested
    raise CapabilityError(f"state: {state!r} is not one of present, absent, exact")
