# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
import uuid

import pytest
from _files import put
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capabilities import parse_capabilities
from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import parse_units, split_sections
from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import (
    EXEC_SCRIPT,
    FactsError,
    MemlockReport,
    ProcDir,
    ProcSnapshot,
    SwapFacts,
    asks_units,
    binary_capabilities,
    capability_text,
    exec_command,
    gather_machine,
    lock_exemption,
    read_disable_mlock,
    unit_lock_exemption,
    units_to_ask,
    units_with_configs,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import UnitFacts, UnitsFacts
from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import SwapArea
from ansible_collections.vault_mlock.lxd.plugins.module_utils._swap import judge_swap_area
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import RLIM_INFINITY, MemlockLimit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._xattr_caps import encode_xattr

KIB = 1024
IPC_LOCK_EP = encode_xattr(parse_capabilities("cap_ipc_lock=ep"))
UNPRIVILEGED_MAP = "         0    1000000 1000000000\n"
IDENTITY_MAP = "         0          0 4294967295\n"


def limits_text(soft, hard) -> str:
    def word(value):
        return "unlimited" if value is None else str(value)

    return (
        "Limit                     Soft Limit           Hard Limit           Units\n"
        "Max processes             63883                63883                processes\n"
        f"Max locked memory         {word(soft):<20} {word(hard):<20} bytes\n"
    )


def status_text(name, nspid, vmsize_kib=0, vmlck_kib=0, cap_eff=0, cap_bnd=0x1FFFFFFFFFF, ppid=0) -> str:
    return (
        f"Name:\t{name}\nState:\tS (sleeping)\nPid:\t{nspid[0]}\nPPid:\t{ppid}\n"
        f"NSpid:\t{'	'.join(str(p) for p in nspid)}\n"
        f"VmSize:\t{vmsize_kib:8d} kB\nVmLck:\t{vmlck_kib:8d} kB\n"
        f"CapEff:\t{cap_eff:016x}\nCapBnd:\t{cap_bnd:016x}\n"
    )


class FakeProc:
    """A proc directory in tmp_path, with real executables (and xattrs) behind /proc/PID/exe."""

    def __init__(self, root):
        self.root = root
        self.bin = root.parent / "bin"
        self.bin.mkdir(exist_ok=True)
        root.mkdir(exist_ok=True)

    def add(self, pid, name, limit=(65536, 65536), nspid=None, vmsize_kib=0, vmlck_kib=0, cap_eff=0,
            cap_bnd=0x1FFFFFFFFFF, uid_map=UNPRIVILEGED_MAP, binary=None, xattr=None):
        directory = self.root / str(pid)
        directory.mkdir()
        (directory / "comm").write_text(name[:15] + "\n")
        (directory / "limits").write_text(limits_text(*limit))
        (directory / "status").write_text(
            status_text(name[:15], nspid or (pid,), vmsize_kib, vmlck_kib, cap_eff, cap_bnd))
        (directory / "uid_map").write_text(uid_map)
        if binary:
            target = self.bin / os.path.basename(binary)
            target.write_bytes(b"\x7fELF")
            if xattr:
                os.setxattr(target, "security.capability", xattr)
            os.symlink(target, directory / "exe")
        return directory


@pytest.fixture
def proc(tmp_path):
    return FakeProc(tmp_path / "proc")


def test_gather_inside_a_guest(proc):
    proc.add(1, "systemd", limit=(65536, 65536), binary="/usr/lib/systemd/systemd")
    proc.add(58, "vault", limit=(65536, 131072), vmsize_kib=1360, cap_eff=1 << 14,
             binary="/usr/local/bin/vault", xattr=IPC_LOCK_EP)
    proc.add(70, "bao", vmsize_kib=2048, vmlck_kib=2048, cap_bnd=0, binary="/usr/bin/bao")
    proc.add(80, "sshd", binary="/usr/sbin/sshd")

    facts = gather_machine(ProcDir(str(proc.root)))

    assert facts.in_user_namespace is True
    assert facts.pid1.host_pid is None
    assert facts.pid1.memlock.limit == MemlockLimit(65536, 65536)
    assert facts.swap is None
    assert [(p.pid, p.host_pid, p.name) for p in facts.processes] == [(58, None, "vault"), (70, None, "bao")]
    vault, bao = facts.processes
    assert vault.memlock == MemlockReport(65536, 131072, 64, 128, "64K:128K")
    assert (vault.vmsize_bytes, vault.vmlck_bytes) == (1360 * KIB, 0)
    assert (vault.cap_ipc_lock_effective, vault.cap_ipc_lock_bounding) == (True, True)
    assert vault.binary.endswith("/bin/vault")
    assert vault.binary_capabilities == "cap_ipc_lock=ep"
    assert (bao.cap_ipc_lock_effective, bao.cap_ipc_lock_bounding) == (False, False)
    assert bao.binary_capabilities == ""


def test_gather_a_guest_through_the_host_proc(proc):
    proc.add(28482, "systemd", limit=(262144, 262144), nspid=(28482, 1))
    proc.add(29409, "vault", limit=(262144, 262144), nspid=(29409, 58), vmsize_kib=4096)
    proc.add(29999, "vault")  # another guest's vault: not in the list the host scan gave

    source = ProcDir(str(proc.root), pid1=28482, pids=[29409, 31337], host_view=True)  # 31337 is gone
    facts = gather_machine(source, ["vault"])

    assert facts.pid1.host_pid == 28482
    assert facts.pid1.memlock.soft_ulimit_kib == 256
    assert [(p.pid, p.host_pid) for p in facts.processes] == [(58, 29409)]
    assert facts.processes[0].binary == ""  # no exe link: unreadable, not a failure


@pytest.mark.parametrize("pid1_namespace, self_namespace", [("pid:[1]", None), (None, "pid:[1]")])
def test_gather_keeps_to_the_pid_namespace_of_pid1(proc, pid1_namespace, self_namespace):
    # PID 1's link may be unreadable (a non-dumpable init): then our own namespace is the machine's.
    for pid, name, namespace in [(1, "init", pid1_namespace), (10, "vault", "pid:[1]"), (20, "vault", "pid:[2]"),
                                 (30, "vault", None)]:
        directory = proc.add(pid, name)
        if namespace:
            (directory / "ns").mkdir()
            os.symlink(namespace, directory / "ns" / "pid")
    if self_namespace:
        (proc.root / "self" / "ns").mkdir(parents=True)
        os.symlink(self_namespace, proc.root / "self" / "ns" / "pid")
    # 20 runs in a guest of this machine; 30's namespace cannot be read, so it is kept.
    assert [p.pid for p in gather_machine(ProcDir(str(proc.root))).processes] == [10, 30]


def test_gather_without_pid1_fails_with_the_path(proc):
    proc.add(58, "vault")
    with pytest.raises(FactsError, match=r"/proc/1\b"):
        gather_machine(ProcDir(str(proc.root)))


def test_gather_swap(proc):
    proc.add(1, "init", uid_map=IDENTITY_MAP)
    (proc.root / "meminfo").write_text("MemTotal:       24576000 kB\nSwapTotal:       1024 kB\n")
    (proc.root / "swaps").write_text("Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1024 0 -2\n")
    facts = gather_machine(ProcDir(str(proc.root)), with_swap=True)
    assert facts.in_user_namespace is False
    assert facts.swap.total_bytes == 1024 * KIB
    assert facts.swap.areas == [SwapArea("/swapfile", "file", 1024 * KIB, 0, -2)]


def test_gather_swap_without_the_files(proc):
    proc.add(1, "init")
    facts = gather_machine(ProcDir(str(proc.root)), with_swap=True)
    assert (facts.swap.total_bytes, facts.swap.areas) == (None, [])


SNAPSHOT_OUTPUT = "\n".join([
    "@@self limits", limits_text(8388608, 8388608),
    "@@1 uid_map", UNPRIVILEGED_MAP,
    "@@1 limits", limits_text(65536, 65536),
    "@@1 status", status_text("systemd", (1,)),
    "@@58 status", status_text("vault", (58,), vmsize_kib=1360, cap_eff=1 << 14),
    "@@58 limits", limits_text(65536, 65536),
    "@@58 exe", "/usr/local/bin/vault",
    "@@58 xattr", IPC_LOCK_EP.hex(),
    "@@70 status", status_text("bao", (70,), vmsize_kib=100),
    "@@70 limits", limits_text(None, None),
    "@@70 exe", "/usr/bin/bao",
    "@@70 getcap", "/usr/bin/bao cap_ipc_lock,cap_net_bind_service=ep",
    "@@71 status", status_text("bao", (71,)),
    "@@71 limits", limits_text(None, None),
    "@@71 exe", "/opt/bao",
    "@@71 getcap", "/opt/bao = cap_ipc_lock+ep",
    "",
])


def test_snapshot_from_exec_output():
    snapshot = ProcSnapshot.parse(SNAPSHOT_OUTPUT)
    facts = gather_machine(snapshot, ["vault", "bao"])
    assert snapshot.exec_memlock == MemlockLimit(8388608, 8388608)
    assert facts.in_user_namespace is True
    assert facts.pid1.memlock.limit == MemlockLimit(65536, 65536)
    assert [(p.pid, p.host_pid, p.binary, p.binary_capabilities) for p in facts.processes] == [
        (58, None, "/usr/local/bin/vault", "cap_ipc_lock=ep"),
        (70, None, "/usr/bin/bao", "cap_ipc_lock,cap_net_bind_service=ep"),
        (71, None, "/opt/bao", "cap_ipc_lock+ep"),
    ]
    assert facts.processes[1].memlock.systemd_value == "infinity"


@pytest.mark.parametrize("output", ["", "sh: 1: cannot open /proc/1/limits\n", "@@1 status\nName:\tinit\n"])
def test_snapshot_without_pid1_limits(output):
    with pytest.raises(FactsError, match="/proc/1/limits"):
        ProcSnapshot.parse(output)


def test_snapshot_without_self_limits_knows_no_exec_limit():
    assert ProcSnapshot.parse("@@1 limits\n" + limits_text(1, 1)).exec_memlock is None


@pytest.mark.parametrize(
    "names, expected_tail",
    [
        (["vault", "bao"], ["sh", "vault.service openbao.service", "vault", "bao"]),
        (["vault-server-production"], ["sh", "vault.service openbao.service", "vault-server-pr"]),
    ],
)
def test_exec_command(names, expected_tail):
    argv = exec_command(names, ["vault.service", "openbao.service"])
    assert argv[:3] == ["sh", "-c", EXEC_SCRIPT]
    assert argv[3:] == expected_tail


@pytest.mark.parametrize(
    "raw, expected",
    [
        (None, ""),
        (b"", ""),
        (IPC_LOCK_EP, "cap_ipc_lock=ep"),
        (encode_xattr(parse_capabilities("cap_ipc_lock+p"), rootid=1000000), "cap_ipc_lock=p"),
    ],
)
def test_binary_capabilities(raw, expected):
    assert binary_capabilities(raw) == expected


def test_binary_capabilities_of_garbage_says_so():
    assert binary_capabilities(b"\x09\x00\x00\x09").startswith("undecodable security.capability")
    with pytest.raises(ValueError):
        capability_text(b"\x01")


@given(st.one_of(st.none(), st.integers(min_value=0, max_value=RLIM_INFINITY - 1)))
def test_memlock_report_round_trip(size):
    report = MemlockReport.of(MemlockLimit(size, size))
    assert report.limit == MemlockLimit(size, size)
    assert report.soft_ulimit_kib == (None if size is None else size // 1024)


def test_memlock_report_is_a_plain_dict():
    assert dataclasses.asdict(MemlockReport.of(MemlockLimit(262144, None))) == {
        "soft_bytes": 262144, "hard_bytes": None, "soft_ulimit_kib": 256, "hard_ulimit_kib": None,
        "systemd_value": "256K:infinity",
    }


@pytest.fixture
def sleeper(tmp_path):
    """A real process with a unique name whose binary carries cap_ipc_lock=ep."""
    name = "vt" + uuid.uuid4().hex[:10]
    binary = tmp_path / name
    shutil.copy(shutil.which("sleep"), binary)
    os.setxattr(binary, "security.capability", IPC_LOCK_EP)
    process = subprocess.Popen([str(binary), "60"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{process.pid}/comm") as comm:
                if comm.read().strip() == name:
                    break
        except OSError:
            pass
        time.sleep(0.01)
    yield name, process.pid, str(binary)
    process.kill()
    process.wait()


def test_exec_script_reads_what_proc_dir_reads(sleeper):
    """The sh script (run here, as it would run in a guest) and ProcDir agree on the same machine."""
    name, pid, binary = sleeper
    output = subprocess.run(exec_command([name]), capture_output=True, text=True, check=True).stdout
    through_script = gather_machine(ProcSnapshot.parse(output), [name])
    direct = gather_machine(ProcDir("/proc"), [name])
    # Only the cgroups' swap limits differ: a command inside a guest cannot see the host's cgroup tree.
    assert direct.processes[0].cgroup_swap is not None
    assert through_script == dataclasses.replace(
        direct, processes=[dataclasses.replace(process, cgroup_swap=None) for process in direct.processes])
    assert [(p.pid, p.binary, p.binary_capabilities) for p in direct.processes] == [(pid, binary, "cap_ipc_lock=ep")]
    # It has nothing locked (VmLck 0), so its unit is asked about: its MemorySwapMax would count.
    sections = split_sections(output)
    assert ("systemd", "manager") in sections or ("systemd", "absent") in sections


def test_exec_script_asks_systemd_only_where_no_process_matched():
    """Run here: no process of that name, and this machine is not booted with systemd (or knows no such unit)."""
    name = "vt" + uuid.uuid4().hex[:10]
    output = subprocess.run(exec_command([name], [name + ".service"]), capture_output=True, text=True,
                            check=True).stdout
    facts = gather_machine(ProcSnapshot.parse(output), [name])
    units = parse_units(output, [name + ".service"])
    assert facts.processes == []
    assert units.loaded == []
    assert units.systemd is os.path.isdir("/run/systemd/system")


# --- a process with nothing locked: its unit, its cgroups, and Vault's disable_mlock ------------------------

VAULT_HCL = 'storage "raft" {\n  path = "/opt/vault/data"\n}\ndisable_mlock = true\n'


@pytest.mark.parametrize("files, argv, expected", [
    ({"/etc/vault.d/a.hcl": VAULT_HCL}, ["vault", "server", "-config=/etc/vault.d/a.hcl"],
     (True, "disable_mlock = true in /etc/vault.d/a.hcl")),
    # A directory: its *.hcl and *.json in name order, the last setting wins; backups and other files skipped.
    ({"/etc/vault.d/10-storage.hcl": VAULT_HCL, "/etc/vault.d/20-x.json": '{"disable_mlock": "false"}',
      "/etc/vault.d/30.hcl~": "disable_mlock = true\n", "/etc/vault.d/notes.txt": "disable_mlock = true\n"},
     ["vault", "server", "-config", "/etc/vault.d"], (False, 'disable_mlock = "false" in /etc/vault.d/20-x.json')),
    ({"/etc/vault.d/a.hcl": 'ui = true\n'}, ["vault", "server", "--config=/etc/vault.d/a.hcl"], (None, "")),
    ({}, ["vault", "server", "-dev"], (True, "it runs with -dev, which disables mlock")),
    ({}, ["vault", "server", "-config=/etc/missing.hcl"], (None, "")),
    ({"/etc/vault.d/a.hcl": VAULT_HCL}, ["vault", "server", "-config=vault.d/a.hcl"], (None, "")),  # relative
    ({"/etc/vault.d/a.hcl": "disable_mlock = true\nstorage {{{\n"}, ["vault", "server", "-config=/etc/vault.d/a.hcl"],
     (None, "")),  # a file the parser refuses: nothing is assumed
    ({}, ["vault", "server"], (None, "")),
])
def test_read_disable_mlock(tmp_path, files, argv, expected):
    root = tmp_path / "guest"
    root.mkdir()
    for path, text in files.items():
        put(root, path, text)
    assert read_disable_mlock(str(root), argv) == expected


def test_read_disable_mlock_never_follows_a_link_out_of_the_root(tmp_path):
    put(tmp_path / "host", "/etc/vault.hcl", "disable_mlock = true\n")
    root = tmp_path / "guest"
    (root / "etc").mkdir(parents=True)
    os.symlink(str(tmp_path / "host" / "etc" / "vault.hcl"), root / "etc" / "vault.hcl")  # absolute: the host's file
    assert read_disable_mlock(str(root), ["vault", "server", "-config=/etc/vault.hcl"]) == (None, "")
    os.symlink("/etc", root / "etc" / "conf.d")  # resolves inside the root
    put(root, "/etc/a.hcl", "disable_mlock = true\n")
    assert read_disable_mlock(str(root), ["vault", "server", "-config=/etc/conf.d/a.hcl"])[0] is True


def test_gather_the_facts_a_process_with_nothing_locked_is_judged_on(proc, tmp_path):
    """From the host: the unit and the cgroup chain of each process with VmLck 0, and Vault's configuration read
    inside the guest's root (/proc/PID/root); a process that locks gets none of it."""
    proc.add(28482, "systemd", nspid=(28482, 1))
    vault = proc.add(29409, "vault", nspid=(29409, 58), vmsize_kib=4096)
    bao = proc.add(29500, "bao", nspid=(29500, 60), vmsize_kib=211104532)
    locked = proc.add(29600, "vault", nspid=(29600, 61), vmsize_kib=4096, vmlck_kib=4096)
    (vault / "cmdline").write_bytes(b"/usr/bin/vault\0server\0-config=/etc/vault.d\0")
    put(vault / "root", "/etc/vault.d/10-storage.hcl", VAULT_HCL)
    (vault / "cgroup").write_text("0::/lxc.payload.g1/system.slice/vault.service\n")
    (bao / "cgroup").write_text("0::/lxc.payload.g1/system.slice/openbao.service\n")
    (locked / "cgroup").write_text("0::/lxc.payload.g1/system.slice/other.service\n")
    put(proc.root, "/self/mountinfo", "25 21 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n")
    put(proc.root, "/swaps", "Filename\tType\tSize\tUsed\tPriority\n/swap.img file 2097148 0 -2\n")
    put(proc.root, "/meminfo", "MemTotal: 24683520 kB\nSwapTotal: 2097148 kB\n")
    fs = tmp_path / "fs"
    put(fs, "/sys/fs/cgroup/lxc.payload.g1/memory.swap.max", "0\n")
    put(fs, "/sys/fs/cgroup/lxc.payload.g1/system.slice/openbao.service/memory.swap.max", "max\n")

    source = ProcDir(str(proc.root), pid1=28482, pids=[29409, 29500, 29600], host_view=True, fs_root=str(fs))
    facts = gather_machine(source, ["vault", "bao"], with_swap=True)

    found = {process.pid: process for process in facts.processes}
    assert (found[58].unit, found[58].disable_mlock, found[58].disable_mlock_source) == (
        "vault.service", True, "disable_mlock = true in /etc/vault.d/10-storage.hcl")
    assert found[58].cgroup_swap.enforced_by.cgroup == "/lxc.payload.g1"
    assert (found[60].unit, found[60].disable_mlock) == ("openbao.service", None)  # bao's configuration is not read
    assert [entry.swap_max_bytes for entry in found[60].cgroup_swap.chain] == [None, 0]
    assert (found[61].unit, found[61].cgroup_swap, found[61].disable_mlock) == ("other.service", None, None)
    assert [lock_exemption(found[pid]) for pid in (58, 60, 61)] == [
        "disable_mlock = true in /etc/vault.d/10-storage.hcl", "OpenBao removed mlock in 2.0", ""]
    area = SwapArea("/swap.img", "file", 2097148 * KIB, 0, -2)
    assert facts.swap == SwapFacts(2097148 * KIB, [area], "", [judge_swap_area(area, str(fs / "sys"))])
    assert facts.swap.host.exposing[0].detail == "/swap.img, a swap file on disk"
    assert asks_units(facts)
    assert units_to_ask(facts, ["vault.service"]) == ["vault.service", "openbao.service"]


def test_inside_a_guest_under_lxcfs_the_host_swap_is_hidden(proc):
    proc.add(1, "systemd")
    put(proc.root, "/self/mountinfo",
        "664 652 0:53 /proc/swaps /proc/swaps rw,nosuid,nodev,relatime - fuse.lxcfs lxcfs rw,user_id=0\n")
    put(proc.root, "/swaps", "Filename\tType\tSize\tUsed\tPriority\n")
    put(proc.root, "/meminfo", "SwapTotal: 0 kB\n")
    swap = gather_machine(ProcDir(str(proc.root)), with_swap=True).swap
    assert "fuse.lxcfs" in swap.hidden
    assert swap.host.known is False  # 0 kB here says nothing about the host


def test_no_units_asked_where_every_process_locks(proc):
    proc.add(1, "systemd")
    proc.add(58, "vault", vmsize_kib=4096, vmlck_kib=4096)
    assert not asks_units(gather_machine(ProcDir(str(proc.root))))


def _unit(name, argv):
    return UnitFacts(name=name, load_state="loaded", active_state="failed", sub_state="failed", result="exit-code",
                     restarts=0, exit_status=1, asked=None, exec_argv=argv)


def test_units_are_exempt_from_memlock_by_name_binary_or_configuration(tmp_path):
    put(tmp_path, "/etc/vault.d/a.hcl", VAULT_HCL)
    units = UnitsFacts(True, None, [
        _unit("vault.service", ("/usr/bin/vault", "server", "-config=/etc/vault.d/a.hcl")),
        _unit("vault-agent.service", ("/usr/bin/vault", "agent", "-config=/etc/vault.d/none.hcl")),
        _unit("secrets.service", ("/usr/local/bin/bao", "server")),
        _unit("openbao.service", ()),
    ])
    judged = units_with_configs(units, str(tmp_path))
    assert [unit_lock_exemption(unit) for unit in judged.units] == [
        "disable_mlock = true in /etc/vault.d/a.hcl", "", "OpenBao removed mlock in 2.0", "OpenBao removed mlock in 2.0"]
    assert units_with_configs(units, None) is units  # read inside the guest by a command: no files
