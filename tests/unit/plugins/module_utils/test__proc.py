# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import (
    CAP_IPC_LOCK,
    SwapArea,
    comm_matches,
    has_capability,
    in_user_namespace,
    parse_cmdline,
    parse_memlock_limit,
    parse_meminfo_swap_total,
    parse_stat,
    parse_status,
    parse_swaps,
    parse_uid_map,
    read_memlock_limit,
    read_status,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit

LIMITS_TEXT = """Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max locked memory         {soft:<20} {hard:<20} bytes
Max address space         unlimited            unlimited            bytes
"""

# /proc/PID/status of a guest's vault as the LXD host sees it (NSpid: host PID, guest PID).
VAULT_STATUS = """Name:\tvault
Umask:\t0022
State:\tS (sleeping)
Tgid:\t29409
Pid:\t29409
PPid:\t28482
NSpid:\t29409\t58
VmPeak:\t    1424 kB
VmSize:\t    1360 kB
VmLck:\t       0 kB
VmPin:\t       0 kB
CapInh:\t0000000000000000
CapPrm:\t000001ffffffffff
CapEff:\t000001ffffffffff
CapBnd:\t000001ffffffbfff
CapAmb:\t0000000000000000
"""

KTHREAD_STATUS = """Name:\tkthreadd
State:\tS (sleeping)
Pid:\t2
PPid:\t0
NSpid:\t2
CapEff:\t000001ffffffffff
CapBnd:\t000001ffffffffff
"""


@pytest.mark.parametrize(
    "soft, hard, expected",
    [
        ("65536", "65536", MemlockLimit(65536, 65536)),
        ("8388608", "unlimited", MemlockLimit(8388608, None)),
        ("unlimited", "unlimited", MemlockLimit(None, None)),
        ("0", "0", MemlockLimit(0, 0)),
    ],
)
def test_parse_memlock_limit(soft, hard, expected):
    assert parse_memlock_limit(LIMITS_TEXT.format(soft=soft, hard=hard)) == expected


def test_parse_memlock_limit_without_the_row():
    with pytest.raises(ValueError, match="Max locked memory"):
        parse_memlock_limit("Limit Soft Limit Hard Limit Units\nMax cpu time unlimited unlimited seconds\n")


def test_parse_status_of_a_guest_process_seen_from_the_host():
    status = parse_status(VAULT_STATUS)
    assert status.name == "vault"
    assert (status.pid, status.ppid, status.nspid) == (29409, 28482, (29409, 58))
    assert status.innermost_pid == 58
    assert status.vmsize_bytes == 1360 * 1024
    assert status.vmlck_bytes == 0
    assert has_capability(status.cap_effective, CAP_IPC_LOCK)
    assert not has_capability(status.cap_bounding, CAP_IPC_LOCK)


def test_parse_status_of_a_kernel_thread_maps_nothing():
    status = parse_status(KTHREAD_STATUS)
    assert (status.vmsize_bytes, status.vmlck_bytes, status.innermost_pid) == (0, 0, 2)


def test_parse_status_without_nspid_uses_pid():
    status = parse_status("Name:\tbao\nPid:\t7\nVmSize:\t  4 kB\nVmLck:\t  4 kB\n")
    assert (status.nspid, status.innermost_pid, status.vmlck_bytes) == ((7,), 7, 4096)


@pytest.mark.parametrize(
    "text",
    ["", "Name:\tvault\n", "Name:\tvault\nPid:\tseven\n", "Name:\tv\nPid:\t1\nVmSize:\t12 MB\n"],
)
def test_parse_status_refuses_other_texts(text):
    with pytest.raises(ValueError, match="status"):
        parse_status(text)


@pytest.mark.parametrize(
    "mask, expected",
    [
        (0, frozenset()),
        (1 << CAP_IPC_LOCK, frozenset({14})),
        (0x000001ffffffbfff, frozenset(range(41)) - {14}),
        (0b101, frozenset({0, 2})),
    ],
)
def test_has_capability(mask, expected):
    assert has_capability(mask) == (CAP_IPC_LOCK in expected)
    assert all(has_capability(mask, bit) for bit in expected)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_has_capability_reads_every_bit(mask):
    assert sum(1 << bit for bit in range(64) if has_capability(mask, bit)) == mask


@pytest.mark.parametrize(
    "text, expected",
    [
        ("28482 (systemd) S 28466 28482 28482 0 -1 4194560", ("systemd", 28466)),
        ("77 (a (weird) name) R 1 77 77 0", ("a (weird) name", 1)),
        ("9 (sp ace) S 3 9", ("sp ace", 3)),
    ],
)
def test_parse_stat(text, expected):
    assert parse_stat(text) == expected


@pytest.mark.parametrize("text", ["", "12 no parentheses S 1", "12 (x)"])
def test_parse_stat_refuses_other_texts(text):
    with pytest.raises(ValueError, match="stat"):
        parse_stat(text)


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"/usr/bin/vault\0server\0-config=/etc/vault.d\0", ["/usr/bin/vault", "server", "-config=/etc/vault.d"]),
        (b"[lxc monitor] /var/lib/lxd/containers g1\0", ["[lxc monitor] /var/lib/lxd/containers g1"]),
        (b"", []),
    ],
)
def test_parse_cmdline(raw, expected):
    assert parse_cmdline(raw) == expected


@pytest.mark.parametrize(
    "comm, names, expected",
    [
        ("vault", ["vault", "bao"], True),
        ("bao", ["vault", "bao"], True),
        ("vaultx", ["vault"], False),
        ("vault-server-pr", ["vault-server-production"], True),  # comm keeps 15 characters
        ("sh", [], False),
    ],
)
def test_comm_matches(comm, names, expected):
    assert comm_matches(comm, names) is expected


@pytest.mark.parametrize(
    "text, rows, expected",
    [
        ("         0          0 4294967295\n", [(0, 0, 4294967295)], False),
        ("         0    1000000 1000000000\n", [(0, 1000000, 1000000000)], True),
        ("0 0 1000\n1000 101000 64536\n", [(0, 0, 1000), (1000, 101000, 64536)], True),
        ("", [], True),  # a user namespace that maps nothing yet
    ],
)
def test_uid_map(text, rows, expected):
    assert parse_uid_map(text) == rows
    assert in_user_namespace(text) is expected


def test_parse_uid_map_refuses_other_texts():
    with pytest.raises(ValueError, match="uid_map"):
        parse_uid_map("0 0\n")


def test_parse_swaps():
    text = (
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
        "/dev/vda2                               partition\t2097148\t\t0\t\t-2\n"
        "/var/swap\\040file                       file\t\t1024\t\t512\t\t-3\n"
    )
    assert parse_swaps(text) == [
        SwapArea("/dev/vda2", "partition", 2097148 * 1024, 0, -2),
        SwapArea("/var/swap file", "file", 1024 * 1024, 512 * 1024, -3),
    ]


def test_parse_swaps_without_swap():
    assert parse_swaps("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n") == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("MemTotal:       24576000 kB\nSwapCached:            0 kB\nSwapTotal:       2097148 kB\n", 2097148 * 1024),
        ("SwapTotal:             0 kB\n", 0),
        ("MemTotal:       24576000 kB\n", None),
    ],
)
def test_parse_meminfo_swap_total(text, expected):
    assert parse_meminfo_swap_total(text) == expected


def test_read_functions_through_a_proc_root(tmp_path):
    pid_dir = tmp_path / "4242"
    pid_dir.mkdir()
    (pid_dir / "limits").write_text(LIMITS_TEXT.format(soft="262144", hard="524288"))
    (pid_dir / "status").write_text(VAULT_STATUS)
    (pid_dir / "comm").write_text("vault\n")
    assert read_memlock_limit(4242, str(tmp_path)) == MemlockLimit(262144, 524288)
    assert read_status(4242, str(tmp_path)).innermost_pid == 58
    with pytest.raises(OSError):
        read_memlock_limit(4243, str(tmp_path))


def test_read_memlock_limit_of_this_process():
    # The real /proc: whatever the limit, it parses, and soft never exceeds hard.
    limit = read_memlock_limit(os.getpid())
    assert limit.hard is None or (limit.soft is not None and limit.soft <= limit.hard)
