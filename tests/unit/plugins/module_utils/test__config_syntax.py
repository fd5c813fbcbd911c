# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from _vault_files import OPENBAO_HCL, WITHOUT_LINE

from ansible_collections.vault_mlock.lxd.plugins.module_utils._config_syntax import (
    HCL,
    JSON,
    ConfigError,
    file_format,
    go_bool,
    hcl_statements,
    json_members,
    tokenize_hcl,
)


@pytest.mark.parametrize(
    "text, message",
    [
        ('ui = "open\n', "a string is not terminated"),
        ("storage \"raft\" {\n  path = 1\n", "is not closed"),
        ("/* no end\n", "/* comment is not closed"),
        ("ui = ;\n", "unexpected character"),
        ("ui\n", "has no value"),
        ("= true\n", "expected a key"),
    ],
)
def test_text_that_is_not_hcl_fails_naming_file_and_line(text, message):
    with pytest.raises(ConfigError, match=message) as failure:
        hcl_statements(WITHOUT_LINE + text, "/etc/openbao/openbao.hcl")
    assert str(failure.value).startswith("/etc/openbao/openbao.hcl:")
    assert "left as it is" in str(failure.value)


def test_interpolation_and_escaped_quotes_stay_in_one_string():
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


def test_json_members_know_their_offsets():
    text = '{\n  "ui": true,\n  "disable_mlock": false\n}\n'
    open_at, close_at, members = json_members(text, "/x.json")
    assert (text[open_at], text[close_at]) == ("{", "}")
    assert [(m.key, text[m.value_start:m.value_end], m.value) for m in members] == [
        ("ui", "true", True), ("disable_mlock", "false", False)]


def test_broken_json_fails():
    with pytest.raises(ConfigError, match="not valid JSON"):
        json_members('{"ui": true,}', "/x.json")


@pytest.mark.parametrize("kind, text, value", [
    ("bool", "true", True), ("bool", "false", False), ("number", "2", True), ("number", "0.0", False),
    ("string", "True", True), ("string", "FALSE", False), ("string", "nope", None), ("ident", "yes", None),
])
def test_go_bool(kind, text, value):
    assert go_bool(kind, text) is value
