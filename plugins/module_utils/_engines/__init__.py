# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The container engines the collection reaches, one implementation each, behind one factory.

Every engine object has the same duck-typed interface: ``name``, ``kinds``, ``settings_keys``,
``read(kind, name, key)``, ``write(kind, name, key, value)``, ``render(key, text)`` and
``restart(name, timeout)``. The keys are neutral (MEMLOCK, SWAP); each engine maps them to its own
setting. LXD and Incus are reached over their REST API (_api); plain LXC and Proxmox VE through
their configuration files (_liblxc).
"""

from __future__ import annotations

from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_api import CONNECTION_ARGUMENT_SPEC

AUTO, LXD, INCUS, LXC, PVE = "auto", "lxd", "incus", "lxc", "pve"
ENGINES = (AUTO, LXD, INCUS, LXC, PVE)
API_ENGINES = (LXD, INCUS)
LIBLXC_ENGINES = (LXC, PVE)
# The options every module that reaches containers takes: the engine and liblxc's container directories (doc
# fragment vault_mlock.lxd._engine) and the API engines' connection (doc fragment vault_mlock.lxd._lxd_connection).
ENGINE_ARGUMENT_SPEC = dict(
    CONNECTION_ARGUMENT_SPEC,
    engine=dict(type="str", default=AUTO, choices=list(ENGINES)),
    lxcpath=dict(type="list", elements="path", default=[]),
)

# What a setting belongs to, and the neutral keys of the settings.
INSTANCE, PROFILE = "instance", "profile"
MEMLOCK, SWAP = "memlock", "swap"


class EngineError(Exception):
    """An engine could not be reached or refused; the message is the whole sentence shown to the user."""


def open_engine(params: dict):
    """The engine ``params['engine']`` names (``auto``: the one this host runs), ready to read and write.

    ``params`` are a module's parameters: ``engine`` and the connection options of that engine.
    """
    # Imported here: each engine's module imports this one for the names above.
    from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._detect import detect_engine

    engine = params.get("engine") or AUTO
    if engine not in ENGINES:
        raise EngineError(f"engine: {engine!r} is not an engine; expected one of {', '.join(ENGINES)}")
    if engine == AUTO:
        engine = detect_engine(endpoint=params.get("endpoint"))
    if engine in API_ENGINES:
        from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._api import open_api

        return open_api(engine, params)
    from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._liblxc import open_liblxc

    return open_liblxc(engine, params)
