"""File helpers the unit tests share: write into a tree, and fingerprint a tree to prove
that nothing in it changed (mode, content or link target, and the security.capability xattr)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat

XATTR_NAME = "security.capability"
# Debian's lxd.service and the drop-in memlock_dropin writes for it by default.
UNIT_FILE = "/lib/systemd/system/lxd.service"
OURS = "/etc/systemd/system/lxd.service.d/00-memlock.conf"
VAULT_CONTENT = b"\x7fELF vault binary stand-in\n"


def make_vault(directory, name="vault"):
    """An executable stand-in for the Vault binary in directory; returns its path."""
    path = directory / name
    path.write_bytes(VAULT_CONTENT)
    path.chmod(0o755)
    return path


def put(root, path, text):
    """Write text at path inside root (path may start with '/'); returns the full path."""
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as handle:
        handle.write(text)
    return full


def read_xattr(path):
    """The file's security.capability value, None when it has none."""
    try:
        return os.getxattr(str(path), XATTR_NAME, follow_symlinks=False)
    except OSError as err:
        if err.errno in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
            return None
        raise


def tree_snapshot(root):
    """{relative path: (mode, sha256 or link target or 'dir', capability xattr)} under root."""
    result = {}
    for directory, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            full = os.path.join(directory, name)
            info = os.lstat(full)
            caps = None
            if stat.S_ISLNK(info.st_mode):
                content = "-> " + os.readlink(full)
            elif stat.S_ISDIR(info.st_mode):
                content = "dir"
            elif stat.S_ISREG(info.st_mode):
                with open(full, "rb") as handle:
                    content = hashlib.sha256(handle.read()).hexdigest()
                caps = read_xattr(full)
            else:
                content = stat.S_IFMT(info.st_mode)
            result[os.path.relpath(full, str(root))] = (stat.S_IMODE(info.st_mode), content, caps)
    return result


def memlock(value):
    """A drop-in's text that sets LimitMEMLOCK= to VALUE."""
    return f"[Service]\nLimitMEMLOCK={value}\n"
