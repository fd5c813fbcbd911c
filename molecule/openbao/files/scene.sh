#!/bin/sh
# The guest a new user would have: bao under openbao.service (user openbao), its configuration in
# /etc/openbao/openbao.hcl (from /root/openbao.hcl.orig, kept to compare with), raft storage, and the drop-in
# vault_mlock.lxd.vault_guest writes for a server that does not lock its memory (MemorySwapMax=0).
# Beside it, Vault (the compiled stand-in, already at /opt/vault/bin/vault) under vault.service,
# reading the directory /etc/vault.d; never started. Then starts openbao.service and prints the
# outcome and the journal.
set -eu
id openbao >/dev/null 2>&1 || useradd --system --home-dir /var/lib/openbao --no-create-home \
    --shell /usr/sbin/nologin openbao
install -d -m 0750 -o openbao -g openbao /var/lib/openbao
install -d -m 0750 -o root -g openbao /etc/openbao
install -m 0640 -o root -g openbao /root/openbao.hcl.orig /etc/openbao/openbao.hcl

cat >/etc/systemd/system/openbao.service <<'UNIT'
[Unit]
Description=OpenBao
[Service]
Type=notify
User=openbao
Group=openbao
ExecStart=/usr/local/bin/bao server -config=/etc/openbao/openbao.hcl
Restart=no
UNIT
mkdir -p /etc/systemd/system/openbao.service.d
printf '[Service]\nMemorySwapMax=0\n' >/etc/systemd/system/openbao.service.d/00-no-swap.conf

mkdir -p /etc/vault.d
cat >/etc/vault.d/10-storage.hcl <<'HCL'
storage "raft" {
  path    = "/opt/vault/data"
  node_id = "vml-openbao-vault"
}
HCL
cat >/etc/vault.d/20-listener.json <<'JSON'
{
  "listener": {"tcp": {"address": "127.0.0.1:8210", "tls_disable": true}},
  "api_addr": "http://127.0.0.1:8210"
}
JSON
printf '[Service]\nExecStart=/opt/vault/bin/vault server -config=/etc/vault.d\n' >/etc/systemd/system/vault.service
systemctl daemon-reload

set +e
systemctl start openbao.service
echo "rc=$?"
echo "state=$(systemctl is-active openbao.service)"
journalctl -u openbao.service --no-pager -o cat
