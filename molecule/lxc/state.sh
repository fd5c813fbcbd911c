#!/bin/sh
# One line of JSON about container vault, read on the LXC host: its init's and monitor's memlock limits,
# and the stand-in's PID and VmLck (0 when none runs).
set -eu
init=$(lxc-info -n vault -p | awk '/^PID:/ {print $2}')
monitor=$(awk '{print $4}' "/proc/$init/stat")
limit() { awk '/^Max locked memory/ {printf "[\"%s\", \"%s\"]", $4, $5}' "/proc/$1/limits"; }
vault=$(pgrep -x vault || true)
vmlck=0
[ -z "$vault" ] || vmlck=$(awk '/^VmLck:/ {print $2 * 1024}' "/proc/$vault/status")
printf '{"init": %s, "init_memlock": %s, "monitor": %s, "monitor_memlock": %s, "vault": "%s", "vmlck": %s}\n' \
    "$init" "$(limit "$init")" "$monitor" "$(limit "$monitor")" "$vault" "$vmlck"
