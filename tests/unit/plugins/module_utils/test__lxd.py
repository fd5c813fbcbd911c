# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import socketserver
import threading
import urllib.parse

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd import (
    EXEC,
    PROC,
    HostScan,
    InstanceRecord,
    LxdError,
    MemlockProbe,
    client_endpoint,
    client_knows_projects,
    connect,
    is_remote,
    local_daemon,
    normalize_endpoint,
    parse_kernel_memlock,
    parse_monitor,
    scan_host,
    socket_candidates,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils import _lxd
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit

KIB = 1024
MIB = 1024 * KIB
HOST_NS = "pid:[4026531836]"
UNPRIVILEGED_MAP = "         0    1000000 1000000000\n"
PRIVILEGED_MAP = "         0          0 4294967295\n"
ENDPOINT = "/var/lib/lxd/unix.socket"


def limits_text(soft, hard=None) -> str:
    hard = soft if hard is None else hard
    return (
        "Limit                     Soft Limit           Hard Limit           Units\n"
        f"Max locked memory         {soft:<20} {hard:<20} bytes\n"
    )


class HostProc:
    """An LXD host's /proc in tmp_path: stat, cmdline, comm, ns/pid links, limits, status, uid_map."""

    def __init__(self, root):
        self.root = root
        root.mkdir()
        self.add_self()

    def add_self(self):
        (self.root / "self" / "ns").mkdir(parents=True)
        os.symlink(HOST_NS, self.root / "self" / "ns" / "pid")

    def add(self, pid, comm, ppid=1, cmdline=None, ns=HOST_NS, limit=None, nspid=None, vmsize_kib=1360,
            cap_eff=0, uid_map=UNPRIVILEGED_MAP):
        directory = self.root / str(pid)
        (directory / "ns").mkdir(parents=True)
        (directory / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560\n")
        (directory / "comm").write_text(comm + "\n")
        (directory / "cmdline").write_bytes((cmdline if cmdline is not None else comm).encode() + b"\0")
        os.symlink(ns, directory / "ns" / "pid")
        if limit is not None:
            (directory / "limits").write_text(limits_text(*limit))
        nspid = nspid or (pid,)
        (directory / "status").write_text(
            f"Name:\t{comm}\nPid:\t{pid}\nPPid:\t{ppid}\nNSpid:\t{' '.join(map(str, nspid))}\n"
            f"VmSize:\t{vmsize_kib} kB\nVmLck:\t0 kB\nCapEff:\t{cap_eff:016x}\nCapBnd:\t000001ffffffffff\n"
        )
        (directory / "uid_map").write_text(uid_map)


@pytest.fixture
def host(tmp_path):
    """The daemon (8 MiB), guests g1 (64 KiB, a vault under systemd and one started by `lxc exec`),
    prod_g2 (project prod, privileged, bao), a nested daemon's g3, and processes that must be ignored."""
    proc = HostProc(tmp_path / "proc")
    proc.add(4885, "lxd", cmdline="lxd\0--group\0root", limit=(8 * MIB,))
    proc.add(28466, "lxd", cmdline="[lxc monitor] /var/lib/lxd/containers g1")
    proc.add(28482, "systemd", ppid=28466, ns="pid:[100]", limit=(64 * KIB,), nspid=(28482, 1))
    proc.add(29409, "vault", ppid=28482, ns="pid:[100]", limit=(64 * KIB,), nspid=(29409, 58))
    proc.add(29499, "lxd", ppid=4885, cmdline="lxd\0forkexec")
    proc.add(29500, "vault", ppid=29499, ns="pid:[100]", limit=(8 * MIB,), nspid=(29500, 77), vmsize_kib=4096)
    proc.add(30000, "lxd", cmdline="[lxc monitor] /var/lib/lxd/containers prod_g2")
    proc.add(30001, "systemd", ppid=30000, ns="pid:[200]", limit=(64 * KIB,), nspid=(30001, 1),
             uid_map=PRIVILEGED_MAP)
    proc.add(30010, "bao", ppid=30001, ns="pid:[200]", limit=(64 * KIB,), nspid=(30010, 90), cap_eff=1 << 14,
             uid_map=PRIVILEGED_MAP)
    # A nested LXD's guest shows in the host's /proc too, but in another PID namespace than our daemon.
    proc.add(40000, "lxd", cmdline="[lxc monitor] /var/lib/lxd/containers g3", ns="pid:[300]")
    proc.add(40001, "systemd", ppid=40000, ns="pid:[301]", limit=(64 * KIB,))
    # Another daemon's guest (snap LXD) and the host's own vault: nobody's guest here.
    proc.add(41000, "lxd", cmdline="[lxc monitor] /var/snap/lxd/common/lxd/containers g1")
    proc.add(41001, "systemd", ppid=41000, ns="pid:[400]", limit=(64 * KIB,))
    proc.add(50000, "vault", limit=(8 * MIB,))
    return proc


def test_scan_host_finds_inits_and_their_processes(host):
    scan = scan_host(str(host.root), "/var/lib/lxd", 4885, ["vault", "bao"])
    assert scan.inits == {"g1": 28482, "prod_g2": 30001}
    assert {init: sorted(pids) for init, pids in scan.processes.items()} == {28482: [29409, 29500], 30001: [30010]}


def test_scan_host_with_a_monitor_but_no_init_yet(host):
    host.add(42000, "lxd", cmdline="[lxc monitor] /var/lib/lxd/containers starting")
    assert "starting" not in scan_host(str(host.root), "/var/lib/lxd", 4885, ["vault"]).inits


@pytest.mark.parametrize(
    "cmdline, expected",
    [
        (["[lxc monitor] /var/lib/lxd/containers g1"], ("/var/lib/lxd/containers", "g1")),
        (["[lxc monitor]", "/var/lib/incus/containers", "prod_web-1"], ("/var/lib/incus/containers", "prod_web-1")),
        (["[lxc monitor] g1"], None),
        (["/usr/bin/lxd", "--group", "root"], None),
        ([], None),
    ],
)
def test_parse_monitor(cmdline, expected):
    assert parse_monitor(cmdline) == expected


def test_local_daemon(host):
    root = str(host.root)
    assert local_daemon(root, 4885) is True
    assert local_daemon(root, 50000) is False  # not an lxd process
    assert local_daemon(root, 40000 + 7) is False  # no such process
    assert local_daemon(root, None) is False
    host.add(60000, "lxd", ns="pid:[999]")
    assert local_daemon(root, 60000) is False  # an lxd in another PID namespace


USUAL_SOCKETS = ["/var/lib/lxd/unix.socket", "/var/snap/lxd/common/lxd/unix.socket", "/var/lib/incus/unix.socket"]


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, USUAL_SOCKETS),
        ({"LXD_DIR": ""}, USUAL_SOCKETS),
        ({"LXD_DIR": "/srv/lxd"}, ["/srv/lxd/unix.socket"] + USUAL_SOCKETS),
        ({"LXD_DIR": "/var/lib/incus"}, ["/var/lib/incus/unix.socket"] + USUAL_SOCKETS[:2]),
    ],
)
def test_socket_candidates(environ, expected):
    assert socket_candidates(environ) == expected


@pytest.mark.parametrize(
    "endpoint, normalized, remote",
    [
        ("unix:///var/lib/lxd/unix.socket", "/var/lib/lxd/unix.socket", False),
        ("unix:/tmp/inner.sock", "/tmp/inner.sock", False),
        ("/var/lib/lxd/unix.socket", "/var/lib/lxd/unix.socket", False),
        ("https://lxd.example.com:8443", "https://lxd.example.com:8443", True),
    ],
)
def test_endpoints(endpoint, normalized, remote):
    assert normalize_endpoint(endpoint) == normalized
    assert is_remote(normalized) is remote


def test_connect_names_what_it_tried(tmp_path):
    not_a_socket = tmp_path / "plain-file"
    not_a_socket.write_text("")
    for endpoint in (str(tmp_path / "missing.socket"), str(not_a_socket)):
        with pytest.raises(LxdError, match="no LXD daemon answered; tried: " + endpoint) as error:
            connect(endpoint=endpoint)
        assert "set endpoint" in str(error.value)


@pytest.mark.parametrize(
    "endpoint, expected",
    [
        ("/var/lib/lxd/unix.socket", "http+unix://%2Fvar%2Flib%2Flxd%2Funix.socket"),
        ("http+unix://%2Fsrv%2Flxd.sock", "http+unix://%2Fsrv%2Flxd.sock"),
        ("https://lxd.example.com:8443", "https://lxd.example.com:8443"),
    ],
)
def test_client_endpoint(endpoint, expected):
    assert client_endpoint(endpoint) == expected


class ClientBefore2211:
    """pylxd.Client as pylxd 2.2.10 (Debian 12) builds it: no project; a socket only as an http+unix:// URL."""

    created = []

    def __init__(self, endpoint=None, version="1.0", cert=None, verify=True, timeout=None):
        if not endpoint.startswith("http+unix://"):
            raise AssertionError(f"2.2.10 would take {endpoint!r} for an https URL")
        self.created.append(endpoint)
        self.trusted = True


class ClientWithProjects(ClientBefore2211):
    def __init__(self, endpoint=None, version="1.0", cert=None, verify=True, timeout=None, project=None,
                 session=None):
        super().__init__(endpoint, version, cert, verify, timeout)
        self.project = project


def test_client_knows_projects():
    assert client_knows_projects(ClientWithProjects) is True
    assert client_knows_projects(ClientBefore2211) is False
    assert client_knows_projects(object()) is False


@pytest.mark.parametrize("client_class, client_project", [(ClientBefore2211, None), (ClientWithProjects, "prod")])
def test_connect_adapts_to_the_pylxd_version(monkeypatch, tmp_path, client_class, client_project):
    socket_path = tmp_path / "unix.socket"
    socket_path.write_text("")  # connect() only checks that the path exists before pylxd tries it
    monkeypatch.setattr(_lxd.pylxd, "Client", client_class)
    ClientBefore2211.created.clear()
    api, endpoint = connect(endpoint=f"unix://{socket_path}", project="prod", timeout=7)
    assert endpoint == str(socket_path)
    assert ClientBefore2211.created == [client_endpoint(str(socket_path))]
    assert getattr(api.client, "project", None) == client_project
    assert (api.project, api.timeout) == ("prod", 7)


class FakeLxd(http.server.BaseHTTPRequestHandler):
    """Just enough of LXD's API on a unix socket for LxdApi: /1.0, exec with recorded output, its logs.

    The class attributes are the daemon's state: the guests, each command's outcome, what was asked.
    """

    guests = {}  # name -> (status_code of the operation, return code, stdout, stderr)
    requests = []  # (method, path, project)
    logs = {}  # path -> text

    def _reply(self, code, payload=None, raw=None):
        body = raw.encode() if raw is not None else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        self.requests.append((method, url.path, query.get("project", [None])[0]))
        parts = url.path.strip("/").split("/")
        if method == "GET" and parts == ["1.0"]:
            return self._reply(200, {"type": "sync", "status_code": 200, "metadata": {
                "auth": "trusted", "api_extensions": ["projects"], "environment": {"server_pid": 4885}}})
        if method == "POST" and parts[1:2] == ["instances"] and parts[3:] == ["exec"]:
            if parts[2] not in self.guests:
                return self._reply(404, {"type": "error", "error": "Instance not found", "error_code": 404})
            length = int(self.headers["Content-Length"])
            assert json.loads(self.rfile.read(length))["record-output"] is True
            return self._reply(202, {"type": "async", "status_code": 100, "operation": f"/1.0/operations/{parts[2]}"})
        if method == "GET" and parts[1:2] == ["operations"] and parts[3:] == ["wait"]:
            status_code, returned, stdout, stderr = self.guests[parts[2]]
            output = {}
            for stream, text in (("1", stdout), ("2", stderr)):
                path = f"/1.0/instances/{parts[2]}/logs/exec_{parts[2]}.{'stdout' if stream == '1' else 'stderr'}"
                self.logs[path] = text
                output[stream] = path
            return self._reply(200, {"type": "sync", "status_code": 200, "metadata": {
                "status_code": status_code, "err": "" if status_code == 200 else "Command not found",
                "metadata": {"output": output, "return": returned}}})
        if parts[1:2] == ["instances"] and parts[3:4] == ["logs"] and url.path in self.logs:
            if method == "DELETE":
                del self.logs[url.path]
                return self._reply(200, {"type": "sync", "status_code": 200, "metadata": {}})
            return self._reply(200, raw=self.logs[url.path])
        return self._reply(404, {"type": "error", "error": "not found", "error_code": 404})

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_DELETE(self):
        self._route("DELETE")

    def address_string(self):
        return "unix-socket"

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_lxd(tmp_path):
    """A FakeLxd answering on a real unix socket; yields its path."""
    FakeLxd.guests = {"g1": (200, 0, "@@1 limits\n", ""), "g2": (200, 3, "out\n", "err\n"), "g3": (400, 127, "", "")}
    FakeLxd.requests, FakeLxd.logs = [], {}
    socket_path = str(tmp_path / "unix.socket")
    server = socketserver.ThreadingUnixStreamServer(socket_path, FakeLxd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield socket_path
    server.shutdown()
    server.server_close()


def test_connect_and_execute_through_a_real_unix_socket(fake_lxd):
    api, endpoint = connect(endpoint=fake_lxd, project="prod", timeout=5)
    assert endpoint == fake_lxd
    assert api.server_info()["environment"]["server_pid"] == 4885
    assert api.execute("g1", ["sh", "-c", "cat /proc/1/limits"]) == (0, "@@1 limits\n", "")
    assert api.execute("g2", ["false"]) == (3, "out\n", "err\n")
    # Every request of a command names the project; the recorded output is deleted once read.
    assert {project for method, path, project in FakeLxd.requests if path != "/1.0"} == {"prod"}
    assert FakeLxd.logs == {}
    assert [method for method, path, project in FakeLxd.requests if "/logs/" in path] == ["GET", "DELETE"] * 4


@pytest.mark.parametrize(
    "name, message",
    [
        ("g3", "the command did not complete: Command not found"),
        ("missing", "LXD refused: Instance not found"),
    ],
)
def test_execute_failures(fake_lxd, name, message):
    api, _endpoint = connect(endpoint=fake_lxd, timeout=5)
    with pytest.raises(LxdError, match=message):
        api.execute(name, ["/nonexistent"])
    assert FakeLxd.logs == {}  # even a command that did not start leaves no recorded output behind


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("", None),
        ("65536", MemlockLimit(65536, 65536)),
        ("unlimited", MemlockLimit(None, None)),
        ("65536:131072", MemlockLimit(65536, 131072)),
        ("lots", None),
    ],
)
def test_parse_kernel_memlock(value, expected):
    assert parse_kernel_memlock(value) == expected


def api_instance(name, status="Running", type_="container", location="none", project="default", **config):
    return {"name": name, "status": status, "type": type_, "location": location, "project": project,
            "expanded_config": {key.replace("_", "."): value for key, value in config.items()}}


def test_instance_record_from_api():
    data = api_instance("web", project="prod", security_privileged="true", limits_kernel_memlock="65536")
    record = InstanceRecord.from_api(data, "prod")
    assert record == InstanceRecord("web", "prod", "container", "Running", "none", True, "65536")
    assert record.monitor_name == "prod_web"
    assert InstanceRecord.from_api({"name": "g1"}, "default").monitor_name == "g1"


def exec_output(pid1_limit, processes=(), self_limit=8 * MIB, uid_map=UNPRIVILEGED_MAP):
    """What the guest script prints: its own limit, PID 1, and (pid, name, limit, VmSize KiB) per process."""
    parts = ["@@self limits", limits_text(self_limit), "@@1 uid_map", uid_map, "@@1 limits", limits_text(pid1_limit),
             "@@1 status", "Name:\tsystemd\nPid:\t1\nNSpid:\t1\n"]
    for pid, name, limit, vmsize_kib in processes:
        parts += [f"@@{pid} status", f"Name:\t{name}\nPid:\t{pid}\nNSpid:\t{pid}\nVmSize:\t{vmsize_kib} kB\n"
                  "VmLck:\t0 kB\nCapEff:\t0\nCapBnd:\t0\n", f"@@{pid} limits", limits_text(limit),
                  f"@@{pid} exe", f"/usr/bin/{name}"]
    return "\n".join(parts) + "\n"


class FakeApi:
    """The three calls MemlockProbe makes, answered from tables; exec calls are recorded."""

    def __init__(self, instances, outputs=None, clustered=False, server_name="node1", server_pid=4885):
        self.instances = instances
        self.outputs = outputs or {}
        self.environment = {"server_pid": server_pid, "server_name": server_name, "server_clustered": clustered}
        self.executed = []
        self._lock = threading.Lock()

    def server_info(self):
        return {"environment": self.environment}

    def list_instances(self):
        return self.instances

    def execute(self, name, argv):
        with self._lock:
            self.executed.append(name)
        output = self.outputs[name]
        if isinstance(output, Exception):
            raise output
        return 0, output, ""


def by_name(report):
    return {instance.name: instance for instance in report.instances}


def test_probe_reads_local_guests_through_proc_and_others_inside(host):
    api = FakeApi(
        [
            api_instance("g1"),
            api_instance("g3"),  # the nested daemon's name: not ours in /proc, so read inside
            api_instance("stopped", status="Stopped"),
            api_instance("big", status="Stopped", limits_kernel_memlock="4194304"),
            api_instance("vm1", type_="virtual-machine"),
            api_instance("broken"),
            api_instance("ice", status="Frozen"),
        ],
        outputs={
            "g3": exec_output(8 * MIB, [(58, "vault", 8 * MIB, 1360)], self_limit=8 * MIB),
            "vm1": exec_output(64 * KIB, [(900, "vault", 64 * KIB, 1360)], self_limit=8 * MIB,
                               uid_map=PRIVILEGED_MAP),
            "broken": RuntimeError("Instance is not running"),
        },
    )
    probe = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root), process_names=["vault", "bao"])
    report = probe.run()
    instances = by_name(report)

    assert sorted(api.executed) == ["broken", "g3", "vm1"]
    assert report.daemon.local is True
    assert report.daemon.memlock.soft_bytes == 8 * MIB

    g1 = instances["g1"]
    expected = (PROC, "restart_pending", True, True)
    assert (g1.source, g1.verdict, g1.in_user_namespace, g1.daemon_limit_differs) == expected
    assert g1.pid1.host_pid == 28482 and g1.pid1.memlock.soft_ulimit_kib == 64
    processes = [(p.pid, p.host_pid, p.memlock.soft_bytes) for p in g1.processes]
    assert processes == [(58, 29409, 64 * KIB), (77, 29500, 8 * MIB)]
    # PID 1's 64 KiB would become the daemon's 8 MiB after a restart: enough for vault's 1.3 MiB.
    assert g1.memlock_after_restart.soft_bytes == 8 * MIB
    assert g1.message == ("guest g1: PID 1 may lock 64 KiB (ulimit -l 64) but vault needs its whole VmSize 1.4 MiB "
                          "locked; the LXD daemon now gives 8 MiB, so restart the guest to apply it")

    g3 = instances["g3"]
    assert (g3.source, g3.verdict, g3.daemon_limit_differs) == (EXEC, "ok", False)
    assert g3.processes[0].host_pid is None

    assert (instances["stopped"].verdict, instances["stopped"].source) == ("not_running", None)
    assert instances["stopped"].memlock_after_restart.soft_bytes == 8 * MIB
    assert instances["big"].memlock_after_restart.soft_bytes == 4 * MIB
    assert "from limits.kernel.memlock" in instances["big"].message

    vm1 = instances["vm1"]
    assert (vm1.verdict, vm1.in_user_namespace, vm1.memlock_after_restart, vm1.daemon_limit_differs) == (
        "too_low", False, None, None)
    assert "inside the VM" in vm1.message

    assert instances["broken"].verdict == "error"
    assert "Instance is not running" in instances["broken"].message
    assert instances["ice"].verdict == "error" and "frozen" in instances["ice"].message

    assert report.summary == {"error": 2, "too_low": 1, "restart_pending": 1, "unknown": 0, "not_running": 2,
                              "ok": 1}
    json.dumps(dataclasses.asdict(report))  # plain data all the way down


def test_probe_too_low_when_a_restart_would_not_help_either(host):
    api = FakeApi([api_instance("g1")])
    report = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root), process_names=["vault"],
                          required_given=True, required_bytes=16 * MIB).run()
    g1 = report.instances[0]
    assert g1.verdict == "too_low"
    assert g1.message == (
        "guest g1: PID 1 may lock 64 KiB (ulimit -l 64) but vault needs the required 16 MiB; restart the guest "
        "after raising the LXD daemon's LimitMEMLOCK to at least 16 MiB (vault_mlock.lxd.memlock_dropin) or set "
        "limits.kernel.memlock")


def test_probe_in_another_project_and_privileged_capability(host):
    api = FakeApi([api_instance("g2", project="prod", security_privileged="true")])
    report = MemlockProbe(api, project="prod", endpoint=ENDPOINT, proc_root=str(host.root)).run()
    g2 = report.instances[0]
    assert (g2.source, g2.privileged, g2.in_user_namespace, g2.verdict) == (PROC, True, False, "ok")
    assert "holds CAP_IPC_LOCK outside any user namespace" in g2.message
    assert [(p.name, p.pid, p.cap_ipc_lock_effective) for p in g2.processes] == [("bao", 90, True)]


def test_probe_named_instances_in_their_order(host):
    api = FakeApi([api_instance("g1"), api_instance("other")], outputs={})
    report = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root)).run(["nope", "g1", "g1"])
    assert [instance.name for instance in report.instances] == ["nope", "g1"]
    assert report.instances[0].verdict == "error"
    assert report.instances[0].message == "guest nope: no such instance in project 'default'"
    assert api.executed == []


@pytest.mark.parametrize(
    "method, endpoint, expected_source, local",
    [
        ("exec", ENDPOINT, EXEC, True),  # the daemon is still read locally
        ("auto", "https://lxd.example.com:8443", EXEC, False),
        ("proc", "https://lxd.example.com:8443", None, False),
    ],
)
def test_probe_methods(host, method, endpoint, expected_source, local):
    api = FakeApi([api_instance("g1")], outputs={"g1": exec_output(64 * KIB, [(58, "vault", 64 * KIB, 1360)])})
    report = MemlockProbe(api, endpoint=endpoint, proc_root=str(host.root), method=method).run()
    g1 = report.instances[0]
    assert report.daemon.local is local
    assert g1.source == expected_source
    if method == "proc":
        assert g1.verdict == "error" and "do not show in this host's /proc" in g1.message
    else:
        assert g1.processes[0].host_pid is None
        assert g1.verdict == "restart_pending"  # the exec'd shell had 8 MiB: the daemon's, guests get it on start


def test_probe_on_a_cluster_reads_other_members_inside(host):
    api = FakeApi([api_instance("g1", location="node1"), api_instance("remote1", location="node2")],
                  outputs={"remote1": exec_output(64 * KIB, self_limit=64 * KIB)}, clustered=True)
    report = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root), required_given=True,
                          required_bytes=MIB).run()
    instances = by_name(report)
    assert (instances["g1"].source, instances["g1"].location) == (PROC, "node1")
    assert (instances["remote1"].source, instances["remote1"].location) == (EXEC, "node2")
    # node2's daemon limit is the exec'd shell's: 64 KiB, too little for the required 1 MiB after a restart too.
    assert instances["remote1"].daemon_memlock.soft_bytes == 64 * KIB
    assert instances["remote1"].verdict == "too_low"
    assert api.executed == ["remote1"]


def test_probe_exec_output_without_limits_is_that_guests_error(host):
    api = FakeApi([api_instance("busy")], outputs={"busy": "sh: cannot fork\n"})
    report = MemlockProbe(api, endpoint="https://x:8443", proc_root=str(host.root)).run()
    assert report.instances[0].verdict == "error"
    assert "reading /proc inside the guest failed" in report.instances[0].message


def test_probe_with_a_daemon_of_another_machine(host):
    api = FakeApi([api_instance("g1")], outputs={"g1": exec_output(8 * MIB)}, server_pid=99999)
    report = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root)).run()
    assert (report.daemon.local, report.daemon.memlock) == (False, None)
    assert report.instances[0].source == EXEC
    assert report.instances[0].verdict == "unknown"


def test_host_scan_defaults_are_empty():
    assert HostScan() == HostScan({}, {})
