# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Replace a file atomically: readers see the old content or the new, never a part."""

from __future__ import annotations

import os
import tempfile
from typing import Optional, Union


def write_atomic(path: str, content: Union[bytes, str], mode: int = 0o644,
                 uid: Optional[int] = None, gid: Optional[int] = None) -> None:
    """Write ``content`` to ``path`` through a temporary file in the same directory.

    The temporary file is created 0600 by mkstemp, so nobody reads or changes it half
    written; it gets ``mode`` (and ``uid``/``gid`` when given, so that a file another user
    reads keeps its owner) only once complete, then os.replace() puts it in place.
    Text is written as UTF-8. On any error the temporary file is removed and ``path``
    keeps its old content. The directory is fsynced so the rename survives a crash.
    """
    if isinstance(content, str):
        content = content.encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(content)
            tmp.flush()
            os.fsync(tmp.fileno())
            if uid is not None or gid is not None:
                os.fchown(tmp.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            os.fchmod(tmp.fileno(), mode)
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
