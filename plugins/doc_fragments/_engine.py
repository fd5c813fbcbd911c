# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this doc fragment is **PRIVATE** to the collection. It can change at any time.

from __future__ import annotations


class ModuleDocFragment:
    # Which container engine a module reaches: plugins/module_utils/_engines, ENGINE_ARGUMENT_SPEC.
    DOCUMENTATION = r"""
options:
  engine:
    description:
      - The container engine of the host.
      - V(auto) finds it. V(pve) (Proxmox VE) where C(/etc/pve/lxc) exists or C(pct) is installed; else V(lxc)
        (plain LXC) where C(lxc-start) is installed and an lxcpath holds a container; else V(lxd), or V(incus) where
        only Incus's socket exists.
      - V(lxc) and V(pve) have no daemon and no API. Their containers are read from their configuration files
        (C(LXCPATH/NAME/config), C(/etc/pve/lxc/VMID.conf)) and with C(lxc-info), C(lxc-attach), C(pct) and
        C(systemctl) on the host; the options that reach an LXD daemon (its endpoint, project and certificates) do not
        apply.
    type: str
    choices: [auto, lxd, incus, lxc, pve]
    default: auto
  lxcpath:
    description:
      - For O(engine=lxc), the directories that hold containers.
      - When empty, liblxc's own (C(lxc.lxcpath) of C(/etc/lxc/lxc.conf)) and C(/var/lib/lxc).
      - Proxmox VE's containers are always those of C(/etc/pve/lxc) (this node's), run from C(/var/lib/lxc).
    type: list
    elements: path
    default: []
"""
