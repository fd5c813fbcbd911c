#!/usr/bin/python
# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mlock_config
short_description: Keep disable_mlock in a Vault or OpenBao server configuration as the server wants it
version_added: 0.2.0
description:
  - Finds the server binary, decides whether the server locks its memory, finds the configuration files its
    systemd service starts it with, and keeps their top-level C(disable_mlock) setting in step. Nothing else in
    the files changes.
  - B(OpenBao) (C(bao)) 2 and later never lock memory. They refuse to start with C(disable_mlock = false)
    ("OpenBao has dropped support for mlock. Please remove the line") and warn about C(disable_mlock = true)
    ("unknown or unsupported field"). The module removes every C(disable_mlock) line.
  - B(HashiCorp Vault) with integrated storage (C(storage "raft")) gets C(disable_mlock = true), added when no
    file sets it. mlock would lock the whole memory-mapped database too (bbolt maps its file into memory), so
    HashiCorp recommends it. Any other Vault keeps its memory locked, C(disable_mlock = false); a missing line
    means the same and is left missing.
  - Without mlock the server's memory may go to swap; keep it out with C(MemorySwapMax=0) for the service
    (the role C(vault_mlock.lxd.vault_guest)) and check RV(swap).
  - Files are rewritten atomically, keeping their mode and owner. A file the module cannot read safely
    (not HCL or JSON, a C(disable_mlock) sharing its line with other settings) makes it fail before any file
    is written.
author:
  - vault_mlock.lxd maintainers (@vault-mlock)
extends_documentation_fragment:
  - vault_mlock.lxd._attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - One diff per changed file.
  idempotent:
    support: full
    description: When run twice with the same options, the second run reports no change.
  platform:
    platforms: posix
options:
  binary:
    description:
      - The server binary.
      - The empty string finds C(vault), else OpenBao's C(bao), on C(PATH), then in C(/usr/local/bin) and
        C(/usr/bin). A Vault found anywhere wins over a C(bao).
      - Symbolic links are followed (RV(binary_resolved)); the name as called or as resolved tells OpenBao
        (C(bao), C(openbao), C(bao-2.7) ...) from Vault, unless O(server) says.
    type: str
    default: ''
  server:
    description:
      - Which server the binary is. V(auto) decides by its name.
    type: str
    choices: [auto, vault, openbao]
    default: auto
  service:
    description:
      - The systemd service that runs the server, whose C(ExecStart=) names the configuration
        (C(-config=PATH) or C(-config PATH), as often as given).
      - V(auto) takes C(vault.service) for Vault, C(openbao.service) or else C(bao.service) for OpenBao.
      - When systemd runs, the command comes from C(systemctl show) (drop-ins merged, specifiers expanded);
        otherwise, or before a pending C(daemon-reload), from the unit file and its drop-ins.
      - A name without a unit type suffix gets C(.service).
    type: str
    default: auto
  config:
    description:
      - The configuration files or directories the server reads, instead of those the service names.
      - A directory means each C(*.hcl) and C(*.json) file directly in it, in name order, as the server reads it.
    type: list
    elements: path
    default: []
  disable_mlock:
    description:
      - V(auto) decides as described above.
      - V(true) or V(false) set Vault's C(disable_mlock) as given. For OpenBao V(true) means no line (it never
        locks), and V(false) fails, since OpenBao refuses it.
    type: raw
    default: auto
  storage:
    description:
      - The storage type (V(raft), V(consul) ...) for O(disable_mlock=auto).
      - The empty string reads it from the configuration's C(storage) (or old C(backend)) stanza; the last file
        that has one decides, as the server merges them.
    type: str
    default: ''
  backup:
    description:
      - Before a file changes, keep its text beside it, under its name with the suffix C(.PID.YYYY-MM-DD@HH:MM:SS~)
        as M(ansible.builtin.copy) names backups, with the file's mode and owner (RV(backups)).
    type: bool
    default: false
notes:
  - Only top-level C(disable_mlock) settings count and change; the key is read without regard to case, quoted or
    not, and its value as the server reads it (C(true), C("true"), C(1) are all true), so a setting that already
    means what is wanted keeps its spelling.
  - The service is not restarted; restart it when the module reports a change (the role C(vault_mlock.lxd.vault_guest) does).
  - RV(swap) reads the host's swap from C(/proc/meminfo) and C(/proc/swaps). Inside a guest whose C(/proc) is
    virtualised (LXCFS) those show the guest's own swap limit instead; M(vault_mlock.lxd.memlock_probe) on the
    LXD host sees the host's.
seealso:
  - module: vault_mlock.lxd.memlock_dropin
  - name: OpenBao's mlock removal
    description: Why OpenBao dropped mlock.
    link: https://openbao.org/docs/rfcs/mlock-removal/
"""

EXAMPLES = r"""
---
- name: Keep disable_mlock as the installed Vault or OpenBao wants it
  vault_mlock.lxd.mlock_config:
  register: mlock_config
  notify: Restart the server

- name: Say whether the server locks its memory
  ansible.builtin.debug:
    msg: "{{ mlock_config.binary }}: mlock {{ 'on' if mlock_config.mlock.enabled else 'off' }}, {{ mlock_config.mlock.reason }}"

- name: OpenBao under its own unit name
  vault_mlock.lxd.mlock_config:
    binary: /usr/bin/bao
    service: openbao-main.service

- name: Vault with a configuration directory, raft storage declared elsewhere
  vault_mlock.lxd.mlock_config:
    config:
      - /etc/vault.d
    storage: raft

- name: Fail when swap can take the memory of a server that does not lock it
  ansible.builtin.assert:
    that: mlock_config.swap is none or mlock_config.swap.judgement == 'protected'
    fail_msg: "{{ mlock_config.swap.sentence | default('') }}"
"""

RETURN = r"""
---
binary:
  description: The server binary, as found or named.
  returned: success
  type: str
  sample: /usr/local/bin/bao
binary_resolved:
  description: RV(binary) with its symbolic links followed.
  returned: success
  type: str
  sample: /opt/openbao/bin/bao
server:
  description: Which server the binary is, V(vault) or V(openbao).
  returned: success
  type: str
  sample: openbao
openbao:
  description: Whether the binary is OpenBao.
  returned: success
  type: bool
  sample: true
mlock:
  description: Whether the server locks its memory, and why.
  returned: success
  type: dict
  contains:
    enabled:
      description: Whether the server calls mlock.
      type: bool
    reason:
      description: Why, in one sentence.
      type: str
  sample:
    enabled: false
    reason: "OpenBao 2 and later never lock memory: they refuse disable_mlock = false and warn about
      disable_mlock = true, so the configuration holds no disable_mlock line"
disable_mlock:
  description:
    - What the configuration holds once the module ran (in check mode, would hold); V(null) when no file sets
      it (OpenBao, or a Vault that keeps the default V(false)).
  returned: success
  type: bool
  sample: null
disable_mlock_before:
  description: The same, before the module ran.
  returned: success
  type: bool
  sample: false
storage:
  description: The storage type the decision used (V(null) when unknown), and the file it comes from.
  returned: success
  type: dict
  contains:
    type:
      description: The storage type, lower case.
      type: str
    source:
      description: The file whose stanza names it; V(null) when given by O(storage) or unknown.
      type: str
  sample: {type: raft, source: /etc/openbao/openbao.hcl}
service:
  description: The service whose command names the configuration; V(null) when none was found and O(config) was given.
  returned: success
  type: str
  sample: openbao.service
service_program:
  description: The program the service's C(ExecStart=) runs; V(null) when unknown.
  returned: success
  type: str
  sample: /usr/local/bin/bao
config_source:
  description: Where the configuration paths come from, V(config), V(systemctl show) or the unit file's path.
  returned: success
  type: str
  sample: systemctl show
config_paths:
  description: The configuration files and directories, as given to the server (C(-config)) or in O(config).
  returned: success
  type: list
  elements: str
  sample: [/etc/openbao/openbao.hcl]
config_files:
  description: Every file the server reads, in order, with symbolic links followed.
  returned: success
  type: list
  elements: str
  sample: [/etc/openbao/openbao.hcl]
settings:
  description: Every top-level C(disable_mlock) found before the module ran.
  returned: success
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
    line:
      description: Its line number.
      type: int
    text:
      description: The value as written.
      type: str
    value:
      description: The value as the server reads it; V(null) when the server refuses it.
      type: bool
  sample: [{path: /etc/openbao/openbao.hcl, line: 14, text: 'false', value: false}]
backups:
  description: Each file changed with O(backup=true) and its backup; empty when none was written.
  returned: success
  type: list
  elements: dict
  contains:
    path:
      description: The configuration file.
      type: str
    backup:
      description: Its text before, beside it.
      type: str
  sample: [{path: /etc/vault.d/vault.hcl, backup: /etc/vault.d/vault.hcl.4242.2026-12-07@23:50:01~}]
changed_lines:
  description: The lines changed (or, in check mode, to change), per file.
  returned: success
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
    line:
      description: The line number in the file as it was; V(null) for a line added at its end.
      type: int
    before:
      description: The line as it was; V(null) for an added line.
      type: str
    after:
      description: The line as it is now; V(null) for a removed line.
      type: str
  sample: [{path: /etc/openbao/openbao.hcl, line: 14, before: disable_mlock = false, after: null}]
swap:
  description:
    - Whether swap can take the memory of the service's running main process; V(null) when it does not run or
      systemd does not run.
    - Only matters when the server does not lock its memory (RV(mlock.enabled) false).
  returned: success
  type: dict
  contains:
    judgement:
      description:
        - V(protected) (the host has no swap, or C(memory.swap.max) is 0 for the process's cgroup or one above),
          V(not_enforced) (C(MemorySwapMax=0) is set, but no C(memory.swap.max) applies and the host has swap),
          V(exposed) or V(unknown).
      type: str
    sentence:
      description: The judgement in one sentence, with what to do.
      type: str
    pid:
      description: The main process.
      type: int
    host_swap_bytes:
      description: Swap of the host (C(SwapTotal)); V(null) when unreadable.
      type: int
    cgroup_version:
      description: The hierarchy that holds the process's memory controller, V(v2) or V(v1); V(null) when none.
      type: str
    cgroup:
      description: The process's cgroup in that hierarchy.
      type: str
    memory_swap_max:
      description:
        - C(memory.swap.max) of every cgroup from the process's upwards that has one (V(null) value for C(max)).
      type: list
      elements: dict
    configured_memory_swap_max:
      description: systemd's C(MemorySwapMax) for the service as C(systemctl show) prints it.
      type: str
  sample:
    judgement: protected
    sentence: "bao (PID 812): the host has no swap, so none of its memory can be written to swap"
    pid: 812
    host_swap_bytes: 0
    cgroup_version: v2
    cgroup: /system.slice/openbao.service
    memory_swap_max: []
    configured_memory_swap_max: "0"
"""

import dataclasses
import os
import time
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vault_mlock.lxd.plugins.module_utils import _systemd
from ansible_collections.vault_mlock.lxd.plugins.module_utils._config_syntax import ConfigError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._exec_start import (
    ExecStartError,
    commands_from_show,
    commands_from_unit_values,
    config_arguments,
    parse_systemctl_show,
    program,
    unit_exec_start_values,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._mlock_edit import apply_plan, plan_configs
from ansible_collections.vault_mlock.lxd.plugins.module_utils._safe_root import resolve_in_root
from ansible_collections.vault_mlock.lxd.plugins.module_utils._swap import gather_cgroup_swap, host_swap_from_texts
from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_config import (
    config_files,
    read_configs,
    storage_of,
    summary,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import judge_swap
from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_server import (
    BINARY_DIRS,
    OPENBAO,
    VAULT,
    ServerError,
    check_binary,
    decide_mlock,
    find_binary,
    normalize_disable_mlock,
    resolve_binary,
    server_kind,
)

SERVICE_CANDIDATES = {VAULT: ("vault.service",), OPENBAO: ("openbao.service", "bao.service")}
SHOW_PROPERTIES = ("LoadState", "NeedDaemonReload", "ExecStart", "MainPID", "MemorySwapMax")


class UnitView:
    """What systemd (or, without it, the unit files) says about one service."""

    def __init__(self, unit, show, unit_file, unit_values):
        self.unit = unit
        self.show = show  # {property: [values]}, or None when systemctl was not asked
        self.unit_file = unit_file
        self.unit_values = unit_values

    @property
    def loaded(self):
        return self.show is not None and self.show.get("LoadState", [""])[0] == "loaded"

    @property
    def exists(self):
        return self.loaded or self.unit_file is not None

    def first(self, name):
        values = (self.show or {}).get(name) or [None]
        return values[0]

    def commands(self):
        """(commands, source): systemd's loaded view unless it is stale or missing."""
        if self.loaded and self.first("NeedDaemonReload") != "yes":
            return commands_from_show(self.show.get("ExecStart", [])), "systemctl show"
        return commands_from_unit_values(self.unit_values, self.unit), self.unit_file


def _systemctl(module, root):
    if not _systemd.systemd_running(root):
        return None
    return module.get_bin_path("systemctl")


def _view(module, unit, root, systemctl):
    show = None
    if systemctl:
        argv = [systemctl, "show"] + [f"--property={name}" for name in SHOW_PROPERTIES] + [unit]
        rc, out, _err = module.run_command(argv)
        if rc == 0:
            show = parse_systemctl_show(out)
    unit_file, values = unit_exec_start_values(unit, root)
    return UnitView(unit, show, unit_file, values)


def _pick_service(module, params, kind, root, systemctl):
    """The UnitView of the service, or None when none is found (an error unless config is given)."""
    if params["service"] != "auto":
        unit = _systemd.normalize_unit_name(params["service"], "service")
        view = _view(module, unit, root, systemctl)
        if not view.exists and not params["config"]:
            raise ExecStartError(f"service: {unit} is neither loaded by systemd nor in its unit paths; name the "
                                 "server's service, or its configuration with config=PATH")
        return view if view.exists else None
    candidates = SERVICE_CANDIDATES[kind]
    for unit in candidates:
        view = _view(module, unit, root, systemctl)
        if view.exists:
            return view
    if params["config"]:
        return None
    raise ExecStartError(f"service=auto: found none of {', '.join(candidates)}; name the server's service with "
                         "service=NAME, or its configuration with config=PATH")


def _read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return stream.read()
    except OSError:
        return None


def _swap_report(view, root):
    """The swap judgement of the service's running main process; None when it does not run."""
    if view is None or not view.loaded:
        return None
    try:
        pid = int(view.first("MainPID") or 0)
    except ValueError:
        return None
    if pid <= 0:
        return None
    proc = _systemd.join_root(root, "/proc")
    cgroup_text = _read_text(os.path.join(proc, str(pid), "cgroup"))
    mountinfo = _read_text(os.path.join(proc, "self", "mountinfo"))
    if cgroup_text is None or mountinfo is None:
        return None  # it ended meanwhile
    name = (_read_text(os.path.join(proc, str(pid), "comm")) or "the server").strip()
    host = host_swap_from_texts(_read_text(os.path.join(proc, "meminfo")), _read_text(os.path.join(proc, "swaps")),
                                _systemd.join_root(root, "/sys"))
    cgroup = gather_cgroup_swap(cgroup_text, mountinfo, root)
    configured = view.first("MemorySwapMax")
    judged = judge_swap(f"{name} (PID {pid})", host, cgroup, configured, view.unit)
    return dict(
        judgement=judged.verdict,
        sentence=judged.sentence,
        pid=pid,
        host_swap_bytes=host.total_bytes,
        cgroup_version=cgroup.version,
        cgroup=cgroup.cgroup,
        memory_swap_max=[dict(cgroup=entry.cgroup, bytes=entry.swap_max_bytes) for entry in cgroup.chain],
        configured_memory_swap_max=configured,
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            binary=dict(type="str", default=""),
            server=dict(type="str", default="auto", choices=["auto", VAULT, OPENBAO]),
            service=dict(type="str", default="auto"),
            config=dict(type="list", elements="path", default=[]),
            disable_mlock=dict(type="raw", default="auto"),
            storage=dict(type="str", default=""),
            backup=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    root = _systemd.SYSTEM_ROOT
    try:
        setting = normalize_disable_mlock(params["disable_mlock"])
        if params["binary"]:
            binary = params["binary"]
            check_binary(binary, root)
        else:
            binary = find_binary(os.environ.get("PATH", ""), root=root)
            if binary is None:
                module.fail_json(msg=f"binary: no vault or bao on PATH nor in {' or '.join(BINARY_DIRS)}; install "
                                     "Vault or OpenBao first, or name its binary with binary=PATH")
        resolved = resolve_binary(binary, root)
        kind = server_kind(binary, resolved, params["server"])
        storage_option = params["storage"].strip().lower()
        if kind == OPENBAO or setting != "auto":
            decide_mlock(kind, storage_option or None, setting)  # refuses what cannot be met, before reading more
        systemctl = _systemctl(module, root)
        view = _pick_service(module, params, kind, root, systemctl)
        service_program = None
        if params["config"]:
            paths, source = list(params["config"]), "config"
            if view is not None:
                service_program = program(view.commands()[0])
        else:
            commands, source = view.commands()
            service_program = program(commands)
            paths = config_arguments(commands, view.unit)
            relative = [path for path in paths if not path.startswith("/")]
            if relative:
                raise ExecStartError(f"ExecStart of {view.unit} gives -config {relative[0]}, a relative path; name "
                                     "the configuration with config=PATH")
        files = config_files(paths, root, "config" if params["config"] else f"ExecStart of {view.unit}")
        configs = read_configs(files, root)
        storage, storage_source = (storage_option, None) if storage_option else storage_of(configs)
        decision = decide_mlock(kind, storage or None, setting, storage_source or "")
        plans = plan_configs(configs, decision.disable_mlock, add_when_missing=decision.disable_mlock is True)
    except (ServerError, ExecStartError, ConfigError, _systemd.SystemdError) as exc:
        module.fail_json(msg=str(exc))

    if service_program and resolve_in_root(root, service_program) != resolved:
        module.warn(f"{view.unit} runs {service_program}, not {binary}: name the binary the service runs "
                    "with binary=PATH if the decision should follow that one")

    changed = any(plan.changed for plan in plans)
    backups = []
    if changed and not module.check_mode:
        try:
            # The suffix ansible.builtin's backup=true gives (PID, time), so repeated edits keep every original.
            suffix = time.strftime(f".{os.getpid()}.%Y-%m-%d@%H:%M:%S~") if module.params["backup"] else ""
            backups = apply_plan(plans, root, suffix)
        except OSError as exc:
            module.fail_json(msg=f"Writing the configuration failed: {exc}", exception=traceback.format_exc())

    before = summary(configs)
    # Vault's default (false) is not written where no file sets it.
    after_value = decision.disable_mlock
    if after_value is False and not before["settings"]:
        after_value = None
    result = dict(
        changed=changed,
        binary=binary,
        binary_resolved=resolved,
        server=kind,
        openbao=kind == OPENBAO,
        mlock=dict(enabled=decision.enabled, reason=decision.reason),
        disable_mlock=after_value,
        disable_mlock_before=before["value"],
        storage=dict(type=storage or None, source=storage_source),
        service=view.unit if view is not None else None,
        service_program=service_program,
        config_source=source,
        config_paths=paths,
        config_files=[config.real_path for config in configs],
        settings=before["settings"],
        changed_lines=[dataclasses.asdict(change) for plan in plans for change in plan.line_changes()],
        backups=backups,
        swap=_swap_report(view, root),
    )
    if module._diff:
        result["diff"] = [
            dict(before=plan.config.text, after=plan.after,
                 before_header=plan.config.real_path, after_header=plan.config.real_path)
            for plan in plans if plan.changed
        ]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
