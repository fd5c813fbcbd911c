# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Print, as JSON, the daemon (incus.service on an Incus host, else lxd.service) and each named
guest (NAME, or PROJECT/NAME outside the default project): PID, status and memlock limit, read from
this host's /proc (the guest's PID 1 as the host sees it)."""

import json
import shutil
import subprocess
import sys


def memlock(pid):
    with open(f"/proc/{pid}/limits", encoding="ascii") as limits:
        for line in limits:
            if line.startswith("Max locked memory"):
                return line.split()[3:5]
    return None


client, unit = ("incus", "incus.service") if shutil.which("incus") else ("lxc", "lxd.service")
main_pid = int(subprocess.check_output(["systemctl", "show", "--property=MainPID", "--value", unit]))
state = {"daemon": {"pid": main_pid, "memlock": memlock(main_pid)}}
for guest in sys.argv[1:]:
    project, name = guest.split("/") if "/" in guest else ("default", guest)
    found = json.loads(subprocess.check_output([client, "query", f"/1.0/instances/{name}/state?project={project}"]))
    pid = found["pid"]
    state[guest] = {"status": found["status"], "pid": pid, "memlock": memlock(pid) if pid > 0 else None}
print(json.dumps(state))
