# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import http.server
import json
import socketserver
import threading
import urllib.parse

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils import _lxd_api
from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_api import (
    LxdError,
    client_endpoint,
    client_knows_projects,
    connect,
    is_remote,
    normalize_endpoint,
    socket_candidates,
)

USUAL_SOCKETS = ["/var/lib/lxd/unix.socket", "/var/snap/lxd/common/lxd/unix.socket", "/var/lib/incus/unix.socket"]


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, USUAL_SOCKETS),
        ({"LXD_DIR": ""}, USUAL_SOCKETS),
        ({"LXD_DIR": "/srv/lxd"}, ["/srv/lxd/unix.socket"] + USUAL_SOCKETS),
        ({"LXD_DIR": "/var/lib/incus"}, ["/var/lib/incus/unix.socket"] + USUAL_SOCKETS[:2]),
    ],
)
def test_socket_candidates(environ, expected):
    assert socket_candidates(environ) == expected


@pytest.mark.parametrize(
    "endpoint, normalized, remote",
    [
        ("unix:///var/lib/lxd/unix.socket", "/var/lib/lxd/unix.socket", False),
        ("unix:/tmp/inner.sock", "/tmp/inner.sock", False),
        ("/var/lib/lxd/unix.socket", "/var/lib/lxd/unix.socket", False),
        ("https://lxd.example.com:8443", "https://lxd.example.com:8443", True),
    ],
)
def test_endpoints(endpoint, normalized, remote):
    assert normalize_endpoint(endpoint) == normalized
    assert is_remote(normalized) is remote


def test_connect_names_what_it_tried(tmp_path):
    not_a_socket = tmp_path / "plain-file"
    not_a_socket.write_text("")
    for endpoint in (str(tmp_path / "missing.socket"), str(not_a_socket)):
        with pytest.raises(LxdError, match="no LXD daemon answered; tried: " + endpoint) as error:
            connect(endpoint=endpoint)
        assert "set endpoint" in str(error.value)


@pytest.mark.parametrize(
    "endpoint, expected",
    [
        ("/var/lib/lxd/unix.socket", "http+unix://%2Fvar%2Flib%2Flxd%2Funix.socket"),
        ("http+unix://%2Fsrv%2Flxd.sock", "http+unix://%2Fsrv%2Flxd.sock"),
        ("https://lxd.example.com:8443", "https://lxd.example.com:8443"),
    ],
)
def test_client_endpoint(endpoint, expected):
    assert client_endpoint(endpoint) == expected


class ClientBefore2211:
    """pylxd.Client as pylxd 2.2.10 (Debian 12) builds it: no project; a socket only as an http+unix:// URL."""

    created = []

    def __init__(self, endpoint=None, version="1.0", cert=None, verify=True, timeout=None):
        if not endpoint.startswith("http+unix://"):
            raise AssertionError(f"2.2.10 would take {endpoint!r} for an https URL")
        self.created.append(endpoint)
        self.trusted = True


class ClientWithProjects(ClientBefore2211):
    def __init__(self, endpoint=None, version="1.0", cert=None, verify=True, timeout=None, project=None,
                 session=None):
        super().__init__(endpoint, version, cert, verify, timeout)
        self.project = project


def test_client_knows_projects():
    assert client_knows_projects(ClientWithProjects) is True
    assert client_knows_projects(ClientBefore2211) is False
    assert client_knows_projects(object()) is False


@pytest.mark.parametrize("client_class, client_project", [(ClientBefore2211, None), (ClientWithProjects, "prod")])
def test_connect_adapts_to_the_pylxd_version(monkeypatch, tmp_path, client_class, client_project):
    socket_path = tmp_path / "unix.socket"
    socket_path.write_text("")  # connect() only checks that the path exists before pylxd tries it
    monkeypatch.setattr(_lxd_api.pylxd, "Client", client_class)
    ClientBefore2211.created.clear()
    api, endpoint = connect(endpoint=f"unix://{socket_path}", project="prod", timeout=7)
    assert endpoint == str(socket_path)
    assert ClientBefore2211.created == [client_endpoint(str(socket_path))]
    assert getattr(api.client, "project", None) == client_project
    assert (api.project, api.timeout) == ("prod", 7)


class FakeLxd(http.server.BaseHTTPRequestHandler):
    """Just enough of LXD's API on a unix socket for LxdApi: /1.0, exec with recorded output, its logs.

    The class attributes are the daemon's state: the guests, each command's outcome, what was asked.
    """

    guests = {}  # name -> (status_code of the operation, return code, stdout, stderr)
    requests = []  # (method, path, project)
    logs = {}  # path -> text

    def _reply(self, code, payload=None, raw=None):
        body = raw.encode() if raw is not None else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        self.requests.append((method, url.path, query.get("project", [None])[0]))
        parts = url.path.strip("/").split("/")
        if method == "GET" and parts == ["1.0"]:
            return self._reply(200, {"type": "sync", "status_code": 200, "metadata": {
                "auth": "trusted", "api_extensions": ["projects"], "environment": {"server_pid": 4885}}})
        if method == "POST" and parts[1:2] == ["instances"] and parts[3:] == ["exec"]:
            if parts[2] not in self.guests:
                return self._reply(404, {"type": "error", "error": "Instance not found", "error_code": 404})
            length = int(self.headers["Content-Length"])
            assert json.loads(self.rfile.read(length))["record-output"] is True
            return self._reply(202, {"type": "async", "status_code": 100, "operation": f"/1.0/operations/{parts[2]}"})
        if method == "GET" and parts[1:2] == ["operations"] and parts[3:] == ["wait"]:
            status_code, returned, stdout, stderr = self.guests[parts[2]]
            output = {}
            for stream, text in (("1", stdout), ("2", stderr)):
                path = f"/1.0/instances/{parts[2]}/logs/exec_{parts[2]}.{'stdout' if stream == '1' else 'stderr'}"
                self.logs[path] = text
                output[stream] = path
            return self._reply(200, {"type": "sync", "status_code": 200, "metadata": {
                "status_code": status_code, "err": "" if status_code == 200 else "Command not found",
                "metadata": {"output": output, "return": returned}}})
        if parts[1:2] == ["instances"] and parts[3:4] == ["logs"] and url.path in self.logs:
            if method == "DELETE":
                del self.logs[url.path]
                return self._reply(200, {"type": "sync", "status_code": 200, "metadata": {}})
            return self._reply(200, raw=self.logs[url.path])
        return self._reply(404, {"type": "error", "error": "not found", "error_code": 404})

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_DELETE(self):
        self._route("DELETE")

    def address_string(self):
        return "unix-socket"

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_lxd(tmp_path):
    """A FakeLxd answering on a real unix socket; yields its path."""
    FakeLxd.guests = {"g1": (200, 0, "@@1 limits\n", ""), "g2": (200, 3, "out\n", "err\n"), "g3": (400, 127, "", "")}
    FakeLxd.requests, FakeLxd.logs = [], {}
    socket_path = str(tmp_path / "unix.socket")
    server = socketserver.ThreadingUnixStreamServer(socket_path, FakeLxd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield socket_path
    server.shutdown()
    server.server_close()


def test_connect_and_execute_through_a_real_unix_socket(fake_lxd):
    api, endpoint = connect(endpoint=fake_lxd, project="prod", timeout=5)
    assert endpoint == fake_lxd
    assert api.server_info()["environment"]["server_pid"] == 4885
    assert api.execute("g1", ["sh", "-c", "cat /proc/1/limits"]) == (0, "@@1 limits\n", "")
    assert api.execute("g2", ["false"]) == (3, "out\n", "err\n")
    # Every request of a command names the project; the recorded output is deleted once read.
    assert {project for method, path, project in FakeLxd.requests if path != "/1.0"} == {"prod"}
    assert FakeLxd.logs == {}
    assert [method for method, path, project in FakeLxd.requests if "/logs/" in path] == ["GET", "DELETE"] * 4


@pytest.mark.parametrize(
    "name, message",
    [
        ("g3", "the command did not complete: Command not found"),
        ("missing", "LXD refused: Instance not found"),
    ],
)
def test_execute_failures(fake_lxd, name, message):
    api, _endpoint = connect(endpoint=fake_lxd, timeout=5)
    with pytest.raises(LxdError, match=message):
        api.execute(name, ["/nonexistent"])
    assert FakeLxd.logs == {}  # even a command that did not start leaves no recorded output behind

