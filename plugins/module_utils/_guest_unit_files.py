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

A unit of another name whose ExecStart runs Vault's or OpenBao's binary is asked about too (the probe
judges such a unit like vault.service), so every .service file's ExecStart= lines are read as well: regular
files only (a FIFO or device a guest put there is never read), links resolved inside the guest's root.

What no file shows: a unit systemd still holds after its file was removed without a daemon-reload.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import FrozenSet, List, Optional, Sequence

from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import UnitFacts, UnitsFacts
from ansible_collections.vault_mlock.lxd.plugins.module_utils._exec_start import (
    ExecStartError,
    commands_from_unit_values,
    program,
)
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


def _regular_file_text(root: str, path: str) -> str:
    """The text of a regular file inside ``root``; '' for anything else (a mask to /dev/null, a FIFO, a directory)."""
    try:
        fd = open_in_root(root, path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return ""
        return stream.read(1 << 20).decode("utf-8", errors="replace")


def starts_a_program(root: str, programs: FrozenSet[str]) -> bool:
    """Whether a .service file in a unit path of the machine at ``root`` has an ExecStart= that runs one of
    ``programs`` (by the basename of its path, as the guest's own question matches loaded units)."""
    for unit_path in UNIT_PATHS:
        for entry in _entries(root, unit_path):
            if not entry.endswith(".service"):
                continue
            for line in _regular_file_text(root, f"{unit_path}/{entry}").splitlines():
                key, sep, value = line.strip().partition("=")
                if sep and key.strip() == "ExecStart" and _runs_one_of(value, programs, entry):
                    return True
    return False


def _runs_one_of(value: str, programs: FrozenSet[str], unit: str) -> bool:
    try:
        argv0 = program(commands_from_unit_values([value], unit))
    except ExecStartError:
        return True  # a line this reading cannot split: the guest's systemd says what it runs
    return bool(argv0) and os.path.basename(argv0) in programs


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


def units_from_files(root: str, units: Sequence[str], programs: Sequence[str] = ()) -> Optional[UnitsFacts]:
    """What the guest at ``root`` (its /proc/INIT/root) would tell of ``units`` when its files name none of them and
    no service starts one of ``programs``; None when its systemd must be asked: a file names one or starts one, or
    the files cannot be read."""
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
    if names_a_unit(root, frozenset().union(*wanted)) or starts_a_program(root, frozenset(programs)):
        return None
    return UnitsFacts(systemd=True, default_memlock=None, units=[not_found(unit) for unit in units])
