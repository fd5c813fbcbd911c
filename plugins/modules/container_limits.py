#!/usr/bin/python
# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_limits
short_description: Set or unset the memlock limit and the swap switch of containers and profiles
version_added: 0.2.0
description:
  - Gets, sets and unsets the memory lock limit (LXD's and Incus's C(limits.kernel.memlock)) and the swap switch
    (C(limits.memory.swap)) of instances and profiles, through the engine's own interface (the LXD or Incus REST API
    on its unix socket or over C(https://)), in any project and from any member of a cluster.
  - Every value is checked before anything is read or written; a bad one fails naming its option, such as
    C(instance_memlock[vault1]), and the accepted form, and nothing is written.
  - Idempotent by value, not by text. A limit compares in bytes (V(8388608) where C(8M) is stored is no change), a
    switch as true or false.
  - A running guest gets a new C(limits.kernel.memlock) only when it starts again
    (M(vault_mlock.lxd.container_restart)).
author:
  - vault_mlock.lxd maintainers (@vault-mlock)
extends_documentation_fragment:
  - vault_mlock.lxd._attributes
  - vault_mlock.lxd._attributes.actiongroup_lxd
  - vault_mlock.lxd._lxd_connection
  - vault_mlock.lxd._engine
attributes:
  check_mode:
    support: full
    details:
      - Reads every key and returns the changes it would make; writes none.
  diff_mode:
    support: full
    details:
      - One line per changed key, C(KIND NAME SETTING=VALUE), before and after.
  idempotent:
    support: full
    description: When run twice with the same options, the second run reports no change.
options:
  instance_memlock:
    description:
      - The memory lock limit per instance, as a mapping of instance name to limit in systemd's C(LimitMEMLOCK=)
        syntax (V(infinity), V(8M), V(64K:8M); suffixes are powers of 1024). It is stored in the engine's form
        (for LXD, bytes or V(unlimited)).
      - A V(null) limit unsets the key.
    type: dict
    default: {}
  profile_memlock:
    description:
      - The memory lock limit per profile; same form as O(instance_memlock).
    type: dict
    default: {}
  instance_swap:
    description:
      - C(limits.memory.swap) per instance, as a mapping of instance name to V(true) (may use swap), V(false) (may
        not) or V(null) (unset the key, the engine's default).
    type: dict
    default: {}
  profile_swap:
    description:
      - C(limits.memory.swap) per profile; same form as O(instance_swap).
    type: dict
    default: {}
  state:
    description:
      - V(present) sets each key to the value given (V(null) unsets it).
      - V(absent) undoes such a run - it unsets each key named that still holds the value given (by value), and
        keeps a key that holds another value (RV(kept)) or is not named. Keys given V(null) are not touched.
    type: str
    choices: [present, absent]
    default: present
  lxcpath:
    description:
      - For O(engine=lxc), the directories that hold the containers; empty means the engine's own.
    type: list
    elements: path
    default: []
notes:
  - On LXD and Incus a setting is written with C(PATCH), which changes the named key and no other; the module writes
    only the keys whose value changes.
  - On a cluster any member reaches every instance (the daemon forwards the request to the member it runs on);
    profiles belong to the whole cluster.
seealso:
  - module: vault_mlock.lxd.container_restart
  - module: vault_mlock.lxd.memlock_probe
  - name: LXD instance options, resource limits
    description: C(limits.kernel.*) and C(limits.memory.swap).
    link: https://documentation.ubuntu.com/lxd/en/latest/reference/instance_options/#resource-limits
"""

EXAMPLES = r"""
---
- name: Let guest vault1 lock 8 MiB and keep every guest of profile vault out of swap
  vault_mlock.lxd.container_limits:
    instance_memlock:
      vault1: 8M
    profile_swap:
      vault: false

- name: The same limit for every guest of profile vault, in project prod of an Incus host
  vault_mlock.lxd.container_limits:
    project: prod
    profile_memlock:
      vault: infinity

- name: Unset a key, whatever it holds
  vault_mlock.lxd.container_limits:
    instance_memlock:
      vault1: null

- name: Undo the first example, leaving a key that someone has changed since
  vault_mlock.lxd.container_limits:
    state: absent
    instance_memlock:
      vault1: 8M
    profile_swap:
      vault: false
"""

RETURN = r"""
---
engine:
  description: The engine that was reached, V(lxd), V(incus), V(lxc) or V(pve).
  returned: always
  type: str
  sample: lxd
changes:
  description: Every key that changed (or would change in check mode), in the order of the options.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: V(instance) or V(profile).
      type: str
    name:
      description: The instance's or profile's name.
      type: str
    key:
      description: The setting's neutral name, V(memlock) or V(swap).
      type: str
    setting:
      description: The engine's name of the setting.
      type: str
    before:
      description: The value stored before, V(null) when unset.
      type: str
    after:
      description: The value stored now, V(null) when unset.
      type: str
  sample:
    - {kind: instance, name: vault1, key: memlock, setting: limits.kernel.memlock, before: null, after: "8388608"}
kept:
  description:
    - With O(state=absent), the keys left set because they hold another value than the one given, in the shape of
      RV(changes) (C(after) is what the undo would have written, V(null)). Empty with O(state=present).
  returned: always
  type: list
  elements: dict
  sample:
    - {kind: profile, name: vault, key: memlock, setting: limits.kernel.memlock, before: "4194304", after: null}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vault_mlock.lxd.plugins.module_utils._container_settings import SettingsError, apply_settings
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import (
    ENGINE_ARGUMENT_SPEC,
    EngineError,
    open_engine,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            ENGINE_ARGUMENT_SPEC,
            instance_memlock=dict(type="dict", default={}),
            profile_memlock=dict(type="dict", default={}),
            instance_swap=dict(type="dict", default={}),
            profile_swap=dict(type="dict", default={}),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        supports_check_mode=True,
    )
    try:
        result = apply_settings(open_engine(module.params), module.params, module.check_mode)
    except (SettingsError, EngineError) as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
