#!/bin/sh
# openbao.service running bao, started and enabled: `openbao-service.sh raft` with the configuration at
# /etc/openbao/openbao.hcl (pushed before), `openbao-service.sh dev` as a dev server, which keeps everything
# in memory and comes up unsealed at every start.
set -eu
case "$1" in
    raft) exec_start="/usr/local/bin/bao server -config=/etc/openbao/openbao.hcl" ;;
    dev) exec_start="/usr/local/bin/bao server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:8200" ;;
    *) echo "usage: $0 raft|dev" >&2; exit 2 ;;
esac
install -d -m 0700 /var/lib/openbao
cat >/etc/systemd/system/openbao.service <<UNIT
[Unit]
Description=OpenBao
[Service]
Type=notify
ExecStart=$exec_start
TimeoutStartSec=30
Restart=no
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now --quiet openbao.service
