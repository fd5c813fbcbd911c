# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""A Proxmox VE container's configuration, /etc/pve/lxc/VMID.conf, read and edited line by line.

The file (as pve-container's parse_pct_config reads it and write_pct_config writes it) holds the
current configuration first: ``#`` lines (the description), ``key: value`` lines and raw liblxc
keys (``lxc.prlimit.memlock: unlimited``; pve-container also reads ``lxc.key = value``). Then come a
``[pve:pending]`` section and one ``[NAME]`` section per snapshot. Only the current configuration
is edited here; every other line, comment and section stays byte for byte. pve-container writes
its raw keys into /var/lib/lxc/VMID/config as ``key = value`` at every ``pct start``.

/etc/pve is the cluster filesystem (pmxcfs): read-only while the node is not quorate. A write is
refused then with a sentence that says so, and nothing is written. pve-container's own lock for
the file is taken while it is rewritten.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from contextlib import contextmanager
from typing import Iterator, List, Optional

from ansible_collections.vault_mlock.lxd.plugins.module_utils._atomic import write_atomic
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import EngineError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._lxc_config import (
    LineSyntax,
    Setting,
    edited_lines,
    end_of_content,
    one_setting,
    split_lines,
)

ETC_PVE = "/etc/pve"
LOCK_DIR = "/run/lock/lxc"
# pve-container's pattern of a raw liblxc key line, 'key: value' or 'key = value'.
PVE_SYNTAX = LineSyntax(re.compile(r"^(lxc\.[a-z0-9_\-.]+)(?::|\s*=)\s*(.*?)\s*$"), ": ")
_SECTION = re.compile(r"^\[(?:pve:pending|[a-z][a-z0-9_\-]+)\]\s*$", re.IGNORECASE)
_VMID = re.compile(r"[1-9][0-9]{2,8}")
READ_ONLY = ("{path}: /etc/pve is read-only here ({why}); the Proxmox cluster filesystem refuses writes while this "
             "node is not quorate (pvecm status tells): restore quorum and run again (nothing was written)")


def conf_path(vmid: str, etc_pve: str = ETC_PVE) -> str:
    return os.path.join(etc_pve, "lxc", f"{vmid}.conf")


def is_vmid(name: str) -> bool:
    return bool(_VMID.fullmatch(name))


def current_end(lines: List[str]) -> int:
    """The index of the first section line ([pve:pending] or [SNAPSHOT]); len(lines) when there is none."""
    for index, line in enumerate(lines):
        if _SECTION.match(line):
            return index
    return len(lines)


def find_memlock(path: str, lines: List[str], key: str) -> Optional[Setting]:
    """The current configuration's line that sets ``key`` (sections after it do not count)."""
    return one_setting(path, lines, key, PVE_SYNTAX, current_end(lines))


def edit_text(path: str, text: str, key: str, value: Optional[str]) -> str:
    """``text`` with ``key`` set to ``value`` (None: its line removed) in the current configuration only."""
    lines = split_lines(text)
    end = current_end(lines)
    setting = find_memlock(path, lines, key)
    return "\n".join(edited_lines(lines, key, value, PVE_SYNTAX, setting, end_of_content(lines, end)))


def vmids(etc_pve: str = ETC_PVE) -> List[str]:
    """The containers of this node: /etc/pve/lxc/VMID.conf (a link to this node's directory), by VMID."""
    try:
        names = os.listdir(os.path.join(etc_pve, "lxc"))
    except OSError:
        return []
    found = [name[:-len(".conf")] for name in names if name.endswith(".conf") and is_vmid(name[:-len(".conf")])]
    return sorted(found, key=int)


@contextmanager
def config_lock(vmid: str, lock_dir: str = LOCK_DIR) -> Iterator[None]:
    """pve-container's lock of the container's configuration (flock on LOCK_DIR/pve-config-VMID.lock)."""
    if not os.path.isdir(lock_dir):
        yield
        return
    with open(os.path.join(lock_dir, f"pve-config-{vmid}.lock"), "a", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_conf(path: str, text: str) -> None:
    """Atomically replace ``path``, with its mode kept; EngineError with READ_ONLY on a read-only /etc/pve."""
    directory = os.path.dirname(path)
    if not os.access(directory, os.W_OK):
        raise EngineError(READ_ONLY.format(path=path, why=f"{directory} is not writable"))
    try:
        mode = os.stat(path).st_mode & 0o7777
        write_atomic(path, text, mode=mode)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise EngineError(READ_ONLY.format(path=path, why=exc.strerror)) from None
        raise EngineError(f"{path}: writing it failed: {exc.strerror} (nothing was written)") from None
