#!/usr/bin/env bash
# The test lab: a real LXD daemon and cached guest images, on a fresh Debian 12 machine or
# on a workstation that already runs LXD. Safe to run again; copes with leftovers.
#
#   tests/lab/lab.sh up        packages, daemon, storage, images (default)
#   tests/lab/lab.sh images    build/import the images only
#   tests/lab/lab.sh status    what answers and which images are there
#   tests/lab/lab.sh down      delete the lab's instances; stop the daemon if the lab started it
#   tests/lab/lab.sh purge     down, then remove the lab's images and the image cache
#
# Images (aliases below) are built with debootstrap and cached under $VML_CACHE keyed by
# the hash of their recipe, so a second run imports nothing and builds nothing.
set -euo pipefail

VML_CACHE=${VML_CACHE:-/var/cache/vault-mlock-lxd}
VML_LOG_DIR=${VML_LOG_DIR:-/var/log/vault-mlock-lxd}
VML_MIRROR=${VML_MIRROR:-http://deb.debian.org/debian}
VML_SUITE=${VML_SUITE:-bookworm}
GUEST_ALIAS=vault-mlock/guest
HOST_ALIAS=vault-mlock/lxd-host
TINY_ALIAS=vault-mlock/tiny
# Instances the lab and its tests create carry this prefix; `down` deletes only these.
INSTANCE_PREFIX=vml-

GUEST_PACKAGES=systemd,systemd-sysv,libcap2-bin,python3,procps,dbus,attr
# What a nested LXD host needs beyond the guest (LAB.md: without iproute2 lxd.service fails).
HOST_PACKAGES="lxd lxd-client iproute2 iptables squashfs-tools xz-utils rsync acl attr uidmap python3-pylxd"
RECIPE_VERSION=3

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf '[lab] error: %s\n' "$*" >&2; exit 1; }

lxd_answers() { timeout 10 lxc query /1.0 >/dev/null 2>&1; }

ensure_packages() {
    local missing=()
    command -v lxd >/dev/null || missing+=(lxd)
    command -v lxc >/dev/null || missing+=(lxd-client)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v setfattr >/dev/null || missing+=(attr)
    command -v getcap >/dev/null || missing+=(libcap2-bin)
    command -v gcc >/dev/null || missing+=(gcc libc6-dev)
    [ -x /bin/busybox ] || missing+=(busybox-static)
    command -v shellcheck >/dev/null || missing+=(shellcheck)  # ansible-test sanity lints the scripts
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# On machines without systemd and with a split cgroup v1 layout, nested LXD only works when
# the outer daemon sees cgroup2 alone: start it in a private mount namespace (LAB.md).
start_daemon() {
    mkdir -p "$VML_LOG_DIR"
    if [ -d /run/systemd/system ] && systemctl cat lxd.service >/dev/null 2>&1; then
        log "starting lxd.service"
        systemctl start lxd.service
    else
        log "starting lxd in a private cgroup2 mount namespace"
        # shellcheck disable=SC2016  # $0 expands in the inner shell, to the log file
        local script='umount -l /sys/fs/cgroup 2>/dev/null || true
            mount -t cgroup2 none /sys/fs/cgroup
            exec lxd --group root --logfile "$0"'
        setsid unshare -m --propagation private sh -c "$script" "$VML_LOG_DIR/lxd.log" \
            </dev/null >>"$VML_LOG_DIR/lxd.stdout" 2>&1 &
        echo $! >"$VML_CACHE/lxd.pid"
    fi
    lxd waitready --timeout 60 || die "the LXD daemon did not become ready; see $VML_LOG_DIR/lxd.log"
}

ensure_daemon() {
    mkdir -p "$VML_CACHE"
    if lxd_answers; then
        log "an LXD daemon answers; using it"
    else
        start_daemon
    fi
    if ! lxc storage list --format csv | grep -q .; then
        log "initialising LXD: dir storage pool, default profile with a root disk, no network"
        lxd init --preseed <<'EOF'
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root:
      path: /
      pool: default
      type: disk
EOF
    fi
}

recipe_hash() {
    # The recipe of an image: this script's image-building parts and their inputs.
    printf '%s\n' "$RECIPE_VERSION" "$VML_SUITE" "$GUEST_PACKAGES" "$HOST_PACKAGES" "$1" \
        "$(declare -f build_rootfs build_host_rootfs build_tiny_rootfs pack_image)" | sha256sum | cut -c1-16
}

build_rootfs() {  # $1: target dir
    debootstrap --variant=minbase --include="$GUEST_PACKAGES" "$VML_SUITE" "$1" "$VML_MIRROR" \
        >"$VML_LOG_DIR/debootstrap.log" 2>&1 || die "debootstrap failed; see $VML_LOG_DIR/debootstrap.log"
    # Guests have no network: keep them from waiting for it at boot.
    chroot "$1" systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1 || true
    echo "vault-mlock-guest" >"$1/etc/hostname"
    chroot "$1" apt-get clean
}

build_host_rootfs() {  # $1: target dir, a copy of the guest rootfs
    mount --bind /proc "$1/proc"
    # shellcheck disable=SC2086
    if ! chroot "$1" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends $HOST_PACKAGES" \
            >"$VML_LOG_DIR/host-packages.log" 2>&1; then
        umount "$1/proc"
        die "installing the LXD-host packages failed; see $VML_LOG_DIR/host-packages.log"
    fi
    umount "$1/proc"
    chroot "$1" apt-get clean
    # Unprivileged inner guests need subordinate ids for root (LAB.md).
    echo "root:1000000:1000000" >"$1/etc/subuid"
    echo "root:1000000:1000000" >"$1/etc/subgid"
    echo "vault-mlock-lxd-host" >"$1/etc/hostname"
}

build_tiny_rootfs() {  # $1: target dir. A busybox guest: cheap enough to run a hundred.
    mkdir -p "$1"/{bin,sbin,etc,proc,sys,dev,tmp,root,run}
    cp /bin/busybox "$1/bin/busybox"
    for applet in sh cat ls ps sleep init mount; do ln -sf busybox "$1/bin/$applet"; done
    ln -sf ../bin/busybox "$1/sbin/init"
    printf '::sysinit:/bin/mount -t proc proc /proc\n::respawn:/bin/sleep 2147483647\n' >"$1/etc/inittab"
    echo "root:x:0:0:root:/root:/bin/sh" >"$1/etc/passwd"
    echo "root:x:0:" >"$1/etc/group"
}

pack_image() {  # $1: rootfs dir, $2: output dir, $3: description, $4: recipe hash
    mkdir -p "$2/meta"
    cat >"$2/meta/metadata.yaml" <<EOF
architecture: $(uname -m)
creation_date: $(date +%s)
properties:
  description: $3
  os: debian
  release: $VML_SUITE
  vault_mlock_recipe: "$4"
EOF
    tar -C "$2/meta" -czf "$2/meta.tar.gz" metadata.yaml
    tar -C "$1" --numeric-owner -czf "$2/rootfs.tar.gz" .
}

image_recipe_in_lxd() {  # $1: alias -> the recipe hash of the image LXD holds under it
    lxc query "/1.0/images/aliases/$1" 2>/dev/null | python3 -c '
import json, sys
print(json.load(sys.stdin)["target"])' 2>/dev/null | while read -r fingerprint; do
        lxc query "/1.0/images/$fingerprint" | python3 -c '
import json, sys
print(json.load(sys.stdin)["properties"].get("vault_mlock_recipe", ""))'
    done
}

# ensure_image ALIAS BUILDER DESCRIPTION [BASE_ROOTFS]
ensure_image() {
    local alias=$1 builder=$2 description=$3 base=${4:-}
    local hash dir
    hash=$(recipe_hash "$alias")
    dir="$VML_CACHE/images/${alias//\//_}-$hash"
    if [ "$(image_recipe_in_lxd "$alias")" = "$hash" ] && [ -f "$dir/rootfs.tar.gz" ]; then
        log "image $alias is current (recipe $hash)"
        ln -sfn "$dir" "$VML_CACHE/images/${alias//\//_}"
        return
    fi
    if [ ! -f "$dir/rootfs.tar.gz" ]; then
        log "building image $alias (recipe $hash); this takes a minute or two once"
        rm -rf "$dir.tmp"
        mkdir -p "$dir.tmp"
        if [ -n "$base" ]; then
            cp -a "$base" "$dir.tmp/rootfs"
        fi
        "$builder" "$dir.tmp/rootfs"
        pack_image "$dir.tmp/rootfs" "$dir.tmp" "$description" "$hash"
        rm -rf "$dir.tmp/rootfs" "$dir"
        mv "$dir.tmp" "$dir"
    fi
    log "importing image $alias"
    lxc image alias delete "$alias" >/dev/null 2>&1 || true
    lxc image import "$dir/meta.tar.gz" "$dir/rootfs.tar.gz" --alias "$alias" >/dev/null
    # Nested LXD hosts import the same tarballs; tests find them under a fixed name.
    ln -sfn "$dir" "$VML_CACHE/images/${alias//\//_}"
}

ensure_images() {
    mkdir -p "$VML_CACHE/images" "$VML_LOG_DIR"
    local guest_hash guest_rootfs
    guest_hash=$(recipe_hash "$GUEST_ALIAS")
    guest_rootfs="$VML_CACHE/rootfs/guest-$guest_hash"
    # The unpacked guest rootfs is the base of the LXD-host image; keep it beside the tarballs.
    if [ ! -d "$guest_rootfs" ] && [ "$(image_recipe_in_lxd "$HOST_ALIAS")" != "$(recipe_hash "$HOST_ALIAS")" ]; then
        log "debootstrap $VML_SUITE for the guest image"
        rm -rf "$guest_rootfs.tmp"
        mkdir -p "$(dirname "$guest_rootfs")"
        build_rootfs "$guest_rootfs.tmp"
        mv "$guest_rootfs.tmp" "$guest_rootfs"
    fi
    ensure_image "$GUEST_ALIAS" true "Debian $VML_SUITE with systemd (vault_mlock.lxd guest)" "$guest_rootfs"
    ensure_image "$HOST_ALIAS" build_host_rootfs "Debian $VML_SUITE with LXD inside (vault_mlock.lxd nested host)" "$guest_rootfs"
    ensure_image "$TINY_ALIAS" build_tiny_rootfs "busybox guest (vault_mlock.lxd benchmarks)"
}

status() {
    if lxd_answers; then
        echo "LXD: $(lxc query /1.0 | python3 -c 'import json,sys; e=json.load(sys.stdin)["environment"]; print(e["server"], e["server_version"], "pid", e.get("server_pid"))')"
    else
        echo "LXD: not answering"
    fi
    lxc image list --format csv -c lfs 2>/dev/null | grep vault-mlock || echo "images: none"
    lxc list --format csv -c ns 2>/dev/null | grep "^$INSTANCE_PREFIX" || echo "instances: none"
}

down() {
    if lxd_answers; then
        local name
        for name in $(lxc list --format csv -c n | grep "^$INSTANCE_PREFIX" || true); do
            log "deleting instance $name"
            lxc delete --force "$name"
        done
        for name in $(lxc remote list --format csv | cut -d, -f1 | sed 's/ (current)//' | grep "^$INSTANCE_PREFIX" || true); do
            log "removing lxc remote $name"
            lxc remote remove "$name"
        done
    fi
    if [ -f "$VML_CACHE/lxd.pid" ]; then
        log "stopping the LXD daemon the lab started"
        lxd shutdown --timeout 60 >/dev/null 2>&1 || kill "$(cat "$VML_CACHE/lxd.pid")" 2>/dev/null || true
        rm -f "$VML_CACHE/lxd.pid"
    fi
}

purge() {
    if lxd_answers; then
        local alias
        for alias in "$GUEST_ALIAS" "$HOST_ALIAS" "$TINY_ALIAS"; do
            lxc image delete "$alias" >/dev/null 2>&1 || true
        done
    fi
    down
    rm -rf "$VML_CACHE/images" "$VML_CACHE/rootfs"
}

[ "$(id -u)" = 0 ] || die "the lab needs root (it installs packages and runs an LXD daemon)"
case "${1:-up}" in
    up) ensure_packages; ensure_daemon; ensure_images; status ;;
    images) ensure_daemon; ensure_images ;;
    status) status ;;
    down) down ;;
    purge) purge ;;
    *) die "usage: $0 [up|images|status|down|purge]" ;;
esac
