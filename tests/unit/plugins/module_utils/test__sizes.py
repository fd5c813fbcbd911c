# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    RLIM_INFINITY,
    MemlockLimit,
    MemlockReport,
    SizeError,
    covers,
    format_limit,
    format_lxd,
    format_size,
    format_ulimit,
    lower_limit,
    memlock_report,
    parse_limit,
    parse_size,
    systemd_limit,
    ulimit_kib,
)

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

finite_sizes = st.integers(min_value=0, max_value=RLIM_INFINITY - 1)
sizes = st.one_of(st.none(), finite_sizes)


# What systemd 252 makes of LimitMEMLOCK= values: `systemctl show -p LimitMEMLOCKSoft,LimitMEMLOCK`
# of a unit whose later drop-in holds the value, measured in a Debian 12 guest (molecule/dropin_oracle
# checks the same against the module on every run). (value, soft, hard); REFUSED: systemd ignores it.
REFUSED = "refused"
SYSTEMD_252 = [
    ("1G 512M", GIB + 512 * MIB, GIB + 512 * MIB),  # components add up
    ("4M : 8M", REFUSED, None),  # the soft side keeps its trailing space, which ends no number
    ("4M:8M", 4 * MIB, 8 * MIB),
    ("4M: 8M", 4 * MIB, 8 * MIB),  # white space before a number is skipped
    ("4. M", 4 * MIB, 4 * MIB),
    ("1K 1B", 1025, 1025),
    ("1.99999999999999999999999K", REFUSED, None),  # the fraction's digits overflow 64 bits
    ("4.M", 4 * MIB, 4 * MIB),  # a point with no digits after it is ignored
    ("4.", 4, 4),
    ("4.5K", 4608, 4608),
    ("0.1K", 102, 102),  # fractions are cut to whole bytes
    ("4.3M", 4508876, 4508876),
    ("+4M", 4 * MIB, 4 * MIB),  # strtoull() takes a sign
    ("-4M", REFUSED, None),
    ("4m", REFUSED, None),  # suffixes are upper case
    ("4KB", REFUSED, None),
    ("4 K", 4 * KIB, 4 * KIB),
    ("512M 1G", REFUSED, None),  # each further component needs a smaller suffix
    ("1B 2", 3, 3),  # ... and a plain number is smaller than B
    ("1 2", REFUSED, None),
    (":8M", REFUSED, None),
    ("", REFUSED, None),  # an empty assignment is ignored too, not a reset
    ("4M:", REFUSED, None),
    ("4M # c", REFUSED, None),  # no comments after a value
    ("infinity", None, None),
    ("unlimited", REFUSED, None),  # LXD's word, not systemd's
    ("Infinity", REFUSED, None),
    ("infinity : infinity", REFUSED, None),
    ("infinity:", REFUSED, None),
    ("4\\M", 4 * MIB, 4 * MIB),  # a backslash keeps the next character
    ('"4M"', REFUSED, None),  # no quotes
    ("4K:2K", REFUSED, None),  # soft above hard
    (str(RLIM_INFINITY), REFUSED, None),
    (str(RLIM_INFINITY - 1), RLIM_INFINITY - 1, RLIM_INFINITY - 1),
    ("16E", REFUSED, None),
    ("15E", 15 << 60, 15 << 60),
    ("0", 0, 0),
    ("0x10", REFUSED, None),
    ("1.5 1", REFUSED, None),
    ("1:2:", 1, 2),  # a last ':' with nothing after it is allowed once there are two sides
    ("1:2:3", REFUSED, None),
]


@pytest.mark.parametrize("value, soft, hard", SYSTEMD_252, ids=[repr(case[0]) for case in SYSTEMD_252])
def test_systemd_limit_reads_values_as_systemd_252(value, soft, hard):
    if soft == REFUSED:
        with pytest.raises(SizeError):
            systemd_limit(value)
    else:
        assert systemd_limit(value) == MemlockLimit(soft, hard)


def test_the_table_covers_what_the_old_parser_got_wrong():
    values = [case[0] for case in SYSTEMD_252]
    assert {"1G 512M", "4M : 8M", "4.M", "4."} <= set(values) and len(values) >= 30


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
        (" 8M ", 8 * MIB),  # white space around the whole value does not count, as in a unit file
        ("8 M", 8 * MIB),
        ("1G 512M", GIB + 512 * MIB),
        ("infinity", None),
        ("unlimited", None),
        (str(RLIM_INFINITY - 1), RLIM_INFINITY - 1),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_parse_size_accepts_integers():
    assert parse_size(65536) == 65536


@pytest.mark.parametrize(
    "text",
    ["", " ", "K", "-1", "8m", "8k", "8MB", "8MiB", "1e6", "0x100", "1,5K", ".5K", "8 M B", "inf", "none",
     "Infinity", "UNLIMITED", "16E", str(RLIM_INFINITY), "99999999999999999999", "1M:2M", "1.99999999999999999999999K"],
)
def test_parse_size_refuses(text):
    with pytest.raises(SizeError) as caught:
        parse_size(text, "limit")
    assert str(caught.value).startswith("limit: ")
    assert "infinity" in str(caught.value)  # the message shows the accepted form


@pytest.mark.parametrize(
    "text, reason",
    [
        ("lots", "'lots' is not a size: 'lots' is not a suffix systemd knows"),
        ("-1", "'-1' is not a size: systemd refuses negative sizes"),
        ("16E", "'16E' is too large"),
        ("1 2", "'2' cannot follow '1'"),
        ("4KB", "'B' is not a suffix systemd knows"),
    ],
)
def test_parse_size_says_why(text, reason):
    with pytest.raises(SizeError, match="^memlock: ") as caught:
        parse_size(text, "memlock")
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    "text, soft, hard",
    [
        ("8M", 8 * MIB, 8 * MIB),
        ("64K:1G", 64 * KIB, GIB),
        ("infinity", None, None),
        ("unlimited", None, None),
        ("8M:infinity", 8 * MIB, None),
        ("8M:unlimited", 8 * MIB, None),
        ("256K:256K", 256 * KIB, 256 * KIB),
        (" 64K:128K ", 64 * KIB, 128 * KIB),
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
        ("8M:", "nothing comes after ':'"),
        (":8M", "nothing comes before ':'"),
        (":", "nothing comes before ':'"),
        ("8X", "not a size"),
        ("64K : 128K", "in '64K ' before ':', it ends in white space"),
    ],
)
def test_parse_limit_refuses(text, reason):
    with pytest.raises(SizeError, match="^limit: ") as caught:
        parse_limit(text)
    assert reason in str(caught.value)


@given(st.text(alphabet="0123456789.KMGTPEB+-: \tx", max_size=12))
def test_users_get_what_a_unit_file_gets(text):
    """Apart from 'unlimited' and white space around it all, a user's value means what systemd reads."""
    try:
        expected = systemd_limit(text.strip(" \t\n\r"))
    except SizeError:
        expected = None
    try:
        assert parse_limit(text) == expected
    except SizeError:
        assert expected is None


@pytest.mark.parametrize(
    "limit, ceiling, lowered",
    [
        (MemlockLimit(None, None), 8 * MIB, MemlockLimit(8 * MIB, 8 * MIB)),
        (MemlockLimit(None, None), None, MemlockLimit(None, None)),
        (MemlockLimit(MIB, None), 8 * MIB, MemlockLimit(MIB, 8 * MIB)),
        (MemlockLimit(MIB, 2 * MIB), 8 * MIB, MemlockLimit(MIB, 2 * MIB)),
        (MemlockLimit(16 * MIB, 32 * MIB), 8 * MIB, MemlockLimit(8 * MIB, 8 * MIB)),
    ],
)
def test_lower_limit(limit, ceiling, lowered):
    assert lower_limit(limit, ceiling) == lowered


@pytest.mark.parametrize(
    "limit, report",
    [
        (MemlockLimit(256 * KIB, 256 * KIB), MemlockReport(262144, 262144, 256, 256, "256K")),
        (MemlockLimit(64 * KIB, None), MemlockReport(65536, None, 64, None, "64K:infinity")),
        (MemlockLimit(1000, 1000), MemlockReport(1000, 1000, 0, 0, "1000")),
    ],
)
def test_memlock_report(limit, report):
    assert memlock_report(limit) == report == MemlockReport.of(limit)
    assert report.limit == limit


def test_memlock_report_of_nothing_is_none():
    assert memlock_report(None) is None


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


# --- against systemd itself ----------------------------------------------------------------------
# `systemd-analyze --root=DIR verify UNIT` loads the unit as the manager does and logs, with its line
# number, every LimitMEMLOCK= value it ignores. The bytes of accepted values need a running systemd
# (`systemctl show`, molecule/dropin_oracle); which values it ignores can be checked here, on many.

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
# systemd 252 says "Failed to parse resource value"; 257 says "Failed to parse LimitMEMLOCK=" for an empty one.
_IGNORED = re.compile(r":(\d+): (?:Failed to parse resource value|Failed to parse LimitMEMLOCK=|Soft resource limit chosen higher)")

weird_values = st.text(alphabet="0123456789.KMGTPEBkm+-: \t\\\"'x#;", max_size=10).filter(
    lambda text: not text.rstrip().endswith("\\"))  # a trailing backslash continues the line


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="needs systemd-analyze")
@settings(max_examples=40, deadline=None)
@given(st.lists(weird_values, min_size=1, max_size=60))
def test_ignores_what_systemd_ignores(values):
    with tempfile.TemporaryDirectory() as root:
        unit_dir = os.path.join(root, "etc/systemd/system")
        os.makedirs(os.path.join(unit_dir, "vml.service.d"))
        with open(os.path.join(unit_dir, "vml.service"), "w", encoding="utf-8") as unit:
            unit.write("[Service]\nExecStart=/bin/true\n")
        with open(os.path.join(unit_dir, "vml.service.d/50-values.conf"), "w", encoding="utf-8") as dropin:
            dropin.write("[Service]\n" + "".join(f"LimitMEMLOCK={value}\n" for value in values))
        process = subprocess.run([SYSTEMD_ANALYZE, f"--root={root}", "verify", "vml.service"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    ignored_lines = {int(line) for line in _IGNORED.findall(process.stdout)}
    ours = set()
    for line, value in enumerate(values, start=2):
        try:
            systemd_limit(value.strip(" \t"))
        except SizeError:
            ours.add(line)
    assert ours == ignored_lines, process.stdout
