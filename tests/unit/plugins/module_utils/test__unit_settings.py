# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capability_names import CAPABILITY_NAMES
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import RLIM_INFINITY, MemlockLimit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_files import UnitSource
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_settings import (
    AMBIENT_KEY,
    BOUNDING_KEY,
    CAP_ALL,
    IPC_LOCK_BIT,
    capability_mask,
    capability_names,
    capability_number,
    capability_set,
    effective_limit,
    merge_capability_line,
    read_limit_settings,
)

KIB = 1024
MIB = 1024 * KIB
UNIT_FILE = "/lib/systemd/system/lxd.service"
EARLY = "/etc/systemd/system/lxd.service.d/00-memlock.conf"
LATE = "/etc/systemd/system/lxd.service.d/50-x.conf"


def source(path, *lines):
    return UnitSource(path, "[Service]\n" + "".join(line + "\n" for line in lines))


# --- LimitMEMLOCK= -------------------------------------------------------------------------------


def test_effective_from_unit_file_alone():
    result = effective_limit([source(UNIT_FILE, "ExecStart=/usr/bin/lxd", "LimitMEMLOCK=64K")])
    assert result.limit == MemlockLimit(64 * KIB, 64 * KIB)
    assert result.source == UNIT_FILE


def test_effective_nothing_set():
    result = effective_limit([source(UNIT_FILE, "ExecStart=/usr/bin/lxd")])
    assert (result.limit, result.source, result.settings) == (None, None, ())


def test_effective_last_valid_assignment_wins():
    result = effective_limit([source(UNIT_FILE, "LimitMEMLOCK=1M"), source(EARLY, "LimitMEMLOCK=2M"),
                              source(LATE, "LimitMEMLOCK=3M", "LimitMEMLOCK=4M")])
    assert result.limit == MemlockLimit(4 * MIB, 4 * MIB)
    assert result.source == LATE
    assert [setting.value for setting in result.settings] == ["1M", "2M", "3M", "4M"]


@pytest.mark.parametrize("ignored", ["4M : 8M", "", "unlimited", "4K:2K", "16E", "4m"])
def test_an_ignored_value_keeps_the_one_before(ignored):
    """systemd logs "Failed to parse resource value, ignoring" and goes on with what it had."""
    result = effective_limit([source(EARLY, "LimitMEMLOCK=3M:5M"), source(LATE, f"LimitMEMLOCK={ignored}")])
    assert result.limit == MemlockLimit(3 * MIB, 5 * MIB)
    assert result.source == EARLY
    assert result.settings[-1].limit is None
    assert result.settings[-1].problem


@pytest.mark.parametrize("accepted, limit", [
    ("1G 512M", MemlockLimit(1536 * MIB, 1536 * MIB)),
    ("4.M", MemlockLimit(4 * MIB, 4 * MIB)),
    ("4.", MemlockLimit(4, 4)),
    ("infinity", MemlockLimit(None, None)),
])
def test_an_accepted_value_replaces_the_one_before(accepted, limit):
    result = effective_limit([source(EARLY, "LimitMEMLOCK=3M:5M"), source(LATE, f"LimitMEMLOCK={accepted}")])
    assert (result.limit, result.source) == (limit, LATE)


def test_read_limit_settings_says_why_a_value_is_ignored():
    settings = read_limit_settings(LATE, "[Service]\nLimitMEMLOCK=8M:4M\nLimitMEMLOCK=8M\n")
    assert [(setting.value, setting.limit) for setting in settings] == [
        ("8M:4M", None), ("8M", MemlockLimit(8 * MIB, 8 * MIB))]
    assert settings[0].problem.startswith("soft limit 8M is above hard limit 4M")


@given(st.integers(min_value=0, max_value=RLIM_INFINITY - 1))
def test_any_written_limit_reads_back(size):
    settings = read_limit_settings(LATE, f"[Service]\nLimitMEMLOCK={size}\n")
    assert settings[0].limit == MemlockLimit(size, size)


# --- CapabilityBoundingSet= and AmbientCapabilities= ---------------------------------------------


ALL = list(CAPABILITY_NAMES)


@pytest.mark.parametrize(
    "word, number",
    [("CAP_IPC_LOCK", 14), ("cap_ipc_lock", 14), ("CAP_ipc_LOCK", 14), ("14", 14), ("+14", 14), ("63", 63),
     ("64", None), ("-1", None), ("ipc_lock", None), ("cap_ipc_lock,cap_chown", None), ("", None)],
)
def test_capability_number(word, number):
    assert capability_number(word) == number


@pytest.mark.parametrize(
    "text, names",
    [
        ("CAP_IPC_LOCK", ["cap_ipc_lock"]),
        ("cap_net_bind_service  CAP_IPC_LOCK", ["cap_net_bind_service", "cap_ipc_lock"]),
        ("14 10", ["cap_net_bind_service", "cap_ipc_lock"]),
        ("CAP_BOGUS CAP_NET_RAW", ["cap_net_raw"]),  # unknown names count for nothing
        ("\"CAP_NET_RAW\" 'cap_chown'", ["cap_chown", "cap_net_raw"]),  # quotes go
        ("'cap_ipc_lock cap_chown'", []),  # one quoted word names nothing
        ("cap_chown 'cap_net_raw", ["cap_chown"]),  # an unbalanced quote ends the list
        ("", []),
    ],
)
def test_capability_mask(text, names):
    assert capability_names(capability_mask(text)) == names


# Each row measured with `systemctl show -p CapabilityBoundingSet` in a Debian 12 guest (systemd 252):
# the unit file's line, an early drop-in's, a later drop-in's -> the set systemd ends with.
BOUNDING_252 = [
    ("", "", "", ALL),
    ("", "CAP_IPC_LOCK", "", ["cap_ipc_lock"]),  # a lone line REPLACES the full set
    ("cap_net_bind_service", "CAP_IPC_LOCK", "", ["cap_net_bind_service", "cap_ipc_lock"]),
    ("14 10", "", "", ["cap_net_bind_service", "cap_ipc_lock"]),
    ("~", "CAP_IPC_LOCK", "", ["cap_ipc_lock"]),  # '~' is every capability: still the starting value
    ("~CAP_SYS_ADMIN", "CAP_IPC_LOCK", "", [name for name in ALL if name != "cap_sys_admin"]),
    ("", "CAP_IPC_LOCK", "CAP_NET_BIND_SERVICE", ["cap_net_bind_service", "cap_ipc_lock"]),
    ("", "CAP_IPC_LOCK", "", ["cap_ipc_lock"]),
    ("CAP_NET_RAW", "CAP_IPC_LOCK", "~CAP_IPC_LOCK", ["cap_net_raw"]),
    ("CAP_BOGUS CAP_NET_RAW", "", "", ["cap_net_raw"]),
    ("CAP_BOGUS", "CAP_IPC_LOCK", "", ["cap_ipc_lock"]),  # nothing named: replaced by the empty set
    ("63", "", "", []),
]


@pytest.mark.parametrize("unit_line, early, late, names", BOUNDING_252)
def test_bounding_set_merges_as_systemd_252(unit_line, early, late, names):
    # An empty line is a reset, so only the lines a row has are written.
    sources = [source(path, f"{BOUNDING_KEY}={value}") if value else source(path)
               for path, value in ((UNIT_FILE, unit_line), (EARLY, early), (LATE, late))]
    assert capability_set(sources, BOUNDING_KEY).names == names


def test_an_empty_bounding_line_resets_to_nothing():
    sources = [source(UNIT_FILE, f"{BOUNDING_KEY}=CAP_NET_RAW"), source(EARLY, f"{BOUNDING_KEY}=")]
    assert capability_set(sources, BOUNDING_KEY).names == []
    sources.append(source(LATE, f"{BOUNDING_KEY}=CAP_IPC_LOCK"))  # then added to the empty set
    assert capability_set(sources, BOUNDING_KEY).names == ["cap_ipc_lock"]


def test_ambient_starts_empty_and_adds():
    sources = [source(UNIT_FILE, f"{AMBIENT_KEY}=CAP_NET_RAW"), source(EARLY, f"{AMBIENT_KEY}=CAP_IPC_LOCK")]
    assert capability_set(sources, AMBIENT_KEY).names == ["cap_net_raw", "cap_ipc_lock"]
    sources.append(source(LATE, f"{AMBIENT_KEY}="))
    result = capability_set(sources, AMBIENT_KEY)
    assert result.names == [] and result.sources == (UNIT_FILE, EARLY, LATE)


def test_unrestricted_set_is_every_capability():
    result = capability_set([source(UNIT_FILE, "ExecStart=/bin/true")], BOUNDING_KEY)
    assert result.mask == CAP_ALL and not result.restricted and result.has(IPC_LOCK_BIT)
    assert result.sources == ()


@given(st.integers(min_value=0, max_value=CAP_ALL), st.sampled_from(["CAP_IPC_LOCK", "~CAP_IPC_LOCK", "", "~"]),
       st.booleans())
def test_merge_rules(current, value, bounding):
    initial = CAP_ALL if bounding else 0
    merged = merge_capability_line(current, value, initial)
    named = 0 if value in ("", "~") else IPC_LOCK_BIT
    if named == 0 or current == initial:
        assert merged == (CAP_ALL & ~named if value.startswith("~") else named)
    elif value.startswith("~"):
        assert merged == current & ~IPC_LOCK_BIT
    else:
        assert merged == current | IPC_LOCK_BIT
