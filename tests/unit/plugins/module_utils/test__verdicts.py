# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import UnitFacts, UnitsFacts
from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import ProcessFacts
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, MemlockReport
from ansible_collections.vault_mlock.lxd.plugins.module_utils._swap import CGROUP_V1, CGROUP_V2, CgroupSwap, HostSwap, \
    SwapMaxEntry
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import (
    ABSENT,
    CONTAINER,
    ERROR,
    EXPOSED,
    FAILING,
    FINITE_LIMIT,
    MACHINE,
    NOT_ENFORCED,
    NOT_RUNNING,
    OK,
    PROTECTED,
    RESTART_PENDING,
    TOO_LOW,
    UNKNOWN,
    VERDICTS,
    VIRTUAL_MACHINE,
    Required,
    ServiceFacts,
    VerdictFacts,
    human_size,
    judge,
    may_lock,
    need_size,
    summarize,
    worst,
)

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
MLOCK_LINE = "Error initializing core: Failed to lock memory: cannot allocate memory"
# bao 2.7.2 under openbao.service with storage "file", which OpenBao 2 no longer has.
BAO_LINE = "Error parsing config: unknown storage type file"


def limit(soft, hard=None):
    return MemlockLimit(soft, soft if hard is None else hard)


def report(soft, hard=None):
    return MemlockReport.of(limit(soft, hard))


def process(soft=256 * KIB, hard=None, vmsize=int(1.3 * GIB), vmlck=None, cap=False, caps="", pid=58, name="vault",
            **unlocked):
    return ProcessFacts(
        pid=pid, host_pid=None, name=name, memlock=report(soft, hard), vmsize_bytes=vmsize,
        vmlck_bytes=vmsize if vmlck is None else vmlck, cap_ipc_lock_effective=cap, cap_ipc_lock_bounding=True,
        binary=f"/usr/bin/{name}", binary_capabilities=caps, **unlocked,
    )


def unit(memlock=4 * MIB, asked=None, active="inactive", sub="dead", result="success", line="", name="vault.service",
         load="loaded", swap_max=None, **more):
    asked = memlock if asked is None else asked
    return UnitFacts(
        name=name, load_state=load, active_state=active, sub_state=sub, result=result, restarts=0, exit_status=1,
        asked=report(asked) if isinstance(asked, (int, type(None))) else MemlockReport.of(asked),
        journal=[line] if line else [], mlock_failure=line if "lock" in line else "",
        memlock=report(memlock), memory_swap_max=swap_max, **more,
    )


def units(*items, systemd=True):
    return UnitsFacts(systemd=systemd, default_memlock=report(8 * MIB), units=list(items))


def facts(**changes):
    base = VerdictFacts(subject="guest g1", pid1=limit(256 * KIB), service_ceiling=256 * KIB, in_user_namespace=True)
    return dataclasses.replace(base, **changes)


def required(size):
    return Required(size)


DAEMON_256K = dict(daemon_memlock=limit(256 * KIB), after_start=limit(256 * KIB), after_start_source="the LXD daemon")
FAILED = dict(active="failed", sub="failed", result="exit-code")
P8 = dict(pid1=limit(8 * MIB), service_ceiling=8 * MIB)

CASES = [
    # (id, facts, verdict, the whole message or the parts it must hold)
    ("error", facts(error="exec failed: boom"), ERROR, "guest g1: exec failed: boom"),
    ("stopped, nothing known", facts(status="Stopped", pid1=None), NOT_RUNNING,
     "guest g1 is stopped: nothing runs to judge"),
    ("stopped, will start with too little",
     facts(status="Stopped", required=required(MIB), **DAEMON_256K), NOT_RUNNING,
     "guest g1 is stopped: nothing runs to judge; once started, a service there gets 256 KiB (from the LXD daemon, "
     "as systemd hands it on), below the required 1 MiB: restart the guest after raising the LXD daemon's "
     "LimitMEMLOCK to at least 1 MiB (vault_mlock.lxd.memlock_dropin) or set limits.kernel.memlock"),
    ("stopped, will start with enough",
     facts(status="Stopped", required=required(64 * KIB), **DAEMON_256K), NOT_RUNNING,
     ["a service there gets 256 KiB", "enough for the required 64 KiB"]),
    ("running, PID 1 unreadable", facts(pid1=None), ERROR, "could not be read"),
    # --- running processes: their own limits count -------------------------------------------------
    ("a finite limit that fits today is not ok", facts(**P8, processes=(process(soft=8 * MIB, vmsize=MIB),)),
     FINITE_LIMIT,
     "guest g1: vault (PID 58) may lock 8 MiB (ulimit -l 8192), a finite limit: vault locks every later mapping too "
     "(mlockall with MCL_FUTURE) and dies when it grows past 8 MiB; give its service LimitMEMLOCK=infinity (for an "
     "LXD guest: the LXD daemon's LimitMEMLOCK=infinity or limits.kernel.memlock=unlimited, then a restart of the "
     "guest), or pass required with the most it may ever map"),
    ("no limit is ok", facts(pid1=limit(None), service_ceiling=None, processes=(process(soft=None),)), OK,
     "guest g1: vault (PID 58) may lock without limit (ulimit -l unlimited)"),
    ("a finite limit that covers the required size is ok",
     facts(**P8, required=required(4 * MIB), processes=(process(soft=8 * MIB, vmsize=MIB),)), OK,
     "guest g1: vault (PID 58) may lock 8 MiB (ulimit -l 8192), enough for the required 4 MiB"),
    ("required above the limit",
     facts(**P8, required=required(16 * MIB), processes=(process(soft=8 * MIB, vmsize=MIB),)), TOO_LOW,
     "guest g1: vault (PID 58) may lock 8 MiB (ulimit -l 8192) but needs the required 16 MiB; restart the guest "
     "after raising the LXD daemon's LimitMEMLOCK to at least 16 MiB"),
    ("required infinity and a finite limit",
     facts(**P8, required=required(None), processes=(process(soft=8 * MIB, vmsize=MIB),)), TOO_LOW,
     ["needs the required infinity", "LimitMEMLOCK to infinity"]),
    ("VmSize above the limit", facts(processes=(process(),), **DAEMON_256K), TOO_LOW,
     "guest g1: vault (PID 58) may lock 256 KiB (ulimit -l 256) but needs its whole VmSize 1.3 GiB locked; restart "
     "the guest after raising the LXD daemon's LimitMEMLOCK to at least 1.3 GiB (vault_mlock.lxd.memlock_dropin) "
     "or set limits.kernel.memlock"),
    ("a plain LXC or Proxmox VE container: the unit that starts it comes first",
     facts(processes=(process(),), starter="lxc@vault.service", daemon_memlock=limit(256 * KIB)), TOO_LOW,
     "guest g1: vault (PID 58) may lock 256 KiB (ulimit -l 256) but needs its whole VmSize 1.3 GiB locked; restart "
     "the container after raising LimitMEMLOCK of lxc@vault.service to at least 1.3 GiB (vault_mlock.lxd.lxc_host; "
     "lxc.prlimit.memlock in its configuration can only lower that)"),
    ("a restart would give enough",
     facts(required=required(4 * MIB), processes=(process(vmsize=MIB),), daemon_memlock=limit(8 * MIB),
           after_start=limit(8 * MIB), after_start_source="the LXD daemon"), RESTART_PENDING,
     "guest g1: vault (PID 58) may lock 256 KiB (ulimit -l 256) but needs the required 4 MiB; after a restart it "
     "gets 8 MiB from the LXD daemon, so restart the guest to apply it"),
    ("fits now, not after a restart",
     facts(**P8, required=required(MIB), processes=(process(soft=8 * MIB, vmsize=MIB),), **DAEMON_256K), OK,
     "; beware: after a restart it would get only 256 KiB from the LXD daemon, too little"),
    ("started from a shell with less than a service gets",
     facts(**P8, required=required(2 * MIB), processes=(process(soft=512 * KIB, hard=8 * MIB, vmsize=MIB),)),
     TOO_LOW,
     "guest g1: vault (PID 58) may lock 512 KiB (ulimit -l 512) but needs the required 2 MiB; a service here may get "
     "up to 8 MiB: raise LimitMEMLOCK= in vault's systemd unit (systemd lowers it to 8 MiB), or start vault through "
     "systemd rather than from a shell (an `lxc exec` shell has the LXD daemon's limit)"),
    ("mlockall failed and was shrugged off (memcached -k)",
     facts(**P8, processes=(process(soft=8 * MIB, vmsize=70 * MIB, vmlck=0, name="memcached"),)), TOO_LOW,
     "guest g1: memcached (PID 58) may lock 8 MiB (ulimit -l 8192) but needs its whole VmSize 70 MiB locked, and "
     "has nothing locked (VmLck 0);"),
    ("nothing locked under a finite limit that fits",
     facts(**P8, processes=(process(soft=8 * MIB, vmsize=MIB, vmlck=0),)), FINITE_LIMIT,
     "may lock 8 MiB (ulimit -l 8192), and has nothing locked (VmLck 0), a finite limit"),
    ("privileged: CAP_IPC_LOCK lifts the limit",
     facts(in_user_namespace=False, processes=(process(soft=64 * KIB, cap=True),)), OK,
     "guest g1: vault (PID 58) holds CAP_IPC_LOCK outside any user namespace, so its memlock limit does not bind it"),
    ("unprivileged: the file capability does not help",
     facts(processes=(process(cap=True, caps="cap_ipc_lock=ep"),)), TOO_LOW,
     "needs its whole VmSize 1.3 GiB locked (its CAP_IPC_LOCK does not count in an unprivileged guest); "),
    ("unprivileged root without file capabilities: no word on them", facts(processes=(process(cap=True),)), TOO_LOW,
     "needs its whole VmSize 1.3 GiB locked; restart"),
    ("limits.kernel.memlock raised, guest not restarted",
     facts(processes=(process(vmsize=MIB),), limits_kernel_memlock=limit(4 * MIB), after_start=limit(4 * MIB),
           after_start_source="limits.kernel.memlock", daemon_memlock=limit(8 * MIB)), RESTART_PENDING,
     "; after a restart it gets 4 MiB from limits.kernel.memlock, so restart the guest to apply it"),
    ("daemon's hard limit leaves room for limits.kernel.memlock",
     facts(processes=(process(vmsize=MIB),), daemon_memlock=limit(256 * KIB, 8 * MIB),
           after_start=limit(256 * KIB), after_start_source="the LXD daemon"), TOO_LOW,
     "; set limits.kernel.memlock to at least 1 MiB (the LXD daemon's hard limit allows up to 8 MiB) and restart "
     "the guest"),
    ("limits.kernel.memlock set and the daemon too low",
     facts(processes=(process(),), daemon_memlock=limit(8 * MIB), limits_kernel_memlock=limit(256 * KIB),
           after_start=limit(256 * KIB), after_start_source="limits.kernel.memlock"), TOO_LOW,
     "restart the guest after raising the LXD daemon's LimitMEMLOCK to at least 1.3 GiB "
     "(vault_mlock.lxd.memlock_dropin), then limits.kernel.memlock too"),
    ("virtual machine", facts(kind=VIRTUAL_MACHINE, in_user_namespace=False, processes=(process(),)), TOO_LOW,
     "; raise the memlock limit inside the VM to at least 1.3 GiB (DefaultLimitMEMLOCK= in systemd's system.conf, "
     "or LimitMEMLOCK= in vault's unit), or give vault CAP_IPC_LOCK (vault_mlock.lxd.file_capability), which "
     "lifts the limit here"),
    ("inside a machine", facts(subject="this machine", kind=MACHINE, processes=(process(),)), TOO_LOW,
     ["this machine: vault (PID 58) may lock 256 KiB", "raise the memlock limit PID 1 inherits to at least 1.3 GiB "
      "and restart this machine", "vault_mlock.lxd.memlock_probe on the host tells which)"]),
    ("the worst process speaks",
     facts(**P8, required=required(MIB),
           processes=(process(soft=8 * MIB, vmsize=MIB), process(soft=8 * MIB, vmsize=GIB, pid=99))),
     TOO_LOW, "vault (PID 99) may lock 8 MiB (ulimit -l 8192) but needs its whole VmSize 1 GiB locked"),
    # --- no process: Vault's units --------------------------------------------------------------------
    ("systemd not asked", facts(units_not_asked="with method=proc no guest's systemd is asked"), UNKNOWN,
     "guest g1: no vault or bao process runs, and with method=proc no guest's systemd is asked about vault.service "
     "or openbao.service"),
    ("no systemd: no Vault", facts(units=units(systemd=False)), ABSENT,
     "guest g1: no vault or bao process runs and the machine runs no systemd: no Vault here"),
    ("no unit: no Vault", facts(units=units(unit(load="not-found"))), ABSENT,
     "guest g1: no vault or bao process runs and systemd knows no vault.service or openbao.service: no Vault here"),
    ("a unit that died locking its memory",
     facts(units=units(unit(memlock=512 * KIB, asked=8 * MIB, line=MLOCK_LINE, **FAILED)), **DAEMON_256K), TOO_LOW,
     "guest g1: vault.service is failed (exit-code) and its last run died locking its memory (\"" + MLOCK_LINE
     + "\"); its service may lock 512 KiB (ulimit -l 512), as systemd lowers its LimitMEMLOCK=8M to what PID 1 "
     "allows; restart the guest after raising the LXD daemon's LimitMEMLOCK to infinity "
     "(vault_mlock.lxd.memlock_dropin) or set limits.kernel.memlock"),
    ("a unit waiting to restart after dying on mlock",
     facts(units=units(unit(memlock=512 * KIB, line=MLOCK_LINE, active="activating", sub="auto-restart",
                            result="exit-code"))), TOO_LOW,
     "vault.service is activating (auto-restart, exit-code) and its last run died locking its memory"),
    ("a dead unit with a required size a restart would give",
     facts(required=required(4 * MIB), units=units(unit(memlock=512 * KIB, line=MLOCK_LINE, **FAILED)),
           after_start=limit(8 * MIB), after_start_source="the LXD daemon"), RESTART_PENDING,
     "; after a restart it gets 8 MiB from the LXD daemon, so restart the guest to apply it"),
    ("a dead unit whose limit covered the required size still died",
     facts(required=required(256 * KIB), units=units(unit(memlock=512 * KIB, line=MLOCK_LINE, **FAILED))), TOO_LOW,
     "LimitMEMLOCK to infinity"),
    ("an inactive unit with a finite limit",
     facts(units=units(unit(memlock=4 * MIB, asked=8 * MIB))), FINITE_LIMIT,
     "guest g1: no vault or bao process runs; vault.service is inactive (dead), and its service may lock 4 MiB "
     "(ulimit -l 4096), as systemd lowers its LimitMEMLOCK=8M to what PID 1 allows when it starts, a finite limit"),
    ("an inactive unit without limit", facts(units=units(unit(memlock=None))), OK,
     "guest g1: no vault or bao process runs; vault.service is inactive (dead), and its service may lock without "
     "limit (ulimit -l unlimited) when it starts"),
    ("an inactive unit against the required size",
     facts(required=required(2 * MIB), units=units(unit(memlock=4 * MIB))), OK,
     "when it starts, enough for the required 2 MiB"),
    ("a unit that failed for another reason",
     facts(required=required(2 * MIB), units=units(unit(memlock=4 * MIB, line="", **FAILED))), OK,
     "vault.service is failed (exit-code), not on locking memory as far as its journal's last lines tell"),
    ("an active unit without a Vault process", facts(units=units(unit(memlock=4 * MIB, active="active",
                                                                      sub="running"))), FINITE_LIMIT,
     "guest g1: vault.service is active but no vault or bao process runs in the guest; its service may lock 4 MiB"),
    ("the worst unit speaks",
     facts(units=units(unit(memlock=None),
                       unit(name="vault-dr.service", memlock=256 * KIB, line=MLOCK_LINE, **FAILED))),
     TOO_LOW, "guest g1: vault-dr.service is failed"),
    # --- servers that do not lock: never judged on memlock, running or not ----------------------------
    ("a failed openbao.service, no swap: not running, and why",
     facts(host_swap=HostSwap(0), units=units(unit(name="openbao.service", memlock=256 * KIB, line=BAO_LINE,
                                                   **FAILED))), NOT_RUNNING,
     "guest g1: openbao.service is failed (exit-code): OpenBao is not running (Result=exit-code, exit status 1: "
     "its journal's last line: \"" + BAO_LINE + "\"); it does not lock its memory (OpenBao removed mlock in 2.0), so "
     "it needs no memlock limit; when it runs: the host has no swap"),
    ("a failed openbao.service on a host with swap on disk: exposed",
     facts(host_swap=HostSwap(64 * MIB, ("/swapfile",)),
           units=units(unit(name="openbao.service", memlock=256 * KIB, line=BAO_LINE, **FAILED))), EXPOSED,
     ["OpenBao is not running", "when it runs: nothing keeps its memory out of the host's 64 MiB of swap"]),
    ("a stopped bao unit found by its ExecStart",
     facts(host_swap=HostSwap(0), units=units(unit(name="secrets.service", memlock=256 * KIB,
                                                   exec_argv=("/usr/local/bin/bao", "server")))), NOT_RUNNING,
     "guest g1: secrets.service is inactive (dead): OpenBao is not running (exit status 1); it does not lock its "
     "memory"),
    ("a stopped Vault whose configuration says disable_mlock = true",
     facts(host_swap=HostSwap(None), units=units(unit(memlock=256 * KIB, disable_mlock=True,
                                                      disable_mlock_source="disable_mlock = true in /etc/v.hcl"))),
     UNKNOWN, ["vault.service is inactive (dead): Vault is not running (exit status 1); it does not lock its memory "
               "(disable_mlock = true in /etc/v.hcl)", "whether the host has swap could not be read"]),
]


@pytest.mark.parametrize("verdict_facts, verdict, expected", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_judge(verdict_facts, verdict, expected):
    judged = judge(verdict_facts)
    assert judged.verdict == verdict
    if isinstance(expected, str) and expected.startswith("guest g1"):
        assert judged.message.startswith(expected)
    for part in [expected] if isinstance(expected, str) else expected:
        assert part in judged.message
    assert "\n" not in judged.message


def test_judge_is_pure():
    verdict_facts = facts(processes=(process(),), **DAEMON_256K)
    assert judge(verdict_facts) == judge(verdict_facts)
    assert verdict_facts == facts(processes=(process(),), **DAEMON_256K)


def test_the_verdict_names_the_service_it_rests_on():
    judged = judge(facts(**P8, processes=(process(soft=8 * MIB, vmsize=MIB), process(pid=99))))
    assert judged.service == ServiceFacts("vault (PID 99)", "process", report(256 * KIB))
    judged = judge(facts(units=units(unit(memlock=4 * MIB))))
    assert judged.service == ServiceFacts("vault.service", "unit", report(4 * MIB))
    assert judge(facts(units=units())).service is None


def test_ok_only_when_safe():
    """No finite limit is ok without a required size it covers."""
    for soft in (64 * KIB, 8 * MIB, 64 * GIB):
        assert judge(facts(pid1=limit(soft), service_ceiling=soft,
                           processes=(process(soft=soft, vmsize=32 * KIB),))).verdict == FINITE_LIMIT
        assert judge(facts(units=units(unit(memlock=soft)))).verdict == FINITE_LIMIT


def test_a_process_too_big_in_a_privileged_guest_without_the_capability_is_too_low():
    judged = judge(facts(in_user_namespace=False, processes=(process(),)))
    assert judged.verdict == TOO_LOW
    assert judged.message.endswith(", or give vault CAP_IPC_LOCK (vault_mlock.lxd.file_capability), which lifts the "
                                   "limit here")


def test_failing_verdicts():
    assert set(FAILING) == {ERROR, TOO_LOW, RESTART_PENDING, FINITE_LIMIT, NOT_ENFORCED, EXPOSED}
    assert PROTECTED not in FAILING and UNKNOWN not in FAILING
    assert set(FAILING) < set(VERDICTS)


@pytest.mark.parametrize(
    "size, round_up, expected",
    [
        (None, False, "unlimited"),
        (0, False, "0 bytes"),
        (1000, False, "1000 bytes"),
        (1024, False, "1 KiB"),
        (256 * KIB, False, "256 KiB"),
        (8 * MIB, False, "8 MiB"),
        (1536 * KIB, False, "1.5 MiB"),
        (int(1.36 * GIB), False, "1.3 GiB"),
        (int(1.36 * GIB), True, "1.4 GiB"),
        (GIB + 1, True, "1.1 GiB"),
        (GIB - 1, False, "1023.9 MiB"),
        (GIB - 1, True, "1 GiB"),
        (3 * 1024 * GIB, False, "3 TiB"),
    ],
)
def test_human_size(size, round_up, expected):
    assert human_size(size, round_up) == expected


@given(st.integers(min_value=1024, max_value=2**64 - 2))
def test_needs_round_up_and_limits_round_down(size):
    def value(text):
        number, unit = text.split()
        return Fraction(number) * 1024 ** (["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"].index(unit) + 1)

    assert value(human_size(size)) <= size <= value(human_size(size, round_up=True))


@pytest.mark.parametrize(
    "size, expected",
    [
        (None, "may lock without limit (ulimit -l unlimited)"),
        (65536, "may lock 64 KiB (ulimit -l 64)"),
        (1000, "may lock 1000 bytes (ulimit -l 0)"),
    ],
)
def test_may_lock(size, expected):
    assert may_lock(size) == expected


def test_need_size_of_no_limit_is_systemds_word():
    assert need_size(None) == "infinity"


@pytest.mark.parametrize(
    "verdicts, expected",
    [
        ([], OK),
        ([OK, NOT_RUNNING], NOT_RUNNING),
        ([OK, RESTART_PENDING, UNKNOWN], RESTART_PENDING),
        ([OK, FINITE_LIMIT, ABSENT], FINITE_LIMIT),
        ([FINITE_LIMIT, RESTART_PENDING], RESTART_PENDING),
        ([ABSENT, NOT_RUNNING], NOT_RUNNING),
        ([RESTART_PENDING, TOO_LOW], TOO_LOW),
        ([TOO_LOW, ERROR, OK], ERROR),
    ],
)
def test_worst(verdicts, expected):
    assert worst(verdicts) == expected


def test_summarize_counts_every_verdict():
    counts = summarize([OK, OK, TOO_LOW, NOT_RUNNING])
    assert set(counts) == set(VERDICTS)
    assert counts == {ERROR: 0, TOO_LOW: 1, RESTART_PENDING: 0, FINITE_LIMIT: 0, UNKNOWN: 0, NOT_RUNNING: 1,
                      ABSENT: 0, OK: 2, PROTECTED: 0, NOT_ENFORCED: 0, EXPOSED: 0}
    assert CONTAINER == "container"


# --- servers that do not lock their memory: swap, never the memlock limit ----------------------------

BAO_VMSIZE = 211104532 * KIB  # bao on raft storage, measured: bbolt maps the database
SERVICE = "/lxc.payload.g1/system.slice/openbao.service"
NO_CONTROLLER = CgroupSwap(CGROUP_V2, SERVICE)
LAB_V1 = CgroupSwap(CGROUP_V1, "/process_api/d6a7")
SERVICE_ZERO = CgroupSwap(CGROUP_V2, SERVICE, (SwapMaxEntry(SERVICE, 0), SwapMaxEntry("/lxc.payload.g1", None)))
GUEST_ZERO = CgroupSwap(CGROUP_V2, SERVICE, (SwapMaxEntry(SERVICE, None), SwapMaxEntry("/lxc.payload.g1", 0)))
SERVICE_MAX = CgroupSwap(CGROUP_V2, SERVICE, (SwapMaxEntry(SERVICE, None),))
SERVICE_1G = CgroupSwap(CGROUP_V2, SERVICE, (SwapMaxEntry(SERVICE, GIB),))
NO_SWAP = HostSwap(0)
SWAP_2G = HostSwap(2 * GIB, ("/swap.img",))
BAO_UNIT = units(unit(name="openbao.service", swap_max="0"))


def bao(cgroup=NO_CONTROLLER, name="bao"):
    return process(soft=8 * MIB, vmsize=BAO_VMSIZE, vmlck=0, pid=196, name=name, unit="openbao.service",
                   cgroup_swap=cgroup)


def vault_without_mlock():
    return process(soft=8 * MIB, vmsize=BAO_VMSIZE, vmlck=0, pid=58, unit="vault.service", cgroup_swap=SERVICE_ZERO,
                   disable_mlock=True, disable_mlock_source="disable_mlock = true in /etc/vault.d/10-storage.hcl")


SWAP_CASES = [
    # (id, facts, verdict, parts the message must hold)
    ("no swap; MemorySwapMax=0 set but not enforced (the lab)",
     facts(**P8, processes=(bao(LAB_V1),), units=BAO_UNIT, host_swap=NO_SWAP), PROTECTED,
     ["guest g1: bao (PID 196) does not lock its memory (OpenBao removed mlock in 2.0), so it needs no memlock limit; "
      "the host has no swap, so none of its memory can be written to swap; MemorySwapMax=0 is set for "
      "openbao.service but not enforced (its memory cgroup /process_api/d6a7 is on cgroup v1",
      "so it will not help once the host has swap"]),
    ("no swap, no MemorySwapMax", facts(**P8, processes=(bao(),), host_swap=NO_SWAP), PROTECTED,
     ["the host has no swap"]),
    ("swap, memory.swap.max = 0 for the service",
     facts(**P8, processes=(bao(SERVICE_ZERO),), units=BAO_UNIT, host_swap=SWAP_2G), PROTECTED,
     ["memory.swap.max is 0 for its own cgroup, so the kernel keeps its memory out of the host's 2 GiB of swap"]),
    ("swap, memory.swap.max = 0 for the guest", facts(**P8, processes=(bao(GUEST_ZERO),), host_swap=SWAP_2G),
     PROTECTED, ["memory.swap.max is 0 for the cgroup /lxc.payload.g1 above it"]),
    ("swap, memory.swap.max = max", facts(**P8, processes=(bao(SERVICE_MAX),), host_swap=SWAP_2G,
                                          units=units(unit(name="openbao.service", swap_max="infinity"))),
     EXPOSED, ["memory.swap.max lets it use any amount of the host's 2 GiB of swap",
               "set MemorySwapMax=0 for openbao.service"]),
    ("swap, MemorySwapMax=0 set, memory.swap.max still max",
     facts(**P8, processes=(bao(SERVICE_MAX),), host_swap=SWAP_2G, units=BAO_UNIT), NOT_ENFORCED,
     ["MemorySwapMax=0 is set for openbao.service, yet memory.swap.max lets it use any amount",
      "restart openbao.service so that systemd writes it"]),
    ("swap, memory.swap.max = 1 GiB", facts(**P8, processes=(bao(SERVICE_1G),), host_swap=SWAP_2G), EXPOSED,
     ["lets it use up to 1 GiB of the host's 2 GiB of swap"]),
    ("swap, MemorySwapMax=0 without a memory controller",
     facts(**P8, processes=(bao(),), units=BAO_UNIT, host_swap=SWAP_2G), NOT_ENFORCED,
     ["MemorySwapMax=0 is set for openbao.service but nothing enforces it", "turn the host's swap off (swapoff"]),
    ("swap, nothing set, no controller", facts(**P8, processes=(bao(),), host_swap=SWAP_2G), EXPOSED,
     ["nothing keeps its memory out of the host's 2 GiB of swap", "whether MemorySwapMax=0 is set is unknown"]),
    ("read inside a guest under LXCFS",
     facts(**P8, processes=(bao(NO_CONTROLLER),), units=BAO_UNIT,
           host_swap_hidden="/proc/swaps is a fuse.lxcfs mount here (LXCFS's view of this guest), not the host's own"),
     UNKNOWN, ["whether the host has swap could not be read (/proc/swaps is a fuse.lxcfs mount here",
               "run vault_mlock.lxd.memlock_probe on the LXD host",
               "MemorySwapMax=0 is set for openbao.service but not enforced"]),
    ("read by a command in the guest", facts(**P8, processes=(bao(None),), host_swap_hidden="the guest was read by a "
                                             "command run inside it, where the host's swap cannot be seen"),
     UNKNOWN, ["its cgroup was not read from the LXD host"]),
    ("vault with disable_mlock = true", facts(**P8, processes=(vault_without_mlock(),), host_swap=SWAP_2G), PROTECTED,
     ["vault (PID 58) does not lock its memory (disable_mlock = true in /etc/vault.d/10-storage.hcl)"]),
    ("bao known by its unit alone", facts(**P8, processes=(bao(name="server"),), host_swap=NO_SWAP), PROTECTED,
     ["server (PID 196) does not lock its memory (OpenBao removed mlock in 2.0)"]),
]


@pytest.mark.parametrize("verdict_facts, verdict, parts", [case[1:] for case in SWAP_CASES],
                         ids=[case[0] for case in SWAP_CASES])
def test_a_server_that_does_not_lock_is_judged_on_swap(verdict_facts, verdict, parts):
    judged = judge(verdict_facts)
    assert judged.verdict == verdict
    for part in parts:
        assert part in judged.message
    # Never a memlock limit to raise, though its VmSize (201 GiB) is far above it.
    for advice in ("LimitMEMLOCK", "limits.kernel.memlock", "201", "may lock"):
        assert advice not in judged.message
    assert judged.service.locks_memory is False
    assert "\n" not in judged.message


def test_vault_with_nothing_locked_but_no_disable_mlock_is_judged_on_its_limit():
    """VmLck 0 alone does not say Vault will never lock: without disable_mlock its limit still counts."""
    for unlocked in (dict(), dict(disable_mlock=False, disable_mlock_source="disable_mlock = false in /a.hcl")):
        judged = judge(facts(**P8, processes=(process(soft=8 * MIB, vmlck=0, **unlocked),), host_swap=NO_SWAP))
        assert judged.verdict == TOO_LOW
        assert "has nothing locked (VmLck 0)" in judged.message
    # A Vault that locks (VmLck above 0) is judged on its limit whatever its configuration says.
    locking = process(soft=8 * MIB, vmsize=MIB, disable_mlock=True, disable_mlock_source="x")
    assert judge(facts(**P8, processes=(locking,))).verdict == FINITE_LIMIT


def test_a_locking_vault_and_a_protected_bao_in_one_guest():
    both = facts(**P8, processes=(process(soft=None, vmsize=MIB), bao()), host_swap=NO_SWAP)
    assert judge(both).verdict == PROTECTED  # protected ranks just below ok: its sentence is worth reading
    exposed = dataclasses.replace(both, host_swap=SWAP_2G)
    assert judge(exposed).verdict == EXPOSED


def test_swap_verdict_order():
    assert worst([OK, PROTECTED]) == PROTECTED
    assert worst([PROTECTED, NOT_ENFORCED, EXPOSED]) == NOT_ENFORCED
    assert worst([FINITE_LIMIT, EXPOSED]) == EXPOSED
