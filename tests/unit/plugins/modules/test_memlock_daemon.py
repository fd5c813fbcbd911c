# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest
from _daemon_host import KIB, MIB, SHOW_SNAP, FakeHost
from _files import put

from ansible_collections.vault_mlock.lxd.plugins.module_utils import _daemon_apply, _systemd
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, parse_limit
from ansible_collections.vault_mlock.lxd.plugins.modules import memlock_daemon

L = parse_limit
REPORT_KEYS = {"soft_bytes", "hard_bytes", "soft_ulimit_kib", "hard_ulimit_kib", "systemd_value"}
UNIT_FILES = {
    "deb": "/lib/systemd/system/lxd.service",
    "snap": "/etc/systemd/system/snap.lxd.daemon.service",
    "incus": "/lib/systemd/system/incus.service",
}


def warnings(result):
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A root with systemd running and a systemctl on PATH; ``lab(host)`` installs a FakeHost."""
    root = tmp_path / "root"
    (root / "run" / "systemd" / "system").mkdir(parents=True)
    monkeypatch.setattr(_systemd, "SYSTEM_ROOT", str(root))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "systemctl").write_text("#!/bin/sh\nexit 1\n")  # never run: the FakeHost answers
    (bindir / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")

    def install(host):
        put(root, UNIT_FILES[host.flavour], "[Service]\nExecStart=/usr/bin/lxd\n")
        monkeypatch.setattr(_daemon_apply, "DaemonHost", lambda run, systemctl, proc_root: host)
        return host
    install.root = root
    return install


def test_deb_live_raise_result(lab, run_module):
    host = lab(FakeHost("deb", MemlockLimit(512 * KIB, 8 * MIB), loaded=L("8M")))
    result = run_module(memlock_daemon, {"limit": "8M"})
    assert result["changed"] and result["action"] == "raised_live" and result["instances_kept"]
    assert result["unit"] == "lxd.service"
    assert result["daemon_pid"] == result["daemon_pid_before"] == host.daemon_pid
    for key in ("limit", "target", "daemon_limit_before", "daemon_limit"):
        assert set(result[key]) == REPORT_KEYS
    assert result["daemon_limit_before"] == {
        "soft_bytes": 524288, "hard_bytes": 8388608, "soft_ulimit_kib": 512, "hard_ulimit_kib": 8192,
        "systemd_value": "512K:8M"}
    assert result["daemon_limit"]["systemd_value"] == "8M" and result["daemon_limit"]["soft_ulimit_kib"] == 8192
    assert result["persistent"] and not result["can_raise_hard"] and not result["hard_raise_refused"]
    assert result["unit_properties"]["kill_mode"] == "process" and result["unit_properties"]["exec_stop"] == []
    assert "prlimit(2)" in result["reason"]


def test_second_run_is_unchanged(lab, run_module):
    lab(FakeHost("deb", L("512K:8M"), loaded=L("8M")))
    first = run_module(memlock_daemon, {"limit": "8M"})
    # Each run is a child process of its own: the second meets the daemon as the first left it.
    lab(FakeHost("deb", L(first["daemon_limit"]["systemd_value"]), loaded=L("8M")))
    again = run_module(memlock_daemon, {"limit": "8M"})
    assert not again["changed"] and again["action"] == "unchanged"


def test_snap_result_reloads_and_never_restarts(lab, run_module):
    host = lab(FakeHost("snap", L("2M"), loaded=L("8M")))
    before = host.instance_pids()
    result = run_module(memlock_daemon, {"limit": "8M"})
    assert result["unit"] == "snap.lxd.daemon.service" and result["action"] == "reloaded"
    assert ("restart", "snap.lxd.daemon.service") not in host.calls
    assert host.instance_pids() == before and result["instances_kept"]
    assert result["unit_properties"]["exec_stop"] == ["/usr/bin/snap run --command=stop lxd.daemon"]
    assert result["daemon_pid"] != result["daemon_pid_before"]
    assert result["unit_properties"]["main_pid"] != result["daemon_pid"]  # daemon.start, not lxd


def test_snap_restart_needs_the_opt_in(lab, run_module):
    host = lab(FakeHost("snap", L("2M"), loaded=L("8M"), template=SHOW_SNAP.replace("Restart=on-failure", "Restart=no")))
    result = run_module(memlock_daemon, {"limit": "8M"})
    assert not result["changed"] and result["action"] == "deferred" and host.acts() == []
    assert "allow_stopping_instances=true" in result["reason"]
    result = run_module(memlock_daemon, {"limit": "8M", "allow_stopping_instances": True})
    assert result["changed"] and result["action"] == "restarted" and not result["instances_kept"]
    assert any("allow_stopping_instances=true" in w for w in warnings(result))


def test_check_mode_and_diff(lab, run_module):
    host = lab(FakeHost("incus", L("2M"), loaded=L("8M")))
    before = (host.main_pid, dict(host.limits), host.instance_pids())
    result = run_module(memlock_daemon, {"limit": "8M", "_ansible_check_mode": True, "_ansible_diff": True})
    assert result["changed"] and result["action"] == "restarted" and host.acts() == []
    assert (host.main_pid, dict(host.limits), host.instance_pids()) == before
    assert result["daemon_limit"]["systemd_value"] == "2M"
    assert result["diff"]["before"] == f"incus.service daemon (PID {host.daemon_pid}) LimitMEMLOCK: 2M\n"
    assert result["diff"]["after"] == "incus.service daemon (PID -) LimitMEMLOCK: 8M\n"


def test_diff_of_an_unchanged_daemon_is_empty(lab, run_module):
    lab(FakeHost("deb", L("8M")))
    result = run_module(memlock_daemon, {"limit": "8M", "_ansible_diff": True, "_ansible_check_mode": True})
    assert not result["changed"] and result["diff"]["before"] == result["diff"]["after"]


def test_limit_omitted_applies_the_units_limit(lab, run_module):
    lab(FakeHost("deb", L("512K:8M"), loaded=L("8M")))
    result = run_module(memlock_daemon, {})
    assert result["action"] == "raised_live" and result["limit"]["systemd_value"] == "8M"


@pytest.mark.parametrize("args, words", [
    ({"limit": "12Q"}, ["limit", "K, M, G"]),
    ({"limit": "8M:4M"}, ["limit", "soft"]),
    ({"limit": ""}, ["limit"]),
    ({"unit": "../lxd"}, ["unit", "'/'"]),
    ({"unit": "lxd.socket"}, ["unit", ".service"]),
    ({"timeout": 0}, ["timeout"]),
    ({"allow_stopping_instances": "maybe"}, ["allow_stopping_instances"]),
])
def test_bad_input_fails_clearly_and_touches_nothing(lab, run_module, args, words):
    host = lab(FakeHost("deb", L("512K:8M"), loaded=L("8M")))
    result = run_module(memlock_daemon, args)
    assert result["failed"] and not result.get("changed")
    for word in words:
        assert word in result["msg"]
    assert host.acts() == []


def test_unit_auto_with_two_daemons_fails(lab, run_module):
    lab(FakeHost("deb", L("8M")))
    put(lab.root, UNIT_FILES["incus"], "[Service]\n")
    result = run_module(memlock_daemon, {"limit": "8M"})
    assert result["failed"] and "several LXD daemon units" in result["msg"]


def test_no_systemd_fails(lab, run_module):
    lab(FakeHost("deb", L("8M")))
    os.rmdir(lab.root / "run" / "systemd" / "system")
    result = run_module(memlock_daemon, {"limit": "8M"})
    assert result["failed"] and "systemd is not running" in result["msg"]


def test_apply_error_fails_with_the_unit(lab, run_module):
    lab(FakeHost("snap", L("2M"), loaded=L("8M"), restart_delay=1000))
    result = run_module(memlock_daemon, {"limit": "8M", "timeout": 1})
    assert result["failed"] and result["unit"] == "snap.lxd.daemon.service"
    assert "did not run a new daemon within 1 seconds" in result["msg"]
