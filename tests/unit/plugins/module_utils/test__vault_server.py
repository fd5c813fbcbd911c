# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest
from _files import make_vault

from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_server import (
    OPENBAO,
    VAULT,
    ServerError,
    check_binary,
    decide_mlock,
    find_binary,
    looks_like_openbao,
    normalize_disable_mlock,
    resolve_binary,
    server_kind,
)


def install(root, path, name=None):
    directory = root / path.strip("/")
    directory.mkdir(parents=True, exist_ok=True)
    return make_vault(directory, name or "vault")


# --- finding the binary -----------------------------------------------------------------------


def test_vault_on_path_wins(tmp_path):
    install(tmp_path, "/opt/bin", "vault")
    install(tmp_path, "/usr/local/bin", "bao")
    assert find_binary("/opt/bin:/usr/sbin", root=str(tmp_path)) == "/opt/bin/vault"


def test_vault_in_usr_bin_wins_over_bao_on_path(tmp_path):
    install(tmp_path, "/opt/bin", "bao")
    install(tmp_path, "/usr/bin", "vault")
    assert find_binary("/opt/bin", root=str(tmp_path)) == "/usr/bin/vault"


def test_bao_is_found_when_there_is_no_vault(tmp_path):
    install(tmp_path, "/usr/bin", "bao")
    assert find_binary("", root=str(tmp_path)) == "/usr/bin/bao"


def test_usr_local_bin_comes_before_usr_bin(tmp_path):
    install(tmp_path, "/usr/bin", "bao")
    install(tmp_path, "/usr/local/bin", "bao")
    assert find_binary("", root=str(tmp_path)) == "/usr/local/bin/bao"


def test_not_executable_directories_and_relative_path_entries_are_skipped(tmp_path):
    install(tmp_path, "/usr/local/bin", "vault").chmod(0o644)
    (tmp_path / "usr/bin/vault").mkdir(parents=True)
    install(tmp_path, "/work", "bao")
    assert find_binary("work:.", root=str(tmp_path)) is None


def test_nothing_found(tmp_path):
    assert find_binary("/usr/sbin", root=str(tmp_path)) is None


def test_a_link_counts_and_resolves_inside_the_root(tmp_path):
    install(tmp_path, "/opt/openbao/bin", "bao")
    (tmp_path / "usr/local/bin").mkdir(parents=True)
    os.symlink("/opt/openbao/bin/bao", tmp_path / "usr/local/bin/vault-compat")
    os.symlink("vault-compat", tmp_path / "usr/local/bin/vault")
    assert find_binary("", root=str(tmp_path)) == "/usr/local/bin/vault"
    assert resolve_binary("/usr/local/bin/vault", str(tmp_path)) == "/opt/openbao/bin/bao"


# --- checking a named binary ------------------------------------------------------------------


@pytest.mark.parametrize(
    "setup, path, message",
    [
        (None, "usr/bin/bao", "binary: 'usr/bin/bao' is not an absolute path"),
        (None, "/usr/bin/bao", "binary: /usr/bin/bao does not exist"),
        ("dangling", "/usr/bin/bao", "binary: /usr/bin/bao is a symbolic link to nothing"),
        ("directory", "/usr/bin/bao", "binary: /usr/bin/bao is not a regular file"),
        ("not-executable", "/usr/bin/bao", "binary: /usr/bin/bao is not executable"),
    ],
)
def test_a_named_binary_that_cannot_be_the_server_fails(tmp_path, setup, path, message):
    (tmp_path / "usr/bin").mkdir(parents=True)
    if setup == "dangling":
        os.symlink("/opt/nowhere/bao", tmp_path / "usr/bin/bao")
    elif setup == "directory":
        (tmp_path / "usr/bin/bao").mkdir()
    elif setup == "not-executable":
        install(tmp_path, "/usr/bin", "bao").chmod(0o644)
    with pytest.raises(ServerError) as failure:
        check_binary(path, str(tmp_path))
    assert str(failure.value).startswith(message)


def test_a_good_binary_passes(tmp_path):
    install(tmp_path, "/usr/bin", "bao")
    check_binary("/usr/bin/bao", str(tmp_path))


# --- which server -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names, openbao",
    [
        (("/usr/bin/bao",), True),
        (("/usr/bin/openbao",), True),
        (("/usr/local/bin/bao-2.7.2",), True),
        (("/opt/openbao_2.1",), True),
        (("/usr/bin/vault", "/opt/openbao/bin/bao"), True),  # a link named vault to bao
        (("/usr/bin/vault",), False),
        (("/usr/bin/baobab",), False),
        (("/usr/bin/vault-bao",), False),
        (("",), False),
    ],
)
def test_openbao_is_told_by_name(names, openbao):
    assert looks_like_openbao(*names) is openbao


def test_server_option_overrides_the_name():
    assert server_kind("/usr/bin/vault", "/usr/bin/vault") == VAULT
    assert server_kind("/usr/bin/vault", "/opt/bao") == OPENBAO
    assert server_kind("/usr/bin/custom", "/usr/bin/custom", OPENBAO) == OPENBAO
    with pytest.raises(ServerError, match="server: 'hashicorp' is not one of auto, vault, openbao"):
        server_kind("/usr/bin/vault", "/usr/bin/vault", "hashicorp")


# --- the decision -----------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("auto", "auto"), (True, "true"), (False, "false"), ("True", "true"), ("no", "false"), ("1", "true"),
])
def test_disable_mlock_accepts_what_yaml_makes(value, expected):
    assert normalize_disable_mlock(value) == expected


def test_disable_mlock_refuses_anything_else():
    with pytest.raises(ServerError, match="disable_mlock: 'sometimes' is not one of auto, true, false"):
        normalize_disable_mlock("sometimes")


@pytest.mark.parametrize("storage", ["raft", "consul", None])
def test_openbao_never_locks_and_wants_no_line(storage):
    decision = decide_mlock(OPENBAO, storage)
    assert (decision.enabled, decision.disable_mlock) == (False, None)
    assert "OpenBao 2 and later never lock memory" in decision.reason
    assert decide_mlock(OPENBAO, storage, "true").disable_mlock is None


def test_openbao_with_disable_mlock_false_fails_clearly():
    with pytest.raises(ServerError, match="disable_mlock: false cannot be met: OpenBao 2 and later never lock"):
        decide_mlock(OPENBAO, "raft", "false")


def test_vault_with_raft_does_not_lock_and_says_why():
    decision = decide_mlock(VAULT, "raft", storage_source="/etc/vault.d/vault.hcl")
    assert (decision.enabled, decision.disable_mlock) == (False, True)
    assert decision.reason == ("integrated storage (raft) (/etc/vault.d/vault.hcl): mlock would lock the whole "
                               "memory-mapped database as well, so HashiCorp recommends disable_mlock = true")


def test_vault_with_other_storage_locks():
    decision = decide_mlock(VAULT, "consul")
    assert (decision.enabled, decision.disable_mlock) == (True, False)
    assert "Vault with consul storage locks its memory" in decision.reason
    unknown = decide_mlock(VAULT, None)
    assert unknown.enabled and "storage is unknown" in unknown.reason


@pytest.mark.parametrize("setting, enabled", [("true", False), ("false", True)])
def test_an_explicit_setting_wins_for_vault(setting, enabled):
    decision = decide_mlock(VAULT, "raft", setting)
    assert (decision.enabled, decision.disable_mlock) == (enabled, not enabled)
    assert decision.reason == f"disable_mlock is {setting} as asked"
