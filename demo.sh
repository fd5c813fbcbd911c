#!/usr/bin/env bash
# The main job on this machine, from nothing: brings up the lab (LXD, images), starts a
# guest on a low memlock limit and shows the limits its processes really get.
#   sudo ./demo.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")" && pwd)
cd "$repo"

step() { printf '\n==> %s\n' "$*"; }

step "bringing up the lab (installs LXD and builds images once; later runs reuse them)"
tests/lab/lab.sh up
venv=$(tests/lab/venv.sh)

guest=vml-demo-guest
step "starting $guest with limits.kernel.memlock=262144 (256 KiB)"
lxc delete --force "$guest" >/dev/null 2>&1 || true
lxc launch --quiet vault-mlock/guest "$guest" -c limits.kernel.memlock=262144
lxc exec "$guest" -- systemctl is-system-running --wait >/dev/null 2>&1 || true

step "what the guest's processes get"
printf '  PID 1 (every service systemd starts): %s\n' \
    "$(lxc exec "$guest" -- grep 'Max locked memory' /proc/1/limits | tr -s ' ')"
printf '  ulimit -l in the guest (KiB):         %s\n' "$(lxc exec "$guest" -- sh -c 'ulimit -l')"
printf '  the LXD daemon itself:                %s\n' \
    "$(grep 'Max locked memory' "/proc/$(lxc query /1.0 | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["environment"]["server_pid"])')/limits" | tr -s ' ')"
lxc delete --force "$guest" >/dev/null
echo
echo "demo: done"
