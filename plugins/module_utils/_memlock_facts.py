# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Memlock facts of one machine: PID 1's limit, the Vault processes, user namespace, swap.

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

import errno
import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capabilities import format_capabilities
from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import UNITS_FUNCTION, split_sections
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
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, MemlockReport
from ansible_collections.vault_mlock.lxd.plugins.module_utils._xattr_caps import decode_xattr

CAPABILITY_XATTR = "security.capability"
DEFAULT_PROCESS_NAMES = ("vault", "bao")


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


@dataclass(frozen=True)
class Pid1Facts:
    host_pid: Optional[int]
    memlock: MemlockReport  # as it is now: systemd raises its own soft limit at boot
    cap_sys_resource: bool  # CAP_SYS_RESOURCE in its effective set (it counts outside a user namespace only)


@dataclass(frozen=True)
class SwapFacts:
    total_bytes: Optional[int]
    areas: List[SwapArea] = field(default_factory=list)


@dataclass(frozen=True)
class MachineFacts:
    in_user_namespace: bool
    pid1: Pid1Facts
    processes: List[ProcessFacts]
    swap: Optional[SwapFacts] = None


def capability_text(raw: bytes) -> str:
    """getcap's text for a security.capability value (a namespace's rootid is not shown, as getcap without -n)."""
    return format_capabilities(decode_xattr(raw, CAPABILITY_XATTR).capabilities)


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
                 host_view: bool = False) -> None:
        self.root = root
        self.pid1 = pid1
        self._pids = None if pids is None else sorted(set(pids))
        self.host_view = host_view

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
            return os.getxattr(self._path(pid, "exe"), CAPABILITY_XATTR)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOTSUP):
                return None
            raise

    def capabilities(self, pid: int) -> str:
        return binary_capabilities(self.capability_xattr(pid))


# Runs in any guest with a POSIX sh (dash, busybox). Prints sections headed "@@PID NAME".
# "@@self limits" is the exec'd shell's own limit: what the LXD daemon hands a new process now
# (with limits.kernel.memlock as the guest started with it). $1 holds Vault's unit names, the
# other arguments the process names; the units are asked about only when no process matched.
EXEC_SCRIPT = UNITS_FUNCTION + r"""
units=$1; shift
found=
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
    x=$(readlink "$d/exe" 2>/dev/null)
    echo "@@$p exe"; echo "$x"
    if command -v python3 >/dev/null 2>&1; then
      echo "@@$p xattr"
      python3 -c 'import os, sys
try:
    print(os.getxattr(sys.argv[1], "security.capability").hex())
except OSError:
    pass' "$d/exe" 2>/dev/null
    elif [ -n "$x" ] && command -v getcap >/dev/null 2>&1; then
      echo "@@$p getcap"; getcap "$x" 2>/dev/null
    fi
    break
  done
done
[ -n "$found" ] || units_report "$units"
"""


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


def _process_facts(source, pid: int, pid_level: int) -> ProcessFacts:
    status = parse_status(source.read(pid, "status"))
    memlock = parse_memlock_limit(source.read(pid, "limits"))
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
    return SwapFacts(total, areas)


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
