# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._host_scan import (
    HostScan,
    local_daemon,
    parse_monitor,
    scan_host,
)


def test_scan_host_finds_inits_and_their_processes(host):
    scan = scan_host(str(host.root), "/var/lib/lxd", 4885, ["vault", "bao"])
    assert scan.inits == {"g1": 28482, "prod_g2": 30001}
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
    assert HostScan() == HostScan({}, {})
