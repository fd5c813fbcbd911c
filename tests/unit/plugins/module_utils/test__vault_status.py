# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vault_status's pure parts: the address, the answer read as data, the state, the wait; and the health
program itself against a real HTTP(S) server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _health_server import ACTIVE, SEALED, STANDBY, UNINITIALIZED, HealthServer

from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_status import (
    DEFAULT_ADDR,
    HEALTH_QUERY,
    Answer,
    StatusError,
    VaultState,
    addr_from_configs,
    check_timeouts,
    describe,
    health_url,
    judge_answer,
    listener_url,
    normalize_addr,
    parse_answer,
    program_argv,
    wait_for,
)


# --- the address ------------------------------------------------------------------------------


@pytest.mark.parametrize("given, expected", [
    ("https://127.0.0.1:8200", "https://127.0.0.1:8200"),
    ("http://127.0.0.1:8200/", "http://127.0.0.1:8200"),
    (" https://vault.example.com ", "https://vault.example.com"),
    ("https://[::1]:8200", "https://[::1]:8200"),
])
def test_normalize_addr(given, expected):
    assert normalize_addr(given) == expected


@pytest.mark.parametrize("given, words", [
    ("127.0.0.1:8200", ["api_addr", "http(s)://HOST[:PORT]"]),
    ("tcp://127.0.0.1:8200", ["api_addr", "http(s)://HOST[:PORT]"]),
    ("https://127.0.0.1:8200/v1/sys/health", ["api_addr", "adds /v1/sys/health"]),
    ("https://127.0.0.1:99999", ["api_addr", "port"]),
    ("https://", ["api_addr"]),
    ("", ["api_addr"]),
])
def test_normalize_addr_refuses_with_the_option_and_the_form(given, words):
    with pytest.raises(StatusError) as error:
        normalize_addr(given)
    assert all(word in str(error.value) for word in words), str(error.value)


def test_the_default_is_what_vault_and_bao_use_without_an_address():
    # `bao status -h`: "The default is https://127.0.0.1:8200."; Vault's VAULT_ADDR default is the same.
    assert DEFAULT_ADDR == "https://127.0.0.1:8200"
    assert health_url(DEFAULT_ADDR) == "https://127.0.0.1:8200/v1/sys/health?" + HEALTH_QUERY
    for parameter in ("standbyok=true", "perfstandbyok=true", "sealedcode=200", "uninitcode=200"):
        assert parameter in HEALTH_QUERY


@pytest.mark.parametrize("address, tls_disable, expected", [
    (None, None, "https://127.0.0.1:8200"),
    ("127.0.0.1:8200", True, "http://127.0.0.1:8200"),
    ("0.0.0.0:8200", False, "https://127.0.0.1:8200"),
    (":8300", None, "https://127.0.0.1:8300"),
    ("[::]:8200", True, "http://[::1]:8200"),
    ("[fd00::5]:8200", None, "https://[fd00::5]:8200"),
    ("vault.internal:8200", None, "https://vault.internal:8200"),
])
def test_listener_url(address, tls_disable, expected):
    assert listener_url(address, tls_disable, "f") == expected


@pytest.mark.parametrize("address", ['{{ GetPrivateIP }}:8200', "127.0.0.1", "127.0.0.1:port"])
def test_listener_url_refuses_what_it_cannot_reach(address):
    with pytest.raises(StatusError, match="set api_addr"):
        listener_url(address, None, "config: f")


HCL = """
storage "raft" {
  path = "/var/lib/openbao"
}
listener "unix" {
  address = "/run/openbao.sock"
}
listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = "true"   # as a string, which Vault reads as ParseBool does
  telemetry {
    unauthenticated_metrics_access = true
  }
}
listener "tcp" {
  address = "10.0.0.5:8201"
}
"""


def test_addr_from_hcl_takes_the_first_tcp_listener():
    expected = ("http://127.0.0.1:8200", "/etc/openbao/openbao.hcl")
    assert addr_from_configs([("/etc/openbao/openbao.hcl", HCL)]) == expected


def test_addr_from_a_listener_without_address_or_tls_disable_is_vaults_default():
    assert addr_from_configs([("a.hcl", 'ui = true\n'), ("b.hcl", 'listener tcp {\n}\n')]) == (
        "https://127.0.0.1:8200", "b.hcl")


@pytest.mark.parametrize("document", [
    {"listener": {"tcp": {"address": "127.0.0.1:8210", "tls_disable": 1}}},
    {"listener": [{"tcp": {"address": "127.0.0.1:8210", "tls_disable": "1"}}]},
    {"listener": {"tcp": [{"address": "127.0.0.1:8210", "tls_disable": True}]}},
])
def test_addr_from_json(document):
    assert addr_from_configs([("v.json", json.dumps(document))]) == ("http://127.0.0.1:8210", "v.json")


def test_no_listener_is_none_and_a_broken_file_names_config():
    assert addr_from_configs([("v.hcl", 'storage "file" {\n path = "/x"\n}\n')]) is None
    with pytest.raises(StatusError, match="config: v.hcl"):
        addr_from_configs([("v.hcl", 'listener "tcp" {\n address = \n')])


# --- the answer, read as data ------------------------------------------------------------------


def test_parse_answer():
    assert parse_answer(0, '{"status": 200, "body": "{}"}\n') == Answer(200, "{}")
    assert parse_answer(0, '{"error": "ConnectionRefusedError: [Errno 111] Connection refused"}\n').error.startswith(
        "ConnectionRefusedError")


@pytest.mark.parametrize("returned, stdout, stderr, words", [
    (127, "", "exec: python3: not found", "python3 was not found"),
    (1, "", "Traceback ...\nValueError: boom", "exited with 1: ValueError: boom"),
    (0, "$(reboot)\n", "", "printed no JSON"),
    (0, '{"status": 200, "body": "{}"}\n{"status": 200, "body": "{}"}\n', "", "exited with 0"),
    (0, '["status", 200]\n', "", "not an object"),
    (0, '{"status": "200", "body": "{}"}\n', "", "unexpected shape"),
    (0, '{"status": true, "body": "{}"}\n', "", "unexpected shape"),
])
def test_parse_answer_refuses_anything_else(returned, stdout, stderr, words):
    answer = parse_answer(returned, stdout, stderr)
    assert answer.status is None and words in answer.error, answer


@pytest.mark.parametrize("status, body, state, sealed, standby", [
    (200, ACTIVE, "active", False, False),
    (200, SEALED, "sealed", True, True),
    (503, SEALED, "sealed", True, True),
    (200, UNINITIALIZED, "uninitialized", True, True),
    (429, STANDBY, "standby", False, True),
    (200, dict(ACTIVE, performance_standby=True, standby=True), "performance_standby", False, True),
    (200, dict(ACTIVE, replication_dr_mode="secondary", standby=True), "dr_secondary", False, True),
    # A body without the flags: the status code Vault gives without query parameters decides.
    (503, {}, "sealed", True, False),
    (501, {}, "uninitialized", True, False),
    (429, {}, "standby", False, True),
])
def test_judge_answer(status, body, state, sealed, standby):
    judged = judge_answer(Answer(status, json.dumps(body)))
    assert (judged.answering, judged.state, judged.sealed, judged.standby) == (True, state, sealed, standby)
    assert judged.initialized is (state != "uninitialized")
    assert judged.version == body.get("version")


@pytest.mark.parametrize("status, body", [
    (200, "<html>not vault</html>"),
    (404, ""),
    (200, '{"errors": []}'),
    (502, '{"foo": 1}'),
    (200, "[]"),
])
def test_judge_answer_is_not_fooled_by_something_else(status, body):
    judged = judge_answer(Answer(status, body))
    assert not judged.answering and f"HTTP {status}" in judged.error


# --- waiting ----------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def script(clock, states):
    """ask() giving each of ``states`` in turn (the last again and again), each costing 0.1 s."""
    states = list(states)
    asked = []

    def ask(seconds):
        asked.append(seconds)
        clock.now += 0.1
        return states.pop(0) if len(states) > 1 else states[0]

    return ask, asked


DOWN = VaultState(False, error="ConnectionRefusedError: [Errno 111] Connection refused")
UP_SEALED = judge_answer(Answer(200, json.dumps(SEALED)))
UP_ACTIVE = judge_answer(Answer(200, json.dumps(ACTIVE)))
UP_UNINIT = judge_answer(Answer(200, json.dumps(UNINITIALIZED)))


def test_wait_until_it_answers():
    clock = Clock()
    ask, _asked = script(clock, [DOWN, DOWN, UP_ACTIVE])
    waited = wait_for(ask, 10, 0, clock, clock.sleep)
    assert waited.state.state == "active" and waited.tries == 3 and not waited.timed_out
    assert waited.waited == pytest.approx(2.3)


def test_no_answer_in_time_is_a_timeout():
    clock = Clock()
    ask, asked = script(clock, [DOWN])
    waited = wait_for(ask, 3, 60, clock, clock.sleep)
    assert waited.timed_out and not waited.unseal_timed_out and not waited.state.answering
    assert 3 <= clock.now - 100 <= 3 + 0.1 and waited.tries == 4
    assert max(asked) <= 5 and min(asked) >= 0.5


def test_sealed_is_returned_at_once_without_an_unseal_timeout():
    clock = Clock()
    ask, _asked = script(clock, [DOWN, UP_SEALED, UP_ACTIVE])
    waited = wait_for(ask, 10, 0, clock, clock.sleep)
    assert waited.state.state == "sealed" and not waited.unseal_timed_out and waited.tries == 2


def test_sealed_is_awaited_until_unsealed():
    clock = Clock()
    ask, _asked = script(clock, [UP_SEALED] * 4 + [UP_ACTIVE])
    waited = wait_for(ask, 1, 30, clock, clock.sleep)  # the answer timeout does not cut the unseal wait
    assert waited.state.state == "active" and waited.tries == 5 and not waited.unseal_timed_out


def test_sealed_past_the_unseal_timeout_is_reported_not_hidden():
    clock = Clock()
    ask, _asked = script(clock, [DOWN, UP_SEALED])
    waited = wait_for(ask, 10, 5, clock, clock.sleep)
    assert waited.state.sealed and waited.unseal_timed_out and not waited.timed_out
    assert 5 <= clock.now - 101.2 <= 5 + 0.1  # the first sealed answer came at 101.2


def test_an_uninitialised_server_is_not_awaited():
    clock = Clock()
    ask, _asked = script(clock, [UP_UNINIT])
    waited = wait_for(ask, 10, 30, clock, clock.sleep)
    assert waited.state.state == "uninitialized" and waited.tries == 1


def test_describe_names_the_place_the_state_and_what_to_do():
    clock = Clock()
    ask, _asked = script(clock, [UP_SEALED])
    text = describe("guest vault-1", "http://127.0.0.1:8200", wait_for(ask, 10, 5, clock, clock.sleep), 10, 5)
    assert text.startswith("guest vault-1: the Vault API at http://127.0.0.1:8200 answers: sealed 2.7.2")
    assert "stayed sealed for 5s" in text and "operator unseal" in text
    clock = Clock()
    ask, _asked = script(clock, [DOWN])
    text = describe("", DEFAULT_ADDR, wait_for(ask, 2, 0, clock, clock.sleep), 2, 0)
    assert text.startswith("no answer") and "no answer from the Vault API at https://127.0.0.1:8200 within 2s" in text and "Connection refused" in text


@pytest.mark.parametrize("timeout, unseal, option", [(0, 0, "timeout"), (-1, 0, "timeout"), (5, -1, "unseal_timeout")])
def test_check_timeouts(timeout, unseal, option):
    with pytest.raises(StatusError, match=f"^{option}:"):
        check_timeouts(timeout, unseal)


# --- the health program, against a real server --------------------------------------------------


def run_program(url, validate=True, ca=None, timeout=5.0):
    done = subprocess.run(program_argv(sys.executable, url, validate, ca, timeout), capture_output=True, text=True,
                          check=False)
    return parse_answer(done.returncode, done.stdout, done.stderr)


def test_the_program_reads_the_body_of_every_code():
    with HealthServer([(503, SEALED)], honour_query=False) as server:
        answer = run_program(health_url(server.addr))
    assert answer.status == 503 and judge_answer(answer).state == "sealed"
    assert server.queries == [HEALTH_QUERY]


def test_the_program_says_why_nothing_answered():
    with HealthServer([(200, ACTIVE)]) as server:
        port = server.port
    answer = run_program(f"http://127.0.0.1:{port}/v1/sys/health")
    assert answer.status is None and "Connection refused" in answer.error


def test_the_program_verifies_a_self_signed_loopback_certificate_only_with_ca_cert(tmp_path):
    with HealthServer([(200, ACTIVE)]) as server:
        certificate = server.use_tls(tmp_path)
        url = health_url(server.addr)
        refused = run_program(url)
        trusted = run_program(url, ca=certificate)
        unchecked = run_program(url, validate=False)
    assert refused.status is None and "CERTIFICATE_VERIFY_FAILED" in refused.error
    assert trusted.status == 200 and judge_answer(trusted).state == "active"
    assert unchecked.status == 200
