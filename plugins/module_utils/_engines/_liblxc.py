# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Plain LXC and Proxmox VE: containers run by liblxc's lxc-start, with no daemon and no API.

A container's memlock limit at its start is ``lxc.prlimit.memlock`` of its configuration, or else
the limit of the lxc-start that started it: on Debian ``lxc@NAME.service`` (``lxc-start -F``, which
stays the container's monitor) or ``lxc.service`` (autostart, whose monitors are ``[lxc monitor]
LXCPATH NAME``), on Proxmox VE ``pve-container@VMID.service``. lxc-start cannot raise a limit
above its own hard limit: a configuration asking more makes the start fail ("Failed to set limit
memlock"), so the unit's limit is the ceiling of every container it starts.

- plain LXC: LXCPATH/NAME/config (``key = value``), every lxcpath the host uses (_lxc_config);
- Proxmox VE: /etc/pve/lxc/VMID.conf (``key: value``), which pve-container copies into
  /var/lib/lxc/VMID/config at every ``pct start`` (_pve_config).

Commands: ``lxc-info`` (state and init PID), ``lxc-attach``/``pct exec`` (a command inside),
``systemctl`` (the starting unit), ``pct reboot`` (Proxmox's stop and start).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.vault_mlock.lxd.plugins.module_utils._atomic import write_atomic
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import (
    INSTANCE,
    LXC,
    MEMLOCK,
    PVE,
    EngineError,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import _pve_config
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._lxc_config import (
    DEFAULT_LXCPATH,
    LXC_SYNTAX,
    PRLIMIT_MEMLOCK,
    checked_limit,
    config_path,
    edited_lines,
    end_of_content,
    liblxc_limit,
    list_containers,
    lxcpaths,
    one_setting,
    render_liblxc,
    split_lines,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit

RUNNING, STOPPED, FROZEN = "RUNNING", "STOPPED", "FROZEN"
SETTINGS = {MEMLOCK: PRLIMIT_MEMLOCK}
Runner = Callable[[Sequence[str], float], Tuple[int, str, str]]


def run_command(argv: Sequence[str], timeout: float) -> Tuple[int, str, str]:
    """(rc, stdout, stderr) of a command; rc 127 when it is missing, 124 when it outlives ``timeout``."""
    try:
        # AnsibleModule.run_command has no deadline, and an lxc-attach into a hung container must not hang the module.
        done = subprocess.run(  # pylint: disable=ansible-bad-function
            list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: command not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"{' '.join(argv)} did not finish within {timeout:g} s"
    return done.returncode, done.stdout, done.stderr


@dataclass(frozen=True)
class Container:
    """One container: its name (a VMID on Proxmox), its lxcpath and the file its settings live in."""

    name: str
    lxcpath: str
    config: str  # LXCPATH/NAME/config, or /etc/pve/lxc/VMID.conf


def parse_lxc_info(text: str) -> Tuple[str, Optional[int]]:
    """(state, init PID or None) from ``lxc-info -s -p`` ('State:   RUNNING', 'PID:   134')."""
    fields = dict((key.strip(), value.strip()) for key, _sep, value in
                  (line.partition(":") for line in text.splitlines() if ":" in line))
    pid = fields.get("PID")
    return fields.get("State", ""), int(pid) if pid and pid.isdigit() else None


def parse_pct_status(text: str) -> str:
    """lxc-info's spelling of the state ``pct status`` prints ('status: running' gives RUNNING)."""
    for line in text.splitlines():
        key, _sep, value = line.partition(":")
        if key.strip() == "status":
            return value.strip().upper()
    return ""


class LiblxcEngine:
    """The Engine interface (see _engines) for plain LXC (``lxc``) and Proxmox VE (``pve``)."""

    kinds = (INSTANCE,)
    settings_keys = (MEMLOCK,)

    def __init__(self, name: str, paths: Sequence[str], etc_pve: str = _pve_config.ETC_PVE,
                 run: Runner = run_command) -> None:
        self.name = name
        self.lxcpaths = list(paths)
        self.etc_pve = etc_pve
        self.run = run

    # --- which containers, and where ----------------------------------------------------------

    def containers(self) -> List[Container]:
        if self.name == PVE:
            return [Container(vmid, DEFAULT_LXCPATH, _pve_config.conf_path(vmid, self.etc_pve))
                    for vmid in _pve_config.vmids(self.etc_pve)]
        return [Container(name, lxcpath, config_path(lxcpath, name)) for lxcpath, name in list_containers(self.lxcpaths)]

    def container(self, name: str) -> Container:
        for found in self.containers():
            if found.name == name:
                return found
        where = (f"{_pve_config.conf_path(name, self.etc_pve)} does not exist" if self.name == PVE
                 else f"no {name}/config in {', '.join(self.lxcpaths)}")
        raise EngineError(f"container {name!r}: no such container on this host ({where})")

    # --- settings ----------------------------------------------------------------------------

    def _check(self, kind: str, key: str) -> str:
        if kind not in self.kinds:
            raise EngineError(f"{self.name}: containers have no {kind}s; only instance settings exist here")
        if key not in SETTINGS:
            raise EngineError(f"{self.name}: no setting {key!r}; this engine supports {', '.join(self.settings_keys)}")
        return SETTINGS[key]

    def _lines(self, container: Container) -> List[str]:
        try:
            with open(container.config, encoding="utf-8") as stream:
                return split_lines(stream.read())
        except OSError as exc:
            raise EngineError(f"{container.config}: cannot be read: {exc.strerror}") from None

    def _setting(self, container: Container, lines: List[str], key: str):
        if self.name == PVE:
            return _pve_config.find_memlock(container.config, lines, key)
        return one_setting(container.config, lines, key, LXC_SYNTAX)

    def read_limit(self, name: str, key: str = MEMLOCK) -> Tuple[Optional[str], Optional[MemlockLimit]]:
        """(raw value, limit) of a container's setting; EngineError naming the file and line of a bad one."""
        setting_name = self._check(INSTANCE, key)
        container = self.container(name)
        setting = self._setting(container, self._lines(container), setting_name)
        limit = checked_limit(container.config, setting_name, setting)
        return (setting.value if setting else None), limit

    def read(self, kind: str, name: str, key: str) -> Optional[str]:
        self._check(kind, key)
        return self.read_limit(name, key)[0]

    def write(self, kind: str, name: str, key: str, value: Optional[str]) -> None:
        setting_name = self._check(kind, key)
        container = self.container(name)
        if value is not None:
            try:
                liblxc_limit(value)  # refused before anything is read or written, as lxc-start would refuse it
            except ValueError as exc:
                raise EngineError(f"{container.config}: {setting_name}: {exc} (nothing was written)") from None
        if self.name == PVE:
            with _pve_config.config_lock(name):
                text = "\n".join(self._lines(container))
                _pve_config.write_conf(container.config,
                                       _pve_config.edit_text(container.config, text, setting_name, value))
            return
        lines = self._lines(container)
        setting = self._setting(container, lines, setting_name)
        new = edited_lines(lines, setting_name, value, LXC_SYNTAX, setting, end_of_content(lines, len(lines)))
        write_atomic(container.config, "\n".join(new), mode=os.stat(container.config).st_mode & 0o7777)

    def render(self, key: str, limit_text, option: str = "") -> str:
        """A systemd-style limit as liblxc stores it; SizeError (naming ``option``) for one systemd would refuse."""
        self._check(INSTANCE, key)
        return render_liblxc(str(limit_text), option or "limit")

    def setting(self, key: str) -> str:
        """The engine's own name of a neutral key."""
        return self._check(INSTANCE, key)

    # --- running containers ------------------------------------------------------------------

    def state(self, container: Container, timeout: float = 10) -> Tuple[str, Optional[int]]:
        """(state, init PID) as lxc-info tells (and, on Proxmox VE, pct status)."""
        rc, out, err = self.run(["lxc-info", "-n", container.name, "-P", container.lxcpath, "-s", "-p"], timeout)
        if rc != 0:
            raise EngineError(f"container {container.name}: lxc-info failed (rc={rc}): {(err or out).strip()}")
        state, pid = parse_lxc_info(out)
        if self.name == PVE:
            rc, out, _err = self.run(["pct", "status", container.name], timeout)
            state = parse_pct_status(out) if rc == 0 else state
        return state, pid

    def exec_argv(self, container: Container, argv: Sequence[str]) -> List[str]:
        """The command line that runs ``argv`` inside the container."""
        if self.name == PVE:
            return ["pct", "exec", container.name, "--", *argv]
        return ["lxc-attach", "-n", container.name, "-P", container.lxcpath, "--", *argv]

    def execute(self, name: str, argv: Sequence[str], timeout: float) -> Tuple[int, str, str]:
        """(rc, stdout, stderr) of ``argv`` run inside the container; rc 124 when it outlives ``timeout``."""
        return self.run(self.exec_argv(self.container(name), argv), timeout)

    def start_unit(self, container: Container, monitor_cgroup: str = "") -> Optional[str]:
        """The systemd service that started (or would start) the container: from its monitor's cgroup when it runs."""
        for part in reversed(monitor_cgroup.strip().split("/")):
            if part.endswith(".service"):
                return part
        if self.name == PVE:
            return f"pve-container@{container.name}.service"
        if os.path.normpath(container.lxcpath) == os.path.normpath(lxcpaths()[0]):
            return f"lxc@{container.name}.service"
        return None

    def restart(self, name: str, timeout: float) -> None:
        """Stop the container and start it again through the unit that starts it, then wait for its boot."""
        container = self.container(name)
        deadline = time.monotonic() + timeout
        if self.name == PVE:
            self._must(["pct", "reboot", name, "--timeout", str(int(timeout))], timeout, name)
        else:
            unit = self.start_unit(container, _monitor_cgroup(self, container))
            if unit is None:
                raise EngineError(f"container {name}: not started by a systemd unit and not in the default lxcpath, "
                                  "so no unit can start it with its limit; restart it yourself")
            if unit == f"lxc@{name}.service":
                self._must(["systemctl", "restart", unit], timeout, name)
            else:
                # lxc.service starts every autostart container at once: this one alone is restarted through
                # lxc@NAME.service, which gets the same drop-ins' limit.
                self._must(["lxc-stop", "-n", name, "-P", container.lxcpath, "-t", str(int(timeout))], timeout, name)
                self._must(["systemctl", "start", f"lxc@{name}.service"], timeout, name)
        self.wait_booted(container, deadline)

    def wait_booted(self, container: Container, deadline: float) -> None:
        """Until systemd inside has booted (running or degraded), or a command runs where there is no systemd."""
        last = ""
        while time.monotonic() < deadline:
            left = max(1.0, deadline - time.monotonic())
            _rc, out, err = self.run(self.exec_argv(container, ["sh", "-c", BOOTED_SCRIPT]), left)
            state = out.strip()
            # is-system-running exits non-zero for degraded, which counts as booted.
            if state in ("running", "degraded", "no-systemd"):
                return
            last = state or err.strip()
            time.sleep(1)
        raise EngineError(f"container {container.name}: not booted before the timeout (last answer: {last or 'none'})")

    def _must(self, argv: Sequence[str], timeout: float, name: str) -> None:
        rc, out, err = self.run(argv, timeout)
        if rc != 0:
            raise EngineError(f"container {name}: {' '.join(argv)} failed (rc={rc}): {(err or out).strip()[:300]}")


BOOTED_SCRIPT = ("if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then "
                 "systemctl is-system-running --wait; else echo no-systemd; fi")


def _monitor_cgroup(engine: LiblxcEngine, container: Container, proc_root: str = "/proc") -> str:
    """The cgroup of the container's monitor (the init's parent); empty when it does not run."""
    try:
        _state, init = engine.state(container)
        if init is None:
            return ""
        with open(os.path.join(proc_root, str(init), "stat"), encoding="utf-8", errors="replace") as stat:
            monitor = int(stat.read().rpartition(")")[2].split()[1])
        with open(os.path.join(proc_root, str(monitor), "cgroup"), encoding="utf-8", errors="replace") as cgroup:
            return cgroup.read().splitlines()[0].split(":", 2)[2]
    except (OSError, ValueError, IndexError, EngineError):
        return ""


def open_liblxc(engine: str, params: Dict) -> LiblxcEngine:
    """The liblxc engine ``engine`` (lxc or pve) for a module's parameters (``lxcpath``: a list, optional)."""
    if engine not in (LXC, PVE):
        raise EngineError(f"engine: {engine!r} is not a liblxc engine; expected {LXC} or {PVE}")
    paths = params.get("lxcpath") or lxcpaths()
    return LiblxcEngine(engine, paths)
