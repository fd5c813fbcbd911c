"""A fake LXD daemon on a real unix socket or a real TLS port, for the API client's tests.

It answers the requests the collection makes the way LXD 5.0.2 answers them (as recorded on a
two-member cluster):
- POST /1.0/instances/NAME/exec with record-output starts an operation at once; its answer names the
  operation as /1.0/operations/ID, or as /1.0/operations/ID?project=P when the guest runs on another
  cluster member (LXD then forwards the command and hands back the other member's operation);
- the recorded output files exist from the start, but the operation's metadata names them only once
  the command has ended, and never when it failed to start;
- GET /1.0/operations?recursion=1 lists the project's operations (on a cluster, every member's) by
  status, GET /1.0/operations/ID answers at once and GET /1.0/operations/ID/wait?timeout=N when the
  command ends or after N seconds;
- an operation is forgotten (404) ``retention`` seconds after it ended: 5 s in LXD;
- routes go by the URL's path alone, as LXD's router does: whatever follows a '?' is the query;
- GET /1.0/instances/NAME and /1.0/profiles/NAME show the object's own config, PATCH merges the keys given
  into it and removes those given as '' (as LXD 5.0.2 does), PUT /1.0/instances/NAME/state restarts an instance
  as an operation, and GET /internal/ready answers 200 once the daemon is ready (``ready``).
"""

from __future__ import annotations

import http.server
import json
import socketserver
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

RUNNING, SUCCESS, FAILURE = (103, "Running"), (200, "Success"), (400, "Failure")


@dataclass
class Guest:
    """How a command behaves in a guest: it ends after ``seconds`` (never when ``hangs``), with
    ``returned``, ``stdout`` and ``stderr``, or fails to start with ``start_error``."""

    returned: int = 0
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    hangs: bool = False
    start_error: str = ""
    member: str = "c1"
    status: str = "Running"
    config: Dict[str, str] = field(default_factory=dict)
    restarts: int = 0


@dataclass
class Operation:
    id: str
    guest: str
    project: str = "default"
    state: Tuple[int, str] = RUNNING
    err: str = ""
    metadata: Optional[dict] = None
    done: threading.Event = field(default_factory=threading.Event)
    ended: Optional[float] = None


class FakeLxd:
    """The daemon's state; serve_unix()/serve_tls() put it on a socket."""

    def __init__(self, guests: Dict[str, Guest], server_name: str = "c1", clustered: bool = True,
                 server_pid: int = 999999999, retention: float = 5.0) -> None:
        self.guests = guests
        self.profiles: Dict[str, Dict[str, str]] = {"default": {}}
        self.server = "lxd"  # what environment.server says: lxd or incus
        self.ready = True
        self.server_name = server_name
        self.clustered = clustered
        self.server_pid = server_pid
        self.retention = retention
        self.operations: Dict[str, Operation] = {}
        self.logs: Dict[str, str] = {}  # path -> recorded output
        self.requests: List[Tuple[str, str, Dict[str, str]]] = []  # (method, path, query)
        self.connections = 0
        self.trusted_certificates: List[bytes] = []  # DER; over TLS only these clients are trusted
        self.mute = threading.Event()  # once set, requests get no answer until stop()
        self._stopped = threading.Event()
        self.lock = threading.Lock()
        self._servers = []

    # --- serving ------------------------------------------------------------------------------

    def serve_unix(self, path: str) -> str:
        server = _UnixServer(path, _Handler)
        self._start(server)
        return path

    def serve_tls(self, context: ssl.SSLContext) -> int:
        server = _TlsServer(("127.0.0.1", 0), _Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._start(server)
        return server.server_address[1]

    def _start(self, server) -> None:
        server.daemon_threads = True
        server.fake = self
        self._servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        for operation in self.operations.values():
            operation.done.set()  # releases handlers still waiting on a hung command
        for server in self._servers:
            server.shutdown()
            server.server_close()

    # --- commands -----------------------------------------------------------------------------

    def start_command(self, name: str, project: str) -> Operation:
        guest = self.guests[name]
        operation = Operation(str(uuid.uuid4()), name, project)
        for stream in ("stdout", "stderr"):
            self.logs[f"/1.0/instances/{name}/logs/exec_{operation.id}.{stream}"] = ""
        with self.lock:
            self.operations[operation.id] = operation
        if guest.start_error:
            self._end(operation, FAILURE, err=guest.start_error)
        elif not guest.hangs:
            timer = threading.Timer(guest.seconds, self._run, (operation, guest))
            timer.daemon = True
            timer.start()
        return operation

    def start_restart(self, name: str, project: str) -> Operation:
        """A restart ends after the guest's ``seconds``; a guest that ``hangs`` never comes back."""
        guest = self.guests[name]
        operation = Operation(str(uuid.uuid4()), name, project)
        with self.lock:
            self.operations[operation.id] = operation

        def restart():
            guest.restarts += 1
            self._end(operation, SUCCESS, metadata={})
        if not guest.hangs:
            timer = threading.Timer(guest.seconds, restart)
            timer.daemon = True
            timer.start()
        return operation

    def _run(self, operation: Operation, guest: Guest) -> None:
        base = f"/1.0/instances/{operation.guest}/logs/exec_{operation.id}"
        self.logs[base + ".stdout"] = guest.stdout
        self.logs[base + ".stderr"] = guest.stderr
        metadata = {"output": {"1": base + ".stdout", "2": base + ".stderr"}, "return": guest.returned}
        self._end(operation, SUCCESS, metadata=metadata)

    def _end(self, operation: Operation, state, err: str = "", metadata: Optional[dict] = None) -> None:
        operation.state, operation.err, operation.metadata = state, err, metadata
        operation.ended = time.monotonic()
        operation.done.set()

    def known(self, operation_id: str) -> Optional[Operation]:
        """The operation, unless it never was or ended more than ``retention`` seconds ago."""
        operation = self.operations.get(operation_id)
        if operation is None or (operation.ended is not None and time.monotonic() - operation.ended > self.retention):
            return None
        return operation

    def render(self, operation: Operation) -> dict:
        code, status = operation.state
        return {"id": operation.id, "class": "task", "status": status, "status_code": code, "err": operation.err,
                "metadata": operation.metadata, "location": self.guests[operation.guest].member,
                "may_cancel": False}


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # a client that gave up on a mute daemon is part of the tests


class _TlsServer(http.server.ThreadingHTTPServer):
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # a client that refused our certificate is part of the tests


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as LXD

    def setup(self):
        super().setup()
        with self.server.fake.lock:
            self.server.fake.connections += 1

    def address_string(self):
        return "fake-lxd"

    def log_message(self, *args):
        pass

    def _reply(self, code: int, document=None, raw: Optional[str] = None) -> None:
        body = raw.encode() if raw is not None else json.dumps(document).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _sync(self, metadata) -> None:
        self._reply(200, {"type": "sync", "status": "Success", "status_code": 200, "metadata": metadata})

    def _error(self, code: int, message: str) -> None:
        self._reply(code, {"type": "error", "error": message, "error_code": code})

    def _trusted(self) -> bool:
        if not isinstance(self.connection, ssl.SSLSocket):
            return True
        return self.connection.getpeercert(binary_form=True) in self.server.fake.trusted_certificates

    def _route(self, method: str) -> None:
        fake: FakeLxd = self.server.fake
        if fake.mute.is_set():
            fake._stopped.wait()
            self.close_connection = True
            return
        url = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        with fake.lock:
            fake.requests.append((method, url.path, query))
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        parts = url.path.strip("/").split("/")
        if url.path == "/1.0" and method == "GET":
            return self._sync({"auth": "trusted" if self._trusted() else "untrusted", "api_extensions": [],
                               "environment": {"server_pid": fake.server_pid, "server_name": fake.server_name,
                                               "server_clustered": fake.clustered, "server_version": "5.0.2",
                                               "server": fake.server}})
        if not self._trusted():
            return self._error(403, "not authorized")
        if url.path == "/internal/ready" and method == "GET":
            return self._sync({}) if fake.ready else self._error(503, "LXD daemon not ready yet")
        if parts[1:2] in (["instances"], ["profiles"]) and len(parts) == 3 and method in ("GET", "PATCH"):
            return self._config_object(fake, parts[1], parts[2], method, body)
        if parts[1:2] == ["instances"] and parts[3:] == ["state"] and method in ("GET", "PUT"):
            guest = fake.guests.get(parts[2])
            if guest is None:
                return self._error(404, "Instance not found")
            if method == "GET":
                return self._sync({"status": guest.status, "status_code": 103 if guest.status == "Running" else 102})
            assert body["action"] == "restart" and isinstance(body["timeout"], int)
            operation = fake.start_restart(parts[2], query.get("project", "default"))
            return self._reply(202, {"type": "async", "status": "Operation created", "status_code": 100,
                                     "operation": f"/1.0/operations/{operation.id}", "metadata": fake.render(operation)})
        if url.path == "/1.0/instances" and method == "GET":
            return self._sync([{"name": name, "status": guest.status, "type": "container", "project": "default",
                                "location": guest.member, "expanded_config": guest.config}
                               for name, guest in fake.guests.items()])
        if parts[1:2] == ["instances"] and parts[3:] == ["exec"] and method == "POST":
            guest = fake.guests.get(parts[2])
            if guest is None:
                return self._error(404, "Instance not found")
            if guest.status != "Running":
                return self._error(400, "Instance is not running")
            assert body["record-output"] is True and body["wait-for-websocket"] is False
            operation = fake.start_command(parts[2], query.get("project", "default"))
            location = f"/1.0/operations/{operation.id}"
            if guest.member != fake.server_name:
                location += "?project=" + query.get("project", "default")  # as LXD forwards it
            return self._reply(202, {"type": "async", "status": "Operation created", "status_code": 100,
                                     "operation": location, "metadata": fake.render(operation)})
        if url.path == "/1.0/operations" and method == "GET":
            assert query.get("recursion") == "1"
            listing: Dict[str, list] = {}
            for operation in list(fake.operations.values()):
                if fake.known(operation.id) and operation.project == query.get("project", "default"):
                    listing.setdefault(operation.state[1].lower(), []).append(fake.render(operation))
            return self._sync(listing)
        if parts[1:2] == ["operations"] and method == "GET" and len(parts) in (3, 4):
            operation = fake.known(parts[2])
            if operation is None:
                return self._error(404, "Operation not found")
            if parts[3:] == ["wait"]:
                seconds = int(query.get("timeout", "-1"))
                operation.done.wait(None if seconds < 0 else seconds)
            elif parts[3:]:
                return self._error(404, "not found")
            return self._sync(fake.render(operation))
        if parts[1:2] == ["instances"] and parts[3:4] == ["logs"]:
            if url.path not in fake.logs:
                return self._error(404, "not found")
            if method == "DELETE":
                del fake.logs[url.path]
                return self._sync({})
            return self._reply(200, raw=fake.logs[url.path])
        return self._error(404, "not found")

    def _config_object(self, fake: "FakeLxd", collection: str, name: str, method: str, body) -> None:
        if collection == "instances":
            guest = fake.guests.get(name)
            config = None if guest is None else guest.config
        else:
            config = fake.profiles.get(name)
        if config is None:
            return self._error(404, "Instance not found" if collection == "instances" else "Profile not found")
        if method == "PATCH":
            for key, value in (body.get("config") or {}).items():
                if value == "":
                    config.pop(key, None)
                else:
                    config[key] = value
            return self._sync({})
        return self._sync({"name": name, "config": dict(config)})

    def do_GET(self):
        self._route("GET")

    def do_PATCH(self):
        self._route("PATCH")

    def do_PUT(self):
        self._route("PUT")

    def do_POST(self):
        self._route("POST")

    def do_DELETE(self):
        self._route("DELETE")


def elapsed(function, *args, **kwargs):
    """(seconds, result) of one call."""
    start = time.monotonic()
    result = function(*args, **kwargs)
    return time.monotonic() - start, result
