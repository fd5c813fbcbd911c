# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bad role variables, run for real on the scenario's nested LXD host with ansible-playbook (no --check):
each role fails with a message that names the variable or option and the accepted form, before
it writes anything (the guest's systemd unit directories and the Vault binary's xattrs compared)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

WATCHED = ("/etc/systemd/system", "/run/systemd/system", "/opt/bad-input")
VAULT_BINARY = "/opt/bad-input/vault"  # converge.yml puts it there, and OpenBao's name beside it

# (id, role, variables, words the failure must contain)
CASES = [
    ("daemon-limit-suffix", "lxd_host", {"lxd_host_memlock_limit": "12Q"}, ["limit", "12Q", "K, M, G"]),
    ("daemon-limit-soft-above-hard", "lxd_host", {"lxd_host_memlock_limit": "8M:4M"}, ["limit", "soft"]),
    ("daemon-dropin-name", "lxd_host", {"lxd_host_dropin_name": "../evil.conf"}, ["name", ".conf"]),
    ("daemon-unit", "lxd_host", {"lxd_host_unit": "lxd.socket"}, ["unit", ".service"]),
    ("instance-limit", "lxd_host", {"lxd_host_instance_memlock": {"vault": "lots"}},
     ["lxd_host_instance_memlock", "lots"]),
    ("profile-limit", "lxd_host", {"lxd_host_profile_memlock": {"default": "-1"}}, ["lxd_host_profile_memlock"]),
    ("restart-guests-bool", "lxd_host", {"lxd_host_restart_guests": "perhaps"}, ["lxd_host_restart_guests"]),
    ("disable-mlock-choice", "vault_guest", {"vault_guest_disable_mlock": "maybe"},
     ["vault_guest_disable_mlock", "auto"]),
    ("vault-limit", "vault_guest", {"vault_guest_memlock_limit": "-1"}, ["limit", "K, M, G"]),
    ("vault-dropin-name", "vault_guest", {"vault_guest_dropin_name": "memlock"}, ["name", ".conf"]),
    ("vault-binary-missing", "vault_guest", {"vault_guest_binary": "/nonexistent/vault"}, ["/nonexistent/vault"]),
    ("vault-no-config", "vault_guest", {"vault_guest_manage_config": True},
     ["vault.service", "vault_guest_manage_config: false"]),
    ("openbao-mlock-on", "vault_guest",
     {"vault_guest_binary": "/opt/bad-input/bao", "vault_guest_disable_mlock": "false"}, ["disable_mlock", "OpenBao"]),
    ("verify-required", "memlock_verify", {"memlock_verify_required": "lots"}, ["required", "lots"]),
    ("verify-fail-bool", "memlock_verify", {"memlock_verify_fail": "sometimes"}, ["memlock_verify_fail"]),
]

# Run on the nested host by its python3: {path: (sha256 or None, security.capability xattr as hex or None)}.
FINGERPRINT = r"""
import hashlib, json, os, sys
seen = {}
for top in sys.argv[1:]:
    for directory, dirs, files in os.walk(top):
        for name in dirs + files:
            full = os.path.join(directory, name)
            digest = caps = None
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
                try:
                    caps = os.getxattr(full, "security.capability").hex()
                except OSError:
                    caps = None
            seen[full] = [digest, caps]
print(json.dumps(seen, sort_keys=True))
"""


def fingerprint(host):
    return json.loads(host.check_output("python3 -c %s" + " %s" * len(WATCHED), FINGERPRINT, *WATCHED))


def play(case_id, role, variables):
    variables = dict(variables)
    if role == "lxd_host":
        variables.setdefault("lxd_host_unit", "lxd.service")
    if role == "vault_guest":
        variables.setdefault("vault_guest_binary", VAULT_BINARY)
        # The host has no Vault unit nor configuration: the role decides without them.
        variables.setdefault("vault_guest_manage_config", False)
        variables.setdefault("vault_guest_service", "vault.service")

    # Each play adds its case's outcome to one fact of the host (facts outlive their play);
    # the last play writes them all here at once.
    def record(outcome):
        return {"ansible.builtin.set_fact": {
            "bad_input_outcomes": "{{ bad_input_outcomes | default({}) | combine({'%s': %s}) }}" % (case_id, outcome)}}
    return {
        "name": case_id,
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "block": [
                    {"ansible.builtin.include_role": {"name": f"vault_mlock.lxd.{role}"}, "vars": variables},
                    record("'passed'"),
                ],
                "rescue": [record("ansible_failed_result.msg")],
            },
        ],
    }


def write_outcomes(path):
    return {
        "name": "Write every case's outcome for the tests",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [{
            "ansible.builtin.copy": {"content": "{{ bad_input_outcomes | to_json }}", "dest": path, "mode": "0600"},
            "delegate_to": "localhost",
        }],
    }


@pytest.fixture(scope="module")
def outcomes(host):
    ephemeral = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
    playbook = os.path.join(ephemeral, "bad_input.yml")
    written = os.path.join(ephemeral, "bad_input_outcomes.json")
    if os.path.exists(written):
        os.remove(written)
    with open(playbook, "w", encoding="utf-8") as handle:
        handle.write(yaml.safe_dump([play(*case[:3]) for case in CASES] + [write_outcomes(written)], sort_keys=False))
    before = fingerprint(host)
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], playbook],
        capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    after = fingerprint(host)
    with open(written, encoding="utf-8") as handle:
        results = json.load(handle)
    return results, before, after


@pytest.mark.parametrize("role, variables, words", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_role_variables_fail_clearly(outcomes, role, variables, words):
    results = outcomes[0]
    case_id = next(case[0] for case in CASES if case[2] == variables)
    message = results[case_id]
    assert message != "passed"
    for word in words:
        assert word in message, (word, message)


def test_bad_role_variables_write_nothing(outcomes):
    _results, before, after = outcomes
    assert before == after
    assert before[VAULT_BINARY] == [before[VAULT_BINARY][0], None]  # the binary has no capability to begin with
