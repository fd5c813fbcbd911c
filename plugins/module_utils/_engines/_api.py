# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""LXD and Incus as an engine, over their REST API (_lxd_api, standard library only).

Settings are instance and profile config keys, read with GET and written with PATCH, which
changes the keys it names and no other (an empty value removes a key). On a cluster every member
routes an instance's requests to the member it runs on, and profiles are the cluster's, so no
``?target=`` is needed. Requests carry the connection's project.
"""

from __future__ import annotations

import time
from typing import Callable, Optional
from urllib.parse import quote

from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import (
    API_ENGINES,
    INSTANCE,
    MEMLOCK,
    PROFILE,
    SWAP,
    EngineError,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_api import (
    CONNECTION_ARGUMENT_SPEC,
    LxdApi,
    connect,
    operation_id,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_transport import LxdApiError, LxdError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import format_lxd, parse_limit

# The neutral keys as LXD and Incus spell them.
SETTINGS = {MEMLOCK: "limits.kernel.memlock", SWAP: "limits.memory.swap"}
_COLLECTIONS = {INSTANCE: "instances", PROFILE: "profiles"}
# Run in the guest after its restart: done once systemd has booted ('degraded' is booted too), at once
# where there is no systemd. It prints the state, which is read as data only.
BOOT_WAIT_ARGV = ("sh", "-c", "command -v systemctl >/dev/null || exit 0; systemctl is-system-running --wait")
BOOTED_STATES = ("running", "degraded")
_PAUSE = 1.0


class ApiEngine:
    """One LXD or Incus daemon, in one project."""

    kinds = (INSTANCE, PROFILE)
    settings_keys = (MEMLOCK, SWAP)

    def __init__(self, api: LxdApi, name: str, endpoint: str,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.api = api
        self.name = name
        self.endpoint = endpoint
        self._clock = clock
        self._sleep = sleep

    @staticmethod
    def setting(key: str) -> str:
        return SETTINGS[key]

    def _where(self, kind: str, name: str) -> str:
        return f"{kind} {name!r} of project {self.api.project!r} on {self.name} ({self.endpoint})"

    def _path(self, kind: str, name: str) -> str:
        return f"/1.0/{_COLLECTIONS[kind]}/{quote(name, safe='')}"

    def _call(self, method: str, path: str, what: str, body=None, timeout: Optional[float] = None) -> dict:
        try:
            document = self.api.transport.call(method, path, {"project": self.api.project}, body, timeout=timeout)
        except LxdApiError as exc:
            if exc.status == 404:
                raise EngineError(f"{what}: does not exist ({exc})") from exc
            raise EngineError(f"{what}: {self.name} refused {method}: {exc}") from exc
        except LxdError as exc:
            raise EngineError(f"{what}: {exc}") from exc
        if document.get("type") == "async":
            self._wait_operation(operation_id(document), what, timeout or self.api.timeout)
        return document

    def _wait_operation(self, operation: str, what: str, timeout: float) -> None:
        """Wait until the operation ends; EngineError when it failed or outlasts ``timeout``."""
        seconds = max(1, int(timeout))
        try:
            state = self.api.transport.call("GET", f"/1.0/operations/{quote(operation, safe='')}/wait",
                                            {"project": self.api.project, "timeout": str(seconds)},
                                            timeout=seconds + self.api.timeout).get("metadata") or {}
        except LxdError as exc:
            raise EngineError(f"{what}: waiting for operation {operation} failed: {exc}") from exc
        code = int(state.get("status_code") or 0)
        if code != 200:
            problem = state.get("err") or f"still {(state.get('status') or 'running').lower()} after {seconds}s"
            raise EngineError(f"{what}: {problem}")

    def read(self, kind: str, name: str, key: str) -> Optional[str]:
        """The key's value as the instance's or profile's own config stores it (not expanded); None when unset."""
        document = self._call("GET", self._path(kind, name), self._where(kind, name))
        config = (document.get("metadata") or {}).get("config") or {}
        return config.get(SETTINGS[key])

    def write(self, kind: str, name: str, key: str, value: Optional[str]) -> None:
        """Set the key (``value``) or remove it (None); every other key stays as it is."""
        self._call("PATCH", self._path(kind, name), self._where(kind, name),
                   {"config": {SETTINGS[key]: "" if value is None else value}})

    @staticmethod
    def render(key: str, text, option: str = "") -> str:
        """``text`` as LXD stores it: a memlock limit in systemd's syntax as bytes or 'unlimited' (SOFT:HARD when
        they differ); a swap switch as 'true' or 'false'. Raises ValueError naming ``option``."""
        if key == MEMLOCK:
            return format_lxd(parse_limit(text, option or SETTINGS[key]))
        if isinstance(text, bool):
            return "true" if text else "false"
        raise ValueError(f"{option or SETTINGS[key]}: {text!r} is not a boolean; expected true or false")

    def restart(self, name: str, timeout: float) -> None:
        """Restart the running instance, then wait until it has booted, within ``timeout`` seconds each."""
        what = self._where(INSTANCE, name)
        state = self._call("GET", self._path(INSTANCE, name) + "/state", what).get("metadata") or {}
        if state.get("status") != "Running":
            raise EngineError(f"{what}: is {state.get('status') or 'not running'}; only a running instance is "
                              "restarted")
        self._call("PUT", self._path(INSTANCE, name) + "/state", what,
                   {"action": "restart", "timeout": int(timeout), "force": False}, timeout=timeout)
        self.wait_booted(name, timeout)

    def wait_booted(self, name: str, timeout: float) -> str:
        """Ask the guest until its systemd has booted (or a command runs where there is no systemd); its state."""
        deadline = self._clock() + timeout
        last = "no answer"
        while True:
            try:
                returned, out, err = self.api.execute(name, BOOT_WAIT_ARGV)
                said = out.strip()
                if returned == 0 or said in BOOTED_STATES:
                    return said or "running"
                last = f"systemd says {said or (err.strip() or 'nothing')!r}"
            except LxdError as exc:
                last = str(exc)
            if self._clock() >= deadline:
                raise EngineError(f"{self._where(INSTANCE, name)}: did not finish booting within {timeout:g}s "
                                  f"(last: {last})")
            self._sleep(_PAUSE)


def connection_params(params: dict) -> dict:
    """The shared connection options among a module's parameters."""
    return {option: params.get(option) for option in CONNECTION_ARGUMENT_SPEC}


def open_api(engine: str, params: dict) -> ApiEngine:
    """Connect to the daemon the connection options name; the engine's name is what the daemon says it is."""
    try:
        api, endpoint = connect(**connection_params(params))
    except LxdError as exc:
        raise EngineError(f"engine {engine}: {exc}") from exc
    server = (api.server_info().get("environment") or {}).get("server")
    if server in API_ENGINES and server != engine:
        if params.get("engine") not in (None, "auto"):
            raise EngineError(f"engine: {engine} was asked for, but the daemon at {endpoint} is {server}")
        engine = server
    return ApiEngine(api, engine, endpoint)
