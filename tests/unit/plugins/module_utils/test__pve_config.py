# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Proxmox VE's container configuration, from texts in the form pve-container writes them.

files/pve holds /etc/pve/lxc/VMID.conf files as write_pct_config lays them out (description
comments, sorted keys, raw lxc.* keys last, [pve:pending], snapshot sections), what `pct config`
and `pct status` print for them, the /var/lib/lxc/VMID/config pct start writes from 101.conf,
and pve-container@.service as pve-container ships it.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import PVE, EngineError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._lxc_config import (
    LXC_SYNTAX,
    PRLIMIT_MEMLOCK,
    find_settings,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._liblxc import LiblxcEngine, parse_pct_status
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._pve_config import (
    PVE_SYNTAX,
    current_end,
    edit_text,
    find_memlock,
    vmids,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit

FILES = Path(__file__).parent / "files" / "pve"


@pytest.fixture
def etc_pve(tmp_path):
    """An /etc/pve with the recorded containers 101 to 104."""
    (tmp_path / "lxc").mkdir()
    for conf in FILES.glob("*.conf"):
        shutil.copy(conf, tmp_path / "lxc" / conf.name)
    return tmp_path


def engine(etc_pve) -> LiblxcEngine:
    return LiblxcEngine(PVE, ["/var/lib/lxc"], etc_pve=str(etc_pve))


def text(name: str) -> str:
    return (FILES / name).read_text()


def test_the_current_configuration_ends_at_the_first_section():
    lines = text("101.conf").split("\n")
    assert lines[current_end(lines)] == "[pve:pending]"
    lines = text("102.conf").split("\n")
    assert lines[current_end(lines)] == "[clean]"


def test_a_snapshot_setting_is_not_the_current_one():
    lines = text("102.conf").split("\n")
    assert find_memlock("102.conf", lines, PRLIMIT_MEMLOCK) is None
    # ... although the snapshot section has one
    assert [s.value for s in find_settings(lines, PRLIMIT_MEMLOCK, PVE_SYNTAX)] == ["unlimited"]


def test_the_conf_and_pct_config_and_the_config_pct_start_writes_agree(etc_pve):
    assert engine(etc_pve).read("instance", "101", "memlock") == "262144"
    printed = text("pct-config-101.txt").split("\n")
    assert [s.value for s in find_settings(printed, PRLIMIT_MEMLOCK, PVE_SYNTAX)] == ["262144"]
    written = text("var-lib-lxc-101-config.txt").split("\n")
    assert [s.value for s in find_settings(written, PRLIMIT_MEMLOCK, LXC_SYNTAX)] == ["262144"]


def test_editing_changes_only_the_current_line_and_keeps_every_other_byte(etc_pve):
    before = text("101.conf")
    after = edit_text("101.conf", before, PRLIMIT_MEMLOCK, "unlimited")
    changed = [(old, new) for old, new in zip(before.split("\n"), after.split("\n")) if old != new]
    assert changed == [("lxc.prlimit.memlock: 262144", "lxc.prlimit.memlock: unlimited")]
    assert after.count("lxc.prlimit.memlock: 262144") == 1  # the snapshot's line stays


def test_a_new_line_goes_at_the_end_of_the_current_configuration():
    after = edit_text("102.conf", text("102.conf"), PRLIMIT_MEMLOCK, "8388608")
    assert after.split("\n")[6:10] == ["unprivileged: 1", "lxc.prlimit.memlock: 8388608", "", "[clean]"]
    assert after.replace("lxc.prlimit.memlock: 8388608\n", "", 1) == text("102.conf")


def test_unset_removes_the_line_only(etc_pve):
    after = edit_text("101.conf", text("101.conf"), PRLIMIT_MEMLOCK, None)
    assert after == text("101.conf").replace("lxc.prlimit.memlock: 262144\n", "", 1)


def test_write_is_atomic_keeps_the_mode_and_reads_back(etc_pve):
    path = etc_pve / "lxc" / "102.conf"
    path.chmod(0o640)
    engine(etc_pve).write("instance", "102", "memlock", "unlimited")
    assert engine(etc_pve).read_limit("102") == ("unlimited", MemlockLimit(None, None))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [name for name in os.listdir(etc_pve / "lxc") if name.startswith(".")] == []


def test_two_lines_are_refused_naming_the_file_and_both_lines(etc_pve):
    with pytest.raises(EngineError, match=r"103\.conf: lxc\.prlimit\.memlock is set more than once "
                                          r"\(line 4, line 6\).*nothing was written"):
        engine(etc_pve).read("instance", "103", "memlock")
    before = (etc_pve / "lxc" / "103.conf").read_text()
    with pytest.raises(EngineError, match="more than once"):
        engine(etc_pve).write("instance", "103", "memlock", "unlimited")
    assert (etc_pve / "lxc" / "103.conf").read_text() == before


def test_a_suffix_liblxc_refuses_is_named_with_its_line(etc_pve):
    with pytest.raises(EngineError, match=r"104\.conf line 3: lxc\.prlimit\.memlock: '4M' is not a value liblxc "
                                          r"accepts; expected 'unlimited' or a number of bytes"):
        engine(etc_pve).read_limit("104")


def test_a_value_liblxc_refuses_is_not_written(etc_pve):
    before = (etc_pve / "lxc" / "102.conf").read_text()
    with pytest.raises(EngineError, match=r"102\.conf: lxc\.prlimit\.memlock: '8M' is not a value liblxc accepts"):
        engine(etc_pve).write("instance", "102", "memlock", "8M")
    assert (etc_pve / "lxc" / "102.conf").read_text() == before


def test_a_container_that_does_not_exist(etc_pve):
    with pytest.raises(EngineError, match=r"container '999': no such container on this host \(.*999\.conf does "
                                          "not exist"):
        engine(etc_pve).read("instance", "999", "memlock")


def test_a_read_only_etc_pve_is_refused_with_a_sentence(etc_pve, monkeypatch):
    from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import _pve_config

    before = (etc_pve / "lxc" / "101.conf").read_text()
    monkeypatch.setattr(_pve_config.os, "access", lambda path, mode: False)  # pmxcfs without quorum
    with pytest.raises(EngineError, match=r"101\.conf: /etc/pve is read-only here .* not quorate .*nothing was "
                                          "written"):
        engine(etc_pve).write("instance", "101", "memlock", "unlimited")
    assert (etc_pve / "lxc" / "101.conf").read_text() == before


def test_a_read_only_filesystem_is_refused_with_the_same_sentence(etc_pve, monkeypatch):
    import errno

    from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import _pve_config

    def erofs(*_args, **_kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(_pve_config, "write_atomic", erofs)
    with pytest.raises(EngineError, match=r"/etc/pve is read-only here \(Read-only file system\)"):
        engine(etc_pve).write("instance", "101", "memlock", "unlimited")


def test_vmids_are_the_conf_files_in_numeric_order(etc_pve):
    (etc_pve / "lxc" / "1000.conf").write_text("arch: amd64\n")
    (etc_pve / "lxc" / "notes.txt").write_text("")
    assert vmids(str(etc_pve)) == ["101", "102", "103", "104", "1000"]


def test_pct_status():
    assert parse_pct_status(text("pct-status-running.txt")) == "RUNNING"
    assert parse_pct_status(text("pct-status-stopped.txt")) == "STOPPED"


def test_pve_container_unit_sets_no_limit_so_systemds_default_applies():
    unit = text("pve-container@.service")
    assert "ExecStart=/usr/bin/lxc-start -F -n %i" in unit
    assert "Limit" not in unit and "KillMode=mixed" in unit and "Type=simple" in unit
