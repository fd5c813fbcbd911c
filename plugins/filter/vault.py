# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters about a Vault server inside a guest.

The documentation of each filter is in the YAML file of the same name next to this one.
"""

from __future__ import annotations

from dataclasses import asdict

from ansible.errors import AnsibleFilterError

from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_mlock import DecisionError, decide_mlock


def mlock_decision(binary, link_target="", disable_mlock="auto", storage=""):
    """{enabled, reason, binary, openbao}: whether the Vault binary ``binary`` locks its memory, and why."""
    try:
        return asdict(decide_mlock(str(binary), str(link_target or ""), disable_mlock, str(storage or "")))
    except DecisionError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"mlock_decision": mlock_decision}
