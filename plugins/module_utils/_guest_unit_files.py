# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Whether a guest has a file for any of Vault's units, read from the LXD host in the guest's root.

A guest with no Vault process and no such file needs no command inside it: its systemd knows these units
as not-found. systemd finds a unit by a directory entry of its name, or of its template's, in one of its
unit paths (a file, or a link: an alias, a linked unit file, a mask to /dev/null); a NAME.d directory, or
an entry in another unit's .wants/, .requires/ or .upholds/ directory, names it too. Entries are listed,
never followed: what a link of the guest means is for the guest's systemd to say, so any entry of those
names sends the question to it. The directories on the way (/lib -> usr/lib) are resolved inside the
guest's root (_safe_root), never out of it.

What no file shows: a unit systemd still holds after its file was removed without a daemon-reload.
"""

from __future__ import annotations

import errno
import os
from typing import FrozenSet, List, Optional, Sequence

from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import UnitFacts, UnitsFacts
from ansible_collections.vault_mlock.lxd.plugins.module_utils._safe_root import listdir_in_root, open_in_root
from ansible_collections.vault_mlock.lxd.plugins.module_utils._systemd import UNIT_PATHS, UNIT_TYPES

# What sd_booted() looks at: systemd runs the machine.
SYSTEMD_RUNTIME_DIR = "/run/systemd/system"
DEPENDENCY_DIR_SUFFIXES = (".wants", ".requires", ".upholds")


def entry_names(unit: str) -> Optional[FrozenSet[str]]:
    """The directory entries that name ``unit`` (itself, its template, their .d); None for a name systemctl
    would complete first (no unit type suffix)."""
    stem, _dot, unit_type = unit.rpartition(".")
    if not stem or unit_type not in UNIT_TYPES:
        return None
    prefix, at, _instance = stem.partition("@")
    names = {unit, f"{prefix}@.{unit_type}"} if at else {unit}
    return frozenset(names | {f"{name}.d" for name in names})


def _entries(root: str, path: str) -> List[str]:
    try:
        return listdir_in_root(root, path)
    except OSError:  # no such directory (most unit paths), or not one
        return []


def names_a_unit(root: str, names: FrozenSet[str]) -> bool:
    """Whether an entry of ``names`` is in a unit path of the machine at ``root``, or in a dependency directory there."""
    for unit_path in UNIT_PATHS:
        entries = _entries(root, unit_path)
        if names.intersection(entries):
            return True
        for entry in entries:
            if entry.endswith(DEPENDENCY_DIR_SUFFIXES) and names.intersection(_entries(root, f"{unit_path}/{entry}")):
                return True
    return False


def runs_systemd(root: str) -> Optional[bool]:
    """Whether systemd runs the machine at ``root``; None when its root cannot be read."""
    try:
        os.close(open_in_root(root, SYSTEMD_RUNTIME_DIR, os.O_PATH | os.O_DIRECTORY))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        return None
    return True


def not_found(unit: str) -> UnitFacts:
    """A unit as systemd tells one it has no file for; what only systemd could say stays unknown."""
    return UnitFacts(name=unit, load_state="not-found", active_state="inactive", sub_state="dead", result="success",
                     restarts=None, exit_status=None, asked=None)


def units_from_files(root: str, units: Sequence[str]) -> Optional[UnitsFacts]:
    """What the guest at ``root`` (its /proc/INIT/root) would tell of ``units`` when its files name none of them;
    None when its systemd must be asked: a file names one, or the files cannot be read."""
    if not os.path.isdir(root):  # not root on the host, or the guest stopped meanwhile
        return None
    systemd = runs_systemd(root)
    if systemd is None:
        return None
    if not systemd:
        return UnitsFacts(systemd=False, default_memlock=None, units=[])
    wanted = [entry_names(unit) for unit in units]
    if any(names is None for names in wanted):
        return None
    if names_a_unit(root, frozenset().union(*wanted)):
        return None
    return UnitsFacts(systemd=True, default_memlock=None, units=[not_found(unit) for unit in units])
