# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The memlock probe of a plain LXC or Proxmox VE host: the same facts and verdicts as for LXD guests.

There is no daemon and no API. The containers are those of the engine (every lxcpath's
directories, or /etc/pve/lxc); ``lxc-info`` tells each one's state and init PID; the init's parent
is its monitor, the lxc-start that started it (``lxc-start -F`` under lxc@NAME.service or
pve-container@VMID.service, ``[lxc monitor] LXCPATH NAME`` when daemonized), which keeps the limit
it had then. What the container got at its start is ``lxc.prlimit.memlock`` of its configuration as
it was then, else that monitor's limit. The configuration as it was then is: on Proxmox VE,
/var/lib/lxc/VMID/config (pct start writes it); on plain LXC, the configuration file when it has not
changed since the monitor started (else it is unknown, and PID 1's hard limit speaks, as for a guest
read from inside). What a start now gives is ``lxc.prlimit.memlock`` as configured now, else what
systemd gives the starting unit now (its LimitMEMLOCK, lowered to systemd's own ceiling).

The guest's processes are read through the host's /proc, as for LXD guests (_probe); the commands
inside (Vault's units) run through ``lxc-attach`` or ``pct exec``, all at once, with one deadline.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capability_names import CAP_SYS_RESOURCE
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import PVE, EngineError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._liblxc import (
    FROZEN as LXC_FROZEN,
    RUNNING as LXC_RUNNING,
    Container,
    LiblxcEngine,
    open_liblxc,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._lxc_config import (
    LXC_SYNTAX,
    PRLIMIT_MEMLOCK,
    find_settings,
    liblxc_limit,
    split_lines,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import units_command
from ansible_collections.vault_mlock.lxd.plugins.module_utils._host_scan import (
    StartLimit,
    add_by_namespace,
    init_namespaces,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import (
    FactsError,
    ProcDir,
    asks_units,
    gather_machine,
    units_to_ask,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._probe import (
    FROZEN,
    PROC,
    RUNNING,
    MemlockProbe,
    _physical_memory,
    _unique,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._probe_report import (
    CONTAINER,
    DaemonFacts,
    Gathered,
    InstanceRecord,
    ProbeReport,
    Starter,
    build_report,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import (
    comm_matches,
    has_capability,
    parse_stat,
    read_memlock_limit,
    read_status,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._service_limit import read_ceiling
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    MemlockLimit,
    SizeError,
    lower_limit,
    memlock_report,
    systemd_limit,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import summarize

STATUS = {LXC_RUNNING: RUNNING, LXC_FROZEN: FROZEN, "STOPPED": "Stopped"}
STARTED_CONFIG = "/var/lib/lxc/{name}/config"  # what pct start wrote from /etc/pve/lxc/VMID.conf


def liblxc_starter(unit: Optional[str]) -> Starter:
    """How a liblxc container's limit at start is named: its lxc.prlimit.memlock, else its unit's lxc-start."""
    return Starter(setting=PRLIMIT_MEMLOCK, process=unit or "lxc-start", giver="lxc-start",
                   unknown_start="its configuration changed since it started")


def execute_many(jobs: Sequence[Tuple[str, List[str]]], timeout: float) -> List[object]:
    """Run every command at once; (rc, stdout, stderr) each, or the exception of one that failed or hung."""
    started = []
    for _name, argv in jobs:
        try:
            # All at once under one deadline, which AnsibleModule.run_command (one command, no deadline) cannot do.
            started.append(subprocess.Popen(  # pylint: disable=ansible-bad-function
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        except OSError as exc:
            started.append(exc)
    deadline = time.monotonic() + timeout
    results: List[object] = []
    for process in started:
        if isinstance(process, Exception):
            results.append(process)
            continue
        try:
            out, err = process.communicate(timeout=max(0.1, deadline - time.monotonic()))
            results.append((process.returncode, out, err))
        except subprocess.TimeoutExpired as exc:
            process.kill()
            process.communicate()
            results.append(TimeoutError(f"no answer within {timeout:g} s ({exc.cmd[0]})"))
    return results


def parse_started_prlimit(text: str) -> Optional[MemlockLimit]:
    """lxc.prlimit.memlock of a liblxc configuration text (the last line counts, as for liblxc); None when unset."""
    found = find_settings(split_lines(text), PRLIMIT_MEMLOCK, LXC_SYNTAX)
    if not found:
        return None
    return liblxc_limit(found[-1].value)


def _stat_fields(proc_root: str, pid: int) -> List[str]:
    with open(os.path.join(proc_root, str(pid), "stat"), encoding="utf-8", errors="replace") as stat:
        return stat.read().rpartition(")")[2].split()


def started_at(proc_root: str, pid: int) -> float:
    """When a process started, in seconds since the epoch (its stat's starttime and the boot time)."""
    ticks = int(_stat_fields(proc_root, pid)[19])
    with open(os.path.join(proc_root, "stat"), encoding="ascii") as stat:
        btime = next(int(line.split()[1]) for line in stat if line.startswith("btime "))
    return btime + ticks / os.sysconf("SC_CLK_TCK")


class LiblxcProbe(MemlockProbe):
    """Reads and judges every container of a liblxc engine. Read-only."""

    def __init__(self, engine: LiblxcEngine, timeout: float = 30, **kwargs) -> None:
        super().__init__(api=None, project="", endpoint="", **kwargs)
        self.engine = engine
        self.timeout = timeout
        self._ceiling = None

    # --- the starting unit ----------------------------------------------------------------------

    def _unit_now(self, unit: Optional[str]) -> Optional[MemlockLimit]:
        """What systemd gives ``unit``'s lxc-start if it starts now: its LimitMEMLOCK, lowered to systemd's ceiling."""
        if unit is None:
            return None
        rc, out, _err = self.engine.run(["systemctl", "show", "--property=LimitMEMLOCKSoft",
                                         "--property=LimitMEMLOCK", unit], 10)
        shown = dict(line.partition("=")[::2] for line in out.splitlines())
        try:
            soft, hard = (systemd_limit(shown[key]).hard for key in ("LimitMEMLOCKSoft", "LimitMEMLOCK"))
        except (KeyError, SizeError):
            return None
        if rc != 0:
            return None
        if self._ceiling is None:
            self._ceiling = read_ceiling(self.proc_root)
        return lower_limit(MemlockLimit(soft, hard), self._ceiling.hard_bytes)

    # --- one container ------------------------------------------------------------------------

    def _monitor(self, init: int) -> Tuple[int, str]:
        monitor = int(_stat_fields(self.proc_root, init)[1])
        with open(os.path.join(self.proc_root, str(monitor), "cgroup"), encoding="utf-8", errors="replace") as cgroup:
            return monitor, cgroup.read().splitlines()[0].split(":", 2)[2]

    def _at_start(self, container: Container, monitor: int, unit: str,
                  configured: Optional[MemlockLimit]) -> Optional[StartLimit]:
        monitor_limit = read_memlock_limit(monitor, self.proc_root)
        if self.engine.name == PVE:
            try:
                with open(STARTED_CONFIG.format(name=container.name), encoding="utf-8", errors="replace") as conf:
                    started = parse_started_prlimit(conf.read())
            except (OSError, ValueError):
                return None
        elif os.stat(container.config).st_mtime > started_at(self.proc_root, monitor):
            return None  # the configuration changed since the start: what it said then is unknown
        else:
            started = configured
        if started is not None:
            return StartLimit(started, PRLIMIT_MEMLOCK)
        return StartLimit(monitor_limit, unit)

    def _processes(self, inits: Dict[str, int]) -> Dict[int, List[int]]:
        """Each init's processes named like process_names: those in its PID namespace."""
        candidates = []
        for entry in os.listdir(self.proc_root):
            if not entry.isdigit():
                continue
            try:
                with open(os.path.join(self.proc_root, entry, "stat"), encoding="utf-8", errors="replace") as stat:
                    comm, _ppid = parse_stat(stat.read())
            except (OSError, ValueError):
                continue  # gone meanwhile
            if comm_matches(comm, self.process_names):
                candidates.append(int(entry))
        found: Dict[int, List[int]] = {init: [] for init in inits.values()}
        add_by_namespace(self.proc_root, init_namespaces(self.proc_root, inits.values()), candidates, found)
        return found

    # --- every container ------------------------------------------------------------------------

    def run(self, names: Optional[Sequence[str]] = None) -> ProbeReport:
        containers = {container.name: container for container in self.engine.containers()}
        wanted = _unique(names) if names else list(containers)
        memory = _physical_memory(self.proc_root)
        records: Dict[str, InstanceRecord] = {}
        daemons: Dict[str, DaemonFacts] = {}
        starters: Dict[str, Starter] = {}
        gathered: Dict[str, Gathered] = {}
        inits: Dict[str, int] = {}
        for name in wanted:
            container = containers.get(name)
            if container is None:
                continue
            try:
                # The configuration first: a value liblxc refuses is named with its file and line.
                raw, configured = self.engine.read_limit(name)
                state, init = self.engine.state(container)
            except EngineError as exc:
                state, init, raw, configured = "", None, None, None
                gathered[name] = Gathered(error=str(exc))
            status = STATUS.get(state, state.capitalize())
            records[name] = InstanceRecord(name=name, project=container.lxcpath, type=CONTAINER, status=status,
                                           location="", privileged=self._privileged(container), limits_kernel_memlock=raw)
            monitor, cgroup = None, ""
            if init is not None and name not in gathered:
                try:
                    monitor, cgroup = self._monitor(init)
                    inits[name] = init
                except (OSError, ValueError, IndexError) as exc:
                    gathered[name] = Gathered(error=f"its monitor cannot be read ({exc}); it may have stopped")
            unit = self.engine.start_unit(container, cgroup)
            starters[name] = liblxc_starter(unit)
            can_raise = None
            if monitor is not None:
                try:
                    can_raise = has_capability(read_status(monitor, self.proc_root).cap_effective, CAP_SYS_RESOURCE)
                    gathered[name] = Gathered(at_start=self._at_start(container, monitor, unit or "lxc-start",
                                                                      configured))
                except (OSError, ValueError) as exc:
                    gathered[name] = Gathered(error=f"its monitor cannot be read ({exc}); it may have stopped")
            daemons[name] = DaemonFacts(pid=monitor, server_name="", clustered=False, local=True,
                                        memlock=memlock_report(self._unit_now(unit)), can_raise=can_raise,
                                        physical_memory=memory)
        processes = self._processes(inits)
        jobs = []
        for name, init in inits.items():
            if gathered[name].error is not None:
                continue
            source = ProcDir(self.proc_root, pid1=init, pids=processes.get(init, []), host_view=True)
            try:
                facts = gather_machine(source, self.process_names, with_swap=True)
            except FactsError as exc:
                gathered[name] = Gathered(source=PROC, error=f"{exc} (the container may have stopped meanwhile)")
                continue
            found = gathered[name] = gathered[name].but(source=PROC, facts=facts)
            if asks_units(facts):
                units = units_to_ask(facts, self.units)
                if self.method == PROC:
                    gathered[name] = found.but(units_not_asked="with method=proc no guest's systemd is asked")
                elif records[name].status == FROZEN:
                    gathered[name] = found.but(units_not_asked="it is frozen, so its systemd cannot be asked")
                elif units:
                    jobs.append((name, units, found))
        if jobs:
            argvs = [(name, self.engine.exec_argv(containers[name], units_command(units, self.process_names)))
                     for name, units, _f in jobs]
            for (name, units, found), result in zip(jobs, execute_many(argvs, self.timeout)):
                gathered[name] = self._units_answer(found, result, units)
        reports = [build_report(name=name, project=records[name].project if name in records else "",
                                record=records.get(name), gathered=gathered.get(name),
                                daemon=daemons.get(name) or _NO_DAEMON, process_names=self.process_names,
                                unit_names=self.units, required=self.required,
                                starter=starters.get(name) or liblxc_starter(None))
                   for name in wanted]
        host = DaemonFacts(pid=None, server_name=socket.gethostname(), clustered=False, local=True, memlock=None,
                           physical_memory=memory)
        return ProbeReport(endpoint="", project="", daemon=host, instances=reports,
                           summary=summarize(report.verdict for report in reports))

    def _privileged(self, container: Container) -> bool:
        """Whether the container runs without a user namespace: no lxc.idmap (Proxmox: no 'unprivileged: 1')."""
        try:
            with open(container.config, encoding="utf-8", errors="replace") as conf:
                lines = split_lines(conf.read())
        except OSError:
            return False
        if self.engine.name == PVE:
            return not any(line.replace(" ", "") == "unprivileged:1" for line in lines)
        return not find_settings(lines, "lxc.idmap", LXC_SYNTAX)


_NO_DAEMON = DaemonFacts(pid=None, server_name="", clustered=False, local=True, memlock=None)


def liblxc_probe(engine_name: str, params: dict, options) -> ProbeReport:
    """memlock_probe's report for a plain LXC or Proxmox VE host (``options``: _vault_options.vault_options())."""
    engine = open_liblxc(engine_name, params)
    probe = LiblxcProbe(engine, timeout=params["timeout"], process_names=options.process_names,
                        units=options.units, required=options.required,
                        method="auto" if params["method"] == "exec" else params["method"])
    return probe.run(params["instances"])
