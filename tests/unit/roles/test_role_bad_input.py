# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bad role variables, run for real on this machine with ansible-playbook (no --check): each
role fails with a message that names the variable or option and the accepted form, before it
writes anything (systemd's unit directories and the Vault binary's xattrs compared)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from _files import make_vault

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
WATCHED = ("/etc/systemd/system", "/run/systemd/system")

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
    ("verify-required", "memlock_verify", {"memlock_verify_required": "lots"}, ["required", "lots"]),
    ("verify-fail-bool", "memlock_verify", {"memlock_verify_fail": "sometimes"}, ["memlock_verify_fail"]),
]


def fingerprint(paths):
    seen = {}
    for top in paths:
        for directory, dirs, files in os.walk(top):
            for name in dirs + files:
                full = os.path.join(directory, name)
                digest = caps = None
                if os.path.isfile(full) and not os.path.islink(full):
                    with open(full, "rb") as handle:
                        digest = hashlib.sha256(handle.read()).hexdigest()
                    try:
                        caps = os.getxattr(full, "security.capability")
                    except OSError:
                        caps = None
                seen[full] = (digest, caps)
    return seen


def play(case_id, role, variables, vault_binary, report):
    variables = dict(variables)
    if role == "lxd_host":
        variables.setdefault("lxd_host_unit", "lxd.service")
    if role == "vault_guest":
        variables.setdefault("vault_guest_binary", vault_binary)
    return {
        "name": case_id,
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "block": [
                    {"ansible.builtin.include_role": {"name": f"vault_mlock.lxd.{role}"}, "vars": variables},
                    {"ansible.builtin.set_fact": {"_outcome": "passed"}},
                ],
                "rescue": [{"ansible.builtin.set_fact": {"_outcome": "{{ ansible_failed_result.msg }}"}}],
            },
            {"ansible.builtin.copy": {"content": "{{ _outcome }}", "dest": f"{report}/{case_id}", "mode": "0600"}},
        ],
    }


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    if shutil.which("ansible-playbook") is None or not os.environ.get("ANSIBLE_COLLECTIONS_PATH"):
        pytest.skip("needs ansible-playbook and the collection on ANSIBLE_COLLECTIONS_PATH (./test.sh unit)")
    tmp = tmp_path_factory.mktemp("roles")
    vault = make_vault(tmp)
    report = tmp_path_factory.mktemp("outcomes")
    playbook = tmp / "bad_input.yml"
    playbook.write_text(yaml.safe_dump([play(*case[:3], str(vault), report) for case in CASES], sort_keys=False))
    watched = [path for path in WATCHED if os.path.isdir(path)] + [str(tmp)]
    before = fingerprint(watched)
    run = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
         str(playbook)],
        capture_output=True, text=True, cwd=REPO, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    after = fingerprint(watched)
    results = {case[0]: (report / case[0]).read_text() for case in CASES}
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
