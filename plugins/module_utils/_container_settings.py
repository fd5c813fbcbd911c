# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""What container_limits should change: the settings wanted, checked, against what is stored.

Pure planning, for any engine: wanted_settings() reads the module's four mappings, check_settings()
validates every value at once (each sentence names its option, such as ``instance_memlock[vault1]``,
and the accepted form), plan_changes() compares with what the engine read (plan_undo(), for state=absent, unsets what still holds the
values given and keeps the rest). Values compare by what
they mean, bytes for a limit and true or false for a switch, so '8388608' where '8M' is stored is no
change. apply_settings() drives an engine through the three.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ansible.module_utils.parsing.convert_bool import BOOLEANS_FALSE, BOOLEANS_TRUE

from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import INSTANCE, MEMLOCK, PROFILE, SWAP
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    ACCEPTED_FORM,
    SizeError,
    parse_limit,
)

# The module's options: (option, kind, neutral key).
OPTIONS = (
    ("instance_memlock", INSTANCE, MEMLOCK),
    ("profile_memlock", PROFILE, MEMLOCK),
    ("instance_swap", INSTANCE, SWAP),
    ("profile_swap", PROFILE, SWAP),
)
PRESENT, ABSENT = "present", "absent"
SWAP_FORM = "true (the instance may use swap), false (it may not) or null (unset the key)"
MEMLOCK_FORM = f"{ACCEPTED_FORM}, or null (unset the key)"


class SettingsError(ValueError):
    """Bad input; the message holds one sentence per bad value."""


@dataclass(frozen=True)
class Wanted:
    """One setting as asked for: ``value`` in the engine's stored form, None to unset."""

    kind: str
    name: str
    key: str
    option: str  # how the user wrote it: instance_memlock[vault1]
    value: Optional[str]


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    key: str
    setting: str  # the engine's name for the key
    before: Optional[str]
    after: Optional[str]


def wanted_settings(params: dict, render: Callable[[str, object, str], str]) -> List[Wanted]:
    """Every setting of the four mappings, each value checked and rendered; SettingsError lists every bad one."""
    wanted, problems = [], []
    for option, kind, key in OPTIONS:
        mapping = params.get(option) or {}
        if not isinstance(mapping, dict):
            problems.append(f"{option}: expected a mapping of {kind} name to value")
            continue
        for name, value in mapping.items():
            label = f"{option}[{name}]"
            if not str(name).strip():
                problems.append(f"{label}: the empty string names no {kind}")
                continue
            try:
                rendered = None if value is None or value == "" else render(key, _typed(key, value, label), label)
            except (SizeError, ValueError) as exc:
                problems.append(_with_form(str(exc), key))
                continue
            wanted.append(Wanted(kind, str(name), key, label, rendered))
    if problems:
        raise SettingsError("; ".join(problems))
    return wanted


def _typed(key: str, value, label: str):
    """A swap switch as a bool (YAML's and Ansible's spellings of true and false); a limit as given."""
    if key != SWAP or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in BOOLEANS_TRUE:
        return True
    if text in BOOLEANS_FALSE:
        return False
    raise ValueError(f"{label}: {value!r} is not a boolean")


def _with_form(message: str, key: str) -> str:
    if key == SWAP:
        return f"{message.split('; expected')[0]}; expected {SWAP_FORM}"
    return message if "expected" in message else f"{message}; expected {MEMLOCK_FORM}"


def meaning(key: str, stored: Optional[str]):
    """What a stored value means, to compare by: a MemlockLimit, a bool, None when unset; the text itself when
    it means nothing the collection knows (so that any wanted value differs from it)."""
    if stored is None or stored == "":
        return None
    if key == MEMLOCK:
        try:
            return parse_limit(stored, "stored")
        except SizeError:
            return ("unreadable", stored)
    text = stored.strip().lower()
    if text in BOOLEANS_TRUE:
        return True
    if text in BOOLEANS_FALSE:
        return False
    return ("unreadable", stored)


def plan_changes(wanted: Sequence[Wanted], stored: Dict[Tuple[str, str, str], Optional[str]],
                 setting: Callable[[str], str]) -> List[Change]:
    """The settings whose stored value means something else than the wanted one, in the order asked."""
    changes = []
    for item in wanted:
        before = stored.get((item.kind, item.name, item.key))
        if meaning(item.key, before) != meaning(item.key, item.value):
            changes.append(Change(item.kind, item.name, item.key, setting(item.key), before, item.value))
    return changes


def plan_undo(wanted: Sequence[Wanted], stored: Dict[Tuple[str, str, str], Optional[str]],
              setting: Callable[[str], str]) -> Tuple[List[Change], List[Change]]:
    """(changes, kept): unset each key that still means the wanted value; keep, unchanged, one that holds another.

    A key asked to be unset (None) has nothing to undo.
    """
    changes, kept = [], []
    for item in wanted:
        before = stored.get((item.kind, item.name, item.key))
        if item.value is None or before is None:
            continue
        change = Change(item.kind, item.name, item.key, setting(item.key), before, None)
        if meaning(item.key, before) == meaning(item.key, item.value):
            changes.append(change)
        else:
            kept.append(change)
    return changes, kept


def diff(changes: Sequence[Change]) -> dict:
    """Ansible's diff: one line per changed key, ``KIND NAME SETTING=VALUE``, absent when unset."""
    def lines(side: str) -> str:
        return "".join(f"{change.kind} {change.name} {change.setting}={getattr(change, side)}\n"
                       for change in changes if getattr(change, side) is not None)

    return {"before": lines("before"), "after": lines("after")}


def apply_settings(engine, params: dict, check_mode: bool) -> dict:
    """Check every value, read every key, write the changes (not in check mode); the module's result."""
    wanted = wanted_settings(params, engine.render)
    unsupported = sorted({item.option.split("[")[0] for item in wanted
                          if item.key not in engine.settings_keys or item.kind not in engine.kinds})
    if unsupported:
        raise SettingsError(f"{', '.join(unsupported)}: engine {engine.name} has no such setting")
    stored = {(item.kind, item.name, item.key): engine.read(item.kind, item.name, item.key) for item in wanted}
    if params.get("state") == ABSENT:
        changes, kept = plan_undo(wanted, stored, engine.setting)
    else:
        changes, kept = plan_changes(wanted, stored, engine.setting), []
    if not check_mode:
        for change in changes:
            engine.write(change.kind, change.name, change.key, change.after)
    return dict(changed=bool(changes), engine=engine.name, changes=[asdict(change) for change in changes],
                kept=[asdict(change) for change in kept], diff=diff(changes))
