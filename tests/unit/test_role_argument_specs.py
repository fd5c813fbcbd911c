# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every role's meta/argument_specs.yml documents exactly its defaults/main.yml, with the same values."""

from __future__ import annotations

import os

import pytest
import yaml

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_ROLES = os.path.join(_REPO, "roles")
ROLES = sorted(
    name for name in os.listdir(_ROLES) if os.path.isfile(os.path.join(_ROLES, name, "defaults", "main.yml"))
) if os.path.isdir(_ROLES) else []

# argument_specs type -> the Python types a default of that type may have.
PYTHON_TYPES = {
    "str": (str,),
    "bool": (bool,),
    "int": (int,),
    "float": (int, float),
    "list": (list,),
    "dict": (dict,),
    "path": (str,),
    "raw": (object,),
}


def _load(role: str, *path: str):
    with open(os.path.join(_ROLES, role, *path), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _defaults(role: str) -> dict:
    return _load(role, "defaults", "main.yml") or {}


def _options(role: str) -> dict:
    return _load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]


def test_every_role_is_checked():
    assert ROLES == ["lxc_host", "lxd_host", "memlock_verify", "vault_guest"]


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_list_exactly_the_defaults(role):
    defaults, options = _defaults(role), _options(role)
    assert sorted(set(defaults) - set(options)) == [], "defaults without an argument spec"
    assert sorted(set(options) - set(defaults)) == [], "argument specs without a default"


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_defaults_equal_the_defaults(role):
    defaults, options = _defaults(role), _options(role)
    differing = {
        name: (options[name].get("default"), value)
        for name, value in defaults.items()
        if name in options and options[name].get("default") != value
    }
    assert differing == {}


@pytest.mark.parametrize("role", ROLES)
def test_every_option_has_a_description_and_a_type_its_default_fits(role):
    defaults = _defaults(role)
    for name, spec in _options(role).items():
        assert spec.get("description"), f"{name} has no description"
        assert spec.get("type") in PYTHON_TYPES, f"{name} has no known type"
        value = defaults.get(name)
        if value is not None:
            assert isinstance(value, PYTHON_TYPES[spec["type"]]), f"{name}: {value!r} is not a {spec['type']}"
        if spec["type"] != "bool":
            assert not isinstance(value, bool), f"{name}: a bool default for a {spec['type']} option"
        if spec["type"] == "list":
            assert spec.get("elements"), f"{name}: a list without elements"
        if "choices" in spec:
            assert value in spec["choices"], f"{name}: default {value!r} is not among its choices"


@pytest.mark.parametrize("role", ROLES)
def test_public_variables_carry_the_role_prefix_and_private_ones_an_underscore(role):
    assert [name for name in _defaults(role) if not name.startswith(role + "_")] == []
    has_vars = os.path.exists(os.path.join(_ROLES, role, "vars", "main.yml"))
    private = (_load(role, "vars", "main.yml") if has_vars else None) or {}
    assert [name for name in private if not name.startswith("_" + role + "_")] == []


def _spec(defaults: dict, options: dict) -> list:
    """What the tests above compare, as one function, to prove they can fail."""
    missing = sorted(set(defaults) ^ set(options))
    differing = sorted(name for name in defaults if name in options and options[name].get("default") != defaults[name])
    return missing + differing


@pytest.mark.parametrize(
    "defaults, options, found",
    [
        ({"r_a": 1}, {"r_a": {"default": 1}}, []),
        ({"r_a": 1, "r_b": ""}, {"r_a": {"default": 1}}, ["r_b"]),
        ({"r_a": 1}, {"r_a": {"default": 1}, "r_c": {"default": True}}, ["r_c"]),
        ({"r_a": []}, {"r_a": {"default": ["x"]}}, ["r_a"]),
        ({"r_a": ""}, {"r_a": {}}, ["r_a"]),
    ],
)
def test_the_comparison_finds_drift(defaults, options, found):
    assert _spec(defaults, options) == found
