# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Give the running LXD (or Incus) daemon a new memlock limit without stopping a guest.

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

decide() chooses among them from facts only (pure, unit-tested). apply_limit() reads those
facts, acts and reads the result back through a DaemonHost, whose methods are the only side
effects; tests replace it.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._host_scan import DAEMON_NAMES, parse_monitor
from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import (
    has_capability,
    in_user_namespace,
    parse_cmdline,
    parse_stat,
    parse_status,
    read_memlock_limit,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    RLIM_INFINITY,
    MemlockLimit,
    Size,
    format_limit,
    format_size,
)

# linux/capability.h: lets a process raise a hard limit (checked in the initial user namespace).
CAP_SYS_RESOURCE = 24

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

SHOW_PROPERTIES = (
    "Id", "LoadState", "ActiveState", "MainPID", "KillMode", "Restart",
    "ExecStop", "ExecReload", "LimitMEMLOCK", "LimitMEMLOCKSoft", "NeedDaemonReload",
)

# The snap's reload command as snapd writes it: /usr/bin/snap run --command=reload lxd.daemon
# (lxd_NAME.daemon for a parallel install).
_SNAP_DAEMON_RE = re.compile(r"^lxd(_[a-z0-9]+)?\.daemon$")

Runner = Callable[[Sequence[str]], Tuple[int, str, str]]


class DaemonApplyError(Exception):
    """Something the module cannot do; the message says what and what to do."""


@dataclass(frozen=True)
class UnitProperties:
    """What ``systemctl show`` tells about the daemon's unit, as systemd has loaded it."""

    name: str
    load_state: str
    active_state: str
    main_pid: Optional[int]
    kill_mode: str
    restart: str
    exec_stop: Tuple[Tuple[str, ...], ...]  # the argv of each ExecStop= command
    exec_reload: Tuple[Tuple[str, ...], ...]
    limit: Optional[MemlockLimit]  # LimitMEMLOCKSoft:LimitMEMLOCK
    need_daemon_reload: bool


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


# ---- parsing -------------------------------------------------------------------------------

def _show_size(text: str) -> Size:
    value = text.strip()
    if value == "infinity":
        return None
    size = int(value)
    return None if size >= RLIM_INFINITY else size


def parse_exec_value(value: str) -> Optional[Tuple[str, ...]]:
    """The argv of one ``systemctl show`` Exec*= value: ``{ path=... ; argv[]=... ; ... }``."""
    match = re.search(r"argv\[\]=(.*?) ; (?:ignore_errors|flags)=", value)
    if not match:
        return None
    text = match.group(1).strip()
    try:
        return tuple(shlex.split(text))
    except ValueError:
        return tuple(text.split())


def parse_show(text: str, unit: str) -> UnitProperties:
    """UnitProperties from ``systemctl show -p ... UNIT``; empty Exec lists print nothing."""
    values = {}
    execs = {"ExecStop": [], "ExecReload": []}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key in execs:
            argv = parse_exec_value(value)
            if argv:
                execs[key].append(argv)
        else:
            values[key] = value
    try:
        main_pid = int(values.get("MainPID", "0") or 0)
        hard = _show_size(values["LimitMEMLOCK"]) if values.get("LimitMEMLOCK") else None
        soft = _show_size(values["LimitMEMLOCKSoft"]) if values.get("LimitMEMLOCKSoft") else None
    except ValueError as exc:
        raise DaemonApplyError(f"unit: cannot read 'systemctl show {unit}': {exc}") from exc
    limit = MemlockLimit(soft, hard) if values.get("LimitMEMLOCK") and values.get("LimitMEMLOCKSoft") else None
    return UnitProperties(
        name=values.get("Id") or unit,
        load_state=values.get("LoadState", ""),
        active_state=values.get("ActiveState", ""),
        main_pid=main_pid if main_pid > 0 else None,
        kill_mode=values.get("KillMode", ""),
        restart=values.get("Restart", ""),
        exec_stop=tuple(execs["ExecStop"]),
        exec_reload=tuple(execs["ExecReload"]),
        limit=limit,
        need_daemon_reload=values.get("NeedDaemonReload", "no") == "yes",
    )


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


# ---- judging -------------------------------------------------------------------------------

def _rank(size: Size) -> int:
    return RLIM_INFINITY if size is None else size


def _min(size: Size, ceiling: Size) -> Size:
    return size if _rank(size) <= _rank(ceiling) else ceiling


def systemd_gives(limit: MemlockLimit, ceiling: Size) -> MemlockLimit:
    """The limit a service gets from LimitMEMLOCK=``limit`` when systemd itself cannot go past
    ``ceiling`` (its own hard limit, when it lacks CAP_SYS_RESOURCE): systemd lowers soft and hard
    to it instead of failing (setrlimit_closest in src/basic/rlimit-util.c)."""
    if ceiling is None:
        return limit
    return MemlockLimit(_min(limit.soft, ceiling), _min(limit.hard, ceiling))


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


def _spell(limit: Optional[MemlockLimit]) -> str:
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
    target = systemd_gives(wanted, ceiling)
    lowered = ""
    if target != wanted:
        lowered = (
            f" (LimitMEMLOCK={format_limit(wanted)} lowered to the hard limit {format_size(ceiling)} systemd runs "
            "with: it lacks CAP_SYS_RESOURCE and cannot give more)"
        )
    if running is None or daemon_pid is None:
        return Decision(DEFERRED, (
            f"{unit.name} does not run ({unit.active_state or 'unknown state'}); it gets "
            f"LimitMEMLOCK={_spell(unit.limit)} when it starts"
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
    restarted_gets = systemd_gives(unit.limit, ceiling) if unit.limit is not None else None
    if restarted_gets != target:
        return Decision(DEFERRED, (
            f"{not_live}; but {unit.name} as systemd has loaded it has LimitMEMLOCK={_spell(unit.limit)}, so a new "
            f"daemon would get {_spell(restarted_gets)}: write the drop-in first "
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


# ---- acting --------------------------------------------------------------------------------

def _prlimit_value(size: Size) -> int:
    import resource  # Linux only; imported where it is used so that parsing works anywhere

    return resource.RLIM_INFINITY if size is None else size


class DaemonHost:
    """The side effects apply_limit() needs: systemctl, /proc and prlimit(2). Tests replace it."""

    def __init__(self, run: Runner, systemctl: str = "systemctl", proc_root: str = "/proc") -> None:
        self.run = run
        self.systemctl = systemctl
        self.proc_root = proc_root

    def _systemctl(self, *args: str) -> str:
        rc, out, err = self.run([self.systemctl, *args])
        if rc != 0:
            raise DaemonApplyError(f"'systemctl {' '.join(args)}' failed with rc={rc}: {(err or out).strip()}")
        return out

    def show(self, unit: str) -> UnitProperties:
        argv = ["show"] + [f"--property={name}" for name in SHOW_PROPERTIES] + [unit]
        return parse_show(self._systemctl(*argv), unit)

    def daemon_reload(self) -> None:
        self._systemctl("daemon-reload")

    def restart(self, unit: str) -> None:
        self._systemctl("restart", unit)

    def reload(self, unit: str) -> None:
        self._systemctl("reload", unit)

    def _read(self, pid, name: str) -> bytes:
        with open(os.path.join(self.proc_root, str(pid), name), "rb") as stream:
            return stream.read()

    def processes(self) -> List[ProcessInfo]:
        found = []
        for entry in os.listdir(self.proc_root):
            if not entry.isdigit():
                continue
            try:
                comm, ppid = parse_stat(self._read(entry, "stat").decode("utf-8", "replace"))
                argv = parse_cmdline(self._read(entry, "cmdline"))
            except (OSError, ValueError):
                continue  # ended meanwhile
            found.append(ProcessInfo(int(entry), ppid, comm, tuple(argv)))
        return found

    def read_limit(self, pid: int) -> MemlockLimit:
        return read_memlock_limit(pid, self.proc_root)

    def set_limit(self, pid: int, limit: MemlockLimit) -> None:
        """prlimit(2); PermissionError when the kernel refuses (a hard limit raised without the capability)."""
        import resource

        resource.prlimit(pid, resource.RLIMIT_MEMLOCK, (_prlimit_value(limit.soft), _prlimit_value(limit.hard)))

    def may_raise_hard(self, pid="self") -> Tuple[bool, str]:
        return can_raise_hard_limit(
            self._read(pid, "status").decode("utf-8", "replace"),
            self._read(pid, "uid_map").decode("ascii", "replace"),
        )

    def systemd_ceiling(self) -> Size:
        """The hard limit systemd (PID 1) cannot go past, or None when it may raise hard limits."""
        try:
            can_raise, _why = self.may_raise_hard(1)
            return None if can_raise else self.read_limit(1).hard
        except (OSError, ValueError):
            return None

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class Outcome:
    """What apply_limit() found, decided and did."""

    unit: UnitProperties
    wanted: MemlockLimit
    decision: Decision
    daemon_pid_before: Optional[int]
    limit_before: Optional[MemlockLimit]
    daemon_pid: Optional[int]
    limit_after: Optional[MemlockLimit]
    can_raise_hard: bool
    ceiling: Size
    hard_raise_refused: bool = False
    daemon_reloaded: bool = False
    warnings: List[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.daemon_reloaded or self.decision.action in CHANGING_ACTIONS

    @property
    def persistent(self) -> bool:
        """Whether the unit, as systemd has loaded it, gives the daemon the same limit on its next start."""
        return self.unit.limit is not None and self.decision.target is not None and (
            systemd_gives(self.unit.limit, self.ceiling) == self.decision.target
        )


def _find_daemon(host: DaemonHost, unit: UnitProperties, warnings: List[str]) -> Tuple[Optional[int], List[int]]:
    pids = daemon_pids(unit.main_pid, host.processes())
    if not pids and unit.main_pid is not None:
        warnings.append(
            f"found no lxd or incusd daemon process at or under {unit.name}'s MainPID {unit.main_pid}; "
            "applying the limit to MainPID itself"
        )
        pids = [unit.main_pid]
    return (pids[0] if pids else None), pids


def _wait_for_new_daemon(host: DaemonHost, unit_name: str, old_main: Optional[int], old_pids: Sequence[int],
                         timeout: float) -> Tuple[UnitProperties, List[int]]:
    """Poll until the unit runs a new main process and its daemon process is there."""
    deadline = host.monotonic() + timeout
    while True:
        unit = host.show(unit_name)
        if unit.active_state == "active" and unit.main_pid is not None and unit.main_pid != old_main:
            pids = daemon_pids(unit.main_pid, host.processes())
            if pids and not set(pids) & set(old_pids):
                return unit, pids
        if host.monotonic() >= deadline:
            raise DaemonApplyError(
                f"{unit_name} did not run a new daemon within {timeout:g} seconds "
                f"(ActiveState={unit.active_state}, MainPID={unit.main_pid or 0}); see 'journalctl -u {unit_name}'"
            )
        host.sleep(0.5)


def apply_limit(
    host: DaemonHost,
    unit_name: str,
    wanted: Optional[MemlockLimit],
    allow_stopping_instances: bool = False,
    check_mode: bool = False,
    timeout: float = 120,
) -> Outcome:
    """Read the unit and its daemon, decide, act (unless ``check_mode``), read the daemon back.

    ``wanted`` None means the limit the unit has loaded (its LimitMEMLOCK=).
    """
    warnings: List[str] = []
    unit = host.show(unit_name)
    if unit.load_state != "loaded":
        raise DaemonApplyError(
            f"unit: {unit_name} is not a loaded unit (LoadState={unit.load_state or 'unknown'}); is it installed?"
        )
    daemon_reloaded = False
    if unit.need_daemon_reload:
        if check_mode:
            warnings.append(
                f"{unit.name}'s unit files changed since systemd loaded them; check mode judges by the loaded ones"
            )
        else:
            host.daemon_reload()
            daemon_reloaded = True
            unit = host.show(unit_name)
    if wanted is None:
        if unit.limit is None:
            raise DaemonApplyError(f"limit: systemd shows no LimitMEMLOCK for {unit.name}; give limit=SIZE")
        wanted = unit.limit

    daemon_pid, pids = _find_daemon(host, unit, warnings)
    running = None
    if daemon_pid is not None:
        try:
            running = host.read_limit(daemon_pid)
        except (OSError, ValueError):
            daemon_pid, pids = None, []  # ended between the two reads
    can_raise, raise_why = host.may_raise_hard()
    ceiling = host.systemd_ceiling()

    def choose(can: bool, why: str) -> Decision:
        return decide(unit, wanted, running, daemon_pid, ceiling, can, why, allow_stopping_instances)

    decision = choose(can_raise, raise_why)
    outcome = Outcome(unit, wanted, decision, daemon_pid, running, daemon_pid, running, can_raise, ceiling,
                      daemon_reloaded=daemon_reloaded, warnings=warnings)
    if check_mode:
        return outcome

    if decision.action == RAISED_LIVE:
        try:
            for pid in pids:
                host.set_limit(pid, decision.target)
        except PermissionError as exc:
            # The capability check could not foresee it (a security module, say): take the unit's way.
            decision = choose(False, "was refused by the kernel (EPERM)")
            if decision.action == RAISED_LIVE:
                raise DaemonApplyError(
                    f"prlimit on {unit.name}'s daemon (PID {daemon_pid}) was refused although its hard limit "
                    f"does not grow: {exc}"
                ) from exc
            outcome.hard_raise_refused = True
            outcome.decision = decision
        except ProcessLookupError as exc:
            raise DaemonApplyError(f"{unit.name}'s daemon (PID {daemon_pid}) ended during prlimit: {exc}") from exc

    if decision.action in (RESTARTED, RELOADED):
        if decision.action == RESTARTED:
            host.restart(unit.name)
        else:
            host.reload(unit.name)
        unit, pids = _wait_for_new_daemon(host, unit.name, unit.main_pid, pids, timeout)
        outcome.unit = unit
        if not decision.keeps_instances:
            warnings.append(f"{unit.name} was restarted with allow_stopping_instances=true: {decision.reason}")

    if decision.action in (RAISED_LIVE, UNCHANGED) and not outcome.persistent:
        warnings.append(
            f"{unit.name}'s daemon runs with {format_limit(decision.target)} until it restarts; then systemd gives it "
            f"the unit's LimitMEMLOCK={_spell(unit.limit)}. Write the drop-in (vault_mlock.lxd.memlock_dropin)"
        )
    if decision.action in CHANGING_ACTIONS:
        outcome.daemon_pid = pids[0]
        outcome.limit_after = host.read_limit(pids[0])
        if outcome.limit_after != decision.target:
            raise DaemonApplyError(
                f"{unit.name}'s daemon (PID {pids[0]}) runs with {format_limit(outcome.limit_after)} after "
                f"'{decision.action}', not {format_limit(decision.target)}: {decision.reason}"
            )
    return outcome
