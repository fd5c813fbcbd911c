# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which units could no longer start a binary once it carries a file capability: parsing systemctl's answers and
judging them. molecule/swap shows the real thing: vault-agent.service with CapabilityBoundingSet=CAP_SYSLOG."""

from __future__ import annotations

import os

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capabilities import CapabilityError, CapabilitySet
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_bounding import (
    FAIL,
    IGNORE,
    REPORT,
    BlockedUnit,
    blocked_units,
    check_units,
    parse_show,
    show_command,
    unit_names,
)

# As systemd 252 prints `systemctl show -p Id -p CapabilityBoundingSet -p ExecStart... -- UNITS` (Debian 12).
SHOW = """\
Id=vault.service
CapabilityBoundingSet=cap_chown cap_dac_override cap_ipc_lock cap_syslog
ExecStart={ path=/usr/bin/vault ; argv[]=/usr/bin/vault server -config=/etc/vault.d ; ignore_errors=no ; \
start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }

Id=vault-agent.service
CapabilityBoundingSet=cap_syslog
ExecStart={ path=/usr/local/bin/vault ; argv[]=/usr/local/bin/vault agent -config=/etc/vault-agent.hcl ; \
ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }

Id=vault-proxy-check.service
CapabilityBoundingSet=
ExecStartPre={ path=/usr/bin/vault ; argv[]=/usr/bin/vault version ; ignore_errors=yes ; start_time=[n/a] ; \
stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }
ExecStart={ path=/bin/true ; argv[]=/bin/true ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; \
code=(null) ; status=0/0 }

Id=cron.service
CapabilityBoundingSet=cap_syslog
ExecStart={ path=/usr/sbin/cron ; argv[]=/usr/sbin/cron -f ; ignore_errors=no ; start_time=[n/a] ; \
stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }
"""

LINKS = {"/usr/local/bin/vault": "/usr/bin/vault"}


def resolve(path):
    return LINKS.get(path, path)


def test_unit_names_from_both_listings_without_templates():
    files = "cron.service enabled enabled\ngetty@.service enabled enabled\nvault.service disabled enabled\n"
    loaded = "vault.service loaded active running Vault\nrun-x.service loaded active running transient\n"
    assert unit_names(files, loaded) == ["cron.service", "vault.service", "run-x.service"]


def test_show_command_asks_for_every_exec_line():
    argv = show_command(["a.service"])
    assert argv[:2] == ["systemctl", "show"] and argv[-2:] == ["--", "a.service"]
    assert {"ExecStart", "ExecStartPre", "ExecReload", "CapabilityBoundingSet", "Id"} <= set(argv)


def test_parse_show():
    units = {unit.name: unit for unit in parse_show(SHOW.replace("\\\n", ""))}
    assert units["vault-agent.service"].programs == ("/usr/local/bin/vault",)
    assert units["vault-agent.service"].bounding == frozenset({"cap_syslog"})
    assert units["vault-proxy-check.service"].programs == ("/usr/bin/vault", "/bin/true")
    assert units["vault-proxy-check.service"].bounding == frozenset()


def test_units_that_run_the_binary_through_a_link_and_lack_the_capability_are_blocked():
    found = blocked_units(parse_show(SHOW.replace("\\\n", "")), "/usr/bin/vault", ["cap_ipc_lock"], resolve)
    assert found == [BlockedUnit("vault-agent.service", ("cap_ipc_lock",)),
                     BlockedUnit("vault-proxy-check.service", ("cap_ipc_lock",))]
    assert str(found[0]) == "vault-agent.service (its CapabilityBoundingSet lacks cap_ipc_lock)"
    assert blocked_units(parse_show(SHOW.replace("\\\n", "")), "/usr/sbin/cron", ["cap_syslog"], resolve) == []


IPC_LOCK_EP = CapabilitySet(effective=frozenset({14}), permitted=frozenset({14}))


def fake_run(show=SHOW.replace("\\\n", "")):
    def run(argv):
        if argv[1] == "show":
            return 0, show, ""
        return 0, "vault.service enabled\nvault-agent.service enabled\ncron.service enabled\n", ""
    return run


@pytest.fixture
def with_systemd(monkeypatch):
    monkeypatch.setattr(os.path, "isdir", lambda path: True)
    monkeypatch.setattr(os.path, "realpath", resolve)


def test_fail_names_the_units_and_writes_nothing(with_systemd):
    with pytest.raises(CapabilityError) as raised:
        check_units(fake_run(), "/usr/bin/vault", IPC_LOCK_EP, FAIL)
    assert "could no longer be started by vault-agent.service (its CapabilityBoundingSet lacks cap_ipc_lock)" \
        in str(raised.value)
    assert "nothing was written" in str(raised.value)


def test_report_and_ignore(with_systemd):
    assert [unit.name for unit in check_units(fake_run(), "/usr/bin/vault", IPC_LOCK_EP, REPORT)] == [
        "vault-agent.service", "vault-proxy-check.service"]
    assert check_units(fake_run(), "/usr/bin/vault", IPC_LOCK_EP, IGNORE) is None
    # No effective bit: the kernel runs the binary with what it may have; nothing to look for.
    assert check_units(fake_run(), "/usr/bin/vault", CapabilitySet(permitted=frozenset({14})), FAIL) is None
    assert check_units(fake_run(), "/usr/bin/vault", None, FAIL) is None


def test_without_systemd_nothing_is_looked_for(monkeypatch):
    monkeypatch.setattr(os.path, "isdir", lambda path: False)
    assert check_units(fake_run(), "/usr/bin/vault", IPC_LOCK_EP, FAIL) is None


def test_a_failing_systemctl_stops_before_writing(with_systemd):
    with pytest.raises(CapabilityError, match="units: asking systemd which units run /usr/bin/vault failed"):
        check_units(lambda argv: (1, "", "Failed to connect to bus"), "/usr/bin/vault", IPC_LOCK_EP, FAIL)


def test_bad_choice():
    with pytest.raises(CapabilityError, match="units: 'maybe' is not one of fail, report, ignore"):
        check_units(fake_run(), "/usr/bin/vault", IPC_LOCK_EP, "maybe")
