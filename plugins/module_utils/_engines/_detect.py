# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Which container engine this host runs, for engine=auto.

This first version knows the API engines: an LXD or Incus daemon whose unix socket is there (or a
remote endpoint, which only an API engine has). Which of the two answers is told by the daemon
itself once connected (_api); the socket's place is the first guess.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence

from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import INCUS, LXD, EngineError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_transport import normalize_endpoint, socket_candidates


def _engine_of(socket_path: str) -> str:
    """Incus keeps its socket in a directory named incus (/var/lib/incus); every LXD flavour elsewhere."""
    return INCUS if "incus" in socket_path.split("/")[:-1] else LXD


def detect_engine(endpoint: Optional[str] = None, sockets: Optional[Sequence[str]] = None,
                  environ: Optional[Mapping[str, str]] = None) -> str:
    """LXD or INCUS: the daemon behind ``endpoint``, else behind the first API socket that exists."""
    if endpoint:
        return _engine_of(normalize_endpoint(endpoint) or "")
    candidates = socket_candidates(environ) if sockets is None else sockets
    for path in candidates:
        if os.path.exists(path):
            return _engine_of(path)
    raise EngineError(f"engine: auto found no container engine on this host (no API socket among "
                      f"{', '.join(candidates)}); install LXD or Incus, or name the engine")
