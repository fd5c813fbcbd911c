# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import time

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import LXC, EngineError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._liblxc import LiblxcEngine, parse_lxc_info
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._lxc_config import (
    liblxc_limit,
    list_containers,
    lxcpaths,
    render_liblxc,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, SizeError

CONFIG = """# Template used to create this container: /usr/share/lxc/templates/lxc-download
lxc.include = /usr/share/lxc/config/common.conf
lxc.rootfs.path = dir:/srv/guest-rootfs
lxc.uts.name = vault
lxc.net.0.type = empty
lxc.apparmor.profile = unconfined
"""


@pytest.fixture
def lxcpath(tmp_path):
    (tmp_path / "vault").mkdir()
    (tmp_path / "vault" / "config").write_text(CONFIG)
    (tmp_path / "not-a-container").mkdir()
    return tmp_path


def engine(lxcpath) -> LiblxcEngine:
    return LiblxcEngine(LXC, [str(lxcpath)])


# What liblxc 5.0.2 (Debian 12) printed for each value with `lxc-info -c lxc.prlimit.memlock` in the lab's
# nested LXC host; molecule/lxc compares the probe with lxc-info on the same host for the values it loads or not.
@pytest.mark.parametrize("value, limit", [
    ("unlimited", MemlockLimit(None, None)),
    ("1048576", MemlockLimit(1048576, 1048576)),
    ("262144:unlimited", MemlockLimit(262144, None)),
    ("0:8388608", MemlockLimit(0, 8388608)),
    ("-1", MemlockLimit(None, None)),  # lxc-info: unlimited
    ("18446744073709551615", MemlockLimit(None, None)),  # lxc-info: unlimited
])
def test_values_liblxc_accepts(value, limit):
    assert liblxc_limit(value) == limit


# lxc-info: "Failed to load config" for the first five; the last two load, and no container starts with them.
@pytest.mark.parametrize("value", ["4M", "infinity", "1K", "1:2:3", "18446744073709551616", "unlimited:1048576",
                                   "2:1"])
def test_values_liblxc_refuses(value):
    with pytest.raises(ValueError):
        liblxc_limit(value)


@pytest.mark.parametrize("text, stored", [("infinity", "unlimited"), ("8M", "8388608"), ("256K:8M", "262144:8388608"),
                                          ("unlimited", "unlimited"), ("1048576", "1048576")])
def test_render_gives_the_form_liblxc_stores(text, stored):
    assert render_liblxc(text) == stored


def test_render_refuses_what_systemd_would_refuse():
    with pytest.raises(SizeError, match=r"instance_memlock\[vault\]: '4 MB' is not a size"):
        render_liblxc("4 MB", "instance_memlock[vault]")


def test_write_appends_then_changes_in_place_then_removes(lxcpath):
    config = lxcpath / "vault" / "config"
    engine(lxcpath).write("instance", "vault", "memlock", "8388608")
    assert config.read_text() == CONFIG + "lxc.prlimit.memlock = 8388608\n"
    config.write_text(config.read_text() + "# the end\n")
    engine(lxcpath).write("instance", "vault", "memlock", "unlimited")
    assert config.read_text() == CONFIG + "lxc.prlimit.memlock = unlimited\n# the end\n"
    assert engine(lxcpath).read_limit("vault") == ("unlimited", MemlockLimit(None, None))
    engine(lxcpath).write("instance", "vault", "memlock", None)
    assert config.read_text() == CONFIG + "# the end\n"
    assert engine(lxcpath).read("instance", "vault", "memlock") is None


def test_spaces_around_the_equals_sign_are_liblxc_s_own(lxcpath):
    (lxcpath / "vault" / "config").write_text(CONFIG + "  lxc.prlimit.memlock=1048576  \n")
    assert engine(lxcpath).read_limit("vault") == ("1048576", MemlockLimit(1048576, 1048576))


def test_two_lines_are_refused_naming_both(lxcpath):
    config = lxcpath / "vault" / "config"
    config.write_text(CONFIG + "lxc.prlimit.memlock = 1048576\nlxc.prlimit.memlock = unlimited\n")
    with pytest.raises(EngineError, match=r"vault/config: lxc\.prlimit\.memlock is set more than once \(line 7, "
                                          r"line 8\)"):
        engine(lxcpath).write("instance", "vault", "memlock", "unlimited")
    assert config.read_text().count("lxc.prlimit.memlock") == 2


def test_a_suffix_in_the_file_is_named_with_its_line(lxcpath):
    (lxcpath / "vault" / "config").write_text(CONFIG + "lxc.prlimit.memlock = 4M\n")
    with pytest.raises(EngineError, match=r"vault/config line 7: lxc\.prlimit\.memlock: '4M' is not a value liblxc "
                                          "accepts.*lxc-start refuses this configuration"):
        engine(lxcpath).read("instance", "vault", "memlock")


def test_a_container_that_does_not_exist(lxcpath):
    with pytest.raises(EngineError, match=r"container 'nosuch': no such container on this host \(no nosuch/config "
                                          "in "):
        engine(lxcpath).write("instance", "nosuch", "memlock", "unlimited")
    assert not (lxcpath / "nosuch").exists()


def test_profiles_do_not_exist_here(lxcpath):
    with pytest.raises(EngineError, match="containers have no profiles"):
        engine(lxcpath).read("profile", "default", "memlock")


def test_lxcpaths_are_lxc_conf_s_and_the_default(tmp_path):
    conf = tmp_path / "lxc.conf"
    assert lxcpaths(str(conf)) == ["/var/lib/lxc"]
    conf.write_text("lxc.lxcpath = /srv/lxc\n")
    assert lxcpaths(str(conf)) == ["/srv/lxc", "/var/lib/lxc"]


def test_containers_are_directories_with_a_config(lxcpath, tmp_path):
    assert list_containers([str(lxcpath), str(tmp_path / "missing")]) == [(str(lxcpath), "vault")]


def test_lxc_info():
    # What lxc-info -s -p printed for a running and a stopped container (lxc 5.0.2, Debian 12).
    assert parse_lxc_info("State:          RUNNING\nPID:            134\n") == ("RUNNING", 134)
    assert parse_lxc_info("State:          STOPPED\n") == ("STOPPED", None)


def test_a_degraded_boot_counts_as_booted(lxcpath):
    # systemctl is-system-running --wait prints degraded and exits 1 when a unit failed.
    answers = [(255, "", "Failed to get init pid"), (1, "starting\n", ""), (1, "degraded\n", "")]
    asked = []

    def run(argv, timeout):
        asked.append(argv)
        return answers.pop(0)

    engine = LiblxcEngine(LXC, [str(lxcpath)], run=run)
    engine.wait_booted(engine.container("vault"), time.monotonic() + 30)
    assert len(asked) == 3 and asked[0][:6] == ["lxc-attach", "-n", "vault", "-P", str(lxcpath), "--"]


def test_no_boot_before_the_deadline_names_the_last_answer(lxcpath):
    engine = LiblxcEngine(LXC, [str(lxcpath)], run=lambda argv, timeout: (1, "starting\n", ""))
    with pytest.raises(EngineError, match=r"container vault: not booted before the timeout \(last answer: starting\)"):
        engine.wait_booted(engine.container("vault"), time.monotonic() + 1.5)
