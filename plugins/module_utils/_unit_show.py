# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""What ``systemctl show`` tells about a unit as systemd has loaded it: the properties that decide
how its daemon can get a new memlock limit."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Optional, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._exec_start import parse_systemctl_show
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import RLIM_INFINITY, MemlockLimit, Size

SHOW_PROPERTIES = (
    "Id", "LoadState", "ActiveState", "MainPID", "KillMode", "Restart",
    "ExecStop", "ExecReload", "LimitMEMLOCK", "LimitMEMLOCKSoft", "NeedDaemonReload",
)


class UnitShowError(ValueError):
    """``systemctl show`` output that cannot be read; the message names the unit."""


@dataclass(frozen=True)
class UnitProperties:
    """What ``systemctl show`` tells about the daemon's unit, as systemd has loaded it."""

    name: str
    load_state: str
    active_state: str
    main_pid: Optional[int]
    kill_mode: str
    restart: str
    exec_stop: Tuple[Tuple[str, ...], ...]  # the argv of each ExecStop= command
    exec_reload: Tuple[Tuple[str, ...], ...]
    limit: Optional[MemlockLimit]  # LimitMEMLOCKSoft:LimitMEMLOCK
    need_daemon_reload: bool


def _show_size(text: str) -> Size:
    value = text.strip()
    if value == "infinity":
        return None
    size = int(value)
    return None if size >= RLIM_INFINITY else size


def parse_exec_value(value: str) -> Optional[Tuple[str, ...]]:
    """The argv of one ``systemctl show`` Exec*= value: ``{ path=... ; argv[]=... ; ... }``."""
    match = re.search(r"argv\[\]=(.*?) ; (?:ignore_errors|flags)=", value)
    if not match:
        return None
    text = match.group(1).strip()
    try:
        return tuple(shlex.split(text))
    except ValueError:
        return tuple(text.split())


def parse_show(text: str, unit: str) -> UnitProperties:
    """UnitProperties from ``systemctl show -p ... UNIT``; empty Exec lists print nothing."""
    shown = parse_systemctl_show(text)
    values = {key: found[-1] for key, found in shown.items()}
    execs = {key: [argv for argv in map(parse_exec_value, shown.get(key, ())) if argv]
             for key in ("ExecStop", "ExecReload")}
    try:
        main_pid = int(values.get("MainPID", "0") or 0)
        hard = _show_size(values["LimitMEMLOCK"]) if values.get("LimitMEMLOCK") else None
        soft = _show_size(values["LimitMEMLOCKSoft"]) if values.get("LimitMEMLOCKSoft") else None
    except ValueError as exc:
        raise UnitShowError(f"unit: cannot read 'systemctl show {unit}': {exc}") from exc
    limit = MemlockLimit(soft, hard) if values.get("LimitMEMLOCK") and values.get("LimitMEMLOCKSoft") else None
    return UnitProperties(
        name=values.get("Id") or unit,
        load_state=values.get("LoadState", ""),
        active_state=values.get("ActiveState", ""),
        main_pid=main_pid if main_pid > 0 else None,
        kill_mode=values.get("KillMode", ""),
        restart=values.get("Restart", ""),
        exec_stop=tuple(execs["ExecStop"]),
        exec_reload=tuple(execs["ExecReload"]),
        limit=limit,
        need_daemon_reload=values.get("NeedDaemonReload", "no") == "yes",
    )
