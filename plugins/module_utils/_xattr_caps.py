# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The ``security.capability`` extended attribute: the kernel's bytes for a file capability.

Layout (linux/capability.h, all little-endian 32-bit words):

- ``magic_etc``: the revision in the top byte, VFS_CAP_FLAGS_EFFECTIVE in bit 0;
- per 32-capability word: ``permitted``, then ``inheritable`` (one word in revision 1,
  two in revisions 2 and 3);
- revision 3 only: ``rootid``, the uid that is root in the user namespace the capability
  belongs to (what a file set inside an unprivileged LXD guest carries, seen from the host).

Inside a user namespace the kernel turns a revision 2 value into revision 3 with the
namespace's root on write, and shows its own namespace's values as revision 2 on read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capabilities import (
    CapabilityError,
    CapabilitySet,
    check_storable,
)

XATTR_NAME = "security.capability"

VFS_CAP_REVISION_MASK = 0xFF000000
VFS_CAP_FLAGS_EFFECTIVE = 0x000001
VFS_CAP_REVISION_1 = 0x01000000
VFS_CAP_REVISION_2 = 0x02000000
VFS_CAP_REVISION_3 = 0x03000000

# revision -> (xattr size in bytes, number of 32-bit capability words)
LAYOUTS = {
    VFS_CAP_REVISION_1: (12, 1),
    VFS_CAP_REVISION_2: (20, 2),
    VFS_CAP_REVISION_3: (24, 2),
}
MAX_ROOTID = 2**32 - 2  # (uid_t)-1 is no uid at all


@dataclass(frozen=True)
class FileCapability:
    """One decoded security.capability value."""

    capabilities: CapabilitySet
    revision: int  # 1, 2 or 3
    rootid: Optional[int] = None  # revision 3 only


def _bits(word: int, base: int) -> frozenset:
    return frozenset(base + bit for bit in range(32) if word >> bit & 1)


def _word(numbers: frozenset, index: int) -> int:
    return sum(1 << (n - 32 * index) for n in numbers if 32 * index <= n < 32 * (index + 1))


def decode_xattr(data: bytes, source: str = XATTR_NAME) -> FileCapability:
    """Read the kernel's bytes the way libcap does: e is every p or i capability when the flag is set."""
    if len(data) < 4:
        raise CapabilityError(f"path: {source} holds {len(data)} bytes, too short for a file capability")
    (magic_etc,) = struct.unpack_from("<I", data, 0)
    revision_bits = magic_etc & VFS_CAP_REVISION_MASK
    if revision_bits not in LAYOUTS:
        raise CapabilityError(
            f"path: {source} has unknown revision 0x{revision_bits >> 24:02x}; known revisions are 1, 2 and 3"
        )
    size, words = LAYOUTS[revision_bits]
    revision = revision_bits >> 24
    if len(data) != size:
        raise CapabilityError(
            f"path: {source} holds {len(data)} bytes, but revision {revision} takes exactly {size}"
        )
    permitted, inheritable = frozenset(), frozenset()
    for index in range(words):
        word_permitted, word_inheritable = struct.unpack_from("<II", data, 4 + 8 * index)
        permitted |= _bits(word_permitted, 32 * index)
        inheritable |= _bits(word_inheritable, 32 * index)
    effective = permitted | inheritable if magic_etc & VFS_CAP_FLAGS_EFFECTIVE else frozenset()
    rootid = struct.unpack_from("<I", data, 20)[0] if revision_bits == VFS_CAP_REVISION_3 else None
    return FileCapability(CapabilitySet(effective, inheritable, permitted), revision, rootid)


def check_rootid(rootid: int) -> None:
    """A namespace root uid must fit the 32-bit field and not be (uid_t)-1."""
    if isinstance(rootid, bool) or not isinstance(rootid, int) or not 0 <= rootid <= MAX_ROOTID:
        raise CapabilityError(f"rootid: {rootid!r} is not a uid; expected an integer from 0 to {MAX_ROOTID}")


def encode_xattr(capabilities: CapabilitySet, rootid: Optional[int] = None, option: str = "capability") -> bytes:
    """The bytes for this set: revision 2, or revision 3 when a namespace root uid is given."""
    check_storable(capabilities, option)
    if rootid is not None:
        check_rootid(rootid)
    magic_etc = VFS_CAP_REVISION_2 if rootid is None else VFS_CAP_REVISION_3
    if capabilities.effective:
        magic_etc |= VFS_CAP_FLAGS_EFFECTIVE
    data = struct.pack("<I", magic_etc)
    for index in range(2):
        data += struct.pack("<II", _word(capabilities.permitted, index), _word(capabilities.inheritable, index))
    if rootid is not None:
        data += struct.pack("<I", rootid)
    return data
