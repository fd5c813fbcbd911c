# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Whether a machine's Vault can lock its memory: one verdict and one sentence to act on.

judge() is pure: a VerdictFacts in, a Verdict out. It judges what Vault's service gets: the
running process's own limit, or else what systemd gives the service of Vault's unit.

The kernel lets mlockall(MCL_CURRENT|MCL_FUTURE) succeed when the process's whole VmSize fits
under its RLIMIT_MEMLOCK soft limit, or when it holds CAP_IPC_LOCK in the initial user namespace
(a privileged guest). MCL_FUTURE makes every later mapping count too (mm/mmap.c,
mlock_future_ok): a finite limit that fits today kills Vault on the day it grows past it. So
``ok`` means safe: no limit, a capability that counts, or a limit that covers the size the
operator stated as ``required``. A finite limit without a stated size is ``finite_limit``.

A server that does not lock its memory at all (OpenBao, which removed mlock in 2.0; Vault whose
configuration says disable_mlock = true, or -dev) needs no memlock limit: its verdict rests on
swap instead (judge_swap). ``protected``: no swap can take its memory (the host has none, or
memory.swap.max is 0 for its cgroup or one above); ``not_enforced``: its unit sets
MemorySwapMax=0 but nothing enforces it and the host has swap; ``exposed``: the host has swap and
nothing keeps the server out of it; ``unknown``: the host's swap cannot be seen from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import (
    DEFAULT_UNITS,
    UnitFacts,
    UnitsFacts,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import (
    DEFAULT_PROCESS_NAMES,
    OPENBAO_EXEMPTION,
    ProcessFacts,
    lock_exemption,
    unit_lock_exemption,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    MemlockLimit,
    MemlockReport,
    Size,
    covers,
    format_ulimit,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._swap import (
    CGROUP_V1,
    CGROUP_V2,
    ENCRYPTED,
    RAM,
    SWAP_MAX_FILE,
    CgroupSwap,
    HostSwap,
)

OK = "ok"
FINITE_LIMIT = "finite_limit"
TOO_LOW = "too_low"
RESTART_PENDING = "restart_pending"
NOT_RUNNING = "not_running"
ABSENT = "absent"
UNKNOWN = "unknown"
ERROR = "error"
# For a server that does not lock its memory: what keeps it out of swap.
PROTECTED = "protected"
NOT_ENFORCED = "not_enforced"
EXPOSED = "exposed"

# Worst first: the order in which one verdict outweighs another.
VERDICTS = (ERROR, TOO_LOW, NOT_ENFORCED, EXPOSED, RESTART_PENDING, FINITE_LIMIT, UNKNOWN, NOT_RUNNING, ABSENT,
            PROTECTED, OK)
# Verdicts that say Vault's secrets are not safe from swap: it cannot (or one day will not) lock its
# memory, or it does not lock it and swap can take it.
FAILING = (ERROR, TOO_LOW, NOT_ENFORCED, EXPOSED, RESTART_PENDING, FINITE_LIMIT)

CONTAINER = "container"
VIRTUAL_MACHINE = "virtual-machine"
MACHINE = "machine"  # the machine memlock_facts runs on: an LXD guest or not, we cannot tell
RUNNING = "Running"

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


@dataclass(frozen=True)
class Required:
    """The size the operator says Vault must be able to lock; ``size`` None means no limit at all."""

    size: Size


@dataclass(frozen=True)
class ServiceFacts:
    """What Vault's service gets, as the verdict judged it: a running process, or a unit's service."""

    name: str  # 'vault (PID 58)' or 'vault.service'
    source: str  # 'process' (its own /proc limits) or 'unit' (what systemd gives it)
    memlock: Optional[MemlockReport]
    locks_memory: bool = True  # False: the verdict rests on swap, not on this limit


@dataclass(frozen=True)
class Verdict:
    verdict: str
    message: str
    service: Optional[ServiceFacts] = None


@dataclass(frozen=True)
class VerdictFacts:
    """Everything judge() looks at, for one machine."""

    subject: str  # "guest g1", "this machine"
    kind: str = CONTAINER
    status: str = RUNNING
    error: Optional[str] = None
    in_user_namespace: Optional[bool] = None
    pid1: Optional[MemlockLimit] = None  # PID 1's limit now (systemd raised its soft limit at boot)
    service_ceiling: Size = None  # the most a service here can get: PID 1's hard limit, None without one
    processes: Tuple[ProcessFacts, ...] = ()
    process_names: Tuple[str, ...] = DEFAULT_PROCESS_NAMES
    units: Optional[UnitsFacts] = None  # None when the machine's systemd was not asked
    units_not_asked: str = ""  # why not
    unit_names: Tuple[str, ...] = DEFAULT_UNITS
    required: Optional[Required] = None
    # What Vault's service gets once the guest starts (again); None when that cannot be known here.
    after_start: Optional[MemlockLimit] = None
    after_start_source: str = ""  # "limits.kernel.memlock" or "the LXD daemon"
    limits_kernel_memlock: Optional[MemlockLimit] = None  # None when unset
    daemon_memlock: Optional[MemlockLimit] = None  # the LXD daemon's current limit, if known
    # For a plain LXC or Proxmox VE container: the unit whose lxc-start starts it; empty for LXD and Incus.
    starter: str = ""
    # The host's swap, for servers that do not lock their memory; total None when it cannot be seen.
    host_swap: HostSwap = HostSwap(None)
    host_swap_hidden: str = ""  # why the host's swap cannot be seen from where the facts were read

    @property
    def running(self) -> bool:
        return self.status in (RUNNING, "Frozen")


def human_size(size: Size, round_up: bool = False) -> str:
    """'256 KiB', '1.3 GiB', '100 bytes', 'unlimited'. Limits round down, needs round up."""
    if size is None:
        return "unlimited"
    if size < 1024:
        return f"{size} bytes"
    power = 1
    while power < len(_UNITS) and size >= 1024 ** (power + 1):
        power += 1
    unit = _UNITS[power - 1]
    # Integer tenths, so that even exabytes round the right way.
    tenths = -(-size * 10 // 1024**power) if round_up else size * 10 // 1024**power
    if tenths >= 10240 and power < len(_UNITS):
        return f"1 {_UNITS[power]}"  # rounded up into the next unit
    if tenths % 10 == 0:
        return f"{tenths // 10} {unit}"
    return f"{tenths // 10}.{tenths % 10} {unit}"


def need_size(size: Size) -> str:
    """A size something needs, rounded up; 'infinity' (systemd's word) when it needs no limit at all."""
    return "infinity" if size is None else human_size(size, round_up=True)


def may_lock(size: Size) -> str:
    if size is None:
        return "may lock without limit (ulimit -l unlimited)"
    return f"may lock {human_size(size)} (ulimit -l {format_ulimit(size)})"


def worst(verdicts: Iterable[str]) -> str:
    found = set(verdicts)
    for verdict in VERDICTS:
        if verdict in found:
            return verdict
    return OK


def summarize(verdicts: Iterable[str]) -> Dict[str, int]:
    """Count per verdict, every verdict present (zero when none)."""
    counts = {verdict: 0 for verdict in VERDICTS}
    for verdict in verdicts:
        counts[verdict] = counts.get(verdict, 0) + 1
    return counts


def _names(names: Sequence[str]) -> str:
    names = list(names)
    if len(names) <= 1:
        return "".join(names) or "matching"
    return ", ".join(names[:-1]) + " or " + names[-1]


def _cap_alternative(facts: VerdictFacts, name: str) -> str:
    if facts.in_user_namespace is False:
        return f", or give {name} CAP_IPC_LOCK (vault_mlock.lxd.file_capability), which lifts the limit here"
    return ""


def remedy(facts: VerdictFacts, need: Size, name: str) -> str:
    """What to change so that the guest's services get ``need``."""
    want = "infinity" if need is None else f"at least {need_size(need)}"
    if facts.kind == VIRTUAL_MACHINE:
        return (f"raise the memlock limit inside the VM to {want} (DefaultLimitMEMLOCK= in systemd's "
                f"system.conf, or LimitMEMLOCK= in {name}'s unit)" + _cap_alternative(facts, name))
    if facts.kind == MACHINE:
        return (f"raise the memlock limit PID 1 inherits to {want} and restart this machine (for an LXD "
                "guest: the LXD daemon's LimitMEMLOCK through vault_mlock.lxd.memlock_dropin, or the instance's "
                "limits.kernel.memlock; vault_mlock.lxd.memlock_probe on the host tells which)"
                + _cap_alternative(facts, name))
    if facts.starter:
        # lxc-start cannot give a container more than its own hard limit: the unit comes first.
        return (f"restart the container after raising LimitMEMLOCK of {facts.starter} to {want} "
                "(vault_mlock.lxd.lxc_host; lxc.prlimit.memlock in its configuration can only lower that)"
                + _cap_alternative(facts, name))
    daemon = facts.daemon_memlock
    if daemon is not None and covers(daemon.hard, need):
        verb = "raise" if facts.limits_kernel_memlock is not None else "set"
        return (f"{verb} limits.kernel.memlock to {want} (the LXD daemon's hard limit allows up to "
                f"{human_size(daemon.hard)}) and restart the guest" + _cap_alternative(facts, name))
    then = (", then limits.kernel.memlock too" if facts.limits_kernel_memlock is not None
            else " or set limits.kernel.memlock")
    return (f"restart the guest after raising the LXD daemon's LimitMEMLOCK to {want} "
            f"(vault_mlock.lxd.memlock_dropin){then}" + _cap_alternative(facts, name))


def _need(facts: VerdictFacts, vmsize: Optional[int] = None) -> Tuple[Size, str]:
    """The size to lock: the required one, or the process's VmSize when that is more."""
    required = facts.required
    if required is not None and (vmsize is None or not covers(vmsize, required.size)):
        return required.size, f"the required {need_size(required.size)}"
    return vmsize, f"its whole VmSize {need_size(vmsize)} locked"


def _after_start_clause(facts: VerdictFacts, need: Size) -> str:
    after = facts.after_start
    if after is None or covers(after.soft, need):
        return ""
    return (f"; beware: after a restart it would get only {human_size(after.soft)} "
            f"from {facts.after_start_source or 'its new start'}, too little")


def _short(facts: VerdictFacts, lead: str, need: Size, name: str, limit: Size) -> Tuple[str, str]:
    """too_low, or restart_pending when the guest's next start gives enough."""
    ceiling = facts.service_ceiling
    if facts.pid1 is not None and covers(ceiling, need) and not covers(limit, ceiling):
        return TOO_LOW, (f"{lead}; a service here may get up to {human_size(ceiling)}: raise LimitMEMLOCK= in "
                         f"{name}'s systemd unit (systemd lowers it to {human_size(ceiling)}), or start {name} "
                         "through systemd rather than from a shell (an `lxc exec` shell has the LXD daemon's limit)")
    after = facts.after_start
    if after is not None and covers(after.soft, need) and not covers(limit, after.soft):
        return RESTART_PENDING, (f"{lead}; after a restart it gets {human_size(after.soft)} from "
                                 f"{facts.after_start_source or 'a new start'}, so restart the guest to apply it")
    return TOO_LOW, f"{lead}; {remedy(facts, need, name)}"


def _finite(facts: VerdictFacts, lead: str, limit: Size, name: str) -> Tuple[str, str]:
    """The verdict on a limit that fits what is locked now: ok only when it is safe."""
    if limit is None:
        return OK, lead
    required = facts.required
    if required is None:
        return FINITE_LIMIT, (
            f"{lead}, a finite limit: {name} locks every later mapping too (mlockall with MCL_FUTURE) and dies when "
            f"it grows past {human_size(limit)}; give its service LimitMEMLOCK=infinity (for an LXD guest: the "
            "LXD daemon's LimitMEMLOCK=infinity or limits.kernel.memlock=unlimited, then a restart of the guest), "
            "or pass required with the most it may ever map")
    if covers(limit, required.size):
        return OK, f"{lead}, enough for the required {need_size(required.size)}" + _after_start_clause(
            facts, required.size)
    return _short(facts, f"{lead}, below the required {need_size(required.size)}", required.size, name, limit)


# --- servers that do not lock their memory: swap ---------------------------------------------


def parse_configured_swap_max(value: Optional[str]) -> Tuple[bool, Optional[bool]]:
    """(known, zero) from systemd's MemorySwapMax property ('0', 'infinity', bytes, or None: unknown)."""
    if value is None:
        return False, None
    text = str(value).strip()
    if text in ("", "infinity"):
        return True, False
    return True, text == "0"


@dataclass(frozen=True)
class SwapJudgement:
    verdict: str  # PROTECTED, NOT_ENFORCED, EXPOSED or UNKNOWN
    body: str  # what was found and what to do, without the process's name
    sentence: str  # '<who>: <body>'


def _why_not_enforced(cgroup: CgroupSwap) -> str:
    if cgroup.version == CGROUP_V1:
        return (f"its memory cgroup {cgroup.cgroup} is on cgroup v1, where systemd's MemorySwapMax= does nothing "
                f"and {SWAP_MAX_FILE} does not exist")
    if cgroup.version == CGROUP_V2:
        return (f"no {SWAP_MAX_FILE} exists for {cgroup.cgroup} or any cgroup above it that can be seen: "
                "the memory controller is not enabled there")
    return cgroup.error or "its cgroup could not be read"


def swap_remedy(cgroup: CgroupSwap, service: str) -> str:
    """The fixes that apply to this server where the host's swap exposes it."""
    host = ("turn the host's swap off (swapoff, and out of /etc/fstab) or move it to zram without a backing device "
            "or to dm-crypt with a key made at each boot")
    if cgroup.controls_swap:
        return (f"{host}; or keep this server out of swap: set MemorySwapMax=0 for {service} "
                "(vault_mlock.lxd.vault_guest does with vault_guest_no_swap), or limits.memory.swap=false for the "
                "LXD or Incus guest (vault_mlock.lxd.lxd_host's lxd_host_instance_swap), then restart it")
    return (f"{host}; MemorySwapMax=0 for {service} and limits.memory.swap=false for the guest would not be enforced "
            "here (no memory.swap.max applies to it), only on a cgroup v2 host whose guests get the memory controller")


def _swap_text(host: HostSwap) -> str:
    """'the host's 64 MiB of swap on /swapfile (a swap file on disk)': the areas that decide, when judged."""
    size = f"the host's {human_size(host.total_bytes)} of swap"
    exposing = host.exposing
    if not exposing:
        return size
    zswap = ", which zswap writes back to" if host.zswap else ""
    return f"{size} on {'; '.join(device.detail for device in exposing)}{zswap}"


def _safe_swap_body(host: HostSwap) -> str:
    """Why none of the host's swap lets pages reach a disk unencrypted, with the caveats that remain."""
    kinds = {device.kind for device in host.devices}
    what = "compressed RAM" if kinds == {RAM} else ("encrypted" if kinds == {ENCRYPTED} else "RAM or encrypted")
    body = (f"the host's {human_size(host.total_bytes)} of swap is {what}, so none of its memory reaches a disk "
            f"unencrypted ({'; '.join(device.detail for device in host.devices)})")
    caveats = [device.caveat for device in host.devices if device.caveat]
    if caveats:
        body += "; beware: " + "; ".join(dict.fromkeys(caveats))
    return body


def _swap_body(host: HostSwap, cgroup: CgroupSwap, configured_swap_max: Optional[str], service: str,
               host_hidden: str) -> Tuple[str, str]:
    known, configured_zero = parse_configured_swap_max(configured_swap_max)
    enforced = cgroup.enforced_by
    unenforced = (f"; MemorySwapMax=0 is set for {service} but not enforced ({_why_not_enforced(cgroup)}), "
                  "so it will not help once the host has swap that reaches a disk")
    if host.known and not host.present:
        body = "the host has no swap, so none of its memory can be written to swap"
        return PROTECTED, body + (unenforced if configured_zero and enforced is None else "")
    swap_text = _swap_text(host) if host.known else "swap"
    if enforced is not None:
        where = "its own cgroup" if enforced.cgroup == cgroup.cgroup else f"the cgroup {enforced.cgroup} above it"
        return PROTECTED, f"{SWAP_MAX_FILE} is 0 for {where}, so the kernel keeps its memory out of {swap_text}"
    if host.known and host.safe:
        return PROTECTED, _safe_swap_body(host) + (unenforced if configured_zero else "")
    if not host.known:
        seen = f" ({host_hidden})" if host_hidden else ""
        return UNKNOWN, (f"whether the host has swap could not be read{seen}, and nothing in its cgroup keeps its "
                         f"memory out of swap ({_why_not_enforced(cgroup)}); check the host with `swapon --show`, "
                         "or run vault_mlock.lxd.memlock_probe on the LXD host"
                         + (f"; MemorySwapMax=0 is set for {service} but not enforced" if configured_zero else ""))
    if cgroup.controls_swap:
        limit = cgroup.effective_swap_max
        allowed = "any amount of" if limit is None else f"up to {human_size(limit)} of"
        if configured_zero:
            # Set after the service started: systemd writes memory.swap.max when it starts the service.
            return NOT_ENFORCED, (f"MemorySwapMax=0 is set for {service}, yet {SWAP_MAX_FILE} lets it use {allowed} "
                                  f"{swap_text}: restart {service} so that systemd writes it")
        return EXPOSED, f"{SWAP_MAX_FILE} lets it use {allowed} {swap_text}; {swap_remedy(cgroup, service)}"
    if configured_zero:
        return NOT_ENFORCED, (f"MemorySwapMax=0 is set for {service} but nothing enforces it "
                              f"({_why_not_enforced(cgroup)}), so its memory can go to {swap_text}; "
                              f"{swap_remedy(cgroup, service)}")
    setting = "" if known else ", and whether MemorySwapMax=0 is set is unknown"
    return EXPOSED, (f"nothing keeps its memory out of {swap_text} ({_why_not_enforced(cgroup)}{setting}); "
                     f"{swap_remedy(cgroup, service)}")


def judge_swap(who: str, host: HostSwap, cgroup: CgroupSwap, configured_swap_max: Optional[str] = None,
               unit: str = "", host_hidden: str = "") -> SwapJudgement:
    """Whether swap can take the memory of ``who`` (a process that does not lock its memory).

    ``configured_swap_max`` is systemd's MemorySwapMax for ``unit`` as `systemctl show` prints
    it ('0', 'infinity'), or None when unknown. ``host_hidden`` says why the host's swap cannot be
    seen, when ``host`` is unknown.
    """
    verdict, body = _swap_body(host, cgroup, configured_swap_max, unit or "its service", host_hidden)
    return SwapJudgement(verdict, body, f"{who}: {body}")


def _configured_swap_max(facts: VerdictFacts, unit: str) -> Optional[str]:
    if facts.units is None or not unit:
        return None
    for known in facts.units.loaded:
        if known.name == unit:
            return known.memory_swap_max
    return None


def judge_not_locking(facts: VerdictFacts, process: ProcessFacts, why: str) -> Verdict:
    """The verdict on a process that does not lock its memory: swap, never its memlock limit."""
    who = f"{process.name} (PID {process.pid})"
    cgroup = process.cgroup_swap or CgroupSwap(None, None, error="its cgroup was not read from the LXD host")
    judged = judge_swap(who, facts.host_swap, cgroup, _configured_swap_max(facts, process.unit), process.unit,
                        facts.host_swap_hidden)
    message = f"{facts.subject}: {who} does not lock its memory ({why}), so it needs no memlock limit; {judged.body}"
    return Verdict(judged.verdict, message, ServiceFacts(who, "process", process.memlock, locks_memory=False))


def judge_process(facts: VerdictFacts, process: ProcessFacts) -> Verdict:
    subject, name = facts.subject, process.name
    why = lock_exemption(process)
    if why:
        return judge_not_locking(facts, process, why)
    who = f"{name} (PID {process.pid})"
    service = ServiceFacts(who, "process", process.memlock)
    if process.cap_ipc_lock_effective and facts.in_user_namespace is False:
        return Verdict(OK, f"{subject}: {who} holds CAP_IPC_LOCK outside any user namespace, so its memlock "
                           "limit does not bind it", service)
    limit = process.memlock.soft_bytes
    # A process that locked nothing for another reason (a failed mlockall it shrugged off, a Vault whose
    # configuration could not be read) is judged on its limit like the others; the sentence says so.
    nothing = ", and has nothing locked (VmLck 0)" if process.vmlck_bytes == 0 else ""
    need, need_text = _need(facts, process.vmsize_bytes)
    if not covers(limit, process.vmsize_bytes) or not covers(limit, need):
        lead = f"{subject}: {who} {may_lock(limit)} but needs {need_text}{nothing}"
        if process.cap_ipc_lock_effective and process.binary_capabilities:
            # Someone gave the binary capabilities, hoping they would help: say why they do not.
            lead += " (its CAP_IPC_LOCK does not count in an unprivileged guest)"
        verdict, message = _short(facts, lead, need, name, limit)
        return Verdict(verdict, message, service)
    verdict, message = _finite(facts, f"{subject}: {who} {may_lock(limit)}{nothing}", limit, name)
    return Verdict(verdict, message, service)


def _unit_limit_text(unit: UnitFacts) -> str:
    """'may lock 4 MiB (ulimit -l 4096), as systemd lowers its LimitMEMLOCK=8M to what PID 1 allows'."""
    limit = unit.memlock.soft_bytes
    text = may_lock(limit)
    if unit.asked is not None and unit.asked.limit != unit.memlock.limit:
        text += f", as systemd lowers its LimitMEMLOCK={unit.asked.systemd_value} to what PID 1 allows"
    return text


def judge_unit_not_locking(facts: VerdictFacts, unit: UnitFacts, why: str) -> Verdict:
    """A unit whose server does not lock its memory and does not run: said not running, and why, and judged on
    swap for when it runs; never on its memlock limit."""
    server = "OpenBao" if why == OPENBAO_EXEMPTION else "Vault"
    if unit.active_state == "active":
        lead = f"{unit.name} is active but no {_names(facts.process_names)} process runs in it"
    else:
        reason = unit.reason
        lead = f"{unit.name} is {unit.state}: {server} is not running" + (f" ({reason})" if reason else "")
    # Its cgroup exists only while it runs: only the host's swap and its unit's MemorySwapMax can be judged.
    cgroup = CgroupSwap(None, None, error=f"{unit.name} does not run, so no cgroup of its own can be read")
    judged = judge_swap(unit.name, facts.host_swap, cgroup, unit.memory_swap_max, unit.name, facts.host_swap_hidden)
    message = (f"{facts.subject}: {lead}; it does not lock its memory ({why}), so it needs no memlock limit; "
               f"when it runs: {judged.body}")
    verdict = judged.verdict if unit.active_state == "active" else worst((NOT_RUNNING, judged.verdict))
    return Verdict(verdict, message, ServiceFacts(unit.name, "unit", unit.memlock, locks_memory=False))


def judge_unit(facts: VerdictFacts, unit: UnitFacts) -> Verdict:
    subject, name = facts.subject, unit.name.rsplit(".", 1)[0]
    why = unit_lock_exemption(unit)
    if why:
        return judge_unit_not_locking(facts, unit, why)
    service = ServiceFacts(unit.name, "unit", unit.memlock)
    if unit.memlock is None:
        return Verdict(UNKNOWN, f"{subject}: {unit.name} is {unit.state}, and systemd did not say its "
                                "LimitMEMLOCK", service)
    limit = unit.memlock.soft_bytes
    if unit.down and unit.mlock_failure:
        lead = (f"{subject}: {unit.name} is {unit.state} and its last run died locking its memory "
                f"(\"{unit.mlock_failure}\"); its service {_unit_limit_text(unit)}")
        # It died under this limit: it needs more, the required size if that is more, else no limit.
        required = facts.required
        need = required.size if required is not None and not covers(limit, required.size) else None
        verdict, message = _short(facts, lead, need, name, limit)
        return Verdict(verdict, message, service)
    if unit.active_state == "active":
        lead = (f"{subject}: {unit.name} is active but no {_names(facts.process_names)} process runs in the "
                f"guest; its service {_unit_limit_text(unit)}")
    else:
        why = (", not on locking memory as far as its journal's last lines tell" if unit.down else "")
        lead = (f"{subject}: no {_names(facts.process_names)} process runs; {unit.name} is {unit.state}{why}, and "
                f"its service {_unit_limit_text(unit)} when it starts")
    verdict, message = _finite(facts, lead, limit, name)
    return Verdict(verdict, message, service)


def _worst_of(verdicts: Sequence[Verdict]) -> Verdict:
    verdict = worst(item.verdict for item in verdicts)
    return next(item for item in verdicts if item.verdict == verdict)


def _not_running(facts: VerdictFacts) -> Verdict:
    message = f"{facts.subject} is {facts.status.lower() or 'not running'}: nothing runs to judge"
    after = facts.after_start
    if after is not None:
        message += (f"; once started, a service there gets {human_size(after.soft)} "
                    f"(from {facts.after_start_source}, as systemd hands it on)")
        required = facts.required
        if required is not None:
            if covers(after.soft, required.size):
                message += f", enough for the required {need_size(required.size)}"
            else:
                first = facts.process_names[0] if facts.process_names else "vault"
                message += (f", below the required {need_size(required.size)}: "
                            + remedy(facts, required.size, first))
    return Verdict(NOT_RUNNING, message)


def judge(facts: VerdictFacts) -> Verdict:
    """The verdict for one machine; its message is one sentence a person can act on."""
    subject = facts.subject
    if facts.error:
        return Verdict(ERROR, f"{subject}: {facts.error}")
    if not facts.running:
        return _not_running(facts)
    if facts.pid1 is None:
        return Verdict(ERROR, f"{subject}: the memlock limit of PID 1 could not be read")
    if facts.processes:
        return _worst_of([judge_process(facts, process) for process in facts.processes])
    names, units = _names(facts.process_names), _names(facts.unit_names)
    if facts.units is None:
        why = facts.units_not_asked or "systemd was not asked"
        return Verdict(UNKNOWN, f"{subject}: no {names} process runs, and {why} about {units}")
    if not facts.units.systemd:
        return Verdict(ABSENT, f"{subject}: no {names} process runs and the machine runs no systemd: no Vault here")
    loaded = facts.units.loaded
    if not loaded:
        return Verdict(ABSENT, f"{subject}: no {names} process runs and systemd knows no {units}: no Vault here")
    return _worst_of([judge_unit(facts, unit) for unit in loaded])
