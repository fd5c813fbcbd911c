# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this doc fragment is **PRIVATE** to the collection. It can change at any time.

from __future__ import annotations


class ModuleDocFragment:
    # What Vault is and what it needs: the options memlock_probe and memlock_facts share
    # (module_utils/_vault_options.py holds their argument spec and checks).
    DOCUMENTATION = r"""
options:
  process:
    description:
      - Process names (as in C(/proc/PID/comm), at most 15 characters are compared) of Vault.
      - Where such a process runs, its own memlock limit is judged.
      - The default finds HashiCorp Vault and OpenBao.
    type: list
    elements: str
    default: [vault, bao]
  units:
    description:
      - Vault's systemd units. Where no O(process) runs, the machine's systemd is asked about these units
        (state, result, the C(LimitMEMLOCK=) it resolved) and the journal's last lines of each unit's last run are
        read, in one command.
      - A unit that failed (or waits to restart) and whose last run died locking its memory (C(Failed to lock
        memory), C(mlockall)) is judged V(too_low), with the unit's state and that journal line in the message.
      - Any other unit is judged on what its service gets when it starts, clamped as systemd clamps it.
      - A machine with neither a running O(process) nor one of these units has no Vault and gets V(absent).
      - A name without a suffix gets C(.service).
    type: list
    elements: str
    default: [vault.service, openbao.service]
  required:
    description:
      - The most memory Vault may ever lock, as systemd writes sizes (C(512M), C(2G), V(infinity)); suffixes
        are powers of 1024.
      - C(mlockall) with C(MCL_CURRENT|MCL_FUTURE), as Vault calls it, counts every later mapping too, so a
        finite limit that fits today kills Vault once it grows past it. Without O(required) only an unlimited
        limit (or C(CAP_IPC_LOCK) outside a user namespace) is V(ok); a finite one is V(finite_limit).
      - With O(required), a limit that covers it (and a running process's whole C(VmSize)) is V(ok).
    type: str
notes:
  - A service does not get what C(/proc/1/limits) shows. systemd raises PID 1's own soft limit at boot (up to its
    hard limit without C(CAP_SYS_RESOURCE), further with it) and gives each service its unit's C(LimitMEMLOCK=),
    or, by default, what PID 1 inherited raised to 8 MiB, lowered to PID 1's hard limit when the service may not
    raise it (any unprivileged guest).
"""
