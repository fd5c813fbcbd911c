# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Planning container settings: checked values, changes by value, the undo; an engine stand-in that records."""

from __future__ import annotations

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._container_settings import (
    SettingsError,
    Wanted,
    apply_settings,
    meaning,
    plan_changes,
    plan_undo,
    wanted_settings,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._api import ApiEngine


class RecordingEngine:
    """The engine interface over a dict, with LXD's stored forms (ApiEngine.render)."""

    name = "lxd"
    kinds = ("instance", "profile")
    settings_keys = ("memlock", "swap")
    render = staticmethod(ApiEngine.render)
    setting = staticmethod(ApiEngine.setting)

    def __init__(self, stored=None):
        self.stored = dict(stored or {})
        self.writes = []

    def read(self, kind, name, key):
        return self.stored.get((kind, name, key))

    def write(self, kind, name, key, value):
        self.writes.append((kind, name, key, value))
        if value is None:
            self.stored.pop((kind, name, key), None)
        else:
            self.stored[(kind, name, key)] = value


def test_values_are_rendered_in_the_engines_form_and_named_by_option():
    wanted = wanted_settings({"instance_memlock": {"vault1": "8M", "vault2": None}, "profile_memlock": {"p": "infinity"},
                              "instance_swap": {"vault1": False}, "profile_swap": {"p": "yes"}},
                             ApiEngine.render)
    assert wanted == [
        Wanted("instance", "vault1", "memlock", "instance_memlock[vault1]", "8388608"),
        Wanted("instance", "vault2", "memlock", "instance_memlock[vault2]", None),
        Wanted("profile", "p", "memlock", "profile_memlock[p]", "unlimited"),
        Wanted("instance", "vault1", "swap", "instance_swap[vault1]", "false"),
        Wanted("profile", "p", "swap", "profile_swap[p]", "true"),
    ]


def test_every_bad_value_is_named_with_the_accepted_form_at_once():
    with pytest.raises(SettingsError) as caught:
        wanted_settings({"instance_memlock": {"vault1": "lots", "ok": "8M"}, "profile_memlock": {"p": "8M:4M"},
                         "instance_swap": {"vault1": "maybe"}, "profile_swap": {"": True}}, ApiEngine.render)
    text = str(caught.value)
    assert "instance_memlock[vault1]: 'lots'" in text and "K, M, G, T, P or E" in text
    assert "profile_memlock[p]" in text and "soft" in text
    assert "instance_swap[vault1]: 'maybe' is not a boolean; expected true" in text
    assert "profile_swap[]: the empty string names no profile" in text
    assert "[ok]" not in text


@pytest.mark.parametrize("key, stored, wanted, same", [
    ("memlock", "8M", "8388608", True),
    ("memlock", "8388608", "8388608", True),
    ("memlock", "unlimited", "unlimited", True),
    ("memlock", "4194304", "8388608", False),
    ("memlock", "8M:8M", "8388608", True),
    ("memlock", "garbage", "8388608", False),
    ("memlock", None, "8388608", False),
    ("swap", "false", "false", True),
    ("swap", "0", "false", True),
    ("swap", "true", "false", False),
    ("swap", None, None, True),
])
def test_values_compare_by_meaning(key, stored, wanted, same):
    assert (meaning(key, stored) == meaning(key, wanted)) is same


def test_only_what_means_something_else_changes():
    wanted = [Wanted("instance", "a", "memlock", "instance_memlock[a]", "8388608"),
              Wanted("instance", "b", "memlock", "instance_memlock[b]", "8388608"),
              Wanted("profile", "p", "swap", "profile_swap[p]", None)]
    stored = {("instance", "a", "memlock"): "8M", ("instance", "b", "memlock"): "4M", ("profile", "p", "swap"): "true"}
    changes = plan_changes(wanted, stored, ApiEngine.setting)
    assert [(c.name, c.setting, c.before, c.after) for c in changes] == [
        ("b", "limits.kernel.memlock", "4M", "8388608"), ("p", "limits.memory.swap", "true", None)]


def test_the_undo_unsets_what_still_holds_the_value_and_keeps_the_rest():
    wanted = [Wanted("instance", "a", "memlock", "instance_memlock[a]", "8388608"),
              Wanted("instance", "b", "memlock", "instance_memlock[b]", "8388608"),
              Wanted("instance", "c", "memlock", "instance_memlock[c]", "8388608"),
              Wanted("instance", "d", "memlock", "instance_memlock[d]", None)]
    stored = {("instance", "a", "memlock"): "8M", ("instance", "b", "memlock"): "2M",
              ("instance", "d", "memlock"): "1M"}
    changes, kept = plan_undo(wanted, stored, ApiEngine.setting)
    assert [(c.name, c.before, c.after) for c in changes] == [("a", "8M", None)]
    assert [(c.name, c.before) for c in kept] == [("b", "2M")]


def test_apply_writes_the_changes_then_nothing_and_check_mode_writes_nothing():
    engine = RecordingEngine({("profile", "p", "memlock"): "8M"})
    params = {"instance_memlock": {"v": "2M"}, "profile_memlock": {"p": "8388608"}, "instance_swap": {"v": False}}
    predicted = apply_settings(engine, params, check_mode=True)
    assert predicted["changed"] and engine.writes == []
    done = apply_settings(engine, params, check_mode=False)
    assert done["changes"] == predicted["changes"] and done["engine"] == "lxd"
    assert engine.writes == [("instance", "v", "memlock", "2097152"), ("instance", "v", "swap", "false")]
    assert done["diff"]["after"] == "instance v limits.kernel.memlock=2097152\ninstance v limits.memory.swap=false\n"
    again = apply_settings(engine, params, check_mode=False)
    assert not again["changed"] and len(engine.writes) == 2


def test_apply_undo_then_a_second_undo_changes_nothing():
    engine = RecordingEngine({("profile", "p", "memlock"): "8M"})
    params = {"instance_memlock": {"v": "2M"}, "profile_swap": {"p": True}}
    apply_settings(engine, params, check_mode=False)
    undo = dict(params, state="absent")
    assert apply_settings(engine, undo, check_mode=True)["changed"] and len(engine.stored) == 3
    first = apply_settings(engine, undo, check_mode=False)
    assert first["changed"] and engine.stored == {("profile", "p", "memlock"): "8M"}
    assert not apply_settings(engine, undo, check_mode=False)["changed"]


def test_bad_input_writes_nothing_and_reads_nothing():
    engine = RecordingEngine()
    engine.read = None  # reading would fail the test: validation comes first
    with pytest.raises(SettingsError):
        apply_settings(engine, {"instance_memlock": {"v": "2M"}, "profile_memlock": {"p": "-1"}}, check_mode=False)
    assert engine.writes == []


def test_a_setting_the_engine_lacks_is_refused_naming_the_option():
    engine = RecordingEngine()
    engine.kinds, engine.settings_keys = ("instance",), ("memlock",)
    with pytest.raises(SettingsError, match=r"profile_memlock, profile_swap: engine lxd has no such setting"):
        apply_settings(engine, {"profile_memlock": {"p": "2M"}, "profile_swap": {"p": True}}, check_mode=False)
