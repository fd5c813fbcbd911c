#!/usr/bin/python
# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: memlock_daemon
short_description: Apply the LXD or Incus daemon's memlock limit without stopping a guest
version_added: 0.2.0
description:
  - Gives the running LXD (or Incus) daemon a memlock limit (C(RLIMIT_MEMLOCK)), which every guest started
    afterwards inherits, without stopping a running guest.
  - First choice, on every flavour, is to change the running daemon's limit in place with prlimit(2), so the
    daemon keeps its PID and does not restart. Lowering a limit, or raising the soft limit up to the hard one,
    needs no privilege; raising the hard limit needs C(CAP_SYS_RESOURCE) in the initial user namespace, which
    root on a host has and root in a container has not. The module reads its own capabilities to foresee this, and
    falls back to the next way when the kernel still refuses (C(EPERM)).
  - Otherwise a new daemon process must start under the unit's C(LimitMEMLOCK=). How, is judged from the unit's
    properties (C(systemctl show)), not from its name. A unit without C(ExecStop=) whose C(KillMode=) is C(process)
    (Debian's and Ubuntu's C(lxd.service), C(incus.service)) is restarted, which stops the daemon alone. A unit whose
    C(ExecReload=) is the LXD snap's reload (C(snap.lxd.daemon.service)) is reloaded, which starts only the daemon
    again. Before either, C(systemctl daemon-reload) runs when systemd has not loaded changed unit files yet.
  - A restart of a unit that has an C(ExecStop=), such as C(snap.lxd.daemon.service), may stop every instance
    on the host (the snap's C(daemon.stop) shuts them all down), so it happens only with
    O(allow_stopping_instances=true). Without it the module changes nothing and says why (RV(action=deferred)).
  - Guests already running keep the limit they started with, whatever the way; restart them to give them the new
    one. Guests started afterwards get RV(daemon_limit), read back from the daemon's C(/proc/PID/limits), unless
    their C(limits.kernel.memlock) is set.
  - Write the limit to the unit first (M(vault_mlock.lxd.memlock_dropin)), so the daemon keeps it across restarts;
    the module falls back to a restart or reload only when the unit, as systemd has loaded it, gives the limit.
author:
  - vault_mlock.lxd maintainers (@vault-mlock)
extends_documentation_fragment:
  - vault_mlock.lxd._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the unit and the daemon and returns the action it would take; changes no limit, and runs neither
        C(daemon-reload), C(restart) nor C(reload).
  diff_mode:
    support: full
    details:
      - Shows the daemon's limit before and after (in check mode, the limit it would get).
  idempotent:
    support: full
    description: When the daemon already runs with the limit, the module reports no change.
  platform:
    platforms: posix
notes:
  - systemd sizes are bytes, and its suffixes V(K), V(M), V(G), V(T), V(P), V(E) are powers of 1024. C(ulimit -l)
    prints KiB.
  - A systemd that itself lacks C(CAP_SYS_RESOURCE) (inside a container) lowers a C(LimitMEMLOCK=) above its own hard
    limit to that limit; the module aims at the lowered limit (RV(target)) and says so, instead of restarting
    the daemon on every run for a limit it can never get.
  - Requires systemd as the running init, and a Linux kernel (prlimit(2)).
  - Restarting a snap's daemon with O(allow_stopping_instances=true) restarts every instance of the host at once;
    each Vault in them comes back sealed.
options:
  unit:
    description:
      - The daemon's service.
      - V(auto) finds the one of C(lxd.service) (Debian and Ubuntu packages), C(snap.lxd.daemon.service) (the snap)
        and C(incus.service) (Incus) whose unit file is installed, as M(vault_mlock.lxd.memlock_dropin) does.
      - Any other value names a service; a name without a suffix gets C(.service).
    type: str
    default: auto
  limit:
    description:
      - The memlock limit the daemon should run with, in systemd's syntax for C(LimitMEMLOCK=).
      - A number of bytes with an optional suffix V(K), V(M), V(G), V(T), V(P) or V(E) (powers of 1024),
        V(infinity) (or V(unlimited)) for no limit, or V(SOFT:HARD) made of two such values.
      - When omitted, the C(LimitMEMLOCK=) of the unit as systemd has loaded it (the drop-in's, once written).
    type: str
  allow_stopping_instances:
    description:
      - Allow a restart of the unit that may stop every running instance, where nothing else can give the daemon the
        limit (a unit with C(ExecStop=) or C(KillMode=control-group), and no reload that starts the daemon again).
      - The snap's C(systemctl restart snap.lxd.daemon) runs its C(daemon.stop), which shuts every instance of the
        host down; a Vault in each comes back sealed. Prefer a maintenance window.
      - Never needed for C(lxd.service), C(incus.service) or the snap's reload.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait, after a restart or reload, for the unit to run a new daemon process and for that daemon to
        say it is ready on its socket (what C(lxd waitready) and C(incus admin waitready) ask), that is, once it has
        loaded its instances.
    type: int
    default: 120
seealso:
  - module: vault_mlock.lxd.memlock_dropin
    description: Writes the C(LimitMEMLOCK=) drop-in this module then applies to the running daemon.
  - name: prlimit(2)
    description: Get and set the resource limits of another process.
    link: https://man7.org/linux/man-pages/man2/prlimit.2.html
  - name: systemd.kill(5), KillMode=
    description: Which processes of a unit a stop kills.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.kill.html
"""

EXAMPLES = r"""
---
- name: Write the LXD daemon's drop-in
  vault_mlock.lxd.memlock_dropin:
    limit: infinity
  register: lxd_dropin

- name: Give the running daemon the drop-in's limit, keeping every guest up
  vault_mlock.lxd.memlock_daemon:
    unit: "{{ lxd_dropin.unit }}"
    limit: infinity
  register: lxd_daemon

- name: Say what was done
  ansible.builtin.debug:
    msg: "{{ lxd_daemon.action }}: {{ lxd_daemon.reason }}"

- name: Apply whatever LimitMEMLOCK= incus.service has loaded
  vault_mlock.lxd.memlock_daemon:
    unit: incus.service

- name: On a snap host without CAP_SYS_RESOURCE, accept a restart that stops every instance
  vault_mlock.lxd.memlock_daemon:
    unit: snap.lxd.daemon.service
    limit: 2G
    allow_stopping_instances: true
"""

RETURN = r"""
---
unit:
  description: The daemon's unit, as found by O(unit=auto) or named.
  returned: success
  type: str
  sample: snap.lxd.daemon.service
action:
  description:
    - What the module did, or in check mode would do.
    - V(unchanged), the daemon already runs with RV(target).
    - V(raised_live), the running daemon's limit was changed in place with prlimit(2) (raised, or lowered);
      no restart.
    - V(restarted), C(systemctl restart); running instances stay up unless RV(instances_kept) is V(false).
    - V(reloaded), C(systemctl reload) of the LXD snap, which starts the daemon again and keeps every instance.
    - V(deferred), nothing was done; RV(reason) says why and what to do.
  returned: success
  type: str
  choices: [unchanged, raised_live, reloaded, restarted, deferred]
  sample: raised_live
reason:
  description: One or more sentences on why RV(action) was chosen, naming the unit's properties it was judged by.
  returned: success
  type: str
  sample: >-
    lxd.service's daemon (PID 231) goes from 512K:8M to 8M in place with prlimit(2), since its hard limit does
    not grow; no restart, running instances keep the limit they started with
instances_kept:
  description: Whether running instances stay up; V(false) only for a restart allowed by O(allow_stopping_instances).
  returned: success
  type: bool
  sample: true
limit:
  description: The limit asked for (O(limit), or the unit's C(LimitMEMLOCK=) when omitted).
  returned: success
  type: dict
  contains: &memlock
    soft_bytes:
      description: Soft limit in bytes; V(null) for no limit.
      type: int
    hard_bytes:
      description: Hard limit in bytes; V(null) for no limit.
      type: int
    soft_ulimit_kib:
      description: What C(ulimit -l) prints, in KiB; V(null) for C(unlimited).
      type: int
    hard_ulimit_kib:
      description: What C(ulimit -H -l) prints, in KiB; V(null) for C(unlimited).
      type: int
    systemd_value:
      description: The limit in systemd's spelling.
      type: str
  sample: {soft_bytes: 8388608, hard_bytes: 8388608, soft_ulimit_kib: 8192, hard_ulimit_kib: 8192, systemd_value: 8M}
target:
  description:
    - The limit the daemon should end with, RV(limit) lowered to the hard limit systemd itself runs with when it
      cannot give more (inside a container); the same shape as RV(limit).
  returned: success
  type: dict
  contains: *memlock
  sample: {soft_bytes: 8388608, hard_bytes: 8388608, soft_ulimit_kib: 8192, hard_ulimit_kib: 8192, systemd_value: 8M}
daemon_pid_before:
  description: The daemon process that starts guests, before; V(null) when it does not run.
  returned: success
  type: int
  sample: 231
daemon_pid:
  description:
    - The daemon process that starts guests, now; the same as RV(daemon_pid_before) unless the daemon was restarted
      or reloaded. For the snap this is the C(lxd) process, not the unit's MainPID (its C(daemon.start) script).
  returned: success
  type: int
  sample: 231
daemon_limit_before:
  description: The daemon's limit before, from C(/proc/PID/limits); V(null) when it does not run. Shape of RV(limit).
  returned: success
  type: dict
  contains: *memlock
  sample: {soft_bytes: 524288, hard_bytes: 8388608, soft_ulimit_kib: 512, hard_ulimit_kib: 8192, systemd_value: 512K:8M}
daemon_limit:
  description:
    - The daemon's limit now, read back from C(/proc/PID/limits) of RV(daemon_pid). Every guest started from now
      on inherits it (unless its C(limits.kernel.memlock) is set), and so does every C(lxc exec) shell in any guest.
    - In check mode, the limit it has now. V(null) when the daemon does not run. Shape of RV(limit).
  returned: success
  type: dict
  contains: *memlock
  sample: {soft_bytes: 8388608, hard_bytes: 8388608, soft_ulimit_kib: 8192, hard_ulimit_kib: 8192, systemd_value: 8M}
persistent:
  description:
    - Whether the unit, as systemd has loaded it, gives the daemon RV(target) on its next start too. When V(false)
      after V(raised_live), the daemon falls back to the unit's limit when it restarts; write the drop-in.
  returned: success
  type: bool
  sample: true
can_raise_hard:
  description: Whether this process has C(CAP_SYS_RESOURCE) in the initial user namespace, so it may raise hard limits.
  returned: success
  type: bool
  sample: false
hard_raise_refused:
  description: Whether the kernel refused the in-place change although RV(can_raise_hard) foresaw none (C(EPERM)).
  returned: success
  type: bool
  sample: false
daemon_reloaded:
  description: Whether C(systemctl daemon-reload) ran because systemd had not loaded changed unit files.
  returned: success
  type: bool
  sample: false
unit_properties:
  description: The unit's properties the decision was judged by, from C(systemctl show) (after any restart).
  returned: success
  type: dict
  contains:
    main_pid:
      description: The unit's main process (the snap's is its C(daemon.start) script); V(null) when not running.
      type: int
    active_state:
      description: C(ActiveState).
      type: str
    kill_mode:
      description: C(KillMode).
      type: str
    restart:
      description: C(Restart).
      type: str
    exec_stop:
      description: Each C(ExecStop=) command line.
      type: list
      elements: str
    exec_reload:
      description: Each C(ExecReload=) command line.
      type: list
      elements: str
    limit:
      description: The unit's C(LimitMEMLOCKSoft)/C(LimitMEMLOCK) as loaded, shape of RV(limit); V(null) if unknown.
      type: dict
      contains: *memlock
  sample:
    main_pid: 231
    active_state: active
    kill_mode: process
    restart: on-failure
    exec_stop: []
    exec_reload: []
    limit: {soft_bytes: 8388608, hard_bytes: 8388608, soft_ulimit_kib: 8192, hard_ulimit_kib: 8192, systemd_value: 8M}
"""

import dataclasses
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vault_mlock.lxd.plugins.module_utils import _daemon_apply, _daemon_decide, _systemd
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import SizeError, format_limit, memlock_report, parse_limit


def _report(limit):
    report = memlock_report(limit)
    return None if report is None else dataclasses.asdict(report)


def _diff_line(unit, pid, limit):
    spelled = "not running" if limit is None else format_limit(limit)
    return f"{unit} daemon (PID {pid or '-'}) LimitMEMLOCK: {spelled}\n"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            unit=dict(type="str", default="auto"),
            limit=dict(type="str"),
            allow_stopping_instances=dict(type="bool", default=False),
            timeout=dict(type="int", default=120),
        ),
        supports_check_mode=True,
    )
    params = module.params
    root = _systemd.SYSTEM_ROOT
    try:
        wanted = parse_limit(params["limit"], "limit") if params["limit"] is not None else None
        if params["timeout"] < 1:
            raise SizeError(f"timeout: {params['timeout']} is not a number of seconds above 0")
        if params["unit"] == "auto":
            unit = _systemd.detect_lxd_unit(root).name
        else:
            unit = _systemd.normalize_unit_name(params["unit"])
    except (SizeError, _systemd.SystemdError) as exc:
        module.fail_json(msg=str(exc))
    if not _systemd.systemd_running(root):
        module.fail_json(msg=f"systemd is not running here, so {unit} cannot be asked for its daemon; nothing was done")
    systemctl = module.get_bin_path("systemctl", required=True)

    host = _daemon_apply.DaemonHost(module.run_command, systemctl, _systemd.join_root(root, "/proc"))
    try:
        outcome = _daemon_apply.apply_limit(
            host, unit, wanted, params["allow_stopping_instances"], module.check_mode, params["timeout"]
        )
    except _daemon_apply.DaemonApplyError as exc:
        module.fail_json(msg=str(exc), unit=unit)
    except OSError as exc:
        module.fail_json(msg=f"Reading /proc for {unit} failed: {exc}", unit=unit, exception=traceback.format_exc())

    for warning in outcome.warnings:
        module.warn(warning)
    decision = outcome.decision
    properties = outcome.unit
    result = dict(
        changed=outcome.changed,
        unit=properties.name,
        action=decision.action,
        reason=decision.reason,
        instances_kept=decision.keeps_instances,
        limit=_report(outcome.wanted),
        target=_report(decision.target),
        daemon_pid_before=outcome.daemon_pid_before,
        daemon_pid=outcome.daemon_pid,
        daemon_limit_before=_report(outcome.limit_before),
        daemon_limit=_report(outcome.limit_after),
        persistent=outcome.persistent,
        can_raise_hard=outcome.can_raise_hard,
        hard_raise_refused=outcome.hard_raise_refused,
        daemon_reloaded=outcome.daemon_reloaded,
        unit_properties=dict(
            main_pid=properties.main_pid,
            active_state=properties.active_state,
            kill_mode=properties.kill_mode,
            restart=properties.restart,
            exec_stop=[" ".join(argv) for argv in properties.exec_stop],
            exec_reload=[" ".join(argv) for argv in properties.exec_reload],
            limit=_report(properties.limit),
        ),
    )
    if module._diff:
        after = decision.target if decision.action in _daemon_decide.CHANGING_ACTIONS else outcome.limit_after
        # In check mode a restart's or reload's new daemon has no PID yet.
        restarts = decision.action in (_daemon_decide.RESTARTED, _daemon_decide.RELOADED)
        after_pid = None if module.check_mode and restarts else outcome.daemon_pid
        result["diff"] = dict(
            before=_diff_line(properties.name, outcome.daemon_pid_before, outcome.limit_before),
            after=_diff_line(properties.name, after_pid, after),
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
