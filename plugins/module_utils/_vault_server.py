# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Which server runs (HashiCorp Vault or OpenBao), and whether it locks its memory.

- HashiCorp Vault calls mlockall() at start unless ``disable_mlock = true``. With integrated
  storage (raft) that would lock the whole database file too: bbolt maps it into memory, so
  the process's VmSize grows with it (201 GiB measured for a fresh OpenBao raft node), and
  HashiCorp recommends ``disable_mlock = true`` there.
- OpenBao dropped mlock in its 2.0 series. OpenBao 2.x refuses to start with
  ``disable_mlock = false`` ("OpenBao has dropped support for mlock. Please remove the line")
  and warns about ``disable_mlock = true`` ("unknown or unsupported field"): the line must go.

Everything here is pure: the file system is reached through a root directory.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import Optional, Sequence

from ansible_collections.vault_mlock.lxd.plugins.module_utils._safe_root import resolve_in_root

VAULT = "vault"
OPENBAO = "openbao"
AUTO = "auto"
SERVERS = (AUTO, VAULT, OPENBAO)

# Searched in this order: every directory for vault, then every directory for bao.
BINARY_NAMES = ("vault", "bao")
BINARY_DIRS = ("/usr/local/bin", "/usr/bin")

RAFT = "raft"

# bao, openbao, bao-2.1, openbao_2.7.2 ... but not baobab.
_OPENBAO_NAME = re.compile(r"^(open)?bao([-_.][-_.0-9A-Za-z]*)?$")


class ServerError(ValueError):
    """A binary or a choice that cannot work. The message names the option."""


def _join(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _is_executable_file(root: str, path: str) -> bool:
    """Whether ``path`` (links resolved inside ``root``) is a regular file someone may run."""
    try:
        full = _join(root, resolve_in_root(root, path))
        return stat.S_ISREG(os.lstat(full).st_mode) and os.access(full, os.X_OK)
    except OSError:
        return False


def find_binary(search_path: str, names: Sequence[str] = BINARY_NAMES, dirs: Sequence[str] = BINARY_DIRS,
                root: str = "/") -> Optional[str]:
    """The first executable ``names[0]`` on ``search_path`` (PATH) or in ``dirs``, then ``names[1]``...

    As `command -v vault || command -v bao` followed by a look in /usr/local/bin and /usr/bin:
    a Vault anywhere wins over an OpenBao anywhere. Relative PATH entries are skipped.
    """
    directories = []
    for directory in search_path.split(os.pathsep) + list(dirs):
        if directory.startswith("/") and directory not in directories:
            directories.append(directory)
    for name in names:
        for directory in directories:
            candidate = os.path.join(directory, name)
            if _is_executable_file(root, candidate):
                return candidate
    return None


def resolve_binary(path: str, root: str = "/") -> str:
    """The file ``path`` names once symbolic links are followed (inside ``root``)."""
    return resolve_in_root(root, path)


def check_binary(path: str, root: str = "/", option: str = "binary") -> None:
    """Fail clearly when ``path`` is not an executable regular file (links followed)."""
    if not path.startswith("/"):
        raise ServerError(f"{option}: {path!r} is not an absolute path; expected the path of the vault or bao "
                          "binary, such as /usr/bin/bao")
    if not os.path.lexists(_join(root, path)):
        raise ServerError(f"{option}: {path} does not exist; install Vault or OpenBao first, or name its binary")
    try:
        resolved = resolve_in_root(root, path)
        mode = os.lstat(_join(root, resolved)).st_mode
    except FileNotFoundError:
        raise ServerError(f"{option}: {path} is a symbolic link to nothing ({resolved})") from None
    except OSError as exc:
        raise ServerError(f"{option}: {path} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise ServerError(f"{option}: {path} is not a regular file; expected the vault or bao binary")
    if not os.access(_join(root, resolved), os.X_OK):
        raise ServerError(f"{option}: {path} is not executable; expected the vault or bao binary")


def looks_like_openbao(*paths: str) -> bool:
    """Whether a binary is OpenBao by its name, as called or as its links resolve."""
    return any(_OPENBAO_NAME.match(os.path.basename(path)) for path in paths if path)


def server_kind(binary: str, resolved: str, server: str = AUTO) -> str:
    """VAULT or OPENBAO: as named by ``server``, or by the binary's names under AUTO."""
    if server not in SERVERS:
        raise ServerError(f"server: {server!r} is not one of {', '.join(SERVERS)}")
    if server != AUTO:
        return server
    return OPENBAO if looks_like_openbao(binary, resolved) else VAULT


@dataclass(frozen=True)
class MlockDecision:
    """Whether the server locks its memory, why, and the disable_mlock its configuration must hold.

    ``disable_mlock`` is None when the configuration must hold no disable_mlock at all (OpenBao),
    and False where Vault's default (no line, or ``false``) is wanted.
    """

    enabled: bool
    reason: str
    disable_mlock: Optional[bool]


def normalize_disable_mlock(value) -> str:
    """'auto', 'true' or 'false' from whatever YAML made of the option."""
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return "true"
    if text in ("false", "no", "off", "0"):
        return "false"
    if text == "auto":
        return "auto"
    raise ServerError(f"disable_mlock: {value!r} is not one of auto, true, false")


def decide_mlock(kind: str, storage: Optional[str], disable_mlock: str = "auto",
                 storage_source: str = "") -> MlockDecision:
    """Whether the server locks its memory.

    ``storage`` is the storage type ('raft', 'consul', ...) or None when unknown; ``storage_source``
    says where it was found, for the reason. ``disable_mlock`` is 'auto', 'true' or 'false'.
    """
    setting = normalize_disable_mlock(disable_mlock)
    if kind == OPENBAO:
        if setting == "false":
            raise ServerError("disable_mlock: false cannot be met: OpenBao 2 and later never lock memory and refuse "
                              "to start with disable_mlock = false; use auto (or true)")
        return MlockDecision(False, "OpenBao 2 and later never lock memory: they refuse disable_mlock = false and "
                             "warn about disable_mlock = true, so the configuration holds no disable_mlock line",
                             None)
    if setting != "auto":
        disabled = setting == "true"
        return MlockDecision(not disabled, f"disable_mlock is {setting} as asked", disabled)
    where = f" ({storage_source})" if storage_source else ""
    if storage == RAFT:
        return MlockDecision(False, f"integrated storage (raft){where}: mlock would lock the whole memory-mapped "
                             "database as well, so HashiCorp recommends disable_mlock = true", True)
    if storage:
        return MlockDecision(True, f"Vault with {storage} storage{where} locks its memory (disable_mlock = false)",
                             False)
    return MlockDecision(True, "Vault locks its memory (disable_mlock = false); its storage is unknown, so "
                         "integrated storage (raft) is not assumed", False)
