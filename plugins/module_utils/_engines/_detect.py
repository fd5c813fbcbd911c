# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Which container engine runs on this host, for ``engine: auto``.

- Proxmox VE (``pve``): /etc/pve/lxc exists, or pve-container is installed (``pct``, its unit);
- plain LXC (``lxc``): ``lxc-start`` is installed and an lxcpath the host uses holds a container;
- else LXD or Incus (``lxd``, ``incus``): Incus when its socket is there and LXD's is not.
"""

from __future__ import annotations

import os
import shutil
from typing import Callable, Optional, Sequence

from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import AUTO, INCUS, LXC, LXD, PVE
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._lxc_config import (
    LXC_CONF,
    list_containers,
    lxcpaths,
)

PVE_UNIT_FILES = ("/lib/systemd/system/pve-container@.service", "/usr/lib/systemd/system/pve-container@.service")
LXD_SOCKETS = ("/var/lib/lxd/unix.socket", "/var/snap/lxd/common/lxd/unix.socket")
INCUS_SOCKETS = ("/var/lib/incus/unix.socket",)


def detect_engine(proc_root: str = "/proc", etc_pve: str = "/etc/pve", endpoint: Optional[str] = None,
                  root: str = "/", which: Callable[[str], Optional[str]] = shutil.which,
                  lxc_conf: str = LXC_CONF, paths: Optional[Sequence[str]] = None) -> str:
    """The engine of this host (lxd, incus, lxc or pve); ``endpoint`` given means an API engine."""
    del proc_root  # the same signature for every version of the detection; /proc is not needed here

    def under(path: str) -> str:
        return os.path.join(root, path.lstrip("/"))

    if endpoint:
        return INCUS if "incus" in endpoint else LXD
    if os.path.isdir(os.path.join(etc_pve, "lxc")) or which("pct") \
            or any(os.path.exists(under(path)) for path in PVE_UNIT_FILES):
        return PVE
    if which("lxc-start") and list_containers(paths if paths is not None else lxcpaths(lxc_conf)):
        return LXC
    if any(os.path.exists(under(path)) for path in INCUS_SOCKETS) \
            and not any(os.path.exists(under(path)) for path in LXD_SOCKETS):
        return INCUS
    return LXD


def resolve_engine(params: dict) -> str:
    """The engine a module's ``engine`` option names, ``auto`` resolved for this host."""
    engine = params.get("engine") or AUTO
    return detect_engine(endpoint=params.get("endpoint")) if engine == AUTO else engine
