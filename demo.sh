#!/usr/bin/env bash
# The main job, from nothing, on this machine:
#   sudo ./demo.sh                 build the lab scene, show the failing table, fix it, show it passing
#   sudo ./demo.sh -i INVENTORY    the same three playbook runs against your own inventory
#                                  (groups lxd_hosts and vault_guests; no lab is built)
# The lab scene: a nested LXD host whose daemon runs under LimitMEMLOCK=512K and a guest whose
# Vault (a compiled mlockall() stand-in: no Vault binary can be downloaded here) cannot lock
# its memory. Then `ansible-playbook vault_mlock.lxd.site` fixes it.
set -euo pipefail
repo=$(cd "$(dirname "$0")" && pwd)
cd "$repo"

inventory=""
while [ $# -gt 0 ]; do
    case "$1" in
        -i|--inventory) inventory=$2; shift 2 ;;
        *) echo "usage: $0 [-i INVENTORY]" >&2; exit 2 ;;
    esac
done

started=$(date +%s)
step() { printf '\n==> [%4ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }

step "setting up: LXD, the lab images (built once, then cached) and the Python environment"
tests/lab/lab.sh up
venv=$(tests/lab/venv.sh)
mkdir -p .cache/collections/ansible_collections/vault_mlock
ln -sfn "$repo" .cache/collections/ansible_collections/vault_mlock/lxd
export ANSIBLE_COLLECTIONS_PATH="$repo/.cache/collections" PATH="$venv/bin:$PATH"
export ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ANSIBLE_PYTHON_INTERPRETER=auto_silent

# progress LOG: shows each play and task of a long run as it starts; the whole output goes to LOG.
progress() { tee "$1" | grep --line-buffered -E '^(PLAY|TASK) \[' | sed -u 's/ \**$//; s/^/    /'; }

if [ -z "$inventory" ]; then
    inventory=playbooks/inventory/example.yml
    lxc delete --force vml-demo-host >/dev/null 2>&1 || true  # a fresh scene every time
    step "building the scene: nested LXD host vml-demo-host (daemon on 512K), guest vml-demo-vault running Vault"
    ansible-playbook -i "$inventory" tests/lab/scene.yml 2>&1 | progress .cache/demo-scene.log \
        || { tail -n 40 .cache/demo-scene.log; exit 1; }
fi

step "before: what every guest may lock (memlock_verify), expected to fail"
if ansible-playbook -i "$inventory" vault_mlock.lxd.site --tags memlock_verify; then
    before="passed"
else
    before="failed"
fi

step "fixing it: ansible-playbook vault_mlock.lxd.site (daemon drop-in and restart, guest restart, Vault's capability and unit drop-in, verify)"
ansible-playbook -i "$inventory" vault_mlock.lxd.site | tee .cache/demo-site.log

step "again: a second run changes nothing"
ansible-playbook -i "$inventory" vault_mlock.lxd.site >.cache/demo-again.log 2>&1 \
    || { tail -n 40 .cache/demo-again.log; exit 1; }
changed=$(awk '/PLAY RECAP/ {recap=1} recap && /changed=/ {sub(/.*changed=/, ""); sub(/ .*/, ""); total += $0} END {print total + 0}' .cache/demo-again.log)
echo "    tasks changed on the second run: $changed"

echo
[ "$inventory" != playbooks/inventory/example.yml ] || echo "The scene stays up to look at (lxc exec vml-demo-vault ...: remote vml-demo); tests/lab/lab.sh down removes it."
echo "demo: memlock_verify $before before the fix and passed after it; second run changed $changed tasks;" \
     "$(( $(date +%s) - started ))s in all"
