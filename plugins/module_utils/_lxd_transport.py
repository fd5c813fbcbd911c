# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""How the collection reaches an LXD (or Incus) daemon, on Python's standard library alone.

A local daemon through its unix socket (http.client over AF_UNIX), a remote one over https://
with a client certificate, the server's certificate verified unless told otherwise. One JSON
request at a time through Transport; the API calls themselves are in _lxd_api.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import threading
import time
from typing import List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlencode, urlsplit

SOCKET_PATHS = (
    "/var/lib/lxd/unix.socket",
    "/var/snap/lxd/common/lxd/unix.socket",
    "/var/lib/incus/unix.socket",
)
# The socket of the daemon each systemd unit runs (_systemd.LXD_DAEMON_UNITS).
UNIT_SOCKETS = {
    "lxd.service": "/var/lib/lxd/unix.socket",
    "snap.lxd.daemon.service": "/var/snap/lxd/common/lxd/unix.socket",
    "incus.service": "/var/lib/incus/unix.socket",
}
DEFAULT_HTTPS_PORT = 8443
# Where the lxc client (deb, then snap) and the incus client keep their certificate, under the home directory.
LXC_CONFIG_DIRS = (".config/lxc", "snap/lxd/common/config")
INCUS_CONFIG_DIR = ".config/incus"
# OpenSSL's verify codes when the certificate is sound but names another host or address.
_NAME_MISMATCH_CODES = (62, 64)


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


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "no answer in time"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Transport:
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
                raise LxdError(f"{method} {path}: {describe_error(exc)}") from exc
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
