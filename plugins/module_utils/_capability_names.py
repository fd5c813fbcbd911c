# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Linux capabilities by number and by libcap's name (linux/capability.h, libcap's cap_names)."""

from __future__ import annotations

# Linux capability numbers 0 .. 40 (CAP_CHECKPOINT_RESTORE): the index is the number.
CAPABILITY_NAMES = (
    "cap_chown",  # 0
    "cap_dac_override",  # 1
    "cap_dac_read_search",  # 2
    "cap_fowner",  # 3
    "cap_fsetid",  # 4
    "cap_kill",  # 5
    "cap_setgid",  # 6
    "cap_setuid",  # 7
    "cap_setpcap",  # 8
    "cap_linux_immutable",  # 9
    "cap_net_bind_service",  # 10
    "cap_net_broadcast",  # 11
    "cap_net_admin",  # 12
    "cap_net_raw",  # 13
    "cap_ipc_lock",  # 14
    "cap_ipc_owner",  # 15
    "cap_sys_module",  # 16
    "cap_sys_rawio",  # 17
    "cap_sys_chroot",  # 18
    "cap_sys_ptrace",  # 19
    "cap_sys_pacct",  # 20
    "cap_sys_admin",  # 21
    "cap_sys_boot",  # 22
    "cap_sys_nice",  # 23
    "cap_sys_resource",  # 24
    "cap_sys_time",  # 25
    "cap_sys_tty_config",  # 26
    "cap_mknod",  # 27
    "cap_lease",  # 28
    "cap_audit_write",  # 29
    "cap_audit_control",  # 30
    "cap_setfcap",  # 31
    "cap_mac_override",  # 32
    "cap_mac_admin",  # 33
    "cap_syslog",  # 34
    "cap_wake_alarm",  # 35
    "cap_block_suspend",  # 36
    "cap_audit_read",  # 37
    "cap_perfmon",  # 38
    "cap_bpf",  # 39
    "cap_checkpoint_restore",  # 40
)
CAPABILITY_NUMBERS = {name: number for number, name in enumerate(CAPABILITY_NAMES)}
CAP_IPC_LOCK = CAPABILITY_NUMBERS["cap_ipc_lock"]  # lets a process lock memory (mlock)
# lets a process raise a hard limit; the kernel checks it in the initial user namespace
CAP_SYS_RESOURCE = CAPABILITY_NUMBERS["cap_sys_resource"]

# The xattr holds two 32-bit words per set; libcap accepts numbers for bits it has no name for.
CAPABILITY_BITS = 64
ALL_NAMED = frozenset(range(len(CAPABILITY_NAMES)))

ACCEPTED_NAMES = (
    "'all', a capability number 0-63, or one of " + ", ".join(CAPABILITY_NAMES) + " (case does not matter)"
)


def capability_name(number: int) -> str:
    """libcap's name of a capability: lowercase, or the decimal number when it has no name."""
    if 0 <= number < len(CAPABILITY_NAMES):
        return CAPABILITY_NAMES[number]
    return str(number)
