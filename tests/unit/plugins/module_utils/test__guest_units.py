# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import subprocess

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import (
    UNITS_SCRIPT,
    UnitFacts,
    UnitsFacts,
    asked_after_start,
    mlock_failure_line,
    parse_exec_start,
    parse_units,
    split_sections,
    units_command,
    with_service_limits,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, MemlockReport

MIB = 1 << 20

# Printed by UNITS_SCRIPT in a Debian 12 guest (systemd 252) started with limits.kernel.memlock=262144:4194304,
# whose vault.service (the stand-in) died when it grew past its limit and waits to restart.
REAL_OUTPUT = """\
@@systemd manager
DefaultLimitMEMLOCK=8388608
DefaultLimitMEMLOCKSoft=8388608
@@unit vault.service
Result=exit-code
NRestarts=0
ExecMainCode=1
ExecMainStatus=1
LimitMEMLOCK=8388608
LimitMEMLOCKSoft=8388608
LoadState=loaded
ActiveState=activating
SubState=auto-restart
InvocationID=8c5cee6127cd4e5e96425046ccdfd86b
@@journal vault.service
| memory locked
| fatal: Failed to lock memory: a new mapping of 8388608 bytes under mlockall(MCL_FUTURE): Resource temporarily \
unavailable
| @@unit forged.service
@@unit openbao.service
Result=success
NRestarts=0
ExecMainCode=0
ExecMainStatus=0
LimitMEMLOCK=4194304
LimitMEMLOCKSoft=4194304
LoadState=not-found
ActiveState=inactive
SubState=dead
InvocationID=
"""


def test_parse_real_output():
    facts = parse_units(REAL_OUTPUT, ["vault.service", "openbao.service"])
    assert facts.systemd is True
    assert facts.default_memlock.systemd_value == "8M"
    vault, openbao = facts.units
    assert (vault.loaded, vault.down, vault.state) == (True, True, "activating (auto-restart, exit-code)")
    assert (vault.restarts, vault.exit_status, vault.asked.systemd_value) == (0, 1, "8M")
    assert vault.journal[0] == "memory locked"
    assert vault.journal[-1] == "@@unit forged.service"  # a logged line never passes for a section
    assert vault.mlock_failure.startswith("fatal: Failed to lock memory: a new mapping")
    assert (openbao.loaded, openbao.journal, openbao.mlock_failure) == (False, [], "")
    assert facts.loaded == [vault]


def test_parse_without_systemd():
    assert parse_units("@@systemd absent\n", ["vault.service"]) == UnitsFacts(False, None, [])


@pytest.mark.parametrize("output", ["", "Failed to connect to bus: No such file or directory\n"])
def test_parse_without_an_answer(output):
    with pytest.raises(ValueError, match="no answer from systemd"):
        parse_units(output, ["vault.service"])


def test_a_unit_missing_from_the_output_counts_as_not_found():
    unit = parse_units("@@systemd manager\n", ["vault.service"]).units[0]
    assert (unit.load_state, unit.asked, unit.loaded) == ("not-found", None, False)


@pytest.mark.parametrize(
    "lines, expected",
    [
        (["Error initializing core: Failed to lock memory: cannot allocate memory", "more"],
         "Error initializing core: Failed to lock memory: cannot allocate memory"),
        (["warning: -k invalid, mlockall() failed: Cannot allocate memory"],
         "warning: -k invalid, mlockall() failed: Cannot allocate memory"),
        (["listening on 0.0.0.0:8200", "Error parsing config"], ""),
        ([], ""),
    ],
)
def test_mlock_failure_line(lines, expected):
    assert mlock_failure_line(lines) == expected


def unit(asked, load="loaded"):
    return UnitFacts(name="vault.service", load_state=load, active_state="inactive", sub_state="dead", result="",
                     restarts=0, exit_status=0, asked=MemlockReport.of(asked) if asked else None)


def test_with_service_limits_clamps_as_systemd_does():
    units = UnitsFacts(True, MemlockReport.of(MemlockLimit(8 * MIB, 8 * MIB)),
                       [unit(MemlockLimit(None, None)), unit(MemlockLimit(MIB, MIB)), unit(None),
                        unit(MemlockLimit(None, None), load="not-found")])
    resolved = with_service_limits(units, MemlockLimit(4 * MIB, 4 * MIB), False)
    assert [u.memlock and u.memlock.systemd_value for u in resolved.units] == ["4M", "1M", None, None]
    resolved = with_service_limits(units, MemlockLimit(4 * MIB, 4 * MIB), True)
    assert resolved.units[0].memlock.systemd_value == "infinity"


def test_asked_after_start_is_the_units_own_value_not_systemds_default():
    default = MemlockReport.of(MemlockLimit(8 * MIB, 8 * MIB))
    assert asked_after_start(None) is None
    assert asked_after_start(UnitsFacts(True, default, [unit(MemlockLimit(8 * MIB, 8 * MIB))])) is None
    assert asked_after_start(UnitsFacts(True, default, [unit(MemlockLimit(None, None))])) == MemlockLimit(None, None)


def test_units_command_and_sections():
    argv = units_command(["vault.service", "openbao.service"], ["vault", "bao"])
    assert argv == ["sh", "-c", UNITS_SCRIPT, "sh", "vault.service openbao.service", "vault bao"]
    assert split_sections("junk\n@@a b\nx\n@@c d\n") == {("a", "b"): "x\n", ("c", "d"): "\n"}


def test_units_script_runs_in_a_posix_sh():
    """dash here; the same text runs in busybox guests. Without systemd as PID 1 it says so."""
    output = subprocess.run(units_command(["vault.service"]), capture_output=True, text=True, check=True).stdout
    facts = parse_units(output, ["vault.service"])
    assert isinstance(facts.systemd, bool)
    assert facts.loaded == [] or facts.loaded[0].name == "vault.service"


FAKE_SYSTEMCTL = r"""#!/bin/sh
# Answers `systemctl show -p A -p B ... UNIT` with A=... for every property asked: MemorySwapMax=0, others 1.
[ "$1" = show ] || exit 1
shift
while [ $# -gt 0 ]; do
  case "$1" in
    -p) shift; case "$1" in
          MemorySwapMax) echo "MemorySwapMax=0" ;;
          LoadState) echo "LoadState=loaded" ;;
          InvocationID) echo "InvocationID=" ;;
          *) echo "$1=1" ;;
        esac ;;
  esac
  shift
done
"""


def run_with_fake_systemctl(tmp_path, systemctl, argv):
    """argv as a guest runs it, with systemd's directory in a private /run and ``systemctl`` (a script) on PATH."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "systemctl").write_text(systemctl)
    (fake / "systemctl").chmod(0o755)
    inner = 'mount -t tmpfs none /run && mkdir -p /run/systemd/system && PATH="$0:$PATH" exec "$@"'
    run = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", inner, str(fake)] + argv,
                         capture_output=True, text=True, check=False)
    if run.returncode != 0:
        pytest.skip(f"no private mount namespace here: {run.stderr.strip()}")
    return run.stdout


def test_units_script_asks_systemd_for_memory_swap_max(tmp_path):
    """A systemctl that answers exactly what it is asked: MemorySwapMax must be among the properties asked."""
    output = run_with_fake_systemctl(tmp_path, FAKE_SYSTEMCTL, units_command(["openbao.service"]))
    facts = parse_units(output, ["openbao.service"])
    assert facts.loaded[0].memory_swap_max == "0"


# `systemctl show -p Id -p ExecStart -- '*.service'` as systemd 252 printed it in a Debian 12 guest (shortened).
GLOB_SHOW = """\
ExecStart={ path=/usr/sbin/cron ; argv[]=/usr/sbin/cron -f ; ignore_errors=no ; start_time=[n/a] ; pid=0 }
Id=cron.service

ExecStart={ path=/usr/local/bin/bao ; argv[]=/usr/local/bin/bao server -config=/etc/x.hcl ; ignore_errors=no }
Id=secrets.service

Id=systemd-journald.service
"""


def test_units_script_finds_a_bao_unit_by_its_exec_start(tmp_path):
    """The script's awk against systemctl's real layout: a unit whose ExecStart runs bao is asked about too."""
    systemctl = FAKE_SYSTEMCTL.replace('[ "$1" = show ] || exit 1', '[ "$1" = show ] || exit 1\n'
                                       'case "$*" in *"*.service"*) cat "$(dirname "$0")/glob"; exit 0 ;; esac')
    (tmp_path / "glob").write_text(GLOB_SHOW)
    output = run_with_fake_systemctl(tmp_path, systemctl.replace('$(dirname "$0")/glob', str(tmp_path / "glob")),
                                     units_command(["vault.service"], ["vault", "bao"]))
    facts = parse_units(output, ["vault.service"])
    assert [unit.name for unit in facts.units] == ["vault.service", "secrets.service"]


# Printed by UNITS_SCRIPT in a Debian 12 guest (systemd 252) for vault.service and openbao.service, where neither
# exists and secrets.service runs bao (found by its ExecStart) and failed; the sections of the two missing units
# left out (a unit printed nothing for counts as not found).
BY_EXEC_OUTPUT = REAL_OUTPUT[:REAL_OUTPUT.index("@@unit")] + """\
@@unit secrets.service
Result=exit-code
ExecMainStatus=203
ExecStart={ path=/usr/local/bin/bao ; argv[]=/usr/local/bin/bao server -config=/etc/x.hcl ; ignore_errors=no ; \
start_time=[Mon 2026-12-07 23:49:53 UTC] ; stop_time=[Mon 2026-12-07 23:49:53 UTC] ; pid=67 ; code=exited ; status=203 }
MemorySwapMax=infinity
LimitMEMLOCK=8388608
LimitMEMLOCKSoft=8388608
LoadState=loaded
ActiveState=failed
SubState=failed
InvocationID=fc07100f7a2c4a468dfa7b473e944150
@@journal secrets.service
| secrets.service: Failed to locate executable /usr/local/bin/bao: No such file or directory
| secrets.service: Failed at step EXEC spawning /usr/local/bin/bao: No such file or directory
""".replace("\\\n", "")


def test_a_unit_found_by_its_exec_start_is_reported_after_those_named():
    facts = parse_units(BY_EXEC_OUTPUT, ["vault.service", "openbao.service"])
    assert [unit.name for unit in facts.units] == ["vault.service", "openbao.service", "secrets.service"]
    found = facts.loaded[0]
    assert found.exec_argv == ("/usr/local/bin/bao", "server", "-config=/etc/x.hcl")
    assert found.reason == ('Result=exit-code, exit status 203: its journal\'s last line: "secrets.service: Failed at '
                            'step EXEC spawning /usr/local/bin/bao: No such file or directory"')


@pytest.mark.parametrize("value, argv", [
    ("{ path=/usr/bin/vault ; argv[]=/usr/bin/vault agent -config=/etc/a.hcl ; flags= ; start_time=[n/a] }",
     ("/usr/bin/vault", "agent", "-config=/etc/a.hcl")),
    ("", ()),
    ("garbage", ()),
])
def test_parse_exec_start(value, argv):
    assert parse_exec_start(value) == argv
