# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The options that say what Vault is and what it needs, shared by memlock_probe and memlock_facts.

``VAULT_ARGSPEC`` goes into each module's argument_spec; ``vault_options(params)`` checks the values
and returns them as one ``VaultOptions``. Their documentation is the doc fragment
``vault_mlock.lxd._vault_options``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import DEFAULT_UNITS
from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import DEFAULT_PROCESS_NAMES
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import SizeError, parse_size
from ansible_collections.vault_mlock.lxd.plugins.module_utils._systemd import SystemdError, normalize_unit_name
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import Required

VAULT_ARGSPEC = dict(
    process=dict(type="list", elements="str", default=list(DEFAULT_PROCESS_NAMES)),
    units=dict(type="list", elements="str", default=list(DEFAULT_UNITS)),
    required=dict(type="str"),
)


class OptionError(ValueError):
    """A value of process, units or required that cannot work. The message names the option."""


@dataclass(frozen=True)
class VaultOptions:
    process_names: Tuple[str, ...]
    units: Tuple[str, ...]
    required: Optional[Required]


def vault_options(params: dict) -> VaultOptions:
    """The checked values of VAULT_ARGSPEC's options; raises OptionError naming the bad one."""
    names = tuple(name for name in params.get("process") or () if name)
    if not names:
        raise OptionError("process: give at least one process name, such as vault or bao")
    units = []
    for unit in params.get("units") or ():
        try:
            name = normalize_unit_name(unit, "units")
        except SystemdError as exc:
            raise OptionError(str(exc)) from exc
        if name not in units:
            units.append(name)
    required = None
    if params.get("required") is not None:
        try:
            required = Required(parse_size(params["required"], "required"))
        except SizeError as exc:
            raise OptionError(str(exc)) from exc
    return VaultOptions(process_names=names, units=tuple(units), required=required)
