# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    RLIM_INFINITY,
    MemlockLimit,
    SizeError,
    covers,
    format_limit,
    format_lxd,
    format_size,
    format_ulimit,
    parse_limit,
    parse_size,
    ulimit_kib,
)

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

finite_sizes = st.integers(min_value=0, max_value=RLIM_INFINITY - 1)
sizes = st.one_of(st.none(), finite_sizes)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0", 0),
        ("1000", 1000),
        ("1000B", 1000),
        ("64K", 64 * KIB),
        ("256K", 256 * KIB),
        ("8M", 8 * MIB),
        ("1G", GIB),
        ("2T", 2 << 40),
        ("3P", 3 << 50),
        ("15E", 15 << 60),
        ("1.5K", 1536),
        ("0.5M", 512 * KIB),
        ("1.25G", GIB + GIB // 4),
        (" 8M ", 8 * MIB),
        ("8 M", 8 * MIB),
        ("infinity", None),
        ("unlimited", None),
        ("Infinity", None),
        ("UNLIMITED", None),
        (str(RLIM_INFINITY - 1), RLIM_INFINITY - 1),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_parse_size_accepts_integers():
    assert parse_size(65536) == 65536


@pytest.mark.parametrize(
    "text",
    ["", " ", "K", "-1", "8m", "8k", "8MB", "8MiB", "1e6", "0x100", "1,5K", "1.K", ".5K", "8 M B", "inf", "none",
     "16E", str(RLIM_INFINITY), "99999999999999999999"],
)
def test_parse_size_refuses(text):
    with pytest.raises(SizeError) as caught:
        parse_size(text, "limit")
    assert str(caught.value).startswith("limit: ")
    assert "infinity" in str(caught.value)  # the message shows the accepted form


def test_parse_size_names_the_option():
    with pytest.raises(SizeError, match=r"^memlock: 'lots' is not a size"):
        parse_size("lots", "memlock")


@pytest.mark.parametrize(
    "text, soft, hard",
    [
        ("8M", 8 * MIB, 8 * MIB),
        ("64K:1G", 64 * KIB, GIB),
        ("infinity", None, None),
        ("unlimited", None, None),
        ("8M:infinity", 8 * MIB, None),
        ("256K:256K", 256 * KIB, 256 * KIB),
        (" 64K : 128K ", 64 * KIB, 128 * KIB),
        ("0:0", 0, 0),
    ],
)
def test_parse_limit(text, soft, hard):
    assert parse_limit(text) == MemlockLimit(soft, hard)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("1M:2M:3M", "more than one ':'"),
        ("2M:1M", "soft limit 2M is above hard limit 1M"),
        ("infinity:8M", "soft limit infinity is above hard limit 8M"),
        ("8M:", "not a size"),
        (":8M", "not a size"),
        (":", "not a size"),
        ("8X", "not a size"),
    ],
)
def test_parse_limit_refuses(text, reason):
    with pytest.raises(SizeError, match="^limit: ") as caught:
        parse_limit(text)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    "size, text",
    [
        (None, "infinity"),
        (0, "0"),
        (1, "1"),
        (1000, "1000"),
        (KIB, "1K"),
        (1536, "1536"),  # 1.5K is not exact in whole K
        (1536 * KIB, "1536K"),
        (256 * KIB, "256K"),
        (8 * MIB, "8M"),
        (GIB, "1G"),
        (1 << 40, "1T"),
        (1 << 50, "1P"),
        (15 << 60, "15E"),
        (RLIM_INFINITY - 1, str(RLIM_INFINITY - 1)),
    ],
)
def test_format_size(size, text):
    assert format_size(size) == text


@pytest.mark.parametrize(
    "limit, systemd, lxd",
    [
        (MemlockLimit(256 * KIB, 256 * KIB), "256K", "262144"),
        (MemlockLimit(None, None), "infinity", "unlimited"),
        (MemlockLimit(64 * KIB, GIB), "64K:1G", "65536:1073741824"),
        (MemlockLimit(8 * MIB, None), "8M:infinity", "8388608:unlimited"),
        (MemlockLimit(1000, 1000), "1000", "1000"),
    ],
)
def test_format_limit_and_lxd(limit, systemd, lxd):
    assert format_limit(limit) == systemd
    assert format_lxd(limit) == lxd


@pytest.mark.parametrize(
    "size, kib, printed",
    [
        (None, None, "unlimited"),
        (0, 0, "0"),
        (1023, 0, "0"),  # ulimit -l rounds down
        (1024, 1, "1"),
        (256 * KIB, 256, "256"),  # the seed's "256": KiB, not bytes
        (8 * MIB, 8192, "8192"),
        (65536, 64, "64"),
    ],
)
def test_ulimit(size, kib, printed):
    assert ulimit_kib(size) == kib
    assert format_ulimit(size) == printed


@pytest.mark.parametrize(
    "limit, need, expected",
    [
        (None, None, True),
        (None, 1 << 62, True),
        (8 * MIB, None, False),
        (8 * MIB, 8 * MIB, True),
        (8 * MIB, 8 * MIB + 1, False),
        (0, 0, True),
    ],
)
def test_covers(limit, need, expected):
    assert covers(limit, need) is expected


@given(sizes)
def test_size_round_trip(size):
    assert parse_size(format_size(size)) == size


@given(sizes, sizes)
def test_limit_round_trip(a, b):
    soft, hard = sorted((a, b), key=lambda size: RLIM_INFINITY if size is None else size)
    limit = MemlockLimit(soft, hard)
    assert parse_limit(format_limit(limit)) == limit


@given(finite_sizes)
def test_format_size_is_shortest_exact(size):
    text = format_size(size)
    if text[-1].isalpha():
        # A larger suffix would not divide evenly, so no shorter exact spelling exists.
        suffixes = "KMGTPE"
        next_index = suffixes.index(text[-1]) + 1
        if next_index < len(suffixes):
            assert size % (1 << (10 * (next_index + 1))) != 0
    else:
        assert size == 0 or size % KIB != 0


@given(st.integers(min_value=0, max_value=1 << 30), st.sampled_from(["", "K", "M", "G"]))
def test_ulimit_kib_is_bytes_over_1024(number, suffix):
    size = parse_size(f"{number}{suffix}")
    assert ulimit_kib(size) == size // 1024
