# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import ProcessFacts
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, MemlockReport
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import (
    CONTAINER,
    ERROR,
    MACHINE,
    NOT_RUNNING,
    OK,
    RESTART_PENDING,
    TOO_LOW,
    UNKNOWN,
    VERDICTS,
    VIRTUAL_MACHINE,
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


def limit(soft, hard=None):
    return MemlockLimit(soft, soft if hard is None else hard)


def process(soft=256 * KIB, hard=None, vmsize=int(1.3 * GIB), vmlck=None, cap=False, caps="", pid=58, name="vault"):
    memlock = limit(soft, hard)
    return ProcessFacts(
        pid=pid, host_pid=None, name=name, memlock=MemlockReport.of(memlock), vmsize_bytes=vmsize,
        vmlck_bytes=vmsize if vmlck is None else vmlck, cap_ipc_lock_effective=cap, cap_ipc_lock_bounding=True,
        binary="/usr/bin/vault", binary_capabilities=caps,
    )


def facts(**changes):
    base = VerdictFacts(subject="guest g1", pid1_memlock=limit(256 * KIB), in_user_namespace=True)
    return dataclasses.replace(base, **changes)


DAEMON_256K = dict(daemon_memlock=limit(256 * KIB), after_restart=limit(256 * KIB),
                   after_restart_source="the LXD daemon")

CASES = [
    # (id, facts, verdict, the whole message or the parts it must hold)
    ("error", facts(error="exec failed: boom"), ERROR, "guest g1: exec failed: boom"),
    ("stopped, nothing known", facts(running=False, status="Stopped", pid1_memlock=None), NOT_RUNNING,
     "guest g1 is stopped: nothing runs to judge"),
    ("stopped, will start with enough",
     facts(running=False, status="Stopped", required_given=True, required_bytes=MIB, **DAEMON_256K), NOT_RUNNING,
     "guest g1 is stopped: nothing runs to judge; it will start with 256 KiB from the LXD daemon, "
     "below the required 1 MiB: restart the guest after raising the LXD daemon's LimitMEMLOCK to at least 1 MiB "
     "(vault_mlock.lxd.memlock_dropin) or set limits.kernel.memlock"),
    ("stopped, will start with too little",
     facts(running=False, status="Stopped", required_given=True, required_bytes=64 * KIB, **DAEMON_256K),
     NOT_RUNNING, ["it will start with 256 KiB", "enough for the required 64 KiB"]),
    ("running, PID 1 unreadable", facts(pid1_memlock=None), ERROR, "could not be read"),
    ("no process, no required", facts(), UNKNOWN,
     "guest g1: PID 1 may lock 256 KiB (ulimit -l 256), but no vault or bao process runs and no required size "
     "was given, so nothing can be judged: start vault or pass required"),
    ("no process, required fits", facts(required_given=True, required_bytes=128 * KIB), OK,
     "guest g1: no vault or bao process runs; PID 1 may lock 256 KiB (ulimit -l 256), enough for the required "
     "128 KiB"),
    ("no process, required too big, daemon unknown", facts(required_given=True, required_bytes=GIB), TOO_LOW,
     "guest g1: no vault or bao process runs and PID 1 may lock 256 KiB (ulimit -l 256), below the required 1 GiB; "
     "restart the guest after raising the LXD daemon's LimitMEMLOCK to at least 1 GiB "
     "(vault_mlock.lxd.memlock_dropin) or set limits.kernel.memlock"),
    ("no process, required infinity", facts(required_given=True, required_bytes=None), TOO_LOW,
     ["below the required infinity", "LimitMEMLOCK to infinity"]),
    ("no process, a restart would give enough",
     facts(required_given=True, required_bytes=4 * MIB, daemon_memlock=limit(8 * MIB), after_restart=limit(8 * MIB),
           after_restart_source="the LXD daemon"), RESTART_PENDING,
     "guest g1: no vault or bao process runs and PID 1 may lock 256 KiB (ulimit -l 256), below the required 4 MiB; "
     "the LXD daemon now gives 8 MiB, so restart the guest to apply it"),
    ("the brief's example", facts(processes=(process(),), **DAEMON_256K), TOO_LOW,
     "guest g1: PID 1 may lock 256 KiB (ulimit -l 256) but vault needs its whole VmSize 1.3 GiB locked; restart "
     "the guest after raising the LXD daemon's LimitMEMLOCK to at least 1.3 GiB (vault_mlock.lxd.memlock_dropin) "
     "or set limits.kernel.memlock"),
    ("VmSize fits", facts(pid1_memlock=limit(8 * MIB), processes=(process(soft=8 * MIB, vmsize=MIB),)), OK,
     "guest g1: vault (PID 58) may lock 8 MiB (ulimit -l 8192), enough for its whole VmSize 1 MiB locked"),
    ("fits without limit", facts(pid1_memlock=limit(None), processes=(process(soft=None),)), OK,
     "may lock without limit (ulimit -l unlimited)"),
    ("fits but nothing locked",
     facts(pid1_memlock=limit(8 * MIB), processes=(process(soft=8 * MIB, vmsize=MIB, vmlck=0),)), OK,
     "but it has nothing locked (VmLck 0): is disable_mlock set?"),
    ("fits now, not after a restart",
     facts(pid1_memlock=limit(8 * MIB), processes=(process(soft=8 * MIB, vmsize=MIB),), **DAEMON_256K), OK,
     "; beware: after a restart it would get only 256 KiB from the LXD daemon, too little"),
    ("privileged: CAP_IPC_LOCK lifts the limit",
     facts(in_user_namespace=False, processes=(process(soft=64 * KIB, cap=True),)), OK,
     "guest g1: vault (PID 58) holds CAP_IPC_LOCK outside any user namespace, so its memlock limit does not bind it"),
    ("unprivileged: the file capability does not help",
     facts(processes=(process(cap=True, caps="cap_ipc_lock=ep"),)), TOO_LOW,
     "needs its whole VmSize 1.3 GiB locked (its CAP_IPC_LOCK does not count in an unprivileged guest); "),
    ("unprivileged root without file capabilities: no word on them", facts(processes=(process(cap=True),)), TOO_LOW,
     "but vault needs its whole VmSize 1.3 GiB locked; restart"),
    ("the process's own limit is lower than PID 1's",
     facts(pid1_memlock=limit(8 * MIB), processes=(process(soft=512 * KIB, hard=8 * MIB, vmsize=MIB),)), TOO_LOW,
     "guest g1: vault (PID 58) may lock 512 KiB (ulimit -l 512) but needs its whole VmSize 1 MiB locked, although "
     "PID 1 may lock 8 MiB (ulimit -l 8192): raise LimitMEMLOCK= in vault's systemd unit (systemd clamps it to "
     "8 MiB), or start vault through systemd rather than from a shell (an `lxc exec` shell has the LXD daemon's "
     "limit)"),
    ("required above VmSize",
     facts(required_given=True, required_bytes=2 * GIB, pid1_memlock=limit(GIB),
           processes=(process(soft=GIB, vmsize=MIB),)), TOO_LOW,
     "PID 1 may lock 1 GiB (ulimit -l 1048576) but vault needs the required 2 GiB;"),
    ("limits.kernel.memlock raised, guest not restarted",
     facts(processes=(process(vmsize=MIB),), limits_kernel_memlock=limit(4 * MIB), after_restart=limit(4 * MIB),
           after_restart_source="limits.kernel.memlock", daemon_memlock=limit(8 * MIB)), RESTART_PENDING,
     "; limits.kernel.memlock now gives 4 MiB, so restart the guest to apply it"),
    ("daemon's hard limit leaves room for limits.kernel.memlock",
     facts(processes=(process(vmsize=MIB),), daemon_memlock=limit(256 * KIB, 8 * MIB),
           after_restart=limit(256 * KIB), after_restart_source="the LXD daemon"), TOO_LOW,
     "; set limits.kernel.memlock to at least 1 MiB (the LXD daemon's hard limit allows up to 8 MiB) and restart "
     "the guest"),
    ("limits.kernel.memlock set too low, daemon has room",
     facts(processes=(process(vmsize=MIB),), daemon_memlock=limit(8 * MIB), limits_kernel_memlock=limit(256 * KIB),
           after_restart=limit(256 * KIB), after_restart_source="limits.kernel.memlock"), TOO_LOW,
     "; raise limits.kernel.memlock to at least 1 MiB (the LXD daemon's hard limit allows up to 8 MiB)"),
    ("limits.kernel.memlock set and the daemon too low",
     facts(processes=(process(),), daemon_memlock=limit(8 * MIB), limits_kernel_memlock=limit(256 * KIB),
           after_restart=limit(256 * KIB), after_restart_source="limits.kernel.memlock"), TOO_LOW,
     "restart the guest after raising the LXD daemon's LimitMEMLOCK to at least 1.3 GiB "
     "(vault_mlock.lxd.memlock_dropin), then limits.kernel.memlock too"),
    ("virtual machine", facts(kind=VIRTUAL_MACHINE, in_user_namespace=False, processes=(process(),)), TOO_LOW,
     "; raise the memlock limit inside the VM to at least 1.3 GiB (DefaultLimitMEMLOCK= in systemd's system.conf, "
     "or LimitMEMLOCK= in vault's unit), or give vault CAP_IPC_LOCK (vault_mlock.lxd.file_capability), which "
     "lifts the limit here"),
    ("inside a machine", facts(subject="this machine", kind=MACHINE, processes=(process(),)), TOO_LOW,
     ["this machine: PID 1 may lock 256 KiB", "raise the memlock limit PID 1 inherits to at least 1.3 GiB and "
      "restart this machine", "vault_mlock.lxd.memlock_probe on the host tells which)"]),
    ("the worst process speaks",
     facts(pid1_memlock=limit(8 * MIB),
           processes=(process(soft=8 * MIB, vmsize=MIB), process(soft=8 * MIB, vmsize=GIB, pid=99, name="bao"))),
     TOO_LOW, "PID 1 may lock 8 MiB (ulimit -l 8192) but bao needs its whole VmSize 1 GiB locked"),
]


@pytest.mark.parametrize("verdict_facts, verdict, expected", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_judge(verdict_facts, verdict, expected):
    got_verdict, message = judge(verdict_facts)
    assert got_verdict == verdict
    if isinstance(expected, str) and expected.startswith("guest g1"):
        assert message == expected  # a whole message
    for part in [expected] if isinstance(expected, str) else expected:
        assert part in message
    assert "\n" not in message


def test_judge_is_pure():
    verdict_facts = facts(processes=(process(),), **DAEMON_256K)
    assert judge(verdict_facts) == judge(verdict_facts)
    assert verdict_facts == facts(processes=(process(),), **DAEMON_256K)


def test_a_process_too_big_in_a_privileged_guest_without_the_capability_is_too_low():
    verdict, message = judge(facts(in_user_namespace=False, processes=(process(),)))
    assert verdict == TOO_LOW
    assert message.endswith(", or give vault CAP_IPC_LOCK (vault_mlock.lxd.file_capability), which lifts the limit "
                            "here")


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
        ([RESTART_PENDING, TOO_LOW], TOO_LOW),
        ([TOO_LOW, ERROR, OK], ERROR),
    ],
)
def test_worst(verdicts, expected):
    assert worst(verdicts) == expected


def test_summarize_counts_every_verdict():
    counts = summarize([OK, OK, TOO_LOW, NOT_RUNNING])
    assert set(counts) == set(VERDICTS)
    assert counts == {ERROR: 0, TOO_LOW: 1, RESTART_PENDING: 0, UNKNOWN: 0, NOT_RUNNING: 1, OK: 2}
    assert CONTAINER == "container"
