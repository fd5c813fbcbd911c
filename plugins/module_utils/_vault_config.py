# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The disable_mlock setting in a Vault or OpenBao server configuration, as the server reads it.

A directory given to -config means every ``*.hcl`` and ``*.json`` file in it (no subdirectories,
no editor backups), in name order; several -config arguments are merged in their order, and a
later setting wins. Only top-level ``disable_mlock`` settings count; the server reads the key
without regard to case, quoted or not. _mlock_edit keeps them in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._config_syntax import (
    JSON,
    ConfigError,
    Member,
    Statement,
    file_format,
    hcl_error,
    hcl_statements,
    hcl_value_bool,
    json_members,
    json_value_bool,
    line_of,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._safe_root import resolve_in_root

KEY = "disable_mlock"
STORAGE_KEYS = ("storage", "backend")  # 'backend' is the old spelling of 'storage'
DIRECTORY_SUFFIXES = (".hcl", ".json")


# --- which files the server reads -------------------------------------------------------------


def is_editor_backup(name: str) -> bool:
    # The server skips these in a configuration directory (vim and emacs files).
    return name.endswith("~") or name.startswith(".#") or (name.startswith("#") and name.endswith("#"))


def config_files(paths: Sequence[str], root: str = "/", option: str = "config") -> List[str]:
    """The files the server reads for ``paths`` (files or directories), in the order it merges them."""
    files: List[str] = []
    for path in paths:
        if not path.startswith("/"):
            raise ConfigError(f"{option}: {path!r} is not an absolute path; expected a configuration file or "
                              "directory such as /etc/openbao/openbao.hcl")
        full = os.path.join(root, path.lstrip("/"))
        if os.path.isdir(full):
            try:
                names = sorted(os.listdir(full))
            except OSError as exc:
                raise ConfigError(f"{option}: cannot list {path}: {exc.strerror or exc}") from None
            for name in names:
                entry = os.path.join(full, name)
                if (name.endswith(DIRECTORY_SUFFIXES) and not is_editor_backup(name)
                        and not os.path.isdir(entry)):
                    files.append(os.path.join(path, name))
        elif os.path.lexists(full):
            if not os.path.exists(full):
                raise ConfigError(f"{option}: {path} is a symbolic link to nothing")
            if not os.path.isfile(full):
                raise ConfigError(f"{option}: {path} is neither a regular file nor a directory")
            files.append(path)
        else:
            raise ConfigError(f"{option}: {path} does not exist")
    unique: List[str] = []
    for path in files:
        if path not in unique:
            unique.append(path)
    return unique


@dataclass(frozen=True)
class Setting:
    """One top-level disable_mlock of a file."""

    line: int
    text: str  # the value as written
    value: Optional[bool]  # as the server reads it; None when it refuses the value


@dataclass
class ConfigFile:
    path: str  # as the server names it (in a -config argument or its directory)
    real_path: str  # links resolved: the file that is read and rewritten
    format: str
    text: str
    settings: List[Setting]
    storage: Optional[str]  # the storage type of its storage (or backend) stanza, lower case

    @property
    def disable_mlock(self) -> Optional[bool]:
        """What this file sets (its last setting), None when it sets nothing or an unreadable value."""
        return self.settings[-1].value if self.settings else None


def _hcl_storage(statements: Sequence[Statement]) -> Optional[str]:
    for statement in statements:
        if statement.key.lower() in STORAGE_KEYS and statement.labels:
            return statement.labels[0].lower()
    return None


def _json_storage(members: Sequence[Member]) -> Optional[str]:
    for member in members:
        if member.key.lower() not in STORAGE_KEYS:
            continue
        value = member.value
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, dict) and value:
            return next(iter(value)).lower()
    return None


def read_config(path: str, text: str, real_path: Optional[str] = None) -> ConfigFile:
    """The disable_mlock settings and the storage type of one configuration file."""
    fmt = file_format(text)
    if fmt == JSON:
        _open, _close, members = json_members(text, path)
        settings = [Setting(line_of(text, member.key_start), text[member.value_start:member.value_end],
                            json_value_bool(member.value))
                    for member in members if member.key.lower() == KEY]
        storage = _json_storage(members)
    else:
        statements = hcl_statements(text, path)
        settings = []
        for statement in statements:
            if statement.key.lower() != KEY or statement.labels:
                continue
            token = statement.value
            if token is None or token.kind == "heredoc":
                raise hcl_error(path, text, statement.start, f"{KEY} has a value that is not a single word")
            settings.append(Setting(line_of(text, statement.start), token.text, hcl_value_bool(token)))
        storage = _hcl_storage(statements)
    return ConfigFile(path, real_path or path, fmt, text, settings, storage)


def storage_of(configs: Sequence[ConfigFile]) -> Tuple[Optional[str], Optional[str]]:
    """(storage type, file): the last file with a storage stanza wins, as the server merges them."""
    found = (None, None)
    for config in configs:
        if config.storage:
            found = (config.storage, config.path)
    return found


def read_configs(paths: Sequence[str], root: str = "/") -> List[ConfigFile]:
    """Read every file of ``paths`` (as config_files() lists them) under ``root``."""
    configs = []
    for path in paths:
        real = resolve_in_root(root, path)
        try:
            with open(os.path.join(root, real.lstrip("/")), "rb") as stream:
                raw = stream.read()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: is not UTF-8 text; the file was left as it is") from None
        configs.append(read_config(path, text, real))
    return configs


def summary(configs: Sequence[ConfigFile]) -> Dict[str, object]:
    """What the configuration sets now: the value the server ends with, and every setting."""
    value = None
    for config in configs:
        if config.settings:
            value = config.disable_mlock
    return {
        "value": value,
        "settings": [
            {"path": config.real_path, "line": setting.line, "text": setting.text, "value": setting.value}
            for config in configs for setting in config.settings
        ],
    }
