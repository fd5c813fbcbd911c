# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Vault's systemd units in a machine where no Vault process runs: their state, limit and last words.

Also asked where a Vault process runs that locks nothing: its unit's MemorySwapMax then counts.
Besides the units named, every loaded service whose ExecStart runs one of the process names (a bao
under a unit of another name) is asked about too: it is found by that ExecStart.

``UNITS_FUNCTION`` is a POSIX sh function that asks the machine's systemd about the units
(``systemctl show``) and prints the journal's last lines of each loaded unit's last run in this boot:
what the service itself logged from the first line of its last invocation on (PID 1's "Starting ..."),
since a process that dies at once may leave lines journald could not tag with the invocation. It runs
inside a guest (through the LXD API, with the /proc script or alone) or on the machine itself
(memlock_facts). ``parse_units()`` turns what it printed into ``UnitsFacts``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._service_limits import service_limit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    MemlockLimit,
    MemlockReport,
    SizeError,
    parse_size,
)

DEFAULT_UNITS = ("vault.service", "openbao.service")
JOURNAL_LINES = 40

# What a process prints when locking its memory failed: Vault's and its stand-in's message, and
# that of any program naming the call (memcached: "mlockall() failed: Cannot allocate memory").
MLOCK_FAILURE_MARKERS = ("Failed to lock memory", "mlockall")

UNIT_PROPERTIES = ("LoadState", "ActiveState", "SubState", "Result", "NRestarts", "InvocationID",
                   "LimitMEMLOCK", "LimitMEMLOCKSoft", "ExecMainCode", "ExecMainStatus", "MemorySwapMax", "ExecStart")

# Sections start with "@@KIND NAME" lines; journal lines are prefixed with "| " so that no line a
# service logged can pass for a section header.
UNITS_FUNCTION = r"""
units_report() {
  if ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; then
    echo "@@systemd absent"; return 0
  fi
  echo "@@systemd manager"
  systemctl show -p DefaultLimitMEMLOCK -p DefaultLimitMEMLOCKSoft 2>&1
  # Loaded services whose ExecStart runs one of the names in $2, whatever the unit is called.
  by_exec=$(systemctl show -p Id -p ExecStart -- '*.service' 2>/dev/null | awk -v names=" $2 " '
    /^Id=/ { id = substr($0, 4) }
    /^ExecStart=/ { p = $0; sub(/^[^=]*=[{] path=/, "", p); sub(/ .*/, "", p); sub(/.*[/]/, "", p)
                    if (p != "" && index(names, " " p " ")) hit = 1 }
    /^$/ { if (hit && id != "") print id; id = ""; hit = 0 }
    END { if (hit && id != "") print id }')
  seen=" "
  for u in $1 $by_exec; do
    case "$seen" in *" $u "*) continue ;; esac
    seen="$seen$u "
    echo "@@unit $u"
    systemctl show PROPERTIES -- "$u" 2>&1
    [ "$(systemctl show -p LoadState --value -- "$u" 2>/dev/null)" = loaded ] || continue
    i=$(systemctl show -p InvocationID --value -- "$u" 2>/dev/null)
    [ -n "$i" ] || continue
    echo "@@journal $u"
    c=$(journalctl -q -o export "INVOCATION_ID=$i" + "_SYSTEMD_INVOCATION_ID=$i" 2>/dev/null |
        sed -n 's/^__CURSOR=//p' | head -n 1)
    if [ -n "$c" ]; then
      journalctl --no-pager -q -o cat -n LINES "_SYSTEMD_UNIT=$u" --cursor "$c" 2>&1 | sed 's/^/| /'
    else
      journalctl --no-pager -q -o cat -n LINES "_SYSTEMD_INVOCATION_ID=$i" 2>&1 | sed 's/^/| /'
    fi
  done
}
""".replace("PROPERTIES", " ".join("-p " + name for name in UNIT_PROPERTIES)).replace("LINES", str(JOURNAL_LINES))

UNITS_SCRIPT = UNITS_FUNCTION + 'units_report "$1" "$2"\n'

_SECTION_RE = re.compile(r"^@@(?P<kind>[a-z0-9_]+) (?P<name>\S+)$")


def split_sections(output: str) -> Dict[Tuple[str, str], str]:
    """The "@@KIND NAME" sections of a script's output, each with its text."""
    sections: Dict[Tuple[str, str], List[str]] = {}
    current: Optional[List[str]] = None
    for line in output.splitlines():
        match = _SECTION_RE.match(line)
        if match:
            current = sections.setdefault((match.group("kind"), match.group("name")), [])
        elif current is not None:
            current.append(line)
    return {key: "\n".join(lines) + "\n" for key, lines in sections.items()}


def units_command(units: Sequence[str], process_names: Sequence[str] = ()) -> List[str]:
    """The argv that runs UNITS_SCRIPT for these units, and the units whose ExecStart runs one of ``process_names``
    (unit and process names hold no spaces)."""
    return ["sh", "-c", UNITS_SCRIPT, "sh", " ".join(units), " ".join(process_names)]


@dataclass(frozen=True)
class UnitFacts:
    """One of Vault's units as the machine's systemd tells it, and what its service gets."""

    name: str
    load_state: str  # loaded, not-found, masked, ...
    active_state: str  # active, activating, failed, inactive, ...
    sub_state: str  # running, auto-restart, failed, dead, ...
    result: str  # success, exit-code, signal, start-limit-hit, ...
    restarts: Optional[int]
    exit_status: Optional[int]
    asked: Optional[MemlockReport]  # LimitMEMLOCKSoft:LimitMEMLOCK as systemd resolved it (its default included)
    journal: List[str] = field(default_factory=list)  # last lines of its last run
    mlock_failure: str = ""  # the journal line that says locking memory failed; '' when none does
    memlock: Optional[MemlockReport] = None  # what its service gets (systemd's clamping included)
    memory_swap_max: Optional[str] = None  # MemorySwapMax as systemctl prints it ('0', 'infinity'); None: unknown
    exec_argv: Tuple[str, ...] = ()  # its (first) ExecStart's command line, as systemctl prints it (unquoted)
    # For a Vault unit: what the configuration its ExecStart names says (see _memlock_facts.units_with_configs).
    disable_mlock: Optional[bool] = None
    disable_mlock_source: str = ""

    @property
    def reason(self) -> str:
        """Why it is down, as systemd and the journal tell: 'Result=exit-code, exit status 1: "<last line>"'."""
        parts = [f"Result={self.result}"] if self.result and self.result != "success" else []
        if self.exit_status:
            parts.append(f"exit status {self.exit_status}")
        last = next((line.strip() for line in reversed(self.journal) if line.strip()), "")
        text = ", ".join(parts)
        if last:
            text += f"{': ' if text else ''}its journal's last line: \"{last}\""
        return text

    @property
    def loaded(self) -> bool:
        return self.load_state == "loaded"

    @property
    def down(self) -> bool:
        """Failed, or waiting to restart after a failure."""
        return self.active_state == "failed" or self.sub_state == "auto-restart"

    @property
    def state(self) -> str:
        """'failed (exit-code)', 'activating (auto-restart, exit-code)', 'inactive (dead)'."""
        details = [part for part in (self.sub_state if self.sub_state != self.active_state else "",
                                     self.result if self.result not in ("", "success") else "") if part]
        return f"{self.active_state} ({', '.join(details)})" if details else self.active_state


@dataclass(frozen=True)
class UnitsFacts:
    """What the machine's systemd says about Vault's units."""

    systemd: bool  # False when the machine runs no systemd (busybox, another init)
    default_memlock: Optional[MemlockReport]  # DefaultLimitMEMLOCK(Soft) of the manager
    units: List[UnitFacts]

    @property
    def loaded(self) -> List[UnitFacts]:
        return [unit for unit in self.units if unit.loaded]


def _properties(text: str) -> Dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def _size(value: Optional[str]):
    # systemctl prints bytes or 'infinity'.
    if value is None or value == "":
        raise SizeError("missing")
    return parse_size(value, "LimitMEMLOCK")


def _limit(values: Dict[str, str], hard_key: str, soft_key: str) -> Optional[MemlockReport]:
    try:
        return MemlockReport.of(MemlockLimit(_size(values.get(soft_key)), _size(values.get(hard_key))))
    except SizeError:
        return None


def _int(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def mlock_failure_line(lines: Sequence[str]) -> str:
    """The first journal line that says locking memory failed; '' when none does."""
    for line in lines:
        if any(marker in line for marker in MLOCK_FAILURE_MARKERS):
            return line.strip()
    return ""


_ARGV_RE = re.compile(r"argv\[\]=(?P<argv>.*?) ; (?:ignore_errors|flags)=")


def parse_exec_start(value: str) -> Tuple[str, ...]:
    """The first command line of systemctl's ExecStart={ path=... ; argv[]=A B C ; ignore_errors=no ; ... }.

    systemctl prints the arguments unquoted: one holding a space comes back split.
    """
    match = _ARGV_RE.search(value)
    return tuple(match.group("argv").split()) if match else ()


def parse_units(output: str, units: Sequence[str]) -> UnitsFacts:
    """What UNITS_FUNCTION printed, for ``units`` and those it found by their ExecStart (after them); a unit it
    printed nothing for counts as not found."""
    sections = split_sections(output)
    units = list(units) + [name for kind, name in sections if kind == "unit" and name not in units]
    if ("systemd", "absent") in sections:
        return UnitsFacts(False, None, [])
    if ("systemd", "manager") not in sections:
        raise ValueError("no answer from systemd: " + (output.strip()[:200] or "no output"))
    manager = _properties(sections[("systemd", "manager")])
    facts = []
    for name in units:
        values = _properties(sections.get(("unit", name), ""))
        journal = [line[2:] if line.startswith("| ") else line
                   for line in sections.get(("journal", name), "").splitlines()]
        facts.append(UnitFacts(
            name=name,
            load_state=values.get("LoadState", "not-found"),
            active_state=values.get("ActiveState", "inactive"),
            sub_state=values.get("SubState", ""),
            result=values.get("Result", ""),
            restarts=_int(values.get("NRestarts")),
            exit_status=_int(values.get("ExecMainStatus")),
            asked=_limit(values, "LimitMEMLOCK", "LimitMEMLOCKSoft"),
            journal=journal[-JOURNAL_LINES:],
            mlock_failure=mlock_failure_line(journal),
            memory_swap_max=values.get("MemorySwapMax") or None,
            exec_argv=parse_exec_start(values.get("ExecStart", "")),
        ))
    return UnitsFacts(True, _limit(manager, "DefaultLimitMEMLOCK", "DefaultLimitMEMLOCKSoft"), facts)


def with_service_limits(units: UnitsFacts, pid1: MemlockLimit, can_raise: bool) -> UnitsFacts:
    """The units with what each one's service gets: what it asks for, clamped as systemd does under this PID 1."""
    resolved = [dataclasses.replace(unit, memlock=MemlockReport.of(service_limit(unit.asked.limit, pid1, can_raise)))
                if unit.loaded and unit.asked is not None else unit
                for unit in units.units]
    return dataclasses.replace(units, units=resolved)


def asked_after_start(units: Optional[UnitsFacts]) -> Optional[MemlockLimit]:
    """What Vault's unit will ask for after the guest's next start; None when that is systemd's default,
    which systemd computes anew from what the guest inherits then."""
    if units is None:
        return None
    for unit in units.loaded:
        if unit.asked is not None and unit.asked != units.default_memlock:
            return unit.asked.limit
    return None
