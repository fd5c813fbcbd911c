# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Whether a machine's Vault can lock its memory: one verdict and one sentence to act on.

judge() is pure: a VerdictFacts in, (verdict, message) out.

The kernel lets mlockall(MCL_CURRENT|MCL_FUTURE) succeed when the process's whole VmSize
fits under its RLIMIT_MEMLOCK soft limit, or when it holds CAP_IPC_LOCK in the initial user
namespace (a privileged guest). A guest's PID 1 got its limit when the guest started: from
limits.kernel.memlock, or else from the LXD daemon as it ran then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import ProcessFacts
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    MemlockLimit,
    Size,
    covers,
    format_ulimit,
)

OK = "ok"
TOO_LOW = "too_low"
RESTART_PENDING = "restart_pending"
NOT_RUNNING = "not_running"
UNKNOWN = "unknown"
ERROR = "error"

# Worst first: the order in which one verdict outweighs another.
VERDICTS = (ERROR, TOO_LOW, RESTART_PENDING, UNKNOWN, NOT_RUNNING, OK)

CONTAINER = "container"
VIRTUAL_MACHINE = "virtual-machine"
MACHINE = "machine"  # the machine memlock_facts runs on: an LXD guest or not, we cannot tell

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


@dataclass(frozen=True)
class VerdictFacts:
    """Everything judge() looks at, for one machine."""

    subject: str  # "guest g1", "this machine"
    pid1_memlock: Optional[MemlockLimit] = None
    processes: Tuple[ProcessFacts, ...] = ()
    process_names: Tuple[str, ...] = ("vault", "bao")
    required_given: bool = False
    required_bytes: Size = None  # None means "no limit at all" when required_given
    in_user_namespace: Optional[bool] = None
    kind: str = CONTAINER
    running: bool = True
    status: str = "Running"
    error: Optional[str] = None
    # What PID 1 gets when the guest starts next; None when that cannot be known here.
    after_restart: Optional[MemlockLimit] = None
    after_restart_source: str = ""  # "limits.kernel.memlock" or "the LXD daemon"
    limits_kernel_memlock: Optional[MemlockLimit] = None  # None when unset
    daemon_memlock: Optional[MemlockLimit] = None  # the LXD daemon's current limit, if known


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
    """What to change so that PID 1 (and the services systemd starts) get ``need``."""
    want = "infinity" if need is None else f"at least {need_size(need)}"
    if facts.kind == VIRTUAL_MACHINE:
        return (f"raise the memlock limit inside the VM to {want} (DefaultLimitMEMLOCK= in systemd's "
                f"system.conf, or LimitMEMLOCK= in {name}'s unit)" + _cap_alternative(facts, name))
    if facts.kind == MACHINE:
        return (f"raise the memlock limit PID 1 inherits to {want} and restart this machine (for an LXD "
                "guest: the LXD daemon's LimitMEMLOCK through vault_mlock.lxd.memlock_dropin, or the instance's "
                "limits.kernel.memlock; vault_mlock.lxd.memlock_probe on the host tells which)"
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


def _after_restart_clause(facts: VerdictFacts, need: Size) -> str:
    after = facts.after_restart
    if after is None or covers(after.soft, need):
        return ""
    return (f"; beware: after a restart it would get only {human_size(after.soft)} "
            f"from {facts.after_restart_source or 'its new start'}, too little")


def _short_or_pending(facts: VerdictFacts, lead: str, need: Size, name: str) -> Tuple[str, str]:
    after = facts.after_restart
    if after is not None and covers(after.soft, need):
        return RESTART_PENDING, (f"{lead}; {facts.after_restart_source or 'a new start'} now gives "
                                 f"{human_size(after.soft)}, so restart the guest to apply it")
    return TOO_LOW, f"{lead}; {remedy(facts, need, name)}"


def _need(facts: VerdictFacts, process: ProcessFacts) -> Tuple[Size, str]:
    vmsize = process.vmsize_bytes
    if facts.required_given and not covers(vmsize, facts.required_bytes):
        return facts.required_bytes, f"the required {need_size(facts.required_bytes)}"
    return vmsize, f"its whole VmSize {need_size(vmsize)} locked"


def judge_process(facts: VerdictFacts, process: ProcessFacts) -> Tuple[str, str]:
    subject, name = facts.subject, process.name
    who = f"{name} (PID {process.pid})"
    if process.cap_ipc_lock_effective and facts.in_user_namespace is False:
        return OK, (f"{subject}: {who} holds CAP_IPC_LOCK outside any user namespace, "
                    "so its memlock limit does not bind it")
    need, need_text = _need(facts, process)
    limit = process.memlock.soft_bytes
    pid1 = facts.pid1_memlock
    if covers(limit, need):
        message = f"{subject}: {who} {may_lock(limit)}, enough for {need_text}"
        if process.vmlck_bytes == 0:
            message += ", but it has nothing locked (VmLck 0): is disable_mlock set?"
            return OK, message
        return OK, message + _after_restart_clause(facts, need)
    if pid1 is not None and pid1.soft == limit:
        lead = f"{subject}: PID 1 {may_lock(limit)} but {name} needs {need_text}"
    else:
        lead = f"{subject}: {who} {may_lock(limit)} but needs {need_text}"
    if process.cap_ipc_lock_effective and process.binary_capabilities:
        # Someone gave the binary capabilities, hoping they would help: say why they do not.
        lead += " (its CAP_IPC_LOCK does not count in an unprivileged guest)"
    if pid1 is not None and covers(pid1.soft, need):
        return TOO_LOW, (f"{lead}, although PID 1 {may_lock(pid1.soft)}: raise LimitMEMLOCK= in {name}'s "
                         f"systemd unit (systemd clamps it to {human_size(pid1.hard)}), or start {name} through "
                         "systemd rather than from a shell (an `lxc exec` shell has the LXD daemon's limit)")
    return _short_or_pending(facts, lead, need, name)


def judge(facts: VerdictFacts) -> Tuple[str, str]:
    """(verdict, message) for one machine; the message is one sentence a person can act on."""
    subject = facts.subject
    if facts.error:
        return ERROR, f"{subject}: {facts.error}"
    names = _names(facts.process_names)
    first_name = facts.process_names[0] if facts.process_names else "vault"
    if not facts.running:
        message = f"{subject} is {facts.status.lower() or 'not running'}: nothing runs to judge"
        after = facts.after_restart
        if after is not None:
            message += f"; it will start with {human_size(after.soft)} from {facts.after_restart_source}"
            if facts.required_given:
                if covers(after.soft, facts.required_bytes):
                    message += f", enough for the required {need_size(facts.required_bytes)}"
                else:
                    message += (f", below the required {need_size(facts.required_bytes)}: "
                                + remedy(facts, facts.required_bytes, first_name))
        return NOT_RUNNING, message
    pid1 = facts.pid1_memlock
    if pid1 is None:
        return ERROR, f"{subject}: the memlock limit of PID 1 could not be read"
    if facts.processes:
        judged = [judge_process(facts, process) for process in facts.processes]
        verdict = worst(verdict for verdict, _message in judged)
        return next(item for item in judged if item[0] == verdict)
    if not facts.required_given:
        return UNKNOWN, (f"{subject}: PID 1 {may_lock(pid1.soft)}, but no {names} process runs and no "
                         f"required size was given, so nothing can be judged: start {first_name} or pass required")
    need = facts.required_bytes
    need_text = need_size(need)
    if covers(pid1.soft, need):
        return OK, (f"{subject}: no {names} process runs; PID 1 {may_lock(pid1.soft)}, "
                    f"enough for the required {need_text}" + _after_restart_clause(facts, need))
    lead = f"{subject}: no {names} process runs and PID 1 {may_lock(pid1.soft)}, below the required {need_text}"
    return _short_or_pending(facts, lead, need, first_name)
