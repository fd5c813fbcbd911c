# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Swap truth for a server that does not lock its memory, from recorded /proc and cgroup files.

The lab machine has no swap and gives its guests no memory controller, so it can show only "no
swap" and "not enforced" for real; the enforced cases are cgroup trees as a cgroup v2 host
with LXD lays them out (/sys/fs/cgroup/lxc.payload.NAME/system.slice/UNIT).
"""

from __future__ import annotations

import os

import pytest
from _files import put

from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import SwapArea
from ansible_collections.vault_mlock.lxd.plugins.module_utils._swap import (
    CGROUP_V1,
    CGROUP_V2,
    DISK,
    ENCRYPTED,
    RAM,
    CgroupSwap,
    HostSwap,
    Mount,
    SwapMaxEntry,
    cgroup2_mount,
    cgroup_directories,
    gather_cgroup_swap,
    host_swap_from_texts,
    judge_swap_area,
    parse_mountinfo,
    parse_proc_cgroup,
    parse_swap_max,
    swap_view_hidden,
    unit_of_cgroup,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import (
    EXPOSED,
    NOT_ENFORCED,
    PROTECTED,
    UNKNOWN,
    judge_swap,
)

# Recorded on the lab machine (cgroup v1 for memory, cgroup2 at /sys/fs/cgroup/unified), for the
# init of an LXD guest, read from the host.
LAB_HOST_CGROUP = """\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/d6a7ee786174ad8ac6387803b2a9d399
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/lxc.payload.vml-openbao/system.slice/openbao.service
"""
LAB_HOST_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
# The same process seen inside the guest (its own cgroup namespace and mounts).
LAB_GUEST_CGROUP = LAB_HOST_CGROUP.replace("4:memory:/process_api/d6a7ee786174ad8ac6387803b2a9d399", "4:memory:/") \
    .replace("0::/lxc.payload.vml-openbao/system.slice", "0::/system.slice")
LAB_GUEST_MOUNTINFO = "674 659 0:38 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:550 - cgroup2 none rw\n"

# A cgroup v2 host (Debian 12 with LXD, systemd's unified layout).
V2_CGROUP = "0::/lxc.payload.vault/system.slice/openbao.service\n"
V2_MOUNTINFO = "25 21 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
SERVICE_DIR = "/sys/fs/cgroup/lxc.payload.vault/system.slice/openbao.service"
GUEST_DIR = "/sys/fs/cgroup/lxc.payload.vault"

MEMINFO_2G_SWAP = "MemTotal:       24683520 kB\nSwapTotal:       2097148 kB\nSwapFree:        2097148 kB\n"
MEMINFO_NO_SWAP = "MemTotal:       24683520 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"
SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
SWAPS_2G = SWAPS_HEADER + "/swap.img                               file\t\t2097148\t\t0\t\t-2\n"

WHO = "bao (PID 812)"
UNIT = "openbao.service"


def v2_tree(tmp_path, service=None, guest=None, slice_=None):
    """A cgroup v2 host's tree; each argument is a memory.swap.max text, None for no file."""
    root = tmp_path / "host"
    put(root, SERVICE_DIR + "/cgroup.procs", "812\n")
    for directory, value in ((SERVICE_DIR, service), (GUEST_DIR, guest),
                             (GUEST_DIR + "/system.slice", slice_)):
        if value is not None:
            put(root, directory + "/memory.swap.max", value)
    return str(root)


# --- parsing ----------------------------------------------------------------------------------


def test_proc_cgroup_from_the_host_and_from_the_guest():
    host = parse_proc_cgroup(LAB_HOST_CGROUP)
    assert host.unified == "/lxc.payload.vml-openbao/system.slice/openbao.service"
    assert host.v1["memory"] == "/process_api/d6a7ee786174ad8ac6387803b2a9d399"
    assert host.v1["name=systemd"] == "/"
    assert parse_proc_cgroup(LAB_GUEST_CGROUP).unified == "/system.slice/openbao.service"
    assert parse_proc_cgroup("0::/a:b\n").unified == "/a:b"  # a colon in a cgroup name
    assert parse_proc_cgroup("garbage\n").unified is None


def test_mountinfo():
    mounts = parse_mountinfo(LAB_HOST_MOUNTINFO + "99 1 0:5 / /mnt/with\\040space rw - ext4 /dev/x rw\nshort line\n")
    assert cgroup2_mount(mounts) == Mount("/", "/sys/fs/cgroup/unified", "cgroup2", ("rw",))
    assert mounts[-1].mount_point == "/mnt/with space"
    assert cgroup2_mount(parse_mountinfo(LAB_GUEST_MOUNTINFO)).mount_point == "/sys/fs/cgroup"


def test_cgroup_directories_walk_up_to_the_mount():
    mount = Mount("/", "/sys/fs/cgroup", "cgroup2", ())
    assert cgroup_directories(mount, "/lxc.payload.vault/system.slice/openbao.service") == [
        ("/lxc.payload.vault/system.slice/openbao.service", "/sys/fs/cgroup/lxc.payload.vault/system.slice/openbao.service"),
        ("/lxc.payload.vault/system.slice", "/sys/fs/cgroup/lxc.payload.vault/system.slice"),
        ("/lxc.payload.vault", "/sys/fs/cgroup/lxc.payload.vault"),
        ("/", "/sys/fs/cgroup"),
    ]


def test_a_mount_of_a_sub_tree_shows_only_what_is_below_it():
    # A nested LXD host sees its own cgroup mounted at its root, with full paths in /proc/PID/cgroup.
    mount = Mount("/lxc.payload.c2", "/sys/fs/cgroup", "cgroup2", ())
    assert cgroup_directories(mount, "/lxc.payload.c2/system.slice/lxd.service") == [
        ("/lxc.payload.c2/system.slice/lxd.service", "/sys/fs/cgroup/system.slice/lxd.service"),
        ("/lxc.payload.c2/system.slice", "/sys/fs/cgroup/system.slice"),
        ("/lxc.payload.c2", "/sys/fs/cgroup"),
    ]
    assert cgroup_directories(mount, "/lxc.payload.c1/init.scope") == []
    assert cgroup_directories(mount, "/lxc.payload.c2x/init.scope") == []


@pytest.mark.parametrize("path", ["/a/../../etc", "relative", "/a/./b"])
def test_odd_cgroup_paths_are_refused(path):
    assert cgroup_directories(Mount("/", "/sys/fs/cgroup", "cgroup2", ()), path) == []


@pytest.mark.parametrize("text, value", [("max\n", None), ("0\n", 0), ("1073741824", 1073741824)])
def test_swap_max(text, value):
    assert parse_swap_max(text) == value


def test_swap_max_refuses_garbage():
    with pytest.raises(ValueError):
        parse_swap_max("-1")


def test_host_swap():
    assert host_swap_from_texts(MEMINFO_2G_SWAP, SWAPS_2G) == HostSwap(2097148 * 1024, ("/swap.img",))
    assert not host_swap_from_texts(MEMINFO_NO_SWAP, SWAPS_HEADER).present
    assert host_swap_from_texts(None, SWAPS_2G).total_bytes == 2097148 * 1024
    assert not host_swap_from_texts(None, None).known


# --- gathering from recorded trees ------------------------------------------------------------


def test_swap_max_zero_on_the_service(tmp_path):
    cgroup = gather_cgroup_swap(V2_CGROUP, V2_MOUNTINFO, v2_tree(tmp_path, service="0\n", guest="max\n"))
    assert cgroup.version == CGROUP_V2
    assert cgroup.chain == (SwapMaxEntry("/lxc.payload.vault/system.slice/openbao.service", 0),
                            SwapMaxEntry("/lxc.payload.vault", None))
    assert cgroup.enforced_by.cgroup == "/lxc.payload.vault/system.slice/openbao.service"


def test_swap_max_zero_on_the_guest_covers_its_services(tmp_path):
    cgroup = gather_cgroup_swap(V2_CGROUP, V2_MOUNTINFO, v2_tree(tmp_path, guest="0\n"))
    assert cgroup.enforced_by == SwapMaxEntry("/lxc.payload.vault", 0)


def test_no_memory_controller_means_an_empty_chain(tmp_path):
    cgroup = gather_cgroup_swap(V2_CGROUP, V2_MOUNTINFO, v2_tree(tmp_path))
    assert (cgroup.version, cgroup.chain, cgroup.enforced_by, cgroup.controls_swap) == (CGROUP_V2, (), None, False)


def test_the_lowest_limit_along_the_chain_applies(tmp_path):
    tree = v2_tree(tmp_path, service="max\n", slice_="1048576\n", guest="max\n")
    cgroup = gather_cgroup_swap(V2_CGROUP, V2_MOUNTINFO, tree)
    assert cgroup.effective_swap_max == 1048576


def test_the_lab_host_view_is_cgroup_v1_memory(tmp_path):
    root = tmp_path / "host"
    put(root, "/sys/fs/cgroup/memory/process_api/d6a7ee786174ad8ac6387803b2a9d399/memory.memsw.limit_in_bytes",
        "9223372036854771712\n")
    put(root, "/sys/fs/cgroup/memory/process_api/d6a7ee786174ad8ac6387803b2a9d399/memory.swappiness", "60\n")
    cgroup = gather_cgroup_swap(LAB_HOST_CGROUP, LAB_HOST_MOUNTINFO, str(root))
    assert cgroup.version == CGROUP_V1
    assert dict(cgroup.v1_files) == {"memory.memsw.limit_in_bytes": "9223372036854771712", "memory.swappiness": "60"}
    assert cgroup.enforced_by is None


def test_the_lab_guest_view_has_no_memory_controller(tmp_path):
    root = tmp_path / "guest"
    put(root, "/sys/fs/cgroup/system.slice/openbao.service/cgroup.procs", "812\n")
    put(root, "/sys/fs/cgroup/system.slice/openbao.service/hugetlb.2MB.max", "max\n")
    cgroup = gather_cgroup_swap(LAB_GUEST_CGROUP, LAB_GUEST_MOUNTINFO, str(root))
    assert (cgroup.version, cgroup.cgroup, cgroup.chain) == (CGROUP_V2, "/system.slice/openbao.service", ())


def test_a_link_in_the_tree_is_not_followed_out(tmp_path):
    outside = tmp_path / "outside"
    put(outside, "/zero", "0\n")
    root = v2_tree(tmp_path, guest="max\n")
    os.symlink(str(outside / "zero"), os.path.join(root, SERVICE_DIR.lstrip("/"), "memory.swap.max"))
    cgroup = gather_cgroup_swap(V2_CGROUP, V2_MOUNTINFO, root)
    assert cgroup.enforced_by is None  # the host's "0" was not read


def test_unreadable_cases_say_why():
    assert gather_cgroup_swap("1:cpu:/\n", V2_MOUNTINFO, "/nonexistent").error == \
        "the process is in no cgroup v2 hierarchy"
    assert "no cgroup2 file system" in gather_cgroup_swap(V2_CGROUP, "", "/nonexistent").error
    nested = "118 104 0:38 /lxc.payload.other /sys/fs/cgroup rw - cgroup2 none rw\n"
    assert "is not below the cgroup2 mount" in gather_cgroup_swap(V2_CGROUP, nested, "/nonexistent").error


def test_garbage_in_memory_swap_max_is_an_error(tmp_path):
    cgroup = gather_cgroup_swap(V2_CGROUP, V2_MOUNTINFO, v2_tree(tmp_path, service="lots\n"))
    assert "not a memory.swap.max value" in cgroup.error


# --- the judgement ----------------------------------------------------------------------------

NO_SWAP = HostSwap(0)
SWAP_2G = HostSwap(2 * 1024 ** 3, ("/swap.img",))
NO_CONTROLLER = CgroupSwap(CGROUP_V2, "/lxc.payload.vault/system.slice/openbao.service")
V1 = CgroupSwap(CGROUP_V1, "/process_api/d6a7")
SERVICE_ZERO = CgroupSwap(CGROUP_V2, "/lxc.payload.vault/system.slice/openbao.service",
                          (SwapMaxEntry("/lxc.payload.vault/system.slice/openbao.service", 0),))
GUEST_ZERO = CgroupSwap(CGROUP_V2, "/lxc.payload.vault/system.slice/openbao.service",
                        (SwapMaxEntry("/lxc.payload.vault/system.slice/openbao.service", None),
                         SwapMaxEntry("/lxc.payload.vault", 0)))
OPEN = CgroupSwap(CGROUP_V2, "/lxc.payload.vault/system.slice/openbao.service",
                  (SwapMaxEntry("/lxc.payload.vault/system.slice/openbao.service", None),))


@pytest.mark.parametrize(
    "host, cgroup, configured, judgement, words",
    [
        (NO_SWAP, NO_CONTROLLER, "infinity", PROTECTED, ["the host has no swap"]),
        (NO_SWAP, NO_CONTROLLER, "0", PROTECTED,
         ["the host has no swap", "MemorySwapMax=0 is set for openbao.service but not enforced",
          "no memory.swap.max exists", "will not help once the host has swap"]),
        (NO_SWAP, V1, "0", PROTECTED, ["on cgroup v1, where systemd's MemorySwapMax= does nothing"]),
        (SWAP_2G, SERVICE_ZERO, "0", PROTECTED, ["memory.swap.max is 0 for its own cgroup",
                                                 "out of the host's 2 GiB of swap"]),
        (SWAP_2G, GUEST_ZERO, None, PROTECTED, ["memory.swap.max is 0 for the cgroup /lxc.payload.vault above it"]),
        (SWAP_2G, NO_CONTROLLER, "0", NOT_ENFORCED,
         ["MemorySwapMax=0 is set for openbao.service but nothing enforces it",
          "the memory controller is not enabled there", "can go to the host's 2 GiB of swap", "turn the host's swap off (swapoff"]),
        (SWAP_2G, V1, "0", NOT_ENFORCED, ["nothing enforces it", "cgroup v1"]),
        (SWAP_2G, OPEN, "infinity", EXPOSED, ["memory.swap.max lets it use any amount of the host's 2 GiB of swap",
                                              "set MemorySwapMax=0 for openbao.service"]),
        (SWAP_2G, NO_CONTROLLER, "infinity", EXPOSED, ["nothing keeps its memory out of the host's 2 GiB of swap"]),
        (SWAP_2G, NO_CONTROLLER, None, EXPOSED, ["whether MemorySwapMax=0 is set is unknown"]),
        (HostSwap(None), NO_CONTROLLER, "0", UNKNOWN, ["whether the host has swap could not be read",
                                                       "swapon --show", "set for openbao.service but not enforced"]),
        (HostSwap(None), SERVICE_ZERO, None, PROTECTED, ["memory.swap.max is 0", "out of swap"]),
    ],
)
def test_judgement(host, cgroup, configured, judgement, words):
    judged = judge_swap(WHO, host, cgroup, configured, UNIT)
    assert judged.verdict == judgement
    assert judged.sentence.startswith(WHO + ": ")
    for word in words:
        assert word in judged.sentence


def test_a_limit_above_zero_is_named():
    limited = CgroupSwap(CGROUP_V2, "/s", (SwapMaxEntry("/s", 512 * 1024 ** 2),))
    judged = judge_swap(WHO, SWAP_2G, limited, "536870912", UNIT)
    assert judged.verdict == EXPOSED
    assert "up to 512 MiB of the host's 2 GiB of swap" in judged.sentence


def test_the_unit_comes_from_the_cgroup():
    assert unit_of_cgroup(LAB_HOST_CGROUP) == "openbao.service"
    assert unit_of_cgroup(LAB_GUEST_CGROUP) == "openbao.service"
    # cgroup v1 only: systemd's own hierarchy names the unit.
    assert unit_of_cgroup("2:memory:/\n1:name=systemd:/system.slice/vault.service\n") == "vault.service"
    assert unit_of_cgroup("0::/user.slice/user-0.slice/session-3.scope\n") == ""
    assert unit_of_cgroup("") == ""


# Recorded in an LXD guest on a host with LXCFS (mountinfo lines of the fuse.lxcfs files).
LXCFS_MOUNTINFO = """\
648 647 0:49 / / rw,relatime - zfs default/containers/g1 rw
660 652 0:53 /proc/meminfo /proc/meminfo rw,nosuid,nodev,relatime - fuse.lxcfs lxcfs rw,user_id=0,group_id=0
664 652 0:53 /proc/swaps /proc/swaps rw,nosuid,nodev,relatime - fuse.lxcfs lxcfs rw,user_id=0,group_id=0
"""


def test_lxcfs_hides_the_host_swap():
    assert "/proc/meminfo is a fuse.lxcfs mount" in swap_view_hidden(LXCFS_MOUNTINFO)
    assert swap_view_hidden(LAB_GUEST_MOUNTINFO) == ""
    assert swap_view_hidden(LAB_HOST_MOUNTINFO) == ""


# --- each swap area judged for what it is, from sysfs trees laid out as the kernel does ------------

def sysfs(tmp_path, files):
    """A /sys tree: {path below /sys: text}; a text of None makes an empty directory."""
    root = tmp_path / "sys"
    for path, text in files.items():
        if text is None:
            (root / path).mkdir(parents=True, exist_ok=True)
        else:
            put(root, "/" + path, text)
    return str(root)


def area(name, kind="partition", kib=65532):
    return SwapArea(name, kind, kib * 1024, 0, -2)


ZRAM = {"class/block/zram0/disksize": "67108864\n"}
# cryptsetup's plain mode, as crypttab's "cryptswap /dev/vda3 /dev/urandom swap" makes it.
PLAIN_CRYPT = {"class/block/dm-0/dm/uuid": "CRYPT-PLAIN-cryptswap\n", "class/block/dm-0/dm/name": "cryptswap\n",
               "class/block/dm-0/slaves/vda3": None, "class/block/vda3/partition": "3\n"}
LUKS_CRYPT = {"class/block/dm-1/dm/uuid": "CRYPT-LUKS2-0b1d5a7e9c6f4b3a8e2d1c0b9a8f7e6d-luks-swap\n",
              "class/block/dm-1/dm/name": "luks-swap\n", "class/block/dm-1/slaves/sda2": None,
              "class/block/sda2/partition": "2\n"}


@pytest.mark.parametrize("files, swap_area, kind, words", [
    (ZRAM, area("/dev/zram0"), RAM, ["zram0, compressed RAM with no backing device"]),
    # A kernel built with CONFIG_ZRAM_WRITEBACK shows backing_dev, 'none' until one is set.
    ({**ZRAM, "class/block/zram0/backing_dev": "none\n"}, area("/dev/zram0"), RAM, ["no backing device"]),
    ({**ZRAM, "class/block/zram0/backing_dev": "/dev/vdb1\n", "class/block/vdb1/partition": "1\n"},
     area("/dev/zram0"), DISK, ["zram0, compressed RAM that writes back to vdb1, a disk partition"]),
    ({**ZRAM, **PLAIN_CRYPT, "class/block/zram0/backing_dev": "/dev/mapper/cryptswap\n"}, area("/dev/zram0"),
     ENCRYPTED, ["writes back to dm-0 (cryptswap), plain dm-crypt"]),
    (PLAIN_CRYPT, area("/dev/dm-0"), ENCRYPTED, ["dm-0 (cryptswap), plain dm-crypt"]),
    (LUKS_CRYPT, area("/dev/dm-1"), ENCRYPTED, ["dm-1 (luks-swap), dm-crypt with LUKS2"]),
    (LUKS_CRYPT, area("/dev/mapper/luks-swap"), ENCRYPTED, ["dm-1 (luks-swap)"]),
    # LVM over a LUKS device: as safe as what lies under it.
    ({**LUKS_CRYPT, "class/block/dm-2/dm/uuid": "LVM-abc\n", "class/block/dm-2/slaves/dm-1": None},
     area("/dev/dm-2"), ENCRYPTED, ["dm-2, over dm-1 (luks-swap), dm-crypt with LUKS2"]),
    # LVM straight on a disk, and dm-verity (CRYPT-VERITY: integrity, no secrecy): disks.
    ({"class/block/dm-3/dm/uuid": "LVM-xyz\n", "class/block/dm-3/slaves/sdb1": None,
      "class/block/sdb1/partition": "1\n"}, area("/dev/dm-3"), DISK, ["dm-3, over sdb1, a disk partition"]),
    ({"class/block/dm-4/dm/uuid": "CRYPT-VERITY-abc-v\n", "class/block/dm-4/slaves/sdc": None},
     area("/dev/dm-4"), DISK, ["dm-4, over sdc, a disk"]),
    ({"class/block/vda2/partition": "2\n"}, area("/dev/vda2"), DISK, ["vda2, a disk partition"]),
    ({"class/block/loop3/loop/backing_file": "/var/swap.img\n"}, area("/dev/loop3"), DISK,
     ["loop3, a loop device over the file /var/swap.img"]),
    ({}, area("/swapfile", "file"), DISK, ["/swapfile, a swap file on disk"]),
    ({}, area("/dev/nvme9n1p9"), DISK, ["/dev/nvme9n1p9, a device not found in sysfs (taken as a disk)"]),
])
def test_swap_areas_are_judged_for_what_they_are(tmp_path, files, swap_area, kind, words):
    device = judge_swap_area(swap_area, sysfs(tmp_path, files))
    assert (device.name, device.kind, device.safe) == (swap_area.name, kind, kind in (RAM, ENCRYPTED))
    for word in words:
        assert word in device.detail


def test_the_key_of_a_dm_crypt_device_is_said(tmp_path):
    plain = judge_swap_area(area("/dev/dm-0"), sysfs(tmp_path / "plain", PLAIN_CRYPT))
    luks = judge_swap_area(area("/dev/dm-1"), sysfs(tmp_path / "luks", LUKS_CRYPT))
    assert "made afresh at each boot (crypttab's /dev/urandom)" in plain.caveat
    assert "a key file kept on an unencrypted disk" in luks.caveat and "LUKS2" in luks.caveat


def test_the_lab_machine_zram_without_writeback_support(tmp_path):
    """Recorded on the lab machine: zram0 has no backing_dev file at all (no CONFIG_ZRAM_WRITEBACK)."""
    root = sysfs(tmp_path, {**ZRAM, "module/zswap/parameters/enabled": "N\n"})
    swaps = SWAPS_HEADER + "/dev/zram0                              partition\t65532\t\t0\t\t100\n"
    host = host_swap_from_texts(None, swaps, root)
    assert (host.known, host.present, host.judged, host.safe, host.zswap) == (True, True, True, True, False)


HOST_ZERO_CGROUP = CgroupSwap(CGROUP_V1, "/process_api/x")


def judge_with(tmp_path, swaps_rows, files, configured=None, cgroup=HOST_ZERO_CGROUP):
    host = host_swap_from_texts(None, SWAPS_HEADER + swaps_rows, sysfs(tmp_path, files))
    return judge_swap(WHO, host, cgroup, configured, UNIT)


def test_zram_in_ram_protects_and_says_so(tmp_path):
    judged = judge_with(tmp_path, "/dev/zram0 partition 65532 0 100\n", ZRAM)
    assert judged.verdict == PROTECTED
    assert ("the host's 63.9 MiB of swap is compressed RAM, so none of its memory reaches a disk unencrypted "
            "(zram0, compressed RAM with no backing device)") in judged.sentence


def test_encrypted_swap_protects_with_the_caveat_of_its_key(tmp_path):
    judged = judge_with(tmp_path, "/dev/dm-1 partition 65532 0 -2\n/dev/zram0 partition 65532 0 100\n",
                        {**LUKS_CRYPT, **ZRAM}, configured="0")
    assert judged.verdict == PROTECTED
    assert "swap is RAM or encrypted" in judged.sentence
    assert "dm-1 (luks-swap), dm-crypt with LUKS2; zram0" in judged.sentence
    assert "beware: its LUKS2 key is opened by a passphrase or key file" in judged.sentence
    assert "MemorySwapMax=0 is set for openbao.service but not enforced" in judged.sentence


def test_one_exposed_area_decides_and_is_named(tmp_path):
    files = {**ZRAM, **PLAIN_CRYPT, "module/zswap/parameters/enabled": "Y\n"}
    judged = judge_with(tmp_path, "/dev/zram0 partition 65532 0 100\n/dev/dm-0 partition 65532 0 -2\n"
                                  "/swapfile file 65532 0 -3\n", files)
    assert judged.verdict == EXPOSED
    assert "out of the host's 191.9 MiB of swap on /swapfile, a swap file on disk, which zswap writes back to" \
        in judged.sentence
    assert "zram0" not in judged.sentence and "dm-0" not in judged.sentence


def test_exposed_swap_says_the_fixes_that_apply_to_the_guest(tmp_path):
    on_v1 = judge_with(tmp_path / "a", "/swapfile file 65532 0 -2\n", {})
    assert "turn the host's swap off" in on_v1.sentence
    assert "would not be enforced here" in on_v1.sentence
    v2 = CgroupSwap(CGROUP_V2, "/lxc.payload.vault/system.slice/openbao.service",
                    (SwapMaxEntry("/lxc.payload.vault/system.slice/openbao.service", None),))
    on_v2 = judge_with(tmp_path / "b", "/swapfile file 65532 0 -2\n", {}, cgroup=v2)
    assert on_v2.verdict == EXPOSED
    assert "set MemorySwapMax=0 for openbao.service" in on_v2.sentence
    assert "limits.memory.swap=false for the LXD or Incus guest" in on_v2.sentence
    assert "lxd_host_instance_swap" in on_v2.sentence


def test_swap_not_judged_by_device_stays_exposed():
    """Without sysfs (areas known, devices not judged) swap counts as reaching a disk."""
    host = host_swap_from_texts(None, SWAPS_HEADER + "/dev/zram0 partition 65532 0 100\n")
    assert (host.judged, host.safe) == (False, False)
    assert judge_swap(WHO, host, HOST_ZERO_CGROUP).verdict == EXPOSED
