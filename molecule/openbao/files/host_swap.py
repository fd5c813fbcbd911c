"""On the LXD host: the swap judgement of an instance's bao, read through the host's /proc.

host_swap.py INSTANCE UNIT CONFIGURED_MEMORY_SWAP_MAX prints one JSON object per bao process of
the instance (found by its cgroup, lxc.payload.INSTANCE), with the judgement and its sentence.
"""

import json
import os
import sys

from ansible_collections.vault_mlock.lxd.plugins.module_utils._swap import (
    gather_cgroup_swap,
    host_swap_from_texts,
    judge_swap,
)


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return stream.read()
    except OSError:
        return None


instance, unit, configured = sys.argv[1:4]
mountinfo = read("/proc/self/mountinfo")
host = host_swap_from_texts(read("/proc/meminfo"), read("/proc/swaps"))
for entry in sorted(os.listdir("/proc")):
    if not entry.isdigit() or (read(f"/proc/{entry}/comm") or "").strip() != "bao":
        continue
    cgroup_text = read(f"/proc/{entry}/cgroup") or ""
    if f"/lxc.payload.{instance}/" not in cgroup_text or f"/{unit}" not in cgroup_text:
        continue
    cgroup = gather_cgroup_swap(cgroup_text, mountinfo)
    judged = judge_swap(f"bao (host PID {entry})", host, cgroup, configured, unit)
    print(json.dumps(dict(pid=int(entry), judgement=judged.judgement, sentence=judged.sentence,
                          cgroup_version=cgroup.version, cgroup=cgroup.cgroup, host_swap_bytes=host.total_bytes)))
