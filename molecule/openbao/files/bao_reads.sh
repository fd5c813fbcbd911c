#!/bin/sh
# How the real bao reads each configuration file given: starts `bao server -config=FILE` for all of
# them at once (each file has its own raft directory FILE.data and ports), stops them after a few seconds,
# and prints one line per file: FILE CLASS, where CLASS is
#   refused      "OpenBao has dropped support for mlock" (it read disable_mlock as false)
#   unsupported  "unknown or unsupported field disable_mlock" (it read the key, not as false)
#   bad_value    "error parsing 'disable_mlock'" (it could not read the value)
#   started      "OpenBao server started", none of the above
#   other        anything else (the last line of its output follows)
set -u
for file in "$@"; do
    mkdir -p "$file.data"
    timeout 5 "${BAO:-/usr/local/bin/bao}" server -config="$file" >"$file.out" 2>&1 &
done
wait
for file in "$@"; do
    out="$file.out"
    if grep -q "OpenBao has dropped support for mlock" "$out"; then class=refused
    elif grep -q "unknown or unsupported field disable_mlock" "$out"; then class=unsupported
    elif grep -q "error parsing 'disable_mlock'" "$out"; then class=bad_value
    elif grep -q "OpenBao server started" "$out"; then class=started
    else class="other $(tail -n 1 "$out")"
    fi
    echo "$file $class"
done
