# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: memlock_probe
short_description: Tell, from the LXD host, how much memory Vault may lock in every guest
version_added: 0.1.0
description:
  - Runs on an LXD host and reports, for every instance of a project, the memlock limit
    (C(RLIMIT_MEMLOCK)) that the guest's PID 1 and its Vault (or OpenBao) processes really have,
    and whether that is enough for C(mlockall).
  - A guest gets its limit when it starts, from the instance's C(limits.kernel.memlock) or else from
    the LXD daemon as it ran then; guests keep it until they restart. systemd inside a guest silently
    clamps a service's C(LimitMEMLOCK=) to that limit. An C(lxc exec GUEST -- sh -c 'ulimit -l') shell
    shows the daemon's B(current) limit, not the guest's; this module reads the guest's own.
  - On the LXD host itself the guests are read through the host's C(/proc). One API call lists the
    instances, one scan of C(/proc) finds each guest's init (the child of its C([lxc monitor]) process)
    and its processes. Guests that do not show there (a remote O(endpoint), other cluster members,
    virtual machines) are read by running a small C(sh) script inside them through the API, eight at a time.
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
  process:
    description:
      - Process names (as in C(/proc/PID/comm), at most 15 characters are compared) to inspect in each guest.
      - The default finds HashiCorp Vault and OpenBao.
    type: list
    elements: str
    default: [vault, bao]
  required:
    description:
      - How much memory the guests must be able to lock, as systemd writes sizes
        (C(512M), C(2G), V(infinity)); suffixes are powers of 1024.
      - A running process needs at least its own C(VmSize) locked, since C(mlockall) with C(MCL_CURRENT|MCL_FUTURE)
        locks every mapping; the larger of both is checked.
      - Where no process runs, PID 1's limit is judged against O(required); without it the verdict is V(unknown).
    type: str
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
  - Verdicts are V(ok), V(too_low) (the limit is too low and a restart alone would not help),
    V(restart_pending) (too low now, but the guest's next start would give enough), V(not_running),
    V(unknown) (no matching process runs and no O(required) was given) and V(error).
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
  - vault_mlock.lxd._attributes
  - vault_mlock.lxd._attributes.info_module
  - vault_mlock.lxd._attributes.actiongroup_memlock
  - vault_mlock.lxd._lxd_connection
"""

EXAMPLES = r"""
---
- name: Tell what every guest may lock
  vault_mlock.lxd.memlock_probe:
  register: probe

- name: Fail when a guest's Vault cannot lock its memory
  ansible.builtin.assert:
    that: probe.summary.too_low + probe.summary.restart_pending + probe.summary.error == 0
    fail_msg: "{{ probe.instances | rejectattr('verdict', 'in', ['ok', 'not_running', 'unknown'])
                  | map(attribute='message') | list }}"

- name: Check two guests against a size, in another project
  vault_mlock.lxd.memlock_probe:
    instances: [vault-1, vault-2]
    project: secrets
    required: 2G

- name: Ask a remote LXD server (every guest is read through the API)
  vault_mlock.lxd.memlock_probe:
    endpoint: https://lxd.example.com:8443
    client_cert: /etc/lxd-probe/client.crt
    client_key: /etc/lxd-probe/client.key
    process: [vault]
"""

RETURN = r"""
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
summary:
  description: How many instances got each verdict.
  returned: success
  type: dict
  sample: {ok: 3, too_low: 1, restart_pending: 1, not_running: 2, unknown: 0, error: 0}
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
    pid1:
      description: The guest's PID 1 (its init), whose limit every service systemd starts inherits.
      type: dict
      contains:
        host_pid:
          description: Its PID on the host; V(null) when read inside the guest.
          type: int
        memlock:
          description:
            - Its memlock limit. C(soft_bytes) and C(hard_bytes) are bytes, V(null) for no limit.
            - C(soft_ulimit_kib) and C(hard_ulimit_kib) are what C(ulimit -l) and C(ulimit -Hl) print (KiB).
            - C(systemd_value) is the same limit as C(LimitMEMLOCK=) would write it.
          type: dict
          sample:
            soft_bytes: 65536
            hard_bytes: 65536
            soft_ulimit_kib: 64
            hard_ulimit_kib: 64
            systemd_value: 64K
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
          description: How much it has locked now; 0 often means mlock is disabled in its configuration.
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
    daemon_memlock:
      description:
        - The limit the guest's LXD daemon passes to a guest that starts now; V(null) when unknown.
        - For a guest read from inside, this is the limit of the command run there (which the daemon hands out
          now), and V(null) when C(limits.kernel.memlock) is set.
      type: dict
    memlock_after_restart:
      description:
        - The limit PID 1 would get on the guest's next start (C(limits.kernel.memlock) or the daemon's).
        - V(null) when unknown (a virtual machine, or a daemon whose limit cannot be read).
      type: dict
    daemon_limit_differs:
      description:
        - Whether PID 1's limit differs from the daemon's current one (a restart of the daemon since the guest
          started, or C(limits.kernel.memlock)); V(null) when unknown.
      type: bool
    verdict:
      description: One of V(ok), V(too_low), V(restart_pending), V(not_running), V(unknown), V(error).
      type: str
      sample: too_low
    message:
      description: One sentence saying what was found and what to do.
      type: str
      sample: >-
        guest vault-1: PID 1 may lock 64 KiB (ulimit -l 64) but vault needs its whole VmSize 1.4 GiB locked;
        restart the guest after raising the LXD daemon's LimitMEMLOCK to at least 1.4 GiB
        (vault_mlock.lxd.memlock_dropin) or set limits.kernel.memlock
"""

import dataclasses
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_api import (
    CONNECTION_ARGUMENT_SPEC,
    LxdError,
    connect,
    is_remote,
    normalize_endpoint,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._probe import MemlockProbe
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import SizeError, parse_size


def main():
    module = AnsibleModule(
        argument_spec=dict(
            CONNECTION_ARGUMENT_SPEC,
            instances=dict(type="list", elements="str", default=[]),
            process=dict(type="list", elements="str", default=["vault", "bao"]),
            required=dict(type="str"),
            method=dict(type="str", choices=["auto", "proc", "exec"], default="auto"),
        ),
        required_together=[("client_cert", "client_key")],
        supports_check_mode=True,
    )
    params = module.params
    names = [name for name in params["process"] if name]
    if not names:
        module.fail_json(msg="process: give at least one process name, such as vault or bao")
    required_given = params["required"] is not None
    try:
        required_bytes = parse_size(params["required"], "required") if required_given else None
    except SizeError as exc:
        module.fail_json(msg=str(exc))

    try:
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
            process_names=names,
            required_given=required_given,
            required_bytes=required_bytes,
            method="exec" if is_remote(endpoint) and params["method"] == "auto" else params["method"],
        )
        report = probe.run(params["instances"])
    except LxdError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:
        module.fail_json(msg=f"The memlock probe failed unexpectedly: {type(exc).__name__}: {exc}",
                         exception=traceback.format_exc())

    module.exit_json(changed=False, **dataclasses.asdict(report))


if __name__ == "__main__":
    main()
