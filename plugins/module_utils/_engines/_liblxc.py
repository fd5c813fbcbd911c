# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Plain LXC and Proxmox VE: not in this build yet."""

from __future__ import annotations

from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import EngineError


def open_liblxc(engine: str, params: dict):
    raise EngineError(f"engine {engine}: not available in this build")
