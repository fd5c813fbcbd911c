# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The memlock probe of an LXD host: every guest's real limit, read where it is cheapest.

- One API call lists the instances with their expanded configuration.
- On the member that runs the probe, one scan of /proc (_host_scan) finds each guest's init and
  its Vault processes; their limits are read through the host's /proc.
- Every other guest (remote endpoint, other cluster member, virtual machine) is read by
  running a small sh script inside it through the API (_lxd_api), eight at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._host_scan import HostScan, local_daemon, scan_host
from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_api import is_remote
from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import (
    DEFAULT_PROCESS_NAMES,
    FactsError,
    MachineFacts,
    Pid1Facts,
    ProcDir,
    ProcessFacts,
    ProcSnapshot,
    exec_command,
    gather_machine,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import read_memlock_limit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    MemlockLimit,
    MemlockReport,
    Size,
    SizeError,
    memlock_report,
    parse_limit,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import (
    CONTAINER,
    ERROR,
    VerdictFacts,
    judge,
    summarize,
)

RUNNING = "Running"
FROZEN = "Frozen"

PROC = "proc"
EXEC = "exec"
AUTO = "auto"
METHODS = (AUTO, PROC, EXEC)


@dataclass(frozen=True)
class InstanceRecord:
    """What the instances listing says about one instance."""

    name: str
    project: str
    type: str
    status: str
    location: str
    privileged: bool
    limits_kernel_memlock: Optional[str]

    @classmethod
    def from_api(cls, data: dict, project: str) -> InstanceRecord:
        config = data.get("expanded_config") or {}
        return cls(
            name=data["name"],
            project=data.get("project") or project,
            type=data.get("type") or CONTAINER,
            status=data.get("status") or "",
            location=data.get("location") or "",
            privileged=str(config.get("security.privileged", "false")).lower() == "true",
            limits_kernel_memlock=config.get("limits.kernel.memlock"),
        )

    @property
    def monitor_name(self) -> str:
        """The name its [lxc monitor] process carries: PROJECT_NAME outside the default project."""
        return self.name if self.project == "default" else f"{self.project}_{self.name}"


@dataclass(frozen=True)
class DaemonFacts:
    """The LXD daemon that answered: its PID, cluster member name and (when local) its memlock limit."""

    pid: Optional[int]
    server_name: str
    clustered: bool
    local: bool
    memlock: Optional[MemlockReport]


@dataclass(frozen=True)
class InstanceReport:
    name: str
    project: str
    type: str
    status: str
    location: str
    privileged: Optional[bool]
    limits_kernel_memlock: Optional[str]
    source: Optional[str]  # "proc" (read through the host's /proc), "exec" (read inside the guest) or None
    in_user_namespace: Optional[bool]
    pid1: Optional[Pid1Facts]
    processes: List[ProcessFacts]
    daemon_memlock: Optional[MemlockReport]  # what the guest's LXD daemon passes on now
    memlock_after_restart: Optional[MemlockReport]  # what PID 1 would get on the guest's next start
    daemon_limit_differs: Optional[bool]
    verdict: str
    message: str


@dataclass(frozen=True)
class ProbeReport:
    endpoint: str
    project: str
    daemon: DaemonFacts
    instances: List[InstanceReport]
    summary: Dict[str, int]


def parse_kernel_memlock(value: Optional[str]) -> Optional[MemlockLimit]:
    """limits.kernel.memlock (bytes, 'unlimited' or SOFT:HARD) as a limit; None when unset or unreadable."""
    if value is None or not str(value).strip():
        return None
    try:
        return parse_limit(str(value), "limits.kernel.memlock")
    except SizeError:
        return None


@dataclass
class _Gathered:
    source: Optional[str] = None
    facts: Optional[MachineFacts] = None
    daemon_memlock: Optional[MemlockLimit] = None
    error: Optional[str] = None


class MemlockProbe:
    """Reads and judges every instance of one project. Read-only."""

    def __init__(self, api, project: str = "default", endpoint: str = "", proc_root: str = "/proc",
                 process_names: Sequence[str] = DEFAULT_PROCESS_NAMES, required_given: bool = False,
                 required_bytes: Size = None, method: str = AUTO) -> None:
        self.api = api
        self.project = project
        self.endpoint = endpoint
        self.proc_root = proc_root
        self.process_names = tuple(process_names)
        self.required_given = required_given
        self.required_bytes = required_bytes
        self.method = method

    # --- the daemon and the host's /proc ---------------------------------------------------

    def _daemon(self) -> Tuple[DaemonFacts, Optional[HostScan]]:
        environment = (self.api.server_info() or {}).get("environment") or {}
        pid = environment.get("server_pid")
        server_name = environment.get("server_name") or ""
        clustered = bool(environment.get("server_clustered"))
        local = not is_remote(self.endpoint) and local_daemon(self.proc_root, pid)
        memlock = scan = None
        if local:
            try:
                memlock = read_memlock_limit(pid, self.proc_root)
                if self.method != EXEC:
                    scan = scan_host(self.proc_root, os.path.dirname(self.endpoint), pid, self.process_names)
            except (OSError, ValueError):
                local, memlock, scan = False, None, None
        return DaemonFacts(pid, server_name, clustered, local, memlock_report(memlock)), scan

    # --- one guest ----------------------------------------------------------------------------

    def _through_proc(self, init: int, scan: HostScan) -> _Gathered:
        source = ProcDir(self.proc_root, pid1=init, pids=scan.processes.get(init, []), host_view=True)
        try:
            return _Gathered(PROC, gather_machine(source, self.process_names))
        except FactsError as exc:
            return _Gathered(PROC, error=f"{exc} (the guest may have stopped meanwhile)")

    def _through_exec(self, record: InstanceRecord, result) -> _Gathered:
        if isinstance(result, Exception):  # a vanished guest, a refused or hung command: that guest's error
            return _Gathered(EXEC, error=f"running a command inside the guest failed: {_reason(result)}")
        _exit_code, stdout, stderr = result
        try:
            snapshot = ProcSnapshot.parse(stdout or "")
            facts = gather_machine(snapshot, self.process_names)
        except FactsError as exc:
            detail = f" (stderr: {stderr.strip()[:200]})" if stderr and stderr.strip() else ""
            return _Gathered(EXEC, error=f"reading /proc inside the guest failed: {exc}{detail}")
        # An exec'd process inherits the LXD daemon's limit as it is now (limits.kernel.memlock
        # aside), which is what the guest's next start would get from the daemon.
        daemon = snapshot.exec_memlock if record.limits_kernel_memlock is None and record.type == CONTAINER else None
        return _Gathered(EXEC, facts, daemon)

    # --- the whole project -------------------------------------------------------------------

    def run(self, names: Optional[Sequence[str]] = None) -> ProbeReport:
        daemon, scan = self._daemon()
        records = [InstanceRecord.from_api(data, self.project) for data in self.api.list_instances()]
        wanted = _unique(names) if names else [record.name for record in records]
        by_name = {record.name: record for record in records}
        gathered: Dict[str, _Gathered] = {}
        to_exec = []
        for name in wanted:
            record = by_name.get(name)
            if record is None or record.status not in (RUNNING, FROZEN):
                continue
            init = self._local_init(record, daemon, scan)
            if init is not None:
                gathered[name] = self._through_proc(init, scan)
            elif self.method == PROC:
                gathered[name] = _Gathered(error="its processes do not show in this host's /proc "
                                                 "(another cluster member, a virtual machine or a remote daemon); "
                                                 "use method=auto or method=exec")
            elif record.status == FROZEN:
                gathered[name] = _Gathered(error="it is frozen, so nothing can run inside it to read its limits")
            else:
                to_exec.append(record)
        if to_exec:
            # All start at once and share the API's timeout: hung guests cost it once, not once each.
            results = self.api.execute_many([(record.name, exec_command(self.process_names)) for record in to_exec])
            for record, result in zip(to_exec, results):
                gathered[record.name] = self._through_exec(record, result)
        # What each other member's daemon hands out now, as a command run there inherited it.
        member_daemons = {by_name[name].location: found.daemon_memlock for name, found in gathered.items()
                          if found.daemon_memlock is not None}
        reports = [self._report(name, by_name.get(name), gathered.get(name), daemon, member_daemons)
                   for name in wanted]
        return ProbeReport(self.endpoint, self.project, daemon, reports, summarize(r.verdict for r in reports))

    def _local_init(self, record: InstanceRecord, daemon: DaemonFacts, scan: Optional[HostScan]) -> Optional[int]:
        if scan is None or record.type != CONTAINER:
            return None
        if daemon.clustered and record.location and record.location != daemon.server_name:
            return None
        return scan.inits.get(record.monitor_name)

    def _report(self, name: str, record: Optional[InstanceRecord], gathered: Optional[_Gathered],
                daemon: DaemonFacts, member_daemons: Dict[str, MemlockLimit]) -> InstanceReport:
        if record is None:
            message = f"guest {name}: no such instance in project {self.project!r}"
            return InstanceReport(name, self.project, "", "", "", None, None, None, None, None, [], None, None,
                                  None, ERROR, message)
        kernel_memlock = parse_kernel_memlock(record.limits_kernel_memlock)
        gathered = gathered or _Gathered()
        daemon_memlock = gathered.daemon_memlock
        if daemon_memlock is None and self._same_member(record, daemon):
            daemon_memlock = _limit(daemon.memlock)
        if daemon_memlock is None:  # a guest of another member (or of a remote daemon) that gave no figure itself
            daemon_memlock = member_daemons.get(record.location)
        after_restart, after_source = None, ""
        if record.type == CONTAINER:
            if kernel_memlock is not None:
                after_restart, after_source = kernel_memlock, "limits.kernel.memlock"
            elif daemon_memlock is not None:
                after_restart, after_source = daemon_memlock, "the LXD daemon"
        facts = gathered.facts
        running = record.status in (RUNNING, FROZEN)
        pid1 = facts.pid1 if facts else None
        verdict_facts = VerdictFacts(
            subject=f"guest {name}",
            pid1_memlock=pid1.memlock.limit if pid1 else None,
            processes=tuple(facts.processes) if facts else (),
            process_names=self.process_names,
            required_given=self.required_given,
            required_bytes=self.required_bytes,
            in_user_namespace=facts.in_user_namespace if facts else None,
            kind=record.type,
            running=running,
            status=record.status,
            error=gathered.error,
            after_restart=after_restart,
            after_restart_source=after_source,
            limits_kernel_memlock=kernel_memlock,
            daemon_memlock=daemon_memlock,
        )
        verdict, message = judge(verdict_facts)
        differs = None
        if pid1 is not None and daemon_memlock is not None and record.type == CONTAINER:
            differs = pid1.memlock.limit != daemon_memlock
        return InstanceReport(
            name=name,
            project=record.project,
            type=record.type,
            status=record.status,
            location=record.location,
            privileged=record.privileged,
            limits_kernel_memlock=record.limits_kernel_memlock,
            source=gathered.source,
            in_user_namespace=verdict_facts.in_user_namespace,
            pid1=pid1,
            processes=list(verdict_facts.processes),
            daemon_memlock=memlock_report(daemon_memlock),
            memlock_after_restart=memlock_report(after_restart),
            daemon_limit_differs=differs,
            verdict=verdict,
            message=message,
        )

    def _same_member(self, record: InstanceRecord, daemon: DaemonFacts) -> bool:
        return not daemon.clustered or not record.location or record.location == daemon.server_name


def _limit(report: Optional[MemlockReport]) -> Optional[MemlockLimit]:
    return None if report is None else report.limit


def _unique(names: Sequence[str]) -> List[str]:
    seen: Dict[str, None] = {}
    for name in names:
        seen.setdefault(name, None)
    return list(seen)


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
