# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.filter.memlock import FilterModule, lxd_memlock
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


def test_filter_module_offers_lxd_memlock_under_its_name():
    assert FilterModule().filters() == {"lxd_memlock": lxd_memlock}


@given(st.integers(min_value=0, max_value=RLIM_INFINITY - 1))
def test_bytes_stay_bytes(size):
    assert lxd_memlock(str(size)) == str(size)


@given(st.integers(min_value=0, max_value=2**30), st.sampled_from(["K", "M", "G"]))
def test_suffixes_are_powers_of_1024(number, suffix):
    factor = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[suffix]
    assert lxd_memlock(f"{number}{suffix}") == str(number * factor)
