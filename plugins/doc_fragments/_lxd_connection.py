# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this doc fragment is **PRIVATE** to the collection. It can change at any time.

from __future__ import annotations


class ModuleDocFragment:
    # How a module reaches the LXD (or Incus) API: plugins/module_utils/_lxd_api.py, CONNECTION_ARGUMENT_SPEC.
    DOCUMENTATION = r"""
options:
  endpoint:
    description:
      - The LXD (or Incus) daemon to ask, as a unix socket path (C(unix://) prefix allowed) or an
        C(https://HOST[:PORT]) URL (port 8443 when none is given).
      - When not set, the first socket that answers among C($LXD_DIR/unix.socket),
        C(/var/lib/lxd/unix.socket), C(/var/snap/lxd/common/lxd/unix.socket) and
        C(/var/lib/incus/unix.socket); the failure message lists what was tried.
    type: str
  project:
    description:
      - The LXD project, sent with every request.
    type: str
    default: default
  client_cert:
    description:
      - Client certificate (PEM) for an C(https://) O(endpoint); the server must trust it
        (C(lxc config trust add)).
      - When not set, the first pair of C(client.crt) and C(client.key) found in C($LXD_CONF),
        C(~/.config/lxc) (the C(lxc) client), C(~/snap/lxd/common/config) (the snap's C(lxc)),
        C($INCUS_CONF) and C(~/.config/incus) (the C(incus) client); C(~) is the home directory of
        the user the module runs as.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Private key (PEM) of O(client_cert).
    type: path
    aliases: [key_file]
  validate_certs:
    description:
      - Whether to verify the certificate of an C(https://) O(endpoint).
      - Leave it on; turn it off only for a test server you reach over a network you trust.
    type: bool
    default: true
  ca_cert:
    description:
      - The CA certificates (PEM) to verify an C(https://) O(endpoint) against, instead of the system's.
      - It may hold the server's own certificate, as C(lxc remote add) keeps it in
        C(~/.config/lxc/servercerts/REMOTE.crt); a server presenting exactly that certificate is
        trusted at whatever address it is reached, as the C(lxc) client does.
      - Only used when O(validate_certs=true).
    type: path
  timeout:
    description:
      - Seconds to wait for any one answer of the LXD API.
      - Commands run inside guests share this time, counted from when the first one starts. However many
        guests hang, the module returns after about this long, and each guest that did not answer in time
        has its own error.
    type: float
    default: 30
requirements:
  - Python 3.8 or later on the host the module runs on (the oldest ansible-core 2.18 supports on targets), and
    nothing beyond its standard library (no pylxd, no requests).
notes:
  - A command run inside a guest has its output recorded by LXD (C(record-output), no websocket), read
    back and deleted at once. On a cluster, any member runs commands in the guests of every other member;
    LXD forwards the command and its operation to the member where the guest runs.
"""
