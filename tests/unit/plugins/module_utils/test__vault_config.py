# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest
from _files import put
from _vault_files import OPENBAO_HCL, WITHOUT_LINE, vault_tree

from ansible_collections.vault_mlock.lxd.plugins.module_utils._config_syntax import HCL, JSON, ConfigError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_config import (
    config_files,
    read_config,
    read_configs,
    storage_of,
    summary,
)


def config(text, path="/etc/openbao/openbao.hcl"):
    return read_config(path, text)


@pytest.fixture
def tree(tmp_path):
    return vault_tree(tmp_path / "root")


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


@pytest.mark.parametrize("text", ["disable_mlock = [true]\n", "disable_mlock = <<X\ntrue\nX\n"])
def test_a_value_that_is_not_one_word_fails_naming_file_and_line(text):
    with pytest.raises(ConfigError, match="not a single word") as failure:
        config(WITHOUT_LINE + text)
    assert str(failure.value).startswith("/etc/openbao/openbao.hcl:")
    assert "left as it is" in str(failure.value)


def test_a_heredoc_is_skipped_whole():
    text = 'policy = <<-POLICY\n  path "x" { capabilities = ["read"] }\n  POLICY\ndisable_mlock = true\n'
    assert [setting.value for setting in config(text).settings] == [True]


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


# --- several files ----------------------------------------------------------------------------


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


def test_summary_tells_the_value_the_server_ends_with(tree):
    put(tree, "/etc/a.hcl", "disable_mlock = true\n")
    put(tree, "/etc/b.hcl", "disable_mlock = false\n")
    configs = read_configs(["/etc/a.hcl", "/etc/b.hcl"], str(tree))
    assert summary(configs)["value"] is False
    assert [s["line"] for s in summary(configs)["settings"]] == [1, 1]


def test_a_file_that_is_not_utf8_fails(tree):
    (tree / "etc/openbao/openbao.hcl").write_bytes(b"ui = \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_configs(["/etc/openbao/openbao.hcl"], str(tree))
