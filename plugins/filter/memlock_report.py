# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters that present memlock_probe's result: a table for people, the failing sentences for a task.

The documentation of each filter is in the YAML file of the same name next to this one.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import FAILING, OK, human_size

COLUMNS = ("GUEST", "STATUS", "PRIV", "LXD AT START", "LXD NOW", "PID 1", "SERVICE", "LOCKED/VMSIZE", "VERDICT")


def _instances(probe, name: str) -> list:
    """The instances of a memlock_probe result (or the list itself)."""
    instances = probe.get("instances") if isinstance(probe, dict) else probe
    if not isinstance(instances, list):
        raise AnsibleFilterError(f"{name}: expected the result of vault_mlock.lxd.memlock_probe (or its instances), "
                                 f"got {type(probe).__name__}")
    return instances


def _limit(memlock) -> str:
    return memlock.get("systemd_value", "?") if memlock else "-"


def _lxd(limit) -> str:
    return _limit(limit.get("memlock")) if limit else "-"


def _service(guest: dict) -> str:
    service = guest.get("service")
    if not service:
        return "-"
    if service.get("locks_memory") is False:
        return f"{service.get('name')}: no mlock"  # its verdict rests on swap, not on a limit
    return f"{service.get('name')}: {_limit(service.get('memlock'))}"


def _sizes(guest: dict) -> str:
    processes = guest.get("processes") or []
    if not processes:
        return "-"
    first = processes[0]
    more = f" +{len(processes) - 1}" if len(processes) > 1 else ""
    return f"{human_size(first.get('vmlck_bytes') or 0)}/{human_size(first.get('vmsize_bytes') or 0)}{more}"


def _row(guest: dict) -> tuple:
    pid1 = guest.get("pid1") or {}
    privileged = guest.get("privileged")
    return (
        guest.get("name", "?"),
        guest.get("status") or "-",
        "-" if privileged is None else ("yes" if privileged else "no"),
        _lxd(guest.get("lxd_at_start")) + (" (restart)" if guest.get("restart_required") else ""),
        _lxd(guest.get("lxd_now")),
        _limit(pid1.get("memlock")),
        _service(guest),
        _sizes(guest),
        guest.get("verdict", "?"),
    )


def memlock_table(probe) -> list:
    """memlock_probe's result as lines: the daemon, one row per guest, then the sentences worth reading."""
    instances = _instances(probe, "memlock_table")
    lines = []
    if isinstance(probe, dict) and probe.get("daemon") is not None:
        daemon = probe["daemon"]
        memlock = daemon.get("memlock")
        name = daemon.get("server_name") or probe.get("endpoint") or "?"
        if memlock:
            kib = memlock.get("soft_ulimit_kib")
            lines.append(f"LXD daemon {name} hands new guests ulimit -l {'unlimited' if kib is None else kib} "
                         f"({memlock.get('systemd_value')})")
        else:
            lines.append(f"LXD daemon {name} hands new guests an unknown memlock limit")
    rows = [COLUMNS] + [_row(guest) for guest in instances]
    widths = [max(len(str(row[column])) for row in rows) for column in range(len(COLUMNS))]
    for row in rows:
        lines.append("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    for guest in instances:
        if guest.get("verdict") != OK:
            lines.append("  " + str(guest.get("message", "")))
        if guest.get("restart_required"):
            lines.append(f"  guest {guest.get('name')} needs a restart: {guest.get('restart_reason')}")
    return lines


def memlock_failures(probe, verdicts=None) -> list:
    """The sentences of the guests whose verdict says Vault's memory is not safe from swap: it cannot lock its
    memory (now or once it grows), or it does not lock it and swap can take it."""
    failing = FAILING if verdicts is None else tuple(verdicts)
    return [str(guest.get("message", "")) for guest in _instances(probe, "memlock_failures")
            if guest.get("verdict") in failing]


class FilterModule:
    def filters(self):
        return {"memlock_table": memlock_table, "memlock_failures": memlock_failures}
