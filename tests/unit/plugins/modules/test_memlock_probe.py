# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import pytest
from _fake_lxd import FakeLxd as FakeCluster, Guest, elapsed

from ansible_collections.vault_mlock.lxd.plugins.modules import memlock_probe


class FakeLxd(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Just enough of LXD's REST API on a unix socket: GET /1.0, the instances listing, a refused exec."""

    daemon_threads = True

    def __init__(self, path, instances):
        self.instances = instances
        self.requests = []
        super().__init__(path, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # the socket has no client address to log
        pass

    def _reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status, message):
        self._reply(status, {"type": "error", "error": message, "error_code": status})

    def do_GET(self):
        url = urlparse(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        self.server.requests.append(("GET", url.path, query))
        if url.path == "/1.0":
            self._reply(200, {"type": "sync", "status": "Success", "status_code": 200, "metadata": {
                "auth": "trusted", "api_extensions": ["projects", "instances"],
                "environment": {"server_pid": os.getpid(), "server_name": "fake", "server_clustered": False},
            }})
        elif url.path == "/1.0/instances" and query.get("recursion") == "1":
            project = query.get("project", "default")
            if project not in self.server.instances:
                self._error(404, "Project not found")
                return
            self._reply(200, {"type": "sync", "status": "Success", "status_code": 200,
                              "metadata": self.server.instances[project]})
        else:
            self._error(404, "not found")

    def do_POST(self):
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.requests.append(("POST", url.path, {}))
        self._error(400, "Instance is not running")


def instance(name, status="Running", project="default", **config):
    return {"name": name, "status": status, "type": "container", "location": "none", "project": project,
            "expanded_config": {key.replace("_", "."): value for key, value in config.items()}}


@pytest.fixture
def lxd(tmp_path):
    path = str(tmp_path / "unix.socket")
    server = FakeLxd(path, {
        "default": [instance("g1"), instance("g2", status="Stopped", limits_kernel_memlock="65536")],
        "prod": [instance("p1", status="Stopped", project="prod", security_privileged="true")],
    })
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server, path
    server.shutdown()
    server.server_close()


def test_probe_reports_every_instance(run_module, lxd):
    server, path = lxd
    result = run_module(memlock_probe, {"endpoint": path})
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    assert result["endpoint"] == path
    assert result["daemon"]["local"] is False  # the answering pid is this test, not an lxd
    verdicts = {entry["name"]: entry["verdict"] for entry in result["instances"]}
    assert verdicts == {"g1": "error", "g2": "not_running"}
    g1 = next(entry for entry in result["instances"] if entry["name"] == "g1")
    assert g1["source"] == "exec"
    assert "running a command inside the guest failed" in g1["message"]
    assert "Instance is not running" in g1["message"]
    g2 = next(entry for entry in result["instances"] if entry["name"] == "g2")
    assert g2["limits_kernel_memlock"] == "65536"
    assert g2["lxd_now"] == {"memlock": {"soft_bytes": 65536, "hard_bytes": 65536, "soft_ulimit_kib": 64,
                                         "hard_ulimit_kib": 64, "systemd_value": "64K"},
                             "source": "limits.kernel.memlock"}
    assert g2["restart_required"] is False and g2["lxd_at_start"] is None
    assert result["summary"]["error"] == 1 and result["summary"]["not_running"] == 1
    listings = [query for method, url, query in server.requests if url == "/1.0/instances"]
    assert listings == [{"recursion": "1", "project": "default"}]
    assert ("POST", "/1.0/instances/g1/exec", {}) in server.requests


def test_probe_in_check_mode_of_named_instances_of_a_project(run_module, lxd):
    server, path = lxd
    result = run_module(memlock_probe, {"endpoint": "unix://" + path, "project": "prod",
                                        "instances": ["p1", "ghost"], "required": "1G", "_ansible_check_mode": True})
    assert result["changed"] is False
    assert result["project"] == "prod"
    assert [(entry["name"], entry["verdict"]) for entry in result["instances"]] == [("p1", "not_running"),
                                                                                    ("ghost", "error")]
    assert result["instances"][0]["privileged"] is True
    assert result["instances"][1]["message"] == "guest ghost: no such instance in project 'prod'"
    assert not any(method == "POST" for method, _url, _query in server.requests)


def test_probe_of_an_unknown_project_fails_cleanly(run_module, lxd):
    _server, path = lxd
    result = run_module(memlock_probe, {"endpoint": path, "project": "nope"})
    assert result["failed"] is True
    assert result["msg"] == "listing the instances of project 'nope' failed: Project not found"
    assert "exception" not in result


def test_probe_without_a_daemon_says_what_it_tried(run_module, tmp_path):
    missing = str(tmp_path / "lxd" / "unix.socket")
    result = run_module(memlock_probe, {"endpoint": missing})
    assert result["failed"] is True
    assert result["msg"].startswith(f"no LXD daemon answered; tried: {missing} (no such socket)")
    assert "exception" not in result


@pytest.mark.parametrize(
    "args, message",
    [
        ({"required": "lots"}, "required: 'lots' is not a size"),
        ({"process": []}, "process: give at least one process name"),
        ({"units": ["vault.timer"]}, "units: 'vault.timer' is a .timer unit"),
        ({"method": "ssh"}, "value of method must be one of: auto, proc, exec"),
        ({"client_cert": "/tmp/c.pem"}, "parameters are required together: client_cert, client_key"),
    ],
)
def test_probe_refuses_bad_options_before_connecting(run_module, tmp_path, args, message):
    result = run_module(memlock_probe, dict(args, endpoint=str(tmp_path / "never-asked.socket")))
    assert result["failed"] is True
    assert message in result["msg"]


def test_probe_of_a_daemon_that_is_down_says_so(run_module, tmp_path):
    """A socket file left behind by a daemon that stopped: the connection is refused."""
    import socket

    path = str(tmp_path / "unix.socket")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # the file stays; nobody listens
    result = run_module(memlock_probe, {"endpoint": path})
    assert result["failed"] is True
    assert result["msg"].startswith("no LXD daemon answered; tried: " + path)
    assert "Traceback" not in result["msg"] and "exception" not in result


def test_the_documentation_lists_every_returned_key():
    import dataclasses

    import yaml

    from ansible_collections.vault_mlock.lxd.plugins.module_utils._probe_report import DaemonFacts, InstanceReport

    returned = yaml.safe_load(memlock_probe.RETURN)
    assert set(returned["instances"]["contains"]) == {item.name for item in dataclasses.fields(InstanceReport)}
    assert set(returned["daemon"]["contains"]) == {item.name for item in dataclasses.fields(DaemonFacts)}
    yaml.safe_load(memlock_probe.DOCUMENTATION)
    yaml.safe_load(memlock_probe.EXAMPLES)


def test_the_module_returns_in_its_timeout_however_many_guests_hang(run_module, tmp_path):
    """memlock_probe with 24 hung guests on two members and a timeout of 2 s answers within a few seconds,
    with each hung guest's own error and the other guests read."""
    guests = {f"hung{number:02d}": Guest(hangs=True, member="c1" if number % 2 else "c2") for number in range(24)}
    guests["answers"] = Guest(stdout="not a /proc snapshot\n", member="c2")
    fake = FakeCluster(guests)
    path = fake.serve_unix(str(tmp_path / "unix.socket"))
    try:
        seconds, result = elapsed(run_module, memlock_probe, {"endpoint": path, "timeout": 2})
    finally:
        fake.stop()
    assert result.get("failed") is not True, result
    assert seconds < 2 + 3, seconds
    messages = {entry["name"]: entry["message"] for entry in result["instances"]}
    assert all("the command was still running after 2s" in messages[f"hung{number:02d}"] for number in range(24))
    assert "reading /proc inside the guest failed" in messages["answers"]  # it answered, so it was read
    assert result["summary"]["error"] == 25
