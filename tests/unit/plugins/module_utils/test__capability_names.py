# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import re

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capability_names import (
    CAP_IPC_LOCK,
    CAP_SYS_RESOURCE,
    CAPABILITY_NAMES,
    capability_name,
)

KERNEL_HEADER = "/usr/include/linux/capability.h"


@pytest.mark.parametrize(
    "number, name",
    [
        (0, "cap_chown"),
        (10, "cap_net_bind_service"),
        (13, "cap_net_raw"),
        (14, "cap_ipc_lock"),
        (21, "cap_sys_admin"),
        (24, "cap_sys_resource"),
        (31, "cap_setfcap"),
        (37, "cap_audit_read"),
        (38, "cap_perfmon"),
        (39, "cap_bpf"),
        (40, "cap_checkpoint_restore"),
        (41, "41"),
        (63, "63"),
    ],
)
def test_capability_names_match_linux_numbers(number, name):
    assert capability_name(number) == name


def test_name_table_covers_linux_up_to_checkpoint_restore():
    assert len(set(CAPABILITY_NAMES)) == 41
    assert all(name == name.lower() and name.startswith("cap_") for name in CAPABILITY_NAMES)
    assert CAP_IPC_LOCK == 14
    assert CAP_SYS_RESOURCE == 24


@pytest.mark.skipif(not os.path.exists(KERNEL_HEADER), reason="no kernel headers installed")
def test_name_table_agrees_with_the_kernel_header():
    with open(KERNEL_HEADER, encoding="ascii") as header:
        defined = dict(re.findall(r"^#define (CAP_[A-Z_]+)\s+(\d+)\s*$", header.read(), re.MULTILINE))
    numbers = {name: int(number) for name, number in defined.items() if name.lower() in CAPABILITY_NAMES}
    assert {name.lower(): number for name, number in numbers.items()} == {
        name: number for number, name in enumerate(CAPABILITY_NAMES) if name.upper() in numbers
    }
    assert len(numbers) == len(CAPABILITY_NAMES)
