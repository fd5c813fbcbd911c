# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""What a service gets from systemd: RLIMIT_MEMLOCK as systemd 252 (Debian 12) to 257 (Debian 13) hands it out.

Pure functions on MemlockLimit, after systemd's src/core/main.c and its exec code:

- At boot, PID 1 raises its own limit (bump_rlimit_memlock): it asks for
  max(64 MiB, what it inherited, an eighth of physical memory) for soft and hard, through
  setrlimit_closest. Without CAP_SYS_RESOURCE (any unprivileged guest) that cannot pass the hard
  limit it inherited, so PID 1 ends with soft = hard: /proc/1/limits then shows neither the soft
  limit LXD gave nor what a service gets.
- When system.conf sets no DefaultLimitMEMLOCK=, services are given what PID 1 inherited, raised
  to 8 MiB (fallback_rlimit_memlock, soft and hard alike).
- A unit's LimitMEMLOCK= (or that default) is applied in the service's process with
  setrlimit_closest: a value above the hard limit is lowered to it, silently, unless the process
  holds CAP_SYS_RESOURCE in the initial user namespace (a privileged guest's root).
"""

from __future__ import annotations

from typing import Optional

from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, Size, covers

KIB = 1024
MIB = 1024 * KIB

# src/basic/def.h (HIGH_RLIMIT_MEMLOCK) and the kernel's default since 5.16 (DEFAULT_RLIMIT_MEMLOCK).
HIGH_RLIMIT_MEMLOCK = 64 * MIB
DEFAULT_RLIMIT_MEMLOCK = 8 * MIB


def larger(*sizes: Size) -> Size:
    """The largest of sizes in bytes, None (no limit) above all."""
    return None if any(size is None for size in sizes) else max(sizes)


def smaller(*sizes: Size) -> Size:
    """The smallest of sizes in bytes, None (no limit) above all."""
    finite = [size for size in sizes if size is not None]
    return min(finite) if finite else None


def setrlimit_closest(asked: MemlockLimit, current: MemlockLimit, can_raise: bool) -> MemlockLimit:
    """The limit a process ends with when systemd asks for ``asked`` while it has ``current``.

    setrlimit() refuses to raise the hard limit without CAP_SYS_RESOURCE (in the initial user
    namespace); systemd then sets both values no higher than the current hard limit.
    """
    if can_raise or covers(current.hard, asked.hard):
        return asked
    return MemlockLimit(smaller(asked.soft, current.hard), smaller(asked.hard, current.hard))


def pid1_after_boot(inherited: MemlockLimit, can_raise: bool, physical_memory: int) -> MemlockLimit:
    """PID 1's limit once systemd has booted with ``inherited`` (bump_rlimit_memlock)."""
    eighth = physical_memory // 8
    wanted = MemlockLimit(larger(HIGH_RLIMIT_MEMLOCK, inherited.soft, eighth),
                          larger(HIGH_RLIMIT_MEMLOCK, inherited.hard, eighth))
    # systemd's own shortcut, compared crosswise as it does.
    if covers(inherited.hard, wanted.soft) and covers(inherited.soft, wanted.hard):
        return inherited
    return setrlimit_closest(wanted, inherited, can_raise)


def default_service_limit(inherited: MemlockLimit) -> MemlockLimit:
    """What systemd gives services when system.conf sets no DefaultLimitMEMLOCK= (fallback_rlimit_memlock)."""
    return MemlockLimit(larger(inherited.soft, DEFAULT_RLIMIT_MEMLOCK), larger(inherited.hard, DEFAULT_RLIMIT_MEMLOCK))


def service_limit(asked: MemlockLimit, pid1: MemlockLimit, can_raise: bool) -> MemlockLimit:
    """What a service gets when its unit asks for ``asked`` (its LimitMEMLOCK= or systemd's default).

    The service's process starts as a fork of PID 1, with PID 1's limit, and sets ``asked`` there.
    """
    return setrlimit_closest(asked, pid1, can_raise)


def service_after_start(inherited: MemlockLimit, can_raise: bool, physical_memory: int,
                        asked: Optional[MemlockLimit] = None) -> MemlockLimit:
    """What a service gets in a guest that starts with ``inherited``: its unit's ``asked``, or systemd's default."""
    pid1 = pid1_after_boot(inherited, can_raise, physical_memory)
    return service_limit(asked if asked is not None else default_service_limit(inherited), pid1, can_raise)
