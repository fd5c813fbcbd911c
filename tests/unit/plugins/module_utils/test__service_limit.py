# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from _files import put

from ansible_collections.vault_mlock.lxd.plugins.module_utils._service_limit import (
    Ceiling,
    ServiceState,
    decide_restart,
    read_ceiling,
    read_service_state,
    systemd_ceiling,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit

KIB = 1024
MIB = 1024 * KIB
EIGHT_MIB = MemlockLimit(8 * MIB, 8 * MIB)
NO_LIMIT = MemlockLimit(None, None)
FULL_CAPS = 0x1FFFFFFFFFF  # CapEff of root with every capability (the lab's guests show this)
NO_SYS_RESOURCE = FULL_CAPS & ~(1 << 24)
IDENTITY_MAP = "         0          0 4294967295\n"
GUEST_MAP = "         0     100000   10000001\n"


def limits(soft, hard):
    return ("Limit                     Soft Limit           Hard Limit           Units\n"
            f"Max locked memory         {soft:<20} {hard:<20} bytes\n")


def status(pid, cap_effective):
    return f"Name:\tsystemd\nPid:\t{pid}\nPPid:\t0\nCapEff:\t{cap_effective:016x}\nCapBnd:\t{cap_effective:016x}\n"


# --- the ceiling ---------------------------------------------------------------------------------


def test_host_systemd_with_cap_sys_resource_has_no_ceiling():
    ceiling = systemd_ceiling(EIGHT_MIB, FULL_CAPS, pid1_in_user_namespace=False)
    assert ceiling.hard_bytes is None
    assert "CAP_SYS_RESOURCE in the initial user namespace" in ceiling.reason


def test_container_systemd_is_capped_although_capeff_shows_cap_sys_resource():
    """An unprivileged guest's PID 1 has CAP_SYS_RESOURCE in its own namespace only (measured: CapEff 1ffffffffff)."""
    ceiling = systemd_ceiling(MemlockLimit(4 * MIB, 4 * MIB), FULL_CAPS, pid1_in_user_namespace=True)
    assert ceiling == Ceiling(4 * MIB, "systemd (PID 1) runs in a user namespace (a container), where it cannot "
                                       "raise RLIMIT_MEMLOCK past its own hard limit of 4M (4194304 bytes)")


def test_host_systemd_without_cap_sys_resource_is_capped():
    ceiling = systemd_ceiling(EIGHT_MIB, NO_SYS_RESOURCE, pid1_in_user_namespace=False)
    assert ceiling.hard_bytes == 8 * MIB
    assert ceiling.reason.startswith("systemd (PID 1) lacks CAP_SYS_RESOURCE")


def test_capped_systemd_with_unlimited_hard_limit_has_no_ceiling():
    assert systemd_ceiling(NO_LIMIT, NO_SYS_RESOURCE, True).hard_bytes is None


@pytest.mark.parametrize(
    "cap_effective, uid_map, hard, expected",
    [
        (FULL_CAPS, IDENTITY_MAP, 8 * MIB, None),
        (NO_SYS_RESOURCE, IDENTITY_MAP, 8 * MIB, 8 * MIB),
        (FULL_CAPS, GUEST_MAP, 4 * MIB, 4 * MIB),
    ],
)
def test_read_ceiling_from_proc(tmp_path, cap_effective, uid_map, hard, expected):
    put(tmp_path, "/proc/1/limits", limits(hard, hard))
    put(tmp_path, "/proc/1/status", status(1, cap_effective))
    put(tmp_path, "/proc/1/uid_map", uid_map)
    assert read_ceiling(str(tmp_path / "proc")).hard_bytes == expected


def test_read_ceiling_unreadable_says_so(tmp_path):
    ceiling = read_ceiling(str(tmp_path / "proc"))
    assert ceiling.hard_bytes is None and ceiling.reason.startswith("PID 1's limits, capabilities or user namespace")


# --- the decision --------------------------------------------------------------------------------


def state(running=None, ceiling=None, default=EIGHT_MIB, pid=4242):
    return ServiceState(pid if running else None, running, Ceiling(ceiling, "because"), default)


@pytest.mark.parametrize(
    "configured, running, ceiling, start, restart",
    [
        # a normal host: infinity gives infinity
        (NO_LIMIT, EIGHT_MIB, None, NO_LIMIT, True),
        (NO_LIMIT, NO_LIMIT, None, NO_LIMIT, False),
        # a container capped at 8 MiB: infinity gives 8 MiB, and a daemon on 8 MiB needs no restart
        (NO_LIMIT, EIGHT_MIB, 8 * MIB, EIGHT_MIB, False),
        (NO_LIMIT, MemlockLimit(2 * MIB, 2 * MIB), 8 * MIB, EIGHT_MIB, True),
        (MemlockLimit(MIB, None), EIGHT_MIB, 8 * MIB, MemlockLimit(MIB, 8 * MIB), True),
        (MemlockLimit(2 * MIB, 2 * MIB), MemlockLimit(2 * MIB, 2 * MIB), 8 * MIB, MemlockLimit(2 * MIB, 2 * MIB),
         False),
        # not running: nothing to restart
        (NO_LIMIT, None, None, NO_LIMIT, False),
    ],
)
def test_restart_is_required_when_running_differs_from_a_start(configured, running, ceiling, start, restart):
    decision = decide_restart("lxd.service", configured, state(running, ceiling))
    assert decision.start_limit == start
    assert decision.restart_required is restart


def test_lowered_limit_is_warned_with_the_reason():
    decision = decide_restart("lxd.service", NO_LIMIT, state(EIGHT_MIB, 8 * MIB))
    assert decision.warnings == [
        "because: it silently lowers lxd.service's LimitMEMLOCK=infinity to 8M, so LXD guests started by this daemon "
        "get at most 8M (`ulimit -l` 8192); raise the hard limit systemd itself runs with to give more (for a nested "
        "LXD host: its own LXD daemon's LimitMEMLOCK, or its limits.kernel.memlock)"
    ]


def test_not_lowered_no_warning():
    assert decide_restart("vault.service", MemlockLimit(MIB, MIB), state(EIGHT_MIB, 8 * MIB)).warnings == []


@pytest.mark.parametrize(
    "running, ceiling, restart",
    [
        (MemlockLimit(2 * MIB, 2 * MIB), None, True),  # the removed drop-in's 2 MiB: the default is 8 MiB now
        (EIGHT_MIB, None, False),
        (EIGHT_MIB, 4 * MIB, True),  # a capped systemd gives the default lowered to 4 MiB
    ],
)
def test_no_file_sets_the_limit_then_the_default_decides(running, ceiling, restart):
    """state=absent: the unit gets systemd's DefaultLimitMEMLOCK= once the drop-in is gone."""
    decision = decide_restart("lxd.service", None, state(running, ceiling))
    assert decision.restart_required is restart
    assert decision.warnings == []


def test_no_file_and_no_default_decides_nothing():
    decision = decide_restart("lxd.service", None, state(EIGHT_MIB, None, default=None))
    assert (decision.start_limit, decision.restart_required) == (None, False)


# --- reading the running system ------------------------------------------------------------------


class FakeSystemctl:
    def __init__(self, main_pid="4242"):
        self.main_pid = main_pid
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        if "--property=MainPID" in argv:
            return 0, self.main_pid + "\n", ""
        return 0, "DefaultLimitMEMLOCKSoft=8388608\nDefaultLimitMEMLOCK=8388608\n", ""


@pytest.fixture
def machine(tmp_path):
    (tmp_path / "run/systemd/system").mkdir(parents=True)
    put(tmp_path, "/proc/1/limits", limits(4 * MIB, 4 * MIB))
    put(tmp_path, "/proc/1/status", status(1, FULL_CAPS))
    put(tmp_path, "/proc/1/uid_map", GUEST_MAP)
    put(tmp_path, "/proc/4242/limits", limits(2 * MIB, 2 * MIB))
    return tmp_path


def test_read_service_state(machine):
    run = FakeSystemctl()
    result = read_service_state("vault.service", "/bin/systemctl", run, str(machine))
    assert result.main_pid == 4242
    assert result.running == MemlockLimit(2 * MIB, 2 * MIB)
    assert result.ceiling.hard_bytes == 4 * MIB
    assert result.default == EIGHT_MIB


def test_read_service_state_not_running(machine):
    result = read_service_state("vault.service", "/bin/systemctl", FakeSystemctl("0"), str(machine))
    assert (result.main_pid, result.running) == (None, None)


def test_read_service_state_process_gone(machine):
    (machine / "proc/4242/limits").unlink()
    result = read_service_state("vault.service", "/bin/systemctl", FakeSystemctl(), str(machine))
    assert (result.main_pid, result.running) == (4242, None)


@pytest.mark.parametrize("systemctl", [None, "/bin/systemctl"])
def test_read_service_state_without_systemd(tmp_path, systemctl):
    run = FakeSystemctl()
    result = read_service_state("vault.service", systemctl, run, str(tmp_path))
    assert result == ServiceState(None, None, Ceiling(None, "systemd does not run here"), None)
    assert run.calls == []
