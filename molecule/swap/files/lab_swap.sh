#!/bin/sh
# The swap molecule/swap gives the lab machine while it runs, and takes away: a zram device (compressed RAM,
# /dev/zram0) and a swap file in the checkout's .cache. Only what this script made is ever removed: zram0 only
# when its marker says it was set up here, the swap file only at its own path.
#   lab_swap.sh check    exit 77, saying why, when the machine has swap of its own or no free zram0
#   lab_swap.sh zram     64 MiB of zram0 as swap
#   lab_swap.sh file     a 64 MiB swap file as swap
#   lab_swap.sh off      both taken away again (whatever state a failed run left)
#   lab_swap.sh state    what /proc/swaps, `swapon --show` and zram0 say
set -u
dir=${VML_SWAP_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)/.cache/swap}
file=$dir/swapfile
zram=/sys/block/zram0
marker=$dir/zram0.ours

areas() { tail -n +2 /proc/swaps; }

case "${1:-}" in
    check)
        if [ -n "$(areas)" ]; then
            echo "this machine has swap of its own ($(areas | awk '{ print $1 }' | tr '\n' ' ' | sed 's/ $//')):" \
                 "the scenario judges swap it creates itself and must not touch the machine's; run it where" \
                 "swapon --show prints nothing"
            exit 77
        fi
        if [ ! -e "$zram/disksize" ]; then
            echo "no zram device here ($zram): the kernel's zram module is not loaded"
            exit 77
        fi
        if [ "$(cat "$zram/disksize")" != 0 ] && [ ! -e "$marker" ]; then
            echo "zram0 is in use by something else (disksize $(cat "$zram/disksize"))"
            exit 77
        fi ;;
    zram)
        mkdir -p "$dir" && touch "$marker" || exit 1
        echo 64M >"$zram/disksize" && mkswap /dev/zram0 >/dev/null && swapon /dev/zram0 ;;
    file)
        mkdir -p "$dir" || exit 1
        rm -f "$file"
        dd if=/dev/zero of="$file" bs=1M count=64 status=none && chmod 0600 "$file" \
            && mkswap "$file" >/dev/null && swapon "$file" ;;
    off)
        rc=0
        if areas | awk '{ print $1 }' | grep -qxF "$file"; then swapoff "$file" || rc=1; fi
        rm -f "$file"
        if [ -e "$marker" ]; then
            if areas | awk '{ print $1 }' | grep -qx /dev/zram0; then swapoff /dev/zram0 || rc=1; fi
            echo 1 >"$zram/reset" && rm -f "$marker" || rc=1
        fi
        exit $rc ;;
    state)
        echo "proc_swaps_rows=$(areas | wc -l)"
        echo "swapon_show=$(swapon --show --noheadings | wc -l)"
        echo "zram0_disksize=$(cat "$zram/disksize" 2>/dev/null || echo none)"
        echo "swap_file=$([ -e "$file" ] && echo present || echo absent)" ;;
    *)
        echo "usage: $0 check|zram|file|off|state" >&2
        exit 2 ;;
esac
