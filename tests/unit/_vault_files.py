# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Vault and OpenBao configuration files for the tests of their reader and editor."""

from __future__ import annotations

import os

from _files import put

OPENBAO_HCL = """\
# OpenBao on integrated storage
storage "raft" {
  path    = "/var/lib/openbao"
  node_id = "bao1"
  # disable_mlock = false inside a comment is not a setting
}

listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = true
}

api_addr      = "http://127.0.0.1:8200"
cluster_addr  = "http://127.0.0.1:8201"
disable_mlock = false
ui            = true
"""

WITHOUT_LINE = OPENBAO_HCL.replace("disable_mlock = false\n", "")


def vault_tree(root):
    """Configuration files as a server host holds them, under ``root``."""
    put(root, "/etc/openbao/openbao.hcl", OPENBAO_HCL)
    put(root, "/etc/vault.d/10-main.hcl", 'storage "consul" {\n}\n')
    put(root, "/etc/vault.d/20-raft.json", '{"storage": {"raft": {}}}\n')
    put(root, "/etc/vault.d/30-mlock.hcl~", "disable_mlock = false\n")  # an editor's backup
    put(root, "/etc/vault.d/.#40-mlock.hcl", "disable_mlock = false\n")
    put(root, "/etc/vault.d/notes.txt", "disable_mlock = false\n")
    os.makedirs(root / "etc/vault.d/sub.hcl")
    return root
