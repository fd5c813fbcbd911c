# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters that present memlock_probe's result: a table for people, the failing sentences for a task, and the
figures for a monitoring system (as data, and as a Prometheus textfile).

The documentation of each filter is in the YAML file of the same name next to this one.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import FAILING, OK, UNKNOWN, human_size

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


def _failing(verdicts=None, unknown_fails=False) -> tuple:
    """The verdicts that fail: the given ones, else FAILING; with unknown_fails, unknown too."""
    failing = FAILING if verdicts is None else tuple(verdicts)
    return failing + (UNKNOWN,) if unknown_fails and UNKNOWN not in failing else failing


def memlock_failures(probe, verdicts=None, unknown_fails=False) -> list:
    """The sentences of the guests whose verdict says Vault's memory is not safe from swap: it cannot lock its
    memory (now or once it grows), or it does not lock it and swap can take it."""
    failing = _failing(verdicts, unknown_fails)
    return [str(guest.get("message", "")) for guest in _instances(probe, "memlock_failures")
            if guest.get("verdict") in failing]


# The limits a guest's figures come from, in the order the table shows them.
LIMIT_SOURCES = ("lxd_at_start", "lxd_now", "pid1", "service")


def _soft_bytes(holder):
    """(known, bytes) of a memlock figure's soft limit; bytes None means no limit."""
    memlock = (holder or {}).get("memlock")
    if not memlock:
        return False, None
    return True, memlock.get("soft_bytes")


def memlock_metrics(probe, unknown_fails=False) -> list:
    """One mapping per guest with its verdict, whether it fails memlock_verify, and its figures in bytes."""
    default_project = probe.get("project") if isinstance(probe, dict) else None
    failing = _failing(unknown_fails=unknown_fails)
    metrics = []
    for guest in _instances(probe, "memlock_metrics"):
        limits = {}
        for source in LIMIT_SOURCES:
            known, size = _soft_bytes(guest.get(source))
            if known:
                limits[source] = size
        processes = guest.get("processes") or []
        first = processes[0] if processes else {}
        metrics.append({
            "guest": str(guest.get("name", "?")),
            "project": str(guest.get("project") or default_project or "default"),
            "status": str(guest.get("status") or ""),
            "verdict": str(guest.get("verdict", "unknown")),
            "failing": guest.get("verdict") in failing,
            "restart_required": bool(guest.get("restart_required")),
            "memlock_bytes": limits,
            "locked_bytes": first.get("vmlck_bytes"),
            "vmsize_bytes": first.get("vmsize_bytes"),
        })
    return metrics


PREFIX = "vault_mlock_lxd_guest_"
# name: help, for each family of the textfile.
FAMILIES = {
    "info": "One series per guest: its status and memlock_probe's verdict as labels; always 1.",
    "failing": "1 where the verdict fails vault_mlock.lxd.memlock_verify, else 0.",
    "restart_required": "1 where a restart of the guest would give it another memlock limit, else 0.",
    "memlock_bytes": "RLIMIT_MEMLOCK soft limit in bytes (+Inf: none), by where it applies (source).",
    "locked_bytes": "VmLck of the guest's first Vault process, in bytes.",
    "vmsize_bytes": "VmSize of the guest's first Vault process, in bytes.",
}


def _label_value(value) -> str:
    """A label value as the text exposition format escapes it."""
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(family: str, labels: dict, value) -> str:
    text = ",".join(f'{name}="{_label_value(label)}"' for name, label in labels.items())
    number = "+Inf" if value is None else str(int(value))
    return f"{PREFIX}{family}{{{text}}} {number}"


def memlock_textfile(metrics) -> str:
    """memlock_metrics' mappings as a Prometheus textfile (node_exporter's textfile collector), one family of
    gauges per figure, each guest's series under its guest and project labels."""
    if not isinstance(metrics, list) or not all(isinstance(item, dict) for item in metrics):
        raise AnsibleFilterError("memlock_textfile: expected the list vault_mlock.lxd.memlock_metrics returns, "
                                 f"got {type(metrics).__name__}")
    samples = {family: [] for family in FAMILIES}
    for item in metrics:
        guest = {"guest": item["guest"], "project": item["project"]}
        samples["info"].append(_sample("info", dict(guest, status=item["status"], verdict=item["verdict"]), 1))
        samples["failing"].append(_sample("failing", guest, item["failing"]))
        samples["restart_required"].append(_sample("restart_required", guest, item["restart_required"]))
        for source, size in item["memlock_bytes"].items():
            samples["memlock_bytes"].append(_sample("memlock_bytes", dict(guest, source=source), size))
        for family in ("locked_bytes", "vmsize_bytes"):
            if item.get(family) is not None:
                samples[family].append(_sample(family, guest, item[family]))
    lines = []
    for family, help_text in FAMILIES.items():
        lines += [f"# HELP {PREFIX}{family} {help_text}", f"# TYPE {PREFIX}{family} gauge"] + samples[family]
    return "\n".join(lines) + "\n"


class FilterModule:
    def filters(self):
        return {"memlock_table": memlock_table, "memlock_failures": memlock_failures,
                "memlock_metrics": memlock_metrics, "memlock_textfile": memlock_textfile}
