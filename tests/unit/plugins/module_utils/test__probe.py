# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
import json

import pytest
from _files import put

from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import UNITS_SCRIPT
from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import ProcDir
from ansible_collections.vault_mlock.lxd.plugins.module_utils._probe import EXEC, PROC, MemlockProbe
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import Required

from _host_proc import ENDPOINT, KIB, MIB, PRIVILEGED_MAP, UNPRIVILEGED_MAP, limits_text

MLOCK_LINE = "Error initializing core: Failed to lock memory: cannot allocate memory"


def api_instance(name, status="Running", type_="container", location="none", project="default", **config):
    return {"name": name, "status": status, "type": type_, "location": location, "project": project,
            "expanded_config": {key.replace("_", "."): value for key, value in config.items()}}


def exec_output(pid1_limit, processes=(), self_limit=8 * MIB, uid_map=UNPRIVILEGED_MAP, units=None):
    """What the guest script prints: its own limit, PID 1, (pid, name, limit, VmSize KiB) per process, units."""
    parts = ["@@self limits", limits_text(self_limit), "@@1 uid_map", uid_map, "@@1 limits", limits_text(pid1_limit),
             "@@1 status", "Name:\tsystemd\nPid:\t1\nNSpid:\t1\nCapEff:\t000001fffeffffff\n"]
    for pid, name, limit, vmsize_kib in processes:
        parts += [f"@@{pid} status", f"Name:\t{name}\nPid:\t{pid}\nNSpid:\t{pid}\nVmSize:\t{vmsize_kib} kB\n"
                  "VmLck:\t0 kB\nCapEff:\t0\nCapBnd:\t0\n", f"@@{pid} limits", limits_text(limit),
                  f"@@{pid} exe", f"/usr/bin/{name}"]
    return "\n".join(parts) + "\n" + (units or "")


def units_output(*units):
    """What the units script prints: (name, ActiveState, SubState, Result, LimitMEMLOCK bytes, journal line)."""
    parts = ["@@systemd manager", "DefaultLimitMEMLOCK=8388608", "DefaultLimitMEMLOCKSoft=8388608"]
    for name, active, sub, result, limit, line in units:
        parts += [f"@@unit {name}", "LoadState=loaded", f"ActiveState={active}", f"SubState={sub}",
                  f"Result={result}", "NRestarts=0", "InvocationID=abc", f"LimitMEMLOCK={limit}",
                  f"LimitMEMLOCKSoft={limit}", "ExecMainCode=1", "ExecMainStatus=1", f"@@journal {name}"]
        if line:
            parts.append("| " + line)
    return "\n".join(parts) + "\n"


NO_UNITS = units_output()
DIED = units_output(("vault.service", "failed", "failed", "exit-code", 8 * MIB, MLOCK_LINE))


class FakeApi:
    """The three calls MemlockProbe makes, answered from tables; commands run are recorded, and each
    execute_many call as the list of its commands.

    An output is a text (for any command) or a dict {"exec": text, "units": text} by the script asked for.
    """

    def __init__(self, instances, outputs=None, clustered=False, server_name="node1", server_pid=4885):
        self.instances = instances
        self.outputs = outputs or {}
        self.environment = {"server_pid": server_pid, "server_name": server_name, "server_clustered": clustered}
        self.executed = []
        self.batches = []

    def server_info(self):
        return {"environment": self.environment}

    def list_instances(self):
        return self.instances

    def execute_many(self, commands):
        """As LxdApi.execute_many: one result per command, an exception for a command that failed."""
        batch, results = [], []
        for name, argv in commands:
            kind = "units" if argv[2] == UNITS_SCRIPT else "exec"
            batch.append((name, kind))
            output = self.outputs[name]
            if isinstance(output, dict):
                output = output[kind]
            results.append(output if isinstance(output, Exception) else (0, output, ""))
        self.executed += batch
        self.batches.append(batch)
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

    assert sorted(api.executed) == [("broken", "exec"), ("g3", "exec"), ("vm1", "exec")]
    assert report.daemon.local is True
    assert report.daemon.memlock.soft_bytes == 8 * MIB
    assert report.daemon.physical_memory == 24 << 30

    g1 = instances["g1"]
    assert (g1.source, g1.verdict, g1.in_user_namespace) == (PROC, "restart_pending", True)
    assert g1.pid1.host_pid == 28482 and g1.pid1.memlock.soft_ulimit_kib == 64
    processes = [(p.pid, p.host_pid, p.memlock.soft_bytes) for p in g1.processes]
    assert processes == [(58, 29409, 64 * KIB), (77, 29500, 8 * MIB)]
    # g1 started while the daemon had 64 KiB (its monitor keeps it); the daemon now hands out 8 MiB.
    assert (g1.lxd_at_start.memlock.systemd_value, g1.lxd_at_start.source) == ("64K", "the LXD daemon")
    assert (g1.lxd_now.memlock.systemd_value, g1.lxd_now.source) == ("8M", "the LXD daemon")
    assert g1.restart_required is True
    assert g1.restart_reason == "it started with 64K from the LXD daemon; a start now gives 8M from the LXD daemon"
    assert g1.service.name == "vault (PID 58)"
    assert g1.message == ("guest g1: vault (PID 58) may lock 64 KiB (ulimit -l 64) but needs its whole VmSize "
                          "1.4 MiB locked, and has nothing locked (VmLck 0); after a restart it gets 8 MiB from the "
                          "LXD daemon, so restart the guest to apply it")

    g3 = instances["g3"]
    assert (g3.source, g3.verdict, g3.lxd_at_start, g3.restart_required) == (EXEC, "finite_limit", None, False)
    assert g3.processes[0].host_pid is None
    assert g3.units == []  # a vault runs: systemd is not asked

    assert (instances["stopped"].verdict, instances["stopped"].source) == ("not_running", None)
    assert instances["stopped"].lxd_now.memlock.soft_bytes == 8 * MIB
    assert instances["big"].lxd_now.memlock.soft_bytes == 4 * MIB
    assert "from limits.kernel.memlock" in instances["big"].message

    vm1 = instances["vm1"]
    assert (vm1.verdict, vm1.in_user_namespace, vm1.lxd_now, vm1.restart_required) == (
        "too_low", False, None, False)
    assert "inside the VM" in vm1.message

    assert instances["broken"].verdict == "error"
    assert "Instance is not running" in instances["broken"].message
    assert instances["ice"].verdict == "error" and "frozen" in instances["ice"].message

    assert report.summary == {"error": 2, "too_low": 1, "restart_pending": 1, "finite_limit": 1, "unknown": 0,
                              "not_running": 2, "absent": 0, "ok": 0, "protected": 0, "not_enforced": 0,
                              "exposed": 0}
    json.dumps(dataclasses.asdict(report))  # plain data all the way down


def guest_root(host, init, systemd=True, units=()):
    """The guest's root as the host shows it at /proc/INIT/root: systemd's runtime directory, a unit that is not
    Vault's, and ``units`` in /etc/systemd/system."""
    root = host.root / str(init) / "root"
    put(root, "/usr/lib/systemd/system/ssh.service", "[Service]\n")
    if systemd:
        (root / "run/systemd/system").mkdir(parents=True)
    for unit in units:
        put(root, f"/etc/systemd/system/{unit}", "[Service]\nExecStart=/usr/local/bin/vault server\n")
    return root


def test_probe_asks_systemd_only_where_no_vault_runs_and_a_unit_file_is(host):
    """The crash of case 1: vault.service died on mlock under 512 KiB, no process is left; it must not pass."""
    host.add_monitor(31000, "crashed", limit=(8 * MIB,), prlimit="524288")
    host.add(31001, "systemd", ppid=31000, ns="pid:[500]", limit=(512 * KIB,), nspid=(31001, 1))
    guest_root(host, 31001, units=["vault.service"])
    host.add_monitor(32000, "plain", limit=(8 * MIB,))
    host.add(32001, "systemd", ppid=32000, ns="pid:[600]", limit=(8 * MIB,), nspid=(32001, 1))
    guest_root(host, 32001)
    host.add_monitor(33000, "busybox", limit=(8 * MIB,))
    host.add(33001, "init", ppid=33000, ns="pid:[700]", limit=(8 * MIB,), nspid=(33001, 1))
    guest_root(host, 33001, systemd=False)
    api = FakeApi([api_instance("g1"), api_instance("crashed", limits_kernel_memlock="524288"),
                   api_instance("plain"), api_instance("busybox")],
                  outputs={"crashed": DIED})
    report = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root)).run()
    instances = by_name(report)
    # One command where a unit file is and no process runs; none where a vault runs (g1) or no unit file is.
    assert api.executed == [("crashed", "units")]

    crashed = instances["crashed"]
    assert crashed.verdict == "too_low"
    assert crashed.message.startswith(
        "guest crashed: vault.service is failed (exit-code) and its last run died locking its memory "
        f'("{MLOCK_LINE}"); its service may lock 512 KiB (ulimit -l 512), as systemd lowers its LimitMEMLOCK=8M '
        "to what PID 1 allows;")
    assert [(unit.name, unit.load_state, unit.memlock and unit.memlock.soft_bytes, unit.mlock_failure)
            for unit in crashed.units] == [("vault.service", "loaded", 512 * KIB, MLOCK_LINE),
                                           ("openbao.service", "not-found", None, "")]
    assert crashed.service.name == "vault.service" and crashed.service.source == "unit"
    assert (crashed.lxd_at_start.source, crashed.restart_required) == ("limits.kernel.memlock", False)

    plain = instances["plain"]
    assert (plain.verdict, plain.service) == ("absent", None)
    assert plain.message == ("guest plain: no vault or bao process runs and systemd knows no vault.service or "
                             "openbao.service: no Vault here")
    assert [(unit.name, unit.load_state) for unit in plain.units] == [
        ("vault.service", "not-found"), ("openbao.service", "not-found")]
    busybox = instances["busybox"]
    assert (busybox.verdict, busybox.units) == ("absent", [])
    assert "the machine runs no systemd" in busybox.message


def test_probe_asks_a_guest_whose_files_cannot_be_read(host):
    """No /proc/INIT/root to read (not root, a guest stopping): its systemd is asked, as before."""
    host.add_monitor(32000, "plain", limit=(8 * MIB,))
    host.add(32001, "systemd", ppid=32000, ns="pid:[600]", limit=(8 * MIB,), nspid=(32001, 1))
    api = FakeApi([api_instance("plain")], outputs={"plain": NO_UNITS})
    report = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root)).run()
    assert api.executed == [("plain", "units")]
    assert report.instances[0].verdict == "absent"


def test_probe_with_method_proc_asks_no_systemd(host):
    host.add_monitor(32000, "plain", limit=(8 * MIB,))
    host.add(32001, "systemd", ppid=32000, ns="pid:[600]", limit=(8 * MIB,), nspid=(32001, 1))
    api = FakeApi([api_instance("plain")])
    report = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root), method="proc").run()
    assert api.executed == []
    assert report.instances[0].verdict == "unknown"
    assert "with method=proc no guest's systemd is asked" in report.instances[0].message


def test_probe_units_error_is_that_guests_error(host):
    host.add_monitor(32000, "plain", limit=(8 * MIB,))
    host.add(32001, "systemd", ppid=32000, ns="pid:[600]", limit=(8 * MIB,), nspid=(32001, 1))
    api = FakeApi([api_instance("plain")], outputs={"plain": "Failed to connect to bus\n"})
    instance = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root)).run().instances[0]
    assert instance.verdict == "error"
    assert "asking the guest's systemd about vault.service, openbao.service failed" in instance.message


def test_probe_too_low_when_a_restart_would_not_help_either(host):
    api = FakeApi([api_instance("g1")])
    report = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root), process_names=["vault"],
                          required=Required(16 * MIB)).run()
    g1 = report.instances[0]
    assert g1.verdict == "too_low"
    assert g1.message == (
        "guest g1: vault (PID 58) may lock 64 KiB (ulimit -l 64) but needs the required 16 MiB, and has nothing "
        "locked (VmLck 0); restart the guest after raising the LXD daemon's LimitMEMLOCK to at least 16 MiB "
        "(vault_mlock.lxd.memlock_dropin) or set limits.kernel.memlock")


def test_probe_in_another_project_and_privileged_capability(host):
    # A Vault beside prod_g2's bao, with CAP_IPC_LOCK in a privileged guest.
    host.add(30020, "vault", ppid=30001, ns="pid:[200]", limit=(64 * KIB,), nspid=(30020, 91), cap_eff=1 << 14,
             uid_map=PRIVILEGED_MAP)
    api = FakeApi([api_instance("g2", project="prod", security_privileged="true", limits_kernel_memlock="65536")])
    report = MemlockProbe(api, project="prod", endpoint=ENDPOINT, proc_root=str(host.root),
                          process_names=["vault"]).run()
    g2 = report.instances[0]
    assert (g2.source, g2.privileged, g2.in_user_namespace, g2.verdict) == (PROC, True, False, "ok")
    assert "holds CAP_IPC_LOCK outside any user namespace" in g2.message
    assert [(p.name, p.pid, p.cap_ipc_lock_effective) for p in g2.processes] == [("vault", 91, True)]
    assert (g2.lxd_at_start.source, g2.lxd_at_start.memlock.soft_bytes, g2.restart_required) == (
        "limits.kernel.memlock", 65536, False)
    assert api.executed == []  # it locks: nothing to ask its systemd


BAO_CGROUP = "4:memory:/process_api/d6a7\n1:name=systemd:/\n0::/lxc.payload.prod_g2/system.slice/openbao.service\n"
BAO_UNITS = ("@@systemd manager\nDefaultLimitMEMLOCK=8388608\nDefaultLimitMEMLOCKSoft=8388608\n"
             "@@unit openbao.service\nLoadState=loaded\nActiveState=active\nSubState=running\nResult=success\n"
             "LimitMEMLOCK=8388608\nLimitMEMLOCKSoft=8388608\nMemorySwapMax=0\n")


def host_cgroups(host, bao_pid=30010, swap_max=None, swaps=""):
    """bao's cgroup as the lab host shows it, the host's mounts (memory on cgroup v1, or on cgroup v2 with
    ``swap_max`` in bao's memory.swap.max) and its /proc/swaps; returns the root its /sys is read from."""
    (host.root / str(bao_pid) / "cgroup").write_text(BAO_CGROUP if swap_max is None else
                                                     "0::/lxc.payload.prod_g2/system.slice/openbao.service\n")
    (host.root / "swaps").write_text("Filename\tType\tSize\tUsed\tPriority\n" + swaps)
    if swaps:
        (host.root / "meminfo").write_text("MemTotal:       25165824 kB\nSwapTotal:       2097148 kB\n")
    fs_root = host.root.parent / "fs"
    mountinfo = ("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                 "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n")
    if swap_max is not None:
        mountinfo = "25 21 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
        service = fs_root / "sys/fs/cgroup/lxc.payload.prod_g2/system.slice/openbao.service"
        service.mkdir(parents=True)
        (service / "memory.swap.max").write_text(swap_max)
    (host.root / "self" / "mountinfo").write_text(mountinfo)
    return str(fs_root)


@pytest.mark.parametrize("swap_max, swaps, verdict, words", [
    (None, "", "protected", ["the host has no swap", "MemorySwapMax=0 is set for openbao.service but not enforced",
                             "on cgroup v1"]),
    (None, "/swap.img file 2097148 0 -2\n", "not_enforced", ["nothing enforces it"]),
    ("0\n", "/swap.img file 2097148 0 -2\n", "protected", ["memory.swap.max is 0 for its own cgroup"]),
    ("max\n", "/swap.img file 2097148 0 -2\n", "not_enforced",
     ["MemorySwapMax=0 is set for openbao.service, yet memory.swap.max lets it use any amount of the host's 1.9 GiB of "
      "swap on /swap.img, a swap file on disk: restart openbao.service"]),
    ("1048576\n", "", "protected", ["the host has no swap"]),
])
def test_probe_judges_bao_on_the_host_swap_and_its_cgroups(host, monkeypatch, swap_max, swaps, verdict, words):
    """bao never locks: its verdict rests on the host's /proc/swaps and memory.swap.max up its cgroup chain, read
    from the host, and on its unit's MemorySwapMax, asked of the guest's systemd; never on its memlock limit."""
    fs_root = host_cgroups(host, swap_max=swap_max, swaps=swaps)
    original = ProcDir.__init__

    def with_fs_root(self, *args, **kwargs):
        original(self, *args, fs_root=fs_root, **kwargs)

    monkeypatch.setattr(ProcDir, "__init__", with_fs_root)
    api = FakeApi([api_instance("g2", project="prod", security_privileged="true")], outputs={"g2": BAO_UNITS})
    report = MemlockProbe(api, project="prod", endpoint=ENDPOINT, proc_root=str(host.root)).run()
    g2 = report.instances[0]
    assert api.executed == [("g2", "units")]
    assert g2.verdict == verdict
    assert g2.message.startswith("guest g2: bao (PID 90) does not lock its memory (OpenBao removed mlock in 2.0), so "
                                 "it needs no memlock limit; ")
    for word in words:
        assert word in g2.message
    assert "LimitMEMLOCK" not in g2.message
    assert g2.service.locks_memory is False
    assert [(p.unit, p.cgroup_swap.version) for p in g2.processes] == [
        ("openbao.service", "v1" if swap_max is None else "v2")]
    assert g2.swap.total_bytes == (2097148 * KIB if swaps else 0)
    assert {unit.name: unit.memory_swap_max for unit in g2.units}["openbao.service"] == "0"
    json.dumps(dataclasses.asdict(report))


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
        # Read inside: PID 1's hard limit (64 KiB, what LXD gave it) differs from the 8 MiB a start now gives.
        assert g1.restart_required is True
        assert g1.verdict == "restart_pending"


def test_probe_exec_of_a_guest_without_vault_asks_systemd_in_the_same_command(host):
    api = FakeApi([api_instance("g1")], outputs={"g1": exec_output(4 * MIB, units=DIED)})
    g1 = MemlockProbe(api, endpoint="https://x:8443", proc_root=str(host.root)).run().instances[0]
    assert api.executed == [("g1", "exec")]
    assert g1.verdict == "too_low" and "died locking its memory" in g1.message


def test_probe_on_a_cluster_reads_other_members_inside(host):
    api = FakeApi([api_instance("g1", location="node1"), api_instance("remote1", location="node2")],
                  outputs={"remote1": exec_output(64 * KIB, [(58, "vault", 64 * KIB, 1360)], self_limit=64 * KIB)},
                  clustered=True)
    report = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root), required=Required(MIB)).run()
    instances = by_name(report)
    assert (instances["g1"].source, instances["g1"].location) == (PROC, "node1")
    assert (instances["remote1"].source, instances["remote1"].location) == (EXEC, "node2")
    # node2's daemon limit is the exec'd shell's: 64 KiB, too little for the required 1 MiB after a restart too.
    assert instances["remote1"].lxd_now.memlock.soft_bytes == 64 * KIB
    assert instances["remote1"].verdict == "too_low"
    assert instances["remote1"].restart_required is False
    assert instances["remote1"].restart_reason == "it runs on cluster member node2, whose own run decides"
    assert api.executed == [("remote1", "exec")]


def test_probe_on_a_cluster_knows_another_members_daemon_from_its_running_guests(host):
    """node2's daemon limit, learnt from a command run in remote1, also speaks for node2's stopped guest and for
    its guest with limits.kernel.memlock (whose command gets that limit, not the daemon's): every member then
    says the same of them."""
    api = FakeApi([api_instance("remote1", location="node2"),
                   api_instance("kernel2", location="node2", limits_kernel_memlock="262144"),
                   api_instance("stopped2", status="Stopped", location="node2")],
                  outputs={"remote1": exec_output(2 * MIB, units=NO_UNITS, self_limit=2 * MIB),
                           "kernel2": exec_output(256 * KIB, [(58, "vault", 256 * KIB, 100)],
                                                  self_limit=256 * KIB)}, clustered=True)
    report = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root), required=Required(MIB)).run()
    instances = by_name(report)
    kernel2, stopped2 = instances["kernel2"], instances["stopped2"]
    assert (kernel2.lxd_now.memlock.soft_bytes, kernel2.lxd_now.source) == (256 * KIB, "limits.kernel.memlock")
    assert kernel2.verdict == "too_low"
    assert "(the LXD daemon's hard limit allows up to 2 MiB)" in kernel2.message
    assert (stopped2.lxd_now.memlock.soft_bytes, stopped2.lxd_now.source) == (2 * MIB, "the LXD daemon")
    assert stopped2.message.endswith("once started, a service there gets 2 MiB (from the LXD daemon, as systemd "
                                     "hands it on), enough for the required 1 MiB")
    # Its own member decides on restarts, whatever the others know of its daemon.
    assert [instances[name].restart_required for name in ("remote1", "kernel2", "stopped2")] == [False] * 3


def test_probe_starts_every_command_at_once(host):
    """The units command of a local guest and the scripts of the others go in one execute_many call, so that
    they all share its one deadline; a guest whose command failed gets its own error."""
    api = FakeApi([api_instance("g2", project="prod"), api_instance("vm1", type_="virtual-machine", project="prod"),
                   api_instance("vm2", type_="virtual-machine", project="prod")],
                  outputs={"g2": {"units": NO_UNITS},
                           "vm1": exec_output(8 * MIB, [(58, "vault", 8 * MIB, 100)], uid_map=PRIVILEGED_MAP),
                           "vm2": TimeoutError("the command was still running after 30s")})
    # prod_g2 shows in /proc, where no vault runs (its bao is not asked for): its systemd is asked.
    report = MemlockProbe(api, project="prod", endpoint=ENDPOINT, proc_root=str(host.root),
                          process_names=["vault"]).run()
    assert api.batches == [[("g2", "units"), ("vm1", "exec"), ("vm2", "exec")]]
    instances = by_name(report)
    assert instances["g2"].verdict == "absent"
    assert instances["vm1"].verdict == "finite_limit"
    assert instances["vm2"].message == ("guest vm2: running a command inside the guest failed: TimeoutError: "
                                        "the command was still running after 30s")


def test_probe_exec_output_without_limits_is_that_guests_error(host):
    api = FakeApi([api_instance("busy")], outputs={"busy": "sh: cannot fork\n"})
    report = MemlockProbe(api, endpoint="https://x:8443", proc_root=str(host.root)).run()
    assert report.instances[0].verdict == "error"
    assert "reading /proc inside the guest failed" in report.instances[0].message


def test_probe_with_a_daemon_of_another_machine(host):
    api = FakeApi([api_instance("g1")], outputs={"g1": exec_output(8 * MIB, units=NO_UNITS)}, server_pid=99999)
    report = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root)).run()
    assert (report.daemon.local, report.daemon.memlock) == (False, None)
    assert report.instances[0].source == EXEC
    assert report.instances[0].verdict == "absent"


INCUS_ENDPOINT = "/var/lib/incus/unix.socket"


def incus_host(tmp_path, project_prlimit=None):
    """A Debian 13 Incus 6.0.4 host as measured there: the daemon `incusd` (6 MiB now), monitors of
    /var/lib/incus/containers, each guest's lxc.log in the log directory and its lxc.conf in Incus's run
    directory (tmp_path/run/NAME/lxc.conf, /run/incus/NAME/lxc.conf there). Two guests named vault, both
    started while the daemon had 512 KiB: one in the default project (monitor `vault`), one in the project
    vault (monitor `vault_vault`), with limits.kernel.memlock ``project_prlimit`` when given."""
    from _host_proc import HostProc

    proc = HostProc(tmp_path / "proc")
    run = tmp_path / "run"
    proc.add(4885, "incusd", cmdline="incusd\0--group\0incus-admin", limit=(6 * MIB,))
    proc.add_monitor(5000, "vault", limit=(512 * KIB,), lxd_dir="/var/lib/incus", comm="incusd", conf_root=run)
    proc.add(5001, "systemd", ppid=5000, ns="pid:[500]", limit=(512 * KIB,), nspid=(5001, 1))
    proc.add_monitor(6000, "vault_vault", limit=(512 * KIB,), prlimit=project_prlimit, lxd_dir="/var/lib/incus",
                     comm="incusd", conf_root=run)
    proc.add(6001, "systemd", ppid=6000, ns="pid:[600]", limit=(512 * KIB,), nspid=(6001, 1))
    proc.add(6010, "vault", ppid=6001, ns="pid:[600]", limit=(512 * KIB,), nspid=(6010, 58))
    return proc, run


def test_incus_lxc_conf_in_its_run_directory(tmp_path):
    """Incus keeps a guest's lxc.conf in /run/incus/NAME, not beside its lxc.log: what it gave at start is read
    there, by the monitor's name (PROJECT_NAME outside the default project)."""
    proc, run = incus_host(tmp_path, project_prlimit="262144")
    api = FakeApi([api_instance("vault", project="vault", limits_kernel_memlock="262144")])
    report = MemlockProbe(api, project="vault", endpoint=INCUS_ENDPOINT, proc_root=str(proc.root),
                          lxc_conf_dirs={"incusd": str(run)}).run()
    vault = report.instances[0]
    assert (vault.project, vault.source, vault.pid1.host_pid) == ("vault", PROC, 6001)
    assert (vault.lxd_at_start.source, vault.lxd_at_start.memlock.soft_bytes) == ("limits.kernel.memlock", 262144)
    assert not vault.restart_required


def test_incus_default_project_guest_started_on_the_old_daemon_limit(tmp_path):
    proc, run = incus_host(tmp_path)
    api = FakeApi([api_instance("vault")], outputs={"vault": NO_UNITS})
    report = MemlockProbe(api, endpoint=INCUS_ENDPOINT, proc_root=str(proc.root),
                          lxc_conf_dirs={"incusd": str(run)}).run()
    vault = report.instances[0]
    assert (vault.project, vault.pid1.host_pid) == ("default", 5001)
    assert (vault.lxd_at_start.source, vault.lxd_at_start.memlock.soft_bytes) == ("the LXD daemon", 512 * KIB)
    assert vault.lxd_now.memlock.soft_bytes == 6 * MIB
    assert vault.restart_required


def test_incus_run_directory_only_for_incus(tmp_path, host):
    """The run directory is Incus's alone: an LXD daemon's lxc.conf is still read beside the guest's lxc.log."""
    api = FakeApi([api_instance("g2", project="prod", limits_kernel_memlock="65536")], outputs={"g2": NO_UNITS})
    report = MemlockProbe(api, project="prod", endpoint=ENDPOINT, proc_root=str(host.root),
                          lxc_conf_dirs={"incusd": str(tmp_path / "nowhere")}).run()
    assert report.instances[0].lxd_at_start.source == "limits.kernel.memlock"


def test_snap_lxd_guests_of_a_project(tmp_path):
    """The snap's daemon (`lxd`, state under /var/snap/lxd/common/lxd) keeps lxc.conf beside lxc.log, as deb LXD does;
    a guest of the project prod has the monitor prod_web."""
    from _host_proc import HostProc

    proc = HostProc(tmp_path / "proc")
    proc.add(4885, "lxd", cmdline="lxd\0--logfile\0/var/snap/lxd/common/lxd/logs/lxd.log", limit=(4 * MIB,))
    proc.add_monitor(7000, "prod_web", limit=(512 * KIB,), lxd_dir="/var/snap/lxd/common/lxd")
    proc.add(7001, "systemd", ppid=7000, ns="pid:[700]", limit=(512 * KIB,), nspid=(7001, 1))
    proc.add(7010, "vault", ppid=7001, ns="pid:[700]", limit=(512 * KIB,), nspid=(7010, 58))
    # A deb LXD's guest of the same name on the same machine is not the snap's.
    proc.add_monitor(8000, "web", limit=(4 * MIB,))
    proc.add(8001, "systemd", ppid=8000, ns="pid:[800]", limit=(4 * MIB,), nspid=(8001, 1))
    api = FakeApi([api_instance("web", project="prod")])
    report = MemlockProbe(api, project="prod", endpoint="/var/snap/lxd/common/lxd/unix.socket",
                          proc_root=str(proc.root)).run()
    web = report.instances[0]
    assert (web.source, web.pid1.host_pid, web.processes[0].host_pid) == (PROC, 7001, 7010)
    assert (web.lxd_at_start.source, web.lxd_at_start.memlock.soft_bytes) == ("the LXD daemon", 512 * KIB)
    assert (web.restart_required, web.verdict) == (True, "restart_pending")
    assert web.message.endswith("after a restart it gets 4 MiB from the LXD daemon, so restart the guest to apply it")


def test_probe_reads_a_bao_inside_a_guest_it_cannot_see_from_the_host(host):
    """A virtual machine's bao: read by the script inside it, which sees neither the host's swap nor its cgroups."""
    api = FakeApi([api_instance("vm1", type_="virtual-machine")],
                  outputs={"vm1": exec_output(8 * MIB, [(900, "bao", 8 * MIB, 211104532)], uid_map=PRIVILEGED_MAP,
                                              units="@@900 cgroup\n0::/system.slice/openbao.service\n" + BAO_UNITS)})
    vm1 = MemlockProbe(api, endpoint=ENDPOINT, proc_root=str(host.root)).run().instances[0]
    assert vm1.verdict == "unknown"
    assert "whether the host has swap could not be read (the guest was read by a command run inside it" in vm1.message
    assert "MemorySwapMax=0 is set for openbao.service but not enforced" in vm1.message
    assert "LimitMEMLOCK" not in vm1.message
    assert vm1.swap.hidden and vm1.processes[0].cgroup_swap is None
    assert vm1.processes[0].unit == "openbao.service"
