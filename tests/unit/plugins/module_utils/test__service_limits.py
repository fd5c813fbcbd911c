# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""systemd's rules for RLIMIT_MEMLOCK, from src/core/main.c (bump_rlimit_memlock, fallback_rlimit_memlock) and
setrlimit_closest (src/basic/rlimit-util.c), as systemd 252 (Debian 12) and 257 (Debian 13) have them.

The unprivileged cases were measured on real LXD 5.0.2 guests (Debian 12, systemd 252): the truth scenario
checks the same rules against the real systemd again. The privileged cases with CAP_SYS_RESOURCE cannot be
measured where the tests run (no CAP_SYS_RESOURCE anywhere there) and rest on the source alone.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.module_utils._service_limits import (
    DEFAULT_RLIMIT_MEMLOCK,
    HIGH_RLIMIT_MEMLOCK,
    default_service_limit,
    larger,
    pid1_after_boot,
    service_after_start,
    service_limit,
    setrlimit_closest,
    smaller,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, covers

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
INF = None
MEMORY = 24 * GIB  # the lab machine's MemTotal: an eighth is 3 GiB


_SAME = object()


def lim(soft, hard=_SAME):
    return MemlockLimit(soft, soft if hard is _SAME else hard)


def test_systemds_constants():
    assert (HIGH_RLIMIT_MEMLOCK, DEFAULT_RLIMIT_MEMLOCK) == (64 * MIB, 8 * MIB)


@pytest.mark.parametrize("sizes, largest, smallest", [
    ((1, 2), 2, 1), ((INF, 5), INF, 5), ((INF, INF), INF, INF), ((0, 8 * MIB, 3), 8 * MIB, 0)])
def test_larger_and_smaller_rank_no_limit_on_top(sizes, largest, smallest):
    assert (larger(*sizes), smaller(*sizes)) == (largest, smallest)


# --- PID 1 at boot ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "inherited, can_raise, memory, expected",
    [
        # Measured: limits.kernel.memlock=262144:4194304, unprivileged: /proc/1/limits says 4194304 4194304.
        (lim(256 * KIB, 4 * MIB), False, MEMORY, lim(4 * MIB)),
        (lim(512 * KIB), False, MEMORY, lim(512 * KIB)),
        (lim(8 * MIB), False, MEMORY, lim(8 * MIB)),
        # A real host's daemon with infinity: nothing to raise, nothing changes.
        (lim(INF), False, MEMORY, lim(INF)),
        # Soft below an unlimited hard limit: raised to an eighth of the memory, no capability needed.
        (lim(256 * KIB, INF), False, MEMORY, lim(3 * GIB, INF)),
        (lim(256 * KIB, INF), False, 256 * MIB, lim(64 * MIB, INF)),
        # Privileged with CAP_SYS_RESOURCE: past the hard limit, to max(64 MiB, memory / 8).
        (lim(512 * KIB), True, MEMORY, lim(3 * GIB)),
        (lim(512 * KIB), True, 256 * MIB, lim(64 * MIB)),
        (lim(256 * KIB, 4 * MIB), True, 128 * MIB, lim(64 * MIB)),
        (lim(16 * GIB), True, MEMORY, lim(16 * GIB)),  # already above: systemd's shortcut
    ],
)
def test_pid1_after_boot(inherited, can_raise, memory, expected):
    assert pid1_after_boot(inherited, can_raise, memory) == expected


@given(st.integers(min_value=0, max_value=1 << 40), st.integers(min_value=0, max_value=1 << 40),
       st.integers(min_value=0, max_value=1 << 40))
def test_pid1_never_loses_what_it_inherited_and_never_passes_the_hard_limit_unprivileged(soft, extra, memory):
    inherited = lim(soft, soft + extra)
    pid1 = pid1_after_boot(inherited, False, memory)
    assert pid1.hard == inherited.hard
    assert covers(pid1.soft, inherited.soft) and covers(pid1.hard, pid1.soft)


# --- what a service gets -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "inherited, expected",
    [
        (lim(256 * KIB, 4 * MIB), lim(8 * MIB)),  # `systemctl show -p DefaultLimitMEMLOCK` there: 8388608
        (lim(16 * MIB), lim(16 * MIB)),
        (lim(256 * KIB, INF), lim(8 * MIB, INF)),
        (lim(INF), lim(INF)),
    ],
)
def test_default_service_limit(inherited, expected):
    assert default_service_limit(inherited) == expected


# Measured in a guest started with limits.kernel.memlock=262144:4194304 (PID 1 then 4M:4M, unprivileged):
# `systemd-run -p LimitMEMLOCK=VALUE` and /proc/self/limits of the service.
MEASURED = [
    (None, lim(4 * MIB)),  # systemd's default 8M, lowered
    (lim(INF), lim(4 * MIB)),
    (lim(MIB), lim(MIB)),
    (lim(512 * KIB, 8 * MIB), lim(512 * KIB, 4 * MIB)),
    (lim(8 * MIB, 16 * MIB), lim(4 * MIB)),
    (lim(2 * MIB, 3 * MIB), lim(2 * MIB, 3 * MIB)),
]


@pytest.mark.parametrize("asked, expected", MEASURED)
def test_service_limit_as_measured_in_an_unprivileged_guest(asked, expected):
    inherited = lim(256 * KIB, 4 * MIB)
    pid1 = pid1_after_boot(inherited, False, MEMORY)
    assert service_limit(asked or default_service_limit(inherited), pid1, False) == expected
    assert service_after_start(inherited, False, MEMORY, asked) == expected


@pytest.mark.parametrize(
    "inherited, asked, expected",
    [
        # A privileged guest's systemd with CAP_SYS_RESOURCE: LimitMEMLOCK=infinity is given as asked.
        (lim(512 * KIB), lim(INF), lim(INF)),
        (lim(512 * KIB), None, lim(8 * MIB)),
        (lim(16 * MIB), None, lim(16 * MIB)),
        (lim(512 * KIB), lim(2 * GIB), lim(2 * GIB)),
    ],
)
def test_service_limit_in_a_privileged_guest_with_cap_sys_resource(inherited, asked, expected):
    assert service_after_start(inherited, True, MEMORY, asked) == expected


def test_setrlimit_closest_lowers_both_values_to_the_hard_limit_only_when_it_must():
    current = lim(4 * MIB)
    assert setrlimit_closest(lim(MIB, 2 * MIB), current, False) == lim(MIB, 2 * MIB)  # lowering is free
    assert setrlimit_closest(lim(MIB, 16 * MIB), current, False) == lim(MIB, 4 * MIB)
    assert setrlimit_closest(lim(INF), current, False) == lim(4 * MIB)
    assert setrlimit_closest(lim(INF), current, True) == lim(INF)
    assert setrlimit_closest(lim(INF), lim(INF), False) == lim(INF)
