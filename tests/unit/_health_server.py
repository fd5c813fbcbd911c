"""A stand-in for Vault's and OpenBao's health endpoint on a real socket (HTTP, or HTTPS with a
self-signed loopback certificate), for the tests of vault_status.

The bodies are what OpenBao 2.7.2 answered in the vault_restarts Molecule scenario, and the
status codes those Vault documents for each state when asked without query parameters.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import ssl
import threading
from typing import List, Tuple
from urllib.parse import urlsplit

ACTIVE = {"initialized": True, "sealed": False, "standby": False, "performance_standby": False,
          "replication_performance_mode": "disabled", "replication_dr_mode": "disabled",
          "server_time_utc": 1764540000, "version": "2.7.2", "cluster_name": "vault-cluster-8f3a",
          "cluster_id": "2c6c3f0e-0000-0000-0000-000000000000"}
SEALED = {"initialized": True, "sealed": True, "standby": True, "performance_standby": False,
          "replication_performance_mode": "disabled", "replication_dr_mode": "disabled",
          "server_time_utc": 1764540000, "version": "2.7.2"}
UNINITIALIZED = dict(SEALED, initialized=False)
STANDBY = dict(ACTIVE, standby=True)


class HealthServer:
    """Answers GET /v1/sys/health with each of ``answers`` (status, body dict or text) in turn, the last again and
    again; records every query string it got."""

    def __init__(self, answers: List[Tuple[int, object]], honour_query: bool = True) -> None:
        self.answers = list(answers)
        self.honour_query = honour_query
        self.queries: List[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  (the name http.server calls)
                parts = urlsplit(self.path)
                server.queries.append(parts.query)
                status, body = server.answers.pop(0) if len(server.answers) > 1 else server.answers[0]
                if server.honour_query and "sealedcode=200" in parts.query and status in (429, 473, 501, 503):
                    status = 200
                payload = (json.dumps(body) if isinstance(body, dict) else body).encode()
                self.send_response(status if parts.path == "/v1/sys/health" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.scheme = "http"

    def use_tls(self, directory) -> str:
        """Serve HTTPS with a self-signed certificate for 127.0.0.1; returns the certificate's path."""
        certificate, key = self_signed(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https"
        return certificate

    @property
    def addr(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def self_signed(directory) -> Tuple[str, str]:
    """A self-signed certificate naming IP 127.0.0.1, as a loopback listener often has; (crt, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vault loopback")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(key, hashes.SHA256()))
    crt, key_path = directory / "tls.crt", directory / "tls.key"
    crt.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(crt), str(key_path)
