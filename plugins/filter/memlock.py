# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters for memlock limits written in systemd's syntax.

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


def memlock_problems(settings, option=None):
    """What is wrong with each limit, as a list of sentences; empty when all are good.

    ``settings`` is a list of ``{option, value}`` mappings, or, with ``option``, a mapping of names to limits,
    each named ``option[name]`` in the sentences. A null or empty value means "unset" and is fine.
    """
    if option is not None and isinstance(settings, dict):
        settings = [{"option": f"{option}[{name}]", "value": value} for name, value in settings.items()]
    if not isinstance(settings, (list, tuple)):
        raise AnsibleFilterError("memlock_problems: expected a list of {option, value} mappings, or a mapping of "
                                 "names to limits with the option's name")
    problems = []
    for setting in settings:
        if not isinstance(setting, dict) or "option" not in setting or "value" not in setting:
            raise AnsibleFilterError(f"memlock_problems: {setting!r} is not an {{option, value}} mapping")
        if setting["value"] in (None, ""):
            continue
        try:
            parse_limit(setting["value"], str(setting["option"]))
        except SizeError as exc:
            problems.append(str(exc))
    return problems


class FilterModule:
    def filters(self):
        return {"lxd_memlock": lxd_memlock, "memlock_problems": memlock_problems}
