# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""systemd units as files on disk, and the two systemctl calls the collection needs.

Everything about unit files is read from the file system under a root directory, so it
works in check mode and on machines where systemd is not PID 1. Running systemctl goes
through a ``run(argv) -> (rc, stdout, stderr)`` callable the caller provides.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit, SizeError, systemd_limit

# The file system the module works on; a different tree only in tests.
SYSTEM_ROOT = "/"

# systemd's unit search path for the system manager, highest priority first, as
# `systemd-analyze unit-paths` prints it on Debian 12 (systemd 252, built for a split /usr):
# /lib/systemd/system comes before /usr/lib/systemd/system. Where /lib links to /usr/lib
# both name the same files, and systemd builds without split /usr read the same set.
UNIT_PATHS = (
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/run/systemd/generator.early",
    "/etc/systemd/system",
    "/etc/systemd/system.attached",
    "/run/systemd/system",
    "/run/systemd/system.attached",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/run/systemd/generator.late",
)

# Where administrators put their own unit files and drop-ins.
ADMIN_UNIT_PATH = "/etc/systemd/system"

# The LXD daemon's unit under each way of installing it.
# The units whose lxc-start runs one container, by the engine's precedence: Proxmox VE (pct start), then
# Debian's lxc@NAME.service. lxc.service (autostart) starts containers too, and is named by itself.
LIBLXC_STARTER_UNITS = ("pve-container@.service", "lxc@.service")
LXD_DAEMON_UNITS = (
    "lxd.service",  # Debian and Ubuntu packages
    "snap.lxd.daemon.service",  # the lxd snap
    "incus.service",  # Incus, LXD's fork
)

UNIT_TYPES = (
    "service", "socket", "target", "device", "mount", "automount",
    "swap", "timer", "path", "slice", "scope",
)

UNIT_NAME_MAX = 255
UNIT_NAME_FORM = (
    "a systemd service name such as 'lxd.service' or 'vault' (letters, digits and ':-_.\\', "
    "at most one '@', ending in '.service' or with no suffix, which adds '.service')"
)

_UNIT_PREFIX_RE = re.compile(r"^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?$")

Runner = Callable[[Sequence[str]], Tuple[int, str, str]]


class SystemdError(ValueError):
    """A unit name or unit lookup that cannot work. The message names the option."""


@dataclass(frozen=True)
class UnitFile:
    """Where systemd loads a unit from; masked when that file is /dev/null or empty."""

    name: str
    path: str
    masked: bool


def join_root(root: str, path: str) -> str:
    """``path`` (absolute) as seen under ``root``."""
    return os.path.join(root, path.lstrip("/"))


def normalize_unit_name(text: str, option: str = "unit") -> str:
    """Validate a service name; a name with no unit suffix gets '.service'.

    ``vault`` becomes ``vault.service``; ``snap.lxd.daemon`` becomes ``snap.lxd.daemon.service``
    because 'daemon' is no unit type. ``lxd.socket`` is refused: LimitMEMLOCK goes in [Service].
    """
    if not isinstance(text, str) or not text.strip():
        raise SystemdError(f"{option}: the name is empty; expected {UNIT_NAME_FORM}")
    name = text.strip()
    if "/" in name:
        raise SystemdError(f"{option}: {text!r} contains '/'; expected {UNIT_NAME_FORM}")
    stem, dot, suffix = name.rpartition(".")
    if dot and suffix in UNIT_TYPES:
        if suffix != "service":
            raise SystemdError(
                f"{option}: {text!r} is a .{suffix} unit; LimitMEMLOCK belongs to a service, expected {UNIT_NAME_FORM}"
            )
        prefix = stem
    else:
        prefix = name
        name = name + ".service"
    if not prefix or prefix.startswith((".", "@")) or not _UNIT_PREFIX_RE.match(prefix):
        raise SystemdError(f"{option}: {text!r} is not a valid unit name; expected {UNIT_NAME_FORM}")
    if len(name) > UNIT_NAME_MAX:
        raise SystemdError(f"{option}: {text!r} is longer than {UNIT_NAME_MAX} characters; expected {UNIT_NAME_FORM}")
    return name


def resolve_unit(text: str, root: str = "/", option: str = "unit") -> str:
    """``auto``: the LXD daemon's unit found here, else the unit that starts liblxc's containers (plain LXC,
    Proxmox VE); anything else: that service's normalized name."""
    if text == "auto":
        try:
            return detect_lxd_unit(root).name
        except SystemdError:
            starter = detect_liblxc_unit(root)
            if starter is None:
                raise
            return starter.name
    return normalize_unit_name(text, option)


def detect_liblxc_unit(root: str = "/") -> Optional[UnitFile]:
    """The template unit that starts one liblxc container where no LXD daemon is installed; None without one."""
    for unit in LIBLXC_STARTER_UNITS:
        unit_file = find_unit_file(unit, root)
        if unit_file is not None and not unit_file.masked:
            return unit_file
    return None


def find_unit_file(unit: str, root: str = "/") -> Optional[UnitFile]:
    """The unit file systemd loads for ``unit``: the first one in UNIT_PATHS order.

    An instance such as ``vault@a.service`` without a file of its own loads its template's,
    ``vault@.service``.
    """
    names = [unit]
    stem, _dot, unit_type = unit.rpartition(".")
    prefix, _at, instance = stem.partition("@")
    if instance:
        names.append(f"{prefix}@.{unit_type}")
    for name in names:
        for unit_path in UNIT_PATHS:
            candidate = os.path.join(join_root(root, unit_path), name)
            if not os.path.lexists(candidate):
                continue
            # systemd masks a unit with a link to /dev/null or an empty file.
            masked = os.path.islink(candidate) and os.readlink(candidate) == "/dev/null"
            if not masked and not os.path.exists(candidate):
                continue  # dangling symlink: systemd skips it too
            return UnitFile(unit, os.path.join(unit_path, name), masked or os.path.getsize(candidate) == 0)
    return None


def detect_lxd_unit(root: str = "/", candidates: Sequence[str] = LXD_DAEMON_UNITS) -> UnitFile:
    """The one LXD daemon unit installed here; a clear error for none or several."""
    found: List[UnitFile] = []
    for unit in candidates:
        unit_file = find_unit_file(unit, root)
        if unit_file is not None and not unit_file.masked:
            found.append(unit_file)
    if len(found) == 1:
        return found[0]
    looked_for = ", ".join(candidates)
    if not found:
        raise SystemdError(
            f"unit=auto: found none of {looked_for} (unmasked) in {', '.join(UNIT_PATHS)}; "
            "is LXD installed? Name the daemon's unit with unit=NAME"
        )
    several = ", ".join(f"{unit_file.name} ({unit_file.path})" for unit_file in found)
    raise SystemdError(f"unit=auto: found several LXD daemon units: {several}; choose one with unit=NAME")


def systemd_running(root: str = "/") -> bool:
    """Whether systemd is the running init, as sd_booted(3) tells: /run/systemd/system exists."""
    return os.path.isdir(join_root(root, "/run/systemd/system"))


def main_pid(unit: str, run: Runner, systemctl: str = "systemctl") -> Optional[int]:
    """The unit's running main process, or None when it is not running or systemd cannot tell."""
    rc, out, _err = run([systemctl, "show", "--property=MainPID", "--value", unit])
    if rc != 0:
        return None
    try:
        pid = int(out.strip())
    except ValueError:
        return None
    return pid if pid > 0 else None


def default_memlock_limit(run: Runner, systemctl: str = "systemctl") -> Optional[MemlockLimit]:
    """systemd's DefaultLimitMEMLOCK= (what a unit that sets no LimitMEMLOCK= gets); None when it cannot tell."""
    rc, out, _err = run([systemctl, "show", "--property=DefaultLimitMEMLOCKSoft", "--property=DefaultLimitMEMLOCK"])
    if rc != 0:
        return None
    shown = dict(line.partition("=")[::2] for line in out.splitlines())
    try:
        soft, hard = (systemd_limit(shown[key]).hard for key in ("DefaultLimitMEMLOCKSoft", "DefaultLimitMEMLOCK"))
    except (KeyError, SizeError):
        return None
    return MemlockLimit(soft, hard)


def daemon_reload(run: Runner, systemctl: str = "systemctl") -> None:
    """Make systemd read changed unit files; raises SystemdError when it fails."""
    rc, out, err = run([systemctl, "daemon-reload"])
    if rc != 0:
        detail = (err or out).strip()
        raise SystemdError(f"daemon_reload: 'systemctl daemon-reload' failed with rc={rc}: {detail}")
