# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import pytest
from _files import OURS, UNIT_FILE, memlock, put
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.module_utils._systemd import UNIT_PATHS, find_unit_file
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_files import (
    UnitSource,
    dropin_directories,
    find_dropins,
    iter_assignments,
    service_values,
    unit_prefix_names,
    unit_sources,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_settings import (
    effective_limit,
    read_limit_settings,
)


# --- lines ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[Service]\nLimitMEMLOCK=8M\n", [("Service", "LimitMEMLOCK", "8M")]),
        ("[Service]\n  LimitMEMLOCK  =  8M  \n", [("Service", "LimitMEMLOCK", "8M")]),
        ("[Service]\n# LimitMEMLOCK=1M\n; LimitMEMLOCK=2M\nLimitMEMLOCK=3M\n", [("Service", "LimitMEMLOCK", "3M")]),
        ("LimitMEMLOCK=8M\n[Service]\n", []),  # outside any section
        ("[Unit]\nLimitMEMLOCK=1M\n[Service]\nLimitMEMLOCK=2M\n",
         [("Unit", "LimitMEMLOCK", "1M"), ("Service", "LimitMEMLOCK", "2M")]),
        ("[Service]\nExecStart=/bin/a \\\n  --flag\nLimitMEMLOCK=1M\n",
         [("Service", "ExecStart", "/bin/a    --flag"), ("Service", "LimitMEMLOCK", "1M")]),
        ("[Service]\nLimitMEMLOCK=\\\n8M\n", [("Service", "LimitMEMLOCK", "8M")]),
        ("[Service]\nExecStart=/bin/a \\\n# a comment inside\n  --flag\n",
         [("Service", "ExecStart", "/bin/a    --flag")]),
        ("[Service]\n# a comment ending in a backslash \\\nLimitMEMLOCK=1M\n", [("Service", "LimitMEMLOCK", "1M")]),
        ("[Service]\nExecStart=/bin/echo a\\\\\nLimitMEMLOCK=1M\n",
         [("Service", "ExecStart", "/bin/echo a\\\\"), ("Service", "LimitMEMLOCK", "1M")]),
        ("[Service]\nNoEqualsSign\nLimitMEMLOCK=1M\n", [("Service", "LimitMEMLOCK", "1M")]),
        ("[Service]\nLimitMEMLOCK=1M\\", [("Service", "LimitMEMLOCK", "1M")]),
        ("[Service]\r\nLimitMEMLOCK=1M\r\n", [("Service", "LimitMEMLOCK", "1M")]),
        ("[Service\nLimitMEMLOCK=1M\n", []),  # broken header: no section yet
        ("", []),
    ],
)
def test_iter_assignments(text, expected):
    assert list(iter_assignments(text)) == expected


def test_service_values_only_service_section_and_exact_key():
    text = (
        "[Unit]\nLimitMEMLOCK=1M\n[Service]\nlimitmemlock=2M\nLimitMEMLOCK=3M\nLimitNOFILE=4\n"
        "[Install]\nLimitMEMLOCK=5M\n"
    )
    sources = [UnitSource("/a.service", text), UnitSource("/b.conf", "[Service]\nLimitMEMLOCK=6M\n")]
    assert service_values(sources, "LimitMEMLOCK") == [("/a.service", "3M"), ("/b.conf", "6M")]


# --- where systemd looks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "unit, names",
    [
        ("lxd.service", ["lxd.service"]),
        ("snap.lxd.daemon.service", ["snap.lxd.daemon.service"]),
        ("a-b-c.service", ["a-b-c.service", "a-b-.service", "a-.service"]),
        ("foo@bar.service", ["foo@bar.service", "foo@.service"]),
        ("a-b@x.service", ["a-b@x.service", "a-b@.service", "a-.service", "a-@x.service", "a-@.service"]),
        ("-a.service", ["-a.service"]),
        ("a--b.service", ["a--b.service", "a--.service", "a-.service"]),
    ],
)
def test_unit_prefix_names(unit, names):
    assert unit_prefix_names(unit) == names


def test_dropin_directories_order():
    directories = dropin_directories("lxd-x.service")
    assert directories[0] == "/etc/systemd/system.control/lxd-x.service.d"
    assert directories[1] == "/etc/systemd/system.control/lxd-.service.d"
    etc = directories.index("/etc/systemd/system/lxd-x.service.d")
    assert etc < directories.index("/run/systemd/system/lxd-x.service.d")
    assert directories.index("/run/systemd/system/lxd-x.service.d") < directories.index(
        "/lib/systemd/system/lxd-x.service.d"
    )
    assert directories.index("/lib/systemd/system/lxd-x.service.d") < directories.index(
        "/usr/lib/systemd/system/lxd-x.service.d"
    )
    # the type-wide service.d directories come after every unit-specific one
    first_type_dir = directories.index("/etc/systemd/system.control/service.d")
    assert all(directory.endswith("/service.d") for directory in directories[first_type_dir:])
    assert all(not directory.endswith("/service.d") for directory in directories[:first_type_dir])


def test_find_dropins_lists_every_copy_highest_priority_first(lxd_tree):
    put(lxd_tree, "/usr/lib/systemd/system/lxd.service.d/10-a.conf", memlock("1M"))
    put(lxd_tree, "/etc/systemd/system/lxd.service.d/10-a.conf", memlock("2M"))
    put(lxd_tree, "/run/systemd/system/service.d/10-a.conf", memlock("3M"))
    put(lxd_tree, "/etc/systemd/system/service.d/20-b.conf", memlock("4M"))
    put(lxd_tree, "/etc/systemd/system/lxd.service.d/readme.txt", memlock("5M"))
    put(lxd_tree, "/etc/systemd/system/lxd.service.d/.hidden.conf", memlock("6M"))
    os.makedirs(os.path.join(str(lxd_tree), "etc/systemd/system/lxd.service.d/dir.conf"))
    assert find_dropins("lxd.service", str(lxd_tree)) == {
        "10-a.conf": [
            "/etc/systemd/system/lxd.service.d/10-a.conf",
            "/usr/lib/systemd/system/lxd.service.d/10-a.conf",
            "/run/systemd/system/service.d/10-a.conf",
        ],
        "20-b.conf": ["/etc/systemd/system/service.d/20-b.conf"],
    }


def test_unit_sources_unit_file_then_dropins_by_name(lxd_tree):
    put(lxd_tree, "/etc/systemd/system/lxd.service.d/90-etc.conf", memlock("1M"))
    put(lxd_tree, "/usr/lib/systemd/system/lxd.service.d/95-usr.conf", memlock("2M"))
    dropins = {name: paths[0] for name, paths in find_dropins("lxd.service", str(lxd_tree)).items()}
    sources = unit_sources(UNIT_FILE, dropins, str(lxd_tree))
    assert [source.path for source in sources] == [
        UNIT_FILE,
        "/etc/systemd/system/lxd.service.d/90-etc.conf",
        "/usr/lib/systemd/system/lxd.service.d/95-usr.conf",
    ]
    assert sources[2].text == memlock("2M")


def test_unit_sources_overrides_replace_file_content(lxd_tree):
    put(lxd_tree, OURS, memlock("1M"))
    sources = unit_sources(None, {"00-memlock.conf": OURS}, str(lxd_tree), {OURS: memlock("4M")})
    assert sources == [UnitSource(OURS, memlock("4M"))]


def test_unit_sources_dev_null_reads_empty(lxd_tree):
    masker = os.path.join(str(lxd_tree), OURS.lstrip("/"))
    os.makedirs(os.path.dirname(masker))
    os.symlink("/dev/null", masker)
    assert unit_sources(None, {"00-memlock.conf": OURS}, str(lxd_tree)) == [UnitSource(OURS, "")]


# --- against systemd itself ----------------------------------------------------------------------
# `systemd-analyze --root=DIR verify UNIT` loads the unit as the manager would and logs every
# LimitMEMLOCK= it cannot parse with its file name, in the order it reads the files. Values made
# unparseable on purpose thus show which files systemd reads, and in which order. Generators and
# transient units are left out: verify replaces those directories with temporary ones.

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _systemd_unit_paths():
    """The unit paths of this machine's systemd; a build without split /usr has no /lib ones."""
    if SYSTEMD_ANALYZE is None:
        return list(UNIT_PATHS)
    process = subprocess.run([SYSTEMD_ANALYZE, "unit-paths"], stdout=subprocess.PIPE, universal_newlines=True,
                             check=False)
    listed = set(process.stdout.split())
    return [path for path in UNIT_PATHS if path in listed] or list(UNIT_PATHS)


ORACLE_PATHS = [path for path in _systemd_unit_paths() if "generator" not in path and "transient" not in path]
UNIT_FILE_DIRS = [path for path in ORACLE_PATHS if path.endswith(("/etc/systemd/system", "/run/systemd/system",
                                                                  "/lib/systemd/system"))]
_REPORTED = re.compile(r"^(\S+):\d+: Failed to parse resource value, ignoring: (.*)$", re.MULTILINE)


def systemd_reads(root, unit):
    """[(path, value)] of the LimitMEMLOCK= values systemd refused, in the order it read them."""
    process = subprocess.run(
        [SYSTEMD_ANALYZE, f"--root={root}", "verify", unit],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False,
    )
    reported = [(match.group(1), match.group(2)) for match in _REPORTED.finditer(process.stdout)]
    if not reported:
        pytest.skip(f"this systemd-analyze does not verify offline trees: {process.stdout[:200]}")
    return [(path[len(str(root)):], value) for path, value in reported]


def bad(path):
    return "bad-" + path.replace("/", "_")


tree_entries = st.lists(
    st.tuples(
        st.sampled_from(ORACLE_PATHS),
        st.integers(min_value=0, max_value=7),  # index into the unit's drop-in names, or service.d
        st.sampled_from(["00-memlock.conf", "10-a.conf", "50-x.conf", "zz.conf", ".hidden.conf", "notes.txt"]),
        st.booleans(),  # a /dev/null link instead of a file
    ),
    max_size=12,
)


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="needs systemd-analyze")
@settings(max_examples=120, deadline=None)
@given(
    st.sampled_from(["lxd.service", "snap.lxd.daemon.service", "a-b-c.service", "vault@a.service", "a-b@x.service"]),
    st.sampled_from(UNIT_FILE_DIRS),
    tree_entries,
)
def test_reads_the_files_systemd_reads_in_its_order(unit, unit_dir, entries):
    names = unit_prefix_names(unit) + ["service"]
    with tempfile.TemporaryDirectory() as root:
        stem, _dot, unit_type = unit.rpartition(".")
        prefix, _at, instance = stem.partition("@")
        unit_file_name = f"{prefix}@.{unit_type}" if instance else unit
        put(root, f"{unit_dir}/{unit_file_name}", "[Service]\nExecStart=/bin/true\nLimitMEMLOCK=bad-unit-file\n")
        for unit_path, name_index, file_name, dev_null in entries:
            path = f"{unit_path}/{names[name_index % len(names)]}.d/{file_name}"
            full = os.path.join(root, path.lstrip("/"))
            if os.path.lexists(full):
                continue
            if dev_null:
                os.makedirs(os.path.dirname(full), exist_ok=True)
                os.symlink("/dev/null", full)
            else:
                put(root, path, f"[Service]\nLimitMEMLOCK={bad(path)}\n")

        found = find_unit_file(unit, root)
        dropins = {name: paths[0] for name, paths in find_dropins(unit, root).items()}
        ours = effective_limit(unit_sources(found.path, dropins, root))
        assert [(setting.path, setting.value) for setting in ours.settings] == systemd_reads(root, unit)


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="needs systemd-analyze")
@pytest.mark.parametrize(
    "text",
    [
        "[Service]\nLimitMEMLOCK=bad-1\n# LimitMEMLOCK=bad-comment\n; LimitMEMLOCK=bad-semicolon\nLimitMEMLOCK=bad-2\n",
        "[Service]\n  LimitMEMLOCK  =  bad-spaces  \n",
        "[Service]\nLimitMEMLOCK=bad-\\\ncontinued\n",
        "[Service]\nLimitMEMLOCK=bad-\\\n# skipped comment\ncontinued\n",
        "[Service]\n# comment ending in a backslash \\\nLimitMEMLOCK=bad-after-comment\n",
        "[Unit]\nDescription=x\n[Service]\nLimitMEMLOCK=bad-service\n[Install]\nWantedBy=multi-user.target\n",
    ],
)
def test_parses_like_systemd(tmp_path, text):
    put(tmp_path, "/etc/systemd/system/lxd.service", "[Service]\nExecStart=/bin/true\n")
    path = "/etc/systemd/system/lxd.service.d/50-x.conf"
    put(tmp_path, path, text)
    ours = [(setting.path, setting.value) for setting in read_limit_settings(path, text)]
    assert ours == systemd_reads(tmp_path, "lxd.service")
