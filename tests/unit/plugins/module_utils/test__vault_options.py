# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_options import (
    VAULT_ARGSPEC,
    OptionError,
    VaultOptions,
    vault_options,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import Required

DEFAULTS = {key: spec.get("default") for key, spec in VAULT_ARGSPEC.items()}


def test_defaults():
    assert vault_options(DEFAULTS) == VaultOptions(("vault", "bao"), ("vault.service", "openbao.service"), None)


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"required": "2G"}, {"required": Required(2 << 30)}),
        ({"required": "infinity"}, {"required": Required(None)}),
        ({"units": ["vault", "vault.service", "bao@a"]}, {"units": ("vault.service", "bao@a.service")}),
        ({"units": []}, {"units": ()}),
        ({"process": ["", "vault"]}, {"process_names": ("vault",)}),
    ],
)
def test_values(changes, expected):
    options = vault_options(dict(DEFAULTS, **changes))
    for key, value in expected.items():
        assert getattr(options, key) == value


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"process": []}, "process: give at least one process name"),
        ({"process": [""]}, "process: give at least one process name"),
        ({"required": "lots"}, "required: 'lots' is not a size"),
        ({"required": "-1"}, "required: '-1' is not a size"),
        ({"units": ["vault.socket"]}, "units: 'vault.socket' is a .socket unit"),
        ({"units": [""]}, "units: the name is empty"),
    ],
)
def test_bad_values_name_the_option(changes, message):
    with pytest.raises(OptionError) as error:
        vault_options(dict(DEFAULTS, **changes))
    assert str(error.value).startswith(message)


def test_the_doc_fragment_documents_the_argspec():
    import yaml

    from ansible_collections.vault_mlock.lxd.plugins.doc_fragments._vault_options import ModuleDocFragment

    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert set(documented) == set(VAULT_ARGSPEC)
    for name, spec in VAULT_ARGSPEC.items():
        assert documented[name]["type"] == spec["type"]
        assert documented[name].get("default") == spec.get("default")
        assert documented[name].get("elements") == spec.get("elements")
