# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Read a file's capabilities, decide what they should become, and write them.

plan_file_capability() only reads; apply_file_capability() writes the one extended
attribute the plan names. Setting an xattr is a single system call: it is atomic on its
own and leaves the file's content, mode, owner and mtime alone.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from typing import Optional

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capabilities import (
    CapabilityError,
    CapabilitySet,
    check_storable,
    combine,
    format_capabilities,
    parse_capabilities,
    storable_problem,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._capability_names import CAP_IPC_LOCK
from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import (
    in_user_namespace as uid_map_in_user_namespace,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._xattr_caps import (
    XATTR_NAME,
    FileCapability,
    check_rootid,
    decode_xattr,
    encode_xattr,
)

STATES = ("present", "absent", "exact")
DEFAULT_CAPABILITY = "cap_ipc_lock=ep"

UID_MAP_PATH = "/proc/self/uid_map"

MEMLOCK_WARNING = (
    "This host is an unprivileged guest (a user namespace), where cap_ipc_lock on a file does not lift "
    "RLIMIT_MEMLOCK because the kernel checks CAP_IPC_LOCK in the initial namespace, so the memlock limit "
    "must come from LXD: the daemon's LimitMEMLOCK drop-in or the instance's limits.kernel.memlock."
)

_NOT_SUPPORTED = {errno.ENOTSUP, errno.EOPNOTSUPP}


# --- the host -----------------------------------------------------------------------------

def in_user_namespace(uid_map_path: Optional[str] = None) -> bool:
    """Whether this process runs in a user namespace other than the initial one."""
    try:
        with open(uid_map_path or UID_MAP_PATH, encoding="ascii") as handle:
            return uid_map_in_user_namespace(handle.read())
    except (OSError, ValueError):
        # No readable uid_map (a kernel without user namespaces): the initial namespace.
        return False


# --- the file -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ResolvedPath:
    """The regular file to act on, and the symlink given, if one was."""

    path: str
    link: Optional[str] = None


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
)


def resolve_path(path: str, follow: bool = True) -> ResolvedPath:
    """Follow symlinks as ``readlink -f`` does and make sure a regular file is at the end."""
    if not path:
        raise CapabilityError("path: the path is empty; expected the path of a regular file such as /usr/bin/vault")
    is_link = os.path.islink(path)
    if is_link and not follow:
        raise CapabilityError(
            f"follow: {path} is a symbolic link (to {os.readlink(path)}) and follow=false; "
            "set follow=true to act on the file it points to, or give the file's own path"
        )
    if follow:
        resolved = os.path.realpath(path)
    else:
        resolved = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))), os.path.basename(path))
    try:
        mode = os.stat(resolved, follow_symlinks=False).st_mode
    except FileNotFoundError:
        if is_link:
            raise CapabilityError(f"path: {path} is a symbolic link to {resolved}, which does not exist") from None
        raise CapabilityError(f"path: {path} does not exist; expected an existing regular file") from None
    except OSError as err:
        raise CapabilityError(f"path: cannot inspect {resolved}: {err.strerror}") from None
    for test, kind in _KINDS:
        if test(mode):
            raise CapabilityError(
                f"path: {resolved} is {kind}; file capabilities go on a regular file, such as the vault binary"
            )
    if not stat.S_ISREG(mode):
        raise CapabilityError(f"path: {resolved} is not a regular file")
    return ResolvedPath(resolved, path if is_link else None)


def describe_os_error(err: OSError, path: str, writing: bool) -> str:
    """One sentence for a failed xattr call, naming the path and what to do about it."""
    action = "set the capabilities of" if writing else "read the capabilities of"
    code = err.errno
    if code in _NOT_SUPPORTED:
        return (
            f"path: cannot {action} {path}: its file system does not support the {XATTR_NAME} extended attribute; "
            "put the file on a file system with extended attributes (such as ext4, xfs, btrfs or tmpfs)"
        )
    if code == errno.EROFS:
        return f"path: cannot {action} {path}: it is on a read-only file system"
    if code in (errno.EPERM, errno.EACCES):
        return (
            f"path: cannot {action} {path}: permission denied; setting file capabilities needs root "
            "with CAP_SETFCAP (become: true)"
        )
    if code == errno.EOVERFLOW:
        return (
            f"path: cannot {action} {path}: it carries a capability for another user namespace "
            "(its root uid is not mapped here); change it from the host"
        )
    if code == errno.EINVAL and writing:
        return (
            f"path: cannot {action} {path}: the kernel refused the value (invalid argument); "
            "a rootid must be a uid mapped in this user namespace"
        )
    return f"path: cannot {action} {path}: {err.strerror or err}"


def read_file_capability(path: str) -> Optional[FileCapability]:
    """The file's decoded security.capability, or None when it has none.

    A file system without extended attributes cannot hold a capability either: None.
    """
    try:
        data = os.getxattr(path, XATTR_NAME, follow_symlinks=False)
    except OSError as err:
        if err.errno == errno.ENODATA or err.errno in _NOT_SUPPORTED:
            return None
        raise CapabilityError(describe_os_error(err, path, writing=False)) from None
    return decode_xattr(data, f"{XATTR_NAME} of {path}")


def supports_capabilities(path: str) -> bool:
    """Whether the file system holding ``path`` can store a security.capability xattr at all."""
    try:
        os.getxattr(path, XATTR_NAME, follow_symlinks=False)
    except OSError as err:
        return err.errno not in _NOT_SUPPORTED
    return True


# --- the decision -------------------------------------------------------------------------

def capability_text(capability: Optional[FileCapability]) -> str:
    """What getcap prints after the path: '' when the file has no capability xattr."""
    return "" if capability is None else format_capabilities(capability.capabilities)


@dataclass(frozen=True)
class CapabilityChange:
    """What the file carries, what it should carry, and whether that means a write."""

    path: str
    link: Optional[str]
    before: Optional[FileCapability]
    after: Optional[FileCapability]  # None: no security.capability at all
    in_user_namespace: bool
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.before != self.after

    @property
    def before_text(self) -> str:
        return capability_text(self.before)

    @property
    def after_text(self) -> str:
        return capability_text(self.after)

    @property
    def rootid(self) -> Optional[int]:
        return None if self.after is None else self.after.rootid

    def diff(self) -> dict[str, str]:
        def text(capability: Optional[FileCapability]) -> str:
            value = capability_text(capability)
            return value + "\n" if value else ""

        return {
            "before": text(self.before),
            "after": text(self.after),
            "before_header": self.path,
            "after_header": self.path,
        }


def desired_rootid(current: Optional[FileCapability], rootid: Optional[int]) -> Optional[int]:
    """The namespace root uid to write: the one asked for, else the file's own.

    Keeping a revision 3 file's rootid means a change never widens a capability meant for
    one user namespace to all of them. rootid 0 is this namespace's root: a revision 2 value.
    """
    if rootid is not None:
        return rootid or None
    return None if current is None else current.rootid


def plan_file_capability(
    path: str,
    capability: str = DEFAULT_CAPABILITY,
    state: str = "present",
    follow: bool = True,
    rootid: Optional[int] = None,
    uid_map_path: Optional[str] = None,
) -> CapabilityChange:
    """Read the file and decide. Raises CapabilityError for any bad input; writes nothing."""
    if state not in STATES:
        raise CapabilityError(f"state: {state!r} is not one of {', '.join(STATES)}")
    requested = parse_capabilities(capability, "capability", bare_names=(state == "absent"))
    if state == "exact":
        check_storable(requested, "capability")
    if rootid is not None:
        check_rootid(rootid)
    target = resolve_path(path, follow)
    current = read_file_capability(target.path)
    current_set = CapabilitySet() if current is None else current.capabilities
    wanted = combine(current_set, requested, state)
    problem = storable_problem(wanted)
    if problem:
        raise CapabilityError(
            f"capability: state={state} with {capability!r} on {target.path}, which carries "
            f"{capability_text(current) or 'nothing'!r}, gives a set the file format cannot store: {problem}"
        )

    after: Optional[FileCapability]
    if wanted.is_empty():
        after = None
    else:
        wanted_rootid = desired_rootid(current, rootid)
        unchanged = (
            current is not None
            and current.capabilities == wanted
            and (rootid is None or current.rootid == wanted_rootid)
        )
        if unchanged:
            after = current
        else:
            after = FileCapability(wanted, 3 if wanted_rootid is not None else 2, wanted_rootid)

    if after != current and not supports_capabilities(target.path):
        # Fail in check mode too: no run could ever make this change.
        raise CapabilityError(
            describe_os_error(OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP)), target.path, writing=True)
        )

    namespaced = in_user_namespace(uid_map_path)
    warnings = ()
    if namespaced and state != "absent" and CAP_IPC_LOCK in requested.numbers():
        warnings = (MEMLOCK_WARNING,)
    return CapabilityChange(target.path, target.link, current, after, namespaced, warnings)


def apply_file_capability(change: CapabilityChange) -> CapabilityChange:
    """Write what the plan decided, then read it back: the result is what the file now carries."""
    if not change.changed:
        return change
    try:
        if change.after is None:
            os.removexattr(change.path, XATTR_NAME, follow_symlinks=False)
        else:
            data = encode_xattr(change.after.capabilities, change.after.rootid)
            os.setxattr(change.path, XATTR_NAME, data, follow_symlinks=False)
    except OSError as err:
        if not (err.errno == errno.ENODATA and change.after is None):
            raise CapabilityError(describe_os_error(err, change.path, writing=True)) from None
    stored = read_file_capability(change.path)
    stored_set = None if stored is None else stored.capabilities
    wanted_set = None if change.after is None else change.after.capabilities
    if stored_set != wanted_set:
        raise CapabilityError(
            f"path: {change.path} carries {capability_text(stored)!r} after writing {change.after_text!r}; "
            "something (a security module or the file system) changed the value"
        )
    return CapabilityChange(
        change.path, change.link, change.before, stored, change.in_user_namespace, change.warnings
    )
