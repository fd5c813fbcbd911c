# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Memlock facts of one machine: PID 1's limit, the Vault processes, user namespace, swap.

For a process that has locked nothing (VmLck 0: OpenBao, or Vault with mlock disabled) the facts
also hold what its verdict rests on instead: its cgroup's memory.swap.max chain, its unit, and for
Vault whether its configuration (the -config files of its command line) says disable_mlock.

The facts are read through a *source* that offers a machine's /proc:

- ``ProcDir`` reads a proc directory directly: ``/proc`` inside the machine itself, or the
  LXD host's ``/proc`` with a guest's init PID and the host PIDs of its processes.
- ``ProcSnapshot`` holds what ``EXEC_SCRIPT`` printed when run inside a guest (through
  ``lxc exec`` or the API), for guests whose processes the host cannot see. Where no Vault
  process runs, the same script also asks the guest's systemd about Vault's units
  (_guest_units), so that one command answers both.

``gather_machine()`` turns either into one ``MachineFacts``; the verdict is judged elsewhere.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capabilities import format_capabilities
from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import (
    UNITS_FUNCTION,
    UnitFacts,
    UnitsFacts,
    split_sections,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._capability_names import CAP_IPC_LOCK, CAP_SYS_RESOURCE
from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import (
    COMM_LENGTH,
    SwapArea,
    comm_matches,
    has_capability,
    in_user_namespace,
    parse_memlock_limit,
    parse_meminfo_swap_total,
    parse_status,
    parse_swaps,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._config_syntax import ConfigError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._exec_start import server_config_flags
from ansible_collections.vault_mlock.lxd.plugins.module_utils._safe_root import listdir_in_root, read_text_in_root
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, MemlockReport
from ansible_collections.vault_mlock.lxd.plugins.module_utils._swap import (
    CgroupSwap,
    HostSwap,
    SwapDevice,
    gather_cgroup_swap,
    judge_swap_area,
    swap_view_hidden,
    unit_of_cgroup,
    zswap_enabled,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_config import (
    DIRECTORY_SUFFIXES,
    is_editor_backup,
    read_config,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_server import looks_like_openbao
from ansible_collections.vault_mlock.lxd.plugins.module_utils._xattr_caps import XATTR_NAME, decode_xattr

DEFAULT_PROCESS_NAMES = ("vault", "bao")
OPENBAO_UNITS = ("openbao.service", "bao.service")
OPENBAO_EXEMPTION = "OpenBao removed mlock in 2.0"


class FactsError(Exception):
    """The facts of a machine could not be read. The message says what and why."""


@dataclass(frozen=True)
class ProcessFacts:
    """One process whose name is looked for (vault, bao, ...)."""

    pid: int  # as the machine itself numbers it (inside the guest)
    host_pid: Optional[int]  # as the LXD host numbers it; None when read inside the machine
    name: str
    memlock: MemlockReport
    vmsize_bytes: int
    vmlck_bytes: int
    cap_ipc_lock_effective: bool
    cap_ipc_lock_bounding: bool
    binary: str  # path inside the machine; '' when unreadable
    binary_capabilities: str  # getcap-like text of the binary's security.capability; '' when none
    unit: str = ""  # the systemd service it runs in, from its cgroup; '' when none shows
    # Only for a process with nothing locked (VmLck 0):
    disable_mlock: Optional[bool] = None  # what its configuration says (Vault); None when unknown or unset
    disable_mlock_source: str = ""  # where that was read: 'disable_mlock = true in /etc/vault.d/a.hcl', '-dev'
    cgroup_swap: Optional[CgroupSwap] = None  # its cgroups' memory.swap.max; None when not read


@dataclass(frozen=True)
class Pid1Facts:
    host_pid: Optional[int]
    memlock: MemlockReport  # as it is now: systemd raises its own soft limit at boot
    cap_sys_resource: bool  # CAP_SYS_RESOURCE in its effective set (it counts outside a user namespace only)


@dataclass(frozen=True)
class SwapFacts:
    total_bytes: Optional[int]
    areas: List[SwapArea] = field(default_factory=list)
    hidden: str = ""  # why these are not the host's own figures ('' when they are)
    devices: List[SwapDevice] = field(default_factory=list)  # each area judged from the host's sysfs
    zswap: Optional[bool] = None

    @property
    def host(self) -> HostSwap:
        """The host's swap as a verdict takes it: unknown where these figures are not the host's."""
        if self.hidden:
            return HostSwap(None)
        return HostSwap(self.total_bytes, tuple(area.name for area in self.areas), tuple(self.devices), self.zswap)


@dataclass(frozen=True)
class MachineFacts:
    in_user_namespace: bool
    pid1: Pid1Facts
    processes: List[ProcessFacts]
    swap: Optional[SwapFacts] = None


def capability_text(raw: bytes) -> str:
    """getcap's text for a security.capability value (a namespace's rootid is not shown, as getcap without -n)."""
    return format_capabilities(decode_xattr(raw, XATTR_NAME).capabilities)


def binary_capabilities(raw: Optional[bytes]) -> str:
    """getcap-like text of a security.capability value; '' when the binary has none."""
    if not raw:
        return ""
    try:
        return capability_text(raw)
    except ValueError as exc:
        return f"undecodable security.capability ({exc})"


class ProcDir:
    """A proc directory seen from where the code runs.

    Inside a machine: ``ProcDir()``. From the LXD host for one guest:
    ``ProcDir("/proc", pid1=INIT_HOST_PID, pids=[...], host_view=True)``.
    """

    def __init__(self, root: str = "/proc", pid1: int = 1, pids: Optional[Iterable[int]] = None,
                 host_view: bool = False, fs_root: str = "/") -> None:
        self.root = root
        self.pid1 = pid1
        self._pids = None if pids is None else sorted(set(pids))
        self.host_view = host_view
        self.fs_root = fs_root  # where the reader's mounts (its /sys/fs/cgroup) are read; '/' but in tests
        self._mountinfo: Optional[str] = None

    def pids(self) -> List[int]:
        if self._pids is not None:
            return list(self._pids)
        return sorted(int(entry) for entry in os.listdir(self.root) if entry.isdigit())

    def _path(self, pid, name: str) -> str:
        return os.path.join(self.root, str(pid), name)

    def read(self, pid: int, name: str) -> str:
        with open(self._path(pid, name), encoding="utf-8", errors="replace") as text:
            return text.read()

    def read_global(self, name: str) -> str:
        with open(os.path.join(self.root, name), encoding="utf-8", errors="replace") as text:
            return text.read()

    def comm(self, pid: int) -> str:
        return self.read(pid, "comm").rstrip("\n")

    def pid_namespace(self, pid) -> Optional[str]:
        """The PID namespace link of a process; None when it cannot be read (not root, or not dumpable)."""
        try:
            return os.readlink(self._path(pid, os.path.join("ns", "pid")))
        except OSError:
            return None

    def machine_pid_namespace(self) -> Optional[str]:
        """PID 1's namespace; inside the machine our own is the same when PID 1's cannot be read."""
        namespace = self.pid_namespace(self.pid1)
        if namespace is None and not self.host_view:
            namespace = self.pid_namespace("self")
        return namespace

    def exe(self, pid: int) -> str:
        try:
            return os.readlink(self._path(pid, "exe"))
        except OSError:
            return ""  # kernel threads have none; other users' processes when not root

    def capability_xattr(self, pid: int) -> Optional[bytes]:
        # /proc/PID/exe leads to the very file the process runs, even from the host
        # and even when its path was replaced since.
        try:
            return os.getxattr(self._path(pid, "exe"), XATTR_NAME)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOTSUP):
                return None
            raise

    def capabilities(self, pid: int) -> str:
        return binary_capabilities(self.capability_xattr(pid))

    def mountinfo(self) -> str:
        """The reader's own mounts (the LXD host's, or the machine's own): where its cgroups can be read."""
        if self._mountinfo is None:
            self._mountinfo = self.read("self", "mountinfo")
        return self._mountinfo

    def cgroup_swap(self, cgroup_text: str) -> Optional[CgroupSwap]:
        try:
            return gather_cgroup_swap(cgroup_text, self.mountinfo(), self.fs_root)
        except OSError as exc:
            return CgroupSwap(None, None, error=f"the mounts could not be read: {exc.strerror or exc}")

    def config_root(self, pid: int) -> Optional[str]:
        """The root the process sees its files in: the guest's through /proc/PID/root from the host."""
        return os.path.join(self.root, str(pid), "root") if self.host_view else self.fs_root

    def sys_root(self) -> str:
        """The kernel's sysfs, where each swap area is told for what it is."""
        return os.path.join(self.fs_root, "sys")

    def swap_hidden(self) -> str:
        """Why this /proc's swap figures are not the host's own ('' when they are)."""
        if self.host_view:
            return ""
        try:
            return swap_view_hidden(self.mountinfo())
        except OSError:
            return ""


# Runs in any guest with a POSIX sh (dash, busybox). Prints sections headed "@@PID NAME".
# "@@self limits" is the exec'd shell's own limit: what the LXD daemon hands a new process now
# (with limits.kernel.memlock as the guest started with it). $1 holds Vault's unit names, the
# other arguments the process names; the units are asked about only when no process matched, or
# when one has nothing locked (its unit's MemorySwapMax then counts).
EXEC_SCRIPT = UNITS_FUNCTION + r"""
units=$1; shift
found=
unlocked=
echo "@@self limits"; cat /proc/$$/limits
echo "@@1 uid_map"; cat /proc/1/uid_map
echo "@@1 limits"; cat /proc/1/limits
echo "@@1 status"; cat /proc/1/status
ns1=$(readlink /proc/1/ns/pid 2>/dev/null || readlink /proc/$$/ns/pid 2>/dev/null)
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  { read -r c < "$d/comm"; } 2>/dev/null || continue
  for n in "$@"; do
    [ "$c" = "$n" ] || continue
    [ -z "$ns1" ] || [ "$(readlink "$d/ns/pid" 2>/dev/null)" = "$ns1" ] || break
    found=1
    echo "@@$p status"; cat "$d/status" 2>/dev/null
    echo "@@$p limits"; cat "$d/limits" 2>/dev/null
    echo "@@$p cgroup"; cat "$d/cgroup" 2>/dev/null
    grep -q '^VmLck:[[:space:]]*0 kB' "$d/status" 2>/dev/null && unlocked=1
    x=$(readlink "$d/exe" 2>/dev/null)
    echo "@@$p exe"; echo "$x"
    if command -v python3 >/dev/null 2>&1; then
      echo "@@$p xattr"
      python3 -c 'import os, sys
try:
    print(os.getxattr(sys.argv[1], "@XATTR_NAME@").hex())
except OSError:
    pass' "$d/exe" 2>/dev/null
    elif [ -n "$x" ] && command -v getcap >/dev/null 2>&1; then
      echo "@@$p getcap"; getcap "$x" 2>/dev/null
    fi
    break
  done
done
if [ -z "$found" ] || [ -n "$unlocked" ]; then units_report "$units" "$*"; fi
""".replace("@XATTR_NAME@", XATTR_NAME)


def exec_command(process_names: Sequence[str], units: Sequence[str] = ()) -> List[str]:
    """The argv that runs EXEC_SCRIPT inside a guest for these process names and units."""
    return ["sh", "-c", EXEC_SCRIPT, "sh", " ".join(units)] + [name[:COMM_LENGTH] for name in process_names]


class ProcSnapshot:
    """The sections EXEC_SCRIPT printed, offered like a proc directory (PID 1 is the guest's init)."""

    pid1 = 1
    host_view = False

    def __init__(self, sections: Dict[Tuple[str, str], str]) -> None:
        self._sections = sections

    @classmethod
    def parse(cls, output: str) -> ProcSnapshot:
        sections = split_sections(output)
        if ("1", "limits") not in sections:
            raise FactsError("the guest printed no /proc/1/limits: " + (output.strip()[:200] or "no output"))
        return cls(sections)

    def pids(self) -> List[int]:
        return sorted(int(pid) for pid, name in self._sections if pid.isdigit() and name == "status")

    def read(self, pid, name: str) -> str:
        try:
            return self._sections[(str(pid), name)]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, f"not in the guest's output: /proc/{pid}/{name}") from None

    def read_global(self, name: str) -> str:
        raise FileNotFoundError(errno.ENOENT, f"not in the guest's output: /proc/{name}")

    def comm(self, pid: int) -> str:
        return parse_status(self.read(pid, "status")).name

    def pid_namespace(self, pid) -> Optional[str]:
        return None  # EXEC_SCRIPT printed only processes in PID 1's namespace

    def machine_pid_namespace(self) -> Optional[str]:
        return None

    def exe(self, pid: int) -> str:
        return self._sections.get((str(pid), "exe"), "").strip()

    def capabilities(self, pid: int) -> str:
        hex_text = self._sections.get((str(pid), "xattr"), "").strip()
        if hex_text:
            try:
                return binary_capabilities(bytes.fromhex(hex_text))
            except ValueError:
                return ""
        getcap = self._sections.get((str(pid), "getcap"), "").strip()
        return _strip_getcap_path(getcap, self.exe(pid))

    def cgroup_swap(self, cgroup_text: str) -> Optional[CgroupSwap]:
        return None  # the host's cgroup tree is not seen from inside the guest

    def config_root(self, pid: int) -> Optional[str]:
        return None  # the guest's files are not read through a command

    def sys_root(self) -> Optional[str]:
        return None  # the host's sysfs is not seen from inside the guest

    def swap_hidden(self) -> str:
        return "the guest was read by a command run inside it, where the host's swap cannot be seen"

    @property
    def exec_memlock(self) -> Optional[MemlockLimit]:
        """The limit of the exec'd shell itself (what the LXD daemon hands out now)."""
        text = self._sections.get(("self", "limits"))
        try:
            return parse_memlock_limit(text) if text else None
        except ValueError:
            return None


def _strip_getcap_path(line: str, path: str) -> str:
    # getcap prints "PATH CAPS" (libcap >= 2.41) or "PATH = CAPS" (older).
    if not line:
        return ""
    rest = line[len(path):] if path and line.startswith(path) else line.split(None, 1)[-1]
    rest = rest.strip()
    if rest.startswith("= "):
        rest = rest[2:]
    return rest.strip()


def read_disable_mlock(root: str, argv: Sequence[str]) -> Tuple[Optional[bool], str]:
    """(disable_mlock, where it was read) for a Vault server with this command line, its files under ``root``.

    The -config files and directories are read as the server merges them: the last setting wins.
    (None, '') when no file sets it, or when a file cannot be read or parsed (then nothing is assumed).
    Every path is opened inside ``root`` without following a link out of it.
    """
    paths, dev = server_config_flags(list(argv[1:]))
    if dev:
        return True, "it runs with -dev, which disables mlock"
    value, source = None, ""
    for path in paths:
        if not path.startswith("/"):
            return None, ""  # relative to its working directory
        try:
            files = [f"{path.rstrip('/')}/{name}" for name in listdir_in_root(root, path)
                     if name.endswith(DIRECTORY_SUFFIXES) and not is_editor_backup(name)]
        except NotADirectoryError:
            files = [path]
        except OSError:
            return None, ""
        for file in files:
            try:
                config = read_config(file, read_text_in_root(root, file))
            except IsADirectoryError:
                continue
            except (OSError, ConfigError):
                return None, ""
            if config.settings:
                value, source = config.disable_mlock, f"disable_mlock = {config.settings[-1].text} in {file}"
    return (value, source) if value is not None else (None, "")


def _unlocked_facts(source, pid: int, name: str, cgroup_text: str) -> dict:
    """What a process with nothing locked is judged on: its cgroups' swap limits, and Vault's configuration."""
    facts = dict(cgroup_swap=source.cgroup_swap(cgroup_text))
    root = source.config_root(pid)
    if name == "vault" and root is not None:
        try:
            argv = source.read(pid, "cmdline").split("\0")
        except OSError:
            argv = []
        facts["disable_mlock"], facts["disable_mlock_source"] = read_disable_mlock(root, argv) if argv else (None, "")
    return facts


def _process_facts(source, pid: int, pid_level: int) -> ProcessFacts:
    status = parse_status(source.read(pid, "status"))
    memlock = parse_memlock_limit(source.read(pid, "limits"))
    try:
        cgroup_text = source.read(pid, "cgroup")
    except OSError:
        cgroup_text = ""
    unlocked = _unlocked_facts(source, pid, status.name, cgroup_text) if status.vmlck_bytes == 0 else {}
    # NSpid lists the PID from the reader's namespace inwards; the machine's own
    # number sits at the depth of its PID 1.
    own_pid = status.nspid[pid_level] if len(status.nspid) > pid_level else status.innermost_pid
    return ProcessFacts(
        pid=own_pid,
        host_pid=status.pid if source.host_view else None,
        name=status.name,
        memlock=MemlockReport.of(memlock),
        vmsize_bytes=status.vmsize_bytes,
        vmlck_bytes=status.vmlck_bytes,
        cap_ipc_lock_effective=has_capability(status.cap_effective, CAP_IPC_LOCK),
        cap_ipc_lock_bounding=has_capability(status.cap_bounding, CAP_IPC_LOCK),
        binary=source.exe(pid),
        binary_capabilities=source.capabilities(pid),
        unit=unit_of_cgroup(cgroup_text),
        **unlocked,
    )


def gather_swap(source) -> SwapFacts:
    try:
        total = parse_meminfo_swap_total(source.read_global("meminfo"))
    except OSError:
        total = None
    try:
        areas = parse_swaps(source.read_global("swaps"))
    except OSError:
        areas = []
    hidden = source.swap_hidden()
    sys_root = None if hidden else source.sys_root()
    if sys_root is None:
        return SwapFacts(total, areas, hidden)
    return SwapFacts(total, areas, hidden, [judge_swap_area(area, sys_root) for area in areas], zswap_enabled(sys_root))


def is_openbao(process: ProcessFacts) -> bool:
    """OpenBao's bao, by its name, its binary's name or its unit."""
    return looks_like_openbao(process.name, process.binary) or process.unit in OPENBAO_UNITS


def lock_exemption(process: ProcessFacts) -> str:
    """Why the process does not lock its memory at all; '' when it does, or may.

    OpenBao never does. Vault does not when its configuration says disable_mlock = true (or it runs
    with -dev), which its VmLck of 0 confirms: a Vault that locks has VmLck above 0, and one whose
    mlockall failed has exited. Any other process with nothing locked is judged on its limit.
    """
    if is_openbao(process):
        return OPENBAO_EXEMPTION
    if process.vmlck_bytes == 0 and process.disable_mlock:
        return process.disable_mlock_source or "its configuration says disable_mlock = true"
    return ""


def unit_lock_exemption(unit: UnitFacts) -> str:
    """Why the server a unit runs does not lock its memory ('' when it does, or may): as lock_exemption() for a
    unit, by its name or its ExecStart's binary (OpenBao), or its configuration (Vault's disable_mlock)."""
    if unit.name in OPENBAO_UNITS or looks_like_openbao(unit.exec_argv[0] if unit.exec_argv else ""):
        return OPENBAO_EXEMPTION
    if unit.disable_mlock:
        return unit.disable_mlock_source or "its configuration says disable_mlock = true"
    return ""


def units_with_configs(units: Optional[UnitsFacts], root: Optional[str]) -> Optional[UnitsFacts]:
    """The units, each loaded Vault unit with what the configuration its ExecStart names (read inside ``root``,
    the machine's own files) says about disable_mlock."""
    if units is None or root is None:
        return units
    resolved = []
    for unit in units.units:
        if unit.loaded and unit.exec_argv and not unit_lock_exemption(unit):
            value, source = read_disable_mlock(root, unit.exec_argv)
            unit = dataclasses.replace(unit, disable_mlock=value, disable_mlock_source=source)
        resolved.append(unit)
    return dataclasses.replace(units, units=resolved)


def asks_units(facts: MachineFacts) -> bool:
    """Whether the machine's systemd must be asked about Vault's units: no process runs, or one does not lock
    its memory (its unit's MemorySwapMax then counts)."""
    return not facts.processes or any(lock_exemption(process) for process in facts.processes)


def units_to_ask(facts: MachineFacts, units: Sequence[str]) -> List[str]:
    """``units``, and the unit of every process that does not lock its memory, where not among them."""
    asked = list(units)
    for process in facts.processes:
        if lock_exemption(process) and process.unit and process.unit not in asked:
            asked.append(process.unit)
    return asked


def gather_machine(source, process_names: Sequence[str] = DEFAULT_PROCESS_NAMES,
                   with_swap: bool = False) -> MachineFacts:
    """Facts of the machine whose PID 1 is ``source.pid1``; raises FactsError when PID 1 cannot be read."""
    pid1 = source.pid1
    try:
        pid1_limit = parse_memlock_limit(source.read(pid1, "limits"))
        user_namespace = in_user_namespace(source.read(pid1, "uid_map"))
        pid1_status = parse_status(source.read(pid1, "status"))
    except (OSError, ValueError) as exc:
        raise FactsError(f"cannot read PID 1 of the machine (/proc/{pid1}): {exc}") from exc
    pid_level = len(pid1_status.nspid) - 1
    # Only PID 1's own PID namespace: on an LXD host, /proc shows every guest's processes too.
    pid1_namespace = source.machine_pid_namespace()
    processes = []
    for pid in source.pids():
        try:
            if not comm_matches(source.comm(pid), process_names):
                continue
            namespace = pid1_namespace and source.pid_namespace(pid)
            if namespace and namespace != pid1_namespace:
                continue
            processes.append(_process_facts(source, pid, pid_level))
        except OSError:
            continue  # the process ended while we looked
    return MachineFacts(
        in_user_namespace=user_namespace,
        pid1=Pid1Facts(host_pid=pid1 if source.host_view else None, memlock=MemlockReport.of(pid1_limit),
                       cap_sys_resource=has_capability(pid1_status.cap_effective, CAP_SYS_RESOURCE)),
        processes=processes,
        swap=gather_swap(source) if with_swap else None,
    )
