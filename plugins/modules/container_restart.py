#!/usr/bin/python
# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_restart
short_description: Restart one running container and wait until it has booted
version_added: 0.2.0
description:
  - Restarts one running container through the engine's own interface (the LXD or Incus REST API), so that it
    starts again with the memory lock limit its engine gives now, and waits until it has booted.
  - Booted means that the guest's systemd has finished starting (C(systemctl is-system-running --wait) asked in the
    guest; V(degraded) counts as booted); a guest without systemd is up once a command runs in it. What the guest
    prints is read as data only.
  - A stopped container is not started; the module fails, naming it.
author:
  - vault_mlock.lxd maintainers (@vault-mlock)
extends_documentation_fragment:
  - vault_mlock.lxd._attributes
  - vault_mlock.lxd._attributes.actiongroup_memlock
  - vault_mlock.lxd._lxd_connection
attributes:
  check_mode:
    support: full
    details:
      - Reports a change and restarts nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    description: Every run restarts the container.
options:
  engine:
    description:
      - The container engine. V(auto) finds the one this host runs (an LXD or Incus daemon's socket).
    type: str
    choices: [auto, lxd, incus, lxc, pve]
    default: auto
  name:
    description: The container (instance) to restart.
    type: str
    required: true
  restart_timeout:
    description:
      - Seconds for the container to stop cleanly (then it is killed), and again for it to finish booting.
      - O(timeout) bounds each single answer of the engine's API.
    type: int
    default: 120
seealso:
  - module: vault_mlock.lxd.container_limits
  - module: vault_mlock.lxd.vault_status
"""

EXAMPLES = r"""
---
- name: Restart guest vault1 so that it starts with its new memlock limit
  vault_mlock.lxd.container_restart:
    name: vault1
    restart_timeout: 60

- name: The same for a guest in project prod
  vault_mlock.lxd.container_restart:
    name: vault1
    project: prod
"""

RETURN = r"""
---
engine:
  description: The engine that was reached, V(lxd), V(incus), V(lxc) or V(pve).
  returned: always
  type: str
  sample: lxd
name:
  description: The container restarted.
  returned: always
  type: str
  sample: vault1
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import ENGINES, EngineError, open_engine
from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_api import CONNECTION_ARGUMENT_SPEC


def main():
    module = AnsibleModule(
        argument_spec=dict(
            CONNECTION_ARGUMENT_SPEC,
            engine=dict(type="str", default="auto", choices=list(ENGINES)),
            name=dict(type="str", required=True),
            restart_timeout=dict(type="int", default=120),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if not params["name"].strip() or params["restart_timeout"] < 1:
        module.fail_json(msg="name: give the container's name; restart_timeout: a number of seconds above 0")
    try:
        engine = open_engine(params)
        if not module.check_mode:
            engine.restart(params["name"], params["restart_timeout"])
    except EngineError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, engine=engine.name, name=params["name"])


if __name__ == "__main__":
    main()
