# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""container_limits as Ansible runs it, on plain LXC configuration files (engine lxc, lxcpath)."""

from __future__ import annotations

from ansible_collections.vault_mlock.lxd.plugins.modules import container_limits

CONFIG = "lxc.include = /usr/share/lxc/config/common.conf\nlxc.uts.name = vault\n"


def make(tmp_path, text=CONFIG):
    (tmp_path / "vault").mkdir()
    (tmp_path / "vault" / "config").write_text(text)
    return tmp_path / "vault" / "config"


def args(tmp_path, **more):
    return dict(engine="lxc", lxcpath=[str(tmp_path)], **more)


def test_sets_bytes_then_changes_nothing_by_value(run_module, tmp_path):
    config = make(tmp_path)
    result = run_module(container_limits, args(tmp_path, instance_memlock={"vault": "4M"}, _ansible_diff=True))
    assert result.get("failed") is not True, result
    assert result["changed"] and result["engine"] == "lxc"
    assert result["changes"] == [{"kind": "instance", "name": "vault", "key": "memlock",
                                  "setting": "lxc.prlimit.memlock", "before": None, "after": "4194304"}]
    assert config.read_text() == CONFIG + "lxc.prlimit.memlock = 4194304\n"
    again = run_module(container_limits, args(tmp_path, instance_memlock={"vault": "4096K"}))
    assert again["changed"] is False and again["changes"] == []


def test_check_mode_writes_nothing(run_module, tmp_path):
    config = make(tmp_path)
    result = run_module(container_limits, args(tmp_path, instance_memlock={"vault": "infinity"}, _ansible_check_mode=True))
    assert result["changed"] and result["changes"][0]["after"] == "unlimited"
    assert config.read_text() == CONFIG


def test_bad_input_names_the_option_or_the_file_and_writes_nothing(run_module, tmp_path):
    config = make(tmp_path, CONFIG + "lxc.prlimit.memlock = 4M\n")
    bad_value = run_module(container_limits, args(tmp_path, instance_memlock={"vault": "4 MB"}))
    assert bad_value["failed"] and bad_value["msg"].startswith("instance_memlock[vault]: '4 MB' is not a size")
    bad_file = run_module(container_limits, args(tmp_path, instance_memlock={"vault": "8M"}))
    assert bad_file["failed"] and "vault/config line 3: lxc.prlimit.memlock: '4M' is not a value liblxc" in bad_file["msg"]
    missing = run_module(container_limits, args(tmp_path, instance_memlock={"nosuch": "8M"}))
    assert missing["failed"] and "container 'nosuch': no such container" in missing["msg"]
    assert config.read_text() == CONFIG + "lxc.prlimit.memlock = 4M\n"
