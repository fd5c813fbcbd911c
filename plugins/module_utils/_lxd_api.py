# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The LXD (or Incus) REST API as the collection uses it, on Python's standard library alone.

A local daemon is reached through its unix socket (http.client over AF_UNIX), a remote one over
https:// with a client certificate. Nothing beyond the standard library of Python 3.8 or later is
needed: Debian 13 packages no pylxd for its Python and refuses pip into it.

The probe uses three calls: server_info(), list_instances() and execute_many() (execute() for one
guest). A command runs with its output recorded by LXD, which is read back and deleted: no websockets.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote, urlsplit

from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_transport import (
    LxdApiError,
    LxdError,
    describe_error,
    Transport,
    default_client_certificate,
    is_remote,
    normalize_endpoint,
    pinned_certificates,
    socket_candidates,
    tls_context,
)

EXEC_WORKERS = 8
# Between two looks at LXD's operations: short at first, as most commands end within 0.2 s.
POLL_PAUSES = (0.02, 0.03, 0.05, 0.1, 0.15, 0.25)
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


class LxdApi:
    """The calls the probe makes. ``timeout`` bounds every answer and, shared, every batch of commands."""

    def __init__(self, transport: Transport, project: str, timeout: float, server: dict,
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
            return LxdError(f"reading the command's result failed: {describe_error(exc)}")

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
        transport = Transport(candidate, timeout, context, pinned, pinned_context)
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
