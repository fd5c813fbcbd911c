# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bad input, across every module: a clear failure that names the option and the accepted
form, and nothing written (files, modes and extended attributes compared before and after)."""

from __future__ import annotations

import os

import pytest
from _files import make_vault, tree_snapshot

from ansible_collections.vault_mlock.lxd.plugins.module_utils import _systemd
from ansible_collections.vault_mlock.lxd.plugins.modules import (
    file_capability,
    memlock_dropin,
    memlock_facts,
    memlock_probe,
)

VAULT_CAPS = bytes.fromhex("0100000200400000000000000000000000000000")  # cap_ipc_lock=ep, revision 2

# (id, module, arguments, words the message must contain: the option, and the accepted form)
CASES = [
    # file_capability: the capability text
    ("cap-unknown-name", file_capability, {"capability": "cap_ipc_lok=ep"}, ["capability", "cap_ipc_lok"]),
    ("cap-no-operator", file_capability, {"capability": "cap_ipc_lock"}, ["capability", "cap_ipc_lock"]),
    ("cap-bad-flag", file_capability, {"capability": "cap_ipc_lock=ex"}, ["capability", "x"]),
    ("cap-upper-flags", file_capability, {"capability": "cap_ipc_lock=EP"}, ["capability"]),
    ("cap-empty-list-item", file_capability, {"capability": "cap_ipc_lock,,cap_chown=ep"}, ["capability"]),
    ("cap-number-too-big", file_capability, {"capability": "64=ep"}, ["capability", "64"]),
    ("cap-negative-number", file_capability, {"capability": "-1=ep"}, ["capability"]),
    ("cap-huge-number", file_capability, {"capability": "99999999999999999999=ep"}, ["capability"]),
    ("cap-unstorable-effective", file_capability, {"capability": "cap_ipc_lock=ep cap_net_raw+p"},
     ["capability", "effective"]),
    ("cap-trailing-operator", file_capability, {"capability": "cap_ipc_lock=ep+"}, ["capability"]),
    ("cap-only-operator", file_capability, {"capability": "+"}, ["capability"]),
    ("cap-garbage", file_capability, {"capability": "setcap cap_ipc_lock+ep /usr/bin/vault"}, ["capability"]),
    ("cap-lone-effective", file_capability, {"capability": "cap_ipc_lock=e", "state": "exact"}, ["capability"]),
    # file_capability: the path
    ("path-missing", file_capability, {"path": "{tmp}/nowhere"}, ["path", "does not exist"]),
    ("path-directory", file_capability, {"path": "{tmp}"}, ["is a directory", "regular file"]),
    ("path-empty", file_capability, {"path": ""}, ["path"]),
    ("path-link-not-followed", file_capability, {"path": "{tmp}/vault-link", "follow": False},
     ["follow", "symbolic link"]),
    ("path-dangling-link", file_capability, {"path": "{tmp}/dangling"}, ["path"]),
    ("path-fifo", file_capability, {"path": "{tmp}/fifo"}, ["named pipe"]),
    ("rootid-negative", file_capability, {"rootid": -1}, ["rootid"]),
    ("rootid-huge", file_capability, {"rootid": 2**40}, ["rootid"]),
    ("state-unknown", file_capability, {"state": "installed"}, ["state", "present"]),
    # memlock_dropin: the limit
    ("limit-negative", memlock_dropin, {"limit": "-1"}, ["limit", "K, M, G"]),
    ("limit-empty", memlock_dropin, {"limit": ""}, ["limit"]),
    ("limit-unknown-suffix", memlock_dropin, {"limit": "12Q"}, ["limit", "K, M, G"]),
    ("limit-lowercase-suffix", memlock_dropin, {"limit": "256m"}, ["limit", "K, M, G"]),
    ("limit-soft-above-hard", memlock_dropin, {"limit": "8M:4M"}, ["limit", "soft"]),
    ("limit-three-parts", memlock_dropin, {"limit": "1M:2M:3M"}, ["limit"]),
    ("limit-too-large", memlock_dropin, {"limit": "16E"}, ["limit", "infinity"]),
    ("limit-huge-number", memlock_dropin, {"limit": "1" + "0" * 30}, ["limit"]),
    ("limit-words", memlock_dropin, {"limit": "lots"}, ["limit", "K, M, G"]),
    ("limit-missing", memlock_dropin, {"limit": None}, ["limit", "missing"]),
    # memlock_dropin: the drop-in name and the unit
    ("name-slash", memlock_dropin, {"name": "../../evil.conf"}, ["name", ".conf"]),
    ("name-dotdot", memlock_dropin, {"name": ".."}, ["name", ".conf"]),
    ("name-no-conf", memlock_dropin, {"name": "00-memlock"}, ["name", ".conf"]),
    ("name-hidden", memlock_dropin, {"name": ".memlock.conf"}, ["name", ".conf"]),
    ("name-empty", memlock_dropin, {"name": ""}, ["name", ".conf"]),
    ("name-absolute", memlock_dropin, {"name": "/etc/passwd.conf"}, ["name", ".conf"]),
    ("unit-slash", memlock_dropin, {"unit": "../lxd.service"}, ["unit"]),
    ("unit-socket", memlock_dropin, {"unit": "lxd.socket"}, ["unit", ".service"]),
    ("unit-empty", memlock_dropin, {"unit": ""}, ["unit"]),
    ("unit-space", memlock_dropin, {"unit": "my vault.service"}, ["unit"]),
    # memlock_probe and memlock_facts: read-only, but bad input still fails clearly
    ("probe-required-bad", memlock_probe, {"required": "lots"}, ["required", "K, M, G"]),
    ("probe-required-negative", memlock_probe, {"required": "-5M"}, ["required"]),
    ("probe-method", memlock_probe, {"method": "ssh"}, ["method", "proc"]),
    ("probe-cert-without-key", memlock_probe, {"client_cert": "{tmp}/vault"}, ["client_cert", "client_key"]),
    ("probe-endpoint-missing", memlock_probe, {"endpoint": "{tmp}/no.socket"}, ["endpoint", "no.socket"]),
    ("facts-required-bad", memlock_facts, {"required": "12Q"}, ["required", "K, M, G"]),
    ("facts-required-empty", memlock_facts, {"required": ""}, ["required"]),
]

DEFAULTS = {
    file_capability: lambda tmp: {"path": f"{tmp}/vault"},
    memlock_dropin: lambda tmp: {"limit": "256M"},
    memlock_probe: lambda tmp: {},
    memlock_facts: lambda tmp: {},
}


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A binary with cap_ipc_lock, links and a fifo beside it, and a host tree with lxd.service."""
    files = tmp_path / "files"
    files.mkdir()
    vault = make_vault(files)
    os.setxattr(str(vault), "security.capability", VAULT_CAPS)
    (files / "vault-link").symlink_to(vault)
    (files / "dangling").symlink_to(files / "gone")
    os.mkfifo(str(files / "fifo"))
    host = tmp_path / "host"
    unit = host / "lib/systemd/system/lxd.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/usr/bin/lxd\n")
    dropin = host / "etc/systemd/system/lxd.service.d/00-memlock.conf"
    dropin.parent.mkdir(parents=True)
    dropin.write_text("[Service]\nLimitMEMLOCK=64K\n")
    monkeypatch.setattr(_systemd, "SYSTEM_ROOT", str(host))
    return tmp_path, files


def fill(value, tmp):
    return value.replace("{tmp}", tmp) if isinstance(value, str) else value


@pytest.mark.parametrize("module, args, words", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_fails_clearly_and_writes_nothing(run_module, world, module, args, words):
    tmp_path, files = world
    params = DEFAULTS[module](files)
    params.update({key: fill(value, str(files)) for key, value in args.items()})
    params = {key: value for key, value in params.items() if value is not None}
    before = tree_snapshot(tmp_path)

    result = run_module(module, params)

    assert result.get("failed") is True, result
    for word in words:
        assert word in result["msg"], (word, result["msg"])
    assert "Traceback" not in result["msg"]
    assert tree_snapshot(tmp_path) == before


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40
