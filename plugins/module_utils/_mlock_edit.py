# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The disable_mlock lines of a Vault or OpenBao configuration, removed or set, one line each.

Every other byte of a file stays as it was; a JSON file is checked to hold exactly its old
members afterwards, so that a broken file is never written.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._atomic import write_atomic
from ansible_collections.vault_mlock.lxd.plugins.module_utils._config_syntax import (
    JSON,
    ConfigError,
    Token,
    hcl_error,
    hcl_statements,
    hcl_value_bool,
    json_members,
    json_value_bool,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_config import KEY, ConfigFile

_LINE_REST_RE = re.compile(r"[ \t]*(,[ \t]*)?((#|//).*|/\*.*\*/[ \t]*)?\r?$")


def _hcl_setting_lines(config: ConfigFile) -> List[Tuple[int, int, int, int, Token]]:
    """(line start, key start, value end, line end) of each top-level disable_mlock, one line each."""
    text = config.text
    found = []
    for statement in hcl_statements(text, config.path):
        if statement.key.lower() != KEY or statement.labels:
            continue
        line_start = text.rfind("\n", 0, statement.start) + 1
        newline = text.find("\n", statement.end)
        line_end = len(text) if newline < 0 else newline
        if text[line_start:statement.start].strip() or not _LINE_REST_RE.match(text[statement.end:line_end]):
            raise hcl_error(config.path, text, statement.start,
                            f"{KEY} shares its line with other settings; give it a line of its own")
        found.append((line_start, statement.start, statement.end, line_end, statement.value))
    return found


def render_hcl(config: ConfigFile, want: Optional[bool], add: bool) -> str:
    """The HCL text with every top-level disable_mlock removed (``want`` None) or set to ``want``."""
    text = config.text
    pieces = []
    position = 0
    for line_start, key_start, value_end, line_end, token in _hcl_setting_lines(config):
        if want is None:
            cut_end = line_end + 1 if line_end < len(text) else line_end
            if cut_end == line_end and line_start > 0:
                line_start -= 1  # the last line has no newline: take the one before it
            pieces.append(text[position:line_start])
            position = cut_end
        elif hcl_value_bool(token) is not want or text[key_start:key_start + len(KEY)].lower() != KEY:
            pieces.append(text[position:key_start])
            pieces.append(f"{KEY} = {'true' if want else 'false'}")
            position = value_end
        # a setting the server already reads as wanted keeps its spelling
    pieces.append(text[position:])
    result = "".join(pieces)
    if add and want is not None:
        if result and not result.endswith("\n"):
            result += "\n"
        result += f"{KEY} = {'true' if want else 'false'}\n"
    return result


def render_json(config: ConfigFile, want: Optional[bool], add: bool) -> str:
    """The JSON text with every top-level disable_mlock removed or set; the rest kept byte for byte."""
    text = config.text
    literal = "true" if want else "false"
    # One member at a time, reading the offsets again each time.
    while True:
        _open, _close, members = json_members(text, config.path)
        index = next((i for i, member in enumerate(members) if member.key.lower() == KEY and (
            want is None or json_value_bool(member.value) is not want)), None)
        if index is None:
            break
        member = members[index]
        if want is not None:
            text = text[:member.value_start] + literal + text[member.value_end:]
        elif index + 1 < len(members):
            text = text[:member.key_start] + text[members[index + 1].key_start:]
        elif index > 0:
            text = text[:members[index - 1].value_end] + text[member.value_end:]
        else:
            text = text[:_open + 1] + text[member.value_end:]
    if add and want is not None:
        open_at, _close, members = json_members(text, config.path)
        if members:
            blank = text[open_at + 1:members[0].key_start]
            text = text[:open_at + 1] + f'{blank}"{KEY}": {literal},' + text[open_at + 1:]
        else:
            text = text[:open_at + 1] + f'"{KEY}": {literal}' + text[open_at + 1:]
    _check_json(config, text, want)
    return text


def _check_json(config: ConfigFile, new_text: str, want: Optional[bool]) -> None:
    """The new JSON must hold exactly the old members, disable_mlock aside: never write a broken file."""
    try:
        before = _json_pairs(config.text)
        after = _json_pairs(new_text)
    except ValueError as exc:
        raise ConfigError(f"{config.path}: editing {KEY} would break the JSON ({exc}); the file was left as it is")
    others_before = [pair for pair in before if pair[0].lower() != KEY]
    others_after = [pair for pair in after if pair[0].lower() != KEY]
    kept = [pair for pair in after if pair[0].lower() == KEY]
    if others_before != others_after or (want is None and kept) or (
            want is not None and any(json_value_bool(value) is not want for _key, value in kept)):
        raise ConfigError(f"{config.path}: editing {KEY} would change more than that setting; "
                          "the file was left as it is")


def _json_pairs(text: str) -> list:
    return json.loads(text, object_pairs_hook=list)


@dataclass(frozen=True)
class LineChange:
    path: str
    line: Optional[int]  # the line in the file as it was; None for a line added at the end
    before: Optional[str]
    after: Optional[str]


@dataclass
class FilePlan:
    config: ConfigFile
    after: str

    @property
    def changed(self) -> bool:
        return self.after != self.config.text

    def line_changes(self) -> List[LineChange]:
        old = self.config.text.splitlines()
        new = self.after.splitlines()
        changes = []
        matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            removed, added = old[i1:i2], new[j1:j2]
            for offset in range(max(len(removed), len(added))):
                line = i1 + offset + 1 if i1 + offset < len(old) else None
                changes.append(LineChange(self.config.real_path, line,
                                          removed[offset] if offset < len(removed) else None,
                                          added[offset] if offset < len(added) else None))
        return changes


def plan_configs(configs: Sequence[ConfigFile], want: Optional[bool], add_when_missing: bool) -> List[FilePlan]:
    """Every file with its new text: disable_mlock removed (``want`` None) or set to ``want``.

    When no file sets it and ``add_when_missing``, the first file gets the line.
    """
    anywhere = any(config.settings for config in configs)
    plans = []
    for number, config in enumerate(configs):
        add = add_when_missing and not anywhere and number == 0
        render = render_json if config.format == JSON else render_hcl
        after = render(config, want, add) if (config.settings or add) else config.text
        plans.append(FilePlan(config, after))
    return plans


def apply_plan(plans: Sequence[FilePlan], root: str = "/", backup_suffix: str = "") -> List[Dict[str, str]]:
    """Write every changed file atomically, keeping its mode and owner.

    With a backup suffix, each changed file's text before is first kept beside it, under its name with that suffix
    (same mode and owner); returns ``{path, backup}`` for each.
    """
    backups = []
    for plan in plans:
        if not plan.changed:
            continue
        full = os.path.join(root, plan.config.real_path.lstrip("/"))
        info = os.stat(full)
        if backup_suffix:
            write_atomic(full + backup_suffix, plan.config.text, info.st_mode & 0o7777, info.st_uid, info.st_gid)
            backups.append({"path": plan.config.real_path, "backup": plan.config.real_path + backup_suffix})
        write_atomic(full, plan.after, info.st_mode & 0o7777, info.st_uid, info.st_gid)
    return backups
