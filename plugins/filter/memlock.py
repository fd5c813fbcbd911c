# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters that turn systemd memlock sizes into the forms other tools want.

The documentation of each filter is in the YAML file of the same name next to this one.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import SizeError, format_lxd, parse_limit


def lxd_memlock(limit, option="limits.kernel.memlock"):
    """systemd's LimitMEMLOCK= value (``8M``, ``infinity``, ``64K:1G``) as LXD's limits.kernel.memlock value."""
    try:
        return format_lxd(parse_limit(limit, option))
    except SizeError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"lxd_memlock": lxd_memlock}
