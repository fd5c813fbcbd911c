# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The memlock probe of an LXD host: what every guest's Vault gets, read where it is cheapest.

- One API call lists the instances with their expanded configuration.
- On the member that runs the probe, one scan of /proc (_host_scan) finds each guest's init,
  its monitor and its Vault processes; their limits are read through the host's /proc, and what
  LXD gave the guest at its start is read from its monitor.
- Where no Vault process runs, or one runs that locks nothing (OpenBao; Vault with disable_mlock),
  one command inside the guest asks its systemd about Vault's units (for the latter: its
  MemorySwapMax); but not where no process runs and the guest's files, read through the host's
  /proc/INIT/root (_guest_unit_files), name none of the units. Such a process is judged on swap: the host's /proc/swaps and its cgroups'
  memory.swap.max, read from the host (_swap).
- Every other guest (remote endpoint, other cluster member, virtual machine) is read by one
  command inside it that does both. That command's shell inherits its LXD daemon's limit as it is
  now: so another cluster member's daemon limit is learnt from its guests.

All commands start at once through the API (_lxd_api's execute_many) and share one deadline:
hung guests cost the timeout once, not once each. The facts of each guest then go to
_probe_report, which judges them.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import (
    DEFAULT_UNITS,
    parse_units,
    units_command,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_unit_files import units_from_files
from ansible_collections.vault_mlock.lxd.plugins.module_utils._host_scan import (
    LXC_CONF_DIRS,
    HostScan,
    daemon_comm,
    local_daemon,
    lxc_conf_path,
    read_start_limit,
    scan_host,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_transport import is_remote
from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import (
    DEFAULT_PROCESS_NAMES,
    FactsError,
    ProcDir,
    ProcSnapshot,
    asks_units,
    exec_command,
    gather_machine,
    units_to_ask,
    units_with_configs,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._probe_report import (
    CONTAINER,
    DaemonFacts,
    Gathered,
    InstanceRecord,
    MemberDaemons,
    ProbeReport,
    build_report,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._capability_names import CAP_SYS_RESOURCE
from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import (
    has_capability,
    parse_meminfo_total,
    read_memlock_limit,
    read_status,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import memlock_report
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import Required, summarize

RUNNING = "Running"
FROZEN = "Frozen"

PROC = "proc"
EXEC = "exec"
AUTO = "auto"
METHODS = (AUTO, PROC, EXEC)


class MemlockProbe:
    """Reads and judges every instance of one project. Read-only."""

    def __init__(self, api, project: str = "default", endpoint: str = "", proc_root: str = "/proc",
                 process_names: Sequence[str] = DEFAULT_PROCESS_NAMES, units: Sequence[str] = DEFAULT_UNITS,
                 required: Optional[Required] = None, method: str = AUTO,
                 lxc_conf_dirs: Optional[Mapping[str, str]] = None) -> None:
        self.api = api
        self.project = project
        self.endpoint = endpoint
        self.proc_root = proc_root
        self.process_names = tuple(process_names)
        self.units = tuple(units)
        self.required = required
        self.method = method
        self.lxc_conf_dirs = dict(LXC_CONF_DIRS if lxc_conf_dirs is None else lxc_conf_dirs)
        # Where every guest's lxc.conf lies, in CONF_ROOT/MONITOR_NAME/lxc.conf; None until known.
        self._conf_root: Optional[str] = None

    # --- the daemon and the host's /proc ---------------------------------------------------

    def _daemon(self) -> Tuple[DaemonFacts, Optional[HostScan]]:
        environment = (self.api.server_info() or {}).get("environment") or {}
        pid = environment.get("server_pid")
        server_name = environment.get("server_name") or ""
        clustered = bool(environment.get("server_clustered"))
        local = not is_remote(self.endpoint) and local_daemon(self.proc_root, pid)
        memlock = scan = can_raise = memory = None
        if local:
            try:
                memlock = read_memlock_limit(pid, self.proc_root)
                can_raise = has_capability(read_status(pid, self.proc_root).cap_effective, CAP_SYS_RESOURCE)
                memory = _physical_memory(self.proc_root)
                self._conf_root = self.lxc_conf_dirs.get(daemon_comm(self.proc_root, pid))
                if self.method != EXEC:
                    scan = scan_host(self.proc_root, os.path.dirname(self.endpoint), pid, self.process_names)
            except (OSError, ValueError):
                local, memlock, scan, can_raise = False, None, None, None
        daemon = DaemonFacts(pid=pid, server_name=server_name, clustered=clustered, local=local,
                             memlock=memlock_report(memlock), can_raise=can_raise, physical_memory=memory)
        return daemon, scan

    # --- one guest ----------------------------------------------------------------------------

    def _through_proc(self, name: str, scan: HostScan) -> Gathered:
        init = scan.inits[name]
        source = ProcDir(self.proc_root, pid1=init, pids=scan.processes.get(init, []), host_view=True)
        try:
            facts = gather_machine(source, self.process_names, with_swap=True)
        except FactsError as exc:
            return Gathered(source=PROC, error=f"{exc} (the guest may have stopped meanwhile)")
        monitor = scan.monitors[name]
        if self._conf_root is None:
            # LXD's lxc.conf lies beside each guest's lxc.log, in LOG_ROOT/NAME: found once through one monitor's
            # open files.
            path = lxc_conf_path(self.proc_root, monitor)
            self._conf_root = os.path.dirname(os.path.dirname(path)) if path else ""
        conf = os.path.join(self._conf_root, name, "lxc.conf") if self._conf_root else None
        return Gathered(source=PROC, facts=facts, at_start=read_start_limit(self.proc_root, monitor, conf))

    @staticmethod
    def _output(result) -> Tuple[Optional[str], str]:
        """(stdout, error or stderr detail) of one of execute_many's results."""
        if isinstance(result, Exception):  # a vanished guest, a refused or hung command: that guest's error
            return None, f"running a command inside the guest failed: {_reason(result)}"
        _exit_code, stdout, stderr = result
        detail = f" (stderr: {stderr.strip()[:200]})" if stderr and stderr.strip() else ""
        return stdout or "", detail

    def _through_exec(self, result) -> Gathered:
        stdout, detail = self._output(result)
        if stdout is None:
            return Gathered(source=EXEC, error=detail)
        try:
            snapshot = ProcSnapshot.parse(stdout)
            facts = gather_machine(snapshot, self.process_names, with_swap=True)
        except FactsError as exc:
            return Gathered(source=EXEC, error=f"reading /proc inside the guest failed: {exc}{detail}")
        gathered = Gathered(source=EXEC, facts=facts, exec_memlock=snapshot.exec_memlock)
        return self._with_units(gathered, stdout, detail, self.units) if asks_units(facts) else gathered

    def _units_answer(self, found: Gathered, result, units: Sequence[str]) -> Gathered:
        stdout, detail = self._output(result)
        if stdout is None:
            # A running process is judged without its unit; only where none runs is the unit the verdict.
            return found if found.facts.processes else found.but(error=detail)
        gathered = self._with_units(found, stdout, detail, units)
        # A Vault unit's configuration, read in the guest's root through its init, may say disable_mlock.
        root = os.path.join(self.proc_root, str(found.facts.pid1.host_pid), "root")
        return gathered.but(units=units_with_configs(gathered.units, root))

    def _with_units(self, gathered: Gathered, stdout: str, detail: str, units: Sequence[str]) -> Gathered:
        try:
            return gathered.but(units=parse_units(stdout, units))
        except ValueError as exc:
            if gathered.facts is not None and gathered.facts.processes:
                return gathered
            return gathered.but(error=f"asking the guest's systemd about {', '.join(units)} failed: {exc}"
                                      f"{detail}")

    # --- the whole project -------------------------------------------------------------------

    def run(self, names: Optional[Sequence[str]] = None) -> ProbeReport:
        daemon, scan = self._daemon()
        records = [InstanceRecord.from_api(data, self.project) for data in self.api.list_instances()]
        wanted = _unique(names) if names else [record.name for record in records]
        by_name = {record.name: record for record in records}
        gathered: Dict[str, Gathered] = {}
        jobs: List[Tuple[str, List[str], Callable[[object], Gathered]]] = []  # (guest, argv, reading of its result)
        for name in wanted:
            record = by_name.get(name)
            if record is None or record.status not in (RUNNING, FROZEN):
                continue
            if self._shows_locally(record, daemon, scan):
                found = gathered[name] = self._through_proc(record.monitor_name, scan)
                if found.facts is not None and asks_units(found.facts):
                    units = units_to_ask(found.facts, self.units)
                    if self.method == PROC:
                        gathered[name] = found.but(units_not_asked="with method=proc no guest's systemd is asked")
                    elif record.status == FROZEN:
                        gathered[name] = found.but(units_not_asked="it is frozen, so its systemd cannot be asked")
                    elif units:
                        known = None if found.facts.processes else units_from_files(
                            os.path.join(self.proc_root, str(scan.inits[record.monitor_name]), "root"), units,
                            self.process_names)
                        if known is not None:  # its files name none of the units: nothing to ask
                            gathered[name] = found.but(units=known)
                        else:
                            jobs.append((name, units_command(units, self.process_names),
                                         lambda result, found=found, units=units: self._units_answer(found, result,
                                                                                                     units)))
            elif self.method == PROC:
                gathered[name] = Gathered(error="its processes do not show in this host's /proc "
                                                "(another cluster member, a virtual machine or a remote daemon); "
                                                "use method=auto or method=exec")
            elif record.status == FROZEN:
                gathered[name] = Gathered(error="it is frozen, so nothing can run inside it to read its limits")
            else:
                jobs.append((name, exec_command(self.process_names, self.units), self._through_exec))
        if jobs:
            # All start at once and share the API's timeout: hung guests cost it once, not once each.
            results = self.api.execute_many([(name, argv) for name, argv, _read in jobs])
            for (name, _argv, read), result in zip(jobs, results):
                gathered[name] = read(result)
        members = member_daemons(by_name, gathered)
        reports = [build_report(name=name, project=self.project, record=by_name.get(name),
                                gathered=gathered.get(name), daemon=daemon, process_names=self.process_names,
                                unit_names=self.units, required=self.required, member_daemons=members)
                   for name in wanted]
        return ProbeReport(endpoint=self.endpoint, project=self.project, daemon=daemon, instances=reports,
                           summary=summarize(report.verdict for report in reports))

    def _shows_locally(self, record: InstanceRecord, daemon: DaemonFacts, scan: Optional[HostScan]) -> bool:
        if scan is None or record.type != CONTAINER:
            return False
        if daemon.clustered and record.location and record.location != daemon.server_name:
            return False
        return record.monitor_name in scan.inits


def member_daemons(records: Dict[str, InstanceRecord], gathered: Dict[str, Gathered]) -> MemberDaemons:
    """Each cluster member's daemon limit as it is now, from the commands run in its containers.

    A command's shell inherits its daemon's limit, unless the guest has limits.kernel.memlock.
    """
    found: MemberDaemons = {}
    for name, facts in gathered.items():
        record = records[name]
        if (facts.exec_memlock is not None and record.type == CONTAINER
                and record.limits_kernel_memlock is None):
            found.setdefault(record.location, facts.exec_memlock)
    return found


def _physical_memory(proc_root: str) -> Optional[int]:
    try:
        with open(os.path.join(proc_root, "meminfo"), encoding="ascii") as meminfo:
            return parse_meminfo_total(meminfo.read())
    except (OSError, ValueError):
        return None


def _unique(names: Sequence[str]) -> List[str]:
    seen: Dict[str, None] = {}
    for name in names:
        seen.setdefault(name, None)
    return list(seen)


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
