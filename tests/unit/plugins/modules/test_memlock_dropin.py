# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import stat

import pytest
from _files import put, tree_snapshot

from ansible_collections.vault_mlock.lxd.plugins.module_utils import _systemd
from ansible_collections.vault_mlock.lxd.plugins.modules import memlock_dropin

OURS = "/etc/systemd/system/lxd.service.d/00-memlock.conf"
UNIT_FILE = "/lib/systemd/system/lxd.service"
PID = 4242

GOLDEN_256M = """\
# Managed by vault_mlock.lxd.memlock_dropin; local changes will be overwritten.
# LimitMEMLOCK caps the memory each process of lxd.service may lock in RAM (RLIMIT_MEMLOCK).
# 256M is 268435456 bytes; systemd's K, M, G are powers of 1024.
# In an LXD guest started by this daemon, `ulimit -l` prints 262144 (KiB).
[Service]
LimitMEMLOCK=256M
"""

LIMITS_64K = """\
Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max locked memory         65536                65536                bytes
Max address space         unlimited            unlimited            bytes
"""

LIMITS_256M = LIMITS_64K.replace("65536                65536", "268435456            268435456")


def read(root, path):
    with open(os.path.join(str(root), path.lstrip("/")), encoding="utf-8") as handle:
        return handle.read()


def warnings(result):
    """Warning texts: plain strings, or ansible-core 2.19's WarningSummary objects."""
    texts = []
    for warning in result.get("warnings", []):
        texts.append(warning["event"]["msg"] if isinstance(warning, dict) else warning)
    return texts


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A file system tree with Debian's lxd.service, used by main() as its root."""
    root = tmp_path / "root"
    put(root, UNIT_FILE, "[Unit]\nDescription=LXD\n[Service]\nExecStart=/usr/bin/lxd\n")
    monkeypatch.setattr(_systemd, "SYSTEM_ROOT", str(root))
    return root


@pytest.fixture
def systemctl(tmp_path, monkeypatch):
    """A systemctl on PATH that logs its arguments, reports MainPID 4242 and reloads fine."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "systemctl.log"
    script = bindir / "systemctl"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'case "$*" in\n'
        f"  *MainPID*) echo {PID} ;;\n"
        "  *DefaultLimitMEMLOCK*) printf 'DefaultLimitMEMLOCKSoft=8388608\\nDefaultLimitMEMLOCK=8388608\\n' ;;\n"
        "esac\n"
        "exit 0\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    log.write_text("")
    return log


PID1_STATUS = "Name:\tsystemd\nPid:\t1\nPPid:\t0\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n"
LIMITS_8M = LIMITS_64K.replace("65536                65536", "8388608              8388608")
SHOW_MAIN_PID = "show --property=MainPID --value lxd.service"
SHOW_DEFAULT = "show --property=DefaultLimitMEMLOCKSoft --property=DefaultLimitMEMLOCK"


def report(soft, hard, value):
    """A limit in the modules' one shape."""
    return {"soft_bytes": soft, "hard_bytes": hard, "soft_ulimit_kib": None if soft is None else soft // 1024,
            "hard_ulimit_kib": None if hard is None else hard // 1024, "systemd_value": value}


R_256M = report(268435456, 268435456, "256M")
R_64K = report(65536, 65536, "64K")
R_8M = report(8388608, 8388608, "8M")
R_INFINITY = report(None, None, "infinity")


@pytest.fixture
def running(host, systemctl):
    """systemd runs as on a host (every capability, initial user namespace, hard limit 8 MiB), and
    lxd.service's main process 4242 has a 64K limit."""
    (host / "run" / "systemd" / "system").mkdir(parents=True)
    put(host, f"/proc/{PID}/limits", LIMITS_64K)
    put(host, "/proc/1/limits", LIMITS_8M)
    put(host, "/proc/1/status", PID1_STATUS)
    put(host, "/proc/1/uid_map", "         0          0 4294967295\n")
    return systemctl


@pytest.fixture
def in_container(running, host):
    """The same, but systemd runs in a user namespace (an unprivileged LXD guest), capped at 8 MiB."""
    put(host, "/proc/1/uid_map", "         0    1000000 1000000000\n")
    return running


# --- bad input fails before anything is touched --------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (dict(limit="256MB"), "limit: '256MB' is not a size"),
        (dict(limit="2M:1M"), "limit: soft limit 2M is above hard limit 1M"),
        (dict(limit=""), "limit: the value is empty"),
        (dict(state="absent", limit="lots"), "limit: 'lots' is not a size"),
        (dict(limit="1M", name="../00-memlock.conf"), "name: '../00-memlock.conf' must not contain '/'"),
        (dict(limit="1M", name="memlock"), "name: 'memlock' does not end in '.conf'"),
        (dict(limit="1M", name=".memlock.conf"), "name: '.memlock.conf' starts with '.'"),
        (dict(limit="1M", unit="lxd.socket"), "unit: 'lxd.socket' is a .socket unit"),
        (dict(limit="1M", unit="../lxd"), "unit: '../lxd' contains '/'"),
        (dict(limit="1M", unit="lxd daemon"), "unit: 'lxd daemon' is not a valid unit name"),
    ],
)
def test_bad_input_fails_and_writes_nothing(run_module, host, systemctl, args, message):
    before = tree_snapshot(host)
    result = run_module(memlock_dropin, args)
    assert result["failed"] is True
    assert result["msg"].startswith(message)
    assert tree_snapshot(host) == before
    assert systemctl.read_text() == ""


def test_limit_is_required_for_present(run_module, host):
    result = run_module(memlock_dropin, {})
    assert result["failed"] is True
    assert "limit" in result["msg"]
    assert not os.path.exists(os.path.join(str(host), OURS.lstrip("/")))


def test_state_choices(run_module, host):
    result = run_module(memlock_dropin, dict(limit="1M", state="latest"))
    assert result["failed"] is True
    assert "state" in result["msg"]


def test_auto_finds_no_daemon(run_module, host):
    os.unlink(os.path.join(str(host), UNIT_FILE.lstrip("/")))
    before = tree_snapshot(host)
    result = run_module(memlock_dropin, dict(limit="1M"))
    assert result["failed"] is True
    assert result["msg"].startswith("unit=auto: found none of lxd.service, snap.lxd.daemon.service, incus.service")
    assert tree_snapshot(host) == before


def test_auto_finds_several_daemons(run_module, host):
    put(host, "/etc/systemd/system/snap.lxd.daemon.service", "[Service]\nExecStart=/snap/bin/lxd\n")
    before = tree_snapshot(host)
    result = run_module(memlock_dropin, dict(limit="1M"))
    assert result["failed"] is True
    assert "found several LXD daemon units" in result["msg"]
    assert "snap.lxd.daemon.service (/etc/systemd/system/snap.lxd.daemon.service)" in result["msg"]
    assert tree_snapshot(host) == before


# --- without a running systemd (check mode on a container, this test machine) --------------------


def test_present_writes_the_dropin(run_module, host, systemctl):
    result = run_module(memlock_dropin, dict(limit="256M"))
    assert result["changed"] is True
    assert read(host, OURS) == GOLDEN_256M
    full = os.path.join(str(host), OURS.lstrip("/"))
    assert stat.S_IMODE(os.stat(full).st_mode) == 0o644
    assert {key: value for key, value in result.items()
            if key not in ("changed", "warnings", "invocation", "capability_bounding_set")} == {
        "path": OURS,
        "backup_path": None,
        "unit": "lxd.service",
        "unit_file": UNIT_FILE,
        "limit": R_256M,
        "effective_limit": R_256M,
        "limit_source": OURS,
        "overridden_by": None,
        "limit_settings": [{"path": OURS, "value": "256M", "valid": True}],
        "default_limit": None,
        "ceiling": {"hard_bytes": None, "reason": "systemd does not run here"},
        "start_limit": R_256M,
        "main_pid": None,
        "running_limit": None,
        "restart_required": False,
        "ambient_capabilities": [],
        "daemon_reloaded": False,
    }
    assert len(result["capability_bounding_set"]) == 41  # nothing restricts lxd.service's
    assert warnings(result) == []
    assert systemctl.read_text() == ""  # systemd does not run: nothing to ask, nothing to reload


def test_second_run_is_unchanged(run_module, host):
    run_module(memlock_dropin, dict(limit="256M"))
    result = run_module(memlock_dropin, dict(limit="268435456"))
    assert result["changed"] is False
    assert result["limit"] == R_256M


@pytest.mark.parametrize("limit, written, expected", [
    ("unlimited", "infinity", R_INFINITY),
    ("64M:1G", "64M:1G", report(67108864, 1073741824, "64M:1G")),
    ("256K", "256K", report(262144, 262144, "256K")),
    ("1G 512M", "1536M", report(1610612736, 1610612736, "1536M")),
    ("4.M", "4M", report(4194304, 4194304, "4M")),
    (" 4M:8M ", "4M:8M", report(4194304, 8388608, "4M:8M")),
])
def test_limit_is_normalised(run_module, host, limit, written, expected):
    result = run_module(memlock_dropin, dict(limit=limit))
    assert result["limit"] == expected
    assert read(host, OURS).endswith(f"\n[Service]\nLimitMEMLOCK={written}\n")


def test_check_mode_reports_without_writing(run_module, host):
    before = tree_snapshot(host)
    result = run_module(memlock_dropin, dict(limit="256M", _ansible_check_mode=True, _ansible_diff=True))
    assert result["changed"] is True
    assert result["effective_limit"] == R_256M
    assert result["diff"] == {
        "before": "",
        "after": GOLDEN_256M,
        "before_header": "(absent)",
        "after_header": OURS,
    }
    assert tree_snapshot(host) == before


def test_diff_shows_replaced_content(run_module, host):
    put(host, OURS, "[Service]\nLimitMEMLOCK=64K\n")
    result = run_module(memlock_dropin, dict(limit="256M", _ansible_diff=True))
    assert result["changed"] is True
    assert result["diff"]["before"] == "[Service]\nLimitMEMLOCK=64K\n"
    assert result["diff"]["after"] == GOLDEN_256M
    assert read(host, OURS) == GOLDEN_256M


def test_no_diff_without_diff_mode(run_module, host):
    result = run_module(memlock_dropin, dict(limit="256M"))
    assert "diff" not in result


def test_explicit_unit_without_suffix(run_module, tmp_path, monkeypatch):
    root = tmp_path / "guest"
    put(root, "/usr/lib/systemd/system/vault.service", "[Service]\nExecStart=/usr/bin/vault server\n")
    monkeypatch.setattr(_systemd, "SYSTEM_ROOT", str(root))
    result = run_module(memlock_dropin, dict(unit="vault", limit="infinity"))
    assert result["unit"] == "vault.service"
    assert result["path"] == "/etc/systemd/system/vault.service.d/00-memlock.conf"
    assert "In a process started by vault.service, `ulimit -l` prints unlimited." in read(root, result["path"])


def test_explicit_unit_not_installed_warns(run_module, host):
    result = run_module(memlock_dropin, dict(unit="vault.service", limit="1G"))
    assert result["changed"] is True
    assert result["unit_file"] is None
    assert any(warning.startswith("no unit file for vault.service") for warning in warnings(result))


def test_override_is_reported_and_warned(run_module, host):
    later = "/etc/systemd/system/lxd.service.d/override.conf"
    put(host, later, "[Service]\nLimitMEMLOCK=64K\n")
    result = run_module(memlock_dropin, dict(limit="256M"))
    assert result["overridden_by"] == later
    assert result["effective_limit"] == R_64K
    assert result["limit_source"] == later
    assert any(later in warning for warning in warnings(result))
    assert read(host, later) == "[Service]\nLimitMEMLOCK=64K\n"


def test_a_later_drop_in_stops_it_before_writing_naming_the_file_and_the_ways_out(run_module, host):
    later = "/etc/systemd/system/lxd.service.d/50-site.conf"
    put(host, later, "[Service]\nLimitMEMLOCK=512K\n")
    before = tree_snapshot(host)
    result = run_module(memlock_dropin, dict(limit="8M", fail_when_overridden=True))
    assert result["failed"] is True and result["overridden_by"] == later
    assert result["msg"].startswith(f"nothing was written: {later} sets LimitMEMLOCK=512K and is read after {OURS}")
    assert ("a name that sorts after 50-site.conf (option name; lxd_host_dropin_name in the role "
            "vault_mlock.lxd.lxd_host), or remove or edit that file") in result["msg"]
    assert tree_snapshot(host) == before
    passed = run_module(memlock_dropin, dict(limit="8M", name="60-memlock.conf", fail_when_overridden=True))
    assert passed["changed"] is True and passed["overridden_by"] is None
    undone = run_module(memlock_dropin, dict(limit="8M", state="absent", fail_when_overridden=True))
    assert undone.get("failed") is not True  # removing our drop-in is never stopped


def test_absent_removes_only_the_file(run_module, host):
    put(host, OURS, GOLDEN_256M)
    put(host, "/etc/systemd/system/lxd.service.d/10-other.conf", "[Service]\nLimitNOFILE=1024\n")
    result = run_module(memlock_dropin, dict(state="absent", _ansible_diff=True))
    assert result["changed"] is True
    assert result["limit"] is None
    assert result["effective_limit"] is None
    assert result["diff"]["before"] == GOLDEN_256M and result["diff"]["after"] == ""
    assert os.listdir(os.path.join(str(host), "etc/systemd/system/lxd.service.d")) == ["10-other.conf"]
    again = run_module(memlock_dropin, dict(state="absent"))
    assert again["changed"] is False


def test_absent_in_check_mode_keeps_the_file(run_module, host):
    put(host, OURS, GOLDEN_256M)
    result = run_module(memlock_dropin, dict(state="absent", _ansible_check_mode=True))
    assert result["changed"] is True
    assert read(host, OURS) == GOLDEN_256M


# --- with systemd running ------------------------------------------------------------------------


def test_running_daemon_change_reloads_and_needs_restart(run_module, host, running):
    result = run_module(memlock_dropin, dict(limit="256M"))
    assert result["changed"] is True
    assert result["daemon_reloaded"] is True
    assert result["main_pid"] == PID
    assert result["running_limit"] == R_64K
    assert result["start_limit"] == R_256M
    assert result["ceiling"]["hard_bytes"] is None  # a host's systemd can raise limits
    assert result["default_limit"] == R_8M
    assert result["restart_required"] is True
    assert running.read_text().splitlines() == ["daemon-reload", SHOW_MAIN_PID, SHOW_DEFAULT]


def test_running_daemon_unchanged_file_does_not_reload(run_module, host, running):
    run_module(memlock_dropin, dict(limit="256M"))
    running.write_text("")
    result = run_module(memlock_dropin, dict(limit="256M"))
    assert result["changed"] is False
    assert result["daemon_reloaded"] is False
    assert result["restart_required"] is True  # still on 64K until restarted
    assert running.read_text().splitlines() == [SHOW_MAIN_PID, SHOW_DEFAULT]


def test_running_daemon_already_on_the_limit(run_module, host, running):
    put(host, f"/proc/{PID}/limits", LIMITS_256M)
    result = run_module(memlock_dropin, dict(limit="256M"))
    assert result["running_limit"] == R_256M
    assert result["restart_required"] is False


def test_daemon_reload_false_skips_reload(run_module, host, running):
    result = run_module(memlock_dropin, dict(limit="256M", daemon_reload=False))
    assert result["changed"] is True
    assert result["daemon_reloaded"] is False
    assert "daemon-reload" not in running.read_text()


def test_check_mode_never_reloads(run_module, host, running):
    result = run_module(memlock_dropin, dict(limit="256M", _ansible_check_mode=True))
    assert result["changed"] is True
    assert result["daemon_reloaded"] is False
    assert result["restart_required"] is True
    assert "daemon-reload" not in running.read_text()


def test_process_gone_gives_no_running_limit(run_module, host, running):
    os.unlink(os.path.join(str(host), f"proc/{PID}/limits"))
    result = run_module(memlock_dropin, dict(limit="256M"))
    assert result["main_pid"] == PID
    assert result["running_limit"] is None
    assert result["restart_required"] is False


def test_failing_daemon_reload_fails_after_writing(run_module, host, running, tmp_path):
    script = tmp_path / "bin" / "systemctl"
    script.write_text('#!/bin/sh\necho "Failed to connect to bus" >&2\nexit 1\n')
    result = run_module(memlock_dropin, dict(limit="256M"))
    assert result["failed"] is True
    assert result["changed"] is True
    assert result["msg"] == (
        f"{OURS} was written, but daemon_reload: 'systemctl daemon-reload' failed with rc=1: Failed to connect to bus"
    )
    assert read(host, OURS) == GOLDEN_256M


# --- state=absent tells the truth -----------------------------------------------------------------


def test_absent_requires_a_restart_while_the_process_runs_on_the_removed_limit(run_module, host, running):
    put(host, OURS, GOLDEN_256M)
    put(host, f"/proc/{PID}/limits", LIMITS_256M)
    result = run_module(memlock_dropin, dict(state="absent"))
    assert result["changed"] is True and result["effective_limit"] is None
    assert result["start_limit"] == R_8M  # systemd's DefaultLimitMEMLOCK= from now on
    assert result["running_limit"] == R_256M
    assert result["restart_required"] is True
    again = run_module(memlock_dropin, dict(state="absent"))
    assert again["changed"] is False and again["restart_required"] is True  # until it is restarted


def test_absent_needs_no_restart_once_the_process_runs_on_the_default(run_module, host, running):
    put(host, f"/proc/{PID}/limits", LIMITS_8M)
    result = run_module(memlock_dropin, dict(state="absent"))
    assert result["changed"] is False and result["restart_required"] is False


# --- systemd's ceiling ---------------------------------------------------------------------------


def test_in_a_container_infinity_gives_the_ceiling_and_no_endless_restart(run_module, host, in_container):
    put(host, f"/proc/{PID}/limits", LIMITS_8M)
    result = run_module(memlock_dropin, dict(limit="infinity"))
    assert result["ceiling"]["hard_bytes"] == 8388608
    assert "runs in a user namespace" in result["ceiling"]["reason"]
    assert result["effective_limit"] == R_INFINITY and result["start_limit"] == R_8M
    assert result["restart_required"] is False  # it already runs on all a start can give
    assert any("silently lowers lxd.service's LimitMEMLOCK=infinity to 8M" in warning
               for warning in warnings(result))


def test_in_a_container_a_daemon_below_the_ceiling_needs_the_restart(run_module, host, in_container):
    result = run_module(memlock_dropin, dict(limit="infinity"))
    assert result["running_limit"] == R_64K and result["start_limit"] == R_8M
    assert result["restart_required"] is True


def test_on_a_host_infinity_gives_infinity(run_module, host, running):
    put(host, f"/proc/{PID}/limits", LIMITS_8M)
    result = run_module(memlock_dropin, dict(limit="infinity"))
    assert result["ceiling"]["hard_bytes"] is None
    assert result["start_limit"] == R_INFINITY
    assert result["restart_required"] is True
    assert not any("silently lowers" in warning for warning in warnings(result))


# --- CAP_IPC_LOCK and MemorySwapMax=0 ------------------------------------------------------------


def test_ipc_lock_keeps_a_root_services_bounding_set(run_module, tmp_path, monkeypatch):
    root = tmp_path / "guest"
    put(root, "/usr/lib/systemd/system/vault.service", "[Service]\nExecStart=/usr/bin/vault server\n")
    monkeypatch.setattr(_systemd, "SYSTEM_ROOT", str(root))
    result = run_module(memlock_dropin, dict(unit="vault", limit="infinity", ipc_lock=True))
    text = read(root, result["path"])
    assert "AmbientCapabilities=CAP_IPC_LOCK" in text and "CapabilityBoundingSet" not in text
    assert "cap_dac_override" in result["capability_bounding_set"]
    assert result["ambient_capabilities"] == ["cap_ipc_lock"]


def test_ipc_lock_joins_a_restricted_bounding_set(run_module, tmp_path, monkeypatch):
    root = tmp_path / "guest"
    put(root, "/usr/lib/systemd/system/vault.service",
        "[Service]\nExecStart=/usr/bin/vault server\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n")
    monkeypatch.setattr(_systemd, "SYSTEM_ROOT", str(root))
    result = run_module(memlock_dropin, dict(unit="vault", limit="infinity", ipc_lock=True))
    assert read(root, result["path"]).endswith("CapabilityBoundingSet=CAP_IPC_LOCK\n")
    assert result["capability_bounding_set"] == ["cap_net_bind_service", "cap_ipc_lock"]


def test_no_swap_for_a_snap_unit_goes_where_systemd_reads_it(run_module, tmp_path, monkeypatch):
    root = tmp_path / "guest"
    root.mkdir()
    monkeypatch.setattr(_systemd, "SYSTEM_ROOT", str(root))
    result = run_module(memlock_dropin, dict(unit="snap.vault.vaultd", name="00-no-swap.conf", no_swap=True))
    assert result["unit"] == "snap.vault.vaultd.service"
    assert result["path"] == "/etc/systemd/system/snap.vault.vaultd.service.d/00-no-swap.conf"
    assert read(root, result["path"]).endswith("[Service]\nMemorySwapMax=0\n")
    assert result["limit"] is None


def test_present_without_limit_or_no_swap_fails(run_module, host):
    result = run_module(memlock_dropin, dict(ipc_lock=True))
    assert result["failed"] is True
    assert result["msg"].startswith("limit: missing, and required with state=present unless no_swap=true")


def test_backup_keeps_an_earlier_dropin_of_that_name_and_the_undo_puts_it_back(run_module, host, systemctl):
    """An administrator's 00-memlock.conf survives a write and an undo; without one the undo removes ours."""
    theirs = "[Service]\nLimitMEMLOCK=512K\n"
    put(host, OURS, theirs)
    kept = OURS + ".vault_mlock-backup"
    first = run_module(memlock_dropin, dict(limit="256M", backup=True))
    assert first["changed"] and first["backup_path"] == kept
    assert read(host, OURS) == GOLDEN_256M and read(host, kept) == theirs
    second = run_module(memlock_dropin, dict(limit="8M", backup=True))
    assert second["changed"] and read(host, kept) == theirs  # the first backup stays
    checked = run_module(memlock_dropin, dict(state="absent", limit="8M", backup=True, _ansible_check_mode=True))
    assert checked["changed"] and checked["effective_limit"]["soft_bytes"] == 524288
    assert os.path.exists(os.path.join(str(host), kept.lstrip("/")))
    undone = run_module(memlock_dropin, dict(state="absent", limit="8M", backup=True))
    assert undone["changed"] and read(host, OURS) == theirs
    assert not os.path.exists(os.path.join(str(host), kept.lstrip("/")))
    # A second undo leaves their file: it does not hold what limit=8M writes.
    assert run_module(memlock_dropin, dict(state="absent", limit="8M", backup=True))["changed"] is False
    assert read(host, OURS) == theirs
    os.unlink(os.path.join(str(host), OURS.lstrip("/")))
    run_module(memlock_dropin, dict(limit="256M", backup=True))
    assert run_module(memlock_dropin, dict(state="absent", limit="256M", backup=True))["changed"] is True
    assert not os.path.exists(os.path.join(str(host), OURS.lstrip("/")))
