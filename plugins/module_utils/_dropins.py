# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The drop-in memlock_dropin writes for one service: what it holds, where, what it changes.

It may hold LimitMEMLOCK=, CAP_IPC_LOCK (AmbientCapabilities=, and CapabilityBoundingSet= only
where the unit restricts its bounding set without CAP_IPC_LOCK: there systemd adds the line's
capabilities; where nothing restricts the set, such a line would REPLACE every capability) and
MemorySwapMax=0. The plan reads every file systemd reads for the unit (_unit_files), with the
drop-in as it will be, and tells what systemd makes of them (_unit_settings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional

from ansible_collections.vault_mlock.lxd.plugins.module_utils._atomic import write_atomic
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    MemlockLimit,
    format_limit,
    format_size,
    format_ulimit,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._systemd import (
    ADMIN_UNIT_PATH,
    LXD_DAEMON_UNITS,
    SystemdError,
    find_unit_file,
    join_root,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_files import (
    dropin_directories,
    find_dropins,
    unit_sources,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_settings import (
    AMBIENT_KEY,
    BOUNDING_KEY,
    IPC_LOCK_BIT,
    LIMIT_KEY,
    CapabilitySet,
    EffectiveLimit,
    capability_set,
    effective_limit,
)

MODULE_NAME = "vault_mlock.lxd.memlock_dropin"
DEFAULT_DROPIN_NAME = "00-memlock.conf"
SECTION = "Service"
DROPIN_MODE = 0o644
# Where backup=true keeps what a drop-in held before the module first replaced it: systemd reads only *.conf.
BACKUP_SUFFIX = ".vault_mlock-backup"
DIRECTORY_MODE = 0o755
NAME_FORM = "a file name ending in '.conf' with no '/', not starting with '.', such as '00-memlock.conf'"
AMBIENT_LINE = f"{AMBIENT_KEY}=CAP_IPC_LOCK"
BOUNDING_LINE = f"{BOUNDING_KEY}=CAP_IPC_LOCK"
NO_SWAP_LINE = "MemorySwapMax=0"


class DropinError(SystemdError):
    """A drop-in name or state that cannot work. The message names the option."""


@dataclass(frozen=True)
class DropinContent:
    """What the drop-in sets."""

    limit: Optional[MemlockLimit] = None
    ipc_lock: bool = False
    no_swap: bool = False


@dataclass
class DropinPlan:
    """What the drop-in is, what it should become, and what systemd makes of the unit afterwards."""

    unit: str
    path: str  # on the target, e.g. /etc/systemd/system/lxd.service.d/00-memlock.conf
    state: str
    content: Optional[DropinContent]  # None with state=absent
    before: Optional[bytes]
    after: Optional[bytes]
    effective: EffectiveLimit
    bounding: CapabilitySet
    ambient: CapabilitySet
    adds_bounding: bool  # the drop-in holds CapabilityBoundingSet=CAP_IPC_LOCK
    masked_by: Optional[str]  # a higher-priority drop-in of the same name hides ours
    overridden_by: Optional[str]  # the file that decides the limit instead of ours
    unit_file: Optional[str] = None
    unit_masked: bool = False
    warnings: List[str] = field(default_factory=list)
    # With backup: what the drop-in held before the first write that replaced it (kept in backup_path, which
    # systemd ignores), and whether this plan writes it (present) or puts it back and removes it (absent).
    backup_path: Optional[str] = None
    backup: Optional[bytes] = None
    writes_backup: bool = False
    restores_backup: bool = False

    @property
    def changed(self) -> bool:
        return self.before != self.after or self.restores_backup

    def diff(self) -> dict:
        return dict(
            before="" if self.before is None else self.before.decode("utf-8", errors="replace"),
            after="" if self.after is None else self.after.decode("utf-8"),
            before_header=self.path if self.before is not None else "(absent)",
            after_header=self.path if self.after is not None else "(absent)",
        )


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


def render_dropin(unit: str, content: DropinContent, adds_bounding: bool = False) -> str:
    """The drop-in's text: a header saying what each setting means, then the settings."""
    lines = [f"# Managed by {MODULE_NAME}; local changes will be overwritten."]
    settings = []
    limit = content.limit
    if limit is not None:
        lines += _limit_comment(unit, limit)
        settings.append(f"{LIMIT_KEY}={format_limit(limit)}")
    if content.ipc_lock:
        settings.append(AMBIENT_LINE)
        if adds_bounding:
            lines.append(f"# CAP_IPC_LOCK joins {unit}'s ambient capabilities, and its bounding set, which the unit "
                         "restricts without it.")
            settings.append(BOUNDING_LINE)
        else:
            lines.append(f"# CAP_IPC_LOCK joins {unit}'s ambient capabilities; its bounding set already holds it.")
    if content.no_swap:
        lines.append(f"# {NO_SWAP_LINE} keeps the memory of {unit} out of swap (cgroup v2).")
        settings.append(NO_SWAP_LINE)
    return "\n".join(lines + [f"[{SECTION}]"] + settings) + "\n"


def _limit_comment(unit: str, limit: MemlockLimit) -> List[str]:
    value = format_limit(limit)
    lines = [f"# {LIMIT_KEY} caps the memory each process of {unit} may lock in RAM (RLIMIT_MEMLOCK)."]
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
    return lines


def _bytes_phrase(size: Optional[int]) -> str:
    return "no limit" if size is None else f"{size} bytes"


def _ulimit_phrase(size: Optional[int]) -> str:
    text = format_ulimit(size)
    return text if text == "unlimited" else f"{text} (KiB)"


def plan_dropin(
    unit: str,
    state: str,
    content: Optional[DropinContent],
    name: str = DEFAULT_DROPIN_NAME,
    root: str = "/",
    backup: bool = False,
) -> DropinPlan:
    """Decide what the drop-in must become and what systemd makes of the unit then; changes nothing.

    With ``backup``, a first write over a drop-in of that name that holds something else keeps that text in
    ``PATH`` + BACKUP_SUFFIX, and state=absent puts it back instead of removing the drop-in.
    """
    if state not in ("present", "absent"):
        raise DropinError(f"state: {state!r} is not valid; expected 'present' or 'absent'")
    if state == "present" and (content is None or (content.limit is None and not content.no_swap)):
        raise DropinError(
            "limit: missing, and required with state=present unless no_swap=true; expected a size such as '256M', "
            "'infinity' or 'SOFT:HARD'"
        )
    validate_dropin_name(name)
    path = dropin_path(unit, name)
    before = _read_bytes(join_root(root, path))
    present = state == "present"
    backup_path = path + BACKUP_SUFFIX if backup else None
    kept = _read_bytes(join_root(root, backup_path)) if backup_path else None
    # With backup, state=absent leaves a drop-in in place instead of removing it: the backup's text goes back, and
    # a drop-in that holds something else than this limit's text (put back by an earlier undo, or an
    # administrator's) stays as it is.
    keep_text = None
    if not present and backup:
        if kept is not None:
            keep_text = kept.decode("utf-8", errors="replace")
        elif before is not None and content is not None and content.limit is not None \
                and before not in {render_dropin(unit, content, bounding).encode("utf-8") for bounding in (False, True)}:
            keep_text = before.decode("utf-8", errors="replace")

    rank = {directory: index for index, directory in enumerate(dropin_directories(unit))}
    copies = find_dropins(unit, root)
    others = [other for other in copies.get(name, []) if other != path]
    masked_by = None
    if present or keep_text is not None:  # the drop-in stays
        masked_by = next((other for other in others if rank[os.path.dirname(other)] < rank[os.path.dirname(path)]),
                         None)
        copies[name] = sorted(others + [path], key=lambda copy: rank[os.path.dirname(copy)])
    elif others:
        copies[name] = others
    else:
        copies.pop(name, None)
    dropins = {dropin_name: paths[0] for dropin_name, paths in copies.items()}
    found = find_unit_file(unit, root)
    unit_file = found.path if found is not None and not found.masked else None

    def sources(text: Optional[str]):
        return unit_sources(unit_file, dropins, root, {path: text} if text is not None else None)

    adds_bounding = False
    after_text = None
    if present:
        after_text = render_dropin(unit, content)
        if content.ipc_lock:
            adds_bounding = _needs_bounding_line(sources(after_text), sources(render_dropin(unit, content, True)))
            after_text = render_dropin(unit, content, adds_bounding)
    elif keep_text is not None:
        after_text = keep_text
    final = sources(after_text)
    effective = effective_limit(final)
    plan = DropinPlan(
        unit=unit,
        path=path,
        state=state,
        content=content if present else None,
        before=before,
        after=after_text.encode("utf-8") if after_text is not None else None,
        effective=effective,
        bounding=capability_set(final, BOUNDING_KEY),
        ambient=capability_set(final, AMBIENT_KEY),
        adds_bounding=adds_bounding,
        masked_by=masked_by,
        overridden_by=masked_by or (effective.source if present and content.limit is not None
                                    and effective.source != path else None),
        unit_file=found.path if found is not None else None,
        unit_masked=found is not None and found.masked,
        backup_path=backup_path,
        backup=kept,
        writes_backup=bool(backup_path) and present and kept is None and before is not None
        and before != (after_text or "").encode("utf-8"),
        restores_backup=not present and kept is not None,
    )
    plan.warnings = plan_warnings(plan)
    return plan


def _needs_bounding_line(without, with_line) -> bool:
    """Whether CapabilityBoundingSet=CAP_IPC_LOCK belongs in the drop-in.

    Only when the unit's bounding set lacks CAP_IPC_LOCK without it, and the line adds
    CAP_IPC_LOCK while taking nothing away (a later file may reset or remove it again).
    """
    before = capability_set(without, BOUNDING_KEY).mask
    if before & IPC_LOCK_BIT:
        return False
    after = capability_set(with_line, BOUNDING_KEY).mask
    return bool(after & IPC_LOCK_BIT) and after & before == before


def _read_bytes(fs_path: str) -> Optional[bytes]:
    if not os.path.lexists(fs_path):
        return None
    if os.path.isdir(fs_path):
        raise DropinError(f"name: {fs_path} is a directory; expected {NAME_FORM} naming a file")
    if os.path.islink(fs_path) and not os.path.exists(fs_path):
        return b""  # a dangling link holds nothing; writing replaces it
    with open(fs_path, "rb") as handle:
        return handle.read()


def override_sentence(plan: DropinPlan) -> str:
    """Which file decides the limit instead of the drop-in, and the ways out; '' when none does."""
    if plan.masked_by:
        return (f"{plan.masked_by} hides {plan.path}: systemd uses only the drop-in of that name in the "
                "higher-priority directory; choose another name or remove that file")
    if not plan.overridden_by:
        return ""
    value = format_limit(plan.effective.limit) if plan.effective.limit else "?"
    return (f"{plan.overridden_by} sets {LIMIT_KEY}={value} and is read after {plan.path}, so it decides "
            f"{plan.unit}'s limit; give the drop-in a name that sorts after {os.path.basename(plan.overridden_by)} "
            "(option name; lxd_host_dropin_name in the role vault_mlock.lxd.lxd_host), or remove or edit that file")


def overridden_failure(plan: DropinPlan) -> str:
    """With fail_when_overridden: why nothing is written, or '' when the drop-in decides the limit."""
    sentence = override_sentence(plan)
    return f"nothing was written: {sentence}" if sentence and plan.state == "present" else ""


def plan_warnings(plan: DropinPlan) -> List[str]:
    """Sentences for the operator about what keeps the drop-in from doing its job."""
    warnings = []
    if plan.unit_file is None:
        warnings.append(
            f"no unit file for {plan.unit} in systemd's unit paths ({ADMIN_UNIT_PATH}, /usr/lib/systemd/system, "
            "...); the drop-in takes effect once the unit exists"
        )
    elif plan.unit_masked:
        warnings.append(f"{plan.unit} is masked ({plan.unit_file}); systemd will not start it")
    if plan.overridden_by:
        warnings.append(override_sentence(plan))
    if plan.content is not None and plan.content.ipc_lock and not plan.masked_by:
        for key, capabilities in ((BOUNDING_KEY, plan.bounding), (AMBIENT_KEY, plan.ambient)):
            if not capabilities.has(IPC_LOCK_BIT):
                culprit = capabilities.sources[-1] if capabilities.sources else "?"
                warnings.append(
                    f"{culprit} sets {key}= after {plan.path} and leaves CAP_IPC_LOCK out of {plan.unit}'s "
                    f"{'bounding set' if key == BOUNDING_KEY else 'ambient capabilities'}; add CAP_IPC_LOCK there"
                )
    for setting in plan.effective.settings:
        if setting.limit is None:
            warnings.append(f"{setting.path}: systemd ignores {LIMIT_KEY}={setting.value} ({setting.problem})")
    return warnings


def apply_dropin(plan: DropinPlan, root: str = "/") -> None:
    """Write or remove the drop-in as planned; does nothing when nothing changes."""
    if not plan.changed:
        return
    fs_path = join_root(root, plan.path)
    if plan.writes_backup:
        write_atomic(join_root(root, plan.backup_path), plan.before, DROPIN_MODE)
    if plan.after is None:
        os.unlink(fs_path)
        return
    _make_directories(root, os.path.dirname(plan.path))
    write_atomic(fs_path, plan.after, DROPIN_MODE)
    if plan.restores_backup:
        os.unlink(join_root(root, plan.backup_path))


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
