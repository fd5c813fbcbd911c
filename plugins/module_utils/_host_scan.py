# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The LXD host's /proc view of its guests.

Each running container has an ``[lxc monitor] LXD_DIR/containers NAME`` process whose child is
the guest's init. One pass over /proc finds every init and the processes that share its PID
namespace, so a guest's limits are read from the host without running anything inside it.

The monitor also tells what LXD gave the guest when it started: it keeps the memlock limit the
daemon had at that moment, and the lxc.conf the daemon wrote then carries limits.kernel.memlock as
``lxc.prlimit.memlock``, which liblxc set on the init. LXD writes that file beside the lxc.log the
monitor holds open; Incus writes it in its run directory (/run/incus/NAME/lxc.conf, measured on
Incus 6.0.4), and keeps only the log in /var/log/incus/NAME. Both are the host's own files, never
the guest's.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import (
    comm_matches,
    parse_cmdline,
    parse_stat,
    read_memlock_limit,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, SizeError, parse_limit

DAEMON_NAMES = ("lxd", "incusd")
# Where a daemon writes the lxc.conf of each guest it starts (DIR/NAME/lxc.conf), by the daemon's process name;
# a daemon not named here (LXD, deb or snap) writes it beside the guest's lxc.log.
LXC_CONF_DIRS = {"incusd": "/run/incus"}
MONITOR_PREFIX = "[lxc monitor] "
PRLIMIT_MEMLOCK = "lxc.prlimit.memlock"


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
    """Guests found in the host's /proc: init and monitor PIDs by monitor name, matching process PIDs by init PID."""

    inits: Dict[str, int] = field(default_factory=dict)
    monitors: Dict[str, int] = field(default_factory=dict)
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
            # A monitor is a fork of the daemon's binary: only those need their command line read.
            cmdline = parse_cmdline(_read_bytes(os.path.join(proc_root, entry, "cmdline"))) \
                if comm in DAEMON_NAMES else []
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
        scan.monitors[name] = monitor_pid
        scan.processes[init] = []
    add_by_namespace(proc_root, init_by_ns, candidates, scan.processes)
    return scan


def init_namespaces(proc_root: str, inits) -> Dict[str, int]:
    """{PID namespace: init PID} of the inits whose namespace can still be read."""
    found = {}
    for init in inits:
        try:
            found[_pid_namespace(proc_root, init)] = init
        except OSError:
            continue  # gone meanwhile
    return found


def add_by_namespace(proc_root: str, init_by_ns: Dict[str, int], candidates, processes: Dict[int, List[int]]) -> None:
    """Adds each of ``candidates`` to ``processes[init]`` of the init whose PID namespace it shares."""
    for pid in candidates:
        try:
            init = init_by_ns.get(_pid_namespace(proc_root, pid))
        except OSError:
            continue
        if init is not None:
            processes[init].append(pid)


def daemon_comm(proc_root: str, server_pid: Optional[int]) -> str:
    """The daemon's process name (``lxd``, ``incusd``); empty when it cannot be read."""
    if not server_pid:
        return ""
    try:
        return _read_bytes(os.path.join(proc_root, str(server_pid), "comm")).decode("utf-8", "replace").strip()
    except OSError:
        return ""


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


def parse_prlimit_memlock(lxc_conf: str) -> Optional[MemlockLimit]:
    """``lxc.prlimit.memlock`` of an lxc.conf text (limits.kernel.memlock as the guest started); None when unset."""
    value = None
    for line in lxc_conf.splitlines():
        key, sep, rest = line.partition("=")
        if sep and key.strip() == PRLIMIT_MEMLOCK:
            value = rest.strip()  # the last one counts, as for liblxc
    if value is None:
        return None
    try:
        return parse_limit(value, PRLIMIT_MEMLOCK)
    except SizeError:
        return None


def lxc_conf_path(proc_root: str, monitor_pid: int) -> Optional[str]:
    """The lxc.conf LXD wrote when the guest started: beside the lxc.log its monitor holds open.

    Incus writes it elsewhere (LXC_CONF_DIRS); its callers name that file themselves.
    """
    fd_dir = os.path.join(proc_root, str(monitor_pid), "fd")
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if os.path.isabs(target) and os.path.basename(target) == "lxc.log":
            return os.path.join(os.path.dirname(target), "lxc.conf")
    return None


@dataclass(frozen=True)
class StartLimit:
    """What LXD gave a guest when it started, and where that came from."""

    memlock: MemlockLimit
    source: str  # "limits.kernel.memlock" or "the LXD daemon"


def read_start_limit(proc_root: str, monitor_pid: int, lxc_conf: Optional[str] = None) -> Optional[StartLimit]:
    """The memlock limit LXD gave the guest of this monitor at its start; None when it cannot be read.

    ``lxc_conf`` saves looking for the file through the monitor's open files, where the caller knows it.
    """
    try:
        daemon_then = read_memlock_limit(monitor_pid, proc_root)
        path = lxc_conf if lxc_conf and os.path.isfile(lxc_conf) else lxc_conf_path(proc_root, monitor_pid)
        if path is None:
            return None
        with open(path, encoding="utf-8", errors="replace") as conf:
            prlimit = parse_prlimit_memlock(conf.read())
    except (OSError, ValueError):
        return None
    if prlimit is not None:
        return StartLimit(prlimit, "limits.kernel.memlock")
    return StartLimit(daemon_then, "the LXD daemon")
