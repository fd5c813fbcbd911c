# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Can swap take the memory of a server that does not lock it? The facts: host swap and cgroup limits.

OpenBao never locks its memory, nor does Vault with ``disable_mlock = true``. Their secrets stay
out of swap only when the host has no swap, or when the kernel refuses swap to their cgroup:
``memory.swap.max`` is 0 there or in a cgroup above (systemd's ``MemorySwapMax=0``, LXD's
``limits.memory.swap=false`` on a cgroup v2 host). systemd accepts ``MemorySwapMax=0`` even
where no ``memory.swap.max`` exists (the guest was given no memory controller, or the memory
controller lives on cgroup v1): then nothing enforces it.

Not all swap lets secrets reach a disk: each swap area of /proc/swaps is judged for what it is
from the host's sysfs (judge_swap_area). A zram device without a backing device is compressed
RAM; with one, it writes to that device. A dm-crypt device (its dm/uuid starts CRYPT-) is
encrypted swap, as safe as its key. Any other device-mapper or md device is as safe as the devices
under it (slaves/); partitions, disks, loop devices and swap files keep what is written on a disk.
zswap compresses pages in RAM but writes them back to those same areas, so it changes nothing.

Parsing is pure; _verdicts judges (judge_swap). gather_cgroup_swap() reads one cgroup chain through a proc
directory and the file systems its mountinfo names, every path taken inside a root with
_safe_root, so that reading a guest's files from the host never follows the guest's symlinks.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import (
    SwapArea,
    parse_meminfo_swap_total,
    parse_swaps,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._safe_root import read_text_in_root

CGROUP_V2 = "v2"
CGROUP_V1 = "v1"
SWAP_MAX_FILE = "memory.swap.max"
V1_FILES = ("memory.memsw.limit_in_bytes", "memory.limit_in_bytes", "memory.swappiness")


# --- the host's swap --------------------------------------------------------------------------

# What a swap area is, as far as where its pages end up.
RAM = "ram"  # zram without a backing device: compressed pages stay in memory
ENCRYPTED = "encrypted"  # dm-crypt: pages reach a disk only encrypted
DISK = "disk"  # a partition, disk, loop device or file: pages reach a disk as they are
SAFE_KINDS = (RAM, ENCRYPTED)
SYS = "/sys"
_MAX_DEPTH = 8  # device stacks deeper than this are not followed (and count as a disk)


@dataclass(frozen=True)
class SwapDevice:
    """One swap area of /proc/swaps, judged: where its pages end up."""

    name: str  # as /proc/swaps names it
    size_bytes: int
    kind: str  # RAM, ENCRYPTED or DISK
    detail: str  # what it is: 'zram0, compressed RAM with no backing device'
    caveat: str = ""  # what would still let its pages be read (a dm-crypt key kept on a disk)

    @property
    def safe(self) -> bool:
        return self.kind in SAFE_KINDS


def _sys_text(sys_root: str, path: str) -> Optional[str]:
    try:
        with open(os.path.join(sys_root, path), encoding="utf-8", errors="replace") as stream:
            return stream.read().strip()
    except OSError:
        return None


def _sys_names(sys_root: str, path: str) -> List[str]:
    try:
        return sorted(os.listdir(os.path.join(sys_root, path)))
    except OSError:
        return []


def _block_name(sys_root: str, device: str) -> Optional[str]:
    """The sysfs block name of a device path of /proc/swaps ('/dev/dm-0' -> 'dm-0'); None when none matches.

    /dev/mapper/NAME is found through dm/name, where the kernel shows the path it was given.
    """
    base = os.path.basename(device)
    if _sys_names(sys_root, f"class/block/{base}"):
        return base
    if device.startswith("/dev/mapper/"):
        for name in _sys_names(sys_root, "class/block"):
            if name.startswith("dm-") and _sys_text(sys_root, f"class/block/{name}/dm/name") == base:
                return name
    return None


CRYPT_PREFIX = "CRYPT-"
# dm targets that carry a CRYPT- uuid but do not encrypt (cryptsetup's verity and integrity devices).
NOT_ENCRYPTING = ("CRYPT-VERITY", "CRYPT-INTEGRITY")


def _crypt_caveat(uuid: str) -> Tuple[str, str]:
    """(what the dm-crypt device is, the caveat about its key) from its dm/uuid."""
    kind = uuid[len(CRYPT_PREFIX):].split("-", 1)[0]
    if kind == "PLAIN":
        return ("plain dm-crypt", "safe when its key is made afresh at each boot (crypttab's /dev/urandom), not when "
                                  "the key is read from a file on an unencrypted disk")
    if kind.startswith("LUKS"):
        return (f"dm-crypt with {kind}", f"its {kind} key is opened by a passphrase or key file: a key file kept on "
                                         "an unencrypted disk lets whoever has the disk read the swap")
    return (f"dm-crypt ({kind or 'unknown kind'})", "safe as long as its key is not kept on an unencrypted disk")


def _judge_block(sys_root: str, name: str, depth: int = 0) -> Tuple[str, str, str]:
    """(kind, detail, caveat) of one block device by its sysfs name."""
    base = f"class/block/{name}"
    if depth > _MAX_DEPTH:
        return DISK, f"{name}, a device stack too deep to follow", ""
    if name.startswith("zram"):
        backing = _sys_text(sys_root, f"{base}/backing_dev")
        if backing in (None, "", "none"):
            return RAM, f"{name}, compressed RAM with no backing device", ""
        under = _block_name(sys_root, backing)
        if under is None:
            return DISK, f"{name}, compressed RAM that writes back to {backing} (not found in sysfs)", ""
        kind, detail, caveat = _judge_block(sys_root, under, depth + 1)
        return kind, f"{name}, compressed RAM that writes back to {detail}", caveat
    uuid = _sys_text(sys_root, f"{base}/dm/uuid") or ""
    if uuid.startswith(CRYPT_PREFIX) and not uuid.startswith(NOT_ENCRYPTING):
        what, caveat = _crypt_caveat(uuid)
        dm_name = _sys_text(sys_root, f"{base}/dm/name")
        return ENCRYPTED, f"{name}{f' ({dm_name})' if dm_name else ''}, {what}", caveat
    backing_file = _sys_text(sys_root, f"{base}/loop/backing_file")
    if backing_file:
        return DISK, f"{name}, a loop device over the file {backing_file}", ""
    slaves = _sys_names(sys_root, f"{base}/slaves")
    if slaves:
        # device-mapper (LVM and others) and md: as safe as every device under it.
        judged = [_judge_block(sys_root, slave, depth + 1) for slave in slaves]
        unsafe = [item for item in judged if item[0] not in SAFE_KINDS]
        details = "; ".join(item[1] for item in (unsafe or judged))
        kind = unsafe[0][0] if unsafe else (ENCRYPTED if any(item[0] == ENCRYPTED for item in judged) else RAM)
        caveat = "; ".join(item[2] for item in judged if item[2])
        return kind, f"{name}, over {details}", caveat
    if _sys_text(sys_root, f"{base}/partition") is not None:
        return DISK, f"{name}, a disk partition", ""
    return DISK, f"{name}, a disk", ""


def judge_swap_area(area: SwapArea, sys_root: str = SYS) -> SwapDevice:
    """Where the pages of one swap area end up, from the host's sysfs under ``sys_root``."""
    if area.type == "file":
        return SwapDevice(area.name, area.size_bytes, DISK, f"{area.name}, a swap file on disk")
    name = _block_name(sys_root, area.name)
    if name is None:
        return SwapDevice(area.name, area.size_bytes, DISK, f"{area.name}, a device not found in sysfs (taken as a disk)")
    kind, detail, caveat = _judge_block(sys_root, name)
    return SwapDevice(area.name, area.size_bytes, kind, detail, caveat)


def zswap_enabled(sys_root: str = SYS) -> Optional[bool]:
    """Whether zswap is on (None: the kernel has no zswap, or its parameters cannot be read)."""
    text = _sys_text(sys_root, "module/zswap/parameters/enabled")
    return None if text is None else text in ("Y", "1")


@dataclass(frozen=True)
class HostSwap:
    """The swap of the machine whose kernel runs the process; None where it could not be read."""

    total_bytes: Optional[int]
    areas: Tuple[str, ...] = ()  # names from /proc/swaps
    devices: Tuple[SwapDevice, ...] = ()  # each area judged; () when sysfs was not read
    zswap: Optional[bool] = None

    @property
    def known(self) -> bool:
        return self.total_bytes is not None

    @property
    def present(self) -> bool:
        return bool(self.total_bytes) or bool(self.areas)

    @property
    def judged(self) -> bool:
        """Whether every swap area was judged for what it is."""
        return bool(self.devices) and len(self.devices) == len(self.areas)

    @property
    def safe(self) -> bool:
        """Whether no swap area lets pages reach a disk unencrypted (known only when judged)."""
        return self.judged and all(device.safe for device in self.devices)

    @property
    def exposing(self) -> Tuple[SwapDevice, ...]:
        """The areas that let pages reach a disk unencrypted: the ones that decide an exposed verdict."""
        return tuple(device for device in self.devices if not device.safe)


def host_swap_from_texts(meminfo_text: Optional[str], swaps_text: Optional[str],
                         sys_root: Optional[str] = None) -> HostSwap:
    """HostSwap from /proc/meminfo and /proc/swaps (either may be None: unreadable).

    With ``sys_root`` (the host's /sys) each swap area is judged for what it is too.
    """
    total = parse_meminfo_swap_total(meminfo_text) if meminfo_text is not None else None
    areas = parse_swaps(swaps_text) if swaps_text is not None else []
    if total is None and swaps_text is not None:
        total = sum(area.size_bytes for area in areas)
    if sys_root is None:
        return HostSwap(total, tuple(area.name for area in areas))
    return HostSwap(total, tuple(area.name for area in areas),
                    tuple(judge_swap_area(area, sys_root) for area in areas), zswap_enabled(sys_root))


# --- /proc/PID/cgroup and /proc/PID/mountinfo -------------------------------------------------


@dataclass(frozen=True)
class CgroupMembership:
    """Where a process sits: its cgroup v2 path and its cgroup v1 paths by controller."""

    unified: Optional[str]
    v1: Dict[str, str] = field(default_factory=dict)


def parse_proc_cgroup(text: str) -> CgroupMembership:
    """/proc/PID/cgroup: 'ID:CONTROLLERS:PATH' lines; ID 0 with no controllers is cgroup v2.

    The paths are relative to the reader's cgroup namespace (from the host: the full path).
    """
    unified = None
    v1: Dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            unified = path
        else:
            for controller in controllers.split(","):
                if controller:
                    v1[controller] = path
    return CgroupMembership(unified, v1)


@dataclass(frozen=True)
class Mount:
    root: str  # the path inside the file system that is mounted (a cgroup path for cgroupfs)
    mount_point: str
    fstype: str
    super_options: Tuple[str, ...]


def _unescape_mount(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo (octal).
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), text)


def parse_mountinfo(text: str) -> List[Mount]:
    """The mounts of /proc/PID/mountinfo (see proc(5)); malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash < 6 or len(fields) < dash + 3:
            continue
        super_options = tuple(fields[dash + 3].split(",")) if len(fields) > dash + 3 else ()
        mounts.append(Mount(_unescape_mount(fields[3]), _unescape_mount(fields[4]), fields[dash + 1], super_options))
    return mounts


def cgroup2_mount(mounts: Sequence[Mount]) -> Optional[Mount]:
    """The cgroup2 mount to read the unified hierarchy through (the one mounted at its root first)."""
    found = [mount for mount in mounts if mount.fstype == "cgroup2"]
    found.sort(key=lambda mount: (mount.root != "/", len(mount.mount_point)))
    return found[0] if found else None


def cgroup1_memory_mount(mounts: Sequence[Mount]) -> Optional[Mount]:
    found = [mount for mount in mounts if mount.fstype == "cgroup" and "memory" in mount.super_options]
    found.sort(key=lambda mount: (mount.root != "/", len(mount.mount_point)))
    return found[0] if found else None


def _clean_cgroup_path(path: str) -> Optional[str]:
    """An absolute cgroup path with no '.' or '..' parts; None for anything else."""
    if not path.startswith("/"):
        return None
    parts = [part for part in path.split("/") if part]
    if any(part in (".", "..") for part in parts):
        return None
    return "/" + "/".join(parts)


def cgroup_directories(mount: Mount, cgroup_path: str) -> List[Tuple[str, str]]:
    """(cgroup path, directory) from ``cgroup_path`` up to what ``mount`` shows, nearest first.

    [] when the cgroup is not below the mount's root (then this mount cannot show it).
    """
    path = _clean_cgroup_path(cgroup_path)
    root = _clean_cgroup_path(mount.root)
    if path is None or root is None:
        return []
    if root != "/" and path != root and not path.startswith(root + "/"):
        return []
    chain = []
    while True:
        relative = path[len(root):] if root != "/" else path
        chain.append((path, mount.mount_point.rstrip("/") + (relative if relative != "/" else "")))
        if path == root or path == "/":
            break
        path = path.rsplit("/", 1)[0] or "/"
        if root != "/" and len(path) < len(root):
            break
    return chain


# --- what the cgroup files say ----------------------------------------------------------------


def parse_swap_max(text: str) -> Optional[int]:
    """memory.swap.max: bytes, or None for 'max' (no limit). Raises ValueError on anything else."""
    value = text.strip()
    if value == "max":
        return None
    if not value.isdigit():
        raise ValueError(f"not a memory.swap.max value: {value!r}")
    return int(value)


@dataclass(frozen=True)
class SwapMaxEntry:
    cgroup: str
    swap_max_bytes: Optional[int]  # None: 'max'


@dataclass(frozen=True)
class CgroupSwap:
    """What the cgroup hierarchy does about the process's swap.

    ``version`` is the hierarchy that holds the memory controller for the process (v2 or v1),
    or None when neither shows one. For v2, ``chain`` lists every cgroup from the process's up
    to the top the reader can see that has a memory.swap.max file (absent where the memory
    controller is not enabled). For v1, ``v1_files`` holds the memory cgroup's files.
    """

    version: Optional[str]
    cgroup: Optional[str]  # the process's cgroup (unified path, or the v1 memory path)
    chain: Tuple[SwapMaxEntry, ...] = ()
    v1_files: Tuple[Tuple[str, str], ...] = ()
    error: Optional[str] = None

    @property
    def enforced_by(self) -> Optional[SwapMaxEntry]:
        """The nearest cgroup whose memory.swap.max is 0, if any: the kernel then refuses swap."""
        for entry in self.chain:
            if entry.swap_max_bytes == 0:
                return entry
        return None

    @property
    def effective_swap_max(self) -> Optional[int]:
        """The lowest memory.swap.max along the chain (the one the kernel applies); None: no limit."""
        limits = [entry.swap_max_bytes for entry in self.chain if entry.swap_max_bytes is not None]
        return min(limits) if limits else None

    @property
    def controls_swap(self) -> bool:
        """Whether a memory.swap.max applies to the process at all (v2 with the memory controller)."""
        return self.version == CGROUP_V2 and bool(self.chain)


def gather_cgroup_swap(cgroup_text: str, mountinfo_text: str, fs_root: str = "/") -> CgroupSwap:
    """The CgroupSwap of a process from its /proc/PID/cgroup and the reader's /proc/self/mountinfo.

    Both texts must come from the same reader: /proc/PID/cgroup shows paths relative to the
    reader's cgroup namespace, and the reader's mounts show where those cgroups are. On the LXD
    host that is the host's view (full paths, the host's /sys/fs/cgroup); inside a guest, the
    guest's. ``fs_root`` is where the mount points are read: '/' (a directory tree in tests).
    """
    membership = parse_proc_cgroup(cgroup_text)
    mounts = parse_mountinfo(mountinfo_text)
    memory_v1 = membership.v1.get("memory")
    v1_mount = cgroup1_memory_mount(mounts) if memory_v1 is not None else None
    if memory_v1 is not None and v1_mount is not None:
        # The memory controller is bound to a v1 hierarchy, so cgroup v2 has none to offer.
        files = []
        for directory_path, directory in cgroup_directories(v1_mount, memory_v1)[:1]:
            for name in V1_FILES:
                try:
                    files.append((name, read_text_in_root(fs_root, f"{directory}/{name}").strip()))
                except OSError:
                    continue
        return CgroupSwap(CGROUP_V1, memory_v1, (), tuple(files))
    if membership.unified is None:
        return CgroupSwap(None, None, error="the process is in no cgroup v2 hierarchy")
    mount = cgroup2_mount(mounts)
    if mount is None:
        return CgroupSwap(None, membership.unified, error="no cgroup2 file system is mounted where it can be read")
    directories = cgroup_directories(mount, membership.unified)
    if not directories:
        return CgroupSwap(None, membership.unified,
                          error=f"the cgroup {membership.unified} is not below the cgroup2 mount {mount.mount_point}")
    chain = []
    for cgroup, directory in directories:
        try:
            text = read_text_in_root(fs_root, f"{directory}/{SWAP_MAX_FILE}")
        except FileNotFoundError:
            continue  # no memory controller enabled for this cgroup
        except OSError as exc:
            return CgroupSwap(CGROUP_V2, membership.unified, tuple(chain),
                              error=f"cannot read {directory}/{SWAP_MAX_FILE}: {exc.strerror or exc}")
        try:
            chain.append(SwapMaxEntry(cgroup, parse_swap_max(text)))
        except ValueError as exc:
            return CgroupSwap(CGROUP_V2, membership.unified, tuple(chain), error=str(exc))
    return CgroupSwap(CGROUP_V2, membership.unified, tuple(chain))


# --- which unit, and whose swap ---------------------------------------------------------------


def unit_of_cgroup(cgroup_text: str) -> str:
    """The systemd service a process runs in, from its /proc/PID/cgroup ('' when none shows).

    The unified path is read first, else systemd's own v1 hierarchy (name=systemd): the last
    part that names a service ('/lxc.payload.g1/system.slice/openbao.service' -> 'openbao.service').
    """
    membership = parse_proc_cgroup(cgroup_text)
    for path in (membership.unified, membership.v1.get("name=systemd")):
        for part in reversed((path or "").split("/")):
            if part.endswith(".service"):
                return part
    return ""


SWAP_FILES = ("/proc/swaps", "/proc/meminfo")


def swap_view_hidden(mountinfo_text: str) -> str:
    """Why /proc/swaps or /proc/meminfo do not show the kernel's own swap here ('' when they do).

    Inside a guest LXCFS mounts its own files over them, computed from the guest's cgroup: they then
    tell what the guest may use as LXCFS sees it, not whether the host has swap.
    """
    for mount in parse_mountinfo(mountinfo_text):
        if mount.mount_point in SWAP_FILES:
            return (f"{mount.mount_point} is a {mount.fstype} mount here (LXCFS's view of this guest), not the "
                    "host's own")
    return ""
