# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._host_scan import StartLimit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import MachineFacts, Pid1Facts
from ansible_collections.vault_mlock.lxd.plugins.module_utils._probe_report import (
    DaemonFacts,
    Gathered,
    InstanceRecord,
    LxdLimit,
    build_report,
    judge_machine,
    lxd_now,
    parse_kernel_memlock,
    restart_decision,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, MemlockReport
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import MACHINE

KIB = 1024
MIB = 1024 * KIB


def lim(soft, hard=None):
    return MemlockLimit(soft, soft if hard is None else hard)


def record(name="g1", status="Running", type_="container", location="none", kernel=None, privileged=False):
    return InstanceRecord(name, "default", type_, status, location, privileged, kernel)


def daemon(memlock=lim(8 * MIB), clustered=False, server_name="node1"):
    return DaemonFacts(pid=1, server_name=server_name, clustered=clustered, local=memlock is not None,
                       memlock=MemlockReport.of(memlock) if memlock else None, can_raise=False,
                       physical_memory=24 << 30)


def pid1(soft, hard=None):
    return Pid1Facts(host_pid=100, memlock=MemlockReport.of(lim(soft, hard)), cap_sys_resource=True)


def now(limit, source="the LXD daemon"):
    return LxdLimit(MemlockReport.of(limit), source)


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("", None),
        ("65536", MemlockLimit(65536, 65536)),
        ("unlimited", MemlockLimit(None, None)),
        ("65536:131072", MemlockLimit(65536, 131072)),
        ("lots", None),
    ],
)
def test_parse_kernel_memlock(value, expected):
    assert parse_kernel_memlock(value) == expected


def test_instance_record_from_api():
    data = {"name": "web", "status": "Running", "type": "container", "location": "none", "project": "prod",
            "expanded_config": {"security.privileged": "true", "limits.kernel.memlock": "65536"}}
    expected = InstanceRecord("web", "prod", "container", "Running", "none", True, "65536")
    assert InstanceRecord.from_api(data, "prod") == expected
    assert InstanceRecord.from_api(data, "prod").monitor_name == "prod_web"
    assert InstanceRecord.from_api({"name": "g1"}, "default").monitor_name == "g1"


SOFT_HARD = lim(256 * KIB, 4 * MIB)

RESTARTS = [
    # (id, record, daemon, at_start, now, pid1, in_user_namespace, required, reason)
    ("soft below hard, started as it would start now: PID 1's raised figure does not count",
     record(kernel="262144:4194304"), daemon(), StartLimit(SOFT_HARD, "limits.kernel.memlock"),
     now(SOFT_HARD, "limits.kernel.memlock"), pid1(4 * MIB), True, False,
     "it started with 256K:4M from limits.kernel.memlock, which a start now gives too"),
    ("the daemon was raised since the start", record(), daemon(lim(4 * MIB)),
     StartLimit(lim(512 * KIB), "the LXD daemon"), now(lim(4 * MIB)), pid1(512 * KIB), True, True,
     "it started with 512K from the LXD daemon; a start now gives 4M from the LXD daemon"),
    ("limits.kernel.memlock set since the start", record(kernel="2097152"), daemon(),
     StartLimit(lim(8 * MIB), "the LXD daemon"), now(lim(2 * MIB), "limits.kernel.memlock"), pid1(8 * MIB), True,
     True, "it started with 8M from the LXD daemon; a start now gives 2M from limits.kernel.memlock"),
    ("a privileged guest whose systemd raised PID 1 past everything", record(privileged=True), daemon(),
     StartLimit(lim(8 * MIB), "the LXD daemon"), now(lim(8 * MIB)), pid1(3 << 30), False, False,
     "it started with 8M from the LXD daemon, which a start now gives too"),
    ("read from inside: PID 1's hard limit is what LXD gave", record(), daemon(None), None,
     now(lim(8 * MIB)), pid1(64 * KIB), True, True,
     "its PID 1 has the hard limit 64K LXD gave it at start; a start now gives 8M from the LXD daemon"),
    ("read from inside, soft below hard: nothing to see", record(), daemon(None), None,
     now(SOFT_HARD, "limits.kernel.memlock"), pid1(4 * MIB), True, False,
     "what LXD gave it at start cannot be read from here (only on its LXD host); its PID 1's hard limit matches "
     "what a start now gives"),
    ("another cluster member's guest", record(location="node2"), daemon(clustered=True), None, now(lim(MIB)),
     pid1(64 * KIB), True, False, "it runs on cluster member node2, whose own run decides"),
    ("a virtual machine", record(type_="virtual-machine"), daemon(), None, None, pid1(MIB), False, False,
     "a virtual machine's memlock limit is set inside it, not by LXD"),
    ("a stopped guest", record(status="Stopped"), daemon(), None, now(lim(MIB)), None, None, False, "it is stopped"),
    ("nothing known about now", record(), daemon(None), StartLimit(lim(MIB), "the LXD daemon"), None, pid1(MIB),
     True, False, "what LXD would give it now is unknown here (the LXD daemon's limit cannot be read)"),
]


@pytest.mark.parametrize("rec, dmn, at_start, now_, pid1_, userns, required, reason",
                         [case[1:] for case in RESTARTS], ids=[case[0] for case in RESTARTS])
def test_restart_decision(rec, dmn, at_start, now_, pid1_, userns, required, reason):
    assert restart_decision(rec, dmn, at_start, now_, pid1_, userns) == (required, reason)


def test_lxd_now():
    assert lxd_now(record(kernel="65536"), daemon(), Gathered()).source == "limits.kernel.memlock"
    assert lxd_now(record(), daemon(), Gathered()) == now(lim(8 * MIB))
    # Another member: what a command run inside got from its daemon.
    assert lxd_now(record(location="n2"), daemon(clustered=True), Gathered(exec_memlock=lim(MIB))) == now(lim(MIB))
    assert lxd_now(record(location="n2"), daemon(clustered=True), Gathered()) is None
    assert lxd_now(record(type_="virtual-machine"), daemon(), Gathered()) is None


def test_build_report_of_a_missing_instance():
    report = build_report(name="ghost", project="p", record=None, gathered=None, daemon=daemon(),
                          process_names=("vault",), unit_names=("vault.service",), required=None)
    assert (report.verdict, report.message) == ("error", "guest ghost: no such instance in project 'p'")
    assert report.restart_required is False


def test_a_running_guest_that_a_restart_would_not_change_is_never_restart_pending():
    """PID 1 shows 4M:4M, LXD gave 256K:4M and gives that again: no restart, whatever the verdict."""
    facts = MachineFacts(in_user_namespace=True, pid1=pid1(4 * MIB), processes=[])
    gathered = Gathered(source="proc", facts=facts, at_start=StartLimit(SOFT_HARD, "limits.kernel.memlock"),
                        units_not_asked="no units")
    report = build_report(name="g1", project="default", record=record(kernel="262144:4194304"),
                          gathered=gathered, daemon=daemon(), process_names=("vault",), unit_names=(),
                          required=None)
    assert report.restart_required is False
    assert report.lxd_at_start == LxdLimit(MemlockReport.of(SOFT_HARD), "limits.kernel.memlock")
    assert report.pid1.memlock.systemd_value == "4M"


def test_judge_machine_resolves_what_units_get():
    from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import UnitFacts, UnitsFacts

    asked = MemlockReport.of(lim(None))
    units = UnitsFacts(True, MemlockReport.of(lim(8 * MIB)), [UnitFacts(
        name="vault.service", load_state="loaded", active_state="inactive", sub_state="dead", result="success",
        restarts=0, exit_status=0, asked=asked)])
    unprivileged = MachineFacts(in_user_namespace=True, pid1=pid1(4 * MIB), processes=[])
    resolved, verdict = judge_machine("this machine", MACHINE, unprivileged, units, ("vault",), ("vault.service",),
                                      None)
    assert resolved.units[0].memlock.systemd_value == "4M"
    assert verdict.verdict == "finite_limit"
    privileged = MachineFacts(in_user_namespace=False, pid1=pid1(4 * MIB), processes=[])
    resolved, verdict = judge_machine("this machine", MACHINE, privileged, units, ("vault",), ("vault.service",),
                                      None)
    assert resolved.units[0].memlock.systemd_value == "infinity"  # CAP_SYS_RESOURCE outside a user namespace
    assert verdict.verdict == "ok"
