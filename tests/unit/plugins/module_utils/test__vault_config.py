# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import stat

import pytest
from _files import put

from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_config import (
    HCL,
    JSON,
    ConfigError,
    FilePlan,
    apply_plan,
    config_files,
    file_format,
    go_bool,
    hcl_statements,
    plan_configs,
    read_config,
    read_configs,
    render_hcl,
    render_json,
    storage_of,
    summary,
    tokenize_hcl,
)

OPENBAO_HCL = """\
# OpenBao on integrated storage
storage "raft" {
  path    = "/var/lib/openbao"
  node_id = "bao1"
  # disable_mlock = false inside a comment is not a setting
}

listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = true
}

api_addr      = "http://127.0.0.1:8200"
cluster_addr  = "http://127.0.0.1:8201"
disable_mlock = false
ui            = true
"""

WITHOUT_LINE = OPENBAO_HCL.replace("disable_mlock = false\n", "")


def config(text, path="/etc/openbao/openbao.hcl"):
    return read_config(path, text)


# --- reading ---------------------------------------------------------------------------------


def test_reads_the_top_level_setting_and_the_storage():
    parsed = config(OPENBAO_HCL)
    assert parsed.format == HCL
    assert [(setting.line, setting.text, setting.value) for setting in parsed.settings] == [(15, "false", False)]
    assert parsed.storage == "raft"


@pytest.mark.parametrize(
    "line, value",
    [
        ("disable_mlock = true", True),
        ("disable_mlock = false", False),
        ('disable_mlock = "true"', True),
        ('disable_mlock = "false"', False),
        ('disable_mlock = "1"', True),
        ('disable_mlock = "F"', False),
        ('disable_mlock = ""', False),
        ("disable_mlock = 1", True),
        ("disable_mlock = 0", False),
        ('disable_mlock = "no"', None),  # the server refuses it
        ("disable_mlock = yes", None),
        ('"disable_mlock" = false', False),
        ("DISABLE_MLOCK = true", True),
        ("disable_mlock=false # old habit", False),
        ("  disable_mlock = true // indented", True),
    ],
)
def test_a_value_means_what_the_server_reads(line, value):
    parsed = config(WITHOUT_LINE + line + "\n")
    assert [setting.value for setting in parsed.settings] == [value]


@pytest.mark.parametrize(
    "text",
    [
        'listener "tcp" {\n  disable_mlock = false\n}\n',  # inside a block
        'seal "transit" {\n  key = <<EOF\ndisable_mlock = false\nEOF\n}\n',  # inside a heredoc
        '/* disable_mlock = false */\nui = true\n',  # in a comment
        '# disable_mlock = false\n// disable_mlock = true\n',
        'api_addr = "http://disable_mlock = false"\n',  # in a string
        'x = "${lookup(m, "k")} disable_mlock = true"\n',  # quotes inside an interpolation
        'plugins = [\n  { disable_mlock = true },\n]\n',
    ],
)
def test_only_top_level_settings_count(text):
    assert config(text).settings == []


def test_storage_in_its_old_spelling_and_without_quotes():
    assert config('backend "consul" {\n  address = "x"\n}\n').storage == "consul"
    assert config("storage raft {\n}\n").storage == "raft"
    assert config('ui = true\n').storage is None


@pytest.mark.parametrize(
    "text, message",
    [
        ('ui = "open\n', "a string is not terminated"),
        ("storage \"raft\" {\n  path = 1\n", "is not closed"),
        ("/* no end\n", "/* comment is not closed"),
        ("ui = ;\n", "unexpected character"),
        ("disable_mlock = [true]\n", "not a single word"),
        ("disable_mlock = <<X\ntrue\nX\n", "not a single word"),
        ("ui\n", "has no value"),
        ("= true\n", "expected a key"),
    ],
)
def test_text_that_is_not_hcl_fails_naming_file_and_line(text, message):
    with pytest.raises(ConfigError, match=message) as failure:
        config(WITHOUT_LINE + text)
    assert str(failure.value).startswith("/etc/openbao/openbao.hcl:")
    assert "left as it is" in str(failure.value)


def test_heredoc_and_interpolation_are_skipped_whole():
    text = 'policy = <<-POLICY\n  path "x" { capabilities = ["read"] }\n  POLICY\ndisable_mlock = true\n'
    assert [setting.value for setting in config(text).settings] == [True]
    tokens = tokenize_hcl('a = "${var.x} and \\"quoted\\""\n')
    assert [token.kind for token in tokens] == ["ident", "=", "string"]


def test_statements_know_blocks_from_assignments():
    statements = hcl_statements(OPENBAO_HCL)
    assert [(s.key, s.labels) for s in statements] == [
        ("storage", ("raft",)), ("listener", ("tcp",)), ("api_addr", ()), ("cluster_addr", ()),
        ("disable_mlock", ()), ("ui", ()),
    ]


@pytest.mark.parametrize("text, fmt", [('{"ui": true}', JSON), ('  \n{\n}', JSON), ("ui = true", HCL), ("", HCL)])
def test_json_is_told_by_its_first_character(text, fmt):
    assert file_format(text) == fmt


def test_json_settings_and_storage():
    text = '{\n  "storage": {"raft": {"path": "/d"}},\n  "Disable_Mlock": "false"\n}\n'
    parsed = config(text, "/etc/vault.d/vault.json")
    assert parsed.format == JSON
    assert [(s.line, s.text, s.value) for s in parsed.settings] == [(3, '"false"', False)]
    assert parsed.storage == "raft"
    assert config('{"storage": [{"consul": {}}]}', "/x.json").storage == "consul"


def test_broken_json_fails():
    with pytest.raises(ConfigError, match="not valid JSON"):
        config('{"ui": true,}', "/x.json")


@pytest.mark.parametrize("kind, text, value", [
    ("bool", "true", True), ("bool", "false", False), ("number", "2", True), ("number", "0.0", False),
    ("string", "True", True), ("string", "FALSE", False), ("string", "nope", None), ("ident", "yes", None),
])
def test_go_bool(kind, text, value):
    assert go_bool(kind, text) is value


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


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    put(root, "/etc/openbao/openbao.hcl", OPENBAO_HCL)
    put(root, "/etc/vault.d/10-main.hcl", 'storage "consul" {\n}\n')
    put(root, "/etc/vault.d/20-raft.json", '{"storage": {"raft": {}}}\n')
    put(root, "/etc/vault.d/30-mlock.hcl~", "disable_mlock = false\n")  # an editor's backup
    put(root, "/etc/vault.d/.#40-mlock.hcl", "disable_mlock = false\n")
    put(root, "/etc/vault.d/notes.txt", "disable_mlock = false\n")
    os.makedirs(root / "etc/vault.d/sub.hcl")
    return root


def test_a_directory_means_its_hcl_and_json_files_in_name_order(tree):
    files = config_files(["/etc/vault.d", "/etc/openbao/openbao.hcl"], str(tree))
    assert files == ["/etc/vault.d/10-main.hcl", "/etc/vault.d/20-raft.json", "/etc/openbao/openbao.hcl"]


def test_the_last_storage_stanza_wins(tree):
    configs = read_configs(config_files(["/etc/vault.d"], str(tree)), str(tree))
    assert storage_of(configs) == ("raft", "/etc/vault.d/20-raft.json")


@pytest.mark.parametrize(
    "paths, message",
    [
        (["etc/openbao/openbao.hcl"], "config: 'etc/openbao/openbao.hcl' is not an absolute path"),
        (["/etc/openbao/missing.hcl"], "config: /etc/openbao/missing.hcl does not exist"),
    ],
)
def test_bad_paths_fail_naming_the_option(tree, paths, message):
    with pytest.raises(ConfigError, match=message):
        config_files(paths, str(tree))


def test_a_dangling_link_fails(tree):
    os.symlink("nowhere.hcl", tree / "etc/openbao/dangling.hcl")
    with pytest.raises(ConfigError, match="symbolic link to nothing"):
        config_files(["/etc/openbao/dangling.hcl"], str(tree))


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


def test_summary_tells_the_value_the_server_ends_with(tree):
    put(tree, "/etc/a.hcl", "disable_mlock = true\n")
    put(tree, "/etc/b.hcl", "disable_mlock = false\n")
    configs = read_configs(["/etc/a.hcl", "/etc/b.hcl"], str(tree))
    assert summary(configs)["value"] is False
    assert [s["line"] for s in summary(configs)["settings"]] == [1, 1]


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


def test_a_file_that_is_not_utf8_fails(tree):
    (tree / "etc/openbao/openbao.hcl").write_bytes(b"ui = \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_configs(["/etc/openbao/openbao.hcl"], str(tree))
