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
    which sets RLIMIT_MEMLOCK, the amount of memory the service's processes may lock in RAM. It can also give the
    service C(CAP_IPC_LOCK) (O(ipc_lock)) and keep its memory out of swap (O(no_swap)).
  - For the LXD daemon this is the limit every guest inherits when it starts, and what decides whether
    HashiCorp Vault's C(mlockall) succeeds in an unprivileged guest. Guests that already run keep the limit
    they started with; restart the daemon, then the guests.
  - Reads every file systemd reads for the unit (the unit file, and the drop-ins in the unit's C(.d), template,
    dash-prefix and C(service.d) directories of all unit paths), applies systemd's precedence and parses every
    C(LimitMEMLOCK=) exactly as systemd 252 does. So C(1G 512M) is 1.5 GiB and C(4.M) is 4 MiB, while a space
    before the colon of C(SOFT:HARD) makes systemd refuse and ignore the value, and the assignment before it stays.
  - It reports the limit in force (RV(effective_limit)), and warns when another file decides it
    (RV(overridden_by)) or when systemd ignores a value.
  - Decides whether the running service needs a restart (RV(restart_required)) by comparing the limit of its main
    process, read from C(/proc/PID/limits), with what a start would give it now (RV(start_limit)), taking into
    account that systemd lowers the limit to its own hard limit where it cannot raise it (RV(ceiling)).
  - Leaves every other drop-in untouched.
author:
  - vault_mlock.lxd maintainers (@vault-mlock)
extends_documentation_fragment:
  - vault_mlock.lxd._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the unit files only, so check mode works where systemd does not run. RV(restart_required) tells what
        the unit would need once the planned drop-in is in place.
  diff_mode:
    support: full
  idempotent:
    support: full
    description: When run twice with the same options, the second run reports no change.
  platform:
    platforms: posix
notes:
  - systemd sizes are bytes, and its suffixes V(K), V(M), V(G), V(T), V(P), V(E) are powers of 1024.
    C(ulimit -l) prints KiB, so O(limit=256M) makes C(ulimit -l) print C(262144) in a guest
    (RV(limit.soft_ulimit_kib)).
  - Where systemd cannot raise a hard limit (it lacks C(CAP_SYS_RESOURCE) in the initial user namespace, as in an
    unprivileged container), it silently lowers a higher C(LimitMEMLOCK=), V(infinity) included, to the hard limit
    it runs with. The module then warns, returns that hard limit in RV(ceiling), and RV(restart_required) compares
    with the lowered limit, so it does not ask for a restart that cannot help. On a normal host V(infinity) gives
    infinity.
  - When C(/run/systemd/system) does not exist, systemd is not running; the module then writes the file,
    skips C(systemctl daemon-reload), and returns V(null) for the running process.
options:
  unit:
    description:
      - The service whose limit to set.
      - V(auto) finds the LXD daemon's unit among C(lxd.service) (Debian and Ubuntu packages),
        C(snap.lxd.daemon.service) (the snap) and C(incus.service) (Incus), by looking for their unit files in
        systemd's unit paths. It fails when it finds more than one of them; masked units do not count.
      - Where none of these is installed, V(auto) finds the unit that starts liblxc's containers one by one,
        C(pve-container@.service) (Proxmox VE, what C(pct start) starts) or else C(lxc@.service) (plain LXC on Debian).
        The drop-in on the template applies to every container's instance of it. It fails when none is found.
      - Any other value names a service, for example V(vault.service) for Vault in a guest.
        A name without a unit type suffix gets C(.service), so V(vault) means C(vault.service) and
        V(snap.vault.vaultd) means C(snap.vault.vaultd.service) (C(vaultd) is no unit type).
        Other unit types, and names with C(/) or characters systemd refuses, fail.
      - A named unit need not be installed yet; the module then warns that the drop-in waits for it.
    type: str
    default: auto
  limit:
    description:
      - The memlock limit, in systemd's syntax for C(LimitMEMLOCK=), read as systemd reads it.
      - A number of bytes with an optional suffix V(K), V(M), V(G), V(T), V(P) or V(E) (powers of 1024, upper case;
        fractions such as V(1.5G) and sums such as V(1G 512M) too), V(infinity) for no limit (V(unlimited), as LXD
        writes it, is accepted too), or V(SOFT:HARD) made of two such values with nothing around the C(:), the soft
        one not above the hard one. White space around the whole value does not count.
      - The file holds the shortest exact spelling (V(262144) is written V(256K), V(unlimited) V(infinity)).
      - Required when O(state=present), unless O(no_swap=true).
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
      - Also give the service C(CAP_IPC_LOCK), so that it may lock more than its C(RLIMIT_MEMLOCK), or lock at
        all where that limit is 0; within a non-zero limit any process may lock memory without it. The drop-in
        then holds C(AmbientCapabilities=CAP_IPC_LOCK), which systemd adds to the unit's other ambient
        capabilities, so a service running as a non-root user (Vault's C(vault.service)) holds it too.
      - C(CapabilityBoundingSet=CAP_IPC_LOCK) goes in too, but only where the unit's files (read as systemd merges
        them, C(~) lists and empty resets included) restrict the bounding set and leave C(CAP_IPC_LOCK) out; there
        systemd adds it. Where nothing restricts the set, such a line would replace every capability with
        C(CAP_IPC_LOCK) alone, so it is left out and the set is never narrowed (RV(capability_bounding_set)).
      - Warns when a later file takes C(CAP_IPC_LOCK) away again.
      - Not needed for the LXD daemon, which runs as root. In an unprivileged LXD guest the capability does not
        lift C(RLIMIT_MEMLOCK); the limit itself must come from LXD.
    type: bool
    default: false
  no_swap:
    description:
      - Also write C(MemorySwapMax=0), so that none of the service's memory goes to swap. Meant for a Vault that
        does not lock its memory; needs the unified cgroup hierarchy (cgroup v2) to be enforced.
      - With V(true), O(limit) may be left out for a drop-in that holds only this setting.
    type: bool
    default: false
  fail_when_overridden:
    description:
      - Fail, before writing anything, when another file decides the limit instead of this drop-in (RV(overridden_by))
        - a later-sorting drop-in that sets C(LimitMEMLOCK=), or one of the same O(name) in a higher-priority directory.
        The message names that file and the ways out (a later-sorting O(name), or removing or editing that file).
      - With V(false) the module warns and writes the drop-in anyway.
    type: bool
    default: false
  backup:
    description:
      - Keep what a drop-in of that O(name) held before the module first replaces it, beside it in
        RV(backup_path) (a name systemd does not read); with O(state=absent), put that text back instead of
        removing the drop-in, and remove the backup. A later write keeps the first backup.
      - So an undo leaves an administrator's file of the same name as it was.
    type: bool
    default: false
    version_added: 0.2.0
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
- name: Let LXD guests lock memory without limit
  vault_mlock.lxd.memlock_dropin:
    limit: infinity
  register: lxd_memlock

# memlock_daemon gives the running daemon the new limit in the unit's own way that keeps every instance
# up; restarting the snap's daemon with systemctl would stop them all.
- name: Give the running LXD daemon that limit, no guest stopped
  vault_mlock.lxd.memlock_daemon:
    unit: "{{ lxd_memlock.unit }}"
    limit: infinity

- name: No memlock limit for the snap's LXD daemon
  vault_mlock.lxd.memlock_dropin:
    unit: snap.lxd.daemon.service
    limit: infinity

- name: No memlock limit, in a drop-in that sorts after the packaged ones
  vault_mlock.lxd.memlock_dropin:
    limit: infinity
    name: 99-memlock.conf

- name: Let Vault inside a guest lock memory without limit, as its own non-root user
  vault_mlock.lxd.memlock_dropin:
    unit: vault
    limit: infinity
    ipc_lock: true

- name: Keep a Vault that does not lock its memory out of swap
  vault_mlock.lxd.memlock_dropin:
    unit: vault
    name: 00-no-swap.conf
    no_swap: true

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
backup_path:
  description:
    - With O(backup=true), where what the drop-in held before its first replacement is kept while the module's
      text is in place; V(null) without O(backup) or when no backup is there or written.
  returned: success
  type: str
  sample: /etc/systemd/system/lxd.service.d/00-memlock.conf.vault_mlock-backup
unit:
  description: The service the drop-in belongs to, as found by O(unit=auto) or named, with its C(.service) suffix.
  returned: success
  type: str
  sample: lxd.service
unit_file:
  description: The unit file systemd loads for RV(unit); V(null) when no unit path holds one.
  returned: success
  type: str
  sample: /lib/systemd/system/lxd.service
limit:
  description:
    - The limit the drop-in sets; V(null) when O(state=absent) or when it sets none (O(no_swap) alone).
    - Every limit the module returns has this shape. C(soft_bytes) and C(hard_bytes) are bytes, V(null) for no
      limit; C(soft_ulimit_kib) and C(hard_ulimit_kib) are what C(ulimit -l) and C(ulimit -H -l) print (KiB),
      V(null) where they print C(unlimited); C(systemd_value) is the limit as C(LimitMEMLOCK=) writes it.
  returned: success
  type: dict
  contains:
    soft_bytes:
      description: Soft limit in bytes, or V(null) for no limit.
      type: int
    hard_bytes:
      description: Hard limit in bytes, or V(null) for no limit.
      type: int
    soft_ulimit_kib:
      description: KiB printed by C(ulimit -l), or V(null) for C(unlimited).
      type: int
    hard_ulimit_kib:
      description: KiB printed by C(ulimit -H -l), or V(null) for C(unlimited).
      type: int
    systemd_value:
      description: The limit in systemd's shortest exact spelling.
      type: str
  sample: {soft_bytes: 268435456, hard_bytes: 268435456, soft_ulimit_kib: 262144, hard_ulimit_kib: 262144,
           systemd_value: 256M}
effective_limit:
  description:
    - The C(LimitMEMLOCK=) in force for the unit once the drop-in is written (or removed), from all the files
      systemd reads for it, in the shape of RV(limit).
    - V(null) when no file sets it, so systemd's C(DefaultLimitMEMLOCK=) (RV(default_limit)) applies.
  returned: success
  type: dict
  sample: {soft_bytes: 268435456, hard_bytes: 268435456, soft_ulimit_kib: 262144, hard_ulimit_kib: 262144,
           systemd_value: 256M}
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
      description: Whether systemd accepts the value; it ignores the line otherwise, and the one before stays.
      type: bool
  sample: [{path: /etc/systemd/system/lxd.service.d/00-memlock.conf, value: 256M, valid: true}]
default_limit:
  description:
    - systemd's C(DefaultLimitMEMLOCK=), what a unit gets when no file sets C(LimitMEMLOCK=), in the shape of
      RV(limit); V(null) when systemd does not run or cannot be asked.
  returned: success
  type: dict
  sample: {soft_bytes: 8388608, hard_bytes: 8388608, soft_ulimit_kib: 8192, hard_ulimit_kib: 8192,
           systemd_value: 8M}
ceiling:
  description: The highest memlock limit systemd here can give a service, and why.
  returned: success
  type: dict
  contains:
    hard_bytes:
      description:
        - systemd's own hard limit where it cannot raise limits (it lacks C(CAP_SYS_RESOURCE) in the initial user
          namespace, as in an unprivileged container); it lowers a higher C(LimitMEMLOCK=) to this, silently.
        - V(null) where systemd can give any limit, or does not run.
      type: int
    reason:
      description: The sentence that says why.
      type: str
  sample:
    hard_bytes: 8388608
    reason: >-
      systemd (PID 1) runs in a user namespace (a container), where it cannot raise RLIMIT_MEMLOCK past its own
      hard limit of 8M (8388608 bytes)
start_limit:
  description:
    - What a start of the unit gives its main process now, in the shape of RV(limit) - RV(effective_limit) (or
      RV(default_limit)), lowered to RV(ceiling).
    - V(null) when no file sets the limit and systemd cannot be asked for its default.
  returned: success
  type: dict
  sample: {soft_bytes: 8388608, hard_bytes: 8388608, soft_ulimit_kib: 8192, hard_ulimit_kib: 8192,
           systemd_value: 8M}
main_pid:
  description: The unit's running main process; V(null) when it does not run or systemd cannot be asked.
  returned: success
  type: int
  sample: 1234
running_limit:
  description:
    - The memlock limit of the running main process, from C(/proc/PID/limits), in the shape of RV(limit).
    - V(null) when the unit does not run or systemd does not run.
  returned: success
  type: dict
  sample: {soft_bytes: 8388608, hard_bytes: 8388608, soft_ulimit_kib: 8192, hard_ulimit_kib: 8192,
           systemd_value: 8M}
restart_required:
  description:
    - Whether the running main process's limit (RV(running_limit)) differs from what a start gives it now
      (RV(start_limit)), so the unit must be restarted for its limit to apply (and LXD guests restarted after the
      daemon). With O(state=absent) too, since the unit then gets another limit.
    - V(false) when the unit does not run. Never V(true) for a difference a restart cannot remove (systemd's
      ceiling).
  returned: success
  type: bool
  sample: true
capability_bounding_set:
  description:
    - The capabilities the unit's processes keep in their bounding set once the drop-in is in place, as
      C(systemctl show -p CapabilityBoundingSet) lists them (every capability where nothing restricts the set).
  returned: success
  type: list
  elements: str
  sample: [cap_net_bind_service, cap_ipc_lock]
ambient_capabilities:
  description: The unit's ambient capabilities once the drop-in is in place.
  returned: success
  type: list
  elements: str
  sample: [cap_ipc_lock]
daemon_reloaded:
  description: Whether C(systemctl daemon-reload) ran.
  returned: success
  type: bool
  sample: true
"""

import traceback
from dataclasses import asdict

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vault_mlock.lxd.plugins.module_utils import _systemd
from ansible_collections.vault_mlock.lxd.plugins.module_utils._dropins import (
    DEFAULT_DROPIN_NAME,
    DropinContent,
    apply_dropin,
    overridden_failure,
    plan_dropin,
    validate_dropin_name,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._service_limit import (
    decide_restart,
    read_service_state,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import SizeError, memlock_report, parse_limit


def _report(limit):
    report = memlock_report(limit)
    return None if report is None else asdict(report)


def _write(module, plan, root, systemctl):
    """Write or remove the drop-in, then reload systemd; returns whether it reloaded."""
    try:
        apply_dropin(plan, root)
    except OSError as exc:
        verb = "Writing" if plan.after is not None else "Removing"
        module.fail_json(msg=f"{verb} {plan.path} failed: {exc}", exception=traceback.format_exc())
    if not module.params["daemon_reload"] or not _systemd.systemd_running(root):
        return False
    if systemctl is None:
        module.warn(f"systemd runs but systemctl was not found; run 'systemctl daemon-reload' for {plan.path}")
        return False
    try:
        _systemd.daemon_reload(module.run_command, systemctl)
    except _systemd.SystemdError as exc:
        module.fail_json(msg=f"{plan.path} was written, but {exc}", path=plan.path, changed=True)
    return True


def _result(plan, state, decision, reloaded):
    return dict(
        changed=plan.changed,
        path=plan.path,
        backup_path=plan.backup_path if plan.writes_backup or (plan.backup is not None and not plan.restores_backup)
        else None,
        unit=plan.unit,
        unit_file=plan.unit_file,
        limit=_report(plan.content.limit if plan.content else None),
        effective_limit=_report(plan.effective.limit),
        limit_source=plan.effective.source,
        overridden_by=plan.overridden_by,
        limit_settings=[
            dict(path=setting.path, value=setting.value, valid=setting.limit is not None)
            for setting in plan.effective.settings
        ],
        default_limit=_report(state.default),
        ceiling=dict(hard_bytes=state.ceiling.hard_bytes, reason=state.ceiling.reason),
        start_limit=_report(decision.start_limit),
        main_pid=state.main_pid,
        running_limit=_report(state.running),
        restart_required=decision.restart_required,
        capability_bounding_set=plan.bounding.names,
        ambient_capabilities=plan.ambient.names,
        daemon_reloaded=reloaded,
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            unit=dict(type="str", default="auto"),
            limit=dict(type="str"),
            name=dict(type="str", default=DEFAULT_DROPIN_NAME),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            daemon_reload=dict(type="bool", default=True),
            ipc_lock=dict(type="bool", default=False),
            no_swap=dict(type="bool", default=False),
            fail_when_overridden=dict(type="bool", default=False),
            backup=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    root = _systemd.SYSTEM_ROOT
    try:
        name = validate_dropin_name(params["name"])
        # Checked with state=absent too: a typo should fail there as well.
        limit = parse_limit(params["limit"], "limit") if params["limit"] is not None else None
        unit = _systemd.resolve_unit(params["unit"], root)
        content = DropinContent(limit, params["ipc_lock"], params["no_swap"])
        plan = plan_dropin(unit, params["state"], content, name, root, params["backup"])
    except (SizeError, _systemd.SystemdError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"Reading the unit files failed: {exc}", exception=traceback.format_exc())

    if params["fail_when_overridden"] and overridden_failure(plan):
        module.fail_json(msg=overridden_failure(plan), path=plan.path, overridden_by=plan.overridden_by)
    systemctl = module.get_bin_path("systemctl")
    reloaded = _write(module, plan, root, systemctl) if plan.changed and not module.check_mode else False
    state = read_service_state(unit, systemctl, module.run_command, root)
    decision = decide_restart(unit, plan.effective.limit, state)
    for warning in plan.warnings + decision.warnings:
        module.warn(warning)
    result = _result(plan, state, decision, reloaded)
    if module._diff:
        result["diff"] = plan.diff()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
