# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import stat

import pytest
from _files import put
from _vault_files import OPENBAO_HCL, WITHOUT_LINE, vault_tree

from ansible_collections.vault_mlock.lxd.plugins.module_utils._config_syntax import ConfigError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._mlock_edit import FilePlan, apply_plan, plan_configs, render_hcl, render_json
from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_config import config_files, read_config, read_configs


def config(text, path="/etc/openbao/openbao.hcl"):
    return read_config(path, text)


@pytest.fixture
def tree(tmp_path):
    return vault_tree(tmp_path / "root")


# --- rewriting HCL ----------------------------------------------------------------------------


def test_openbao_loses_the_line_and_nothing_else():
    parsed = config(OPENBAO_HCL)
    assert render_hcl(parsed, None, add=False) == WITHOUT_LINE


def test_every_top_level_setting_goes_and_the_block_ones_stay():
    text = 'disable_mlock = true\nlistener "tcp" {\n  disable_mlock = false\n}\nDISABLE_MLOCK = "false" # x\n'
    assert render_hcl(config(text), None, add=False) == 'listener "tcp" {\n  disable_mlock = false\n}\n'


def test_a_last_line_without_newline_goes_with_its_newline():
    assert render_hcl(config("ui = true\ndisable_mlock = false"), None, add=False) == "ui = true"
    assert render_hcl(config("disable_mlock = false"), None, add=False) == ""


def test_vault_value_is_set_keeping_indentation_and_comment():
    text = "ui = true\n   disable_mlock = false   # was needed once\n"
    assert render_hcl(config(text), True, add=False) == "ui = true\n   disable_mlock = true   # was needed once\n"


def test_a_setting_that_already_means_the_wanted_value_keeps_its_spelling():
    text = 'disable_mlock = "1"\n'
    assert render_hcl(config(text), True, add=False) == text
    assert render_hcl(config("disable_mlock = 0\n"), False, add=False) == "disable_mlock = 0\n"


def test_a_refused_value_is_replaced():
    assert render_hcl(config('disable_mlock = "maybe"\n'), True, add=False) == "disable_mlock = true\n"


def test_the_line_is_added_at_the_end():
    assert render_hcl(config("ui = true"), True, add=True) == "ui = true\ndisable_mlock = true\n"
    assert render_hcl(config(""), True, add=True) == "disable_mlock = true\n"


@pytest.mark.parametrize("text", [
    "ui = true disable_mlock = false\n",
    "disable_mlock = false ui = true\n",
])
def test_a_setting_sharing_its_line_fails(text):
    with pytest.raises(ConfigError, match="shares its line"):
        render_hcl(config(text), None, add=False)


# --- rewriting JSON ---------------------------------------------------------------------------

JSON_TEXT = '{\n  "storage": {"raft": {"path": "/d"}},\n  "disable_mlock": false,\n  "ui": true\n}\n'


@pytest.mark.parametrize(
    "text, expected",
    [
        (JSON_TEXT, '{\n  "storage": {"raft": {"path": "/d"}},\n  "ui": true\n}\n'),
        ('{"disable_mlock": false, "ui": true}', '{"ui": true}'),
        ('{"ui": true, "disable_mlock": false}', '{"ui": true}'),
        ('{\n  "disable_mlock": false\n}\n', "{\n}\n"),
        ('{"disable_mlock": 0, "ui": 1, "DISABLE_MLOCK": "f"}', '{"ui": 1}'),
        ('{"a": "disable_mlock", "b": {"disable_mlock": true}}', '{"a": "disable_mlock", "b": {"disable_mlock": true}}'),
    ],
)
def test_json_member_is_removed(text, expected):
    assert render_json(config(text, "/x.json"), None, add=False) == expected


def test_json_value_is_set_and_added():
    assert render_json(config(JSON_TEXT, "/x.json"), True, add=False) == JSON_TEXT.replace("false", "true")
    added = render_json(config('{\n  "ui": true\n}\n', "/x.json"), True, add=True)
    assert added == '{\n  "disable_mlock": true,\n  "ui": true\n}\n'
    assert json.loads(added) == {"disable_mlock": True, "ui": True}
    assert render_json(config("{}", "/x.json"), True, add=True) == '{"disable_mlock": true}'


# --- several files ----------------------------------------------------------------------------


def test_the_line_is_added_to_the_first_file_only_when_no_file_sets_it(tree):
    configs = read_configs(config_files(["/etc/vault.d"], str(tree)), str(tree))
    plans = plan_configs(configs, True, add_when_missing=True)
    assert [plan.changed for plan in plans] == [True, False]
    assert plans[0].after.endswith("disable_mlock = true\n")
    put(tree, "/etc/vault.d/20-raft.json", '{"storage": {"raft": {}}, "disable_mlock": true}\n')
    configs = read_configs(config_files(["/etc/vault.d"], str(tree)), str(tree))
    assert not any(plan.changed for plan in plan_configs(configs, True, add_when_missing=True))


def test_line_changes_name_file_line_before_and_after():
    parsed = config(OPENBAO_HCL)
    removed = FilePlan(parsed, render_hcl(parsed, None, add=False)).line_changes()
    assert [(c.path, c.line, c.before, c.after) for c in removed] == [
        ("/etc/openbao/openbao.hcl", 15, "disable_mlock = false", None)]
    set_true = FilePlan(parsed, render_hcl(parsed, True, add=False)).line_changes()
    assert [(c.line, c.before, c.after) for c in set_true] == [(15, "disable_mlock = false", "disable_mlock = true")]
    added = config(WITHOUT_LINE)
    appended = FilePlan(added, render_hcl(added, True, add=True)).line_changes()
    assert [(c.line, c.before, c.after) for c in appended] == [(None, None, "disable_mlock = true")]


def test_apply_keeps_mode_and_owner_and_edits_through_a_link(tree):
    real = tree / "etc/openbao/openbao.hcl"
    os.chmod(real, 0o640)
    os.chown(real, 1234, 2345)
    os.symlink("openbao.hcl", tree / "etc/openbao/current.hcl")
    configs = read_configs(["/etc/openbao/current.hcl"], str(tree))
    assert configs[0].real_path == "/etc/openbao/openbao.hcl"
    apply_plan(plan_configs(configs, None, add_when_missing=False), str(tree))
    assert os.path.islink(tree / "etc/openbao/current.hcl")  # the link stays a link
    assert real.read_text() == WITHOUT_LINE
    info = os.stat(real)
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 1234, 2345)


def test_apply_writes_nothing_when_nothing_changes(tree):
    real = tree / "etc/openbao/openbao.hcl"
    real.write_text(WITHOUT_LINE)
    inode = os.stat(real).st_ino
    configs = read_configs(["/etc/openbao/openbao.hcl"], str(tree))
    apply_plan(plan_configs(configs, None, add_when_missing=False), str(tree))
    assert os.stat(real).st_ino == inode


def test_apply_keeps_a_backup_of_each_changed_file_when_asked(tree):
    real = tree / "etc/openbao/openbao.hcl"
    before = real.read_text()
    os.chmod(real, 0o640)
    configs = read_configs(["/etc/openbao/openbao.hcl"], str(tree))
    assert apply_plan(plan_configs(configs, None, add_when_missing=False), str(tree), ".1~") == [
        {"path": "/etc/openbao/openbao.hcl", "backup": "/etc/openbao/openbao.hcl.1~"}]
    assert real.read_text() == WITHOUT_LINE
    backup = tree / "etc/openbao/openbao.hcl.1~"
    assert backup.read_text() == before != WITHOUT_LINE
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o640
    # Nothing to change: no backup either.
    configs = read_configs(["/etc/openbao/openbao.hcl"], str(tree))
    assert apply_plan(plan_configs(configs, None, add_when_missing=False), str(tree), ".2~") == []
    assert not (tree / "etc/openbao/openbao.hcl.2~").exists()
