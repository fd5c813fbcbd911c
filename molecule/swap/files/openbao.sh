#!/bin/sh
# bao under openbao.service (user openbao), its configuration in /etc/openbao/openbao.hcl; started, and
# its state printed.
set -eu
id openbao >/dev/null 2>&1 || useradd --system --home-dir /var/lib/openbao --no-create-home \
    --shell /usr/sbin/nologin openbao
install -d -m 0750 -o openbao -g openbao /var/lib/openbao
install -d -m 0750 -o root -g openbao /etc/openbao
install -m 0640 -o root -g openbao /root/openbao.hcl /etc/openbao/openbao.hcl
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
systemctl daemon-reload
systemctl start openbao.service
echo "state=$(systemctl is-active openbao.service)"
