# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: memlock_probe
short_description: Tell, from the LXD host, how much memory Vault may lock in every guest
version_added: 0.1.0
description:
  - Runs on an LXD host and reports, for every instance of a project, three memlock limits (C(RLIMIT_MEMLOCK))
    as separate facts, and whether Vault (or OpenBao) can lock its memory with C(mlockall).
  - RV(instances[].lxd_at_start) is what LXD gave the guest when it started, from the instance's
    C(limits.kernel.memlock) or else from the LXD daemon as it ran then. The guest's C([lxc monitor]) process keeps
    the daemon's limit of that moment, and the C(lxc.conf) LXD wrote then holds C(limits.kernel.memlock).
    RV(instances[].lxd_now) is what LXD would give it now. A running guest whose two differ gets
    RV(instances[].restart_required), with the reason.
  - RV(instances[].pid1) is what the guest's PID 1 has. systemd raises its own soft limit at boot, so this is
    neither what LXD gave nor what a service gets.
  - RV(instances[].service) is what Vault's service gets, and the verdict rests on it. Where a Vault process runs,
    this is the process's own limit. Otherwise the guest's systemd is asked about O(units). A unit gets its
    C(LimitMEMLOCK=), or systemd's default (what PID 1 inherited, raised to 8 MiB). systemd lowers that silently to
    PID 1's hard limit in a guest without C(CAP_SYS_RESOURCE), so in any unprivileged guest.
  - An C(lxc exec GUEST -- sh -c 'ulimit -l') shell shows the daemon's B(current) limit (with the
    C(limits.kernel.memlock) the guest started with), not what the guest's services get; this module reads theirs.
  - On the LXD host itself the guests are read through the host's C(/proc). One API call lists the
    instances, one scan of C(/proc) finds each guest's init (the child of its C([lxc monitor]) process)
    and its processes. Where no Vault process runs, one command inside the guest asks its systemd about
    O(units); unless the guest's files, read from the host in the guest's root (never following a link out of
    it), hold no unit file, drop-in directory or dependency link of any of them. Guests that do not show there
    (a remote O(endpoint), other cluster members, virtual machines) are read by one small C(sh) script inside
    them that does both. All these commands start at once and share one deadline, O(timeout).
  - A server that does not lock its memory at all needs no memlock limit, and its verdict rests on swap instead
    (V(protected), V(not_enforced), V(exposed)). That is OpenBao's C(bao) always (OpenBao removed mlock in 2.0),
    known by its name, its binary's name or its unit C(openbao.service); and Vault when its C(VmLck) is 0 and its
    configuration (the C(-config) files of its command line, read inside the guest's root) says
    C(disable_mlock = true), or it runs with C(-dev). A Vault with nothing locked and no such setting is judged on its
    limit, as any other process. Where no such process runs, a unit that would run one (C(openbao.service), a
    service whose C(ExecStart) runs C(bao), a Vault unit whose configuration says C(disable_mlock = true)) is not
    judged on its limit either - V(not_running), with systemd's C(Result=) and the journal's last line, or the
    swap verdict for when it runs where that is worse.
  - For such a server the probe reads, on the LXD host, whether the host has swap (its own C(/proc/swaps) and
    C(/proc/meminfo), not LXCFS's view inside a guest), each swap area for what it is from the host's C(/sys) (zram
    without a backing device is RAM, dm-crypt is encrypted, partitions, disks and files reach a disk), and
    C(memory.swap.max) of the process's cgroup and every
    cgroup above it (the host's cgroup mounts and the path in the host's C(/proc/PID/cgroup)); and it asks the
    guest's systemd, in the same one command as for O(units), for the C(MemorySwapMax) of the process's unit.
    A guest read from inside (O(method=exec), a virtual machine, another member) shows neither the host's swap nor
    its cgroups, so its server gets V(unknown), unless its cgroup forbids swap.
  - On a plain LXC or Proxmox VE host (O(engine)) every container gets the same facts and verdicts. There is no
    daemon; RV(instances[].lxd_at_start) is C(lxc.prlimit.memlock) of the container's configuration as it started
    (on Proxmox VE C(/var/lib/lxc/VMID/config), which C(pct start) writes), else the limit of the C(lxc-start) that
    started it (its monitor, the init's parent, keeps it), with that unit's name as C(source)
    (C(lxc@NAME.service), C(pve-container@VMID.service)). RV(instances[].lxd_now) is C(lxc.prlimit.memlock) as
    configured now, else what systemd gives that unit now. Commands inside run through C(lxc-attach) or
    C(pct exec). RV(instances[].project) is the container's lxcpath. O(method=exec) reads as V(auto) does there.
  - A stopped, vanished or failing guest gets its own verdict; it never fails the whole probe.
  - The module only reads. It never changes a guest, the daemon or a file.
author:
  - vault_mlock.lxd maintainers (@vault-mlock)
options:
  instances:
    description:
      - Names of the instances to report.
      - When empty, every instance of the O(project); stopped ones get the verdict V(not_running).
      - A name that is not an instance of the O(project) gets the verdict V(error).
    type: list
    elements: str
    default: []
  method:
    description:
      - How guests are read.
      - V(auto) reads through the host's C(/proc) what shows there and runs a command inside every other guest.
      - V(proc) reads only through the host's C(/proc); guests that do not show there get the verdict V(error).
      - V(exec) runs a command inside every guest, as a remote daemon requires.
    type: str
    choices: [auto, proc, exec]
    default: auto
notes:
  - Verdicts are V(ok) (no limit, C(CAP_IPC_LOCK) that counts, or a limit that covers O(required)),
    V(finite_limit) (a finite limit and no O(required) to judge it by), V(too_low) (the limit is too low, or the
    unit's last run died locking its memory, and a restart alone would not help), V(restart_pending) (too low now,
    but the guest's next start would give enough), V(not_running), V(absent) (neither a Vault process nor one of
    O(units)), V(unknown) (no Vault process runs and systemd could not be asked, as with O(method=proc); or a server
    that does not lock its memory, where the host's swap cannot be seen) and V(error).
  - For a server that does not lock its memory - V(protected) (no swap can take its memory - the host has none,
    or all of it is RAM or encrypted, or C(memory.swap.max) is 0 for its cgroup or one above), V(not_enforced) (its unit sets C(MemorySwapMax=0), the
    host has swap, and no C(memory.swap.max) enforces it), V(exposed) (the host has swap and nothing keeps the
    server out of it). The same words as C(swap.judgement) of
    M(vault_mlock.lxd.mlock_config).
  - V(too_low), V(restart_pending), V(finite_limit), V(not_enforced), V(exposed) and V(error) fail role
    C(vault_mlock.lxd.memlock_verify) and count in the filter P(vault_mlock.lxd.memlock_failures#filter).
  - In a privileged guest, C(CAP_IPC_LOCK) in a process's effective set lifts the limit. In an unprivileged
    guest it does not, since the kernel looks for the capability in the initial user namespace.
  - Reading the guests through C(/proc) needs root on the LXD host.
  - The instances are those of the O(project). With an C(https://) O(endpoint) every guest is read
    through the API (O(method=exec)).
seealso:
  - module: vault_mlock.lxd.memlock_facts
  - module: vault_mlock.lxd.memlock_dropin
  - module: vault_mlock.lxd.file_capability
extends_documentation_fragment:
  - vault_mlock.lxd._vault_options
  - vault_mlock.lxd._attributes
  - vault_mlock.lxd._attributes.info_module
  - vault_mlock.lxd._attributes.actiongroup_lxd
  - vault_mlock.lxd._lxd_connection
  - vault_mlock.lxd._engine
"""

EXAMPLES = r"""
---
- name: Tell what every guest may lock
  vault_mlock.lxd.memlock_probe:
  register: probe

- name: Fail when a guest's Vault cannot lock its memory, now or once it grows
  ansible.builtin.assert:
    that: probe.instances | vault_mlock.lxd.memlock_failures | length == 0
    fail_msg: "{{ probe.instances | vault_mlock.lxd.memlock_failures }}"

- name: Check two guests against a size, in another project
  vault_mlock.lxd.memlock_probe:
    instances: [vault-1, vault-2]
    project: secrets
    required: 2G

- name: Restart the guests that still run on an older limit
  ansible.builtin.command:
    argv: [lxc, restart, "{{ item.name }}"]
  loop: "{{ probe.instances | selectattr('restart_required') }}"
  loop_control:
    label: "{{ item.name }}: {{ item.restart_reason }}"
  changed_when: true

- name: Judge every container of a Proxmox VE host
  vault_mlock.lxd.memlock_probe:
    engine: pve
- name: Judge Vault's own unit name where no Vault process runs
  vault_mlock.lxd.memlock_probe:
    units: [vault-server.service]

- name: Ask a remote LXD server (every guest is read through the API)
  vault_mlock.lxd.memlock_probe:
    endpoint: https://lxd.example.com:8443
    client_cert: /etc/lxd-probe/client.crt
    client_key: /etc/lxd-probe/client.key
    process: [vault]
"""

RETURN = r"""
engine:
  description: The container engine whose containers were read (V(lxd), V(incus), V(lxc) or V(pve)).
  returned: success
  type: str
  sample: lxc
endpoint:
  description: The LXD daemon that answered.
  returned: success
  type: str
  sample: /var/lib/lxd/unix.socket
project:
  description: The project whose instances are reported.
  returned: success
  type: str
  sample: default
daemon:
  description: The LXD daemon that answered.
  returned: success
  type: dict
  contains:
    pid:
      description: Its process ID (C(environment.server_pid) of C(GET /1.0)).
      type: int
      sample: 4242
    server_name:
      description: Its name (the cluster member's name on a cluster).
      type: str
      sample: lxd-host-1
    clustered:
      description: Whether it is a member of a cluster.
      type: bool
    local:
      description: Whether it runs on this machine, so that its guests were read through C(/proc).
      type: bool
    memlock:
      description:
        - Its current memlock limit, which guests started from now on inherit (unless C(limits.kernel.memlock) is set).
        - V(null) when the daemon does not run on this machine.
      type: dict
      sample:
        soft_bytes: 262144
        hard_bytes: 262144
        soft_ulimit_kib: 256
        hard_ulimit_kib: 256
        systemd_value: 256K
    can_raise:
      description: Whether it holds C(CAP_SYS_RESOURCE), which a privileged guest's systemd inherits; V(null) when not
        local.
      type: bool
    physical_memory:
      description: The host's C(MemTotal) in bytes (systemd scales PID 1's limit by it); V(null) when not local.
      type: int
summary:
  description: How many instances got each verdict.
  returned: success
  type: dict
  sample: {ok: 3, finite_limit: 1, too_low: 1, restart_pending: 1, not_running: 2, absent: 4, unknown: 0, error: 0,
           protected: 1, not_enforced: 0, exposed: 0}
instances:
  description: One entry per instance, in the order of O(instances) or of the LXD listing.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The instance's name.
      type: str
      sample: vault-1
    project:
      description: Its project.
      type: str
    type:
      description: V(container) or V(virtual-machine).
      type: str
    status:
      description: Its status as LXD reports it (V(Running), V(Stopped), V(Frozen), ...).
      type: str
    location:
      description: The cluster member it runs on (V(none) or empty outside a cluster).
      type: str
    privileged:
      description: C(security.privileged) of its expanded configuration.
      type: bool
    limits_kernel_memlock:
      description: C(limits.kernel.memlock) of its expanded configuration (profiles included); V(null) when unset.
      type: str
      sample: "2147483648"
    source:
      description:
        - V(proc) when read through the host's C(/proc), V(exec) when read inside the guest, V(null) when not read.
      type: str
    in_user_namespace:
      description: Whether the guest runs in a user namespace (unprivileged), from its PID 1's C(uid_map).
      type: bool
    lxd_at_start:
      description:
        - What LXD gave the guest when it started; V(null) when that cannot be read (a guest read from inside, as
          behind a remote O(endpoint), on another cluster member, or a virtual machine).
        - C(memlock) is the limit, in the same form as RV(daemon.memlock); C(source) is V(limits.kernel.memlock) (as
          the guest started with it) or V(the LXD daemon) (its limit at that moment, which the guest's
          C([lxc monitor]) process keeps).
      type: dict
      sample: {memlock: {soft_bytes: 262144, hard_bytes: 4194304, soft_ulimit_kib: 256, hard_ulimit_kib: 4096,
               systemd_value: "256K:4M"}, source: limits.kernel.memlock}
    lxd_now:
      description:
        - What LXD would give the guest if it started now (C(limits.kernel.memlock) as configured now, or the
          daemon's current limit), in the same form as RV(instances[].lxd_at_start); V(null) when unknown.
        - For a guest of another cluster member, that member's daemon limit is the one the commands run in its
          guests inherited; V(null) when none of them ran one.
      type: dict
    restart_required:
      description:
        - Whether this running guest must restart to get what LXD gives now, because what it got at its start
          differs (PID 1's figure does not count, since systemd raised it). Only for guests of this cluster member.
      type: bool
    restart_reason:
      description: Why, or why not, in one sentence.
      type: str
      sample: it started with 512K from the LXD daemon; a start now gives 4M from the LXD daemon
    pid1:
      description: The guest's PID 1 (its init).
      type: dict
      contains:
        host_pid:
          description: Its PID on the host; V(null) when read inside the guest.
          type: int
        memlock:
          description:
            - Its memlock limit now. systemd raises its own soft limit at boot (to its hard limit in an unprivileged
              guest), so this is not what LXD gave, nor what a service gets.
            - C(soft_bytes) and C(hard_bytes) are bytes, V(null) for no limit.
            - C(soft_ulimit_kib) and C(hard_ulimit_kib) are what C(ulimit -l) and C(ulimit -Hl) print (KiB).
            - C(systemd_value) is the same limit as C(LimitMEMLOCK=) would write it.
          type: dict
          sample:
            soft_bytes: 4194304
            hard_bytes: 4194304
            soft_ulimit_kib: 4096
            hard_ulimit_kib: 4096
            systemd_value: 4M
        cap_sys_resource:
          description: Whether C(CAP_SYS_RESOURCE) is in its effective set; outside a user namespace it lets systemd
            raise limits past the hard one.
          type: bool
    processes:
      description: The guest's processes named like one of O(process).
      type: list
      elements: dict
      contains:
        pid:
          description: Its PID inside the guest.
          type: int
        host_pid:
          description: Its PID on the host; V(null) when read inside the guest.
          type: int
        name:
          description: Its name (C(comm)).
          type: str
        memlock:
          description: Its own memlock limit, in the same form as RV(instances[].pid1.memlock).
          type: dict
        vmsize_bytes:
          description: Its virtual size, all of which C(mlockall) with C(MCL_CURRENT|MCL_FUTURE) locks.
          type: int
        vmlck_bytes:
          description: How much it has locked now; 0 means mlock is disabled, or failed and was shrugged off.
          type: int
        cap_ipc_lock_effective:
          description: Whether C(CAP_IPC_LOCK) is in its effective set (it lifts the limit only in a privileged guest).
          type: bool
        cap_ipc_lock_bounding:
          description: Whether C(CAP_IPC_LOCK) is in its bounding set.
          type: bool
        binary:
          description: The path of its executable inside the guest.
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
          description:
            - For a C(vault) with nothing locked, what its configuration (its C(-config) files) says about
              C(disable_mlock); V(true) for C(-dev). V(null) when unset, not read (read from inside the guest, a
              relative path, a file that cannot be read) or for any other process.
          type: bool
        disable_mlock_source:
          description: Where RV(instances[].processes[].disable_mlock) was read; empty when it was not.
          type: str
          sample: disable_mlock = true in /etc/vault.d/10-storage.hcl
        cgroup_swap:
          description:
            - For a process with nothing locked, its cgroups' swap limits as the LXD host shows them; V(null) for any
              other process, or where the host's cgroups cannot be seen (read from inside the guest).
            - C(version) is the hierarchy that holds its memory controller (V(v2), V(v1), or V(null) for none);
              C(cgroup) its cgroup there; C(chain) every cgroup from its own up to the top with a
              C(memory.swap.max) (C(swap_max_bytes) V(null) for V(max)); C(v1_files) the memory cgroup's files on
              cgroup v1, where C(memory.swap.max) does not exist; C(error) why it could not be read.
          type: dict
          sample: {version: v2, cgroup: /lxc.payload.vault-1/system.slice/openbao.service,
                   chain: [{cgroup: /lxc.payload.vault-1/system.slice/openbao.service, swap_max_bytes: 0}],
                   v1_files: [], error: null}
    units:
      description:
        - Vault's units (O(units)) as the guest's systemd tells them; asked where no Vault process runs, and where
          one runs that does not lock its memory (then its own unit too, for its C(MemorySwapMax)); empty otherwise.
        - Where no Vault process runs and the guest's files hold none of O(units), each is V(not-found) without asking,
          with what only systemd could tell (C(restarts), C(asked)) V(null); empty where the guest runs no systemd.
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
          description: What its service gets, as systemd lowers RV(instances[].units[].asked) to what PID 1 allows.
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
          description: V(false) when the process does not lock its memory, so that the verdict rests on swap, not on
            this limit.
          type: bool
    swap:
      description:
        - The host's swap, read where a server that does not lock its memory needs it; V(null) when the guest was
          not read.
        - C(total_bytes) is C(SwapTotal) of the host's C(/proc/meminfo), C(areas) the rows of its C(/proc/swaps)
          (sizes in bytes), C(hidden) why these are not the host's own figures (a guest read from inside it), empty
          when they are.
        - C(devices) judges each area from the host's C(/sys), in the form of C(swap.devices) of
          M(vault_mlock.lxd.memlock_facts) - V(ram) (zram without a backing device) and V(encrypted) (dm-crypt)
          keep secrets off a disk, V(disk) does not; C(zswap) whether zswap is on (it writes back to the same areas).
      type: dict
      sample: {total_bytes: 0, areas: [], hidden: "", devices: [], zswap: false}
    verdict:
      description: One of V(ok), V(finite_limit), V(too_low), V(restart_pending), V(not_running), V(absent),
        V(unknown), V(error), and for a server that does not lock its memory V(protected), V(not_enforced),
        V(exposed).
      type: str
      sample: too_low
    message:
      description: One sentence saying what was found and what to do.
      type: str
      sample: >-
        guest vault-1: vault.service is failed (exit-code) and its last run died locking its memory ("Error
        initializing core: Failed to lock memory: cannot allocate memory"); its service may lock 512 KiB (ulimit -l
        512); restart the guest after raising the LXD daemon's LimitMEMLOCK to infinity
        (vault_mlock.lxd.memlock_dropin) or set limits.kernel.memlock
"""

import dataclasses
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import (
    ENGINE_ARGUMENT_SPEC,
    LIBLXC_ENGINES,
    EngineError,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._detect import resolve_engine
from ansible_collections.vault_mlock.lxd.plugins.module_utils._liblxc_probe import liblxc_probe
from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_api import connect
from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_transport import (
    LxdError,
    is_remote,
    normalize_endpoint,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._probe import AUTO, METHODS, MemlockProbe
from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_options import (
    VAULT_ARGSPEC,
    OptionError,
    vault_options,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            VAULT_ARGSPEC,
            **ENGINE_ARGUMENT_SPEC,
            instances=dict(type="list", elements="str", default=[]),
            method=dict(type="str", choices=list(METHODS), default=AUTO),
        ),
        required_together=[("client_cert", "client_key")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        options = vault_options(params)
    except OptionError as exc:
        module.fail_json(msg=str(exc))

    try:
        engine = resolve_engine(params)
        if engine in LIBLXC_ENGINES:
            module.exit_json(changed=False, engine=engine,
                             **dataclasses.asdict(liblxc_probe(engine, params, options)))
        api, endpoint = connect(
            endpoint=params["endpoint"],
            project=params["project"],
            client_cert=params["client_cert"],
            client_key=params["client_key"],
            validate_certs=params["validate_certs"],
            ca_cert=params["ca_cert"],
            timeout=params["timeout"],
        )
        probe = MemlockProbe(
            api,
            project=params["project"],
            endpoint=normalize_endpoint(endpoint),
            process_names=options.process_names,
            units=options.units,
            required=options.required,
            method="exec" if is_remote(endpoint) and params["method"] == "auto" else params["method"],
        )
        report = probe.run(params["instances"])
    except (LxdError, EngineError) as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:
        module.fail_json(msg=f"The memlock probe failed unexpectedly: {type(exc).__name__}: {exc}",
                         exception=traceback.format_exc())

    module.exit_json(changed=False, engine=engine, **dataclasses.asdict(report))


if __name__ == "__main__":
    main()
