# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: memlock_facts
short_description: Tell, inside a guest, how much memory Vault may lock there
version_added: 0.1.0
description:
  - Runs on the machine it reports on (an LXD guest, or any Linux machine) and reads from C(/proc) the
    memlock limit (C(RLIMIT_MEMLOCK)) of PID 1 and of the Vault (or OpenBao) processes, whether the machine
    runs in a user namespace, its swap, and gives the same verdict as M(vault_mlock.lxd.memlock_probe)
    gives from the LXD host.
  - PID 1's limit is what every service systemd starts inherits (clamped by the unit's own C(LimitMEMLOCK=)).
    A shell opened with C(lxc exec) has the LXD daemon's current limit instead, so C(ulimit -l) there can
    mislead; this module reads PID 1's.
  - Inside a guest it cannot see the LXD daemon, so it cannot tell whether a restart of the guest would help;
    run M(vault_mlock.lxd.memlock_probe) on the LXD host for that.
  - The result is also set as the fact C(vault_mlock_memlock).
author:
  - vault_mlock.lxd maintainers (@vault-mlock)
options:
  process:
    description:
      - Process names (as in C(/proc/PID/comm), at most 15 characters are compared) to inspect.
      - The default finds HashiCorp Vault and OpenBao.
    type: list
    elements: str
    default: [vault, bao]
  required:
    description:
      - How much memory must be lockable, as systemd writes sizes (C(512M), C(2G), V(infinity));
        suffixes are powers of 1024.
      - A running process needs at least its own C(VmSize) locked, since C(mlockall) with C(MCL_CURRENT|MCL_FUTURE)
        locks every mapping; the larger of both is checked.
      - Where no process runs, PID 1's limit is judged against O(required); without it the verdict is V(unknown).
    type: str
notes:
  - Verdicts are V(ok), V(too_low), V(unknown) (no matching process runs and no O(required) was given) and
    V(error). V(restart_pending) and V(not_running) come only from M(vault_mlock.lxd.memlock_probe).
  - C(CAP_IPC_LOCK) in a process's effective set lifts the limit only outside a user namespace (a privileged
    guest or a plain host).
seealso:
  - module: vault_mlock.lxd.memlock_probe
  - module: vault_mlock.lxd.file_capability
extends_documentation_fragment:
  - vault_mlock.lxd._attributes
  - vault_mlock.lxd._attributes.info_module
  - vault_mlock.lxd._attributes.actiongroup_memlock
"""

EXAMPLES = r"""
---
- name: Read the memlock facts of this guest
  vault_mlock.lxd.memlock_facts:
  register: memlock

- name: Stop when Vault could not lock its memory
  ansible.builtin.assert:
    that: memlock.verdict == 'ok'
    fail_msg: "{{ memlock.message }}"

- name: Before Vault is installed, check PID 1's limit against what it will need
  vault_mlock.lxd.memlock_facts:
    required: 2G

- name: Use the fact later on
  ansible.builtin.debug:
    msg: >-
      ulimit -l is
      {{ ansible_facts.vault_mlock_memlock.pid1.memlock.soft_ulimit_kib | default('unlimited', true) }}
"""

RETURN = r"""
in_user_namespace:
  description: Whether this machine runs in a user namespace (an unprivileged guest), from PID 1's C(uid_map).
  returned: success
  type: bool
pid1:
  description: PID 1, whose limit every service systemd starts inherits.
  returned: success
  type: dict
  contains:
    host_pid:
      description: Always V(null) here (the PID on an LXD host is known only to M(vault_mlock.lxd.memlock_probe)).
      type: int
    memlock:
      description:
        - Its memlock limit. C(soft_bytes) and C(hard_bytes) are bytes, V(null) for no limit.
        - C(soft_ulimit_kib) and C(hard_ulimit_kib) are what C(ulimit -l) and C(ulimit -Hl) print (KiB).
        - C(systemd_value) is the same limit as C(LimitMEMLOCK=) would write it.
      type: dict
      sample:
        soft_bytes: 8388608
        hard_bytes: 8388608
        soft_ulimit_kib: 8192
        hard_ulimit_kib: 8192
        systemd_value: 8M
processes:
  description: The processes named like one of O(process).
  returned: success
  type: list
  elements: dict
  contains:
    pid:
      description: Its PID.
      type: int
    host_pid:
      description: Always V(null) here.
      type: int
    name:
      description: Its name (C(comm)).
      type: str
    memlock:
      description: Its own memlock limit, in the same form as RV(pid1.memlock).
      type: dict
    vmsize_bytes:
      description: Its virtual size, all of which C(mlockall) with C(MCL_CURRENT|MCL_FUTURE) locks.
      type: int
    vmlck_bytes:
      description: How much it has locked now; 0 often means mlock is disabled in its configuration.
      type: int
    cap_ipc_lock_effective:
      description: Whether C(CAP_IPC_LOCK) is in its effective set.
      type: bool
    cap_ipc_lock_bounding:
      description: Whether C(CAP_IPC_LOCK) is in its bounding set.
      type: bool
    binary:
      description: The path of its executable.
      type: str
      sample: /usr/bin/vault
    binary_capabilities:
      description: The executable's file capabilities as C(getcap) prints them; empty when it has none.
      type: str
      sample: cap_ipc_lock=ep
swap:
  description: Swap of this machine (inside a container, the host's unless LXCFS virtualises it).
  returned: success
  type: dict
  contains:
    total_bytes:
      description: C(SwapTotal) of C(/proc/meminfo) in bytes.
      type: int
      sample: 0
    areas:
      description: The active swap areas of C(/proc/swaps), sizes in bytes.
      type: list
      elements: dict
      sample: [{name: /dev/vda2, type: partition, size_bytes: 2147479552, used_bytes: 0, priority: -2}]
required_bytes:
  description: O(required) in bytes; V(null) when not given or V(infinity).
  returned: success
  type: int
verdict:
  description: One of V(ok), V(too_low), V(unknown), V(error).
  returned: success
  type: str
  sample: too_low
message:
  description: One sentence saying what was found and what to do.
  returned: success
  type: str
  sample: >-
    this machine: PID 1 may lock 64 KiB (ulimit -l 64) but vault needs its whole VmSize 1.4 GiB locked; raise
    the memlock limit PID 1 inherits to at least 1.4 GiB (...) and restart the machine
ansible_facts:
  description: The same keys, under C(vault_mlock_memlock).
  returned: success
  type: dict
  contains:
    vault_mlock_memlock:
      description: Everything above but RV(ansible_facts).
      type: dict
"""

import dataclasses

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import (
    FactsError,
    ProcDir,
    gather_machine,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import SizeError, parse_size
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import MACHINE, VerdictFacts, judge


def main():
    module = AnsibleModule(
        argument_spec=dict(
            process=dict(type="list", elements="str", default=["vault", "bao"]),
            required=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    names = [name for name in module.params["process"] if name]
    if not names:
        module.fail_json(msg="process: give at least one process name, such as vault or bao")
    required_given = module.params["required"] is not None
    try:
        required_bytes = parse_size(module.params["required"], "required") if required_given else None
    except SizeError as exc:
        module.fail_json(msg=str(exc))
    try:
        facts = gather_machine(ProcDir("/proc"), names, with_swap=True)
    except FactsError as exc:
        module.fail_json(msg=str(exc))

    verdict, message = judge(VerdictFacts(
        subject="this machine",
        pid1_memlock=facts.pid1.memlock.limit,
        processes=tuple(facts.processes),
        process_names=tuple(names),
        required_given=required_given,
        required_bytes=required_bytes,
        in_user_namespace=facts.in_user_namespace,
        kind=MACHINE,
    ))
    result = dataclasses.asdict(facts)
    result.update(required_bytes=required_bytes, verdict=verdict, message=message)
    module.exit_json(changed=False, ansible_facts=dict(vault_mlock_memlock=result), **result)


if __name__ == "__main__":
    main()
