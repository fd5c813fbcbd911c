#!/usr/bin/python
# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: memlock_dropin
short_description: Set the memlock limit of the LXD daemon (or any service) with a systemd drop-in
version_added: 0.1.0
description:
  - Writes a systemd drop-in C(/etc/systemd/system/UNIT.d/NAME) holding C([Service]) and C(LimitMEMLOCK=),
    which sets RLIMIT_MEMLOCK, the amount of memory the service's processes may lock in RAM.
  - For the LXD daemon this is the limit every guest inherits when it starts, and what decides whether
    HashiCorp Vault's C(mlockall) succeeds in an unprivileged guest. Guests that already run keep the limit
    they started with; restart the daemon, then the guests.
  - Reads every file systemd reads for the unit (the unit file, and the drop-ins in the unit's C(.d), template,
    dash-prefix and C(service.d) directories of all unit paths), applies systemd's precedence, and reports the
    limit in force (RV(effective_limit)), warning when another file decides it (RV(overridden_by)).
  - Compares that limit with the one of the running daemon's main process, read from C(/proc/PID/limits)
    (RV(restart_required)).
  - Leaves every other drop-in untouched.
author:
  - vault_mlock.lxd maintainers (@vault-mlock)
extends_documentation_fragment:
  - vault_mlock.lxd._attributes
  - vault_mlock.lxd._attributes.actiongroup_memlock
attributes:
  check_mode:
    support: full
    details:
      - Reads the unit files only, so check mode works where systemd does not run.
  diff_mode:
    support: full
  idempotent:
    support: full
    description: When run twice with the same options, the second run reports no change.
  platform:
    platforms: posix
notes:
  - systemd sizes are bytes, and its suffixes V(K), V(M), V(G), V(T), V(P), V(E) are powers of 1024.
    C(ulimit -l) prints KiB, so O(limit=256M) makes C(ulimit -l) print C(262144) in a guest (RV(ulimit_kib)).
  - A systemd that runs without CAP_SYS_RESOURCE (for example inside an unprivileged container) silently
    lowers a limit above the hard limit it inherited, V(infinity) included. Then the daemon never reaches the
    requested limit and RV(restart_required) stays V(true) after a restart.
  - When C(/run/systemd/system) does not exist, systemd is not running; the module then writes the file,
    skips C(systemctl daemon-reload), and returns V(null) for the running daemon's limit.
options:
  unit:
    description:
      - The service whose limit to set.
      - V(auto) finds the LXD daemon's unit among C(lxd.service) (Debian and Ubuntu packages),
        C(snap.lxd.daemon.service) (the snap) and C(incus.service) (Incus), by looking for their unit files in
        systemd's unit paths. It fails when it finds none or more than one of them; masked units do not count.
      - Any other value names a service, for example V(vault.service) for Vault in a guest.
        A name without a unit type suffix gets C(.service), so V(vault) means C(vault.service).
        Other unit types, and names with C(/) or characters systemd refuses, fail.
      - A named unit need not be installed yet; the module then warns that the drop-in waits for it.
    type: str
    default: auto
  limit:
    description:
      - The memlock limit, in systemd's syntax for C(LimitMEMLOCK=).
      - A number of bytes with an optional suffix V(K), V(M), V(G), V(T), V(P) or V(E) (powers of 1024),
        V(infinity) for no limit (V(unlimited), as LXD writes it, is accepted too), or V(SOFT:HARD) made of two
        such values, the soft one not above the hard one.
      - The file holds the shortest exact spelling (V(262144) is written V(256K), V(unlimited) V(infinity)).
      - Required when O(state=present).
    type: str
  name:
    description:
      - File name of the drop-in inside C(/etc/systemd/system/UNIT.d/).
      - Must end in C(.conf) and must not contain C(/) nor start with C(.).
      - systemd applies drop-ins sorted by file name, and for one setting the last one wins. If another drop-in
        that sorts later sets C(LimitMEMLOCK=), the module warns and names it in RV(overridden_by).
    type: str
    default: 00-memlock.conf
  state:
    description:
      - V(present) writes the drop-in; V(absent) removes that one file and leaves its directory.
    type: str
    choices: [present, absent]
    default: present
  daemon_reload:
    description:
      - Run C(systemctl daemon-reload) when the drop-in changed, so systemd uses it at the next start of the unit.
      - Never runs in check mode, nor when the file did not change, nor when systemd is not running.
    type: bool
    default: true
  ipc_lock:
    description:
      - Also add C(CAP_IPC_LOCK) to the service's C(AmbientCapabilities=) and C(CapabilityBoundingSet=) in the same
        drop-in, so that a service running as a non-root user (Vault's C(vault.service)) may lock memory.
      - systemd merges these settings across the unit file and its drop-ins, so the unit's other capabilities stay.
      - Not needed for the LXD daemon, which runs as root.
      - In an unprivileged LXD guest the capability does not lift C(RLIMIT_MEMLOCK); the limit itself must come
        from LXD.
    type: bool
    default: false
seealso:
  - name: systemd.exec(5), LimitMEMLOCK=
    description: The process resource limits systemd sets for services.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html#Process%20Properties
  - name: systemd.unit(5), drop-in directories
    description: Where systemd looks for drop-ins and which one wins.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.unit.html
"""

EXAMPLES = r"""
---
- name: Let LXD guests lock 256 MiB (ulimit -l prints 262144 in a guest)
  vault_mlock.lxd.memlock_dropin:
    limit: 256M
  register: lxd_memlock

- name: Restart LXD so that guests started from now on get the new limit
  ansible.builtin.systemd_service:
    name: "{{ lxd_memlock.unit }}"
    state: restarted
  when: lxd_memlock.restart_required

- name: No memlock limit for the snap's LXD daemon
  vault_mlock.lxd.memlock_dropin:
    unit: snap.lxd.daemon.service
    limit: infinity

- name: Soft limit 64 MiB, hard limit 1 GiB, in a drop-in that sorts after the packaged ones
  vault_mlock.lxd.memlock_dropin:
    limit: 64M:1G
    name: 99-memlock.conf

- name: Let Vault inside a guest lock memory without limit
  vault_mlock.lxd.memlock_dropin:
    unit: vault
    limit: infinity

- name: Remove the drop-in again
  vault_mlock.lxd.memlock_dropin:
    state: absent
"""

RETURN = r"""
---
path:
  description: The drop-in's path.
  returned: success
  type: str
  sample: /etc/systemd/system/lxd.service.d/00-memlock.conf
unit:
  description: The service the drop-in belongs to, as found by O(unit=auto) or named.
  returned: success
  type: str
  sample: lxd.service
unit_file:
  description: The unit file systemd loads for RV(unit); V(null) when no unit path holds one.
  returned: success
  type: str
  sample: /lib/systemd/system/lxd.service
limit:
  description: The limit the drop-in sets, as written in it; V(null) when O(state=absent).
  returned: success
  type: str
  sample: 256M
limit_bytes:
  description: The drop-in's limit in bytes; V(null) for no limit. V(null) as a whole when O(state=absent).
  returned: success
  type: dict
  contains:
    soft:
      description: Soft limit in bytes, or V(null) for no limit.
      type: int
    hard:
      description: Hard limit in bytes, or V(null) for no limit.
      type: int
  sample: {soft: 268435456, hard: 268435456}
ulimit_kib:
  description:
    - What C(ulimit -l) (soft) and C(ulimit -H -l) (hard) print in a guest started under the drop-in's limit,
      in KiB; V(null) where they print C(unlimited). V(null) as a whole when O(state=absent).
  returned: success
  type: dict
  contains:
    soft:
      description: KiB printed by C(ulimit -l), or V(null) for C(unlimited).
      type: int
    hard:
      description: KiB printed by C(ulimit -H -l), or V(null) for C(unlimited).
      type: int
  sample: {soft: 262144, hard: 262144}
effective_limit:
  description:
    - The C(LimitMEMLOCK=) in force for the unit once the drop-in is written (or removed), from all the files
      systemd reads for it, in systemd's spelling.
    - V(null) when no file sets it, so systemd's C(DefaultLimitMEMLOCK=) applies.
  returned: success
  type: str
  sample: 256M
effective_limit_bytes:
  description: RV(effective_limit) in bytes; V(null) as a whole when no file sets it.
  returned: success
  type: dict
  contains:
    soft:
      description: Soft limit in bytes, or V(null) for no limit.
      type: int
    hard:
      description: Hard limit in bytes, or V(null) for no limit.
      type: int
  sample: {soft: 268435456, hard: 268435456}
limit_source:
  description: The file whose C(LimitMEMLOCK=) is RV(effective_limit); V(null) when none sets it.
  returned: success
  type: str
  sample: /etc/systemd/system/lxd.service.d/00-memlock.conf
overridden_by:
  description:
    - The file that decides the limit instead of the drop-in, with O(state=present); otherwise V(null).
    - Either a drop-in that systemd reads later and that sets C(LimitMEMLOCK=), or a drop-in of the same
      O(name) in a higher-priority directory, which hides this one.
  returned: success
  type: str
  sample: /etc/systemd/system/lxd.service.d/override.conf
limit_settings:
  description: Every C(LimitMEMLOCK=) in the files systemd reads for the unit, in the order it applies them.
  returned: success
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
    value:
      description: The value as written.
      type: str
    valid:
      description: Whether systemd accepts the value; it ignores the line otherwise.
      type: bool
  sample: [{path: /etc/systemd/system/lxd.service.d/00-memlock.conf, value: 256M, valid: true}]
main_pid:
  description: The unit's running main process; V(null) when it does not run or systemd cannot be asked.
  returned: success
  type: int
  sample: 1234
running_limit_bytes:
  description:
    - The memlock limit of the running main process, from C(/proc/PID/limits), in bytes.
    - V(null) as a whole when the unit does not run or systemd does not run.
  returned: success
  type: dict
  contains:
    soft:
      description: Soft limit in bytes, or V(null) for no limit.
      type: int
    hard:
      description: Hard limit in bytes, or V(null) for no limit.
      type: int
  sample: {soft: 8388608, hard: 8388608}
restart_required:
  description:
    - Whether the running main process's limit differs from RV(effective_limit), so the unit must be restarted
      for the limit to apply (and LXD guests restarted after the daemon).
    - V(false) when the unit does not run, or when no file sets the limit.
  returned: success
  type: bool
  sample: true
daemon_reloaded:
  description: Whether C(systemctl daemon-reload) ran.
  returned: success
  type: bool
  sample: true
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vault_mlock.lxd.plugins.module_utils import _systemd
from ansible_collections.vault_mlock.lxd.plugins.module_utils._dropins import (
    apply_dropin,
    plan_dropin,
    validate_dropin_name,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import read_memlock_limit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import (
    SizeError,
    format_limit,
    parse_limit,
    ulimit_kib,
)


def _limit_dict(limit):
    return None if limit is None else {"soft": limit.soft, "hard": limit.hard}


def _ulimit_dict(limit):
    return None if limit is None else {"soft": ulimit_kib(limit.soft), "hard": ulimit_kib(limit.hard)}


def _running_limit(module, unit, root):
    """(main PID, its memlock limit) of the running unit; (None, None) when that cannot be known."""
    if not _systemd.systemd_running(root):
        return None, None
    systemctl = module.get_bin_path("systemctl")
    if systemctl is None:
        return None, None
    pid = _systemd.main_pid(unit, module.run_command, systemctl)
    if pid is None:
        return None, None
    try:
        return pid, read_memlock_limit(pid, _systemd.join_root(root, "/proc"))
    except (OSError, ValueError):
        return pid, None  # the process ended between the two reads


def main():
    module = AnsibleModule(
        argument_spec=dict(
            unit=dict(type="str", default="auto"),
            limit=dict(type="str"),
            name=dict(type="str", default="00-memlock.conf"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            daemon_reload=dict(type="bool", default=True),
            ipc_lock=dict(type="bool", default=False),
        ),
        required_if=[("state", "present", ("limit",))],
        supports_check_mode=True,
    )
    params = module.params
    root = _systemd.SYSTEM_ROOT
    try:
        name = validate_dropin_name(params["name"])
        # Checked with state=absent too: a typo should fail there as well.
        limit = parse_limit(params["limit"], "limit") if params["limit"] is not None else None
        if params["unit"] == "auto":
            unit = _systemd.detect_lxd_unit(root).name
        else:
            unit = _systemd.normalize_unit_name(params["unit"])
        plan = plan_dropin(unit, params["state"], limit, name, root, params["ipc_lock"])
    except (SizeError, _systemd.SystemdError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"Reading the unit files failed: {exc}", exception=traceback.format_exc())

    for warning in plan.warnings:
        module.warn(warning)

    daemon_reloaded = False
    if plan.changed and not module.check_mode:
        try:
            apply_dropin(plan, root)
        except OSError as exc:
            verb = "Writing" if plan.after is not None else "Removing"
            module.fail_json(msg=f"{verb} {plan.path} failed: {exc}", exception=traceback.format_exc())
        if params["daemon_reload"] and _systemd.systemd_running(root):
            systemctl = module.get_bin_path("systemctl")
            if systemctl is None:
                module.warn(f"systemd runs but systemctl was not found; run 'systemctl daemon-reload' for {plan.path}")
            else:
                try:
                    _systemd.daemon_reload(module.run_command, systemctl)
                except _systemd.SystemdError as exc:
                    module.fail_json(msg=f"{plan.path} was written, but {exc}", path=plan.path, changed=True)
                daemon_reloaded = True

    pid, running = _running_limit(module, unit, root)
    effective = plan.effective.limit
    restart_required = running is not None and effective is not None and running != effective

    result = dict(
        changed=plan.changed,
        path=plan.path,
        unit=unit,
        unit_file=plan.unit_file,
        limit=format_limit(plan.limit) if plan.limit is not None else None,
        limit_bytes=_limit_dict(plan.limit),
        ulimit_kib=_ulimit_dict(plan.limit),
        effective_limit=format_limit(effective) if effective is not None else None,
        effective_limit_bytes=_limit_dict(effective),
        limit_source=plan.effective.source,
        overridden_by=plan.overridden_by,
        limit_settings=[
            dict(path=setting.path, value=setting.value, valid=setting.limit is not None)
            for setting in plan.effective.settings
        ],
        main_pid=pid,
        running_limit_bytes=_limit_dict(running),
        restart_required=restart_required,
        daemon_reloaded=daemon_reloaded,
    )
    if module._diff:
        result["diff"] = dict(
            before="" if plan.before is None else plan.before.decode("utf-8", errors="replace"),
            after="" if plan.after is None else plan.after.decode("utf-8"),
            before_header=plan.path if plan.before is not None else "(absent)",
            after_header=plan.path if plan.after is not None else "(absent)",
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
