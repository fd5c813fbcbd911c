# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Memlock sizes as systemd, LXD, the kernel and ``ulimit -l`` write them.

One value means "no limit" everywhere in the collection: ``None``. systemd writes it
``infinity``, LXD and /proc/PID/limits ``unlimited``. systemd counts bytes (K, M, G ...
are powers of 1024), ``ulimit -l`` prints KiB: the factor 1024 operators stumble over.

systemd_limit() reads a LimitMEMLOCK= value exactly as systemd does (rlimit_parse() with
parse_size() base 1024, in src/basic/rlimit-util.c and parse-util.c), so that what the
collection computes from unit files is what ``systemctl show`` says. That includes
systemd's surprises: "1G 512M" is 1.5 GiB, "4." is 4 bytes, "4.M" is 4 MiB, "+4M" is 4 MiB,
while "4M : 8M" (spaces around the colon), "4m", "4KB" and "Infinity" are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

# The kernel's RLIM_INFINITY; systemd refuses any finite value at or above it.
RLIM_INFINITY = 2**64 - 1
_ULLONG_MAX = 2**64 - 1

SUFFIXES = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}
# parse_size()'s table, in its order: each component of "1G 512M" must use a later entry
# than the one before it, and "" matches anywhere (so "4m" is 4 followed by garbage).
_IEC_TABLE = (("E", 1 << 60), ("P", 1 << 50), ("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20),
              ("K", 1 << 10), ("B", 1), ("", 1))
INFINITY = "infinity"
# Accepted from users besides systemd's 'infinity', as LXD and /proc/PID/limits write it.
UNLIMITED = "unlimited"

# systemd's WHITESPACE, skipped before each component and before a suffix; strtoull()
# itself also skips the C locale's \v and \f.
_WHITESPACE = " \t\n\r"
_C_SPACE = " \t\n\v\f\r"
_DIGITS = "0123456789"

ACCEPTED_FORM = (
    "a number of bytes with an optional suffix K, M, G, T, P or E (powers of 1024, upper case), "
    "'infinity' (or 'unlimited'), or 'SOFT:HARD' made of two of these with nothing around the ':'"
)

Size = Optional[int]  # bytes; None means no limit


class SizeError(ValueError):
    """A size text that systemd (or LXD) would refuse. The message says why."""


@dataclass(frozen=True)
class MemlockLimit:
    """RLIMIT_MEMLOCK as a soft and a hard value in bytes; None is no limit."""

    soft: Size
    hard: Size


class _Refused(Exception):
    """Why systemd's parser refuses a text: 'not a size' (EINVAL) or 'too large' (ERANGE)."""

    def __init__(self, why: str, too_large: bool = False):
        super().__init__(why)
        self.why = why
        self.too_large = too_large


def _rank(size: Size) -> int:
    return RLIM_INFINITY if size is None else size


def _strtoull(text: str, start: int) -> Tuple[int, int]:
    """C strtoull(text + start, &end, 10): (value, end); end == start when nothing was read.

    Leading white space and one sign are taken; '-' negates modulo 2**64 as C does.
    """
    index = start
    while index < len(text) and text[index] in _C_SPACE:
        index += 1
    negative = index < len(text) and text[index] == "-"
    if index < len(text) and text[index] in "+-":
        index += 1
    digits_start = index
    while index < len(text) and text[index] in _DIGITS:
        index += 1
    if index == digits_start:
        return 0, start
    value = int(text[digits_start:index])
    if value > _ULLONG_MAX:
        raise _Refused(f"{text[start:index].strip()!r} is beyond 64 bits", too_large=True)
    return (-value) % 2**64 if negative else value, index


def _span(text: str, start: int, characters: str) -> int:
    while start < len(text) and text[start] in characters:
        start += 1
    return start


def _parse_size_1024(text: str) -> int:
    """systemd's parse_size(text, 1024): components such as '1G 512M', each with an optional fraction."""
    total = 0
    table_start = 0
    position = 0
    while True:
        position = _span(text, position, _WHITESPACE)
        number, end = _strtoull(text, position)
        if end == position:
            raise _Refused(_no_number(text, position))
        if text[position] == "-":
            raise _Refused("systemd refuses negative sizes")
        fraction = 0.0
        if end < len(text) and text[end] == ".":
            end += 1
            if end < len(text) and text[end] in _DIGITS:
                digits, fraction_end = _strtoull(text, end)
                # systemd divides a double by 10 per digit; the same float steps give the same bytes.
                fraction = float(digits)
                for _digit in range(fraction_end - end):
                    fraction /= 10
                end = fraction_end
        end = _span(text, end, _WHITESPACE)
        for index in range(table_start, len(_IEC_TABLE)):
            suffix, factor = _IEC_TABLE[index]
            if text.startswith(suffix, end):
                break
        else:
            raise _Refused(f"{text[position:]!r} cannot follow {text[:position].strip()!r}: each further part "
                           "needs a smaller suffix than the one before")
        if ((number + (fraction > 0)) % 2**64) > _ULLONG_MAX // factor:
            raise _Refused("it is beyond 64 bits", too_large=True)
        component = number * factor + int(fraction * factor)
        if component > _ULLONG_MAX - total:
            raise _Refused("it is beyond 64 bits", too_large=True)
        total += component
        position = end + len(suffix)
        table_start = index + 1
        if position >= len(text):
            return total


def _no_number(text: str, position: int) -> str:
    if position >= len(text):
        return "it ends in white space" if position else "a number is missing"
    if text[position].isalpha():
        return (f"{text[position:]!r} is not a suffix systemd knows here (E, P, T, G, M, K or B, upper case, "
                "once each, larger before smaller)")
    return f"{text[position:]!r} is not a number"


def _rlimit_size(word: str) -> Size:
    """systemd's rlimit_parse_size(): 'infinity', or a size below RLIM_INFINITY."""
    if word == INFINITY:
        return None
    size = _parse_size_1024(word)
    if size >= RLIM_INFINITY:
        raise _Refused(f"it reaches RLIM_INFINITY ({RLIM_INFINITY}); the largest finite limit is "
                       f"{RLIM_INFINITY - 1} bytes, use 'infinity' for no limit", too_large=True)
    return size


def _side_size(word: str, where: str) -> Size:
    """_rlimit_size() of one side of SOFT:HARD, saying which side a refusal is about."""
    try:
        return _rlimit_size(word)
    except _Refused as refused:
        if where:
            refused.why = f"in {word!r} {where}, {refused.why}"
            refused.args = (refused.why,)
        raise


def _next_word(text: str, start: Optional[int]) -> Tuple[Optional[str], Optional[int]]:
    """extract_first_word(&p, &word, ":", EXTRACT_DONT_COALESCE_SEPARATORS): (word, next start).

    No word once the text is used up (start None); a backslash keeps the next character as it is.
    """
    if start is None:
        return None, None
    word = []
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if escaped:
            word.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            return "".join(word), index + 1
        else:
            word.append(char)
    if escaped:
        raise _Refused("it ends in a lone backslash")
    return "".join(word), None


def _read_limit(value: str) -> MemlockLimit:
    """systemd's rlimit_parse(RLIMIT_MEMLOCK, value); raises _Refused or _SoftAboveHard."""
    soft_word, rest = _next_word(value, 0)
    if soft_word == "" and rest is not None:
        raise _Refused("nothing comes before ':'")
    soft = _side_size(soft_word, "before ':'" if rest is not None else "")
    hard_word, rest = _next_word(value, rest)
    if rest is not None and rest < len(value):
        raise _Refused("it has more than one ':'")
    if hard_word == "":
        raise _Refused("nothing comes after ':'")
    hard = soft if hard_word is None else _side_size(hard_word, "after ':'")
    if _rank(soft) > _rank(hard):
        raise _SoftAboveHard(soft, hard)
    return MemlockLimit(soft, hard)


class _SoftAboveHard(Exception):
    def __init__(self, soft: Size, hard: Size):
        super().__init__(f"soft limit {format_size(soft)} is above hard limit {format_size(hard)}")


def _refusal(value: str, exc: Exception) -> str:
    if isinstance(exc, _SoftAboveHard):
        return f"{exc} in {value!r}; the soft limit must not exceed the hard one"
    kind = "is too large" if getattr(exc, "too_large", False) else "is not a size"
    return f"{value!r} {kind}: {exc}"


def systemd_limit(value: str) -> MemlockLimit:
    """The limit systemd reads from a LimitMEMLOCK= value (already stripped, as unit files are).

    Raises SizeError where systemd logs "Failed to parse resource value, ignoring" (or "Soft
    resource limit chosen higher than hard limit, ignoring") and keeps the earlier assignment.
    """
    try:
        return _read_limit(value)
    except (_Refused, _SoftAboveHard) as exc:
        raise SizeError(_refusal(value, exc)) from None


def parse_limit(text, option: str = "limit") -> MemlockLimit:
    """A limit given by a user: what systemd_limit() reads from it in a unit file.

    As in a unit file, white space around the whole value does not count. 'unlimited' may
    stand for 'infinity' on either side of the ':'.
    """
    value = (text if isinstance(text, str) else str(text)).strip(_WHITESPACE)
    if not value:
        raise SizeError(f"{option}: the value is empty; expected {ACCEPTED_FORM}")
    systemd_text = ":".join(INFINITY if side == UNLIMITED else side for side in value.split(":"))
    try:
        return _read_limit(systemd_text)
    except (_Refused, _SoftAboveHard) as exc:
        raise SizeError(f"{option}: {_refusal(value, exc)}; expected {ACCEPTED_FORM}") from None


def parse_size(text, option: str = "limit") -> Size:
    """One size given by a user (no ':'): bytes, or None for no limit."""
    value = text if isinstance(text, str) else str(text)
    if ":" in value:
        raise SizeError(f"{option}: {value.strip()!r} is not a size: one size is expected, not SOFT:HARD; "
                        f"expected {ACCEPTED_FORM}")
    return parse_limit(value, option).hard


def format_size(size: Size) -> str:
    """The shortest exact systemd spelling: 'infinity', '0', '64K', '1536K', '8M', '1000'."""
    if size is None:
        return INFINITY
    if size == 0:
        return "0"
    for suffix in ("E", "P", "T", "G", "M", "K"):
        factor = SUFFIXES[suffix]
        if size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


def format_limit(limit: MemlockLimit) -> str:
    """systemd's LimitMEMLOCK= value: one size when soft equals hard, else SOFT:HARD."""
    if limit.soft == limit.hard:
        return format_size(limit.soft)
    return f"{format_size(limit.soft)}:{format_size(limit.hard)}"


def format_lxd(limit: MemlockLimit) -> str:
    """LXD's limits.kernel.memlock value: bytes or 'unlimited', SOFT:HARD when they differ."""
    def one(size: Size) -> str:
        return UNLIMITED if size is None else str(size)

    if limit.soft == limit.hard:
        return one(limit.soft)
    return f"{one(limit.soft)}:{one(limit.hard)}"


def ulimit_kib(size: Size) -> Optional[int]:
    """What ``ulimit -l`` prints for a limit in bytes: KiB rounded down; None for 'unlimited'."""
    return None if size is None else size // 1024


def format_ulimit(size: Size) -> str:
    kib = ulimit_kib(size)
    return UNLIMITED if kib is None else str(kib)


def covers(limit: Size, need: Size) -> bool:
    """Whether a limit of ``limit`` bytes lets a process lock ``need`` bytes."""
    return _rank(limit) >= _rank(need)


def lower_limit(limit: MemlockLimit, ceiling: Size) -> MemlockLimit:
    """Both values of ``limit`` lowered to at most ``ceiling`` (None: no ceiling)."""
    if ceiling is None:
        return limit
    return MemlockLimit(min(_rank(limit.soft), ceiling), min(_rank(limit.hard), ceiling))


@dataclass(frozen=True)
class MemlockReport:
    """RLIMIT_MEMLOCK as the modules return it: bytes (null is no limit), ``ulimit -l`` KiB, systemd spelling."""

    soft_bytes: Size
    hard_bytes: Size
    soft_ulimit_kib: Optional[int]
    hard_ulimit_kib: Optional[int]
    systemd_value: str

    @classmethod
    def of(cls, limit: MemlockLimit) -> MemlockReport:
        return cls(limit.soft, limit.hard, ulimit_kib(limit.soft), ulimit_kib(limit.hard), format_limit(limit))

    @property
    def limit(self) -> MemlockLimit:
        return MemlockLimit(self.soft_bytes, self.hard_bytes)


def memlock_report(limit: Optional[MemlockLimit]) -> Optional[MemlockReport]:
    return None if limit is None else MemlockReport.of(limit)
