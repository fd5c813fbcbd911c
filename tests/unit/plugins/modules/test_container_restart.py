# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""container_restart as Ansible runs it, against a fake LXD daemon on a real unix socket."""

from __future__ import annotations

import pytest
from _fake_lxd import FakeLxd, Guest

from ansible_collections.vault_mlock.lxd.plugins.modules import container_restart


@pytest.fixture
def lxd(tmp_path):
    fake = FakeLxd({"vault1": Guest(returned=1, stdout="degraded\n"), "down": Guest(status="Stopped")})
    path = fake.serve_unix(str(tmp_path / "unix.socket"))
    yield fake, path
    fake.stop()


def test_restart_and_wait_for_the_boot(run_module, lxd):
    fake, path = lxd
    result = run_module(container_restart, dict(endpoint=path, name="vault1", restart_timeout=10))
    assert result.get("failed") is not True, result
    assert result["changed"] is True and result["name"] == "vault1" and result["engine"] == "lxd"
    assert fake.guests["vault1"].restarts == 1
    assert ("POST", "/1.0/instances/vault1/exec", {"project": "default"}) in fake.requests


def test_check_mode_restarts_nothing(run_module, lxd):
    fake, path = lxd
    result = run_module(container_restart, dict(endpoint=path, name="vault1", _ansible_check_mode=True))
    assert result["changed"] is True and fake.guests["vault1"].restarts == 0


@pytest.mark.parametrize("args, words", [
    (dict(name="down"), ["instance 'down'", "is Stopped"]),
    (dict(name="ghost"), ["instance 'ghost'", "does not exist"]),
    (dict(name=" "), ["name: ' ' names no container"]),
    (dict(name="vault1", restart_timeout=0), ["restart_timeout: 0 is not a number of seconds above 0"]),
])
def test_failures_name_what_is_wrong(run_module, lxd, args, words):
    fake, path = lxd
    result = run_module(container_restart, dict(args, endpoint=path))
    assert result["failed"] is True and all(word in result["msg"] for word in words), result["msg"]
    assert all(guest.restarts == 0 for guest in fake.guests.values())
