# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""How the running LXD (or Incus) daemon can get a new memlock limit, judged from facts alone.

A guest inherits RLIMIT_MEMLOCK from the daemon when it starts. The daemon's limit can change
in three ways, and they differ in what they cost the guests already running:

- prlimit(2) on the running daemon: no restart at all. The kernel copies limits at fork, so a
  running guest keeps the limit it started with, and a guest started afterwards gets the new
  one. Raising a hard limit needs CAP_SYS_RESOURCE in the initial user namespace.
- a restart of the unit: harmless where the unit stops only the daemon (Debian's lxd.service,
  incus.service: KillMode=process and no ExecStop=); on the LXD snap, ExecStop= runs the
  snap's daemon.stop, which shuts every instance down.
- the LXD snap's reload: daemon.reload ends only the lxd process and systemd starts the unit
  again under the limits it has loaded, with every instance still running.

decide() chooses among them (pure, unit-tested); _daemon_apply acts on its choice.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capability_names import CAP_SYS_RESOURCE
from ansible_collections.vault_mlock.lxd.plugins.module_utils._host_scan import DAEMON_NAMES, parse_monitor
from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import (
    has_capability,
    in_user_namespace,
    parse_status,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    RLIM_INFINITY,
    MemlockLimit,
    Size,
    format_limit,
    format_size,
    lower_limit,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_show import UnitProperties

# What the module did (or, in check mode, would do). One spelling, in results and decisions.
UNCHANGED = "unchanged"
RAISED_LIVE = "raised_live"
RELOADED = "reloaded"
RESTARTED = "restarted"
DEFERRED = "deferred"
CHANGING_ACTIONS = (RAISED_LIVE, RELOADED, RESTARTED)

# Kill modes that stop only the main process: what the unit started besides it stays.
_KILL_ONLY_MAIN = ("process", "none")
# Restart= values under which systemd starts a unit again after its main process failed.
_RESTART_ON_FAILURE = ("on-failure", "always")

# The snap's reload command as snapd writes it: /usr/bin/snap run --command=reload lxd.daemon
# (lxd_NAME.daemon for a parallel install).
_SNAP_DAEMON_RE = re.compile(r"^lxd(_[a-z0-9]+)?\.daemon$")


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    comm: str
    argv: Tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """What to do, why, and the limit the daemon should end with."""

    action: str
    reason: str
    target: Optional[MemlockLimit]
    keeps_instances: bool = True


def is_daemon_process(process: ProcessInfo) -> bool:
    """Whether a process is an LXD or Incus daemon itself, not a helper of the same binary.

    The daemon runs with options only (``lxd --group lxd --logfile=...``); its helpers carry a
    subcommand (``lxd forkstart ...``, ``lxd waitready``) or a rewritten title (``[lxc monitor] ...``).
    """
    if process.comm not in DAEMON_NAMES or not process.argv or parse_monitor(process.argv):
        return False
    return len(process.argv) == 1 or process.argv[1].startswith("-")


def daemon_pids(main_pid: Optional[int], processes: Sequence[ProcessInfo]) -> List[int]:
    """The daemon process(es) that start guests: MainPID itself (deb, Incus), or the daemon
    the unit's main process started (the snap's MainPID is its daemon.start script)."""
    if main_pid is None:
        return []
    by_pid = {process.pid: process for process in processes}
    main = by_pid.get(main_pid)
    if main is None:
        return []
    if is_daemon_process(main):
        return [main_pid]
    return sorted(process.pid for process in processes if process.ppid == main_pid and is_daemon_process(process))


def can_raise_hard_limit(status_text: str, uid_map_text: str) -> Tuple[bool, str]:
    """Whether a process may raise a hard limit, from its /proc status and uid_map, and why.

    The kernel checks CAP_SYS_RESOURCE in the initial user namespace (kernel/sys.c, do_prlimit):
    root in a container has it only in its own namespace, which does not count.
    """
    status = parse_status(status_text)
    if not has_capability(status.cap_effective, CAP_SYS_RESOURCE):
        return False, "lacks CAP_SYS_RESOURCE"
    if in_user_namespace(uid_map_text):
        return False, "has CAP_SYS_RESOURCE only in a user namespace, and the kernel checks it in the initial one"
    return True, "has CAP_SYS_RESOURCE in the initial user namespace"


def _rank(size: Size) -> int:
    return RLIM_INFINITY if size is None else size


def _argv_text(argv: Sequence[str]) -> str:
    return " ".join(argv)


def is_lxd_snap_reload(argv: Sequence[str]) -> bool:
    """Whether a command is the LXD snap's reload: ``snap run --command=reload lxd.daemon``."""
    if len(argv) < 3 or os.path.basename(argv[0]) != "snap" or argv[1] != "run":
        return False
    return "--command=reload" in argv[2:-1] and bool(_SNAP_DAEMON_RE.match(argv[-1]))


def restart_keeps_instances(unit: UnitProperties) -> Tuple[bool, str]:
    """Whether ``systemctl restart`` stops only the daemon, judged from the unit's properties.

    A restart runs ExecStop= first, and then kills what KillMode= names. An ExecStop= may do
    anything (the snap's daemon.stop shuts every instance down), so only a unit without one,
    whose KillMode= ends the main process alone, is known to keep its instances.
    """
    if unit.exec_stop:
        commands = "; ".join(_argv_text(argv) for argv in unit.exec_stop)
        return False, (
            f"a restart of {unit.name} runs its ExecStop= ({commands}), which may stop every instance "
            "(the LXD snap's daemon.stop shuts them all down on a plain restart)"
        )
    if unit.kill_mode not in _KILL_ONLY_MAIN:
        return False, f"a restart of {unit.name} kills every process of the unit (KillMode={unit.kill_mode or '?'})"
    return True, (
        f"{unit.name} has KillMode={unit.kill_mode} and no ExecStop=, so a restart stops the daemon alone "
        "and running instances stay up"
    )


def reload_restarts_daemon(unit: UnitProperties) -> Tuple[bool, str]:
    """Whether ``systemctl reload`` starts the daemon again under the unit's loaded limits while
    its instances keep running: true of the LXD snap's reload only.

    The snap's daemon.reload writes 'reload' to its state file and ends the lxd process; the
    daemon.start wrapper then exits 1, daemon.stop reads 'reload' and leaves the instances alone,
    and systemd starts the unit again (Restart=on-failure). A reload that only signals a daemon
    changes no limit.
    """
    if not unit.exec_reload:
        return False, f"{unit.name} has no ExecReload="
    if not any(is_lxd_snap_reload(argv) for argv in unit.exec_reload):
        commands = "; ".join(_argv_text(argv) for argv in unit.exec_reload)
        return False, f"{unit.name}'s ExecReload= ({commands}) is not the LXD snap's reload and starts no new daemon"
    if unit.restart not in _RESTART_ON_FAILURE:
        return False, (
            f"{unit.name}'s ExecReload= is the LXD snap's reload, but with Restart={unit.restart or '?'} systemd "
            "would not start the unit again after it"
        )
    if unit.kill_mode not in _KILL_ONLY_MAIN:
        return False, (
            f"{unit.name}'s ExecReload= is the LXD snap's reload, but KillMode={unit.kill_mode or '?'} would kill "
            "every process of the unit when its main process exits"
        )
    return True, (
        f"{unit.name}'s ExecReload= is the LXD snap's reload: it ends only the lxd process, the snap's "
        "daemon.stop leaves instances alone for a reload, and systemd starts the unit again "
        f"(Restart={unit.restart}) under the limit it has loaded"
    )


def spell_limit(limit: Optional[MemlockLimit]) -> str:
    return "unknown" if limit is None else format_limit(limit)


def decide(
    unit: UnitProperties,
    wanted: MemlockLimit,
    running: Optional[MemlockLimit],
    daemon_pid: Optional[int],
    ceiling: Size,
    can_raise_hard: bool,
    raise_why: str,
    allow_stopping_instances: bool,
) -> Decision:
    """Choose how to give the running daemon ``wanted``, never stopping an instance unless allowed.

    ``running`` is the daemon's limit now (None when it does not run), ``ceiling`` the hard limit
    systemd cannot go past (None: no such limit), ``can_raise_hard`` whether this process may raise a
    hard limit (``raise_why`` says why, or why not). First choice is prlimit on the running daemon;
    then the unit's own way that keeps instances; a restart that may stop them only when allowed.
    """
    target = lower_limit(wanted, ceiling)
    lowered = ""
    if target != wanted:
        lowered = (
            f" (LimitMEMLOCK={format_limit(wanted)} lowered to the hard limit {format_size(ceiling)} systemd runs "
            "with: it lacks CAP_SYS_RESOURCE and cannot give more)"
        )
    if running is None or daemon_pid is None:
        return Decision(DEFERRED, (
            f"{unit.name} does not run ({unit.active_state or 'unknown state'}); it gets "
            f"LimitMEMLOCK={spell_limit(unit.limit)} when it starts"
        ), target)
    here = f"{unit.name}'s daemon (PID {daemon_pid})"
    if running == target:
        return Decision(UNCHANGED, f"{here} already runs with {format_limit(target)}{lowered}", target)

    hard_grows = _rank(target.hard) > _rank(running.hard)
    if not hard_grows or can_raise_hard:
        why = "its hard limit does not grow" if not hard_grows else f"this process {raise_why}"
        return Decision(RAISED_LIVE, (
            f"{here} goes from {format_limit(running)} to {format_limit(target)}{lowered} in place with "
            f"prlimit(2), since {why}; no restart, running instances keep the limit they started with"
        ), target)

    not_live = (
        f"{here} runs with {format_limit(running)}; raising its hard limit to {format_size(target.hard)} needs "
        f"CAP_SYS_RESOURCE, and this process {raise_why}, so only a new daemon process can get {format_limit(target)}"
    )
    restarted_gets = lower_limit(unit.limit, ceiling) if unit.limit is not None else None
    if restarted_gets != target:
        return Decision(DEFERRED, (
            f"{not_live}; but {unit.name} as systemd has loaded it has LimitMEMLOCK={spell_limit(unit.limit)}, "
            f"so a new daemon would get {spell_limit(restarted_gets)}: write the drop-in first "
            "(vault_mlock.lxd.memlock_dropin reloads systemd)"
        ), target)
    keeps, restart_why = restart_keeps_instances(unit)
    if keeps:
        return Decision(RESTARTED, f"{not_live}; {restart_why}", target)
    reloads, reload_why = reload_restarts_daemon(unit)
    if reloads:
        return Decision(RELOADED, f"{not_live}; {restart_why}; {reload_why}", target)
    if allow_stopping_instances:
        return Decision(RESTARTED, (
            f"{not_live}; {restart_why}; {reload_why}; restarted anyway because allow_stopping_instances=true"
        ), target, keeps_instances=False)
    return Decision(DEFERRED, (
        f"{not_live}; {restart_why}; {reload_why}. Nothing was done: set allow_stopping_instances=true to "
        "accept that cost, or restart the daemon in a maintenance window"
    ), target)
