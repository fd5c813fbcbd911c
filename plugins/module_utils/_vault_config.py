# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The disable_mlock setting in a Vault or OpenBao server configuration, read and kept in step.

The server reads HCL (version 1) or JSON: a file whose first non-blank character is '{' is
JSON, anything else HCL, whatever its name. A directory given to -config means every
``*.hcl`` and ``*.json`` file in it (no subdirectories, no editor backups), in name order;
several -config arguments are merged in their order, and a later setting wins.

Only top-level ``disable_mlock`` settings are touched, one line each; every other byte of a file
stays as it was. The server reads the key without regard to case, quoted or not, and reads its
value as Go's strconv.ParseBool does (also 0/1 numbers and strings such as "true").
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._atomic import write_atomic
from ansible_collections.vault_mlock.lxd.plugins.module_utils._safe_root import resolve_in_root

KEY = "disable_mlock"
HCL = "hcl"
JSON = "json"
STORAGE_KEYS = ("storage", "backend")  # 'backend' is the old spelling of 'storage'
DIRECTORY_SUFFIXES = (".hcl", ".json")

_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class ConfigError(ValueError):
    """A configuration that cannot be read or edited safely. The message names the file."""


# --- which files the server reads -------------------------------------------------------------


def _is_editor_backup(name: str) -> bool:
    # The server skips these in a configuration directory (vim and emacs files).
    return name.endswith("~") or name.startswith(".#") or (name.startswith("#") and name.endswith("#"))


def config_files(paths: Sequence[str], root: str = "/", option: str = "config") -> List[str]:
    """The files the server reads for ``paths`` (files or directories), in the order it merges them."""
    files: List[str] = []
    for path in paths:
        if not path.startswith("/"):
            raise ConfigError(f"{option}: {path!r} is not an absolute path; expected a configuration file or "
                              "directory such as /etc/openbao/openbao.hcl")
        full = os.path.join(root, path.lstrip("/"))
        if os.path.isdir(full):
            try:
                names = sorted(os.listdir(full))
            except OSError as exc:
                raise ConfigError(f"{option}: cannot list {path}: {exc.strerror or exc}") from None
            for name in names:
                entry = os.path.join(full, name)
                if (name.endswith(DIRECTORY_SUFFIXES) and not _is_editor_backup(name)
                        and not os.path.isdir(entry)):
                    files.append(os.path.join(path, name))
        elif os.path.lexists(full):
            if not os.path.exists(full):
                raise ConfigError(f"{option}: {path} is a symbolic link to nothing")
            if not os.path.isfile(full):
                raise ConfigError(f"{option}: {path} is neither a regular file nor a directory")
            files.append(path)
        else:
            raise ConfigError(f"{option}: {path} does not exist")
    unique: List[str] = []
    for path in files:
        if path not in unique:
            unique.append(path)
    return unique


def file_format(text: str) -> str:
    """JSON when the first non-blank character is '{', as the server's parser decides; else HCL."""
    return JSON if text.lstrip().startswith("{") else HCL


def go_bool(kind: str, text: str) -> Optional[bool]:
    """What the server makes of a value token: True, False, or None when it refuses it.

    ``kind`` is 'bool', 'number', 'string' (text without its quotes) or anything else.
    """
    if kind == "bool":
        return text == "true"
    if kind == "number":
        try:
            return float(text) != 0
        except ValueError:
            return None
    if kind == "string":
        if text == "":
            return False
        if text in _GO_TRUE:
            return True
        if text in _GO_FALSE:
            return False
    return None


# --- HCL (version 1) --------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, bool, heredoc, or the punctuation itself: { } [ ] = ,
    text: str  # as written (strings with their quotes)
    start: int
    end: int


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _hcl_error(path: str, text: str, offset: int, message: str) -> ConfigError:
    return ConfigError(f"{path}:{_line_of(text, offset)}: {message}; the file was left as it is")


def _scan_string(text: str, start: int, path: str) -> int:
    """End offset of the HCL string starting at ``start`` (a '"'). Quotes inside ${...} do not end it."""
    index = start + 1
    braces = 0
    while index < len(text):
        char = text[index]
        if char == "\n" and braces == 0:
            break
        if char == "\\":
            index += 2
            continue
        if char == '"' and braces == 0:
            return index + 1
        if braces == 0 and char == "$" and text.startswith("{", index + 1):
            braces = 1
            index += 2
            continue
        if braces and char == "{":
            braces += 1
        elif braces and char == "}":
            braces -= 1
        index += 1
    raise _hcl_error(path, text, start, "a string is not terminated")


_HEREDOC_RE = re.compile(r"<<(-?)([A-Za-z_][A-Za-z0-9_-]*)[ \t]*\r?\n")


def _scan_heredoc(text: str, start: int, path: str) -> int:
    match = _HEREDOC_RE.match(text, start)
    if not match:
        raise _hcl_error(path, text, start, "a heredoc (<<) has no anchor")
    anchor = match.group(2)
    index = match.end()
    while index <= len(text):
        newline = text.find("\n", index)
        line_end = len(text) if newline < 0 else newline
        if text[index:line_end].strip() == anchor:
            return line_end
        if newline < 0:
            break
        index = newline + 1
    raise _hcl_error(path, text, start, f"the heredoc {anchor} is not terminated")


_IDENT_START = re.compile(r"[A-Za-z_]")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")
_NUMBER_RE = re.compile(r"-?(0[xX][0-9a-fA-F]+|[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?)")


def tokenize_hcl(text: str, path: str = "") -> List[Token]:
    """The tokens of an HCL 1 text, comments and blanks left out."""
    tokens: List[Token] = []
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char in " \t\r\n\ufeff":
            index += 1
        elif char == "#" or text.startswith("//", index):
            newline = text.find("\n", index)
            index = length if newline < 0 else newline
        elif text.startswith("/*", index):
            close = text.find("*/", index + 2)
            if close < 0:
                raise _hcl_error(path, text, index, "a /* comment is not closed")
            index = close + 2
        elif char == '"':
            end = _scan_string(text, index, path)
            tokens.append(Token("string", text[index:end], index, end))
            index = end
        elif text.startswith("<<", index):
            end = _scan_heredoc(text, index, path)
            tokens.append(Token("heredoc", text[index:end], index, end))
            index = end
        elif char in "{}[]=,":
            tokens.append(Token(char, char, index, index + 1))
            index += 1
        elif char.isdigit() or (char == "-" and index + 1 < length and text[index + 1].isdigit()):
            match = _NUMBER_RE.match(text, index)
            tokens.append(Token("number", match.group(0), index, match.end()))
            index = match.end()
        elif _IDENT_START.match(char):
            match = _IDENT_RE.match(text, index)
            word = match.group(0)
            tokens.append(Token("bool" if word in ("true", "false") else "ident", word, index, match.end()))
            index = match.end()
        else:
            raise _hcl_error(path, text, index, f"unexpected character {char!r}")
    return tokens


def _unquote(token: Token) -> str:
    if token.kind == "string":
        try:
            return json.loads(token.text)
        except ValueError:
            return token.text[1:-1]
    return token.text


@dataclass(frozen=True)
class Statement:
    """One top-level item: ``key = value`` or a block ``key "label" { ... }``."""

    key: str
    labels: Tuple[str, ...]
    start: int  # offset of the key
    end: int  # offset just after the value or the block's '}'
    value: Optional[Token]  # the value token of an assignment with a single-token value


def _skip_balanced(tokens: Sequence[Token], index: int, text: str, path: str) -> int:
    """Index just after the bracket that closes tokens[index] ('{' or '[')."""
    depth = 0
    while index < len(tokens):
        kind = tokens[index].kind
        if kind in "{[" and len(kind) == 1:
            depth += 1
        elif kind in "}]" and len(kind) == 1:
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise _hcl_error(path, text, len(text), "a { or [ is not closed")


def hcl_statements(text: str, path: str = "") -> List[Statement]:
    """The top-level items of an HCL 1 text; raises ConfigError where the text is not HCL."""
    tokens = tokenize_hcl(text, path)
    statements = []
    index = 0
    while index < len(tokens):
        key = tokens[index]
        if key.kind == ",":
            index += 1
            continue
        if key.kind not in ("ident", "string"):
            raise _hcl_error(path, text, key.start, f"expected a key, found {key.text!r}")
        index += 1
        labels: List[str] = []
        while index < len(tokens) and tokens[index].kind in ("ident", "string"):
            labels.append(_unquote(tokens[index]))
            index += 1
        if index >= len(tokens):
            raise _hcl_error(path, text, key.start, f"{_unquote(key)} has no value")
        value: Optional[Token] = None
        if tokens[index].kind == "=" and not labels:
            index += 1
            if index >= len(tokens):
                raise _hcl_error(path, text, key.start, f"{_unquote(key)} has no value")
            token = tokens[index]
            if token.kind in ("{", "["):
                index = _skip_balanced(tokens, index, text, path)
                end = tokens[index - 1].end
            elif token.kind in ("string", "number", "bool", "ident", "heredoc"):
                value = token
                index += 1
                end = token.end
            else:
                raise _hcl_error(path, text, token.start, f"{_unquote(key)} has no value")
        else:
            if tokens[index].kind == "=":
                index += 1
            if index >= len(tokens) or tokens[index].kind != "{":
                raise _hcl_error(path, text, key.start, f"expected '=' or a block after {_unquote(key)}")
            index = _skip_balanced(tokens, index, text, path)
            end = tokens[index - 1].end
        statements.append(Statement(_unquote(key), tuple(labels), key.start, end, value))
    return statements


def _hcl_value_bool(token: Token) -> Optional[bool]:
    if token.kind == "string":
        return go_bool("string", _unquote(token))
    return go_bool(token.kind, token.text)


# --- JSON -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One member of the top-level JSON object, with the offsets of its key and value."""

    key: str
    key_start: int
    value_start: int
    value_end: int
    value: object


def json_members(text: str, path: str = "") -> Tuple[int, int, List[Member]]:
    """(offset of '{', offset of '}', members) of a JSON text whose top level is an object."""
    decoder = json.JSONDecoder()
    try:
        json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); the file was left as it is") from None
    index = _skip_blank(text, 0)
    if not text.startswith("{", index):
        raise ConfigError(f"{path}: the JSON top level is not an object; the file was left as it is")
    open_at = index
    index = _skip_blank(text, index + 1)
    members: List[Member] = []
    if text.startswith("}", index):
        return open_at, index, members
    while True:
        key, key_end = decoder.raw_decode(text, index)
        key_start = index
        index = _skip_blank(text, key_end)
        index = _skip_blank(text, index + 1)  # the ':'
        value, value_end = decoder.raw_decode(text, index)
        members.append(Member(key, key_start, index, value_end, value))
        index = _skip_blank(text, value_end)
        if text.startswith(",", index):
            index = _skip_blank(text, index + 1)
            continue
        return open_at, index, members


def _skip_blank(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n\ufeff":
        index += 1
    return index


def _json_value_bool(value) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return go_bool("string", value)
    return None


def _json_pairs(text: str) -> list:
    return json.loads(text, object_pairs_hook=list)


# --- one file: what it holds, and what it should hold -----------------------------------------


@dataclass(frozen=True)
class Setting:
    """One top-level disable_mlock of a file."""

    line: int
    text: str  # the value as written
    value: Optional[bool]  # as the server reads it; None when it refuses the value


@dataclass
class ConfigFile:
    path: str  # as the server names it (in a -config argument or its directory)
    real_path: str  # links resolved: the file that is read and rewritten
    format: str
    text: str
    settings: List[Setting]
    storage: Optional[str]  # the storage type of its storage (or backend) stanza, lower case

    @property
    def disable_mlock(self) -> Optional[bool]:
        """What this file sets (its last setting), None when it sets nothing or an unreadable value."""
        return self.settings[-1].value if self.settings else None


def _hcl_storage(statements: Sequence[Statement]) -> Optional[str]:
    for statement in statements:
        if statement.key.lower() in STORAGE_KEYS and statement.labels:
            return statement.labels[0].lower()
    return None


def _json_storage(members: Sequence[Member]) -> Optional[str]:
    for member in members:
        if member.key.lower() not in STORAGE_KEYS:
            continue
        value = member.value
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, dict) and value:
            return next(iter(value)).lower()
    return None


def read_config(path: str, text: str, real_path: Optional[str] = None) -> ConfigFile:
    """The disable_mlock settings and the storage type of one configuration file."""
    fmt = file_format(text)
    if fmt == JSON:
        _open, _close, members = json_members(text, path)
        settings = [Setting(_line_of(text, member.key_start), text[member.value_start:member.value_end],
                            _json_value_bool(member.value))
                    for member in members if member.key.lower() == KEY]
        storage = _json_storage(members)
    else:
        statements = hcl_statements(text, path)
        settings = []
        for statement in statements:
            if statement.key.lower() != KEY or statement.labels:
                continue
            token = statement.value
            if token is None or token.kind == "heredoc":
                raise _hcl_error(path, text, statement.start, f"{KEY} has a value that is not a single word")
            settings.append(Setting(_line_of(text, statement.start), token.text, _hcl_value_bool(token)))
        storage = _hcl_storage(statements)
    return ConfigFile(path, real_path or path, fmt, text, settings, storage)


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
            raise _hcl_error(config.path, text, statement.start,
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
        elif _hcl_value_bool(token) is not want or text[key_start:key_start + len(KEY)].lower() != KEY:
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
            want is None or _json_value_bool(member.value) is not want)), None)
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
            want is not None and any(_json_value_bool(value) is not want for _key, value in kept)):
        raise ConfigError(f"{config.path}: editing {KEY} would change more than that setting; "
                          "the file was left as it is")


# --- every file the server reads --------------------------------------------------------------


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


@dataclass
class ConfigPlan:
    files: List[FilePlan] = field(default_factory=list)
    storage: Optional[str] = None
    storage_source: Optional[str] = None  # the file whose stanza decides the storage type

    @property
    def changed(self) -> bool:
        return any(plan.changed for plan in self.files)

    def line_changes(self) -> List[LineChange]:
        return [change for plan in self.files for change in plan.line_changes()]


def storage_of(configs: Sequence[ConfigFile]) -> Tuple[Optional[str], Optional[str]]:
    """(storage type, file): the last file with a storage stanza wins, as the server merges them."""
    found = (None, None)
    for config in configs:
        if config.storage:
            found = (config.storage, config.path)
    return found


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


def apply_plan(plans: Sequence[FilePlan], root: str = "/") -> None:
    """Write every changed file atomically, keeping its mode and owner."""
    for plan in plans:
        if not plan.changed:
            continue
        full = os.path.join(root, plan.config.real_path.lstrip("/"))
        info = os.stat(full)
        write_atomic(full, plan.after, info.st_mode & 0o7777, info.st_uid, info.st_gid)


def read_configs(paths: Sequence[str], root: str = "/") -> List[ConfigFile]:
    """Read every file of ``paths`` (as config_files() lists them) under ``root``."""
    configs = []
    for path in paths:
        real = resolve_in_root(root, path)
        try:
            with open(os.path.join(root, real.lstrip("/")), "rb") as stream:
                raw = stream.read()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: is not UTF-8 text; the file was left as it is") from None
        configs.append(read_config(path, text, real))
    return configs


def summary(configs: Sequence[ConfigFile]) -> Dict[str, object]:
    """What the configuration sets now: the value the server ends with, and every setting."""
    value = None
    for config in configs:
        if config.settings:
            value = config.disable_mlock
    return {
        "value": value,
        "settings": [
            {"path": config.real_path, "line": setting.line, "text": setting.text, "value": setting.value}
            for config in configs for setting in config.settings
        ],
    }
