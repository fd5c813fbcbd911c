# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake LXD host /proc tree for the host-scan and probe tests."""

from __future__ import annotations

import os

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
    """An LXD host's /proc in tmp_path: stat, cmdline, comm, ns/pid links, limits, status, uid_map, fd links;
    and the log directory (tmp_path/log) where LXD writes each guest's lxc.conf and lxc.log."""

    def __init__(self, root):
        self.root = root
        self.logs = root.parent / "log"
        root.mkdir()
        self.logs.mkdir()
        (root / "meminfo").write_text("MemTotal:       25165824 kB\nSwapTotal:             0 kB\n")
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
        (directory / "fd").mkdir()
        os.symlink("/dev/null", directory / "fd" / "0")

    def add_monitor(self, pid, name, limit, prlimit=None, lxd_dir="/var/lib/lxd", ns=HOST_NS, comm="lxd",
                    conf_root=None):
        """A guest's [lxc monitor] with the limit the daemon had at the guest's start, holding its lxc.log open
        beside the lxc.conf LXD wrote then (with lxc.prlimit.memlock when limits.kernel.memlock was set).
        Incus writes that lxc.conf in its run directory instead: conf_root/NAME/lxc.conf."""
        self.add(pid, comm, cmdline=f"[lxc monitor] {lxd_dir}/containers {name}", limit=limit, ns=ns)
        log_dir = self.logs / name
        log_dir.mkdir()
        conf_dir = log_dir if conf_root is None else conf_root / name
        conf_dir.mkdir(parents=True, exist_ok=True)
        conf = f"lxc.log.file = {log_dir}/lxc.log\nlxc.uts.name = {name}\n"
        if prlimit is not None:
            conf += f"lxc.prlimit.memlock = {prlimit}\n"
        (conf_dir / "lxc.conf").write_text(conf)
        (log_dir / "lxc.log").write_text("")
        os.symlink(str(log_dir / "lxc.log"), self.root / str(pid) / "fd" / "8")


def make_host(tmp_path):
    """The daemon (8 MiB now), guests g1 (started while the daemon had 64 KiB; a vault under systemd and one
    started by `lxc exec`), prod_g2 (project prod, privileged, bao, limits.kernel.memlock 64 KiB at its start), a
    nested daemon's g3, and processes that must be ignored."""
    proc = HostProc(tmp_path / "proc")
    proc.add(4885, "lxd", cmdline="lxd\0--group\0root", limit=(8 * MIB,))
    proc.add_monitor(28466, "g1", limit=(64 * KIB,))
    proc.add(28482, "systemd", ppid=28466, ns="pid:[100]", limit=(64 * KIB,), nspid=(28482, 1))
    proc.add(29409, "vault", ppid=28482, ns="pid:[100]", limit=(64 * KIB,), nspid=(29409, 58))
    proc.add(29499, "lxd", ppid=4885, cmdline="lxd\0forkexec")
    proc.add(29500, "vault", ppid=29499, ns="pid:[100]", limit=(8 * MIB,), nspid=(29500, 77), vmsize_kib=4096)
    proc.add_monitor(30000, "prod_g2", limit=(8 * MIB,), prlimit="65536")
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
