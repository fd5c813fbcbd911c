#!/usr/bin/python
# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: file_capability
short_description: Set file capabilities such as cap_ipc_lock on the Vault binary, without libcap tools
version_added: 0.1.0
description:
  - Gives a file Linux capabilities the way C(setcap cap_ipc_lock=+ep) does on the file C(readlink -f vault) names, so that Vault
    can C(mlock) its memory without running as root.
  - Reads and writes the C(security.capability) extended attribute directly, so the target needs neither
    C(getcap) nor C(setcap) (C(libcap2-bin)); only Python's C(os.getxattr) and C(os.setxattr).
  - Idempotent. Equal capability texts are treated as equal, however they are spelled, and results are written
    as C(getcap) prints them.
  - Changes only that extended attribute. The file's content, mode, owner and modification time stay as they are.
  - Reads revision 2 and revision 3 (namespaced, with the user namespace's root uid) values; writes revision 2
    unless a root uid is kept or given, see O(rootid). Inside a user namespace the kernel itself turns a
    revision 2 value into revision 3 for that namespace.
  - In an unprivileged LXD guest (a user namespace) a file capability does B(not) lift C(RLIMIT_MEMLOCK), because
    the kernel checks C(CAP_IPC_LOCK) in the initial user namespace. The module then warns that the memlock limit
    must come from LXD, through the daemon's C(LimitMEMLOCK) drop-in or the instance's C(limits.kernel.memlock).
author:
  - vault_mlock.lxd maintainers (@vault-mlock)
options:
  path:
    description:
      - The file to give capabilities, normally the Vault binary.
      - Symbolic links are followed to the real file, as C(readlink -f) does, unless O(follow=false).
      - Must be a regular file; directories, devices, pipes and sockets are refused.
    type: path
    required: true
  capability:
    description:
      - The capabilities in libcap's text form, see the manual page cap_from_text(3).
      - A clause is a comma-separated list of capability names (such as V(cap_ipc_lock), case does not matter),
        numbers (V(14)) or V(all), followed by V(=FLAGS), V(+FLAGS) or V(-FLAGS) groups, where the flags are
        V(e) (effective), V(i) (inheritable) and V(p) (permitted). Only the first group may be V(=). A clause
        without a list, such as V(=ep), means all capabilities. Clauses are separated by spaces and apply in
        order.
      - V(cap_ipc_lock=ep), V(cap_ipc_lock=+ep), V(cap_ipc_lock+ep), V(CAP_IPC_LOCK=pe) and V(14=ep) are the
        same value.
      - A file has one effective flag for all its capabilities, so V(e) must be on every capability that has
        V(p) or V(i), or on none; V(cap_ipc_lock=ep cap_net_raw+p) cannot be stored and fails.
      - With O(state=absent), a list without flags, such as V(cap_ipc_lock), removes those capabilities
        entirely.
      - The empty text (or V(=)) is the empty set.
    type: str
    default: cap_ipc_lock=ep
    aliases: [cap]
  state:
    description:
      - V(present) adds the flags of O(capability) to what the file has and keeps every other capability.
      - V(absent) removes the flags of O(capability) and keeps the rest; a capability left with V(e) alone loses
        it. When nothing is left the extended attribute is removed.
      - V(exact) makes the file carry exactly O(capability); the empty set removes the extended attribute, as
        C(setcap -r) does.
    type: str
    choices: [present, absent, exact]
    default: present
  follow:
    description:
      - Follow a symbolic link in O(path) to the file it points to.
      - With V(false) a symbolic link is an error, since a link cannot carry capabilities itself.
    type: bool
    default: true
  rootid:
    description:
      - The root uid of the user namespace the capability is meant for, stored in a revision 3 value. The
        capability then works only inside that namespace, as if C(setcap -n ROOTID) had been used.
      - Use it on the LXD host for a file in an unprivileged guest's root file system, for example V(1000000)
        when the guest's uids start there.
      - V(0) means this namespace's own root, which is a plain revision 2 value.
      - When not set, a file that already carries a revision 3 value keeps its root uid, so that a change never
        widens a capability meant for one guest to every namespace; anything else is written as revision 2.
    type: int
  units:
    description:
      - A binary whose file capability has the effective bit cannot be started at all (C(execve) fails with
        C(EPERM)) by a process whose bounding set lacks one of its capabilities. Vault's binary is also run as
        C(vault agent) and C(vault proxy), often by units with a C(CapabilityBoundingSet=) of their own.
      - Where systemd runs, the module asks it which service units run O(path) (their C(Exec*=) programs, links
        resolved) and lack a capability of the result in their C(CapabilityBoundingSet=).
      - V(fail) stops before writing and names those units; give them the capability first (for
        C(CAP_IPC_LOCK), M(vault_mlock.lxd.memlock_dropin) with O(vault_mlock.lxd.memlock_dropin#module:ipc_lock)
        does). V(report) writes anyway and names them in RV(blocked_units). V(ignore) does not look.
      - Without systemd, or when the result has no effective bit, nothing is looked for.
    type: str
    choices: [fail, report, ignore]
    default: fail
extends_documentation_fragment:
  - vault_mlock.lxd._attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the capabilities as C(getcap) prints them.
notes:
  - Needs root (C(become=true)) with C(CAP_SETFCAP), as C(setcap) does.
  - Writing to or replacing the file drops its capabilities, as a package upgrade does, so run this module after
    every upgrade of the binary.
  - The file system must support extended attributes. A read-only file system, or one without extended
    attributes, fails with a message that says so, and nothing is written.
seealso:
  - name: capabilities(7)
    description: Linux capabilities, file capabilities and the effective flag.
    link: https://man7.org/linux/man-pages/man7/capabilities.7.html
  - name: cap_from_text(3)
    description: The text form of capabilities.
    link: https://man7.org/linux/man-pages/man3/cap_from_text.3.html
"""

EXAMPLES = r"""
---
- name: Let Vault lock its memory (setcap cap_ipc_lock=+ep $(readlink -f /usr/bin/vault))
  vault_mlock.lxd.file_capability:
    path: /usr/bin/vault
  become: true

- name: Give a binary exactly these capabilities, dropping any other
  vault_mlock.lxd.file_capability:
    path: /usr/local/bin/vault
    capability: cap_ipc_lock,cap_net_bind_service=ep
    state: exact
  become: true

- name: Remove cap_ipc_lock again, keeping other capabilities
  vault_mlock.lxd.file_capability:
    path: /usr/bin/vault
    capability: cap_ipc_lock
    state: absent
  become: true

- name: Remove every capability (as setcap -r does)
  vault_mlock.lxd.file_capability:
    path: /usr/bin/vault
    capability: ""
    state: exact
  become: true

- name: From the LXD host, set the capability for an unprivileged guest whose root is uid 1000000
  vault_mlock.lxd.file_capability:
    path: /var/lib/lxd/containers/vault1/rootfs/usr/bin/vault
    rootid: 1000000
  become: true

- name: See what would change
  vault_mlock.lxd.file_capability:
    path: /usr/bin/vault
  check_mode: true
  diff: true
  register: vault_caps
"""

RETURN = r"""
blocked_units:
  description:
    - The service units that run the file and whose bounding set lacks a capability it now carries, so that they
      could not start it (see O(units)); V(null) when none were looked for.
    - C(missing) lists the capabilities each one lacks.
  returned: always
  type: list
  elements: dict
  sample: [{name: vault-agent.service, missing: [cap_ipc_lock]}]
path:
  description: The file acted on, with symbolic links resolved.
  returned: always
  type: str
  sample: /usr/bin/vault
link:
  description: The path given, when it was a symbolic link; otherwise V(null).
  returned: always
  type: str
  sample: /usr/local/bin/vault
before:
  description: The file's capabilities before, as C(getcap) prints them after the path; empty when it had none.
  returned: always
  type: str
  sample: ""
after:
  description:
    - The file's capabilities after, as C(getcap) prints them after the path; empty when it has none.
    - In check mode, what they would be.
  returned: always
  type: str
  sample: cap_ipc_lock=ep
rootid:
  description:
    - The root uid of the user namespace the file's capability belongs to (revision 3), as seen from here.
    - V(null) when the capability is not namespaced, or belongs to this namespace, or the file has none.
  returned: always
  type: int
  sample: 1000000
in_user_namespace:
  description:
    - Whether the module ran in a user namespace other than the initial one, as in an unprivileged LXD guest.
    - There the file capability does not lift the memlock limit.
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capabilities import CapabilityError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._file_capability import (
    DEFAULT_CAPABILITY,
    STATES,
    apply_file_capability,
    plan_file_capability,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_bounding import FAIL, UNIT_CHECKS, check_units


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            capability=dict(type="str", default=DEFAULT_CAPABILITY, aliases=["cap"]),
            state=dict(type="str", default="present", choices=list(STATES)),
            follow=dict(type="bool", default=True),
            rootid=dict(type="int"),
            units=dict(type="str", default=FAIL, choices=list(UNIT_CHECKS)),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        change = plan_file_capability(
            params["path"],
            capability=params["capability"],
            state=params["state"],
            follow=params["follow"],
            rootid=params["rootid"],
        )
        blocked = check_units(module.run_command, change.path, change.after and change.after.capabilities,
                              params["units"])
        if change.changed and not module.check_mode:
            change = apply_file_capability(change)
    except CapabilityError as exc:
        module.fail_json(msg=str(exc))

    for warning in change.warnings:
        module.warn(warning)
    result = dict(
        changed=change.changed,
        path=change.path,
        link=change.link,
        before=change.before_text,
        after=change.after_text,
        rootid=change.rootid,
        in_user_namespace=change.in_user_namespace,
        blocked_units=None if blocked is None else [dict(name=unit.name, missing=list(unit.missing))
                                                    for unit in blocked],
    )
    if module._diff:
        result["diff"] = change.diff()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
