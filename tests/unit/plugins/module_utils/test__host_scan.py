# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._host_scan import (
    LXC_CONF_DIRS,
    HostScan,
    StartLimit,
    daemon_comm,
    lxc_conf_path,
    local_daemon,
    parse_monitor,
    parse_prlimit_memlock,
    read_start_limit,
    scan_host,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit

from _host_proc import KIB, MIB


def test_scan_host_finds_inits_and_their_processes(host):
    scan = scan_host(str(host.root), "/var/lib/lxd", 4885, ["vault", "bao"])
    assert scan.inits == {"g1": 28482, "prod_g2": 30001}
    assert scan.monitors == {"g1": 28466, "prod_g2": 30000}
    assert {init: sorted(pids) for init, pids in scan.processes.items()} == {28482: [29409, 29500], 30001: [30010]}


def test_scan_host_with_a_monitor_but_no_init_yet(host):
    host.add(42000, "lxd", cmdline="[lxc monitor] /var/lib/lxd/containers starting")
    assert "starting" not in scan_host(str(host.root), "/var/lib/lxd", 4885, ["vault"]).inits


@pytest.mark.parametrize(
    "cmdline, expected",
    [
        (["[lxc monitor] /var/lib/lxd/containers g1"], ("/var/lib/lxd/containers", "g1")),
        (["[lxc monitor]", "/var/lib/incus/containers", "prod_web-1"], ("/var/lib/incus/containers", "prod_web-1")),
        (["[lxc monitor] g1"], None),
        (["/usr/bin/lxd", "--group", "root"], None),
        ([], None),
    ],
)
def test_parse_monitor(cmdline, expected):
    assert parse_monitor(cmdline) == expected


def test_local_daemon(host):
    root = str(host.root)
    assert local_daemon(root, 4885) is True
    assert local_daemon(root, 50000) is False  # not an lxd process
    assert local_daemon(root, 40000 + 7) is False  # no such process
    assert local_daemon(root, None) is False
    host.add(60000, "lxd", ns="pid:[999]")
    assert local_daemon(root, 60000) is False  # an lxd in another PID namespace


USUAL_SOCKETS = ["/var/lib/lxd/unix.socket", "/var/snap/lxd/common/lxd/unix.socket", "/var/lib/incus/unix.socket"]


def test_host_scan_defaults_are_empty():
    assert HostScan() == HostScan({}, {}, {})


def test_what_lxd_gave_at_start_is_the_monitors_limit(host):
    """g1 started while the daemon had 64 KiB; its lxc.conf sets no prlimit."""
    assert read_start_limit(str(host.root), 28466) == StartLimit(MemlockLimit(64 * KIB, 64 * KIB), "the LXD daemon")


def test_what_lxd_gave_at_start_with_limits_kernel_memlock(host):
    host.add_monitor(31000, "soft", limit=(8 * MIB,), prlimit="262144:4194304")
    assert read_start_limit(str(host.root), 31000) == StartLimit(MemlockLimit(256 * KIB, 4 * MIB),
                                                                 "limits.kernel.memlock")
    assert lxc_conf_path(str(host.root), 31000) == str(host.logs / "soft" / "lxc.conf")


def test_what_lxd_gave_at_start_is_unknown_without_the_log(host):
    host.add(32000, "lxd", cmdline="[lxc monitor] /var/lib/lxd/containers nolog", limit=(8 * MIB,))
    assert lxc_conf_path(str(host.root), 32000) is None
    assert read_start_limit(str(host.root), 32000) is None
    assert read_start_limit(str(host.root), 99999) is None  # gone


@pytest.mark.parametrize(
    "text, expected",
    [
        ("lxc.uts.name = g1\n", None),
        ("lxc.prlimit.memlock = 65536\n", MemlockLimit(65536, 65536)),
        ("lxc.prlimit.memlock = unlimited\n", MemlockLimit(None, None)),
        ("lxc.prlimit.memlock=262144:4194304\n", MemlockLimit(262144, 4194304)),
        ("lxc.prlimit.memlock = 1\nlxc.prlimit.memlock = 2\n", MemlockLimit(2, 2)),
        ("lxc.prlimit.memlock = lots\n", None),
        ("lxc.prlimit.nofile = 1024\n", None),
    ],
)
def test_parse_prlimit_memlock(text, expected):
    assert parse_prlimit_memlock(text) == expected


def test_daemon_comm(host):
    host.add(7000, "incusd", cmdline="incusd\0--group\0incus-admin")
    assert daemon_comm(str(host.root), 4885) == "lxd"
    assert daemon_comm(str(host.root), 7000) == "incusd"
    assert daemon_comm(str(host.root), 99999) == ""  # gone
    assert daemon_comm(str(host.root), None) == ""


def test_incus_writes_lxc_conf_in_its_run_directory():
    """Measured on Debian 13's Incus 6.0.4: /run/incus/NAME/lxc.conf, and only lxc.log in /var/log/incus/NAME."""
    assert LXC_CONF_DIRS == {"incusd": "/run/incus"}
