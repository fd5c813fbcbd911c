# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The engine factory, engine=auto, and LXD/Incus as an engine against a fake daemon on a real unix socket."""

from __future__ import annotations

import pytest
from _fake_lxd import FakeLxd, Guest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._daemon_apply import DaemonApplyError, DaemonHost
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import (
    ENGINES,
    INCUS,
    LXD,
    EngineError,
    open_engine,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._api import BOOT_WAIT_ARGV, ApiEngine


@pytest.fixture
def lxd(tmp_path):
    fake = FakeLxd({
        "vault1": Guest(stdout="running\n", config={"limits.kernel.memlock": "8M", "user.other": "x"}),
        "degraded": Guest(returned=1, stdout="degraded\n"),
        "nosystemd": Guest(),
        "starting": Guest(returned=1, stdout="starting\n"),
        "down": Guest(status="Stopped"),
    })
    fake.profiles["vault"] = {"limits.memory.swap": "false"}
    path = fake.serve_unix(str(tmp_path / "unix.socket"))
    yield fake, path
    fake.stop()


def engine_on(path, **params):
    return open_engine(dict({"engine": "auto", "endpoint": path, "project": "prod", "timeout": 5}, **params))


def test_names_are_spelled_once():
    assert ENGINES == ("auto", "lxd", "incus", "lxc", "pve")


def test_unknown_engines_are_refused():
    with pytest.raises(EngineError, match="engine: 'docker' is not an engine; expected one of auto, lxd, incus"):
        open_engine({"engine": "docker"})


def test_the_daemon_names_the_engine(lxd):
    fake, path = lxd
    assert engine_on(path).name == LXD
    fake.server = "incus"
    assert engine_on(path).name == INCUS
    with pytest.raises(EngineError, match="engine: lxd was asked for, but the daemon at .* is incus"):
        engine_on(path, engine="lxd")


def test_read_write_and_unset_touch_only_the_key_in_the_project(lxd):
    fake, path = lxd
    engine = engine_on(path)
    assert isinstance(engine, ApiEngine) and engine.kinds == ("instance", "profile")
    assert engine.read("instance", "vault1", "memlock") == "8M"
    assert engine.read("instance", "vault1", "swap") is None
    assert engine.read("profile", "vault", "swap") == "false"
    engine.write("instance", "vault1", "swap", "false")
    engine.write("instance", "vault1", "memlock", None)
    engine.write("profile", "vault", "memlock", "unlimited")
    assert fake.guests["vault1"].config == {"user.other": "x", "limits.memory.swap": "false"}
    assert fake.profiles["vault"] == {"limits.memory.swap": "false", "limits.kernel.memlock": "unlimited"}
    assert {query.get("project") for method, route, query in fake.requests if route.startswith("/1.0/")} == {"prod"}
    assert {method for method, route, query in fake.requests if route.startswith("/1.0/instances/vault1")} == {
        "GET", "PATCH"}


def test_a_missing_instance_or_profile_is_named(lxd):
    _fake, path = lxd
    engine = engine_on(path)
    with pytest.raises(EngineError, match=r"instance 'ghost' of project 'prod' on lxd .*: does not exist"):
        engine.read("instance", "ghost", "memlock")
    with pytest.raises(EngineError, match=r"profile 'ghost' of project 'prod'"):
        engine.write("profile", "ghost", "memlock", "8388608")


@pytest.mark.parametrize("text, stored", [("8M", "8388608"), ("infinity", "unlimited"), ("64K:8M", "65536:8388608"),
                                          (8388608, "8388608")])
def test_render_memlock_in_lxds_form(text, stored):
    assert ApiEngine.render("memlock", text) == stored


def test_render_refuses_what_lxd_would_not_take():
    with pytest.raises(ValueError, match=r"instance_memlock\[v\]: '8Q'"):
        ApiEngine.render("memlock", "8Q", "instance_memlock[v]")
    assert ApiEngine.render("swap", False) == "false"
    with pytest.raises(ValueError, match="not a boolean"):
        ApiEngine.render("swap", "no")


@pytest.mark.parametrize("name", ["vault1", "degraded", "nosystemd"])
def test_restart_waits_until_booted(lxd, name):
    fake, path = lxd
    engine_on(path).restart(name, 10)
    assert fake.guests[name].restarts == 1
    commands = [route for method, route, query in fake.requests if route == f"/1.0/instances/{name}/exec"]
    assert commands, "the boot was never asked about"
    assert BOOT_WAIT_ARGV[-1].endswith("systemctl is-system-running --wait")


def test_a_guest_that_does_not_finish_booting_fails_in_its_time(lxd):
    fake, path = lxd
    engine = engine_on(path)
    clock = iter(range(100))
    engine._clock, engine._sleep = lambda: next(clock), lambda seconds: None
    with pytest.raises(EngineError, match=r"instance 'starting' .* did not finish booting within 3s .*'starting'"):
        engine.restart("starting", 3)
    assert fake.guests["starting"].restarts == 1


def test_a_stopped_instance_is_not_started(lxd):
    fake, path = lxd
    with pytest.raises(EngineError, match="is Stopped; only a running instance is restarted"):
        engine_on(path).restart("down", 10)
    assert fake.guests["down"].restarts == 0


def test_a_restart_that_never_ends_fails(lxd):
    fake, path = lxd
    fake.guests["vault1"].hangs = True
    with pytest.raises(EngineError, match="still running after 1s"):
        engine_on(path).restart("vault1", 1)


def test_the_daemon_host_waits_until_a_new_daemon_is_ready(lxd, monkeypatch):
    fake, path = lxd
    from ansible_collections.vault_mlock.lxd.plugins.module_utils import _daemon_apply

    monkeypatch.setitem(_daemon_apply.UNIT_SOCKETS, "lxd.service", path)
    host = DaemonHost(run=None)
    host.wait_ready("lxd.service", 5)
    assert ("GET", "/internal/ready", {}) in fake.requests
    fake.ready = False
    ticks = iter(range(100))
    host.monotonic, host.sleep = lambda: next(ticks), lambda seconds: None
    with pytest.raises(DaemonApplyError, match="lxd.service's new daemon did not say it is ready .* within 3 seconds"):
        host.wait_ready("lxd.service", 3)
    host.wait_ready("vault.service", 3)  # no daemon socket the collection knows: nothing to ask
