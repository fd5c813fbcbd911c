# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vault_mlock.lxd.plugins.filter.vault import FilterModule, mlock_decision

VAULT = "/usr/local/bin/vault"


@pytest.mark.parametrize(
    "binary, link_target, disable_mlock, storage, enabled, openbao, reason",
    [
        (VAULT, "", "auto", "", True, False, "Vault with its storage locks its memory (disable_mlock = false)"),
        (VAULT, "", "auto", "file", True, False, "Vault with file storage locks its memory (disable_mlock = false)"),
        (VAULT, "", "auto", "raft", False, False, "integrated storage (raft): HashiCorp recommends"),
        (VAULT, "", "auto", "Integrated", False, False, "integrated storage (raft)"),
        ("/usr/bin/bao", "", "auto", "", False, True, "OpenBao (bao) 2 and later never lock memory"),
        ("/usr/bin/openbao", "", "auto", "", False, True, "OpenBao"),
        (VAULT, "/opt/openbao/bao-2.1", "auto", "", False, True, "OpenBao"),  # a vault link to bao
        ("/usr/bin/bao", "", "auto", "raft", False, True, "OpenBao"),  # OpenBao says it first
        (VAULT, "", "true", "", False, False, "disable_mlock is set to true"),
        (VAULT, "", True, "", False, False, "disable_mlock is set to true"),  # YAML's boolean
        ("/usr/bin/bao", "", "false", "raft", True, True, "disable_mlock is set to false"),
        (VAULT, "", False, "", True, False, "disable_mlock is set to false"),
    ],
)
def test_mlock_decision(binary, link_target, disable_mlock, storage, enabled, openbao, reason):
    decision = mlock_decision(binary, link_target, disable_mlock, storage)
    assert decision["enabled"] is enabled
    assert decision["openbao"] is openbao
    assert decision["binary"] == binary
    assert decision["reason"].startswith(reason)


def test_mlock_decision_takes_missing_link_and_storage():
    assert mlock_decision(VAULT, None, "auto", None)["enabled"] is True


def test_mlock_decision_refuses_other_settings():
    with pytest.raises(AnsibleFilterError, match="^disable_mlock: 'maybe' is not valid; expected one of auto, true"):
        mlock_decision(VAULT, "", "maybe")


def test_filter_module_offers_mlock_decision():
    assert FilterModule().filters() == {"mlock_decision": mlock_decision}
