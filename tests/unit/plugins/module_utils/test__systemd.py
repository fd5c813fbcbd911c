# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._systemd import (
    LXD_DAEMON_UNITS,
    UNIT_PATHS,
    SystemdError,
    UnitFile,
    daemon_reload,
    default_memlock_limit,
    detect_lxd_unit,
    find_unit_file,
    join_root,
    main_pid,
    normalize_unit_name,
    resolve_unit,
    systemd_running,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit

SERVICE = "[Unit]\nDescription=test\n[Service]\nExecStart=/bin/true\n"


def put(root, path, text=SERVICE):
    """Create ``path`` (absolute on the target) under ``root``."""
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as handle:
        handle.write(text)
    return full


def link(root, path, target):
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    os.symlink(target, full)
    return full


class FakeSystemctl:
    """Records argv and answers like run_command: (rc, stdout, stderr)."""

    def __init__(self, rc=0, out="", err=""):
        self.rc, self.out, self.err = rc, out, err
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        return self.rc, self.out, self.err


@pytest.mark.parametrize(
    "text, expected",
    [
        ("lxd.service", "lxd.service"),
        ("vault", "vault.service"),
        ("vault.service", "vault.service"),
        ("snap.lxd.daemon", "snap.lxd.daemon.service"),
        ("snap.lxd.daemon.service", "snap.lxd.daemon.service"),
        ("snap.vault.vaultd", "snap.vault.vaultd.service"),  # 'vaultd' is no unit type: its .d is ...service.d
        ("incus", "incus.service"),
        ("getty@tty1.service", "getty@tty1.service"),
        ("vault@.service", "vault@.service"),
        ("vault@", "vault@.service"),
        ("a-b_c:d\\x2d.service", "a-b_c:d\\x2d.service"),
        ("  lxd.service  ", "lxd.service"),
        ("x" * 247 + ".service", "x" * 247 + ".service"),
    ],
)
def test_normalize_unit_name(text, expected):
    assert normalize_unit_name(text) == expected


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("/etc/systemd/system/lxd.service", "contains '/'"),
        ("../lxd.service", "contains '/'"),
        ("lxd.service/", "contains '/'"),
        ("lxd.socket", "is a .socket unit"),
        ("lxd.timer", "is a .timer unit"),
        ("multi-user.target", "is a .target unit"),
        (".service", "not a valid unit name"),
        (".hidden.service", "not a valid unit name"),
        ("@.service", "not a valid unit name"),
        ("my vault.service", "not a valid unit name"),
        ("v\u00e4ult.service", "not a valid unit name"),
        ("a@b@c.service", "not a valid unit name"),
        ("lxd;reboot", "not a valid unit name"),
        ("x" * 248 + ".service", "longer than 255"),
    ],
)
def test_normalize_unit_name_refuses(text, reason):
    with pytest.raises(SystemdError) as caught:
        normalize_unit_name(text)
    message = str(caught.value)
    assert message.startswith("unit: ")
    assert reason in message
    assert "'.service'" in message  # names the accepted form


def test_normalize_unit_name_refuses_non_text():
    with pytest.raises(SystemdError, match="empty"):
        normalize_unit_name(None)


@pytest.mark.parametrize(
    "root, path, expected",
    [
        ("/", "/etc/systemd/system", "/etc/systemd/system"),
        ("/tmp/tree", "/etc/systemd/system", "/tmp/tree/etc/systemd/system"),
        ("/tmp/tree/", "/proc", "/tmp/tree/proc"),
    ],
)
def test_join_root(root, path, expected):
    assert join_root(root, path) == expected


def test_unit_paths_in_systemd_priority_order():
    assert UNIT_PATHS.index("/etc/systemd/system") < UNIT_PATHS.index("/run/systemd/system")
    assert UNIT_PATHS.index("/run/systemd/system") < UNIT_PATHS.index("/usr/local/lib/systemd/system")
    assert UNIT_PATHS.index("/usr/local/lib/systemd/system") < UNIT_PATHS.index("/lib/systemd/system")
    # as systemd 252 on Debian 12 orders them (`systemd-analyze unit-paths`)
    assert UNIT_PATHS.index("/lib/systemd/system") < UNIT_PATHS.index("/usr/lib/systemd/system")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_unit_paths_agree_with_systemd():
    """Same order as this machine's systemd; only /lib ones may be missing there (no split /usr)."""
    process = subprocess.run(["systemd-analyze", "unit-paths"], stdout=subprocess.PIPE, universal_newlines=True,
                             check=True)
    listed = process.stdout.split()
    ours = [path for path in UNIT_PATHS if path in listed]
    assert ours == [path for path in listed if path in UNIT_PATHS]
    assert set(UNIT_PATHS) - set(listed) <= {"/lib/systemd/system"}
    assert set(listed) - set(UNIT_PATHS) == set()


@pytest.mark.parametrize(
    "present, expected",
    [
        (["/lib/systemd/system"], "/lib/systemd/system/lxd.service"),
        (["/usr/lib/systemd/system", "/lib/systemd/system"], "/lib/systemd/system/lxd.service"),
        (["/usr/lib/systemd/system"], "/usr/lib/systemd/system/lxd.service"),
        (["/etc/systemd/system.control", "/etc/systemd/system"], "/etc/systemd/system.control/lxd.service"),
        (["/etc/systemd/system", "/lib/systemd/system"], "/etc/systemd/system/lxd.service"),
        (["/run/systemd/system", "/usr/local/lib/systemd/system"], "/run/systemd/system/lxd.service"),
        (["/usr/local/lib/systemd/system", "/usr/lib/systemd/system"], "/usr/local/lib/systemd/system/lxd.service"),
    ],
)
def test_find_unit_file_takes_the_highest_priority_path(tmp_path, present, expected):
    for directory in present:
        put(tmp_path, f"{directory}/lxd.service")
    assert find_unit_file("lxd.service", str(tmp_path)) == UnitFile("lxd.service", expected, False)


def test_find_unit_file_instance_uses_its_template(tmp_path):
    put(tmp_path, "/usr/lib/systemd/system/vault@.service")
    assert find_unit_file("vault@a.service", str(tmp_path)) == UnitFile(
        "vault@a.service", "/usr/lib/systemd/system/vault@.service", False
    )
    put(tmp_path, "/usr/lib/systemd/system/vault@a.service")  # an instance's own file wins, wherever it is
    assert find_unit_file("vault@a.service", str(tmp_path)).path == "/usr/lib/systemd/system/vault@a.service"


def test_find_unit_file_none(tmp_path):
    put(tmp_path, "/lib/systemd/system/other.service")
    assert find_unit_file("lxd.service", str(tmp_path)) is None


def test_find_unit_file_masked_by_dev_null_link(tmp_path):
    put(tmp_path, "/lib/systemd/system/lxd.service")
    link(tmp_path, "/etc/systemd/system/lxd.service", "/dev/null")
    assert find_unit_file("lxd.service", str(tmp_path)) == UnitFile(
        "lxd.service", "/etc/systemd/system/lxd.service", True
    )


def test_find_unit_file_empty_file_is_masked(tmp_path):
    put(tmp_path, "/etc/systemd/system/lxd.service", "")
    assert find_unit_file("lxd.service", str(tmp_path)).masked is True


def test_find_unit_file_skips_dangling_link(tmp_path):
    link(tmp_path, "/etc/systemd/system/lxd.service", str(tmp_path / "nowhere"))
    put(tmp_path, "/lib/systemd/system/lxd.service")
    assert find_unit_file("lxd.service", str(tmp_path)).path == "/lib/systemd/system/lxd.service"


def test_find_unit_file_follows_relative_link(tmp_path):
    put(tmp_path, "/lib/systemd/system/lxd.service")
    link(tmp_path, "/etc/systemd/system/lxd.service", "../../../lib/systemd/system/lxd.service")
    found = find_unit_file("lxd.service", str(tmp_path))
    assert found == UnitFile("lxd.service", "/etc/systemd/system/lxd.service", False)


@pytest.mark.parametrize(
    "unit_path",
    [
        "/lib/systemd/system/lxd.service",
        "/usr/lib/systemd/system/lxd.service",
        "/etc/systemd/system/snap.lxd.daemon.service",
        "/usr/lib/systemd/system/incus.service",
        "/lib/systemd/system/incus.service",
    ],
)
def test_detect_lxd_unit_finds_the_one(tmp_path, unit_path):
    put(tmp_path, unit_path)
    put(tmp_path, "/lib/systemd/system/lxd.socket")  # not a daemon unit: never picked
    found = detect_lxd_unit(str(tmp_path))
    assert found.path == unit_path
    assert found.name == os.path.basename(unit_path)


def test_detect_lxd_unit_none_says_what_and_where(tmp_path):
    put(tmp_path, "/lib/systemd/system/lxd-agent.service")
    with pytest.raises(SystemdError) as caught:
        detect_lxd_unit(str(tmp_path))
    message = str(caught.value)
    assert message.startswith("unit=auto: found none of")
    for unit in LXD_DAEMON_UNITS:
        assert unit in message
    for unit_path in ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"):
        assert unit_path in message
    assert "unit=NAME" in message


def test_detect_lxd_unit_several_lists_them(tmp_path):
    put(tmp_path, "/lib/systemd/system/lxd.service")
    put(tmp_path, "/usr/lib/systemd/system/incus.service")
    with pytest.raises(SystemdError) as caught:
        detect_lxd_unit(str(tmp_path))
    message = str(caught.value)
    assert "found several" in message
    assert "lxd.service (/lib/systemd/system/lxd.service)" in message
    assert "incus.service (/usr/lib/systemd/system/incus.service)" in message
    assert "snap.lxd.daemon.service (" not in message


def test_detect_lxd_unit_ignores_masked(tmp_path):
    put(tmp_path, "/lib/systemd/system/lxd.service")
    link(tmp_path, "/etc/systemd/system/lxd.service", "/dev/null")
    put(tmp_path, "/usr/lib/systemd/system/incus.service")
    assert detect_lxd_unit(str(tmp_path)).name == "incus.service"


def test_detect_lxd_unit_only_masked_is_none(tmp_path):
    link(tmp_path, "/etc/systemd/system/lxd.service", "/dev/null")
    with pytest.raises(SystemdError, match="found none"):
        detect_lxd_unit(str(tmp_path))


@pytest.mark.parametrize(
    "rc, out, expected",
    [
        (0, "1234\n", 1234),
        (0, "1\n", 1),
        (0, "0\n", None),  # not running
        (0, "", None),
        (0, "garbage\n", None),
        (1, "", None),  # no such unit, or no systemd to ask
    ],
)
def test_main_pid(rc, out, expected):
    run = FakeSystemctl(rc, out)
    assert main_pid("lxd.service", run, "/usr/bin/systemctl") == expected
    assert run.calls == [["/usr/bin/systemctl", "show", "--property=MainPID", "--value", "lxd.service"]]


def test_daemon_reload_runs_systemctl():
    run = FakeSystemctl()
    daemon_reload(run, "/bin/systemctl")
    assert run.calls == [["/bin/systemctl", "daemon-reload"]]


def test_daemon_reload_failure_says_why():
    run = FakeSystemctl(1, "", "Failed to connect to bus: No such file or directory\n")
    with pytest.raises(SystemdError) as caught:
        daemon_reload(run)
    assert str(caught.value) == (
        "daemon_reload: 'systemctl daemon-reload' failed with rc=1: Failed to connect to bus: No such file or directory"
    )


def test_systemd_running(tmp_path):
    assert systemd_running(str(tmp_path)) is False
    (tmp_path / "run" / "systemd" / "system").mkdir(parents=True)
    assert systemd_running(str(tmp_path)) is True


def test_resolve_unit_auto_finds_the_daemon(tmp_path):
    put(tmp_path, "/lib/systemd/system/incus.service")
    assert resolve_unit("auto", str(tmp_path)) == "incus.service"


def test_resolve_unit_names_a_service(tmp_path):
    assert resolve_unit("snap.vault.vaultd", str(tmp_path)) == "snap.vault.vaultd.service"
    with pytest.raises(SystemdError, match="^unit: 'vault.socket' is a .socket unit"):
        resolve_unit("vault.socket", str(tmp_path))


@pytest.mark.parametrize(
    "rc, out, expected",
    [
        (0, "DefaultLimitMEMLOCKSoft=8388608\nDefaultLimitMEMLOCK=8388608\n", MemlockLimit(8388608, 8388608)),
        (0, "DefaultLimitMEMLOCK=infinity\nDefaultLimitMEMLOCKSoft=65536\n", MemlockLimit(65536, None)),
        (0, "DefaultLimitMEMLOCK=8388608\n", None),  # a systemd that does not tell the soft limit
        (0, "DefaultLimitMEMLOCKSoft=x\nDefaultLimitMEMLOCK=8388608\n", None),
        (1, "", None),
    ],
)
def test_default_memlock_limit(rc, out, expected):
    run = FakeSystemctl(rc, out)
    assert default_memlock_limit(run, "/bin/systemctl") == expected
    assert run.calls == [["/bin/systemctl", "show", "--property=DefaultLimitMEMLOCKSoft",
                          "--property=DefaultLimitMEMLOCK"]]
