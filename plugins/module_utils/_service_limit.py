# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The memlock limit a start of a service gives it, and whether its running process needs a restart.

systemd sets a service's LimitMEMLOCK= in the forked child with setrlimit_closest(): when the
kernel refuses the value (EPERM: raising the hard limit needs CAP_SYS_RESOURCE in the initial
user namespace), it silently lowers soft and hard to the hard limit systemd itself runs with.
So where systemd cannot raise limits (inside a container), that hard limit is a ceiling, and
LimitMEMLOCK=infinity gives the ceiling; on a normal host it gives infinity. A unit that sets
no LimitMEMLOCK= gets systemd's DefaultLimitMEMLOCK=, lowered the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional

from ansible_collections.vault_mlock.lxd.plugins.module_utils import _systemd
from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import (
    in_user_namespace,
    read_memlock_limit,
    read_status,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    MemlockLimit,
    Size,
    format_limit,
    format_size,
    format_ulimit,
    lower_limit,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._capability_names import CAP_SYS_RESOURCE


@dataclass(frozen=True)
class Ceiling:
    """The highest memlock limit systemd here can give a service; ``hard_bytes`` None means no ceiling."""

    hard_bytes: Size
    reason: str


@dataclass(frozen=True)
class ServiceState:
    """What the running system tells about a service's memlock limit."""

    main_pid: Optional[int]
    running: Optional[MemlockLimit]  # the main process's, from /proc/PID/limits
    ceiling: Ceiling
    default: Optional[MemlockLimit]  # systemd's DefaultLimitMEMLOCK=, when it was asked


@dataclass(frozen=True)
class RestartDecision:
    start_limit: Optional[MemlockLimit]  # what a start gives the service now; None when unknown
    restart_required: bool
    warnings: List[str] = field(default_factory=list)  # systemd lowers the configured limit to its ceiling


def systemd_ceiling(pid1_limit: MemlockLimit, pid1_cap_effective: int, pid1_in_user_namespace: bool) -> Ceiling:
    """The ceiling from PID 1's hard limit, its effective capabilities and its user namespace.

    CAP_SYS_RESOURCE counts only in the initial user namespace: root in an unprivileged
    container has it in its own namespace (CapEff shows it) and still cannot raise a hard limit.
    """
    can_raise = bool(pid1_cap_effective >> CAP_SYS_RESOURCE & 1) and not pid1_in_user_namespace
    if can_raise:
        return Ceiling(None, "systemd (PID 1) has CAP_SYS_RESOURCE in the initial user namespace, so it can "
                             "give a service any memlock limit")
    hard = pid1_limit.hard
    if pid1_in_user_namespace:
        why = "systemd (PID 1) runs in a user namespace (a container), where it cannot raise RLIMIT_MEMLOCK"
    else:
        why = "systemd (PID 1) lacks CAP_SYS_RESOURCE, so it cannot raise RLIMIT_MEMLOCK"
    if hard is None:
        return Ceiling(None, f"{why}, but its own hard limit is unlimited already")
    return Ceiling(hard, f"{why} past its own hard limit of {format_size(hard)} ({hard} bytes)")


def read_ceiling(proc_root: str = "/proc") -> Ceiling:
    """systemd_ceiling() of this machine's PID 1."""
    try:
        limit = read_memlock_limit(1, proc_root)
        status = read_status(1, proc_root)
        with open(os.path.join(proc_root, "1", "uid_map"), encoding="ascii") as uid_map:
            namespaced = in_user_namespace(uid_map.read())
    except (OSError, ValueError) as exc:
        return Ceiling(None, f"PID 1's limits, capabilities or user namespace cannot be read ({exc})")
    return systemd_ceiling(limit, status.cap_effective, namespaced)


def read_service_state(unit: str, systemctl: Optional[str], run, root: str = "/", need_default: bool = True
                       ) -> ServiceState:
    """Main PID and its limit, systemd's ceiling and default, read from systemctl and /proc under ``root``.

    Without a running systemd (or without systemctl) nothing runs under it: no main PID, no ceiling.
    """
    if systemctl is None or not _systemd.systemd_running(root):
        return ServiceState(None, None, Ceiling(None, "systemd does not run here"), None)
    proc_root = _systemd.join_root(root, "/proc")
    pid = _systemd.main_pid(unit, run, systemctl)
    running = None
    if pid is not None:
        try:
            running = read_memlock_limit(pid, proc_root)
        except (OSError, ValueError):
            running = None  # the process ended between the two reads
    default = _systemd.default_memlock_limit(run, systemctl) if need_default else None
    return ServiceState(pid, running, read_ceiling(proc_root), default)


def decide_restart(unit: str, configured: Optional[MemlockLimit], state: ServiceState) -> RestartDecision:
    """Whether the running main process's limit differs from what a start gives it now."""
    wanted = configured if configured is not None else state.default
    if wanted is None:
        return RestartDecision(None, False)
    start = lower_limit(wanted, state.ceiling.hard_bytes)
    restart = state.running is not None and state.running != start
    warnings = []
    if configured is not None and start != configured:
        warnings.append(lowered_warning(unit, configured, state.ceiling))
    return RestartDecision(start, restart, warnings)


def lowered_warning(unit: str, configured: MemlockLimit, ceiling: Ceiling) -> str:
    """The sentence for an operator whose LimitMEMLOCK= systemd silently lowers."""
    start = lower_limit(configured, ceiling.hard_bytes)
    who = "LXD guests started by this daemon" if unit in _systemd.LXD_DAEMON_UNITS else f"the processes of {unit}"
    return (
        f"{ceiling.reason}: it silently lowers {unit}'s LimitMEMLOCK={format_limit(configured)} to "
        f"{format_limit(start)}, so {who} get at most {format_size(start.hard)} "
        f"(`ulimit -l` {format_ulimit(start.soft)}); raise the hard limit systemd itself runs with to give more "
        "(for a nested LXD host: its own LXD daemon's LimitMEMLOCK, or its limits.kernel.memlock)"
    )
