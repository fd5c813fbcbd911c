# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.filter.memlock import FilterModule, lxd_memlock, memlock_problems
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import RLIM_INFINITY


@pytest.mark.parametrize(
    "limit, expected",
    [
        ("8M", "8388608"),
        ("256K", "262144"),
        ("4194304", "4194304"),
        ("0", "0"),
        ("1G", "1073741824"),
        ("infinity", "unlimited"),
        ("unlimited", "unlimited"),
        ("64K:1G", "65536:1073741824"),
        ("8M:infinity", "8388608:unlimited"),
        ("4M:4M", "4194304"),
        (" 512K ", "524288"),
        (1048576, "1048576"),
    ],
)
def test_lxd_memlock_turns_systemd_sizes_into_lxd_values(limit, expected):
    assert lxd_memlock(limit) == expected


@pytest.mark.parametrize(
    "limit, words",
    [
        ("", ["empty"]),
        ("8MB", ["not a size", "K, M, G"]),
        ("lots", ["not a size"]),
        ("1G:1M", ["soft limit", "above hard limit"]),
        ("1:2:3", ["more than one ':'"]),
    ],
)
def test_lxd_memlock_refuses_what_is_not_a_size(limit, words):
    with pytest.raises(AnsibleFilterError) as caught:
        lxd_memlock(limit, "lxd_host_memlock_limit")
    message = str(caught.value)
    assert message.startswith("lxd_host_memlock_limit: ")
    for word in words:
        assert word in message


def test_the_failure_names_limits_kernel_memlock_by_default():
    with pytest.raises(AnsibleFilterError, match=r"^limits\.kernel\.memlock: "):
        lxd_memlock("huge")


def test_filter_module_offers_its_filters_under_their_names():
    assert FilterModule().filters() == {"lxd_memlock": lxd_memlock, "memlock_problems": memlock_problems}


def test_lxd_memlock_reads_sizes_as_systemd():
    assert lxd_memlock("1G 512M") == "1610612736"
    with pytest.raises(AnsibleFilterError, match="it ends in white space"):
        lxd_memlock("4M : 8M")


# --- memlock_problems ----------------------------------------------------------------------------


def test_memlock_problems_names_each_bad_limit():
    problems = memlock_problems([
        {"option": "lxd_host_memlock_limit", "value": "12Q"},
        {"option": "lxd_host_instance_memlock[vault]", "value": "8M"},
        {"option": "lxd_host_profile_memlock[default]", "value": "-1"},
        {"option": "lxd_host_profile_memlock[other]", "value": None},
        {"option": "lxd_host_instance_memlock[x]", "value": ""},
    ])
    assert len(problems) == 2
    assert problems[0].startswith("lxd_host_memlock_limit: '12Q' is not a size")
    assert problems[1].startswith("lxd_host_profile_memlock[default]: '-1' is not a size")
    assert all("K, M, G" in problem for problem in problems)


def test_memlock_problems_names_each_bad_limit_of_a_mapping_by_the_variable():
    problems = memlock_problems({"vault": "lots", "ok": "8M", "unset": None}, "lxd_host_instance_memlock")
    assert len(problems) == 1 and problems[0].startswith("lxd_host_instance_memlock[vault]: 'lots' is not a size")
    assert memlock_problems({}, "lxd_host_profile_memlock") == []


def test_memlock_problems_none_when_all_good():
    assert memlock_problems([{"option": "a", "value": "infinity"}, {"option": "b", "value": 65536}]) == []
    assert memlock_problems([]) == []


@pytest.mark.parametrize("settings", ["8M", [{"value": "8M"}], ["8M"]])
def test_memlock_problems_refuses_other_shapes(settings):
    with pytest.raises(AnsibleFilterError, match="memlock_problems: "):
        memlock_problems(settings)


@given(st.integers(min_value=0, max_value=RLIM_INFINITY - 1))
def test_bytes_stay_bytes(size):
    assert lxd_memlock(str(size)) == str(size)


@given(st.integers(min_value=0, max_value=2**30), st.sampled_from(["K", "M", "G"]))
def test_suffixes_are_powers_of_1024(number, suffix):
    factor = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[suffix]
    assert lxd_memlock(f"{number}{suffix}") == str(number * factor)
