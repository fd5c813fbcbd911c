# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Memlock sizes as systemd, LXD, the kernel and ``ulimit -l`` write them.

One value means "no limit" everywhere in the collection: ``None``. systemd writes it
``infinity``, LXD and /proc/PID/limits ``unlimited``. systemd counts bytes (K, M, G ...
are powers of 1024), ``ulimit -l`` prints KiB: the factor 1024 operators stumble over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

# The kernel's RLIM_INFINITY; systemd refuses any finite value at or above it.
RLIM_INFINITY = 2**64 - 1

SUFFIXES = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}
INFINITY_WORDS = ("infinity", "unlimited")

ACCEPTED_FORM = (
    "a number of bytes with an optional suffix K, M, G, T, P or E (powers of 1024), "
    "'infinity' (or 'unlimited'), or 'SOFT:HARD' made of two of these"
)

_SIZE_RE = re.compile(r"^(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?\s*(?P<suffix>[BKMGTPE]?)$")

Size = Optional[int]  # bytes; None means no limit


class SizeError(ValueError):
    """A size text that systemd (or LXD) would refuse. The message says why."""


@dataclass(frozen=True)
class MemlockLimit:
    """RLIMIT_MEMLOCK as a soft and a hard value in bytes; None is no limit."""

    soft: Size
    hard: Size


def _rank(size: Size) -> int:
    return RLIM_INFINITY if size is None else size


def parse_size(text: str, option: str = "limit") -> Size:
    """Parse one size as systemd's LimitMEMLOCK= does. Returns bytes, or None for no limit."""
    if not isinstance(text, str):
        text = str(text)
    value = text.strip()
    if value.lower() in INFINITY_WORDS:
        return None
    match = _SIZE_RE.match(value)
    if not match:
        raise SizeError(f"{option}: {text!r} is not a size; expected {ACCEPTED_FORM}")
    factor = SUFFIXES[match.group("suffix")]
    frac = match.group("frac") or ""
    size = int(match.group("int")) * factor
    if frac:
        size += int(frac) * factor // 10 ** len(frac)
    if size >= RLIM_INFINITY:
        raise SizeError(
            f"{option}: {text!r} is too large; the kernel's largest finite limit is {RLIM_INFINITY - 1} bytes, "
            "use 'infinity' for no limit"
        )
    return size


def parse_limit(text: str, option: str = "limit") -> MemlockLimit:
    """Parse ``SIZE`` or ``SOFT:HARD``. A single size sets soft and hard alike."""
    if not isinstance(text, str):
        text = str(text)
    if not text.strip():
        raise SizeError(f"{option}: the value is empty; expected {ACCEPTED_FORM}")
    parts = text.split(":")
    if len(parts) > 2:
        raise SizeError(f"{option}: {text!r} has more than one ':'; expected {ACCEPTED_FORM}")
    soft = parse_size(parts[0], option)
    hard = parse_size(parts[-1], option)
    if _rank(soft) > _rank(hard):
        raise SizeError(
            f"{option}: soft limit {format_size(soft)} is above hard limit {format_size(hard)} in {text!r}; "
            "the soft limit must not exceed the hard one"
        )
    return MemlockLimit(soft, hard)


def format_size(size: Size) -> str:
    """The shortest exact systemd spelling: 'infinity', '0', '64K', '1536K', '8M', '1000'."""
    if size is None:
        return "infinity"
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
        return "unlimited" if size is None else str(size)

    if limit.soft == limit.hard:
        return one(limit.soft)
    return f"{one(limit.soft)}:{one(limit.hard)}"


def ulimit_kib(size: Size) -> Optional[int]:
    """What ``ulimit -l`` prints for a limit in bytes: KiB rounded down; None for 'unlimited'."""
    return None if size is None else size // 1024


def format_ulimit(size: Size) -> str:
    kib = ulimit_kib(size)
    return "unlimited" if kib is None else str(kib)


def covers(limit: Size, need: Size) -> bool:
    """Whether a limit of ``limit`` bytes lets a process lock ``need`` bytes."""
    return _rank(limit) >= _rank(need)


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
