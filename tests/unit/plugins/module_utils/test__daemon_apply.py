# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from _daemon_host import (
    KIB,
    MIB,
    SHOW_DEB,
    SHOW_SIGNAL_RELOAD,
    SHOW_SNAP,
    FakeHost,
    show_text,
)
from _host_proc import HostProc

from ansible_collections.vault_mlock.lxd.plugins.module_utils._daemon_apply import DaemonApplyError, DaemonHost, apply_limit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._daemon_decide import (
    DEFERRED,
    RAISED_LIVE,
    RELOADED,
    RESTARTED,
    UNCHANGED,
    daemon_pids,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, parse_limit

L = parse_limit


# ---- acting, on a simulated host of each flavour ---------------------------------------------

def test_deb_soft_raise_is_live_and_keeps_every_pid():
    host = FakeHost("deb", MemlockLimit(512 * KIB, 8 * MIB), loaded=L("8M"))
    before = host.instance_pids()
    outcome = apply_limit(host, "lxd.service", L("8M"))
    assert outcome.decision.action == RAISED_LIVE and outcome.changed
    assert outcome.daemon_pid == outcome.daemon_pid_before == host.daemon_pid
    assert outcome.limit_before == L("512K:8M") and outcome.limit_after == L("8M")
    assert host.acts() == [("prlimit", host.daemon_pid, L("8M"))]
    assert host.instance_pids() == before
    # Running guests keep what they started with; a guest started now gets the new limit.
    assert {limit for _pid, limit in host.instances.values()} == {L("512K:8M")}
    host.start_guest("vault-c")
    assert host.instances["vault-c"][1] == L("8M")
    assert outcome.persistent


def test_deb_hard_raise_without_capability_restarts_and_keeps_instances():
    host = FakeHost("deb", L("2M"), loaded=L("8M"))
    before, old_pid = host.instance_pids(), host.daemon_pid
    outcome = apply_limit(host, "lxd.service", L("8M"))
    assert outcome.decision.action == RESTARTED and outcome.decision.keeps_instances
    assert [call[0] for call in host.acts()] == ["restart", "wait-ready"]
    assert outcome.daemon_pid != old_pid and outcome.limit_after == L("8M")
    assert host.instance_pids() == before


def test_hard_raise_with_capability_is_live():
    host = FakeHost("deb", L("2M"), loaded=L("8M"), can_raise=True)
    outcome = apply_limit(host, "lxd.service", L("8M"))
    assert outcome.decision.action == RAISED_LIVE and outcome.can_raise_hard
    assert [call[0] for call in host.acts()] == ["prlimit"]


def test_eperm_despite_capability_falls_back_to_restart():
    host = FakeHost("deb", L("2M"), loaded=L("8M"), can_raise=True, kernel_allows_hard=False)
    outcome = apply_limit(host, "lxd.service", L("8M"))
    assert outcome.hard_raise_refused and outcome.decision.action == RESTARTED
    assert "refused by the kernel (EPERM)" in outcome.decision.reason
    assert [call[0] for call in host.acts()] == ["prlimit", "restart", "wait-ready"]


def test_eperm_on_a_change_that_needs_no_capability_fails():
    host = FakeHost("deb", L("2M"), loaded=L("8M"))

    def refuse(pid, limit):
        raise PermissionError(1, "Operation not permitted")
    host.set_limit = refuse
    with pytest.raises(DaemonApplyError, match="refused although its hard limit does not grow"):
        apply_limit(host, "lxd.service", L("1M"))


def test_snap_hard_raise_without_capability_reloads_never_restarts():
    """The snap's restart runs daemon.stop as a host shutdown: every instance goes down. Only the
    reload may give the daemon a new hard limit without stopping them."""
    host = FakeHost("snap", L("2M"), files=L("8M"), restart_delay=1.5)
    before, old_daemon, old_main = host.instance_pids(), host.daemon_pid, host.main_pid
    outcome = apply_limit(host, "snap.lxd.daemon.service", L("8M"))
    assert outcome.decision.action == RELOADED
    assert ("restart", "snap.lxd.daemon.service") not in host.calls
    assert [call[0] for call in host.acts()] == ["daemon-reload", "reload", "wait-ready"]
    assert host.instance_pids() == before
    assert outcome.daemon_pid == host.daemon_pid != old_daemon and host.main_pid != old_main
    assert outcome.limit_after == L("8M") and outcome.daemon_reloaded


def test_snap_soft_raise_is_live_on_the_lxd_process_not_daemon_start():
    host = FakeHost("snap", L("512K:8M"), loaded=L("8M"))
    outcome = apply_limit(host, "snap.lxd.daemon.service", L("8M"))
    assert outcome.decision.action == RAISED_LIVE
    assert host.acts() == [("prlimit", host.daemon_pid, L("8M"))] and host.daemon_pid != host.main_pid


def test_snap_without_reload_defers_without_opt_in_and_stops_instances_with_it():
    template = SHOW_SNAP.replace("Restart=on-failure", "Restart=no")
    host = FakeHost("snap", L("2M"), loaded=L("8M"), template=template)
    outcome = apply_limit(host, "snap.lxd.daemon.service", L("8M"))
    assert outcome.decision.action == DEFERRED and host.acts() == [] and len(host.instances) == 2
    outcome = apply_limit(host, "snap.lxd.daemon.service", L("8M"), allow_stopping_instances=True)
    assert outcome.decision.action == RESTARTED and not outcome.decision.keeps_instances
    assert host.instances == {}  # what the opt-in costs
    assert any("allow_stopping_instances=true" in warning for warning in outcome.warnings)


def test_incus_hard_raise_restarts_and_keeps_instances():
    host = FakeHost("incus", L("2M"), loaded=L("8M"))
    before = host.instance_pids()
    outcome = apply_limit(host, "incus.service", L("8M"))
    assert outcome.decision.action == RESTARTED and host.instance_pids() == before
    assert outcome.limit_after == L("8M")


def test_signal_only_reload_is_not_taken_for_a_new_limit():
    template = SHOW_SIGNAL_RELOAD.replace("KillMode=process", "KillMode=control-group")
    host = FakeHost("deb", L("2M"), loaded=L("8M"), template=template)
    outcome = apply_limit(host, "lxd.service", L("8M"))
    assert outcome.decision.action == DEFERRED and host.acts() == []


def test_unchanged_and_deferred_touch_nothing():
    host = FakeHost("deb", L("8M"))
    assert apply_limit(host, "lxd.service", L("8M")).decision.action == UNCHANGED
    host = FakeHost("deb", L("2M"), loaded=L("4M"))
    outcome = apply_limit(host, "lxd.service", L("8M"))
    assert outcome.decision.action == DEFERRED and not outcome.changed and host.acts() == []
    host = FakeHost("deb", L("2M"), running=False)
    outcome = apply_limit(host, "lxd.service", L("8M"))
    assert outcome.decision.action == DEFERRED and outcome.daemon_pid is None and "does not run" in outcome.decision.reason


@pytest.mark.parametrize("flavour, running, loaded, files", [
    ("deb", "512K:8M", "8M", "8M"),      # would raise live
    ("deb", "2M", "8M", "8M"),           # would restart
    ("snap", "2M", "8M", "8M"),          # would reload
    ("incus", "2M", "8M", "8M"),         # would restart
])
def test_check_mode_changes_nothing(flavour, running, loaded, files):
    host = FakeHost(flavour, L(running), loaded=L(loaded), files=L(files))
    unit = {"deb": "lxd.service", "snap": "snap.lxd.daemon.service", "incus": "incus.service"}[flavour]
    before = (host.main_pid, host.daemon_pid, dict(host.limits), host.instance_pids())
    outcome = apply_limit(host, unit, L("8M"), check_mode=True)
    assert outcome.changed and outcome.decision.action in (RAISED_LIVE, RESTARTED, RELOADED)
    assert host.acts() == []
    assert (host.main_pid, host.daemon_pid, dict(host.limits), host.instance_pids()) == before
    assert outcome.limit_after == L(running)


def test_check_mode_runs_no_daemon_reload_and_says_it_judges_by_the_loaded_unit():
    host = FakeHost("snap", L("2M"), loaded=L("2M"), files=L("8M"))
    outcome = apply_limit(host, "snap.lxd.daemon.service", L("8M"), check_mode=True)
    assert host.acts() == [] and not outcome.daemon_reloaded
    assert outcome.decision.action == DEFERRED and "LimitMEMLOCK=2M" in outcome.decision.reason
    assert any("check mode judges by the loaded ones" in warning for warning in outcome.warnings)


def test_wanted_defaults_to_the_units_loaded_limit():
    host = FakeHost("deb", L("512K:8M"), loaded=L("8M"))
    outcome = apply_limit(host, "lxd.service", None)
    assert outcome.wanted == L("8M") and outcome.decision.action == RAISED_LIVE


def test_live_raise_beyond_the_unit_is_not_persistent():
    host = FakeHost("deb", L("512K:8M"), loaded=L("512K:8M"))
    outcome = apply_limit(host, "lxd.service", L("8M"))
    assert outcome.decision.action == RAISED_LIVE and not outcome.persistent
    assert any("until it restarts" in warning and "LimitMEMLOCK=512K:8M" in warning for warning in outcome.warnings)
    assert not apply_limit(FakeHost("deb", L("512K:8M"), loaded=L("8M")), "lxd.service", L("8M")).warnings


def test_a_daemon_that_never_comes_back_times_out():
    host = FakeHost("snap", L("2M"), loaded=L("8M"), restart_delay=1000)
    with pytest.raises(DaemonApplyError, match="did not run a new daemon within 5 seconds"):
        apply_limit(host, "snap.lxd.daemon.service", L("8M"), timeout=5)


def test_a_daemon_back_on_another_limit_fails():
    host = FakeHost("deb", L("2M"), loaded=L("8M"))
    host.ceiling = 4 * MIB  # systemd lowers what the restart gives, unforeseen by the decision
    host.systemd_ceiling = lambda: None
    with pytest.raises(DaemonApplyError, match="runs with 4M after 'restarted', not 8M"):
        apply_limit(host, "lxd.service", L("8M"))


def test_unit_not_loaded_fails():
    host = FakeHost("deb", L("8M"))
    host.template = SHOW_DEB.replace("LoadState=loaded", "LoadState=not-found")
    with pytest.raises(DaemonApplyError, match="unit: lxd.service is not a loaded unit"):
        apply_limit(host, "lxd.service", L("8M"))


# ---- DaemonHost on a /proc tree and a recorded systemctl -------------------------------------

def test_daemon_host_reads_proc(tmp_path):
    proc = HostProc(tmp_path / "proc")
    proc.add(900, "daemon.start", cmdline="/bin/sh\0/snap/lxd/current/commands/daemon.start", limit=(2 * MIB,))
    proc.add(950, "lxd", ppid=900, cmdline="lxd\0--logfile\0/var/snap/lxd/common/lxd/logs/lxd.log",
             limit=(512 * KIB, 8 * MIB))
    proc.add(1, "systemd", ppid=0, cmdline="/sbin/init", limit=(8 * MIB,), cap_eff=0x1FFFFFFFFFF)
    host = DaemonHost(lambda argv: (0, "", ""), "systemctl", str(tmp_path / "proc"))
    assert daemon_pids(900, host.processes()) == [950]
    assert host.read_limit(950) == L("512K:8M")
    # PID 1 in a user namespace cannot go past its hard limit: that is the ceiling.
    assert host.systemd_ceiling() == 8 * MIB


def test_daemon_host_systemctl_calls_and_failures():
    calls = []

    def run(argv):
        calls.append(list(argv))
        if argv[1] == "restart":
            return 1, "", "Job for lxd.service failed."
        return 0, show_text(SHOW_DEB, 231, L("8M")), ""
    host = DaemonHost(run, "/bin/systemctl")
    assert host.show("lxd.service").main_pid == 231
    assert calls[0][:2] == ["/bin/systemctl", "show"] and calls[0][-1] == "lxd.service"
    assert "--property=ExecStop" in calls[0] and "--property=LimitMEMLOCKSoft" in calls[0]
    host.reload("lxd.service")
    host.daemon_reload()
    assert calls[1] == ["/bin/systemctl", "reload", "lxd.service"] and calls[2] == ["/bin/systemctl", "daemon-reload"]
    with pytest.raises(DaemonApplyError, match="'systemctl restart lxd.service' failed with rc=1: Job for"):
        host.restart("lxd.service")


def test_daemon_host_turns_garbled_show_output_into_a_clear_failure():
    host = DaemonHost(lambda argv: (0, "LimitMEMLOCK=lots\nLimitMEMLOCKSoft=1\n", ""))
    with pytest.raises(DaemonApplyError, match="unit: cannot read 'systemctl show lxd.service'"):
        host.show("lxd.service")


def test_set_limit_calls_prlimit(monkeypatch):
    import resource

    seen = []
    monkeypatch.setattr(resource, "prlimit", lambda pid, which, value: seen.append((pid, which, value)))
    DaemonHost(None).set_limit(950, L("8M:infinity"))
    assert seen == [(950, resource.RLIMIT_MEMLOCK, (8 * MIB, resource.RLIM_INFINITY))]


def test_set_limit_on_this_process_for_real():
    """prlimit(2) on ourselves: lowering the soft limit needs no privilege; a hard limit above the
    current one needs CAP_SYS_RESOURCE in the initial user namespace, as the kernel decides."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    host = DaemonHost(None)
    pid = os.getpid()
    try:
        lower = 64 * KIB if soft == resource.RLIM_INFINITY else min(soft, 64 * KIB)
        host.set_limit(pid, MemlockLimit(lower, None if hard == resource.RLIM_INFINITY else hard))
        assert host.read_limit(pid).soft == lower
        can, _why = host.may_raise_hard()
        if hard != resource.RLIM_INFINITY and not can:
            with pytest.raises(PermissionError):
                host.set_limit(pid, MemlockLimit(lower, hard + 4096))
    finally:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (soft, hard))
