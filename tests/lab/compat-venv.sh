#!/bin/sh
# Runs inside the build chroot of the compat-trixie image (tests/lab/lab.sh), where PyPI is
# reachable; guests started from the image are not. It makes:
#   /opt/vml-compat/venv   the newest ansible-core with pytest and hypothesis
#                          (tests/requirements-2.21.txt, copied to /opt/vml-compat/requirements.txt)
#   /opt/vml-compat/home   the HOME for ansible-test: its sanity environments, created here by
#                          one sanity run over a small collection that gives every test we run
#                          something to check, so later runs in the guest find them all.
set -eu
root=/opt/vml-compat
python3 -m venv "$root/venv"
"$root/venv/bin/pip" install -q --disable-pip-version-check -r "$root/requirements.txt"

HOME="$root/home"
export HOME
# ansible-test bootstraps pip in its environments with a script from a host that may not be
# reachable: give it the stand-in under the name it looks for.
pip_version=$("$root/venv/bin/python" - <<'PY'
import glob, re
source = open(glob.glob("/opt/vml-compat/venv/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py")[0]).read()
print(re.search(r"pip='([0-9.]+)'", source).group(1).replace(".", "_"))
PY
)
mkdir -p "$HOME/.ansible/test/cache"
cp "$root/get_pip_offline.py" "$HOME/.ansible/test/cache/get_pip_$pip_version.py"

probe=/tmp/vml-compat-probe/ansible_collections/vml_compat/probe
rm -rf /tmp/vml-compat-probe
mkdir -p "$probe/meta" "$probe/plugins/modules" "$probe/plugins/module_utils" "$probe/plugins/filter" \
    "$probe/roles/probe/tasks" "$probe/roles/probe/meta" "$probe/changelogs/fragments" "$probe/tests/unit" "$probe/scripts"
cat >"$probe/galaxy.yml" <<'EOF'
---
namespace: vml_compat
name: probe
version: 0.1.0
readme: README.md
authors: [probe]
EOF
echo "# probe" >"$probe/README.md"
printf -- '---\nrequires_ansible: ">=2.18.0"\n' >"$probe/meta/runtime.yml"
cat >"$probe/plugins/module_utils/_probe.py" <<'EOF'
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Doubles a number."""

from __future__ import annotations


def double(number: int) -> int:
    """Twice the number."""
    return 2 * number
EOF
cat >"$probe/plugins/modules/probe.py" <<'EOF'
#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: probe
short_description: Doubles a number
description: Doubles a number.
author: Probe (@probe)
options:
  number:
    description: The number.
    type: int
    required: true
"""

EXAMPLES = r"""
- name: Double two
  vml_compat.probe.probe:
    number: 2
"""

RETURN = r"""
doubled:
  description: Twice the number.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.vml_compat.probe.plugins.module_utils._probe import double


def main():
    module = AnsibleModule(argument_spec={"number": {"type": "int", "required": True}}, supports_check_mode=True)
    module.exit_json(changed=False, doubled=double(module.params["number"]))


if __name__ == "__main__":
    main()
EOF
cat >"$probe/plugins/filter/probe.py" <<'EOF'
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.vml_compat.probe.plugins.module_utils._probe import double


def doubled(number):
    """Twice the number."""
    if not isinstance(number, int):
        raise AnsibleFilterError("doubled wants a number")
    return double(number)


class FilterModule:
    """The probe's filters."""

    def filters(self):
        return {"doubled": doubled}
EOF
cat >"$probe/plugins/filter/doubled.yml" <<'EOF'
---
DOCUMENTATION:
  name: doubled
  short_description: Doubles a number
  description: Doubles a number.
  author: Probe (@probe)
  positional: _input
  options:
    _input:
      description: The number.
      type: int
      required: true
EXAMPLES: |
  doubled: "{{ 2 | vml_compat.probe.doubled }}"
RETURN:
  _value:
    description: Twice the number.
    type: int
EOF
printf -- '---\n- name: Say the number\n  ansible.builtin.debug:\n    msg: "{{ probe_number }}"\n' \
    >"$probe/roles/probe/tasks/main.yml"
cat >"$probe/roles/probe/meta/argument_specs.yml" <<'EOF'
---
argument_specs:
  main:
    short_description: Says a number
    options:
      probe_number:
        type: int
        default: 2
        description: The number.
EOF
cat >"$probe/changelogs/config.yaml" <<'EOF'
---
changelog_filename_template: ../CHANGELOG.md
changelog_filename_version_depth: 0
changes_file: changelog.yaml
changes_format: combined
keep_fragments: false
mention_ancestor: true
new_plugins_after_name: removed_features
notesdir: fragments
output_formats:
  - md
prelude_section_name: release_summary
prelude_section_title: Release Summary
sections:
  - [minor_changes, Minor Changes]
  - [bugfixes, Bugfixes]
title: Probe
trivial_section_name: trivial
use_fqcn: true
EOF
printf -- '---\nancestor: null\nreleases: {}\n' >"$probe/changelogs/changelog.yaml"
printf -- '---\nminor_changes:\n  - probe - doubles numbers.\n' >"$probe/changelogs/fragments/probe.yml"
cat >"$probe/tests/unit/test_probe.py" <<'EOF'
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from ansible_collections.vml_compat.probe.plugins.module_utils._probe import double


def test_double():
    assert double(2) == 4
EOF
printf '#!/bin/sh\necho "probe"\n' >"$probe/scripts/probe.sh"
chmod 0755 "$probe/scripts/probe.sh"

cd "$probe"
"$root/venv/bin/ansible-test" sanity --python "$("$root/venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --color no
rm -rf /tmp/vml-compat-probe
ls "$HOME/.ansible/test/venv"
