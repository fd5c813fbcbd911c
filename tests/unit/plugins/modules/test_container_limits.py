# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""container_limits as Ansible runs it, against a fake LXD daemon on a real unix socket."""

from __future__ import annotations

import pytest
from _fake_lxd import FakeLxd, Guest

from ansible_collections.vault_mlock.lxd.plugins.modules import container_limits


@pytest.fixture
def lxd(tmp_path):
    fake = FakeLxd({"vault1": Guest(config={"limits.kernel.memlock": "8M"}), "vault2": Guest()})
    fake.profiles["vault"] = {}
    path = fake.serve_unix(str(tmp_path / "unix.socket"))
    yield fake, path
    fake.stop()


def test_set_by_value_check_and_diff_mode_then_unchanged(run_module, lxd):
    fake, path = lxd
    args = dict(endpoint=path, instance_memlock={"vault1": "8388608", "vault2": "2M"}, profile_swap={"vault": False},
                profile_memlock={"vault": "infinity"})
    predicted = run_module(container_limits, dict(args, _ansible_check_mode=True, _ansible_diff=True))
    assert predicted["changed"] is True and fake.guests["vault2"].config == {} and fake.profiles["vault"] == {}
    assert predicted["diff"]["after"] == ("instance vault2 limits.kernel.memlock=2097152\n"
                                          "profile vault limits.kernel.memlock=unlimited\n"
                                          "profile vault limits.memory.swap=false\n")
    done = run_module(container_limits, args)
    assert done["changed"] is True and done["engine"] == "lxd" and "diff" not in done
    assert done["changes"] == predicted["changes"]
    # '8388608' where '8M' is stored is the same value: left as it is.
    assert fake.guests["vault1"].config == {"limits.kernel.memlock": "8M"}
    assert fake.guests["vault2"].config == {"limits.kernel.memlock": "2097152"}
    assert fake.profiles["vault"] == {"limits.kernel.memlock": "unlimited", "limits.memory.swap": "false"}
    again = run_module(container_limits, args)
    assert again["changed"] is False and again["changes"] == []


def test_null_unsets_and_absent_undoes_only_what_still_holds_the_value(run_module, lxd):
    fake, path = lxd
    run_module(container_limits, dict(endpoint=path, instance_swap={"vault1": False, "vault2": True}))
    fake.guests["vault2"].config["limits.memory.swap"] = "false"  # changed by someone else since
    undo = dict(endpoint=path, state="absent", instance_swap={"vault1": False, "vault2": True})
    result = run_module(container_limits, undo)
    assert result["changed"] is True and [change["name"] for change in result["changes"]] == ["vault1"]
    assert [kept["name"] for kept in result["kept"]] == ["vault2"]
    assert fake.guests["vault1"].config == {"limits.kernel.memlock": "8M"}
    assert run_module(container_limits, undo)["changed"] is False
    unset = run_module(container_limits, dict(endpoint=path, instance_memlock={"vault1": None}))
    assert unset["changed"] is True and fake.guests["vault1"].config == {}


def test_bad_values_fail_naming_each_option_and_nothing_is_written(run_module, lxd):
    fake, path = lxd
    result = run_module(container_limits, dict(endpoint=path, instance_memlock={"vault2": "2M", "vault1": "lots"},
                                               profile_swap={"vault": "perhaps"}))
    assert result["failed"] is True
    assert "instance_memlock[vault1]: 'lots'" in result["msg"] and "K, M, G, T, P or E" in result["msg"]
    assert "profile_swap[vault]: 'perhaps' is not a boolean; expected true" in result["msg"]
    assert fake.guests["vault2"].config == {} and fake.profiles["vault"] == {}
    assert not [request for request in fake.requests if request[0] == "PATCH"]


def test_a_missing_instance_fails_naming_it_before_any_write(run_module, lxd):
    fake, path = lxd
    result = run_module(container_limits, dict(endpoint=path, project="prod",
                                               instance_memlock={"vault2": "2M", "ghost": "2M"}))
    assert result["failed"] is True and "instance 'ghost' of project 'prod'" in result["msg"]
    assert fake.guests["vault2"].config == {}


def test_no_daemon_fails_saying_what_was_tried(run_module, tmp_path):
    result = run_module(container_limits, dict(engine="lxd", endpoint=str(tmp_path / "none.socket"),
                                               instance_memlock={"v": "2M"}))
    assert result["failed"] is True and "engine lxd: no LXD daemon answered" in result["msg"]
