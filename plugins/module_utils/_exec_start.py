# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""The command a systemd service starts, and the -config arguments a Vault server gets there.

Two sources, both parsed here:

- ``systemctl show -p ExecStart UNIT`` prints what the running systemd loaded (drop-ins merged,
  specifiers such as %n expanded). Its ``argv[]=`` joins the arguments with spaces and does not
  quote them, so an argument holding a space cannot be told apart there.
- The unit file and its drop-ins, read as systemd reads them, for when systemd does not run or
  has not loaded the unit: quotes are honoured, the common specifiers are expanded.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_files import find_dropins, iter_assignments
from ansible_collections.vault_mlock.lxd.plugins.module_utils._systemd import find_unit_file, join_root

CONFIG_FLAGS = ("-config", "--config")
DEV_FLAGS = ("-dev", "--dev")

# systemd's ExecStart= prefixes: '-' ignore failure, '@' argv[0], ':' no variable expansion,
# '+' '!' '!!' privileges.
_PREFIX_CHARS = "-@:+!|"
_ARGV_RE = re.compile(r"argv\[\]=(?P<argv>.*?) ; (?:ignore_errors|flags)=")


class ExecStartError(ValueError):
    """The unit's command cannot tell the configuration. The message says why and what to do."""


@dataclass(frozen=True)
class Command:
    argv: Tuple[str, ...]
    exact: bool  # False when the arguments were split at spaces (systemctl show)


def parse_systemctl_show(text: str) -> Dict[str, List[str]]:
    """{property: [values]} from `systemctl show -p A -p B UNIT` (a property may repeat)."""
    properties: Dict[str, List[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            properties.setdefault(key, []).append(value)
    return properties


def commands_from_show(values: Sequence[str]) -> List[Command]:
    """The commands of ExecStart= values as `systemctl show` prints them ('{ path=... ; argv[]=... ; ... }')."""
    commands = []
    for value in values:
        for match in _ARGV_RE.finditer(value):
            argv = tuple(match.group("argv").split())
            if argv:
                commands.append(Command(argv, exact=False))
    return commands


def _strip_prefixes(value: str) -> str:
    index = 0
    while index < len(value) and value[index] in _PREFIX_CHARS:
        index += 1
    return value[index:]


def expand_specifiers(word: str, unit: str) -> str:
    """The specifiers an ExecStart= word most often holds: %n %N %p %i %I %%. Others stay as written."""
    stem = unit.rsplit(".", 1)[0]
    prefix, _at, instance = stem.partition("@")
    values = {"n": unit, "N": stem, "p": prefix, "i": instance, "I": instance, "%": "%"}
    return re.sub(r"%(.)", lambda match: values.get(match.group(1), match.group(0)), word)


def commands_from_unit_values(values: Sequence[str], unit: str) -> List[Command]:
    """The commands of the ExecStart= lines of a unit's files, in the order systemd reads them.

    An empty ExecStart= drops the commands before it, as in a drop-in that replaces the command.
    """
    commands: List[Command] = []
    for value in values:
        if not value.strip():
            commands = []
            continue
        try:
            words = shlex.split(_strip_prefixes(value.strip()), comments=False, posix=True)
        except ValueError as exc:
            raise ExecStartError(f"ExecStart={value} of {unit} cannot be split into words: {exc}") from None
        if words:
            commands.append(Command(tuple(expand_specifiers(word, unit) for word in words), exact=True))
    return commands


def _config_values(args: Sequence[str]) -> Tuple[List[str], bool]:
    """(-config values, whether -dev is given) from a server's arguments, as Go's flag package reads them."""
    values: List[str] = []
    dev = False
    index = 0
    while index < len(args):
        arg = args[index]
        name, sep, value = arg.partition("=")
        if name in CONFIG_FLAGS:
            if sep:
                values.append(value)
            elif index + 1 < len(args):
                values.append(args[index + 1])
                index += 1
        elif name in DEV_FLAGS:
            dev = True
        index += 1
    return values, dev


def server_config_flags(args: Sequence[str]) -> Tuple[List[str], bool]:
    """(-config values, whether -dev is given) of a running server's arguments (argv[1:])."""
    return _config_values(args)


def config_arguments(commands: Sequence[Command], unit: str) -> List[str]:
    """The -config values of the command that runs the server; fails clearly when there is none.

    A wrapper such as `sh -c "exec vault server -config=..."` is looked into once.
    """
    dev = False
    for command in commands:
        values, command_dev = _config_values(command.argv[1:])
        dev = dev or command_dev
        if not values:
            for arg in command.argv[1:]:
                if any(flag in arg for flag in CONFIG_FLAGS) and " " in arg:
                    try:
                        values, command_dev = _config_values(shlex.split(arg))
                    except ValueError:
                        continue
                    dev = dev or command_dev
                    if values:
                        break
        if values:
            for value in values:
                if "$" in value or "%" in value:
                    raise ExecStartError(
                        f"the -config argument {value!r} in ExecStart of {unit} uses a variable or specifier "
                        "this module does not expand; name the configuration with config=PATH")
            return values
    if not commands:
        raise ExecStartError(f"{unit} has no ExecStart=; name the configuration with config=PATH")
    if dev:
        raise ExecStartError(f"{unit} starts the server with -dev, which reads no configuration file; "
                             "nothing to keep in step")
    shown = " ".join(commands[0].argv)
    raise ExecStartError(f"ExecStart of {unit} ({shown}) gives the server no -config; name the configuration "
                         "with config=PATH")


def program(commands: Sequence[Command]) -> Optional[str]:
    """The program the first command runs (argv[0])."""
    return commands[0].argv[0] if commands and commands[0].argv else None


def unit_exec_start_values(unit: str, root: str = "/") -> Tuple[Optional[str], List[str]]:
    """(unit file, ExecStart= values) from the unit file and its drop-ins, in the order systemd reads them.

    The unit file is None when no unit path holds one; then there are no values either.
    """
    unit_file = find_unit_file(unit, root)
    if unit_file is None or unit_file.masked:
        return None, []
    paths = [unit_file.path]
    copies = find_dropins(unit, root)
    paths += [copies[name][0] for name in sorted(copies)]
    values = []
    for path in paths:
        try:
            with open(join_root(root, path), "rb") as stream:
                text = stream.read().decode("utf-8", errors="replace")
        except OSError:
            continue  # systemd skips a file it cannot read too
        values += [value for section, key, value in iter_assignments(text)
                   if section == "Service" and key == "ExecStart"]
    return unit_file.path, values
