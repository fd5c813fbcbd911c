#!/usr/bin/python
# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vault_status
short_description: Wait until Vault or OpenBao answers on its API, and tell whether it is sealed
version_added: 0.2.0
description:
  - Asks the server's C(GET /v1/sys/health) (it needs no token) until it answers, and returns its state
    (RV(initialized), RV(sealed), RV(standby), RV(version)). The request asks every state to answer 200
    (C(standbyok), C(perfstandbyok), C(sealedcode), C(uninitcode), C(drsecondarycode)); the body is read whatever
    the status code is, so the codes Vault gives otherwise (429 standby, 501 not initialised, 503 sealed) mean
    the same.
  - A sealed server is a state to report, not a failure, unless O(fail_when_sealed=true). With O(unseal_timeout) the
    module goes on asking while the server is sealed, so that someone (or its auto-unseal) can unseal it, and returns
    RV(sealed=true) when it stays sealed. It fails when the server does not answer within O(timeout).
  - One call is the whole wait of a rolling restart, after a node restarted - until it serves, then until it is
    unsealed, then O(fail_when_sealed) stops the play at a node that stays sealed, with the sentence that says so.
  - The address is O(api_addr); else the first C(tcp) listener of the configuration O(config) (C(http://) when it
    says C(tls_disable), a listener on every address asked on the loopback address); else
    C(https://127.0.0.1:8200), the default of the C(vault) and C(bao) command line tools.
  - With O(instance) the module runs on the LXD host and asks from inside that guest, through the LXD API (a
    command run with LXD's C(exec)); the guest's answer is read as JSON data, nothing from the guest is run on the
    host.
author:
  - vault_mlock.lxd maintainers (@vault-mlock)
extends_documentation_fragment:
  - vault_mlock.lxd._attributes
  - vault_mlock.lxd._attributes.info_module
  - vault_mlock.lxd._engine
options:
  api_addr:
    description:
      - The server's API address, as C(VAULT_ADDR) or C(BAO_ADDR) would be written (C(http://HOST[:PORT]) or
        C(https://HOST[:PORT]), no path).
      - The empty string takes the first C(tcp) listener of O(config), else C(https://127.0.0.1:8200).
    type: str
    default: ''
  config:
    description:
      - The server's configuration files or directories (their C(*.hcl) and C(*.json) files), to find the listener
        in when O(api_addr) is empty. The role C(vault_mlock.lxd.vault_guest) passes what
        M(vault_mlock.lxd.mlock_config) found in the service's C(-config) arguments.
      - Not read with O(instance); give O(api_addr) there.
    type: list
    elements: path
    default: []
  validate_certs:
    description:
      - Whether to verify the server's certificate for an C(https://) address.
      - A listener on the loopback address with a self-signed certificate is the common case. Give that certificate
        (the listener's C(tls_cert_file), or the CA that signed it) as O(ca_cert); it must name the address asked
        (an IP address C(subjectAltName) C(127.0.0.1) for the default). Turn the check off only where nothing else
        works; the health request carries no token or secret.
    type: bool
    default: true
  ca_cert:
    description:
      - The CA certificates (PEM) to verify the server against, instead of the system's.
      - With O(instance), a path inside the guest.
    type: path
  timeout:
    description:
      - Seconds to wait for the server to answer at all (a server still starting refuses connections). Each try
        waits at most 5 seconds; tries are a second apart.
    type: float
    default: 60
  unseal_timeout:
    description:
      - Once it answers initialised but sealed, seconds to go on asking until it is unsealed. V(0) returns the first
        answer.
      - A server that stays sealed is returned with RV(sealed=true); the module fails for that only with
        O(fail_when_sealed=true).
    type: float
    default: 0
  fail_when_sealed:
    description:
      - Fail when the server answers initialised and sealed (after O(unseal_timeout)), saying that it waits for
        unsealing and that no further guest or node is restarted, so that a rolling restart stops there and an
        integrated-storage cluster keeps its quorum.
    type: bool
    default: false
  node:
    description:
      - How the failure of O(fail_when_sealed) names this server, such as the inventory name; the default is the
        machine's host name. With O(instance) the guest is named instead.
    type: str
  instance:
    description:
      - Ask from inside this LXD (or Incus) guest, through the local daemon's unix socket (the first found of
        C($LXD_DIR/unix.socket), C(/var/lib/lxd/unix.socket), C(/var/snap/lxd/common/lxd/unix.socket),
        C(/var/lib/incus/unix.socket)). The guest needs C(python3), as for any Ansible module.
      - On an LXD cluster, LXD runs the command on the member where the guest runs.
      - On a plain LXC or Proxmox VE host (O(engine)), the command runs in the container through C(lxc-attach)
        or C(pct exec); O(instance) is the container's name (its VMID on Proxmox VE).
    type: str
  project:
    description: The LXD project of O(instance).
    type: str
    default: default
  endpoint:
    description:
      - With O(instance), the LXD (or Incus) daemon to ask through, as for M(vault_mlock.lxd.memlock_probe)'s
        O(vault_mlock.lxd.memlock_probe#module:endpoint); when not set, the first local socket that answers.
      - Each answer of the LXD API may take O(timeout) seconds.
    type: str
  client_cert:
    description: With an C(https://) O(endpoint), the client certificate (PEM) the daemon trusts.
    type: path
    aliases: [cert_file]
  client_key:
    description: The private key (PEM) of O(client_cert).
    type: path
    aliases: [key_file]
notes:
  - Unsealing needs the unseal keys (C(vault operator unseal), C(bao operator unseal)) or an auto-unseal; this
    module never unseals.
  - No HashiCorp Vault binary is used in this collection's tests; they run OpenBao's C(bao) server, which answers
    C(/v1/sys/health) the same way.
seealso:
  - module: vault_mlock.lxd.mlock_config
  - name: Vault's sys/health endpoint
    description: The status codes and query parameters of the health check.
    link: https://developer.hashicorp.com/vault/api-docs/system/health
"""

EXAMPLES = r"""
---
- name: Wait until Vault answers, from its own configuration's listener
  vault_mlock.lxd.vault_status:
    config: [/etc/vault.d/vault.hcl]
    timeout: 60
  register: vault

- name: Wait up to five minutes for an operator (or auto-unseal) to unseal it, then stop the play if it stays sealed
  vault_mlock.lxd.vault_status:
    api_addr: https://127.0.0.1:8200
    ca_cert: /opt/vault/tls/tls.crt
    unseal_timeout: 300
    fail_when_sealed: true

- name: From the LXD host, ask the OpenBao of guest vault-1
  vault_mlock.lxd.vault_status:
    instance: vault-1
    api_addr: http://127.0.0.1:8200
"""

RETURN = r"""
api_addr:
  description: The address asked.
  returned: always
  type: str
  sample: https://127.0.0.1:8200
addr_source:
  description: Where the address came from, V(api_addr), V(default), or C(config FILE).
  returned: always
  type: str
  sample: config /etc/openbao/openbao.hcl
answering:
  description: Whether the server answered (V(false) only in a failure).
  returned: always
  type: bool
state:
  description:
    - V(active), V(standby), V(performance_standby), V(dr_secondary), V(sealed) or V(uninitialized); V(null) when it
      did not answer.
  returned: always
  type: str
  sample: sealed
initialized:
  description: Whether C(operator init) has run.
  returned: always
  type: bool
sealed:
  description: Whether it is sealed (an uninitialised server is sealed too).
  returned: always
  type: bool
standby:
  description: Whether it is a standby node (sealed nodes say V(true) too).
  returned: always
  type: bool
performance_standby:
  description: Whether it is a performance standby (Vault Enterprise).
  returned: always
  type: bool
version:
  description: The server's version.
  returned: always
  type: str
  sample: 2.7.2
cluster_name:
  description: Its cluster's name (only once unsealed).
  returned: always
  type: str
status:
  description: The HTTP status code of the last answer.
  returned: always
  type: int
  sample: 200
waited:
  description: Seconds from the first try to the last answer.
  returned: always
  type: float
tries:
  description: How many times it was asked.
  returned: always
  type: int
unseal_timed_out:
  description: Whether it stayed sealed for all of O(unseal_timeout) (a positive one).
  returned: always
  type: bool
message:
  description: One sentence saying what the server answered; with O(instance) it starts with C(guest NAME:). A
    failure says it in C(msg) instead.
  returned: always
  type: str
  sample: >-
    the Vault API at http://127.0.0.1:8200 answers: sealed 2.7.2, and it stayed sealed for 30s (it must be unsealed:
    `vault operator unseal`, `bao operator unseal`, or its auto-unseal), after 30.2s
"""

import sys

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.vault_mlock.lxd.plugins.module_utils._config_syntax import ConfigError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_status import (
    ARGUMENT_SPEC,
    StatusError,
    vault_status,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result, failure = vault_status(module.params, module.run_command, sys.executable)
    except (StatusError, ConfigError) as exc:
        module.fail_json(msg=str(exc))
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
