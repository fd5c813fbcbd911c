# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The files systemd reads for a unit, in the order it applies them, and the lines in them.

systemd reads a service's unit file, then every ``*.conf`` drop-in of the unit's ``.d``
directories in all unit paths, sorted by file name; for one file name only the copy in the
highest-priority directory counts, and a setting in a later-sorting file wins. Everything
here takes a ``root`` directory so that it reads a tree other than ``/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._systemd import (
    UNIT_PATHS,
    UNIT_TYPES,
    join_root,
)

SERVICE_SECTION = "Service"


@dataclass(frozen=True)
class UnitSource:
    """One file systemd reads for a unit, and the text it holds (or will hold)."""

    path: str  # on the target, e.g. /etc/systemd/system/lxd.service.d/00-memlock.conf
    text: str


def iter_assignments(text: str) -> Iterator[Tuple[str, str, str]]:
    """(section, key, value) for every assignment, as systemd reads unit files.

    Lines starting with '#' or ';' are comments, also inside a continuation; a line ending in
    an unescaped backslash goes on in the next one (the backslash becomes a space); lines
    outside any section and lines without '=' are ignored. Keys and values are stripped.
    """
    section = ""
    pending: Optional[str] = None
    logical_lines: List[str] = []
    for raw in text.splitlines():
        if raw.lstrip().startswith(("#", ";")):
            continue
        line = raw if pending is None else pending + raw
        if _ends_in_escape(line):
            pending = line[:-1] + " "
            continue
        pending = None
        logical_lines.append(line)
    if pending is not None:
        logical_lines.append(pending)
    for line in logical_lines:
        line = line.strip()
        if line.startswith("["):
            if line.endswith("]"):
                section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if sep and section:
            yield section, key.strip(), value.strip()


def _ends_in_escape(line: str) -> bool:
    escaped = False
    for char in line:
        escaped = not escaped and char == "\\"
    return escaped


def service_values(sources: List[UnitSource], key: str) -> List[Tuple[str, str]]:
    """[(path, value)] of every ``key=`` in the [Service] sections of ``sources``, in order."""
    return [
        (source.path, value)
        for source in sources
        for section, found_key, value in iter_assignments(source.text)
        if section == SERVICE_SECTION and found_key == key
    ]


def unit_prefix_names(unit: str) -> List[str]:
    """The names whose ``.d`` directories apply to ``unit``, most specific first.

    The unit itself, its template ('foo@.service' for 'foo@bar.service'), and the names
    made by cutting the prefix after each dash ('a-b-c.service' -> 'a-b-.service',
    'a-.service'), each followed by its own template and prefixes, as systemd walks them.
    """
    names = [unit]
    stem, _dot, unit_type = unit.rpartition(".")
    prefix, _at, instance = stem.partition("@")
    if instance:
        names += unit_prefix_names(f"{prefix}@.{unit_type}")
    chopped = False
    while True:
        dash = prefix.rfind("-")
        if dash <= 0:  # no dash, or only a leading one
            break
        if dash + 1 < len(prefix) or chopped:
            built = prefix[: dash + 1]
            built_name = f"{built}@{instance}.{unit_type}" if instance else f"{built}.{unit_type}"
            names += unit_prefix_names(built_name)
            break
        prefix = prefix[:dash]  # a trailing dash is cut once before looking further
        chopped = True
    unique: List[str] = []
    for name in names:
        if name not in unique:
            unique.append(name)
    return unique


def dropin_directories(unit: str) -> List[str]:
    """Every drop-in directory systemd reads for ``unit``, in the order that decides masking.

    Per unit path (highest priority first): the unit's own ``.d``, its template's, its
    dash prefixes'; then the ``service.d`` directories that apply to every service.
    """
    names = unit_prefix_names(unit)
    unit_type = unit.rpartition(".")[2]
    directories = [f"{unit_path}/{name}.d" for unit_path in UNIT_PATHS for name in names]
    if unit_type in UNIT_TYPES:
        directories += [f"{unit_path}/{unit_type}.d" for unit_path in UNIT_PATHS]
    return directories


def find_dropins(unit: str, root: str = "/") -> Dict[str, List[str]]:
    """{file name: [paths]} of every drop-in for ``unit``, each list highest priority first.

    systemd uses the first path of each name; the others are masked by it.
    """
    copies: Dict[str, List[str]] = {}
    for directory in dropin_directories(unit):
        fs_dir = join_root(root, directory)
        try:
            entries = sorted(os.listdir(fs_dir))
        except OSError:
            continue
        for entry in entries:
            if entry.startswith(".") or not entry.endswith(".conf"):
                continue
            if os.path.isdir(os.path.join(fs_dir, entry)):
                continue
            copies.setdefault(entry, []).append(f"{directory}/{entry}")
    return copies


def read_text(fs_path: str) -> str:
    """A unit file's text; '' for a /dev/null link or a file systemd could not read either."""
    if os.path.islink(fs_path) and os.readlink(fs_path) == "/dev/null":
        return ""
    try:
        with open(fs_path, "rb") as handle:
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""  # systemd cannot read it either, and goes on without it


def unit_sources(
    unit_file: Optional[str],
    dropins: Mapping[str, str],
    root: str = "/",
    overrides: Optional[Mapping[str, str]] = None,
) -> List[UnitSource]:
    """The unit file, then the drop-ins (file name -> path) sorted by name, with their texts.

    ``overrides`` maps a path to the text it will hold, so that the sources can describe the
    state after a change that has not been made (check mode).
    """
    overrides = overrides or {}
    paths = ([unit_file] if unit_file else []) + [dropins[name] for name in sorted(dropins)]
    return [
        UnitSource(path, overrides[path] if path in overrides else read_text(join_root(root, path)))
        for path in paths
    ]
