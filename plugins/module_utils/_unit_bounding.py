# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Services that could no longer start a binary once it carries a file capability.

The kernel refuses to exec a file whose capability has the effective bit when one of the file's
permitted capabilities is missing from the process's bounding set: execve fails with EPERM (such a
binary is capability-dumb, so the kernel will not run it with less than it asks for). Measured on
the lab's kernel 6.18, as root and as an unprivileged user, with and without no_new_privs. Vault's
one binary is also `vault agent` and `vault proxy`, often run by units with a CapabilityBoundingSet=
of their own: before cap_ipc_lock=ep goes onto it, each such unit must get CAP_IPC_LOCK in its
bounding set, or it will not start again.

systemd is asked (``systemctl show`` of every service unit it has a file for or has loaded) which
programs each unit's Exec*= lines run and what its bounding set is; the programs are compared with
the binary with their links resolved.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capabilities import CapabilityError, CapabilitySet
from ansible_collections.vault_mlock.lxd.plugins.module_utils._capability_names import capability_name

# What to do about units that would no longer start the binary.
FAIL = "fail"  # stop before writing, naming them
REPORT = "report"  # name them in the result only
IGNORE = "ignore"  # do not look
UNIT_CHECKS = (FAIL, REPORT, IGNORE)

EXEC_PROPERTIES = ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop", "ExecStopPost")
LIST_COMMANDS = (
    ["systemctl", "list-unit-files", "--type=service", "--no-legend", "--plain"],
    ["systemctl", "list-units", "--type=service", "--all", "--no-legend", "--plain"],
)
SYSTEMD_RUNNING = "/run/systemd/system"
_PATH_RE = re.compile(r"\bpath=(\S+)")


@dataclass(frozen=True)
class UnitPrograms:
    """What one unit runs and the bounding set it runs it with."""

    name: str
    programs: Tuple[str, ...]
    bounding: FrozenSet[str]  # capability names, lower case


@dataclass(frozen=True)
class BlockedUnit:
    name: str
    missing: Tuple[str, ...]  # the binary's capabilities its bounding set lacks

    def __str__(self) -> str:
        return f"{self.name} (its CapabilityBoundingSet lacks {', '.join(self.missing)})"


def unit_names(*listings: str) -> List[str]:
    """The service units of `systemctl list-unit-files` and `list-units` output, templates left out."""
    names: List[str] = []
    for listing in listings:
        for line in listing.splitlines():
            fields = line.split()
            name = fields[0] if fields else ""
            if name.endswith(".service") and "@." not in name and name not in names:
                names.append(name)
    return names


def show_command(names: Sequence[str]) -> List[str]:
    properties = ("Id", "CapabilityBoundingSet") + EXEC_PROPERTIES
    return ["systemctl", "show"] + [arg for name in properties for arg in ("-p", name)] + ["--"] + list(names)


def parse_show(text: str) -> List[UnitPrograms]:
    """Units from `systemctl show` of several units: blocks separated by empty lines."""
    units = []
    for block in re.split(r"\n\s*\n", text):
        values = {}
        programs: List[str] = []
        for line in block.splitlines():
            key, sep, value = line.partition("=")
            if not sep:
                continue
            if key in EXEC_PROPERTIES:
                programs.extend(_PATH_RE.findall(value))
            else:
                values[key] = value.strip()
        if values.get("Id"):
            bounding = frozenset(name.lower() for name in values.get("CapabilityBoundingSet", "").split())
            units.append(UnitPrograms(values["Id"], tuple(programs), bounding))
    return units


def blocked_units(units: Iterable[UnitPrograms], binary: str, needed: Iterable[str],
                  resolve: Optional[Callable[[str], str]] = None) -> List[BlockedUnit]:
    """The units that run ``binary`` (links resolved, by os.path.realpath unless ``resolve``) with a bounding set
    that lacks one of ``needed``."""
    resolve = resolve or os.path.realpath
    target = resolve(binary)
    needed = tuple(sorted(needed))
    found = []
    for unit in units:
        if not any(resolve(program) == target for program in unit.programs):
            continue
        missing = tuple(name for name in needed if name not in unit.bounding)
        if missing:
            found.append(BlockedUnit(unit.name, missing))
    return found


def permitted_names(numbers: Iterable[int]) -> List[str]:
    return [capability_name(number).lower() for number in sorted(numbers)]


def find_blocked_units(run: Callable[[List[str]], Tuple[int, str, str]], binary: str,
                       needed: Iterable[str]) -> Optional[List[BlockedUnit]]:
    """The units systemd knows that could not start ``binary`` once it carries ``needed`` with the effective bit.

    ``run`` runs an argv and returns (rc, stdout, stderr). None when systemd does not run here: no unit can be seen.
    """
    if not os.path.isdir(SYSTEMD_RUNNING):
        return None
    listings = []
    for argv in LIST_COMMANDS:
        rc, out, err = run(argv)
        if rc != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {(err or out).strip()[:200]}")
        listings.append(out)
    names = unit_names(*listings)
    if not names:
        return []
    rc, out, err = run(show_command(names))
    if rc != 0:
        raise RuntimeError(f"systemctl show failed: {(err or out).strip()[:200]}")
    return blocked_units(parse_show(out), binary, needed)


def check_units(run: Callable[[List[str]], Tuple[int, str, str]], path: str, after: Optional[CapabilitySet],
                units: str = FAIL) -> Optional[List[BlockedUnit]]:
    """The units that could not start ``path`` once it carries ``after``; None when not looked for (``units``
    ignore, no effective bit, or no systemd here). With ``units`` fail, finding any raises CapabilityError, so
    that nothing is written."""
    if units not in UNIT_CHECKS:
        raise CapabilityError(f"units: {units!r} is not one of {', '.join(UNIT_CHECKS)}")
    if units == IGNORE or after is None or not after.effective:
        return None
    needed = permitted_names(after.permitted)
    try:
        blocked = find_blocked_units(run, path, needed)
    except (RuntimeError, OSError) as exc:
        raise CapabilityError(f"units: asking systemd which units run {path} failed: {exc}") from None
    if blocked and units == FAIL:
        raise CapabilityError(
            f"units: with {', '.join(needed)} in its file capability, {path} could no longer be started by "
            f"{'; '.join(str(unit) for unit in blocked)}: the kernel refuses to exec a file whose capabilities are "
            "not all in the bounding set (EPERM). Give each of them CAP_IPC_LOCK in its bounding set first "
            "(vault_mlock.lxd.memlock_dropin with ipc_lock: true does; the role vault_guest does with "
            "vault_guest_capability_units: dropin), or pass units: report to write anyway; nothing was written")
    return blocked
