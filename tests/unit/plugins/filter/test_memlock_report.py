# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses

import pytest
from ansible.errors import AnsibleFilterError
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.vault_mlock.lxd.plugins.filter.memlock_report import (
    FilterModule,
    memlock_failures,
    memlock_metrics,
    memlock_table,
    memlock_textfile,
)


def memlock(value, soft, hard=None):
    hard = soft if hard is None else hard
    return {"soft_bytes": soft, "hard_bytes": hard, "soft_ulimit_kib": None if soft is None else soft // 1024,
            "hard_ulimit_kib": None if hard is None else hard // 1024, "systemd_value": value}


def guest(name, verdict, message="", **more):
    base = {"name": name, "status": "Running", "privileged": False, "lxd_at_start": None, "lxd_now": None,
            "pid1": None, "processes": [], "service": None, "restart_required": False, "restart_reason": "",
            "verdict": verdict, "message": message}
    return dict(base, **more)


PROBE = {
    "endpoint": "/var/lib/lxd/unix.socket",
    "daemon": {"server_name": "host1", "memlock": memlock("4M", 4 << 20)},
    "instances": [
        guest("vault", "ok", "guest vault: vault (PID 98) holds CAP_IPC_LOCK outside any user namespace",
              privileged=True,
              lxd_at_start={"memlock": memlock("4M", 4 << 20), "source": "the LXD daemon"},
              lxd_now={"memlock": memlock("4M", 4 << 20), "source": "the LXD daemon"},
              pid1={"memlock": memlock("4M", 4 << 20)},
              processes=[{"vmlck_bytes": 3 << 20, "vmsize_bytes": 3 << 20}],
              service={"name": "vault (PID 98)", "source": "process", "memlock": memlock("4M", 4 << 20)}),
        guest("soft", "finite_limit", "guest soft: ... a finite limit ...",
              lxd_at_start={"memlock": memlock("256K:4M", 256 << 10, 4 << 20), "source": "limits.kernel.memlock"},
              lxd_now={"memlock": memlock("256K:4M", 256 << 10, 4 << 20), "source": "limits.kernel.memlock"},
              pid1={"memlock": memlock("4M", 4 << 20)},
              service={"name": "vault.service", "source": "unit", "memlock": memlock("4M", 4 << 20)}),
        guest("stale", "too_low", "guest stale: vault.service is failed ...",
              lxd_at_start={"memlock": memlock("512K", 512 << 10), "source": "the LXD daemon"},
              restart_required=True, restart_reason="it started with 512K from the LXD daemon; ..."),
        guest("off", "not_running", "guest off is stopped", status="Stopped", privileged=None),
    ],
}


def test_memlock_table():
    lines = memlock_table(PROBE)
    assert lines[0] == "LXD daemon host1 hands new guests ulimit -l 4096 (4M)"
    assert lines[1].split() == ["GUEST", "STATUS", "PRIV", "LXD", "AT", "START", "LXD", "NOW", "PID", "1",
                                "SERVICE", "LOCKED/VMSIZE", "VERDICT"]
    assert lines[2].split() == ["vault", "Running", "yes", "4M", "4M", "4M", "vault", "(PID", "98):", "4M",
                                "3", "MiB/3", "MiB", "ok"]
    assert lines[3].split() == ["soft", "Running", "no", "256K:4M", "256K:4M", "4M", "vault.service:", "4M", "-",
                                "finite_limit"]
    assert lines[4].split() == ["stale", "Running", "no", "512K", "(restart)", "-", "-", "-", "-", "too_low"]
    assert lines[5].split() == ["off", "Stopped", "-", "-", "-", "-", "-", "-", "not_running"]
    # Columns line up: each row's verdict starts where the header's does.
    words = ["VERDICT", "ok", "finite_limit", "too_low", "not_running"]
    assert len({line.index(word) for line, word in zip(lines[1:6], words)}) == 1
    assert lines[6:] == ["  guest soft: ... a finite limit ...", "  guest stale: vault.service is failed ...",
                         "  guest stale needs a restart: it started with 512K from the LXD daemon; ...",
                         "  guest off is stopped"]


BAO_NO_SWAP = ("guest bao: bao (PID 196) does not lock its memory (OpenBao removed mlock in 2.0), so it needs no "
               "memlock limit; the host has no swap, so none of its memory can be written to swap")
BAO_SWAP = "guest bao2: bao (PID 77) does not lock its memory (...); nothing keeps its memory out of the host's swap"


def bao_guest(name, verdict, message):
    return guest(name, verdict, message, pid1={"memlock": memlock("8M", 8 << 20)},
                 processes=[{"vmlck_bytes": 0, "vmsize_bytes": 211104532 << 10}],
                 service={"name": "bao (PID 196)", "source": "process", "memlock": memlock("8M", 8 << 20),
                          "locks_memory": False})


def test_memlock_table_shows_a_server_that_does_not_lock():
    """bao's real VmSize, no memlock limit asked of it, and its sentence (protected is not ok: it is worth reading)."""
    lines = memlock_table({"instances": [bao_guest("bao", "protected", BAO_NO_SWAP),
                                         bao_guest("bao2", "exposed", BAO_SWAP)]})
    assert lines[1].split() == ["bao", "Running", "no", "-", "-", "8M", "bao", "(PID", "196):", "no", "mlock",
                                "0", "bytes/201.3", "GiB", "protected"]
    assert lines[2].split()[-1] == "exposed"
    assert lines[3:] == ["  " + BAO_NO_SWAP, "  " + BAO_SWAP]


def test_memlock_failures_count_swap_verdicts():
    probe = {"instances": [bao_guest("bao", "protected", BAO_NO_SWAP), bao_guest("bao2", "exposed", BAO_SWAP),
                           bao_guest("bao3", "not_enforced", "n"), bao_guest("bao4", "unknown", "u")]}
    assert memlock_failures(probe) == [BAO_SWAP, "n"]
    assert memlock_failures(probe, unknown_fails=True) == [BAO_SWAP, "n", "u"]
    assert memlock_failures(probe, ["exposed", "unknown"], unknown_fails=True) == [BAO_SWAP, "u"]


def test_memlock_table_of_the_instances_alone_has_no_daemon_line():
    assert memlock_table(PROBE["instances"])[0].startswith("GUEST")


def test_memlock_table_of_a_real_report_shape():
    from ansible_collections.vault_mlock.lxd.plugins.module_utils._probe_report import DaemonFacts, ProbeReport

    report = ProbeReport(endpoint="x", project="default", daemon=DaemonFacts(1, "", False, False, None), instances=[])
    assert memlock_table(dataclasses.asdict(report))[0] == "LXD daemon x hands new guests an unknown memlock limit"


def test_memlock_failures():
    assert memlock_failures(PROBE) == ["guest soft: ... a finite limit ...", "guest stale: vault.service is failed ..."]
    assert memlock_failures(PROBE["instances"], ["too_low"]) == ["guest stale: vault.service is failed ..."]
    assert memlock_failures({"instances": []}) == []


@pytest.mark.parametrize("value", ["text", 42, {"no": "instances"}])
def test_filters_refuse_what_is_no_probe_result(value):
    for function in (memlock_table, memlock_failures, memlock_metrics):
        with pytest.raises(AnsibleFilterError, match="expected the result of vault_mlock.lxd.memlock_probe"):
            function(value)


def test_filter_module():
    assert set(FilterModule().filters()) == {"memlock_table", "memlock_failures", "memlock_metrics",
                                             "memlock_textfile"}


def test_memlock_metrics():
    metrics = memlock_metrics(dict(PROBE, project="vault"))
    assert [item["guest"] for item in metrics] == ["vault", "soft", "stale", "off"]
    assert {item["project"] for item in metrics} == {"vault"}
    vault, soft, stale, off = metrics
    assert vault == {"guest": "vault", "project": "vault", "status": "Running", "verdict": "ok", "failing": False,
                     "restart_required": False,
                     "memlock_bytes": {"lxd_at_start": 4 << 20, "lxd_now": 4 << 20, "pid1": 4 << 20, "service": 4 << 20},
                     "locked_bytes": 3 << 20, "vmsize_bytes": 3 << 20}
    assert soft["failing"] and soft["memlock_bytes"]["lxd_at_start"] == 256 << 10
    assert stale["restart_required"] and stale["memlock_bytes"] == {"lxd_at_start": 512 << 10}
    assert stale["locked_bytes"] is None
    assert (off["verdict"], off["failing"], off["memlock_bytes"]) == ("not_running", False, {})


def test_memlock_metrics_fail_on_unknown_only_when_asked():
    probe = {"instances": [bao_guest("bao4", "unknown", "u")]}
    assert [item["failing"] for item in memlock_metrics(probe)] == [False]
    assert [item["failing"] for item in memlock_metrics(probe, unknown_fails=True)] == [True]


def _parsed(text):
    """(family, type, [(labels, value)]) as Prometheus' own text parser reads the textfile."""
    return [(family.name, family.type, [(sample.labels, sample.value) for sample in family.samples])
            for family in text_string_to_metric_families(text)]


def test_memlock_textfile_is_what_prometheus_reads():
    unlimited = guest("inf", "ok", pid1={"memlock": memlock("infinity", None)},
                      service={"name": "vault.service", "memlock": memlock("infinity", None)})
    families = dict((name, (kind, samples)) for name, kind, samples in
                    _parsed(memlock_textfile(memlock_metrics({"project": "default",
                                                              "instances": PROBE["instances"] + [unlimited]}))))
    assert set(families) == {"vault_mlock_lxd_guest_" + name for name in
                             ("info", "failing", "restart_required", "memlock_bytes", "locked_bytes", "vmsize_bytes")}
    assert {kind for kind, samples in families.values()} == {"gauge"}
    info = families["vault_mlock_lxd_guest_info"][1]
    assert [(labels["guest"], labels["verdict"], value) for labels, value in info] == [
        ("vault", "ok", 1), ("soft", "finite_limit", 1), ("stale", "too_low", 1), ("off", "not_running", 1),
        ("inf", "ok", 1)]
    assert {labels["project"] for labels, value in info} == {"default"}
    failing = {labels["guest"]: value for labels, value in families["vault_mlock_lxd_guest_failing"][1]}
    assert failing == {"vault": 0, "soft": 1, "stale": 1, "off": 0, "inf": 0}
    restart = {labels["guest"]: value for labels, value in families["vault_mlock_lxd_guest_restart_required"][1]}
    assert restart == {"vault": 0, "soft": 0, "stale": 1, "off": 0, "inf": 0}
    limits = {(labels["guest"], labels["source"]): value
              for labels, value in families["vault_mlock_lxd_guest_memlock_bytes"][1]}
    assert limits[("soft", "lxd_at_start")] == 256 << 10 and limits[("stale", "lxd_at_start")] == 512 << 10
    assert limits[("inf", "service")] == float("inf") and ("inf", "lxd_now") not in limits
    assert [sample[1] for sample in families["vault_mlock_lxd_guest_locked_bytes"][1]] == [3 << 20]


def test_memlock_textfile_escapes_label_values():
    odd = 'a"b\\c\nd'
    text = memlock_textfile([{"guest": odd, "project": "p", "status": "Running", "verdict": "ok", "failing": False,
                              "restart_required": False, "memlock_bytes": {}, "locked_bytes": None,
                              "vmsize_bytes": None}])
    assert _parsed(text)[0][2] == [({"guest": odd, "project": "p", "status": "Running", "verdict": "ok"}, 1)]


def test_memlock_textfile_of_no_guest_is_headers_only():
    assert [family[2] for family in _parsed(memlock_textfile([]))] == [[]] * 6


@pytest.mark.parametrize("value", ["text", {"guest": "x"}, [1]])
def test_memlock_textfile_refuses_what_is_no_metrics(value):
    with pytest.raises(AnsibleFilterError, match="memlock_textfile: expected the list"):
        memlock_textfile(value)
