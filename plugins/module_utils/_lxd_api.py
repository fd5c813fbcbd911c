# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The LXD (or Incus) API as the probe uses it: which socket, how to connect, three calls.

Only this file touches pylxd. Everything else works with any object offering server_info(),
list_instances() and execute(name, argv).
"""

from __future__ import annotations

import inspect
import os
from typing import List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote

try:
    import pylxd
    from pylxd import exceptions as pylxd_exceptions

    HAS_PYLXD = True
    PYLXD_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the target
    HAS_PYLXD = False
    PYLXD_IMPORT_ERROR = exc


SOCKET_PATHS = (
    "/var/lib/lxd/unix.socket",
    "/var/snap/lxd/common/lxd/unix.socket",
    "/var/lib/incus/unix.socket",
)


class LxdError(Exception):
    """The LXD daemon cannot be reached or answered with an error. The message says which and why."""


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
    return endpoint.startswith(("https://", "http://"))


class LxdApi:
    """The three calls the probe makes, as plain HTTP requests through pylxd's client.

    A command runs with its output recorded by LXD, fetched and then deleted: no websockets, since
    pylxd's websocket exec loses output or breaks its pipe now and then when several run at once.
    """

    def __init__(self, client, project: str, timeout: Optional[float] = None) -> None:
        self.client = client
        self.project = project
        self.timeout = timeout

    def _params(self, **extra) -> dict:
        return dict(extra, project=self.project)

    def server_info(self) -> dict:
        return self.client.host_info

    def list_instances(self) -> List[dict]:
        try:
            response = self.client.api.instances.get(params=self._params(recursion="1"))
        except pylxd_exceptions.LXDAPIException as exc:
            raise LxdError(f"listing the instances of project {self.project!r} failed: {exc}") from exc
        return response.json()["metadata"] or []

    def _node(self, path: str):
        """The API node of an absolute path such as /1.0/instances/g1/logs/exec_ID.stdout."""
        node = self.client.api
        for segment in path.strip("/").split("/")[1:]:
            node = node[segment]
        return node

    def execute(self, name: str, argv: Sequence[str]) -> Tuple[int, str, str]:
        """(exit code, stdout, stderr) of ``argv`` run inside the guest; raises LxdError when it could not run."""
        body = {"command": list(argv), "environment": {}, "interactive": False, "wait-for-websocket": False,
                "record-output": True}
        wait_seconds = int(self.timeout) if self.timeout else 30
        try:
            response = self.client.api.instances[name].exec.post(params=self._params(), json=body)
            operation = self._node(response.json()["operation"])
            # LXD answers the wait when the command ends or after wait_seconds; the socket may take a little longer.
            done = operation.wait.get(params=self._params(timeout=str(wait_seconds)),
                                      timeout=wait_seconds + 5).json()["metadata"]
            result = done.get("metadata") or {}
            output = {}
            # Fetched and deleted even when the command failed to start: LXD made the files anyway.
            for stream, path in (result.get("output") or {}).items():
                log = self._node(path)
                output[stream] = log.get(params=self._params(), is_api=False).text
                log.delete(params=self._params())
        except pylxd_exceptions.LXDAPIException as exc:
            raise LxdError(f"LXD refused: {exc}") from exc
        if done.get("status_code") != 200:
            reason = done.get("err") or f"still {done.get('status', 'running')} after {wait_seconds}s"
            raise LxdError(f"the command did not complete: {reason}")
        return int(result.get("return", -1)), output.get("1", ""), output.get("2", "")


def client_endpoint(endpoint: str) -> str:
    """The endpoint as pylxd.Client takes it: a socket path as an http+unix:// URL.

    pylxd before 2.3 takes a socket path only in that form (it looked for a regular file there).
    """
    if is_remote(endpoint) or endpoint.startswith("http+unix://"):
        return endpoint
    return "http+unix://" + quote(endpoint, safe="")


def client_knows_projects(client_class) -> bool:
    """Whether this pylxd.Client takes a project (pylxd 2.2.11 and later); older ones get it per request."""
    try:
        return "project" in inspect.signature(client_class).parameters
    except (TypeError, ValueError):
        return False


def connect(endpoint: Optional[str] = None, project: str = "default", client_cert: Optional[str] = None,
            client_key: Optional[str] = None, verify=True, timeout: Optional[float] = None,
            environ: Optional[Mapping[str, str]] = None) -> Tuple[LxdApi, str]:
    """An LxdApi on ``endpoint`` (a socket path or an https:// URL), or on the first local socket that answers."""
    cert = (client_cert, client_key) if client_cert else None
    endpoint = normalize_endpoint(endpoint)
    tried = []
    for candidate in [endpoint] if endpoint else socket_candidates(environ):
        if not is_remote(candidate) and not os.path.exists(candidate):
            tried.append(f"{candidate} (no such socket)")
            continue
        options = {"project": project} if client_knows_projects(pylxd.Client) else {}
        try:
            client = pylxd.Client(endpoint=client_endpoint(candidate), cert=cert, verify=verify, timeout=timeout,
                                  **options)
        except pylxd_exceptions.ClientConnectionFailed as exc:
            tried.append(f"{candidate} ({exc or 'no answer'})")
            continue
        except Exception as exc:  # requests and TLS errors come in many types
            tried.append(f"{candidate} ({type(exc).__name__}: {exc})")
            continue
        if not client.trusted:
            raise LxdError(f"the LXD daemon at {candidate} does not trust this client; "
                           "add its certificate with `lxc config trust add`")
        return LxdApi(client, project, timeout), candidate
    option = "endpoint" if endpoint else "endpoint (none given, so the usual sockets were tried)"
    raise LxdError(f"no LXD daemon answered; tried: {'; '.join(tried)}. Check that LXD runs, or set {option} "
                   "to its unix socket path or https:// URL")


