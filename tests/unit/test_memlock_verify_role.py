# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""memlock_verify's tasks, their expressions rendered with the collection's real filters: what fails with and
without memlock_verify_fail_on_unknown, and the textfile written by copy (atomic) before the failure.

molecule/e2e runs the role on real guests; these checks fail at once when the wiring breaks."""

from __future__ import annotations

import os

import jinja2
import yaml

from ansible_collections.vault_mlock.lxd.plugins.filter.memlock_report import FilterModule

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROBE = {"project": "default", "instances": [
    {"name": "g1", "verdict": "unknown", "message": "guest g1: could not tell"},
    {"name": "g2", "verdict": "too_low", "message": "guest g2: too low"},
    {"name": "g3", "verdict": "ok", "message": "guest g3: fine"},
]}


def _tasks():
    with open(os.path.join(_REPO, "roles", "memlock_verify", "tasks", "main.yml"), encoding="utf-8") as handle:
        return {task["name"]: task for task in yaml.safe_load(handle)}


def _render(expression, **variables):
    environment = jinja2.Environment()
    environment.filters.update({f"vault_mlock.lxd.{name}": function
                                for name, function in FilterModule().filters().items()})
    return environment.from_string("{{ (" + expression.strip()[2:-2] + ") | tojson }}").render(**variables)


def _failures(fail_on_unknown):
    task = _tasks()["Fail when a guest's Vault cannot lock its memory, now or once it grows"]
    return yaml.safe_load(_render(task["vars"]["_memlock_verify_failures"], _memlock_verify_probe=PROBE,
                                  memlock_verify_fail_on_unknown=fail_on_unknown))


def test_unknown_fails_only_when_asked():
    assert _failures(False) == ["guest g2: too low"]
    assert _failures(True) == ["guest g1: could not tell", "guest g2: too low"]


def test_the_metrics_fact_follows_the_same_rule():
    task = _tasks()["Keep the probe's report and every guest's figures"]
    for fail_on_unknown, failing in ((False, [False, True, False]), (True, [True, True, False])):
        metrics = yaml.safe_load(_render(task["ansible.builtin.set_fact"]["memlock_verify_metrics"],
                                         _memlock_verify_probe=PROBE, memlock_verify_fail_on_unknown=fail_on_unknown))
        assert [item["failing"] for item in metrics] == failing


def test_the_textfile_is_written_atomically_before_the_failure():
    names = list(_tasks())
    textfile = names.index("Write the figures for node_exporter's textfile collector")
    assert textfile < names.index("Fail when a guest's Vault cannot lock its memory, now or once it grows")
    task = _tasks()[names[textfile]]
    assert "ansible.builtin.copy" in task  # a temporary file renamed over the old one
    assert task["when"] == "memlock_verify_textfile | length > 0"
