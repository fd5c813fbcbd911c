# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
import json
import threading

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._probe import (
    EXEC,
    PROC,
    InstanceRecord,
    MemlockProbe,
    parse_kernel_memlock,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit

from _host_proc import ENDPOINT, KIB, MIB, PRIVILEGED_MAP, UNPRIVILEGED_MAP, limits_text

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

    def execute_many(self, commands):
        results = []
        for name, argv in commands:
            try:
                results.append(self.execute(name, argv))
            except Exception as exc:
                results.append(exc)
        return results


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


def test_probe_on_a_cluster_knows_another_members_daemon_from_its_running_guests(host):
    """node2's daemon limit, learnt from a command run in remote1, also speaks for node2's stopped guest and for
    its guest with limits.kernel.memlock (whose command gets that limit, not the daemon's): every member then
    says the same of them."""
    api = FakeApi([api_instance("remote1", location="node2"),
                   api_instance("kernel2", location="node2", limits_kernel_memlock="262144"),
                   api_instance("stopped2", status="Stopped", location="node2")],
                  outputs={"remote1": exec_output(2 * MIB, self_limit=2 * MIB),
                           "kernel2": exec_output(256 * KIB, self_limit=256 * KIB)}, clustered=True)
    report = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root), required_given=True,
                          required_bytes=MIB).run()
    instances = by_name(report)
    assert instances["kernel2"].daemon_memlock.soft_bytes == 2 * MIB
    assert instances["stopped2"].daemon_memlock.soft_bytes == 2 * MIB
    assert instances["stopped2"].memlock_after_restart.soft_bytes == 2 * MIB
    assert "the LXD daemon's hard limit allows up to 2 MiB" in instances["kernel2"].message


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

