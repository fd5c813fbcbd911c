# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Read files inside another machine's root without ever leaving it.

From the LXD host a guest's files are at ``/proc/INIT/root/...``. The guest owns every
symbolic link there: one pointing at ``/etc/shadow`` would lead the kernel to the *host's*
file if it were followed. Here each path component is opened on its own with O_NOFOLLOW,
relative to the directory opened before it, and a symbolic link is resolved by hand inside
the root (an absolute target starts again at the root, ``..`` stops at the root), as
openat2(RESOLVE_IN_ROOT) would. So whatever the guest wrote, only files under the root are
read.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import List

# As the kernel's own limit on nested symbolic links (MAXSYMLINKS).
MAX_SYMLINKS = 40

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def _components(path: str) -> List[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def open_in_root(root: str, path: str, flags: int = os.O_RDONLY) -> int:
    """A file descriptor for ``path`` (absolute or not, it is taken inside ``root``).

    Raises OSError as open() would: ENOENT, ENOTDIR, ELOOP (too many links), EACCES.
    The caller closes the descriptor.
    """
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _open_below(root_fd, path, flags)
    finally:
        os.close(root_fd)


def _open_below(root_fd: int, path: str, flags: int) -> int:
    pending = _components(path)
    parents: List[int] = []  # directories walked through, for '..'
    current = os.dup(root_fd)
    links = 0
    try:
        while pending:
            name = pending.pop(0)
            if name == "..":
                if parents:  # at the root '..' stays at the root
                    os.close(current)
                    current = parents.pop()
                continue
            fd = os.open(name, _PATH_FLAGS, dir_fd=current)
            try:
                mode = os.fstat(fd).st_mode
                if stat.S_ISLNK(mode):
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                    target = os.readlink(name, dir_fd=current)
                    if target.startswith("/"):
                        for parent in parents:
                            os.close(parent)
                        parents = []
                        os.close(current)
                        current = os.dup(root_fd)
                    pending = _components(target) + pending
                    continue
                if not pending:
                    # The last component, opened for real; O_NOFOLLOW in case it was swapped for a link.
                    return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
                if not stat.S_ISDIR(mode):
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
                parents.append(current)
                current = fd
                fd = -1
            finally:
                if fd >= 0:
                    os.close(fd)
        return os.open(".", flags | os.O_CLOEXEC, dir_fd=current)
    finally:
        os.close(current)
        for parent in parents:
            os.close(parent)


def read_bytes_in_root(root: str, path: str) -> bytes:
    fd = open_in_root(root, path)
    with os.fdopen(fd, "rb") as stream:
        return stream.read()


def read_text_in_root(root: str, path: str) -> str:
    return read_bytes_in_root(root, path).decode("utf-8", errors="replace")


def listdir_in_root(root: str, path: str) -> List[str]:
    """The names in a directory inside ``root``, sorted."""
    fd = open_in_root(root, path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)


def exists_in_root(root: str, path: str) -> bool:
    try:
        os.close(open_in_root(root, path, os.O_PATH))
    except OSError:
        return False
    return True


def resolve_in_root(root: str, path: str) -> str:
    """``path`` with its symbolic links resolved inside ``root``, as open_in_root walks it.

    Returns the absolute path inside the root ('/usr/bin/bao' -> '/opt/openbao/bin/bao').
    A missing component ends the walk: the rest is kept as written.
    """
    resolved: List[str] = []
    pending = _components(path)
    links = 0
    while pending:
        name = pending.pop(0)
        if name == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = resolved + [name]
        try:
            mode = os.lstat(os.path.join(root, *candidate)).st_mode
        except FileNotFoundError:
            resolved = candidate + [part for part in pending if part != ".."]
            break
        if stat.S_ISLNK(mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
            target = os.readlink(os.path.join(root, *candidate))
            if target.startswith("/"):
                resolved = []
            pending = _components(target) + pending
            continue
        resolved = candidate
    return "/" + "/".join(resolved)
