#!/bin/sh
# vault.service and vault-agent.service, both running /usr/local/bin/vault (a link to the stand-in); the agent's
# unit keeps only CAP_SYSLOG in its bounding set. Prints each one's state and the binary's capability.
set -eu
ln -sfn /opt/vault/bin/vault /usr/local/bin/vault
mkdir -p /etc/vault.d
cat >/etc/vault.d/vault.hcl <<'HCL'
storage "file" {
  path = "/var/lib/vault"
}
listener "tcp" {
  address     = "127.0.0.1:8210"
  tls_disable = true
}
HCL
cat >/etc/systemd/system/vault.service <<'UNIT'
[Service]
ExecStart=/usr/local/bin/vault server -config=/etc/vault.d/vault.hcl
UNIT
cat >/etc/systemd/system/vault-agent.service <<'UNIT'
[Service]
ExecStart=/usr/local/bin/vault agent -config=/etc/vault.d/agent.hcl
CapabilityBoundingSet=CAP_SYSLOG
UNIT
systemctl daemon-reload
systemctl start vault.service vault-agent.service
sleep 1
echo "vault=$(systemctl is-active vault.service)"
echo "agent=$(systemctl is-active vault-agent.service)"
echo "agent_bounding=$(systemctl show -p CapabilityBoundingSet --value vault-agent.service)"
echo "caps=$(python3 -c 'import os
try:
    os.getxattr("/opt/vault/bin/vault", "security.capability"); print("some")
except OSError:
    pass')"
