# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Parsing of /proc files: PID limits, status, stat, cmdline, uid_map; swaps and meminfo.

Every parse_* function takes the file's text and returns plain values; the read_* functions
open the file under a proc root (``/proc`` unless told otherwise) and raise OSError when the
process is gone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capability_names import CAP_IPC_LOCK
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, Size

_MEMLOCK_ROW = "Max locked memory"

# The kernel truncates a process name (comm) to 15 characters.
COMM_LENGTH = 15

# uid_map of a process in the initial user namespace: everything maps onto itself.
_IDENTITY_UID_MAP = [(0, 0, 4294967295)]


def _limit_value(text: str) -> Size:
    return None if text == "unlimited" else int(text)


def parse_memlock_limit(limits_text: str) -> MemlockLimit:
    """RLIMIT_MEMLOCK from the text of /proc/PID/limits (always in bytes there)."""
    for line in limits_text.splitlines():
        if line.startswith(_MEMLOCK_ROW):
            soft, hard = line[len(_MEMLOCK_ROW):].split()[:2]
            return MemlockLimit(_limit_value(soft), _limit_value(hard))
    raise ValueError("no 'Max locked memory' row in the limits text")


def read_memlock_limit(pid: int, proc_root: str = "/proc") -> MemlockLimit:
    """RLIMIT_MEMLOCK of a running process; raises OSError when it is gone."""
    with open(os.path.join(proc_root, str(pid), "limits"), encoding="ascii") as limits:
        return parse_memlock_limit(limits.read())


@dataclass(frozen=True)
class ProcStatus:
    """What /proc/PID/status tells about memory locking. Sizes in bytes, capabilities as bit masks."""

    name: str
    pid: int
    ppid: int
    nspid: Tuple[int, ...]  # the PID in each nested PID namespace, outermost first
    vmsize_bytes: int
    vmlck_bytes: int
    cap_effective: int
    cap_bounding: int

    @property
    def innermost_pid(self) -> int:
        """The PID the process has in its own PID namespace (inside its guest)."""
        return self.nspid[-1] if self.nspid else self.pid


def _status_fields(status_text: str) -> dict:
    fields = {}
    for line in status_text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def _kib_field(fields: dict, key: str) -> int:
    # Kernel threads and zombies have no Vm* rows: they map nothing.
    value = fields.get(key)
    if not value:
        return 0
    number, _sep, unit = value.partition(" ")
    if unit.strip() not in ("kB", ""):
        raise ValueError(f"unexpected unit {unit!r} in the {key} row of a status text")
    return int(number) * 1024


def parse_status(status_text: str) -> ProcStatus:
    """The memory-locking facts of /proc/PID/status; raises ValueError on a text that is not one."""
    fields = _status_fields(status_text)
    try:
        pid = int(fields["Pid"])
        return ProcStatus(
            name=fields.get("Name", ""),
            pid=pid,
            ppid=int(fields.get("PPid", "0")),
            nspid=tuple(int(part) for part in fields.get("NSpid", str(pid)).split()),
            vmsize_bytes=_kib_field(fields, "VmSize"),
            vmlck_bytes=_kib_field(fields, "VmLck"),
            cap_effective=int(fields.get("CapEff", "0"), 16),
            cap_bounding=int(fields.get("CapBnd", "0"), 16),
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not a /proc/PID/status text: {exc}") from exc


def read_status(pid: int, proc_root: str = "/proc") -> ProcStatus:
    with open(os.path.join(proc_root, str(pid), "status"), encoding="utf-8", errors="replace") as status:
        return parse_status(status.read())


def has_capability(mask: int, capability: int = CAP_IPC_LOCK) -> bool:
    return bool(mask >> capability & 1)


def parse_stat(stat_text: str) -> Tuple[str, int]:
    """(comm, ppid) from /proc/PID/stat. comm may hold spaces and parentheses: it ends at the last ')'."""
    start = stat_text.find("(")
    end = stat_text.rfind(")")
    if start < 0 or end < start:
        raise ValueError(f"not a /proc/PID/stat text: {stat_text[:60]!r}")
    rest = stat_text[end + 1:].split()
    if len(rest) < 2:
        raise ValueError(f"not a /proc/PID/stat text: {stat_text[:60]!r}")
    return stat_text[start + 1:end], int(rest[1])


def parse_cmdline(cmdline: bytes) -> List[str]:
    """Arguments of /proc/PID/cmdline. A process that rewrote its title may use spaces instead of NULs."""
    text = cmdline.decode("utf-8", errors="replace").rstrip("\0")
    return text.split("\0") if text else []


def comm_matches(comm: str, names) -> bool:
    """Whether a process name (comm, at most 15 characters) is one of ``names``."""
    return any(comm == name[:COMM_LENGTH] for name in names)


def parse_uid_map(uid_map_text: str) -> List[Tuple[int, int, int]]:
    """Rows of /proc/PID/uid_map as (inside, outside, count)."""
    rows = []
    for line in uid_map_text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise ValueError(f"not a uid_map row: {line!r}")
        rows.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return rows


def in_user_namespace(uid_map_text: str) -> bool:
    """Whether the process lives in a user namespace other than the initial one.

    Only the initial namespace maps every uid onto itself. There, CAP_IPC_LOCK lifts
    RLIMIT_MEMLOCK; in any other (an unprivileged guest) it does not.
    """
    return parse_uid_map(uid_map_text) != _IDENTITY_UID_MAP


@dataclass(frozen=True)
class SwapArea:
    """One row of /proc/swaps; sizes in bytes."""

    name: str
    type: str
    size_bytes: int
    used_bytes: int
    priority: int


def parse_swaps(swaps_text: str) -> List[SwapArea]:
    """Active swap areas from /proc/swaps (its header line is skipped)."""
    areas = []
    for line in swaps_text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 5:
            continue
        # The file name escapes spaces as \040; the last four columns are fixed.
        name = " ".join(parts[:-4]).replace("\\040", " ")
        areas.append(SwapArea(name, parts[-4], int(parts[-3]) * 1024, int(parts[-2]) * 1024, int(parts[-1])))
    return areas


def _meminfo_bytes(meminfo_text: str, row: str) -> Optional[int]:
    for line in meminfo_text.splitlines():
        if line.startswith(row + ":"):
            return int(line.split()[1]) * 1024
    return None


def parse_meminfo_swap_total(meminfo_text: str) -> Optional[int]:
    """SwapTotal of /proc/meminfo in bytes; None when the row is missing."""
    return _meminfo_bytes(meminfo_text, "SwapTotal")


def parse_meminfo_total(meminfo_text: str) -> Optional[int]:
    """MemTotal of /proc/meminfo in bytes (the physical memory systemd scales by); None when missing."""
    return _meminfo_bytes(meminfo_text, "MemTotal")
