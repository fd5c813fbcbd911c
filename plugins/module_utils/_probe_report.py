# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""From the facts gathered about a machine to its report: pure functions and plain records.

The data flows one way: facts (MachineFacts, UnitsFacts, what LXD gave the guest at its start and
would give it now), then what Vault's service gets (systemd's rules, _service_limits), then the
verdict and its sentence (_verdicts), then the record a module returns.

- ``judge_machine()`` is shared by memlock_probe (for each guest) and memlock_facts (inside one).
- ``restart_decision()`` says whether a guest must restart to get what LXD gives now. It compares
  what LXD gave at the guest's start with what it would give now, never PID 1's figure, which
  systemd raised at boot.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import (
    UnitFacts,
    UnitsFacts,
    asked_after_start,
    with_service_limits,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._host_scan import StartLimit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import (
    MachineFacts,
    Pid1Facts,
    ProcessFacts,
    SwapFacts,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._service_limits import service_after_start
from ansible_collections.vault_mlock.lxd.plugins.module_utils._swap import HostSwap
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    MemlockLimit,
    MemlockReport,
    SizeError,
    format_limit,
    parse_limit,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import (
    CONTAINER,
    ERROR,
    RUNNING,
    Required,
    ServiceFacts,
    Verdict,
    VerdictFacts,
    judge,
)

FROZEN = "Frozen"
# Each cluster member's daemon limit as it is now, by member name, as commands run there inherited it.
MemberDaemons = Dict[str, MemlockLimit]
KERNEL_MEMLOCK = "limits.kernel.memlock"
THE_DAEMON = "the LXD daemon"


@dataclass(frozen=True)
class InstanceRecord:
    """What the instances listing says about one instance."""

    name: str
    project: str
    type: str
    status: str
    location: str
    privileged: bool
    limits_kernel_memlock: Optional[str]

    @classmethod
    def from_api(cls, data: dict, project: str) -> InstanceRecord:
        config = data.get("expanded_config") or {}
        return cls(
            name=data["name"],
            project=data.get("project") or project,
            type=data.get("type") or CONTAINER,
            status=data.get("status") or "",
            location=data.get("location") or "",
            privileged=str(config.get("security.privileged", "false")).lower() == "true",
            limits_kernel_memlock=config.get("limits.kernel.memlock"),
        )

    @property
    def monitor_name(self) -> str:
        """The name its [lxc monitor] process carries: PROJECT_NAME outside the default project."""
        return self.name if self.project == "default" else f"{self.project}_{self.name}"


@dataclass(frozen=True)
class DaemonFacts:
    """The LXD daemon that answered: its PID, cluster member name and (when local) its memlock limit."""

    pid: Optional[int]
    server_name: str
    clustered: bool
    local: bool
    memlock: Optional[MemlockReport]
    can_raise: Optional[bool] = None  # CAP_SYS_RESOURCE, which a privileged guest's systemd inherits
    physical_memory: Optional[int] = None  # the host's MemTotal, which systemd scales PID 1's limit by


@dataclass(frozen=True)
class Gathered:
    """What was read about one running guest, before any judgement."""

    source: Optional[str] = None  # "proc" or "exec"
    facts: Optional[MachineFacts] = None
    units: Optional[UnitsFacts] = None
    units_not_asked: str = ""
    at_start: Optional[StartLimit] = None
    exec_memlock: Optional[MemlockLimit] = None  # an exec'd command's limit (what the daemon hands out now)
    error: Optional[str] = None

    def but(self, **changes) -> Gathered:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class LxdLimit:
    """A memlock limit LXD gives a guest, and where it comes from (limits.kernel.memlock or the LXD daemon)."""

    memlock: MemlockReport
    source: str


@dataclass(frozen=True)
class InstanceReport:
    name: str
    project: str
    type: str
    status: str
    location: str
    privileged: Optional[bool]
    limits_kernel_memlock: Optional[str]
    source: Optional[str]  # "proc" (read through the host's /proc), "exec" (read inside the guest) or None
    in_user_namespace: Optional[bool]
    lxd_at_start: Optional[LxdLimit]  # what LXD gave the guest when it started
    lxd_now: Optional[LxdLimit]  # what LXD would give it if it started now
    pid1: Optional[Pid1Facts]
    processes: List[ProcessFacts]
    units: List[UnitFacts]
    service: Optional[ServiceFacts]  # what Vault's service gets: the figure the verdict rests on
    swap: Optional[SwapFacts]  # the host's swap, as read for servers that lock nothing; None when not read
    restart_required: bool
    restart_reason: str
    verdict: str
    message: str


@dataclass(frozen=True)
class ProbeReport:
    endpoint: str
    project: str
    daemon: DaemonFacts
    instances: List[InstanceReport]
    summary: Dict[str, int] = field(default_factory=dict)


def parse_kernel_memlock(value: Optional[str]) -> Optional[MemlockLimit]:
    """limits.kernel.memlock (bytes, 'unlimited' or SOFT:HARD) as a limit; None when unset or unreadable."""
    if value is None or not str(value).strip():
        return None
    try:
        return parse_limit(str(value), KERNEL_MEMLOCK)
    except SizeError:
        return None


def can_raise(facts: MachineFacts) -> bool:
    """Whether PID 1 (and so a service's process) may raise a hard limit: CAP_SYS_RESOURCE outside a user namespace."""
    return facts.pid1.cap_sys_resource and not facts.in_user_namespace


def judge_machine(subject: str, kind: str, facts: MachineFacts, units: Optional[UnitsFacts],
                  process_names: Sequence[str], unit_names: Sequence[str], required: Optional[Required],
                  units_not_asked: str = "", **lxd) -> Tuple[Optional[UnitsFacts], Verdict]:
    """What Vault's services get on a running machine, then the verdict; ``lxd`` holds the VerdictFacts of LXD."""
    raise_ok = can_raise(facts)
    pid1 = facts.pid1.memlock.limit
    if units is not None:
        units = with_service_limits(units, pid1, raise_ok)
    swap = facts.swap
    verdict = judge(VerdictFacts(
        host_swap=swap.host if swap is not None else HostSwap(None),
        host_swap_hidden=swap.hidden if swap is not None else "the host's swap was not read",
        subject=subject,
        kind=kind,
        in_user_namespace=facts.in_user_namespace,
        pid1=pid1,
        service_ceiling=None if raise_ok else pid1.hard,
        processes=tuple(facts.processes),
        process_names=tuple(process_names),
        units=units,
        units_not_asked=units_not_asked,
        unit_names=tuple(unit_names),
        required=required,
        **lxd,
    ))
    return units, verdict


@dataclass(frozen=True)
class Starter:
    """Who gives a container its limit at start: the instance's own setting, else the process that starts it."""

    setting: str = KERNEL_MEMLOCK  # lxc.prlimit.memlock for liblxc
    process: str = THE_DAEMON  # the unit that runs lxc-start, for liblxc
    giver: str = "LXD"  # who gave the limit at start, in sentences
    unknown_start: str = "only on its LXD host"  # why what it gave at start cannot be read


LXD_STARTER = Starter()


def lxd_now(record: InstanceRecord, daemon: DaemonFacts, gathered: Gathered,
            member_daemons: Optional[MemberDaemons] = None, starter: Starter = LXD_STARTER) -> Optional[LxdLimit]:
    """What LXD would give the guest if it started now: limits.kernel.memlock, else the daemon's limit."""
    if record.type != CONTAINER:
        return None
    kernel = parse_kernel_memlock(record.limits_kernel_memlock)
    if kernel is not None:
        return LxdLimit(MemlockReport.of(kernel), starter.setting)
    daemon_limit = daemon_memlock(record, daemon, gathered, member_daemons)
    return LxdLimit(MemlockReport.of(daemon_limit), starter.process) if daemon_limit is not None else None


def daemon_memlock(record: InstanceRecord, daemon: DaemonFacts, gathered: Gathered,
                   member_daemons: Optional[MemberDaemons] = None) -> Optional[MemlockLimit]:
    """The limit of the LXD daemon that runs the guest, as it is now; None when it cannot be known here.

    ``member_daemons`` speaks for a guest of another member (or of a remote daemon) that gave no figure
    itself: a stopped one, or one with limits.kernel.memlock.
    """
    same_member = not daemon.clustered or not record.location or record.location == daemon.server_name
    if daemon.memlock is not None and same_member:
        return daemon.memlock.limit
    # A command run inside the guest inherits its daemon's limit (limits.kernel.memlock aside).
    if gathered.exec_memlock is not None and record.limits_kernel_memlock is None:
        return gathered.exec_memlock
    return (member_daemons or {}).get(record.location)


def _spell(limit: LxdLimit) -> str:
    return f"{format_limit(limit.memlock.limit)} from {limit.source}"


def restart_decision(record: InstanceRecord, daemon: DaemonFacts, at_start: Optional[StartLimit],
                     now: Optional[LxdLimit], pid1: Optional[Pid1Facts],
                     in_user_namespace: Optional[bool], starter: Starter = LXD_STARTER) -> Tuple[bool, str]:
    """(restart_required, reason): whether a restart of this running guest would give it another limit."""
    if record.type != CONTAINER:
        return False, "a virtual machine's memlock limit is set inside it, not by LXD"
    if record.status != RUNNING:
        return False, f"it is {record.status.lower() or 'not running'}"
    if daemon.clustered and record.location and record.location != daemon.server_name:
        return False, f"it runs on cluster member {record.location}, whose own run decides"
    if now is None:
        return False, "what LXD would give it now is unknown here (the LXD daemon's limit cannot be read)"
    if at_start is not None:
        started = LxdLimit(MemlockReport.of(at_start.memlock), at_start.source)
        if at_start.memlock == now.memlock.limit:
            return False, f"it started with {_spell(started)}, which a start now gives too"
        return True, f"it started with {_spell(started)}; a start now gives {_spell(now)}"
    # Read from inside: an unprivileged guest's PID 1 keeps the hard limit LXD gave it (systemd raises only
    # its soft limit there); the soft limit LXD gave cannot be seen.
    if pid1 is not None and in_user_namespace and pid1.memlock.hard_bytes != now.memlock.hard_bytes:
        return True, (f"its PID 1 has the hard limit {pid1.memlock.systemd_value.split(':')[-1]} {starter.giver} gave "
                      f"it at start; a start now gives {_spell(now)}")
    return False, (f"what {starter.giver} gave it at start cannot be read from here ({starter.unknown_start}); its "
                   "PID 1's hard limit matches what a start now gives")


def _after_start(record: InstanceRecord, daemon: DaemonFacts, gathered: Gathered,
                 now: Optional[LxdLimit]) -> Optional[MemlockLimit]:
    """What Vault's service gets after the guest's next start, by systemd's rules."""
    if now is None:
        return None
    facts = gathered.facts
    raise_ok = can_raise(facts) if facts is not None else bool(record.privileged and daemon.can_raise)
    return service_after_start(now.memlock.limit, raise_ok, daemon.physical_memory or 0,
                               asked_after_start(gathered.units))


def build_report(name: str, project: str, record: Optional[InstanceRecord], gathered: Optional[Gathered],
                 daemon: DaemonFacts, process_names: Sequence[str], unit_names: Sequence[str],
                 required: Optional[Required], member_daemons: Optional[MemberDaemons] = None,
                 starter: Starter = LXD_STARTER) -> InstanceReport:
    """One guest's report from its facts; ``member_daemons`` as daemon_memlock() takes it."""
    if record is None:
        return InstanceReport(
            name=name, project=project, type="", status="", location="", privileged=None,
            limits_kernel_memlock=None, source=None, in_user_namespace=None, lxd_at_start=None, lxd_now=None,
            pid1=None, processes=[], units=[], service=None, swap=None, restart_required=False,
            restart_reason="no such instance", verdict=ERROR,
            message=f"guest {name}: no such instance in project {project!r}")
    gathered = gathered or Gathered()
    facts = gathered.facts
    now = lxd_now(record, daemon, gathered, member_daemons, starter)
    at_start = gathered.at_start
    restart, reason = restart_decision(record, daemon, at_start, now, facts.pid1 if facts else None,
                                       facts.in_user_namespace if facts else None, starter)
    # A running guest whose restart would change nothing cannot be helped by one.
    after = _after_start(record, daemon, gathered, now) if restart or record.status not in (RUNNING, FROZEN) else None
    lxd = dict(status=record.status, error=gathered.error, after_start=after,
               after_start_source=now.source if now else "",
               limits_kernel_memlock=parse_kernel_memlock(record.limits_kernel_memlock),
               daemon_memlock=daemon_memlock(record, daemon, gathered, member_daemons),
               starter="" if starter == LXD_STARTER else starter.process)
    units = gathered.units
    if facts is not None and gathered.error is None:
        units, verdict = judge_machine(f"guest {name}", record.type, facts, units, process_names, unit_names,
                                       required, units_not_asked=gathered.units_not_asked, **lxd)
    else:
        verdict = judge(VerdictFacts(subject=f"guest {name}", kind=record.type, process_names=tuple(process_names),
                                     unit_names=tuple(unit_names), required=required, **lxd))
    return InstanceReport(
        name=name,
        project=record.project,
        type=record.type,
        status=record.status,
        location=record.location,
        privileged=record.privileged,
        limits_kernel_memlock=record.limits_kernel_memlock,
        source=gathered.source,
        in_user_namespace=facts.in_user_namespace if facts else None,
        lxd_at_start=LxdLimit(MemlockReport.of(at_start.memlock), at_start.source) if at_start else None,
        lxd_now=now,
        pid1=facts.pid1 if facts else None,
        processes=list(facts.processes) if facts else [],
        units=list(units.units) if units is not None else [],
        service=verdict.service,
        swap=facts.swap if facts else None,
        restart_required=restart,
        restart_reason=reason,
        verdict=verdict.verdict,
        message=verdict.message,
    )
