# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""A systemd drop-in that sets LimitMEMLOCK= for one service, and the limit in force.

systemd reads a service's unit file, then every ``*.conf`` drop-in of the unit's ``.d``
directories in all unit paths, sorted by file name; for one file name only the copy in the
highest-priority directory counts, and a setting in a later-sorting file wins. Everything
here takes a ``root`` directory so that it reads and writes a tree other than ``/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._atomic import write_atomic
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    MemlockLimit,
    SizeError,
    format_limit,
    format_size,
    format_ulimit,
    parse_limit,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._systemd import (
    ADMIN_UNIT_PATH,
    LXD_DAEMON_UNITS,
    UNIT_PATHS,
    UNIT_TYPES,
    SystemdError,
    find_unit_file,
    join_root,
)

MODULE_NAME = "vault_mlock.lxd.memlock_dropin"
DEFAULT_DROPIN_NAME = "00-memlock.conf"
SETTING = "LimitMEMLOCK"
SECTION = "Service"
DROPIN_MODE = 0o644
DIRECTORY_MODE = 0o755
NAME_FORM = "a file name ending in '.conf' with no '/', not starting with '.', such as '00-memlock.conf'"


class DropinError(SystemdError):
    """A drop-in name or state that cannot work. The message names the option."""


@dataclass(frozen=True)
class LimitSetting:
    """One ``LimitMEMLOCK=`` line; ``limit`` is None when systemd would ignore the value."""

    path: str
    value: str
    limit: Optional[MemlockLimit]


@dataclass(frozen=True)
class EffectiveLimit:
    """The LimitMEMLOCK= systemd applies, and which file decides it.

    ``limit`` is None when no file sets it: then systemd's DefaultLimitMEMLOCK= applies.
    """

    limit: Optional[MemlockLimit]
    source: Optional[str]
    settings: Tuple[LimitSetting, ...]


@dataclass
class DropinPlan:
    """What the drop-in is, what it should become, and the limit in force afterwards."""

    unit: str
    path: str  # on the target, e.g. /etc/systemd/system/lxd.service.d/00-memlock.conf
    state: str
    limit: Optional[MemlockLimit]
    before: Optional[bytes]
    after: Optional[bytes]
    effective: EffectiveLimit
    masked_by: Optional[str]  # a higher-priority drop-in of the same name hides ours
    overridden_by: Optional[str]  # the file that decides the limit instead of ours
    unit_file: Optional[str] = None
    unit_masked: bool = False
    warnings: List[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.before != self.after


def validate_dropin_name(name: str, option: str = "name") -> str:
    """A drop-in file name that stays inside the unit's drop-in directory."""
    if not isinstance(name, str) or not name:
        raise DropinError(f"{option}: the name is empty; expected {NAME_FORM}")
    if "/" in name or "\0" in name:
        raise DropinError(f"{option}: {name!r} must not contain '/'; expected {NAME_FORM}")
    if name.startswith("."):
        # also '.' and '..'; and systemd skips hidden files
        raise DropinError(f"{option}: {name!r} starts with '.'; expected {NAME_FORM}")
    if not name.endswith(".conf") or name == ".conf":
        raise DropinError(
            f"{option}: {name!r} does not end in '.conf', so systemd would ignore it; expected {NAME_FORM}"
        )
    if name != name.strip():
        raise DropinError(f"{option}: {name!r} has leading or trailing white space; expected {NAME_FORM}")
    return name


def dropin_path(unit: str, name: str = DEFAULT_DROPIN_NAME) -> str:
    """Where the administrator's drop-in for ``unit`` lives (on the target, without root)."""
    return f"{ADMIN_UNIT_PATH}/{unit}.d/{name}"


# Vault's service needs CAP_IPC_LOCK to lock memory as a non-root user. systemd merges these
# settings across the unit and its drop-ins, so adding the capability here keeps the others.
IPC_LOCK_SETTINGS = ("AmbientCapabilities=CAP_IPC_LOCK", "CapabilityBoundingSet=CAP_IPC_LOCK")


def render_dropin(unit: str, limit: MemlockLimit, ipc_lock: bool = False) -> str:
    """The drop-in's text: a header saying what the value means, then the setting(s)."""
    value = format_limit(limit)
    lines = [
        f"# Managed by {MODULE_NAME}; local changes will be overwritten.",
        f"# {SETTING} caps the memory each process of {unit} may lock in RAM (RLIMIT_MEMLOCK).",
    ]
    if limit.soft == limit.hard:
        lines.append(f"# {value} is {_bytes_phrase(limit.soft)}; systemd's K, M, G are powers of 1024.")
    else:
        lines.append(
            f"# Soft limit {format_size(limit.soft)} is {_bytes_phrase(limit.soft)}, hard limit "
            f"{format_size(limit.hard)} is {_bytes_phrase(limit.hard)}; systemd's K, M, G are powers of 1024."
        )
    who = "an LXD guest started by this daemon" if unit in LXD_DAEMON_UNITS else f"a process started by {unit}"
    prints = _ulimit_phrase(limit.soft)
    if limit.soft != limit.hard:
        prints += f" (and `ulimit -H -l` {_ulimit_phrase(limit.hard)})"
    lines.append(f"# In {who}, `ulimit -l` prints {prints}.")
    if ipc_lock:
        lines.append(f"# CAP_IPC_LOCK is added to {unit}'s ambient and bounding capability sets.")
    lines.append(f"[{SECTION}]")
    lines.append(f"{SETTING}={value}")
    if ipc_lock:
        lines.extend(IPC_LOCK_SETTINGS)
    return "\n".join(lines) + "\n"


def _bytes_phrase(size: Optional[int]) -> str:
    return "no limit" if size is None else f"{size} bytes"


def _ulimit_phrase(size: Optional[int]) -> str:
    text = format_ulimit(size)
    return text if text == "unlimited" else f"{text} (KiB)"


def iter_assignments(text: str) -> Iterator[Tuple[str, str, str]]:
    """(section, key, value) for every assignment, as systemd reads unit files.

    Lines starting with '#' or ';' are comments, also inside a continuation; a line ending in
    an unescaped backslash goes on in the next one (the backslash becomes a space); lines
    outside any section and lines without '=' are ignored.
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


def systemd_limit(value: str) -> Optional[MemlockLimit]:
    """The limit systemd reads from a LimitMEMLOCK= value, or None when it would ignore the line.

    systemd spells "no limit" only 'infinity'; the 'unlimited' this collection accepts from
    users is its own convenience and systemd refuses it in a file.
    """
    for part in value.split(":"):
        word = part.strip()
        if word.isalpha() and word != "infinity":
            return None
    try:
        return parse_limit(value, SETTING)
    except SizeError:
        return None


def read_limit_settings(path: str, text: str) -> List[LimitSetting]:
    """Every LimitMEMLOCK= in the [Service] section of one file, in order."""
    return [
        LimitSetting(path, value, systemd_limit(value))
        for section, key, value in iter_assignments(text)
        if section == SECTION and key == SETTING
    ]


def _unit_prefix_names(unit: str) -> List[str]:
    """The names whose ``.d`` directories apply to ``unit``, most specific first.

    The unit itself, its template ('foo@.service' for 'foo@bar.service'), and the names
    made by cutting the prefix after each dash ('a-b-c.service' -> 'a-b-.service',
    'a-.service'), each followed by its own template and prefixes, as systemd walks them.
    """
    names = [unit]
    stem, _dot, unit_type = unit.rpartition(".")
    prefix, _at, instance = stem.partition("@")
    if instance:
        names += _unit_prefix_names(f"{prefix}@.{unit_type}")
    chopped = False
    while True:
        dash = prefix.rfind("-")
        if dash <= 0:  # no dash, or only a leading one
            break
        if dash + 1 < len(prefix) or chopped:
            built = prefix[: dash + 1]
            built_name = f"{built}@{instance}.{unit_type}" if instance else f"{built}.{unit_type}"
            names += _unit_prefix_names(built_name)
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
    names = _unit_prefix_names(unit)
    unit_type = unit.rpartition(".")[2]
    directories = [f"{unit_path}/{name}.d" for unit_path in UNIT_PATHS for name in names]
    if unit_type in UNIT_TYPES:
        directories += [f"{unit_path}/{unit_type}.d" for unit_path in UNIT_PATHS]
    return directories


def _read_text(fs_path: str) -> str:
    if os.path.islink(fs_path) and os.readlink(fs_path) == "/dev/null":
        return ""
    try:
        with open(fs_path, "rb") as handle:
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""  # systemd cannot read it either, and goes on without it


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


def effective_limit(
    unit: str,
    unit_file: Optional[str],
    dropins: Dict[str, str],
    root: str = "/",
    overrides: Optional[Dict[str, Optional[str]]] = None,
) -> EffectiveLimit:
    """The LimitMEMLOCK= in force from the unit file and the drop-ins (file name -> path).

    ``overrides`` maps a path to the text it will hold, so the result can describe the
    state after a change that has not been made (check mode).
    """
    overrides = overrides or {}
    paths = ([unit_file] if unit_file else []) + [dropins[name] for name in sorted(dropins)]
    settings: List[LimitSetting] = []
    for path in paths:
        text = overrides[path] if path in overrides else _read_text(join_root(root, path))
        settings.extend(read_limit_settings(path, text or ""))
    winner = None
    for setting in settings:
        if setting.limit is not None:
            winner = setting
    if winner is None:
        return EffectiveLimit(None, None, tuple(settings))
    return EffectiveLimit(winner.limit, winner.path, tuple(settings))


def plan_dropin(
    unit: str,
    state: str,
    limit: Optional[MemlockLimit],
    name: str = DEFAULT_DROPIN_NAME,
    root: str = "/",
    ipc_lock: bool = False,
) -> DropinPlan:
    """Decide what the drop-in must become and what limit is in force then; changes nothing."""
    if state not in ("present", "absent"):
        raise DropinError(f"state: {state!r} is not valid; expected 'present' or 'absent'")
    if state == "present" and limit is None:
        raise DropinError(
            "limit: required with state=present; expected a size such as '256M', 'infinity' or 'SOFT:HARD'"
        )
    validate_dropin_name(name)
    path = dropin_path(unit, name)
    before = _read_bytes(join_root(root, path))
    after = render_dropin(unit, limit, ipc_lock).encode("utf-8") if state == "present" and limit is not None else None

    rank = {directory: index for index, directory in enumerate(dropin_directories(unit))}
    our_rank = rank[os.path.dirname(path)]
    copies = find_dropins(unit, root)
    others = [other for other in copies.get(name, []) if other != path]
    masked_by = None
    if after is not None:
        masked_by = next((other for other in others if rank[os.path.dirname(other)] < our_rank), None)
        copies[name] = sorted(others + [path], key=lambda copy: rank[os.path.dirname(copy)])
    elif others:
        copies[name] = others
    else:
        copies.pop(name, None)
    dropins = {dropin_name: paths[0] for dropin_name, paths in copies.items()}

    found = find_unit_file(unit, root)
    unit_file = found.path if found is not None and not found.masked else None
    overrides = {path: after.decode("utf-8")} if after is not None else {}
    effective = effective_limit(unit, unit_file, dropins, root, overrides)

    overridden_by = None
    if after is not None:
        if masked_by:
            overridden_by = masked_by
        elif effective.source != path:
            overridden_by = effective.source
    plan = DropinPlan(
        unit=unit,
        path=path,
        state=state,
        limit=limit if after is not None else None,
        before=before,
        after=after,
        effective=effective,
        masked_by=masked_by,
        overridden_by=overridden_by,
        unit_file=found.path if found is not None else None,
        unit_masked=found is not None and found.masked,
    )
    plan.warnings = plan_warnings(plan)
    return plan


def _read_bytes(fs_path: str) -> Optional[bytes]:
    if not os.path.lexists(fs_path):
        return None
    if os.path.isdir(fs_path):
        raise DropinError(f"name: {fs_path} is a directory; expected {NAME_FORM} naming a file")
    if os.path.islink(fs_path) and not os.path.exists(fs_path):
        return b""  # a dangling link holds nothing; writing replaces it
    with open(fs_path, "rb") as handle:
        return handle.read()


def plan_warnings(plan: DropinPlan) -> List[str]:
    """Sentences for the operator about what keeps the drop-in from deciding the limit."""
    warnings = []
    if plan.unit_file is None:
        warnings.append(
            f"no unit file for {plan.unit} in systemd's unit paths ({ADMIN_UNIT_PATH}, /usr/lib/systemd/system, "
            "...); the drop-in takes effect once the unit exists"
        )
    elif plan.unit_masked:
        warnings.append(f"{plan.unit} is masked ({plan.unit_file}); systemd will not start it")
    if plan.masked_by:
        warnings.append(
            f"{plan.masked_by} hides {plan.path}: systemd uses only the drop-in of that name in the "
            "higher-priority directory; choose another name or remove that file"
        )
    elif plan.overridden_by:
        value = format_limit(plan.effective.limit) if plan.effective.limit else "?"
        warnings.append(
            f"{plan.overridden_by} sets {SETTING}={value} and is read after {plan.path}, "
            f"so it decides {plan.unit}'s limit; give the drop-in a later-sorting name or remove that setting"
        )
    for setting in plan.effective.settings:
        if setting.limit is None:
            warnings.append(f"{setting.path}: systemd ignores {SETTING}={setting.value} (not a valid limit)")
    return warnings


def apply_dropin(plan: DropinPlan, root: str = "/") -> None:
    """Write or remove the drop-in as planned; does nothing when nothing changes."""
    if not plan.changed:
        return
    fs_path = join_root(root, plan.path)
    if plan.after is None:
        os.unlink(fs_path)
        return
    _make_directories(root, os.path.dirname(plan.path))
    write_atomic(fs_path, plan.after, DROPIN_MODE)


def _make_directories(root: str, directory: str) -> None:
    """Create ``directory`` and missing parents under root, each 0755 whatever the umask."""
    missing = []
    current = directory
    while current not in ("", "/") and not os.path.isdir(join_root(root, current)):
        missing.append(current)
        current = os.path.dirname(current)
    for path in reversed(missing):
        fs_path = join_root(root, path)
        os.mkdir(fs_path, DIRECTORY_MODE)
        os.chmod(fs_path, DIRECTORY_MODE)
