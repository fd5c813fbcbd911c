# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The memlock probe of an LXD host: every guest's real limit, read where it is cheapest.

- One API call lists the instances with their expanded configuration.
- On the member that runs the probe, one scan of /proc finds each guest's init (the child
  of its ``[lxc monitor] LXD_DIR/containers NAME`` process) and its Vault processes (same
  PID namespace as that init); their limits are read through the host's /proc.
- Every other guest (remote endpoint, other cluster member, virtual machine) is read by
  running a small sh script inside it through the API, eight at a time.

Only LxdApi and connect() touch pylxd; MemlockProbe works with anything offering
server_info(), list_instances() and execute(name, argv).
"""

from __future__ import annotations

import inspect
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote

from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import (
    DEFAULT_PROCESS_NAMES,
    FactsError,
    MachineFacts,
    MemlockReport,
    Pid1Facts,
    ProcDir,
    ProcessFacts,
    ProcSnapshot,
    exec_command,
    gather_machine,
    memlock_report,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import (
    comm_matches,
    parse_cmdline,
    parse_stat,
    read_memlock_limit,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, Size, SizeError, parse_limit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import (
    CONTAINER,
    ERROR,
    VerdictFacts,
    judge,
    summarize,
)

try:
    import pylxd
    from pylxd import exceptions as pylxd_exceptions

    HAS_PYLXD = True
    PYLXD_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the target
    HAS_PYLXD = False
    PYLXD_IMPORT_ERROR = exc

SOCKET_PATHS = (
    "/var/lib/lxd/unix.socket",
    "/var/snap/lxd/common/lxd/unix.socket",
    "/var/lib/incus/unix.socket",
)
DAEMON_NAMES = ("lxd", "incusd")
MONITOR_PREFIX = "[lxc monitor] "
RUNNING = "Running"
FROZEN = "Frozen"
EXEC_WORKERS = 8

PROC = "proc"
EXEC = "exec"
AUTO = "auto"
METHODS = (AUTO, PROC, EXEC)


class LxdError(Exception):
    """The LXD daemon cannot be reached or answered with an error. The message says which and why."""


def socket_candidates(environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """Where an LXD (or Incus) daemon's socket is looked for, in this order."""
    environ = os.environ if environ is None else environ
    candidates = []
    if environ.get("LXD_DIR"):
        candidates.append(os.path.join(environ["LXD_DIR"], "unix.socket"))
    candidates.extend(path for path in SOCKET_PATHS if path not in candidates)
    return candidates


def normalize_endpoint(endpoint: Optional[str]) -> Optional[str]:
    """A socket path from 'unix:///path' or 'unix:/path'; URLs and paths unchanged."""
    if not endpoint:
        return None
    for prefix in ("unix://", "unix:"):
        if endpoint.startswith(prefix):
            return endpoint[len(prefix):]
    return endpoint


def is_remote(endpoint: str) -> bool:
    return endpoint.startswith(("https://", "http://"))


class LxdApi:
    """The three calls the probe makes, as plain HTTP requests through pylxd's client.

    A command runs with its output recorded by LXD, fetched and then deleted: no websockets, since
    pylxd's websocket exec loses output or breaks its pipe now and then when several run at once.
    """

    def __init__(self, client, project: str, timeout: Optional[float] = None) -> None:
        self.client = client
        self.project = project
        self.timeout = timeout

    def _params(self, **extra) -> dict:
        return dict(extra, project=self.project)

    def server_info(self) -> dict:
        return self.client.host_info

    def list_instances(self) -> List[dict]:
        try:
            response = self.client.api.instances.get(params=self._params(recursion="1"))
        except pylxd_exceptions.LXDAPIException as exc:
            raise LxdError(f"listing the instances of project {self.project!r} failed: {exc}") from exc
        return response.json()["metadata"] or []

    def _node(self, path: str):
        """The API node of an absolute path such as /1.0/instances/g1/logs/exec_ID.stdout."""
        node = self.client.api
        for segment in path.strip("/").split("/")[1:]:
            node = node[segment]
        return node

    def execute(self, name: str, argv: Sequence[str]) -> Tuple[int, str, str]:
        """(exit code, stdout, stderr) of ``argv`` run inside the guest; raises LxdError when it could not run."""
        body = {"command": list(argv), "environment": {}, "interactive": False, "wait-for-websocket": False,
                "record-output": True}
        wait_seconds = int(self.timeout) if self.timeout else 30
        try:
            response = self.client.api.instances[name].exec.post(params=self._params(), json=body)
            operation = self._node(response.json()["operation"])
            # LXD answers the wait when the command ends or after wait_seconds; the socket may take a little longer.
            done = operation.wait.get(params=self._params(timeout=str(wait_seconds)),
                                      timeout=wait_seconds + 5).json()["metadata"]
            result = done.get("metadata") or {}
            output = {}
            # Fetched and deleted even when the command failed to start: LXD made the files anyway.
            for stream, path in (result.get("output") or {}).items():
                log = self._node(path)
                output[stream] = log.get(params=self._params(), is_api=False).text
                log.delete(params=self._params())
        except pylxd_exceptions.LXDAPIException as exc:
            raise LxdError(f"LXD refused: {exc}") from exc
        if done.get("status_code") != 200:
            reason = done.get("err") or f"still {done.get('status', 'running')} after {wait_seconds}s"
            raise LxdError(f"the command did not complete: {reason}")
        return int(result.get("return", -1)), output.get("1", ""), output.get("2", "")


def client_endpoint(endpoint: str) -> str:
    """The endpoint as pylxd.Client takes it: a socket path as an http+unix:// URL.

    pylxd before 2.3 takes a socket path only in that form (it looked for a regular file there).
    """
    if is_remote(endpoint) or endpoint.startswith("http+unix://"):
        return endpoint
    return "http+unix://" + quote(endpoint, safe="")


def client_knows_projects(client_class) -> bool:
    """Whether this pylxd.Client takes a project (pylxd 2.2.11 and later); older ones get it per request."""
    try:
        return "project" in inspect.signature(client_class).parameters
    except (TypeError, ValueError):
        return False


def connect(endpoint: Optional[str] = None, project: str = "default", client_cert: Optional[str] = None,
            client_key: Optional[str] = None, verify=True, timeout: Optional[float] = None,
            environ: Optional[Mapping[str, str]] = None) -> Tuple[LxdApi, str]:
    """An LxdApi on ``endpoint`` (a socket path or an https:// URL), or on the first local socket that answers."""
    cert = (client_cert, client_key) if client_cert else None
    endpoint = normalize_endpoint(endpoint)
    tried = []
    for candidate in [endpoint] if endpoint else socket_candidates(environ):
        if not is_remote(candidate) and not os.path.exists(candidate):
            tried.append(f"{candidate} (no such socket)")
            continue
        options = {"project": project} if client_knows_projects(pylxd.Client) else {}
        try:
            client = pylxd.Client(endpoint=client_endpoint(candidate), cert=cert, verify=verify, timeout=timeout,
                                  **options)
        except pylxd_exceptions.ClientConnectionFailed as exc:
            tried.append(f"{candidate} ({exc or 'no answer'})")
            continue
        except Exception as exc:  # requests and TLS errors come in many types
            tried.append(f"{candidate} ({type(exc).__name__}: {exc})")
            continue
        if not client.trusted:
            raise LxdError(f"the LXD daemon at {candidate} does not trust this client; "
                           "add its certificate with `lxc config trust add`")
        return LxdApi(client, project, timeout), candidate
    option = "endpoint" if endpoint else "endpoint (none given, so the usual sockets were tried)"
    raise LxdError(f"no LXD daemon answered; tried: {'; '.join(tried)}. Check that LXD runs, or set {option} "
                   "to its unix socket path or https:// URL")


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


def parse_monitor(cmdline: Sequence[str]) -> Optional[Tuple[str, str]]:
    """(lxcpath, name) of an ``[lxc monitor] LXCPATH NAME`` command line; None for any other process."""
    text = " ".join(cmdline).strip()
    if not text.startswith(MONITOR_PREFIX):
        return None
    lxcpath, _sep, name = text[len(MONITOR_PREFIX):].rpartition(" ")
    if not lxcpath or not name:
        return None
    return lxcpath, name


@dataclass
class HostScan:
    """Guests found in the host's /proc: init PID by monitor name, matching process PIDs by init PID."""

    inits: Dict[str, int] = field(default_factory=dict)
    processes: Dict[int, List[int]] = field(default_factory=dict)


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as stream:
        return stream.read()


def _pid_namespace(proc_root: str, pid: int) -> str:
    return os.readlink(os.path.join(proc_root, str(pid), "ns", "pid"))


def scan_host(proc_root: str, lxd_dir: str, daemon_pid: int, process_names: Sequence[str]) -> HostScan:
    """One pass over the host's /proc: each guest's init and its processes named like ``process_names``."""
    lxcpath = os.path.join(lxd_dir, "containers")
    daemon_ns = _pid_namespace(proc_root, daemon_pid)
    children = defaultdict(list)
    monitors = {}
    candidates = []
    for entry in os.listdir(proc_root):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            comm, ppid = parse_stat(_read_bytes(os.path.join(proc_root, entry, "stat")).decode("utf-8", "replace"))
            cmdline = parse_cmdline(_read_bytes(os.path.join(proc_root, entry, "cmdline")))
        except (OSError, ValueError):
            continue  # gone meanwhile
        children[ppid].append(pid)
        if comm_matches(comm, process_names):
            candidates.append(pid)
        monitor = parse_monitor(cmdline)
        if monitor and os.path.normpath(monitor[0]) == os.path.normpath(lxcpath):
            monitors[pid] = monitor[1]
    scan = HostScan()
    init_by_ns = {}
    for monitor_pid, name in monitors.items():
        try:
            # A nested LXD's monitors show in the host's /proc too; only ours share its PID namespace.
            if _pid_namespace(proc_root, monitor_pid) != daemon_ns or not children.get(monitor_pid):
                continue
            init = min(children[monitor_pid])
            init_by_ns[_pid_namespace(proc_root, init)] = init
        except OSError:
            continue
        scan.inits[name] = init
        scan.processes[init] = []
    for pid in candidates:
        try:
            init = init_by_ns.get(_pid_namespace(proc_root, pid))
        except OSError:
            continue
        if init is not None:
            scan.processes[init].append(pid)
    return scan


def local_daemon(proc_root: str, server_pid: Optional[int]) -> bool:
    """Whether the daemon that answered runs in this PID namespace, so its guests show in our /proc."""
    if not server_pid:
        return False
    try:
        comm = _read_bytes(os.path.join(proc_root, str(server_pid), "comm")).decode("utf-8", "replace").strip()
        same_ns = _pid_namespace(proc_root, server_pid) == os.readlink(os.path.join(proc_root, "self", "ns", "pid"))
    except OSError:
        return False
    return same_ns and comm in DAEMON_NAMES


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
                 required_bytes: Size = None, method: str = AUTO, workers: int = EXEC_WORKERS) -> None:
        self.api = api
        self.project = project
        self.endpoint = endpoint
        self.proc_root = proc_root
        self.process_names = tuple(process_names)
        self.required_given = required_given
        self.required_bytes = required_bytes
        self.method = method
        self.workers = workers

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

    def _through_exec(self, record: InstanceRecord) -> _Gathered:
        try:
            _exit_code, stdout, stderr = self.api.execute(record.name, exec_command(self.process_names))
        except Exception as exc:  # a vanished guest, a refused exec, a broken websocket: that guest's error
            return _Gathered(EXEC, error=f"running a command inside the guest failed: {_reason(exc)}")
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
            with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
                for record, result in zip(to_exec, pool.map(self._through_exec, to_exec)):
                    gathered[record.name] = result
        reports = [self._report(name, by_name.get(name), gathered.get(name), daemon) for name in wanted]
        return ProbeReport(self.endpoint, self.project, daemon, reports, summarize(r.verdict for r in reports))

    def _local_init(self, record: InstanceRecord, daemon: DaemonFacts, scan: Optional[HostScan]) -> Optional[int]:
        if scan is None or record.type != CONTAINER:
            return None
        if daemon.clustered and record.location and record.location != daemon.server_name:
            return None
        return scan.inits.get(record.monitor_name)

    def _report(self, name: str, record: Optional[InstanceRecord], gathered: Optional[_Gathered],
                daemon: DaemonFacts) -> InstanceReport:
        if record is None:
            message = f"guest {name}: no such instance in project {self.project!r}"
            return InstanceReport(name, self.project, "", "", "", None, None, None, None, None, [], None, None,
                                  None, ERROR, message)
        kernel_memlock = parse_kernel_memlock(record.limits_kernel_memlock)
        gathered = gathered or _Gathered()
        daemon_memlock = gathered.daemon_memlock
        if daemon_memlock is None and self._same_member(record, daemon):
            daemon_memlock = _limit(daemon.memlock)
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
