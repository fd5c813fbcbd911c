# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Give the running LXD (or Incus) daemon a new memlock limit without stopping a guest.

apply_limit() reads the unit and its daemon, lets _daemon_decide choose, acts, and reads the
result back through a DaemonHost, whose methods are the only side effects; tests replace it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._daemon_decide import (
    CHANGING_ACTIONS,
    RAISED_LIVE,
    RELOADED,
    RESTARTED,
    UNCHANGED,
    Decision,
    ProcessInfo,
    can_raise_hard_limit,
    daemon_pids,
    decide,
    spell_limit,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_transport import UNIT_SOCKETS, LxdError, Transport
from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import parse_cmdline, parse_stat, read_memlock_limit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._service_limit import read_ceiling
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    MemlockLimit,
    Size,
    format_limit,
    lower_limit,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_show import (
    SHOW_PROPERTIES,
    UnitProperties,
    UnitShowError,
    parse_show,
)

Runner = Callable[[Sequence[str]], Tuple[int, str, str]]


class DaemonApplyError(Exception):
    """Something the module cannot do; the message says what and what to do."""


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
        try:
            return parse_show(self._systemctl(*argv), unit)
        except UnitShowError as exc:
            raise DaemonApplyError(str(exc)) from exc

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
        return read_ceiling(self.proc_root).hard_bytes

    def wait_ready(self, unit_name: str, timeout: float) -> None:
        """Ask the daemon of a unit the collection knows until it says it is ready (GET /internal/ready, what
        `lxd waitready` and `incus admin waitready` ask): it answers only once it has loaded its instances."""
        path = UNIT_SOCKETS.get(unit_name)
        if path is None:
            return
        deadline = self.monotonic() + timeout
        transport = Transport(path, min(timeout, 10.0))
        try:
            while True:
                try:
                    transport.call("GET", "/internal/ready")
                    return
                except LxdError as exc:
                    last = exc
                if self.monotonic() >= deadline:
                    raise DaemonApplyError(f"{unit_name}'s new daemon did not say it is ready on {path} within "
                                           f"{timeout:g} seconds ({last}); see 'journalctl -u {unit_name}'")
                self.sleep(0.5)
        finally:
            transport.close()

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
            lower_limit(self.unit.limit, self.ceiling) == self.decision.target
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
        started = host.monotonic()
        unit, pids = _wait_for_new_daemon(host, unit.name, unit.main_pid, pids, timeout)
        host.wait_ready(unit.name, max(1.0, timeout - (host.monotonic() - started)))
        outcome.unit = unit
        if not decision.keeps_instances:
            warnings.append(f"{unit.name} was restarted with allow_stopping_instances=true: {decision.reason}")

    if decision.action in (RAISED_LIVE, UNCHANGED) and not outcome.persistent:
        warnings.append(
            f"{unit.name}'s daemon runs with {format_limit(decision.target)} until it restarts; then systemd gives it "
            f"the unit's LimitMEMLOCK={spell_limit(unit.limit)}. Write the drop-in (vault_mlock.lxd.memlock_dropin)"
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
