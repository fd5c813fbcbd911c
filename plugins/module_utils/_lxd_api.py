# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The LXD (or Incus) REST API as the collection uses it, on Python's standard library alone.

A local daemon is reached through its unix socket (http.client over AF_UNIX), a remote one over
https:// with a client certificate. Nothing beyond the standard library of Python 3.7 or later is
needed: Debian 13 packages no pylxd for its Python and refuses pip into it.

The probe uses three calls: server_info(), list_instances() and execute_many() (execute() for one
guest). A command runs with its output recorded by LXD, which is read back and deleted: no websockets.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote, urlencode, urlsplit

SOCKET_PATHS = (
    "/var/lib/lxd/unix.socket",
    "/var/snap/lxd/common/lxd/unix.socket",
    "/var/lib/incus/unix.socket",
)
DEFAULT_HTTPS_PORT = 8443
# Where the lxc client (deb, then snap) and the incus client keep their certificate, under the home directory.
LXC_CONFIG_DIRS = (".config/lxc", "snap/lxd/common/config")
INCUS_CONFIG_DIR = ".config/incus"
EXEC_WORKERS = 8
# Between two looks at LXD's operations: short at first, as most commands end within 0.2 s.
POLL_PAUSES = (0.02, 0.03, 0.05, 0.1, 0.15, 0.25)
# OpenSSL's verify codes when the certificate is sound but names another host or address.
_NAME_MISMATCH_CODES = (62, 64)
_FINAL_STATUS_CODE = 200  # operation status codes from 200 on are final (200 success, 400 failure, 401 cancelled)

# The options every module that talks to LXD takes (doc fragment vault_mlock.lxd._lxd_connection).
CONNECTION_ARGUMENT_SPEC = dict(
    endpoint=dict(type="str"),
    project=dict(type="str", default="default"),
    client_cert=dict(type="path", aliases=["cert_file"]),
    client_key=dict(type="path", aliases=["key_file"], no_log=False),
    validate_certs=dict(type="bool", default=True),
    ca_cert=dict(type="path"),
    timeout=dict(type="float", default=30),
)

ExecResult = Tuple[int, str, str]


class LxdError(Exception):
    """The LXD daemon cannot be reached or answered with an error. The message says which and why."""


class LxdApiError(LxdError):
    """LXD answered with an error status; ``status`` is the HTTP status code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def socket_candidates(environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """Where an LXD (or Incus) daemon's socket is looked for, in this order."""
    environ = os.environ if environ is None else environ
    candidates = []
    if environ.get("LXD_DIR"):
        candidates.append(os.path.join(environ["LXD_DIR"], "unix.socket"))
    candidates.extend(path for path in SOCKET_PATHS if path not in candidates)
    return candidates


def normalize_endpoint(endpoint: Optional[str]) -> Optional[str]:
    """A socket path from 'unix:///path' or 'unix:/path'; URLs and paths unchanged."""
    if not endpoint:
        return None
    for prefix in ("unix://", "unix:"):
        if endpoint.startswith(prefix):
            return endpoint[len(prefix):]
    return endpoint


def is_remote(endpoint: str) -> bool:
    return endpoint.startswith("https://")


def client_certificate_candidates(home: str, environ: Optional[Mapping[str, str]] = None) -> List[Tuple[str, str]]:
    """(certificate, key) pairs the lxc and incus clients use, in the order they are looked for.

    $LXD_CONF, the lxc client's ~/.config/lxc, snap's ~/snap/lxd/common/config, $INCUS_CONF, the incus
    client's ~/.config/incus.
    """
    environ = os.environ if environ is None else environ
    directories = [environ.get("LXD_CONF")] + [os.path.join(home, path) for path in LXC_CONFIG_DIRS]
    directories += [environ.get("INCUS_CONF"), os.path.join(home, INCUS_CONFIG_DIR)]
    pairs = []
    for directory in directories:
        pair = (os.path.join(directory, "client.crt"), os.path.join(directory, "client.key")) if directory else None
        if pair and pair not in pairs:
            pairs.append(pair)
    return pairs


def default_client_certificate(home: Optional[str] = None,
                               environ: Optional[Mapping[str, str]] = None) -> Optional[Tuple[str, str]]:
    """The first (certificate, key) pair of client_certificate_candidates() whose two files exist."""
    home = os.path.expanduser("~") if home is None else home
    for cert, key in client_certificate_candidates(home, environ):
        if os.path.isfile(cert) and os.path.isfile(key):
            return cert, key
    return None


def pinned_certificates(ca_cert: Optional[str]) -> List[bytes]:
    """The certificates (DER) in a PEM file; a server presenting one of them is trusted under any name."""
    if not ca_cert:
        return []
    with open(ca_cert) as handle:
        text = handle.read()
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    ders = []
    start = text.find(begin)
    while start != -1:
        stop = text.find(end, start)
        if stop == -1:
            break
        ders.append(ssl.PEM_cert_to_DER_cert(text[start:stop + len(end)]))
        start = text.find(begin, stop)
    return ders


def tls_context(validate_certs: bool = True, ca_cert: Optional[str] = None, client_cert: Optional[str] = None,
                client_key: Optional[str] = None, check_hostname: bool = True) -> ssl.SSLContext:
    """The TLS client context for an https:// endpoint. Raises LxdError naming the option at fault."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # LXD accepts nothing older
    if validate_certs:
        context.check_hostname = check_hostname
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            if ca_cert:
                context.load_verify_locations(cafile=ca_cert)
            else:
                context.load_default_certs()
        except (OSError, ssl.SSLError) as exc:
            raise LxdError(f"ca_cert: cannot read {ca_cert} as PEM certificates: {exc}") from exc
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert:
        try:
            context.load_cert_chain(client_cert, client_key)
        except (OSError, ssl.SSLError) as exc:
            raise LxdError(f"client_cert, client_key: cannot load {client_cert} with the key {client_key} "
                           f"(both PEM): {exc}") from exc
    return context


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("lxd", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
            except BlockingIOError:
                # With a timeout the socket is non-blocking, and a unix socket whose backlog is full
                # answers EAGAIN at once instead of waiting: wait here.
                sock.close()
                if time.monotonic() >= deadline:
                    raise socket.timeout("the daemon's socket accepts no more connections") from None
                time.sleep(0.01)
                continue
            except OSError:
                sock.close()
                raise
            self.sock = sock
            return


class _TlsConnection(http.client.HTTPSConnection):
    """HTTPS that also trusts a server presenting a certificate of ca_cert under another name.

    That is how `lxc remote add` trusts a server: it keeps the server's own certificate, whose names are
    the server's hostname and loopback addresses, not the address it is reached at.
    """

    def __init__(self, host: str, port: int, timeout: float, context: ssl.SSLContext,
                 pinned: Sequence[bytes], pinned_context: Optional[ssl.SSLContext]) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.pinned = pinned
        self.pinned_context = pinned_context

    def connect(self) -> None:
        try:
            super().connect()
        except ssl.SSLCertVerificationError as exc:
            if exc.verify_code not in _NAME_MISMATCH_CODES or not self.pinned or self.pinned_context is None:
                raise
            http.client.HTTPConnection.connect(self)
            self.sock = self.pinned_context.wrap_socket(self.sock, server_hostname=self.host)
            if self.sock.getpeercert(binary_form=True) not in self.pinned:
                self.close()
                raise


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "no answer in time"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Transport:
    """HTTP requests to one daemon, on a small pool of keep-alive connections (thread-safe)."""

    def __init__(self, endpoint: str, timeout: float, context: Optional[ssl.SSLContext] = None,
                 pinned: Sequence[bytes] = (), pinned_context: Optional[ssl.SSLContext] = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._idle: List[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        if is_remote(endpoint):
            url = urlsplit(endpoint)
            host, port = url.hostname or "", url.port or DEFAULT_HTTPS_PORT
            self._new = lambda: _TlsConnection(host, port, self.timeout, context, pinned, pinned_context)
        else:
            self._new = lambda: _UnixConnection(endpoint, self.timeout)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _acquire(self, fresh: bool) -> Tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle and not fresh:
                return self._idle.pop(), True
        return self._new(), False

    def request(self, method: str, path: str, query: Optional[Mapping[str, str]] = None, body=None,
                timeout: Optional[float] = None) -> Tuple[int, bytes]:
        """(HTTP status, body) of one request to ``path`` (URL-escaped). Raises LxdError when no answer came."""
        target = path + ("?" + urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        headers = {"User-Agent": "vault_mlock.lxd"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        timeout = self.timeout if timeout is None else max(timeout, 0.1)
        # A POST is never sent twice: it goes on a fresh connection, which cannot have gone stale.
        for attempt in (1, 2):
            connection, reused = self._acquire(fresh=method == "POST")
            connection.timeout = timeout
            try:
                if connection.sock is not None:
                    connection.sock.settimeout(timeout)
                connection.request(method, target, body=data, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                stale = reused and not isinstance(exc, socket.timeout)
                if attempt == 1 and stale:
                    continue  # the daemon closed an idle keep-alive connection: once more on a new one
                raise LxdError(f"{method} {path}: {_reason(exc)}") from exc
            if response.will_close:
                connection.close()
            else:
                with self._lock:
                    self._idle.append(connection)
            return response.status, payload
        raise AssertionError("unreachable")  # pragma: no cover

    def call(self, method: str, path: str, query: Optional[Mapping[str, str]] = None, body=None,
             timeout: Optional[float] = None) -> dict:
        """The JSON document LXD answered. Raises LxdApiError with LXD's own message on an error status."""
        status, payload = self.request(method, path, query, body, timeout)
        try:
            document = json.loads(payload.decode("utf-8", "replace"))
        except ValueError:
            document = None
        if status >= 400 or not isinstance(document, dict) or document.get("type") == "error":
            error = document.get("error") if isinstance(document, dict) else None
            raise LxdApiError(error or f"HTTP {status} for {method} {path}", status)
        return document


class LxdApi:
    """The calls the probe makes. ``timeout`` bounds every answer and, shared, every batch of commands."""

    def __init__(self, transport: _Transport, project: str, timeout: float, server: dict,
                 workers: int = EXEC_WORKERS) -> None:
        self.transport = transport
        self.project = project
        self.timeout = timeout
        self.workers = workers
        self._server = server

    def _query(self, **extra) -> Dict[str, str]:
        return dict(extra, project=self.project)

    def server_info(self) -> dict:
        """The metadata of GET /1.0 (environment.server_pid, server_name, server_clustered, ...)."""
        return self._server

    def list_instances(self) -> List[dict]:
        try:
            document = self.transport.call("GET", "/1.0/instances", self._query(recursion="1"))
        except LxdError as exc:
            raise LxdError(f"listing the instances of project {self.project!r} failed: {exc}") from exc
        return document.get("metadata") or []

    def execute(self, name: str, argv: Sequence[str]) -> ExecResult:
        """(exit code, stdout, stderr) of ``argv`` run inside guest ``name``; raises LxdError when it could not run."""
        result = self.execute_many([(name, argv)])[0]
        if isinstance(result, LxdError):
            raise result
        return result

    def execute_many(self, commands: Sequence[Tuple[str, Sequence[str]]]) -> List[Union[ExecResult, LxdError]]:
        """Each command's (exit code, stdout, stderr), or the LxdError that says why it has none.

        Every command is started first; then one loop watches all their operations through LXD's list of
        operations until one common deadline, ``timeout`` seconds from now, and the output of each command
        that ended is read as soon as it ends. Hung guests cost that time once, however many there are,
        and block no other guest: LXD forgets an operation 5 s after it ended, so none may wait its turn.
        """
        deadline = time.monotonic() + self.timeout
        results: List[Union[ExecResult, LxdError, None]] = [None] * len(commands)
        if not commands:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(commands)))) as pool:
            started = list(pool.map(lambda command: self._start(command[0], command[1], deadline), commands))
            pending: Dict[str, int] = {}
            for index, operation in enumerate(started):
                if isinstance(operation, LxdError):
                    results[index] = operation
                else:
                    pending[operation] = index
            finishing = {}
            for operation, state in self._watch(pending, deadline):
                index = pending.pop(operation)
                finishing[index] = pool.submit(self._finish_safely, commands[index][0], operation, state)
            for operation, index in pending.items():
                finishing[index] = pool.submit(self._finish_safely, commands[index][0], operation, None)
            for index, future in finishing.items():
                results[index] = future.result()
        return results

    def _start(self, name: str, argv: Sequence[str], deadline: float) -> Union[str, LxdError]:
        """POST the command; the operation's ID, or the error."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return LxdError(f"not started: the {self.timeout:g}s for commands ran out before its turn")
        body = {"command": list(argv), "environment": {}, "interactive": False, "wait-for-websocket": False,
                "record-output": True}
        try:
            document = self.transport.call("POST", f"/1.0/instances/{_segment(name)}/exec", self._query(), body,
                                           timeout=remaining)
        except LxdError as exc:
            return LxdError(f"LXD refused: {exc}")
        return operation_id(document)

    def _watch(self, operations: Mapping[str, int], deadline: float):
        """Yield (ID, final state) of each of ``operations`` as it ends, until all ended or the deadline.

        One request shows them all: GET /1.0/operations, which on a cluster also brings those of the other
        members (a command on a guest of another member runs there). An operation missing from it is asked
        for by its ID, which every member resolves.
        """
        waiting = set(operations)
        pause, pauses = POLL_PAUSES[0], iter(POLL_PAUSES[1:])
        while waiting:
            remaining = deadline - time.monotonic()
            for operation, state in self._operation_states(waiting, max(remaining, 0.5)).items():
                if int(state.get("status_code") or 0) >= _FINAL_STATUS_CODE or state.get("vanished"):
                    waiting.discard(operation)
                    yield operation, state
            remaining = deadline - time.monotonic()
            if not waiting or remaining <= 0:
                return
            time.sleep(min(pause, remaining))
            pause = next(pauses, pause)

    def _operation_states(self, wanted, timeout: float) -> Dict[str, dict]:
        """The states of the ``wanted`` operations LXD can tell now; a transient failure tells nothing."""
        try:
            document = self.transport.call("GET", "/1.0/operations", self._query(recursion="1"), timeout=timeout)
        except LxdError:
            return {}
        states = {}
        for group in (document.get("metadata") or {}).values():
            for state in group or []:
                if isinstance(state, dict) and state.get("id") in wanted:
                    states[state["id"]] = state
        for operation in set(wanted) - set(states):
            try:
                states[operation] = self.transport.call("GET", f"/1.0/operations/{_segment(operation)}",
                                                        self._query(), timeout=timeout).get("metadata") or {}
            except LxdApiError as exc:
                if exc.status == 404:  # it ended more than 5 s ago, or never was
                    states[operation] = {"vanished": True, "err": str(exc)}
            except LxdError:
                pass
        return states

    def _finish_safely(self, name: str, operation: str, state: Optional[dict]) -> Union[ExecResult, LxdError]:
        try:
            return self._finish(name, operation, state)
        except Exception as exc:  # an answer of an unexpected shape is that guest's error, not the batch's
            return LxdError(f"reading the command's result failed: {_reason(exc)}")

    def _finish(self, name: str, operation: str, state: Optional[dict]) -> Union[ExecResult, LxdError]:
        """The result of an operation that ended (``state``) or is still running at the deadline (None)."""
        result = (state or {}).get("metadata") or {}
        paths = result.get("output") or {}
        if state is None:
            self._forget_output(name, operation, {})
            return LxdError(f"the command was still running after {self.timeout:g}s (LXD operation {operation}): "
                            "the guest does not answer")
        if state.get("vanished"):
            self._forget_output(name, operation, {})
            return LxdError(f"LXD no longer knows the command's operation {operation} ({state.get('err')})")
        output = {}
        if state.get("status_code") == 200:
            for stream, path in paths.items():
                try:
                    _status, payload = self.transport.request("GET", path, self._query())
                except LxdError as exc:
                    self._forget_output(name, operation, paths)
                    return LxdError(f"reading the command's output failed: {exc}")
                output[stream] = payload.decode("utf-8", "replace")
        self._forget_output(name, operation, paths)
        if state.get("status_code") == 200:
            return int(result.get("return", -1)), output.get("1", ""), output.get("2", "")
        return LxdError(f"the command failed: {state.get('err') or state.get('status')}")

    def _forget_output(self, name: str, operation: str, paths: Mapping[str, str]) -> None:
        """Delete the command's recorded output. LXD made the files even when the command failed to start
        or still runs, without saying where; they are then tried where LXD 5.0 and later versions put them.
        """
        targets = list(paths.values()) or [f"/1.0/instances/{_segment(name)}/logs/{folder}exec_{operation}.{stream}"
                                           for folder in ("", "exec-output/") for stream in ("stdout", "stderr")]
        for path in targets:
            try:
                self.transport.request("DELETE", path, self._query())
            except LxdError:
                pass  # left for LXD; the probe's answer does not depend on it


def _segment(text: str) -> str:
    return quote(text, safe="")


def operation_id(document: dict) -> str:
    """The ID of the operation an async answer started: its metadata's id, else the last segment of its URL."""
    metadata = document.get("metadata") or {}
    if isinstance(metadata, dict) and metadata.get("id"):
        return str(metadata["id"])
    return urlsplit(document.get("operation") or "").path.rstrip("/").rsplit("/", 1)[-1]


def connect(endpoint: Optional[str] = None, project: str = "default", client_cert: Optional[str] = None,
            client_key: Optional[str] = None, validate_certs: bool = True, ca_cert: Optional[str] = None,
            timeout: Optional[float] = None, environ: Optional[Mapping[str, str]] = None,
            home: Optional[str] = None) -> Tuple[LxdApi, str]:
    """An LxdApi on ``endpoint`` (a socket path or an https:// URL), or on the first local socket that answers.

    For https:// the server's certificate is verified (against ``ca_cert`` when given, else the system's
    CAs) unless ``validate_certs`` is false, and the client certificate defaults to the lxc or incus
    client's own (default_client_certificate).
    """
    timeout = float(timeout) if timeout else 30.0
    endpoint = normalize_endpoint(endpoint)
    if endpoint and endpoint.startswith("http://"):
        raise LxdError("endpoint: LXD serves its API over https:// only (or a unix socket path)")
    context = pinned_context = None
    pinned: List[bytes] = []
    if endpoint and is_remote(endpoint):
        if not urlsplit(endpoint).hostname:
            raise LxdError(f"endpoint: {endpoint!r} names no host; give it as https://HOST[:PORT]")
        if not client_cert:
            client_cert, client_key = default_client_certificate(home, environ) or (None, None)
        context = tls_context(validate_certs, ca_cert, client_cert, client_key)
        if validate_certs and ca_cert:
            try:
                pinned = pinned_certificates(ca_cert)
            except (OSError, ValueError) as exc:
                raise LxdError(f"ca_cert: cannot read {ca_cert}: {exc}") from exc
            pinned_context = tls_context(validate_certs, ca_cert, client_cert, client_key, check_hostname=False)
    tried = []
    for candidate in [endpoint] if endpoint else socket_candidates(environ):
        if not is_remote(candidate) and not os.path.exists(candidate):
            tried.append(f"{candidate} (no such socket)")
            continue
        transport = _Transport(candidate, timeout, context, pinned, pinned_context)
        try:
            server = transport.call("GET", "/1.0").get("metadata") or {}
        except LxdError as exc:
            transport.close()
            tried.append(f"{candidate} ({_cause(exc)})")
            continue
        if server.get("auth") != "trusted":
            transport.close()
            certificate = f"the client certificate {client_cert}" if client_cert else "no client certificate"
            raise LxdError(f"the LXD daemon at {candidate} does not trust this client ({certificate}); "
                           "add the certificate on the server with `lxc config trust add`")
        return LxdApi(transport, project, timeout, server), candidate
    option = "endpoint" if endpoint else "endpoint (none given, so the usual sockets were tried)"
    hint = ""
    if endpoint and is_remote(endpoint) and any("CERTIFICATE_VERIFY_FAILED" in text for text in tried):
        hint = " (give the server's certificate as ca_cert, or set validate_certs=false to skip the check)"
    raise LxdError(f"no LXD daemon answered; tried: {'; '.join(tried)}{hint}. Check that LXD runs, or set {option} "
                   "to its unix socket path or https:// URL")


def _cause(exc: LxdError) -> str:
    """The reason of a failed GET /1.0 without repeating the request."""
    text = str(exc)
    prefix = "GET /1.0: "
    return text[len(prefix):] if text.startswith(prefix) else text
