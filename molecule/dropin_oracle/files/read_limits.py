# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Print, as JSON, the LimitMEMLOCK= that memlock_dropin finds in force for each named unit: its
own reading of the unit files (plan_dropin, as the module calls it with state=absent), run in the
guest on the guest's files, [soft, hard] in bytes or "infinity" as `systemctl show` prints them.

Run with the collection's module_utils under the directory of its first argument:
    python3 read_limits.py ROOT UNIT...   (ROOT holds ansible_collections/vault_mlock/lxd)
"""

import json
import sys

sys.path.insert(0, sys.argv[1])

# pylint: disable=wrong-import-position
from ansible_collections.vault_mlock.lxd.plugins.module_utils._dropins import DropinContent, plan_dropin
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import memlock_report
from ansible_collections.vault_mlock.lxd.plugins.module_utils._systemd import SYSTEM_ROOT, resolve_unit


def shown(size):
    return "infinity" if size is None else str(size)


def main(units):
    found = {}
    for name in units:
        unit = resolve_unit(name, SYSTEM_ROOT)
        plan = plan_dropin(unit, "absent", DropinContent(), root=SYSTEM_ROOT)
        report = memlock_report(plan.effective.limit)
        found[unit] = None if report is None else [shown(report.soft_bytes), shown(report.hard_bytes)]
    print(json.dumps(found))


if __name__ == "__main__":
    main(sys.argv[2:])
