# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest
from _files import read_xattr

from ansible_collections.vault_mlock.lxd.plugins.module_utils import _file_capability
from ansible_collections.vault_mlock.lxd.plugins.module_utils._xattr_caps import XATTR_NAME
from ansible_collections.vault_mlock.lxd.plugins.modules import file_capability

IPC_LOCK_EP_V2 = struct.pack("<5I", 0x02000001, 1 << 14, 0, 0, 0)
GETCAP = shutil.which("getcap") or ("/usr/sbin/getcap" if os.path.exists("/usr/sbin/getcap") else None)


def warning_text(warning) -> str:
    """ansible-core 2.19 reports a warning as a summary object, older ones as plain text."""
    return warning["event"]["msg"] if isinstance(warning, dict) else warning


@pytest.fixture(autouse=True)
def initial_namespace(tmp_path, monkeypatch):
    """Run as in the initial user namespace unless a test says otherwise."""
    uid_map = tmp_path / "uid_map"
    uid_map.write_text("         0          0 4294967295\n")
    monkeypatch.setattr(_file_capability, "UID_MAP_PATH", str(uid_map))
    return uid_map


def test_sets_cap_ipc_lock_by_default(run_module, vault):
    result = run_module(file_capability, {"path": str(vault)})
    assert result["changed"] is True
    assert result["path"] == str(vault)
    assert result["link"] is None
    assert (result["before"], result["after"]) == ("", "cap_ipc_lock=ep")
    assert result["rootid"] is None
    assert result["in_user_namespace"] is False
    assert "diff" not in result and not result.get("warnings")
    assert read_xattr(vault) == IPC_LOCK_EP_V2


def test_second_run_is_unchanged(run_module, vault):
    run_module(file_capability, {"path": str(vault)})
    result = run_module(file_capability, {"path": str(vault), "capability": "cap_ipc_lock=+ep"})
    assert result["changed"] is False
    assert result["before"] == result["after"] == "cap_ipc_lock=ep"


def test_check_mode_writes_nothing(run_module, vault):
    result = run_module(file_capability, {"path": str(vault), "_ansible_check_mode": True})
    assert result["changed"] is True
    assert result["after"] == "cap_ipc_lock=ep"
    assert read_xattr(vault) is None


def test_diff_mode_shows_getcap_text(run_module, vault):
    os.setxattr(vault, XATTR_NAME, IPC_LOCK_EP_V2)
    result = run_module(file_capability, {
        "path": str(vault), "cap": "cap_net_bind_service=ep", "_ansible_diff": True, "_ansible_check_mode": True,
    })
    assert result["diff"] == {
        "before": "cap_ipc_lock=ep\n",
        "after": "cap_net_bind_service,cap_ipc_lock=ep\n",
        "before_header": str(vault),
        "after_header": str(vault),
    }
    assert read_xattr(vault) == IPC_LOCK_EP_V2


def test_diff_of_removal_ends_empty(run_module, vault):
    os.setxattr(vault, XATTR_NAME, IPC_LOCK_EP_V2)
    result = run_module(file_capability, {"path": str(vault), "state": "absent", "_ansible_diff": True})
    assert result["diff"]["before"] == "cap_ipc_lock=ep\n"
    assert result["diff"]["after"] == ""
    assert (result["changed"], result["after"]) == (True, "")
    assert read_xattr(vault) is None


def test_absent_with_a_bare_name_keeps_other_capabilities(run_module, vault):
    run_module(file_capability, {"path": str(vault), "capability": "cap_ipc_lock,cap_net_bind_service=eip"})
    result = run_module(file_capability, {"path": str(vault), "capability": "cap_ipc_lock", "state": "absent"})
    assert (result["before"], result["after"]) == ("cap_net_bind_service,cap_ipc_lock=eip", "cap_net_bind_service=eip")


def test_exact_replaces_and_empty_exact_removes(run_module, vault):
    run_module(file_capability, {"path": str(vault), "capability": "cap_chown,cap_net_raw=ep"})
    result = run_module(file_capability, {"path": str(vault), "capability": "CAP_IPC_LOCK=pe", "state": "exact"})
    assert (result["changed"], result["after"]) == (True, "cap_ipc_lock=ep")
    assert read_xattr(vault) == IPC_LOCK_EP_V2
    result = run_module(file_capability, {"path": str(vault), "capability": "", "state": "exact"})
    assert (result["changed"], result["after"], read_xattr(vault)) == (True, "", None)


def test_symlink_is_followed_and_reported(run_module, vault, tmp_path):
    link = tmp_path / "bin-vault"
    link.symlink_to(vault)
    result = run_module(file_capability, {"path": str(link)})
    assert (result["path"], result["link"]) == (str(vault), str(link))
    assert read_xattr(vault) == IPC_LOCK_EP_V2


def test_follow_false_on_a_link_fails(run_module, vault, tmp_path):
    link = tmp_path / "bin-vault"
    link.symlink_to(vault)
    result = run_module(file_capability, {"path": str(link), "follow": False})
    assert result["failed"] is True
    assert result["msg"].startswith(f"follow: {link} is a symbolic link")
    assert read_xattr(vault) is None


def test_rootid_is_written_and_returned(run_module, vault):
    result = run_module(file_capability, {"path": str(vault), "rootid": 1000000})
    assert (result["after"], result["rootid"]) == ("cap_ipc_lock=ep", 1000000)
    assert len(read_xattr(vault)) == 24
    if GETCAP:
        printed = subprocess.run([GETCAP, "-n", str(vault)], check=True, capture_output=True, text=True).stdout
        assert printed.strip() == f"{vault} cap_ipc_lock=ep [rootid=1000000]"


@pytest.mark.parametrize(
    "args, fragment",
    [
        ({"path": "{tmp}/missing"}, "path: {tmp}/missing does not exist"),
        ({"path": "{tmp}"}, "path: {tmp} is a directory"),
        ({"path": "/dev/null"}, "path: /dev/null is a character device"),
        ({"path": "{tmp}/vault", "capability": "cap_ipc_lok=ep"}, "capability: unknown capability 'cap_ipc_lok'"),
        ({"path": "{tmp}/vault", "capability": "cap_ipc_lock=ep cap_net_raw+p", "state": "exact"},
         "capability: the file format cannot store this"),
        ({"path": "{tmp}/vault", "capability": "cap_ipc_lock=EP"}, "flags are lowercase e, i, p"),
        ({"path": "{tmp}/vault", "capability": "cap_ipc_lock"}, "no operator and flags"),
        ({"path": "{tmp}/vault", "rootid": -1}, "rootid: -1 is not a uid"),
        ({"path": "/proc/version"}, "does not support the security.capability extended attribute"),
    ],
)
def test_bad_input_fails_and_writes_nothing(run_module, vault, tmp_path, args, fragment):
    args = {key: value.format(tmp=tmp_path) if isinstance(value, str) else value for key, value in args.items()}
    result = run_module(file_capability, args)
    assert result["failed"] is True
    assert fragment.format(tmp=tmp_path) in result["msg"]
    assert read_xattr(vault) is None


def test_missing_path_option_fails(run_module):
    result = run_module(file_capability, {})
    assert result["failed"] is True
    assert "path" in result["msg"]


def test_bad_state_is_refused_by_the_argument_spec(run_module, vault):
    result = run_module(file_capability, {"path": str(vault), "state": "on"})
    assert result["failed"] is True
    assert "state" in result["msg"] and "present" in result["msg"]


def test_warns_in_a_user_namespace(run_module, vault, initial_namespace):
    initial_namespace.write_text("         0    1000000      65536\n")
    result = run_module(file_capability, {"path": str(vault), "_ansible_check_mode": True})
    assert result["in_user_namespace"] is True
    assert [warning_text(w) for w in result["warnings"]] == [_file_capability.MEMLOCK_WARNING]
