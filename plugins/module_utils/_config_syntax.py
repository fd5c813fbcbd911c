# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""HCL (version 1) and JSON as a Vault or OpenBao server reads its configuration, with offsets.

The server reads a file whose first non-blank character is '{' as JSON, anything else as HCL,
whatever its name. Values mean what Go's strconv.ParseBool makes of them (also 0/1 numbers and
strings such as "true"). Offsets let a caller edit one setting and keep every other byte.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

HCL = "hcl"
JSON = "json"

_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class ConfigError(ValueError):
    """A configuration that cannot be read or edited safely. The message names the file."""


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


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def hcl_error(path: str, text: str, offset: int, message: str) -> ConfigError:
    return ConfigError(f"{path}:{line_of(text, offset)}: {message}; the file was left as it is")


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
    raise hcl_error(path, text, start, "a string is not terminated")


_HEREDOC_RE = re.compile(r"<<(-?)([A-Za-z_][A-Za-z0-9_-]*)[ \t]*\r?\n")


def _scan_heredoc(text: str, start: int, path: str) -> int:
    match = _HEREDOC_RE.match(text, start)
    if not match:
        raise hcl_error(path, text, start, "a heredoc (<<) has no anchor")
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
    raise hcl_error(path, text, start, f"the heredoc {anchor} is not terminated")


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
                raise hcl_error(path, text, index, "a /* comment is not closed")
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
            raise hcl_error(path, text, index, f"unexpected character {char!r}")
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
    raise hcl_error(path, text, len(text), "a { or [ is not closed")


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
            raise hcl_error(path, text, key.start, f"expected a key, found {key.text!r}")
        index += 1
        labels: List[str] = []
        while index < len(tokens) and tokens[index].kind in ("ident", "string"):
            labels.append(_unquote(tokens[index]))
            index += 1
        if index >= len(tokens):
            raise hcl_error(path, text, key.start, f"{_unquote(key)} has no value")
        value: Optional[Token] = None
        if tokens[index].kind == "=" and not labels:
            index += 1
            if index >= len(tokens):
                raise hcl_error(path, text, key.start, f"{_unquote(key)} has no value")
            token = tokens[index]
            if token.kind in ("{", "["):
                index = _skip_balanced(tokens, index, text, path)
                end = tokens[index - 1].end
            elif token.kind in ("string", "number", "bool", "ident", "heredoc"):
                value = token
                index += 1
                end = token.end
            else:
                raise hcl_error(path, text, token.start, f"{_unquote(key)} has no value")
        else:
            if tokens[index].kind == "=":
                index += 1
            if index >= len(tokens) or tokens[index].kind != "{":
                raise hcl_error(path, text, key.start, f"expected '=' or a block after {_unquote(key)}")
            index = _skip_balanced(tokens, index, text, path)
            end = tokens[index - 1].end
        statements.append(Statement(_unquote(key), tuple(labels), key.start, end, value))
    return statements


def hcl_value_bool(token: Token) -> Optional[bool]:
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


def json_value_bool(value) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return go_bool("string", value)
    return None
