# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this doc fragment is **PRIVATE** to the collection. It can change at any time.

from __future__ import annotations


class ModuleDocFragment:
    # The engine option of the modules that reach containers: plugins/module_utils/_engines, ENGINE_ARGUMENT_SPEC.
    DOCUMENTATION = r"""
options:
  engine:
    description:
      - The container engine. V(auto) finds the one this host runs (an LXD or Incus daemon's socket).
      - V(lxd) and V(incus) are reached through their REST API with the connection options.
      - V(lxc) (plain LXC) and V(pve) (Proxmox VE) have instances only, no profiles and no swap switch.
    type: str
    choices: [auto, lxd, incus, lxc, pve]
    default: auto
"""
