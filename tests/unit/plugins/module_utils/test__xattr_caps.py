# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capabilities import (
    CapabilityError,
    CapabilitySet,
    format_capabilities,
    parse_capabilities,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._xattr_caps import (
    XATTR_NAME,
    FileCapability,
    decode_xattr,
    encode_xattr,
)

# The kernel's struct vfs_cap_data / vfs_ns_cap_data, spelled out word by word:
# magic_etc = revision | effective flag, then (permitted, inheritable) per 32-bit word, then rootid.
REV1, REV2, REV3, EFFECTIVE = 0x01000000, 0x02000000, 0x03000000, 0x00000001
IPC_LOCK_BIT = 1 << 14
NET_BIND_SERVICE_BIT = 1 << 10
CHECKPOINT_RESTORE_HIGH_BIT = 1 << (40 - 32)


def words(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


FIXTURES = [
    # (bytes, revision, rootid, getcap text)
    (words(REV2 | EFFECTIVE, IPC_LOCK_BIT, 0, 0, 0), 2, None, "cap_ipc_lock=ep"),
    (words(REV2, IPC_LOCK_BIT, 0, 0, 0), 2, None, "cap_ipc_lock=p"),
    (words(REV2, 0, IPC_LOCK_BIT, 0, 0), 2, None, "cap_ipc_lock=i"),
    (words(REV2 | EFFECTIVE, IPC_LOCK_BIT, IPC_LOCK_BIT, 0, 0), 2, None, "cap_ipc_lock=eip"),
    (words(REV2 | EFFECTIVE, IPC_LOCK_BIT | NET_BIND_SERVICE_BIT, 0, 0, 0), 2, None,
     "cap_net_bind_service,cap_ipc_lock=ep"),
    (words(REV2 | EFFECTIVE, 0, 0, CHECKPOINT_RESTORE_HIGH_BIT, 0), 2, None, "cap_checkpoint_restore=ep"),
    (words(REV2 | EFFECTIVE, 0xFFFFFFFF, 0, 0x1FF, 0), 2, None, "=ep"),
    (words(REV2, 0, 0, 0, 0), 2, None, "="),
    (words(REV3 | EFFECTIVE, IPC_LOCK_BIT, 0, 0, 0, 1000000), 3, 1000000, "cap_ipc_lock=ep"),
    (words(REV3, IPC_LOCK_BIT, 0, 0, 0, 65536), 3, 65536, "cap_ipc_lock=p"),
    (words(REV3 | EFFECTIVE, IPC_LOCK_BIT, 0, 0, 0, 0), 3, 0, "cap_ipc_lock=ep"),
]


@pytest.mark.parametrize("data, revision, rootid, text", FIXTURES)
def test_decode_kernel_bytes(data, revision, rootid, text):
    decoded = decode_xattr(data)
    assert decoded.revision == revision
    assert decoded.rootid == rootid
    assert format_capabilities(decoded.capabilities) == text


@pytest.mark.parametrize("data, revision, rootid, text", [f for f in FIXTURES if f[3] != "="])
def test_encode_gives_the_kernel_bytes(data, revision, rootid, text):
    assert encode_xattr(parse_capabilities(text), rootid if revision == 3 else None) == data


def test_encode_of_the_empty_set_is_a_valid_revision_2_value():
    assert encode_xattr(CapabilitySet()) == words(REV2, 0, 0, 0, 0)


def test_decode_revision_1_which_has_one_word():
    decoded = decode_xattr(words(REV1 | EFFECTIVE, IPC_LOCK_BIT, 0))
    assert decoded == FileCapability(parse_capabilities("cap_ipc_lock=ep"), 1, None)


def test_effective_flag_raises_inheritable_only_capabilities_too():
    decoded = decode_xattr(words(REV2 | EFFECTIVE, IPC_LOCK_BIT, 1 << 0, 0, 0))
    assert format_capabilities(decoded.capabilities) == "cap_chown=ei cap_ipc_lock+ep"


def test_bits_without_names_survive():
    data = words(REV2 | EFFECTIVE, 0, 0, 1 << (41 - 32), 0)
    decoded = decode_xattr(data)
    assert format_capabilities(decoded.capabilities) == "= 41+ep"
    assert encode_xattr(decoded.capabilities) == data


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"", "holds 0 bytes, too short"),
        (b"\x01\x00", "holds 2 bytes, too short"),
        (words(REV2 | EFFECTIVE, IPC_LOCK_BIT, 0, 0), "holds 16 bytes, but revision 2 takes exactly 20"),
        (words(REV2 | EFFECTIVE, IPC_LOCK_BIT, 0, 0, 0, 0), "holds 24 bytes, but revision 2 takes exactly 20"),
        (words(REV3 | EFFECTIVE, IPC_LOCK_BIT, 0, 0, 0), "holds 20 bytes, but revision 3 takes exactly 24"),
        (words(REV1, IPC_LOCK_BIT, 0, 0, 0), "holds 20 bytes, but revision 1 takes exactly 12"),
        (words(0x04000000, IPC_LOCK_BIT, 0, 0, 0), "unknown revision 0x04"),
        (words(0, IPC_LOCK_BIT, 0, 0, 0), "unknown revision 0x00"),
    ],
)
def test_decode_refuses_broken_values(data, fragment):
    with pytest.raises(CapabilityError) as caught:
        decode_xattr(data, "security.capability of /usr/bin/vault")
    assert str(caught.value).startswith("path: security.capability of /usr/bin/vault ")
    assert fragment in str(caught.value)


@pytest.mark.parametrize("text", ["cap_ipc_lock=ep cap_net_raw+p", "cap_ipc_lock=e", "all=ep cap_sys_admin-e"])
def test_encode_refuses_sets_the_format_cannot_hold(text):
    with pytest.raises(CapabilityError, match=r"^capability: the file format cannot store this"):
        encode_xattr(parse_capabilities(text))


@pytest.mark.parametrize("rootid", [-1, 2**32 - 1, 2**32, True, "1000"])
def test_encode_refuses_a_rootid_that_is_no_uid(rootid):
    with pytest.raises(CapabilityError, match=r"^rootid: .* is not a uid; expected an integer from 0 to 4294967294"):
        encode_xattr(parse_capabilities("cap_ipc_lock=ep"), rootid)


# --- round trips -----------------------------------------------------------------------------

def _storable(permitted, inheritable, effective_flag) -> CapabilitySet:
    return CapabilitySet(permitted | inheritable if effective_flag else frozenset(), inheritable, permitted)


storable_sets = st.builds(
    _storable,
    st.frozensets(st.integers(0, 63), max_size=64),
    st.frozensets(st.integers(0, 63), max_size=64),
    st.booleans(),
)


@given(storable_sets, st.one_of(st.none(), st.integers(0, 2**32 - 2)))
def test_encode_then_decode_gives_the_same_set(caps, rootid):
    data = encode_xattr(caps, rootid)
    decoded = decode_xattr(data)
    assert decoded.capabilities == caps
    assert decoded.rootid == rootid
    assert decoded.revision == (2 if rootid is None else 3)
    assert len(data) == (20 if rootid is None else 24)


# --- against libcap's own tools --------------------------------------------------------------

GETCAP = shutil.which("getcap") or next(
    (p for p in ("/usr/sbin/getcap", "/sbin/getcap") if os.path.exists(p)), None
)
SETCAP = shutil.which("setcap") or next(
    (p for p in ("/usr/sbin/setcap", "/sbin/setcap") if os.path.exists(p)), None
)
needs_getcap = pytest.mark.skipif(GETCAP is None, reason="getcap (libcap2-bin) is not installed")
needs_setcap = pytest.mark.skipif(SETCAP is None, reason="setcap (libcap2-bin) is not installed")


def _random_storable_sets(count: int, seed: int = 2024) -> list:
    rnd = random.Random(seed)
    combos = ("", "i", "p", "ip")
    sets = []
    for index in range(count):
        flags = {}
        if index % 4 == 0:  # most capabilities alike: exercises getcap's leading '=FLAGS'
            base = rnd.choice(combos)
            flags = {n: base for n in range(41)}
        for _extra in range(rnd.randint(0, 12)):
            flags[rnd.randrange(41) if rnd.random() < 0.9 else rnd.randrange(64)] = rnd.choice(combos)
        effective = rnd.random() < 0.6
        permitted = frozenset(n for n, f in flags.items() if "p" in f)
        inheritable = frozenset(n for n, f in flags.items() if "i" in f)
        sets.append(_storable(permitted, inheritable, effective))
    return sets


CROSS_CHECK_SETS = [parse_capabilities(t) for t in (
    "cap_ipc_lock=ep", "cap_ipc_lock,cap_net_bind_service=ep", "=ep", "=ep cap_sys_admin-ep", "cap_ipc_lock=eip",
    "cap_ipc_lock=i", "=p cap_ipc_lock+i", "41=ep", "=ep 63+ep", "",
)] + _random_storable_sets(300)


def _getcap(paths, *options) -> dict:
    out = subprocess.run([GETCAP, *options, *paths], check=True, capture_output=True, text=True).stdout
    result = {}
    for line in out.splitlines():
        path, _sep, text = line.partition(" ")
        result[path] = text
    return result


@needs_getcap
def test_getcap_prints_what_format_capabilities_writes(tmp_path):
    paths = []
    for index, caps in enumerate(CROSS_CHECK_SETS):
        path = tmp_path / f"bin{index:03d}"
        path.write_bytes(b"\x7fELF")
        os.setxattr(path, XATTR_NAME, encode_xattr(caps))
        paths.append(str(path))
    printed = _getcap(paths)
    mismatches = [
        (printed.get(path), format_capabilities(caps))
        for path, caps in zip(paths, CROSS_CHECK_SETS)
        if printed.get(path) != format_capabilities(caps)
    ]
    assert mismatches == []
    assert len(printed) == len(paths)


@needs_getcap
def test_getcap_shows_the_rootid_of_a_revision_3_value(tmp_path):
    path = tmp_path / "vault"
    path.write_bytes(b"\x7fELF")
    os.setxattr(path, XATTR_NAME, encode_xattr(parse_capabilities("cap_ipc_lock=ep"), 1000000))
    assert _getcap([str(path)], "-n") == {str(path): "cap_ipc_lock=ep [rootid=1000000]"}
    decoded = decode_xattr(os.getxattr(path, XATTR_NAME))
    assert (decoded.revision, decoded.rootid) == (3, 1000000)


SETCAP_TEXTS = [
    "cap_ipc_lock=+ep", "cap_ipc_lock+ep", "CAP_IPC_LOCK=ep", "cap_ipc_lock=pe",
    "cap_ipc_lock,cap_net_bind_service=ep", "=ep", "=ep cap_sys_admin-ep", "all=p", "14=ep", "0x0e=ep",
    "016=ep", "cap_ipc_lock=i", "cap_ipc_lock=eip", "cap_ipc_lock=ep+i-p", "cap_ipc_lock=p cap_chown+i",
    "cap_ipc_lock,all=ip", "41=ep", "=ep 41+ep", "cap_ipc_lock=ep\tcap_chown=ep",
] + [format_capabilities(caps) for caps in _random_storable_sets(40, seed=7) if not caps.is_empty()]


@needs_setcap
@pytest.mark.parametrize("text", SETCAP_TEXTS)
def test_setcap_stores_what_parse_capabilities_reads(tmp_path, text):
    path = tmp_path / "vault"
    path.write_bytes(b"\x7fELF")
    subprocess.run([SETCAP, text, str(path)], check=True, capture_output=True)
    stored = decode_xattr(os.getxattr(path, XATTR_NAME))
    assert stored.capabilities == parse_capabilities(text)
    assert os.getxattr(path, XATTR_NAME) == encode_xattr(parse_capabilities(text))
