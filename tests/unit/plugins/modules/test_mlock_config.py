# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest
from _files import make_vault, put, tree_snapshot
from _vault_files import OPENBAO_HCL as HCL, WITHOUT_LINE

from ansible_collections.vault_mlock.lxd.plugins.module_utils import _systemd
from ansible_collections.vault_mlock.lxd.plugins.modules import mlock_config

CONFIG = "/etc/openbao/openbao.hcl"
OPENBAO_UNIT = f"[Unit]\nDescription=OpenBao\n[Service]\nUser=openbao\nExecStart=/usr/bin/bao server -config={CONFIG}\n"
VAULT_UNIT = "[Service]\nExecStart=/usr/bin/vault server -config=/etc/vault.d\n"
PID = 4321


def warnings(result):
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def read(root, path):
    with open(os.path.join(str(root), path.lstrip("/")), encoding="utf-8") as handle:
        return handle.read()


@pytest.fixture
def guest(tmp_path, monkeypatch):
    """A guest's file system with OpenBao under openbao.service; systemd does not run."""
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    make_vault(root / "usr/bin", "bao")
    put(root, "/lib/systemd/system/openbao.service", OPENBAO_UNIT)
    put(root, CONFIG, HCL)
    monkeypatch.setattr(_systemd, "SYSTEM_ROOT", str(root))
    monkeypatch.setenv("PATH", "/nonexistent")
    return root


@pytest.fixture
def vault_guest(guest):
    """The same guest with HashiCorp Vault instead: vault.service reads /etc/vault.d."""
    os.remove(guest / "usr/bin/bao")
    make_vault(guest / "usr/bin", "vault")
    put(guest, "/lib/systemd/system/vault.service", VAULT_UNIT)
    put(guest, "/etc/vault.d/10-storage.hcl", 'storage "raft" {\n  path = "/opt/vault/data"\n}\n')
    put(guest, "/etc/vault.d/20-listener.json", '{\n  "listener": {"tcp": {"address": "127.0.0.1:8200"}}\n}\n')
    return guest


@pytest.fixture
def systemd(guest, tmp_path, monkeypatch):
    """systemd runs: a systemctl on PATH answers `show` for openbao.service as systemd 252 prints it."""
    (guest / "run/systemd/system").mkdir(parents=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "systemctl"
    script.write_text(
        "#!/bin/sh\n"
        'for last; do :; done\n'
        'if [ "$last" = openbao.service ]; then\n'
        "  echo LoadState=loaded\n  echo NeedDaemonReload=no\n"
        f"  echo 'ExecStart={{ path=/usr/bin/bao ; argv[]=/usr/bin/bao server -config={CONFIG} ; "
        "ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }'\n"
        f"  echo MainPID={PID}\n  echo MemorySwapMax=0\n"
        "else\n  echo LoadState=not-found\n  echo MainPID=0\nfi\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    # What the guest's /proc shows: bao runs, no swap, no memory controller for its cgroup.
    put(guest, f"/proc/{PID}/cgroup", "4:memory:/\n0::/system.slice/openbao.service\n")
    put(guest, f"/proc/{PID}/comm", "bao\n")
    put(guest, "/proc/self/mountinfo", "674 659 0:38 / /sys/fs/cgroup rw,relatime shared:550 - cgroup2 none rw\n")
    put(guest, "/proc/meminfo", "MemTotal: 24683520 kB\nSwapTotal: 0 kB\n")
    put(guest, "/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n")
    put(guest, "/sys/fs/cgroup/system.slice/openbao.service/cgroup.procs", f"{PID}\n")
    return script


# --- OpenBao ----------------------------------------------------------------------------------


def test_openbao_loses_the_line_and_says_why(run_module, guest):
    result = run_module(mlock_config, {})
    assert result["changed"] is True
    assert read(guest, CONFIG) == WITHOUT_LINE
    assert (result["binary"], result["server"], result["openbao"]) == ("/usr/bin/bao", "openbao", True)
    assert result["mlock"]["enabled"] is False
    assert "OpenBao 2 and later never lock memory" in result["mlock"]["reason"]
    assert (result["disable_mlock_before"], result["disable_mlock"]) == (False, None)
    assert result["service"] == "openbao.service"
    assert result["config_source"] == "/lib/systemd/system/openbao.service"
    assert result["config_files"] == [CONFIG]
    assert result["changed_lines"] == [{"path": CONFIG, "line": 15, "before": "disable_mlock = false", "after": None}]
    assert result["storage"] == {"type": "raft", "source": CONFIG}
    assert result["swap"] is None  # systemd does not run here


def test_second_run_changes_nothing(run_module, guest):
    run_module(mlock_config, {})
    before = tree_snapshot(guest)
    result = run_module(mlock_config, {})
    assert result["changed"] is False
    assert result["changed_lines"] == []
    assert tree_snapshot(guest) == before


def test_backup_keeps_the_text_before_and_says_where(run_module, guest):
    result = run_module(mlock_config, {"backup": True})
    [backup] = result["backups"]
    assert backup["path"] == CONFIG
    assert backup["backup"].startswith(CONFIG + ".") and backup["backup"].endswith("~")
    assert read(guest, backup["backup"]) == HCL and read(guest, CONFIG) == WITHOUT_LINE
    again = run_module(mlock_config, {"backup": True})
    assert (again["changed"], again["backups"]) == (False, [])


def test_no_backup_unless_asked_nor_in_check_mode(run_module, guest):
    before = tree_snapshot(guest)
    assert run_module(mlock_config, {"backup": True, "_ansible_check_mode": True})["backups"] == []
    assert tree_snapshot(guest) == before
    assert run_module(mlock_config, {})["backups"] == []
    assert sorted(os.listdir(guest / os.path.dirname(CONFIG).lstrip("/"))) == [os.path.basename(CONFIG)]


def test_check_mode_writes_nothing_and_diff_shows_the_change(run_module, guest):
    before = tree_snapshot(guest)
    result = run_module(mlock_config, {"_ansible_check_mode": True, "_ansible_diff": True})
    assert result["changed"] is True
    assert tree_snapshot(guest) == before
    assert result["diff"] == [{"before": HCL, "after": WITHOUT_LINE, "before_header": CONFIG, "after_header": CONFIG}]


def test_the_file_keeps_its_owner_and_mode(run_module, guest):
    os.chown(guest / CONFIG.lstrip("/"), 999, 998)
    os.chmod(guest / CONFIG.lstrip("/"), 0o640)
    run_module(mlock_config, {})
    info = os.stat(guest / CONFIG.lstrip("/"))
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (999, 998, 0o640)


def test_with_systemd_the_command_and_swap_come_from_it(run_module, guest, systemd):
    os.remove(guest / "lib/systemd/system/openbao.service")  # only systemd's loaded view is left
    result = run_module(mlock_config, {})
    assert result["config_source"] == "systemctl show"
    assert result["service_program"] == "/usr/bin/bao"
    assert read(guest, CONFIG) == WITHOUT_LINE
    swap = result["swap"]
    assert (swap["judgement"], swap["pid"], swap["cgroup_version"], swap["cgroup"]) == (
        "protected", PID, "v2", "/system.slice/openbao.service")
    assert swap["sentence"].startswith(f"bao (PID {PID}): the host has no swap")
    assert "MemorySwapMax=0 is set for openbao.service but not enforced" in swap["sentence"]


def test_explicit_config_and_a_service_that_runs_another_binary(run_module, guest):
    put(guest, "/etc/openbao/extra.hcl", "disable_mlock = true\n")
    make_vault(guest / "usr/bin", "bao-2.7")
    result = run_module(mlock_config, {"binary": "/usr/bin/bao-2.7", "config": [CONFIG, "/etc/openbao/extra.hcl"]})
    assert result["config_source"] == "config"
    assert read(guest, "/etc/openbao/extra.hcl") == ""
    assert len(result["changed_lines"]) == 2
    assert any("runs /usr/bin/bao, not /usr/bin/bao-2.7" in warning for warning in warnings(result))


def test_a_link_named_vault_to_bao_is_openbao(run_module, guest):
    (guest / "usr/local/bin").mkdir(parents=True)
    os.symlink("/usr/bin/bao", guest / "usr/local/bin/vault")
    result = run_module(mlock_config, {"config": [CONFIG]})
    assert (result["binary"], result["binary_resolved"], result["server"]) == (
        "/usr/local/bin/vault", "/usr/bin/bao", "openbao")


# --- HashiCorp Vault --------------------------------------------------------------------------


def test_vault_with_raft_gets_disable_mlock_true_in_its_first_file(run_module, vault_guest):
    result = run_module(mlock_config, {})
    assert result["server"] == "vault" and result["openbao"] is False
    assert result["mlock"] == {"enabled": False, "reason": (
        "integrated storage (raft) (/etc/vault.d/10-storage.hcl): mlock would lock the whole memory-mapped "
        "database as well, so HashiCorp recommends disable_mlock = true")}
    assert result["config_files"] == ["/etc/vault.d/10-storage.hcl", "/etc/vault.d/20-listener.json"]
    assert read(vault_guest, "/etc/vault.d/10-storage.hcl").endswith("}\ndisable_mlock = true\n")
    assert (result["disable_mlock_before"], result["disable_mlock"]) == (None, True)
    assert run_module(mlock_config, {})["changed"] is False


def test_vault_with_other_storage_keeps_locking_and_adds_nothing(run_module, vault_guest):
    put(vault_guest, "/etc/vault.d/10-storage.hcl", 'storage "consul" {\n}\n')
    before = tree_snapshot(vault_guest)
    result = run_module(mlock_config, {})
    assert result["changed"] is False
    assert result["mlock"]["enabled"] is True
    assert result["disable_mlock"] is None
    assert tree_snapshot(vault_guest) == before


def test_vault_line_saying_true_is_set_false_when_it_locks(run_module, vault_guest):
    put(vault_guest, "/etc/vault.d/20-listener.json", '{\n  "disable_mlock": "true"\n}\n')
    result = run_module(mlock_config, {"disable_mlock": False})
    assert read(vault_guest, "/etc/vault.d/20-listener.json") == '{\n  "disable_mlock": false\n}\n'
    assert result["mlock"] == {"enabled": True, "reason": "disable_mlock is false as asked"}
    assert result["disable_mlock"] is False


def test_storage_option_overrides_the_files(run_module, vault_guest):
    result = run_module(mlock_config, {"storage": "consul", "_ansible_check_mode": True})
    assert result["storage"] == {"type": "consul", "source": None}
    assert result["changed"] is False


# --- bad input: a clear failure, nothing written ----------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        ({"disable_mlock": "maybe"}, "disable_mlock: 'maybe' is not one of auto, true, false"),
        ({"disable_mlock": False}, "disable_mlock: false cannot be met: OpenBao"),
        ({"binary": "/usr/bin/nothing"}, "binary: /usr/bin/nothing does not exist"),
        ({"binary": "bao"}, "binary: 'bao' is not an absolute path"),
        ({"server": "hashicorp"}, "value of server must be one of"),
        ({"service": "bao daemon"}, "service: 'bao daemon' is not a valid unit name"),
        ({"service": "openbao.socket"}, "service: 'openbao.socket' is a .socket unit"),
        ({"service": "missing"}, "service: missing.service is neither loaded by systemd nor in its unit paths"),
        ({"config": ["/etc/openbao/missing.hcl"]}, "config: /etc/openbao/missing.hcl does not exist"),
        ({"config": ["relative.hcl"]}, "config: 'relative.hcl' is not an absolute path"),
    ],
)
def test_bad_input_fails_naming_the_option(run_module, guest, args, message):
    before = tree_snapshot(guest)
    result = run_module(mlock_config, args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert tree_snapshot(guest) == before


@pytest.mark.parametrize(
    "setup, message",
    [
        ("no-unit", "service=auto: found none of openbao.service, bao.service"),
        ("no-binary", "binary: no vault or bao on PATH nor in /usr/local/bin or /usr/bin"),
        ("dev", "starts the server with -dev"),
        ("relative", "gives -config openbao.hcl, a relative path"),
        ("broken-hcl", "/etc/openbao/openbao.hcl:1: a string is not terminated"),
        ("shared-line", "shares its line with other settings"),
    ],
)
def test_a_guest_that_cannot_be_handled_fails_clearly(run_module, guest, setup, message):
    if setup == "no-unit":
        os.remove(guest / "lib/systemd/system/openbao.service")
    elif setup == "no-binary":
        os.remove(guest / "usr/bin/bao")
    elif setup in ("dev", "relative"):
        argument = "-dev" if setup == "dev" else "-config=openbao.hcl"
        put(guest, "/etc/systemd/system/openbao.service.d/override.conf",
            f"[Service]\nExecStart=\nExecStart=/usr/bin/bao server {argument}\n")
    elif setup == "broken-hcl":
        put(guest, CONFIG, 'ui = "true\n' + HCL)
    elif setup == "shared-line":
        put(guest, CONFIG, HCL.replace("disable_mlock = false", "disable_mlock = false ui = true"))
    before = tree_snapshot(guest)
    result = run_module(mlock_config, {})
    assert result["failed"] is True
    assert message in result["msg"]
    assert tree_snapshot(guest) == before
