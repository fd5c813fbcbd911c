# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from _daemon_host import (
    DAEMON_ARGV,
    MIB,
    SHOW_DEB,
    SHOW_SIGNAL_RELOAD,
    SHOW_SNAP,
    show_text,
)
from _host_proc import PRIVILEGED_MAP, UNPRIVILEGED_MAP

from ansible_collections.vault_mlock.lxd.plugins.module_utils._daemon_decide import (
    DEFERRED,
    RAISED_LIVE,
    RELOADED,
    RESTARTED,
    UNCHANGED,
    ProcessInfo,
    can_raise_hard_limit,
    daemon_pids,
    decide,
    is_daemon_process,
    is_lxd_snap_reload,
    reload_restarts_daemon,
    restart_keeps_instances,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import lower_limit, parse_limit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_show import parse_show

L = parse_limit
NO_CAP = "has CAP_SYS_RESOURCE only in a user namespace, and the kernel checks it in the initial one"
CAP = "has CAP_SYS_RESOURCE in the initial user namespace"
CAP_SYS_RESOURCE_BIT = 1 << 24


def unit_of(template, limit="8M", main_pid=231, state="active"):
    return parse_show(show_text(template, main_pid, L(limit), state), "x.service")


DEB = unit_of(SHOW_DEB)
SNAP = unit_of(SHOW_SNAP)
SIGNAL_RELOAD = unit_of(SHOW_SIGNAL_RELOAD)


# ---- which process is the daemon -------------------------------------------------------------

def test_daemon_pids_deb_main_pid_is_the_daemon():
    processes = [
        ProcessInfo(231, 1, "lxd", DAEMON_ARGV["deb"]),
        ProcessInfo(178, 1, "lxd", ("[lxc monitor] /var/lib/lxd/containers t1",)),
        ProcessInfo(300, 231, "lxd", ("/usr/bin/lxd", "forkstart", "t2", "/var/lib/lxd/containers")),
    ]
    assert daemon_pids(231, processes) == [231]


def test_daemon_pids_snap_is_the_lxd_child_of_daemon_start():
    processes = [
        ProcessInfo(900, 1, "daemon.start", ("/bin/sh", "/snap/lxd/current/commands/daemon.start")),
        ProcessInfo(950, 900, "lxd", DAEMON_ARGV["snap"]),
        ProcessInfo(951, 900, "lxd", ("lxd", "waitready")),
        ProcessInfo(940, 900, "lxcfs", ("lxcfs", "/var/snap/lxd/common/var/lib/lxcfs")),
        ProcessInfo(178, 1, "lxd", ("[lxc monitor] /var/snap/lxd/common/lxd/containers t1",)),
        ProcessInfo(960, 1, "lxd", DAEMON_ARGV["snap"]),  # a nested host's daemon: not ours
    ]
    assert daemon_pids(900, processes) == [950]


@pytest.mark.parametrize("process, expected", [
    (ProcessInfo(1, 0, "lxd", ("lxd",)), True),
    (ProcessInfo(1, 0, "incusd", DAEMON_ARGV["incus"]), True),
    (ProcessInfo(1, 0, "lxd", ("/usr/bin/lxd", "forkexec", "g1")), False),
    (ProcessInfo(1, 0, "lxd", ("[lxc monitor] /var/lib/lxd/containers g1",)), False),
    (ProcessInfo(1, 0, "lxd", ()), False),
    (ProcessInfo(1, 0, "dnsmasq", ("dnsmasq", "--keep-in-foreground")), False),
])
def test_is_daemon_process(process, expected):
    assert is_daemon_process(process) is expected


def test_daemon_pids_of_nothing():
    assert daemon_pids(None, []) == []
    assert daemon_pids(5, []) == []


# ---- capabilities ----------------------------------------------------------------------------

def status_text(cap_eff):
    return f"Name:\tpython3\nPid:\t77\nPPid:\t1\nCapEff:\t{cap_eff:016x}\n"


@pytest.mark.parametrize("cap_eff, uid_map, allowed, why", [
    (0x1FFFFFFFFFF, PRIVILEGED_MAP, True, "initial user namespace"),
    (CAP_SYS_RESOURCE_BIT, PRIVILEGED_MAP, True, "initial user namespace"),
    (0x1FFFFFFFFFF & ~CAP_SYS_RESOURCE_BIT, PRIVILEGED_MAP, False, "lacks CAP_SYS_RESOURCE"),
    (0x1FFFFFFFFFF, UNPRIVILEGED_MAP, False, "only in a user namespace"),  # root in an LXD container
    (0, UNPRIVILEGED_MAP, False, "lacks"),
])
def test_can_raise_hard_limit(cap_eff, uid_map, allowed, why):
    can, reason = can_raise_hard_limit(status_text(cap_eff), uid_map)
    assert can is allowed and why in reason


# ---- judging ---------------------------------------------------------------------------------

def test_systemd_lowers_the_units_limit_to_its_own_hard_limit():
    assert lower_limit(L("infinity"), 8 * MIB) == L("8M")
    assert lower_limit(L("512K:infinity"), 8 * MIB) == L("512K:8M")
    assert lower_limit(L("4M"), 8 * MIB) == L("4M")
    assert lower_limit(L("infinity"), None) == L("infinity")


def test_restart_keeps_instances_from_properties_not_names():
    assert restart_keeps_instances(DEB)[0]
    keeps, why = restart_keeps_instances(SNAP)
    assert not keeps and "ExecStop=" in why and "--command=stop" in why
    # The same deb unit given an ExecStop= by a drop-in is no longer safe to restart.
    with_stop = parse_show(
        show_text(SHOW_DEB, 231, L("8M")) + "ExecStop={ path=/usr/bin/lxd ; argv[]=/usr/bin/lxd shutdown ; "
        "ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }\n",
        "lxd.service")
    assert not restart_keeps_instances(with_stop)[0]
    control_group = parse_show(show_text(SHOW_DEB, 231, L("8M")).replace("KillMode=process", "KillMode=control-group"),
                               "lxd.service")
    keeps, why = restart_keeps_instances(control_group)
    assert not keeps and "KillMode=control-group" in why


def test_reload_restarts_daemon_only_for_the_snaps_reload():
    assert reload_restarts_daemon(SNAP)[0]
    assert not reload_restarts_daemon(DEB)[0]
    reloads, why = reload_restarts_daemon(SIGNAL_RELOAD)
    assert not reloads and "/bin/kill -HUP" in why
    no_restart = parse_show(show_text(SHOW_SNAP, 231, L("8M")).replace("Restart=on-failure", "Restart=no"), "s")
    assert not reload_restarts_daemon(no_restart)[0]
    control_group = parse_show(show_text(SHOW_SNAP, 231, L("8M")).replace("KillMode=process", "KillMode=mixed"), "s")
    assert not reload_restarts_daemon(control_group)[0]


@pytest.mark.parametrize("argv, expected", [
    (("/usr/bin/snap", "run", "--command=reload", "lxd.daemon"), True),
    (("snap", "run", "--command=reload", "lxd_test.daemon"), True),
    (("/usr/bin/snap", "run", "--command=stop", "lxd.daemon"), False),
    (("/usr/bin/snap", "run", "--command=reload", "microk8s.daemon-kubelite"), False),
    (("/bin/kill", "-HUP", "$MAINPID"), False),
    ((), False),
])
def test_is_lxd_snap_reload(argv, expected):
    assert is_lxd_snap_reload(argv) is expected


# The decision table: (id, unit, wanted, daemon now, ceiling, can raise hard, opt-in) -> action.
TABLE = [
    ("same-limit", DEB, "8M", "8M", None, False, False, UNCHANGED),
    ("soft-up-to-hard-no-cap", DEB, "8M", "512K:8M", None, False, False, RAISED_LIVE),
    ("lower-no-cap", DEB, "1M:2M", "8M", None, False, False, RAISED_LIVE),
    ("hard-up-with-cap-deb", DEB, "8M", "2M", None, True, False, RAISED_LIVE),
    ("hard-up-with-cap-snap", SNAP, "8M", "2M", None, True, False, RAISED_LIVE),
    ("hard-up-no-cap-deb-restarts", DEB, "8M", "2M", None, False, False, RESTARTED),
    ("hard-up-no-cap-snap-reloads", SNAP, "8M", "2M", None, False, False, RELOADED),
    ("hard-up-no-cap-snap-reloads-even-with-opt-in", SNAP, "8M", "2M", None, False, True, RELOADED),
    ("hard-up-no-cap-signal-reload-deferred", unit_of(SHOW_SIGNAL_RELOAD.replace(
        "KillMode=process", "KillMode=control-group")), "8M", "2M", None, False, False, DEFERRED),
    ("hard-up-no-cap-signal-reload-opt-in", unit_of(SHOW_SIGNAL_RELOAD.replace(
        "KillMode=process", "KillMode=control-group")), "8M", "2M", None, False, True, RESTARTED),
    ("unit-gives-another-limit", unit_of(SHOW_DEB, "4M"), "8M", "2M", None, False, False, DEFERRED),
    ("infinity-clamped-already-there", unit_of(SHOW_DEB, "infinity"), "infinity", "8M", 8 * MIB, False, False,
     UNCHANGED),
    ("infinity-clamped-soft-up", unit_of(SHOW_DEB, "infinity"), "infinity", "512K:8M", 8 * MIB, False, False,
     RAISED_LIVE),
    ("not-running", unit_of(SHOW_DEB, main_pid=0, state="inactive"), "8M", None, None, False, False, DEFERRED),
]


@pytest.mark.parametrize("unit, wanted, running, ceiling, can_raise, allow, action",
                         [case[1:] for case in TABLE], ids=[case[0] for case in TABLE])
def test_decision_table(unit, wanted, running, ceiling, can_raise, allow, action):
    running_limit = L(running) if running else None
    pid = unit.main_pid if running else None
    decision = decide(unit, L(wanted), running_limit, pid, ceiling, can_raise, CAP if can_raise else NO_CAP, allow)
    assert decision.action == action, decision.reason
    assert decision.keeps_instances is not (action == RESTARTED and "allow_stopping_instances=true" in decision.reason)


def test_snap_without_opt_in_is_never_restarted_when_reload_is_impossible():
    snap_no_reload = parse_show(show_text(SHOW_SNAP, 231, L("8M")).replace("Restart=on-failure", "Restart=no"), "s")
    decision = decide(snap_no_reload, L("8M"), L("2M"), 950, None, False, NO_CAP, False)
    assert decision.action == DEFERRED
    assert "allow_stopping_instances=true" in decision.reason and "--command=stop" in decision.reason
    allowed = decide(snap_no_reload, L("8M"), L("2M"), 950, None, False, NO_CAP, True)
    assert allowed.action == RESTARTED and not allowed.keeps_instances


def test_reasons_name_what_was_judged():
    live = decide(DEB, L("8M"), L("512K:8M"), 231, None, False, NO_CAP, False)
    assert "PID 231" in live.reason and "prlimit(2)" in live.reason and "hard limit does not grow" in live.reason
    restart = decide(DEB, L("8M"), L("2M"), 231, None, False, NO_CAP, False)
    assert "KillMode=process and no ExecStop=" in restart.reason and "CAP_SYS_RESOURCE" in restart.reason
    deferred = decide(unit_of(SHOW_DEB, "4M"), L("8M"), L("2M"), 231, None, False, NO_CAP, False)
    assert "LimitMEMLOCK=4M" in deferred.reason and "memlock_dropin" in deferred.reason
    clamped = decide(unit_of(SHOW_DEB, "infinity"), L("infinity"), L("8M"), 231, 8 * MIB, False, NO_CAP, False)
    assert clamped.target == L("8M") and "lowered to the hard limit 8M" in clamped.reason
