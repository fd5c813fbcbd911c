# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: memlock_facts
short_description: Tell, inside a guest, how much memory Vault may lock there
version_added: 0.1.0
description:
  - Runs on the machine it reports on (an LXD guest, or any Linux machine) and gives the same facts and verdict as
    M(vault_mlock.lxd.memlock_probe) gives from the LXD host, from the same code. It reads the memlock limit
    (C(RLIMIT_MEMLOCK)) of PID 1, of the Vault (or OpenBao) processes, or, where none runs, what the service of
    Vault's unit gets from systemd; whether the machine runs in a user namespace; and its swap.
  - PID 1's limit is not what services get. systemd raises its own soft limit at boot and gives each service its
    unit's C(LimitMEMLOCK=) (by default what PID 1 inherited, raised to 8 MiB), lowered to PID 1's hard limit where
    it may not raise it. A shell opened with C(lxc exec) has the LXD daemon's current limit instead, so C(ulimit -l)
    there can mislead.
  - Inside a guest it cannot see the LXD daemon, so it cannot tell what LXD gave the guest at its start or whether
    a restart would help; run M(vault_mlock.lxd.memlock_probe) on the LXD host for that.
  - A server that does not lock its memory (OpenBao's C(bao) always; Vault with C(VmLck) 0 whose configuration says
    C(disable_mlock = true), or C(-dev)) is judged on swap, as M(vault_mlock.lxd.memlock_probe) judges it, never on its
    memlock limit - from what can be seen here. C(memory.swap.max) is read up the process's cgroup chain as far as
    this machine's cgroup namespace shows it (in a guest, up to the guest's own cgroup, not the cgroups above it).
    The host's swap is read from C(/proc/swaps) and C(/proc/meminfo), unless LXCFS mounts its own files there (as in
    most LXD guests), they then show the guest's view, so whether the host has swap is unknown here and the verdict
    is V(unknown), unless a cgroup forbids swap. RV(swap.hidden) says so; M(vault_mlock.lxd.memlock_probe) on the
    LXD host sees both.
  - The result is also set as the fact C(vault_mlock_memlock).
author:
  - vault_mlock.lxd maintainers (@vault-mlock)
options: {}
notes:
  - Verdicts are V(ok), V(finite_limit), V(too_low), V(absent), V(unknown) and V(error), and for a server that does
    not lock its memory V(protected), V(not_enforced) and V(exposed), as M(vault_mlock.lxd.memlock_probe) gives them.
    V(restart_pending) and V(not_running) come only from there.
  - C(CAP_IPC_LOCK) in a process's effective set lifts the limit only outside a user namespace (a privileged
    guest or a plain host).
seealso:
  - module: vault_mlock.lxd.memlock_probe
  - module: vault_mlock.lxd.file_capability
extends_documentation_fragment:
  - vault_mlock.lxd._vault_options
  - vault_mlock.lxd._attributes
  - vault_mlock.lxd._attributes.info_module
"""

EXAMPLES = r"""
---
- name: Read the memlock facts of this guest
  vault_mlock.lxd.memlock_facts:
  register: memlock

- name: Stop when Vault cannot lock its memory, now or once it grows
  ansible.builtin.assert:
    that: memlock.verdict in ['ok', 'protected', 'absent']
    fail_msg: "{{ memlock.message }}"

- name: Judge Vault's unit against the most it may ever lock, while it does not run
  vault_mlock.lxd.memlock_facts:
    units: [vault.service]
    required: 2G

- name: Use the fact later on
  ansible.builtin.debug:
    msg: >-
      Vault's service may lock
      {{ ansible_facts.vault_mlock_memlock.service.memlock.soft_ulimit_kib | default('unlimited', true) }} KiB
"""

RETURN = r"""
in_user_namespace:
  description: Whether this machine runs in a user namespace (an unprivileged guest), from PID 1's C(uid_map).
  returned: success
  type: bool
pid1:
  description: PID 1.
  returned: success
  type: dict
  contains:
    host_pid:
      description: Always V(null) here (the PID on an LXD host is known only to M(vault_mlock.lxd.memlock_probe)).
      type: int
    memlock:
      description:
        - Its memlock limit now (systemd raised its soft limit at boot). C(soft_bytes) and C(hard_bytes) are
          bytes, V(null) for no limit.
        - C(soft_ulimit_kib) and C(hard_ulimit_kib) are what C(ulimit -l) and C(ulimit -Hl) print (KiB).
        - C(systemd_value) is the same limit as C(LimitMEMLOCK=) would write it.
      type: dict
      sample:
        soft_bytes: 8388608
        hard_bytes: 8388608
        soft_ulimit_kib: 8192
        hard_ulimit_kib: 8192
        systemd_value: 8M
    cap_sys_resource:
      description: Whether C(CAP_SYS_RESOURCE) is in its effective set.
      type: bool
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
      description: How much it has locked now; 0 means mlock is disabled, or failed and was shrugged off.
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
    unit:
      description: The systemd service it runs in, from its cgroup; empty when none shows.
      type: str
      sample: openbao.service
    disable_mlock:
      description: For a C(vault) with nothing locked, what its C(-config) files say about C(disable_mlock) (V(true)
        for C(-dev)); V(null) when unset, unreadable, or for any other process.
      type: bool
    disable_mlock_source:
      description: Where RV(processes[].disable_mlock) was read; empty when it was not.
      type: str
      sample: disable_mlock = true in /etc/vault.d/10-storage.hcl
    cgroup_swap:
      description:
        - For a process with nothing locked, its cgroups' swap limits as far as this machine shows them, in the same
          form as C(instances[].processes[].cgroup_swap) of M(vault_mlock.lxd.memlock_probe); V(null) for any other.
      type: dict
units:
  returned: success
  description:
    - Vault's units (O(units)) as this machine's systemd tells them; asked where no Vault process runs, and where
      one runs that does not lock its memory (then its own unit too, for its C(MemorySwapMax)); empty otherwise.
  type: list
  elements: dict
  contains:
    name:
      description: The unit's name.
      type: str
      sample: vault.service
    load_state:
      description: C(LoadState); units other than V(loaded) (V(not-found)) do not count.
      type: str
    active_state:
      description: C(ActiveState) (V(active), V(activating), V(failed), V(inactive)).
      type: str
    sub_state:
      description: C(SubState) (V(running), V(auto-restart), V(failed), V(dead)).
      type: str
    result:
      description: C(Result) of its last run (V(success), V(exit-code), V(signal), ...).
      type: str
    restarts:
      description: C(NRestarts).
      type: int
    exit_status:
      description: C(ExecMainStatus) of its last run.
      type: int
    asked:
      description: The limit the unit asks systemd for (its C(LimitMEMLOCKSoft)/C(LimitMEMLOCK), systemd's
        default included), before systemd lowers it.
      type: dict
    memlock:
      description: What its service gets, as systemd lowers RV(units[].asked) to what PID 1 allows.
      type: dict
    journal:
      description: The journal's last lines of its last run.
      type: list
      elements: str
    mlock_failure:
      description: The journal line that says locking memory failed (C(Failed to lock memory), C(mlockall));
        empty when none does.
      type: str
      sample: "Error initializing core: Failed to lock memory: cannot allocate memory"
    memory_swap_max:
      description: C(MemorySwapMax) as C(systemctl show) prints it (V(0), V(infinity), bytes); V(null) when unknown.
      type: str
      sample: "0"
service:
  returned: success
  description:
    - What Vault's service gets, the figure the verdict rests on; V(null) when nothing was judged.
  type: dict
  contains:
    name:
      description: The process (V(vault (PID 58\))) or the unit (V(vault.service)).
      type: str
    source:
      description: V(process) (its own C(/proc) limits) or V(unit) (what systemd gives its service).
      type: str
    memlock:
      description: That limit.
      type: dict
    locks_memory:
      description: V(false) when the process does not lock its memory, so that the verdict rests on swap.
      type: bool
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
    hidden:
      description: Why these figures are not the host's own (LXCFS mounts its files over C(/proc/swaps) or
        C(/proc/meminfo)); empty when they are.
      type: str
      sample: /proc/swaps is a fuse.lxcfs mount here (LXCFS's view of this guest), not the host's own
    devices:
      description:
        - Each swap area judged from C(/sys) for where its pages end up; empty when C(hidden) is set.
        - C(kind) is V(ram) (zram without a backing device), V(encrypted) (dm-crypt) or V(disk) (a partition,
          disk, loop device or file, or a zram or device-mapper device over one); C(detail) says what it is,
          C(caveat) what could still let its pages be read (a dm-crypt key kept on a disk).
      type: list
      elements: dict
      sample: [{name: /dev/zram0, size_bytes: 67104768, kind: ram, detail: "zram0, compressed RAM with no backing
        device", caveat: ""}]
    zswap:
      description: Whether zswap is on; it writes pages back to the same swap areas, so it changes no verdict.
        V(null) when the kernel has none.
      type: bool
      sample: false
required:
  description: O(required) as judged; V(null) when not given. C(size) is bytes, V(null) for V(infinity).
  returned: success
  type: dict
  sample: {size: 2147483648}
verdict:
  description: One of V(ok), V(finite_limit), V(too_low), V(absent), V(unknown), V(error), V(protected),
    V(not_enforced), V(exposed).
  returned: success
  type: str
  sample: finite_limit
message:
  description: One sentence saying what was found and what to do.
  returned: success
  type: str
  sample: >-
    this machine: vault (PID 58) may lock 8 MiB (ulimit -l 8192), a finite limit: vault locks every later mapping
    too (mlockall with MCL_FUTURE) and dies when it grows past 8 MiB; give its service LimitMEMLOCK=infinity (...)
    or pass required with the most it may ever map
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

from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_units import parse_units, units_command
from ansible_collections.vault_mlock.lxd.plugins.module_utils._memlock_facts import (
    FactsError,
    ProcDir,
    asks_units,
    gather_machine,
    units_to_ask,
    units_with_configs,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._probe_report import judge_machine
from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_options import (
    VAULT_ARGSPEC,
    OptionError,
    vault_options,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._verdicts import MACHINE


def main():
    module = AnsibleModule(argument_spec=dict(VAULT_ARGSPEC), supports_check_mode=True)
    try:
        options = vault_options(module.params)
        facts = gather_machine(ProcDir("/proc"), options.process_names, with_swap=True)
    except (OptionError, FactsError) as exc:
        module.fail_json(msg=str(exc))
    units = None
    asked = units_to_ask(facts, options.units)
    if asks_units(facts) and asked:
        # Where no Vault process runs, its unit tells what its service gets, and why it died; where one runs
        # that locks nothing, its unit's MemorySwapMax counts.
        _rc, out, err = module.run_command(units_command(asked, options.process_names))
        try:
            units = units_with_configs(parse_units(out, asked), "/")
        except ValueError as exc:
            if not facts.processes:
                module.fail_json(msg=f"units: asking systemd about {', '.join(asked)} failed: {exc} {err}".strip())
    units, verdict = judge_machine("this machine", MACHINE, facts, units, options.process_names, options.units,
                                   options.required, units_not_asked="no units were named (units: [])")
    result = dataclasses.asdict(facts)
    result.update(units=dataclasses.asdict(units)["units"] if units else [],
                  service=dataclasses.asdict(verdict.service) if verdict.service else None,
                  required=dataclasses.asdict(options.required) if options.required else None,
                  verdict=verdict.verdict, message=verdict.message)
    module.exit_json(changed=False, ansible_facts=dict(vault_mlock_memlock=result), **result)


if __name__ == "__main__":
    main()
