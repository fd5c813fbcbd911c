# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from _daemon_host import KIB, MIB, SHOW_DEB, SHOW_SNAP, show_text

from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, parse_limit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_show import UnitShowError, parse_exec_value, parse_show

L = parse_limit


# ---- parsing: systemd 252's own `systemctl show` output -------------------------------------

def test_parse_show_deb():
    unit = parse_show(show_text(SHOW_DEB, 231, L("512K:8M")), "lxd.service")
    assert unit.name == "lxd.service" and unit.load_state == "loaded" and unit.active_state == "active"
    assert unit.main_pid == 231 and unit.kill_mode == "process" and unit.restart == "on-failure"
    assert unit.exec_stop == () and unit.exec_reload == ()
    assert unit.limit == MemlockLimit(512 * KIB, 8 * MIB)
    assert not unit.need_daemon_reload


def test_parse_show_snap():
    unit = parse_show(show_text(SHOW_SNAP, 0, L("infinity"), "inactive", need_reload=True), "snap.lxd.daemon")
    assert unit.name == "snap.lxd.daemon.service" and unit.main_pid is None
    assert unit.exec_stop == (("/usr/bin/snap", "run", "--command=stop", "lxd.daemon"),)
    assert unit.exec_reload == (("/usr/bin/snap", "run", "--command=reload", "lxd.daemon"),)
    assert unit.limit == MemlockLimit(None, None) and unit.need_daemon_reload


def test_parse_show_two_exec_stop_lines():
    # systemd 252, a unit with ExecStop=/bin/echo "a b" c and ExecStop=-/bin/true: argv joined unquoted.
    text = (
        "MainPID=0\n"
        "ExecStop={ path=/bin/echo ; argv[]=/bin/echo a b c ; ignore_errors=no ; start_time=[n/a] ; "
        "stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }\n"
        "ExecStop={ path=/bin/true ; argv[]=/bin/true ; ignore_errors=yes ; start_time=[n/a] ; "
        "stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }\n"
    )
    assert parse_show(text, "two.service").exec_stop == (("/bin/echo", "a", "b", "c"), ("/bin/true",))


@pytest.mark.parametrize("value, argv", [
    ("{ path=/bin/kill ; argv[]=/bin/kill -HUP $MAINPID ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; "
     "pid=0 ; code=(null) ; status=0/0 }", ("/bin/kill", "-HUP", "$MAINPID")),
    ("{ path=/bin/x ; argv[]=/bin/x it's ; flags= ; start_time=[n/a] }", ("/bin/x", "it's")),
    ("", None),
])
def test_parse_exec_value(value, argv):
    assert parse_exec_value(value) == argv


def test_parse_show_refuses_a_garbled_limit():
    with pytest.raises(UnitShowError, match="unit: cannot read"):
        parse_show("LimitMEMLOCK=lots\nLimitMEMLOCKSoft=1\n", "lxd.service")
