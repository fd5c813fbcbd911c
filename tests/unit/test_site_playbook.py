# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection playbook restarts Vault one guest at a time and stops at a Vault that stays sealed.

The Molecule scenario vault_restarts proves it on real OpenBao; these checks fail at once when the
playbook or the role loses a piece of it."""

from __future__ import annotations

import os

import yaml

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(*path):
    with open(os.path.join(_REPO, *path), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _rendered(value, **extra_vars) -> str:
    """A play keyword as Ansible gets it with these extra variables (it knows no host when it reads it)."""
    import jinja2

    return jinja2.Environment().from_string(str(value)).render(**extra_vars).strip()


def _guest_play():
    plays = [play for play in _load("playbooks", "site.yml") if _rendered(play.get("hosts")) == "vault_guests"]
    assert len(plays) == 1, "the site playbook has one play for vault_guests"
    return plays[0]


def _batch_size(play) -> str:
    return _rendered(play.get("serial", "0"))


def _host_patterns(path, **extra_vars):
    return [_rendered(play["hosts"], **extra_vars) for play in _load("playbooks", path) if "hosts" in play]


def test_the_plays_take_their_host_patterns_from_variables():
    assert _host_patterns("site.yml") == ["lxd_hosts", "lxc_hosts", "vault_guests"]
    assert _host_patterns("site.yml", vault_mlock_lxd_hosts="lxd", vault_mlock_lxc_hosts="pve",
                          vault_mlock_vault_guests="vault") == ["lxd", "pve", "vault"]
    assert _host_patterns("verify.yml") == ["lxd_hosts:lxc_hosts"]
    assert _host_patterns("verify.yml", vault_mlock_lxd_hosts="lxd", vault_mlock_lxc_hosts="pve") == ["lxd:pve"]


def test_the_site_playbook_ends_with_the_verify_playbook():
    assert _load("playbooks", "site.yml")[-1]["ansible.builtin.import_playbook"] == "vault_mlock.lxd.verify"
    assert [play["roles"] for play in _load("playbooks", "verify.yml")] == [[{"role": "vault_mlock.lxd.memlock_verify"}]]


def test_the_guest_play_takes_one_guest_at_a_time():
    play = _guest_play()
    assert "serial" in play, "the guest play has no serial: every Vault would restart at once"
    assert _batch_size(play) == "1"


def test_one_failed_guest_stops_the_next_batches():
    play = _guest_play()
    assert play.get("max_fail_percentage") == 0 or play.get("any_errors_fatal") is True


def test_the_guest_play_runs_vault_guest():
    roles = [role["role"] if isinstance(role, dict) else role for role in _guest_play().get("roles", [])]
    assert roles == ["vault_mlock.lxd.vault_guest"]


def _handlers():
    return _load("roles", "vault_guest", "handlers", "main.yml")


def test_the_restart_is_followed_by_one_wait_that_stops_at_a_sealed_vault():
    handlers = _handlers()
    names = [handler["name"] for handler in handlers]
    restart = names.index("Restart Vault")
    waits = [index for index, handler in enumerate(handlers) if "vault_mlock.lxd.vault_status" in handler]
    assert len(waits) == 1 and waits[0] > restart, "not one vault_status after the restart"
    wait = handlers[waits[0]]
    assert wait.get("listen") == "vault_mlock vault restart"
    assert wait["vault_mlock.lxd.vault_status"]["fail_when_sealed"] is True
    assert wait["vault_mlock.lxd.vault_status"]["unseal_timeout"] == "{{ vault_guest_unseal_timeout }}"
    # The decision is the module's: no role decides on the word 'sealed' in Jinja.
    assert not [handler for handler in handlers if "'sealed'" in str(handler)]


def test_the_wait_and_the_stop_are_on_by_default():
    defaults = _load("roles", "vault_guest", "defaults", "main.yml")
    assert defaults["vault_guest_wait_for_api"] is True
    assert isinstance(defaults["vault_guest_unseal_timeout"], int)


def test_the_checks_can_fail():
    """The same checks on a playbook without serial and a role without the stop."""
    assert _batch_size({}) == "0"
    assert _batch_size({"serial": "{{ vault_guests_serial | default(3) }}"}) == "3"
