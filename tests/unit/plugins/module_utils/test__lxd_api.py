# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The LXD API client against a fake daemon on a real unix socket and a real TLS port (tests/unit/_fake_lxd.py)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import sys

import pytest
from _fake_lxd import FakeLxd, Guest, elapsed

from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_api import connect, operation_id
from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_transport import (
    LxdError,
    client_certificate_candidates,
    default_client_certificate,
    is_remote,
    normalize_endpoint,
    pinned_certificates,
    socket_candidates,
)

USUAL_SOCKETS = ["/var/lib/lxd/unix.socket", "/var/snap/lxd/common/lxd/unix.socket", "/var/lib/incus/unix.socket"]
LIMITS = "@@1 limits\n"


# --- pure functions ------------------------------------------------------------------------------

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


@pytest.mark.parametrize(
    "document, expected",
    [
        # A guest on the member that answered: LXD 5.0.2 names the operation by its path alone.
        ({"operation": "/1.0/operations/1a2b", "metadata": {"id": "1a2b"}}, "1a2b"),
        # A guest on another member: the forwarded operation's URL carries the project as a query.
        ({"operation": "/1.0/operations/3c4d?project=default", "metadata": {"id": "3c4d"}}, "3c4d"),
        ({"operation": "/1.0/operations/3c4d?project=default", "metadata": None}, "3c4d"),
    ],
)
def test_operation_id(document, expected):
    assert operation_id(document) == expected


def test_client_certificate_candidates():
    environ = {"LXD_CONF": "/etc/lxd-client", "INCUS_CONF": ""}
    assert client_certificate_candidates("/root", environ) == [
        ("/etc/lxd-client/client.crt", "/etc/lxd-client/client.key"),
        ("/root/.config/lxc/client.crt", "/root/.config/lxc/client.key"),
        ("/root/snap/lxd/common/config/client.crt", "/root/snap/lxd/common/config/client.key"),
        ("/root/.config/incus/client.crt", "/root/.config/incus/client.key"),
    ]


@pytest.mark.parametrize("directory", [".config/lxc", "snap/lxd/common/config", ".config/incus"])
def test_default_client_certificate_is_the_clients_own(tmp_path, directory):
    assert default_client_certificate(str(tmp_path), {}) is None
    (tmp_path / directory).mkdir(parents=True)
    (tmp_path / directory / "client.crt").write_text("")
    assert default_client_certificate(str(tmp_path), {}) is None  # a certificate without its key is no pair
    (tmp_path / directory / "client.key").write_text("")
    assert default_client_certificate(str(tmp_path), {}) == (str(tmp_path / directory / "client.crt"),
                                                             str(tmp_path / directory / "client.key"))


# --- the unix socket -----------------------------------------------------------------------------

@pytest.fixture
def lxd(tmp_path):
    """A fake cluster member c1 on a real unix socket; g1 and g2 run on c1, g3 on c2."""
    fake = FakeLxd({
        "g1": Guest(stdout=LIMITS),
        "g2": Guest(returned=3, stdout="out\n", stderr="err\n", seconds=0.2),
        "g3": Guest(stdout="on c2\n", member="c2"),
        "nocmd": Guest(start_error="Command not found"),
        "down": Guest(status="Stopped"),
    })
    path = fake.serve_unix(str(tmp_path / "unix.socket"))
    yield fake, path
    fake.stop()


def test_connect_and_execute_through_a_real_unix_socket(lxd):
    fake, path = lxd
    api, endpoint = connect(endpoint="unix://" + path, project="prod", timeout=5)
    assert endpoint == path
    assert api.server_info()["environment"]["server_name"] == "c1"
    assert api.execute("g1", ["sh", "-c", "cat /proc/1/limits"]) == (0, LIMITS, "")
    assert api.execute("g2", ["false"]) == (3, "out\n", "err\n")
    # Every request names the project; the recorded output is read, then deleted.
    assert {query.get("project") for method, path_, query in fake.requests if path_ != "/1.0"} == {"prod"}
    assert fake.logs == {}
    assert [method for method, path_, query in fake.requests if "/logs/" in path_] == ["GET", "GET", "DELETE", "DELETE"] * 2
    # Keep-alive: the GETs and DELETEs share connections; each POST gets a fresh one.
    assert fake.connections <= 1 + 2


def test_execute_on_a_guest_of_another_cluster_member(lxd):
    """The member forwards the command and hands back the other member's operation as
    /1.0/operations/ID?project=default; it is waited for by its ID, not by extending that URL."""
    fake, path = lxd
    api, _endpoint = connect(endpoint=path, timeout=5)
    seconds, result = elapsed(api.execute, "g3", ["cat", "/proc/1/limits"])
    assert result == (0, "on c2\n", "")
    assert fake.logs == {}
    assert seconds < 1


@pytest.mark.parametrize(
    "name, message",
    [
        ("nocmd", "the command failed: Command not found"),
        ("missing", "LXD refused: Instance not found"),
        ("down", "LXD refused: Instance is not running"),
    ],
)
def test_execute_failures(lxd, name, message):
    fake, path = lxd
    api, _endpoint = connect(endpoint=path, timeout=5)
    with pytest.raises(LxdError, match=message):
        api.execute(name, ["/nonexistent"])
    assert fake.logs == {}  # a command that failed to start leaves no recorded output behind either


def test_hung_guests_cost_the_timeout_once(tmp_path):
    """20 guests whose command never ends among 12 that answer (4 of those on another member): every
    command starts at once, all share one deadline, and each hung guest is reported as such."""
    guests = {f"hung{number:02d}": Guest(hangs=True, member="c1" if number % 2 else "c2") for number in range(20)}
    guests.update({f"ok{number:02d}": Guest(stdout=f"{number}\n", seconds=0.3, member="c2" if number < 4 else "c1")
                   for number in range(12)})
    fake = FakeLxd(guests)
    path = fake.serve_unix(str(tmp_path / "unix.socket"))
    try:
        api, _endpoint = connect(endpoint=path, timeout=2)
        names = sorted(guests)
        seconds, results = elapsed(api.execute_many, [(name, ["sh"]) for name in names])
    finally:
        fake.stop()
    assert seconds < 2 + 2, seconds
    by_name = dict(zip(names, results))
    for name in names:
        if name.startswith("hung"):
            assert isinstance(by_name[name], LxdError), name
            assert "the command was still running after 2s" in str(by_name[name])
        else:
            assert by_name[name] == (0, f"{int(name[2:])}\n", ""), name
    assert fake.logs == {}  # the hung commands' output files are deleted too


def test_a_guest_that_answers_is_read_however_many_hang_before_it(tmp_path):
    """LXD forgets an operation a few seconds after it ended (5 s; 1 s here): a command that ended must be
    read then, not after the hung ones before it in the list have had their time."""
    guests = {f"hung{number:02d}": Guest(hangs=True) for number in range(16)}
    guests["zz-answers"] = Guest(stdout="late in the list\n", member="c2")
    fake = FakeLxd(guests, retention=1.0)
    path = fake.serve_unix(str(tmp_path / "unix.socket"))
    try:
        api, _endpoint = connect(endpoint=path, timeout=3)
        results = api.execute_many([(name, ["sh"]) for name in sorted(guests)])
    finally:
        fake.stop()
    assert results[-1] == (0, "late in the list\n", "")
    assert all("still running after 3s" in str(result) for result in results[:-1])


def test_a_daemon_that_stops_answering_fails_each_command_in_time(lxd):
    """Once the daemon answers nothing more, 20 commands fail together within the timeout."""
    fake, path = lxd
    api, _endpoint = connect(endpoint=path, timeout=1)
    fake.mute.set()
    seconds, results = elapsed(api.execute_many, [("g1", ["sh"])] * 20)
    assert seconds < 1 + 2, seconds
    assert all(isinstance(result, LxdError) for result in results)
    assert "no answer in time" in str(results[0])
    assert "not started: the 1s for commands ran out before its turn" in str(results[-1])


def test_connect_names_what_it_tried(tmp_path):
    not_a_socket = tmp_path / "plain-file"
    not_a_socket.write_text("")
    refused = str(tmp_path / "refused.socket")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(refused)
    dead.close()  # the file stays; nobody listens
    for endpoint in (str(tmp_path / "missing.socket"), str(not_a_socket), refused):
        with pytest.raises(LxdError, match="no LXD daemon answered; tried: " + endpoint) as error:
            connect(endpoint=endpoint, timeout=2)
        assert "set endpoint" in str(error.value)


def test_connect_tries_the_usual_sockets_in_order(tmp_path, lxd):
    _fake, path = lxd
    api, endpoint = connect(environ={"LXD_DIR": str(tmp_path)}, timeout=2)
    assert endpoint == path


@pytest.mark.parametrize(
    "endpoint, message",
    [
        ("http://lxd.example.com:8443", "endpoint: LXD serves its API over https:// only"),
        ("https://:8443", "endpoint: 'https://:8443' names no host"),
    ],
)
def test_connect_refuses_bad_endpoints(endpoint, message):
    with pytest.raises(LxdError, match=message):
        connect(endpoint=endpoint)


# --- TLS ------------------------------------------------------------------------------------------

x509 = pytest.importorskip("cryptography.x509")


class Pki:
    """Certificates made for the test: a CA, servers it signs, self-signed servers and clients."""

    def __init__(self, directory):
        from cryptography.hazmat.primitives.asymmetric import ec

        self.directory = directory
        self.ec = ec
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = self._certificate("test CA", self.ca_key, self.ca_key, None, is_ca=True)
        self.ca_path = self.write("ca", self.ca)

    def _certificate(self, name, key, signer_key, issuer, is_ca=False, dns=(), ips=()):
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(issuer.subject if issuer else subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
        if not is_ca:
            # As LXD makes its certificates: for servers and clients alike.
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                                   ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        names = [x509.DNSName(value) for value in dns] + [x509.IPAddress(ipaddress.ip_address(v)) for v in ips]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(signer_key, hashes.SHA256())

    def write(self, name, certificate, key=None):
        from cryptography.hazmat.primitives import serialization

        certificate_path = self.directory / f"{name}.crt"
        certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            (self.directory / f"{name}.key").write_bytes(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return str(certificate_path)

    def issue(self, name, signed=True, dns=(), ips=()):
        """A certificate and key for ``name`` (signed by the CA or self-signed); returns (crt path, key path, DER)."""
        from cryptography.hazmat.primitives import serialization

        key = self.ec.generate_private_key(self.ec.SECP256R1())
        certificate = self._certificate(name, key, self.ca_key if signed else key, self.ca if signed else None,
                                        dns=dns, ips=ips)
        path = self.write(name, certificate, key)
        return path, str(self.directory / f"{name}.key"), certificate.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def pki(tmp_path):
    directory = tmp_path / "pki"
    directory.mkdir()
    return Pki(directory)


@pytest.fixture
def tls_lxd(pki):
    """Starts fake daemons over TLS with the server certificate asked for; they trust the client 'admin'."""
    admin_cert, admin_key, admin_der = pki.issue("admin", signed=False)
    fakes = []

    def start(server_cert, server_key):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(server_cert, server_key)
        context.verify_mode = ssl.CERT_OPTIONAL  # as LXD: a client certificate is asked for, not required
        context.load_verify_locations(admin_cert)
        fake = FakeLxd({"g1": Guest(stdout=LIMITS), "g3": Guest(stdout="on c2\n", member="c2")})
        fake.trusted_certificates.append(admin_der)
        fakes.append(fake)
        return f"https://127.0.0.1:{fake.serve_tls(context)}"

    start.admin = (admin_cert, admin_key)
    yield start
    for fake in fakes:
        fake.stop()


def test_tls_with_the_servers_ca_and_a_client_certificate(pki, tls_lxd):
    server_cert, server_key, _der = pki.issue("lxd1", dns=["lxd1.example.com"], ips=["127.0.0.1"])
    url = tls_lxd(server_cert, server_key)
    client_cert, client_key = tls_lxd.admin
    api, endpoint = connect(endpoint=url, ca_cert=pki.ca_path, client_cert=client_cert, client_key=client_key,
                            timeout=5)
    assert endpoint == url
    assert api.execute("g1", ["cat", "/proc/1/limits"]) == (0, LIMITS, "")
    assert api.execute("g3", ["cat", "/proc/1/limits"]) == (0, "on c2\n", "")


@pytest.mark.parametrize(
    "ca, message",
    [
        (None, "CERTIFICATE_VERIFY_FAILED"),  # the system's CAs do not know the test CA
        ("other", "CERTIFICATE_VERIFY_FAILED"),  # another CA
    ],
)
def test_tls_refuses_a_server_it_cannot_verify(pki, tls_lxd, tmp_path, ca, message):
    server_cert, server_key, _der = pki.issue("lxd1", ips=["127.0.0.1"])
    url = tls_lxd(server_cert, server_key)
    ca_cert = Pki(tmp_path).ca_path if ca == "other" else None
    client_cert, client_key = tls_lxd.admin
    with pytest.raises(LxdError, match=message) as error:
        connect(endpoint=url, ca_cert=ca_cert, client_cert=client_cert, client_key=client_key, timeout=5)
    assert "give the server's certificate as ca_cert, or set validate_certs=false" in str(error.value)


def test_tls_checks_the_name_of_a_certificate_the_ca_signed(pki, tls_lxd):
    server_cert, server_key, _der = pki.issue("elsewhere", dns=["elsewhere.example.com"], ips=["192.0.2.7"])
    url = tls_lxd(server_cert, server_key)
    client_cert, client_key = tls_lxd.admin
    with pytest.raises(LxdError, match="IP address mismatch|doesn't match|CERTIFICATE_VERIFY_FAILED"):
        connect(endpoint=url, ca_cert=pki.ca_path, client_cert=client_cert, client_key=client_key, timeout=5)


def test_tls_trusts_the_servers_own_certificate_at_any_address(pki, tls_lxd):
    """As `lxc remote add` keeps it: the server's self-signed certificate names its host, not the address."""
    server_cert, server_key, _der = pki.issue("c1", signed=False, dns=["c1"], ips=["::1"])
    url = tls_lxd(server_cert, server_key)
    client_cert, client_key = tls_lxd.admin
    api, _endpoint = connect(endpoint=url, ca_cert=server_cert, client_cert=client_cert, client_key=client_key,
                             timeout=5)
    assert api.execute("g1", ["true"]) == (0, LIMITS, "")
    # Another self-signed certificate under the same name is not the one kept.
    impostor_cert, impostor_key, _der = pki.issue("c1-impostor", signed=False, dns=["c1"], ips=["::1"])
    with pytest.raises(LxdError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(endpoint=tls_lxd(impostor_cert, impostor_key), ca_cert=server_cert, client_cert=client_cert,
                client_key=client_key, timeout=5)


def test_tls_without_verification_when_asked(pki, tls_lxd):
    server_cert, server_key, _der = pki.issue("c1", signed=False, dns=["c1"])
    url = tls_lxd(server_cert, server_key)
    client_cert, client_key = tls_lxd.admin
    api, _endpoint = connect(endpoint=url, validate_certs=False, client_cert=client_cert, client_key=client_key,
                             timeout=5)
    assert api.execute("g1", ["true"]) == (0, LIMITS, "")


@pytest.mark.parametrize("directory", [".config/lxc", "snap/lxd/common/config", ".config/incus"])
def test_tls_client_certificate_defaults_to_the_clients_own(pki, tls_lxd, tmp_path, directory):
    server_cert, server_key, _der = pki.issue("lxd1", ips=["127.0.0.1"])
    url = tls_lxd(server_cert, server_key)
    home = tmp_path / "home"
    with pytest.raises(LxdError, match=r"does not trust this client \(no client certificate\)"):
        connect(endpoint=url, ca_cert=pki.ca_path, home=str(home), environ={}, timeout=5)
    client_cert, client_key = tls_lxd.admin
    (home / directory).mkdir(parents=True)
    (home / directory / "client.crt").write_bytes(open(client_cert, "rb").read())
    (home / directory / "client.key").write_bytes(open(client_key, "rb").read())
    api, _endpoint = connect(endpoint=url, ca_cert=pki.ca_path, home=str(home), environ={}, timeout=5)
    assert api.server_info()["auth"] == "trusted"


def test_tls_options_at_fault_are_named(pki, tmp_path):
    with pytest.raises(LxdError, match="ca_cert: cannot read"):
        connect(endpoint="https://127.0.0.1:1", ca_cert=str(tmp_path / "missing.crt"), environ={}, home=str(tmp_path))
    cert, _key, _der = pki.issue("admin", signed=False)
    with pytest.raises(LxdError, match="client_cert, client_key: cannot load"):
        connect(endpoint="https://127.0.0.1:1", ca_cert=pki.ca_path, client_cert=cert,
                client_key=str(tmp_path / "missing.key"))


def test_pinned_certificates(pki):
    cert, _key, der = pki.issue("c1", signed=False)
    bundle = pki.directory / "bundle.pem"
    bundle.write_text(open(pki.ca_path).read() + "\n" + open(cert).read())
    pinned = pinned_certificates(str(bundle))
    assert len(pinned) == 2 and pinned[1] == der
    assert pinned_certificates(None) == []


def test_nothing_beyond_the_standard_library(lxd):
    """The module and its client import and work where neither pylxd nor requests can be imported."""
    _fake, path = lxd
    script = (
        "import sys\n"
        "sys.modules['pylxd'] = sys.modules['requests'] = None  # import fails\n"
        "import importlib.util\n"
        "if importlib.util.find_spec('ansible'):  # absent where only the client is tested (Python 3.7)\n"
        "    from ansible_collections.vault_mlock.lxd.plugins.modules import memlock_probe\n"
        "from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_api import connect\n"
        f"api, _ = connect(endpoint={path!r}, timeout=5)\n"
        "print(api.execute('g1', ['true']))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"(0, {LIMITS!r}, '')\n"
