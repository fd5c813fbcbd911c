# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile

import pytest
from _files import put, tree_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.module_utils._dropins import (
    DropinError,
    _unit_prefix_names,
    apply_dropin,
    dropin_directories,
    dropin_path,
    effective_limit,
    find_dropins,
    iter_assignments,
    plan_dropin,
    read_limit_settings,
    render_dropin,
    systemd_limit,
    validate_dropin_name,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import RLIM_INFINITY, MemlockLimit, parse_limit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._systemd import UNIT_PATHS, SystemdError, find_unit_file

KIB = 1024
MIB = 1024 * KIB
OURS = "/etc/systemd/system/lxd.service.d/00-memlock.conf"
UNIT_FILE = "/lib/systemd/system/lxd.service"


def memlock(value):
    return f"[Service]\nLimitMEMLOCK={value}\n"


@pytest.fixture
def lxd_tree(tmp_path):
    """A host with Debian's lxd.service and no drop-ins."""
    put(tmp_path, UNIT_FILE, "[Unit]\nDescription=LXD\n[Service]\nExecStart=/usr/bin/lxd\nKillMode=process\n")
    return tmp_path


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["00-memlock.conf", "99-memlock.conf", "memlock.conf", "a.b.conf", "x-.conf", "0.conf", "a..conf"]
)
def test_validate_dropin_name_accepts(name):
    assert validate_dropin_name(name) == name


@pytest.mark.parametrize(
    "name, reason",
    [
        ("", "empty"),
        (None, "empty"),
        ("/", "'/'"),
        ("../00-memlock.conf", "'/'"),
        ("sub/00-memlock.conf", "'/'"),
        ("/etc/passwd.conf", "'/'"),
        ("00-memlock.conf/", "'/'"),
        ("..", "starts with '.'"),
        (".", "starts with '.'"),
        (".conf", "starts with '.'"),
        (".hidden.conf", "starts with '.'"),
        ("..conf", "starts with '.'"),
        ("00-memlock", "does not end in '.conf'"),
        ("00-memlock.conf.bak", "does not end in '.conf'"),
        ("00-memlock.CONF", "does not end in '.conf'"),
        ("00-memlock.conf~", "does not end in '.conf'"),
        ("00-memlock.conf ", "does not end in '.conf'"),
        (" 00-memlock.conf", "white space"),
        ("memlock\0.conf", "'/'"),
    ],
)
def test_validate_dropin_name_refuses(name, reason):
    with pytest.raises(DropinError) as caught:
        validate_dropin_name(name)
    message = str(caught.value)
    assert message.startswith("name: ")
    assert reason in message
    assert "'00-memlock.conf'" in message  # shows the accepted form


def test_dropin_error_is_a_systemd_error():
    assert issubclass(DropinError, SystemdError)


@pytest.mark.parametrize(
    "unit, name, path",
    [
        ("lxd.service", "00-memlock.conf", "/etc/systemd/system/lxd.service.d/00-memlock.conf"),
        ("snap.lxd.daemon.service", "99-x.conf", "/etc/systemd/system/snap.lxd.daemon.service.d/99-x.conf"),
        ("vault@.service", "00-memlock.conf", "/etc/systemd/system/vault@.service.d/00-memlock.conf"),
    ],
)
def test_dropin_path(unit, name, path):
    assert dropin_path(unit, name) == path


# --- rendering -----------------------------------------------------------------------------------

GOLDEN_LXD_256K = """\
# Managed by vault_mlock.lxd.memlock_dropin; local changes will be overwritten.
# LimitMEMLOCK caps the memory each process of lxd.service may lock in RAM (RLIMIT_MEMLOCK).
# 256K is 262144 bytes; systemd's K, M, G are powers of 1024.
# In an LXD guest started by this daemon, `ulimit -l` prints 256 (KiB).
[Service]
LimitMEMLOCK=256K
"""

GOLDEN_VAULT_INFINITY = """\
# Managed by vault_mlock.lxd.memlock_dropin; local changes will be overwritten.
# LimitMEMLOCK caps the memory each process of vault.service may lock in RAM (RLIMIT_MEMLOCK).
# infinity is no limit; systemd's K, M, G are powers of 1024.
# In a process started by vault.service, `ulimit -l` prints unlimited.
[Service]
LimitMEMLOCK=infinity
"""

GOLDEN_SNAP_SOFT_HARD = """\
# Managed by vault_mlock.lxd.memlock_dropin; local changes will be overwritten.
# LimitMEMLOCK caps the memory each process of snap.lxd.daemon.service may lock in RAM (RLIMIT_MEMLOCK).
# Soft limit 64M is 67108864 bytes, hard limit 1G is 1073741824 bytes; systemd's K, M, G are powers of 1024.
# In an LXD guest started by this daemon, `ulimit -l` prints 65536 (KiB) (and `ulimit -H -l` 1048576 (KiB)).
[Service]
LimitMEMLOCK=64M:1G
"""

GOLDEN_INCUS_ODD = """\
# Managed by vault_mlock.lxd.memlock_dropin; local changes will be overwritten.
# LimitMEMLOCK caps the memory each process of incus.service may lock in RAM (RLIMIT_MEMLOCK).
# Soft limit 1000 is 1000 bytes, hard limit infinity is no limit; systemd's K, M, G are powers of 1024.
# In an LXD guest started by this daemon, `ulimit -l` prints 0 (KiB) (and `ulimit -H -l` unlimited).
[Service]
LimitMEMLOCK=1000:infinity
"""


@pytest.mark.parametrize(
    "unit, limit, golden",
    [
        ("lxd.service", "256K", GOLDEN_LXD_256K),
        ("lxd.service", "262144", GOLDEN_LXD_256K),
        ("vault.service", "unlimited", GOLDEN_VAULT_INFINITY),
        ("snap.lxd.daemon.service", "67108864:1G", GOLDEN_SNAP_SOFT_HARD),
        ("incus.service", "1000:infinity", GOLDEN_INCUS_ODD),
    ],
)
def test_render_dropin_golden(unit, limit, golden):
    assert render_dropin(unit, parse_limit(limit)) == golden


@given(st.integers(min_value=0, max_value=RLIM_INFINITY - 1), st.sampled_from(["lxd.service", "vault.service"]))
def test_rendered_dropin_reads_back_as_its_limit(size, unit):
    limit = MemlockLimit(size, size)
    settings = read_limit_settings("/x.conf", render_dropin(unit, limit))
    assert [setting.limit for setting in settings] == [limit]


# --- parsing -------------------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    "value, expected",
    [
        ("8M", MemlockLimit(8 * MIB, 8 * MIB)),
        ("infinity", MemlockLimit(None, None)),
        ("64K:infinity", MemlockLimit(64 * KIB, None)),
        ("65536", MemlockLimit(65536, 65536)),
        ("1.5K", MemlockLimit(1536, 1536)),
        ("unlimited", None),  # LXD's word; systemd refuses it
        ("Infinity", None),
        ("8M:unlimited", None),
        ("", None),
        ("8m", None),
        ("64K:32K", None),  # soft above hard: systemd ignores the line
        ("lots", None),
    ],
)
def test_systemd_limit(value, expected):
    assert systemd_limit(value) == expected


def test_read_limit_settings_only_service_section_and_exact_key():
    text = (
        "[Unit]\nLimitMEMLOCK=1M\n[Service]\nlimitmemlock=2M\nLimitMEMLOCK=3M\nLimitNOFILE=4\n"
        "[Install]\nLimitMEMLOCK=5M\n"
    )
    settings = read_limit_settings("/f.conf", text)
    assert [(setting.path, setting.value) for setting in settings] == [("/f.conf", "3M")]


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
    assert _unit_prefix_names(unit) == names


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


# --- the limit in force --------------------------------------------------------------------------


def test_effective_from_unit_file_alone(lxd_tree):
    put(lxd_tree, UNIT_FILE, "[Service]\nExecStart=/usr/bin/lxd\nLimitMEMLOCK=64K\n")
    result = effective_limit("lxd.service", UNIT_FILE, {}, str(lxd_tree))
    assert result.limit == MemlockLimit(64 * KIB, 64 * KIB)
    assert result.source == UNIT_FILE


def test_effective_nothing_set(lxd_tree):
    result = effective_limit("lxd.service", UNIT_FILE, {}, str(lxd_tree))
    assert (result.limit, result.source, result.settings) == (None, None, ())


def test_effective_sorts_by_file_name_not_directory(lxd_tree):
    put(lxd_tree, "/etc/systemd/system/lxd.service.d/90-etc.conf", memlock("1M"))
    put(lxd_tree, "/usr/lib/systemd/system/lxd.service.d/95-usr.conf", memlock("2M"))
    dropins = {name: paths[0] for name, paths in find_dropins("lxd.service", str(lxd_tree)).items()}
    result = effective_limit("lxd.service", UNIT_FILE, dropins, str(lxd_tree))
    assert result.source == "/usr/lib/systemd/system/lxd.service.d/95-usr.conf"
    assert [setting.value for setting in result.settings] == ["1M", "2M"]


def test_effective_last_assignment_in_a_file_wins(lxd_tree):
    put(lxd_tree, "/etc/systemd/system/lxd.service.d/50-x.conf", "[Service]\nLimitMEMLOCK=1M\nLimitMEMLOCK=2M\n")
    result = effective_limit("lxd.service", None, {"50-x.conf": "/etc/systemd/system/lxd.service.d/50-x.conf"},
                             str(lxd_tree))
    assert result.limit == MemlockLimit(2 * MIB, 2 * MIB)


def test_effective_overrides_replace_file_content(lxd_tree):
    put(lxd_tree, OURS, memlock("1M"))
    result = effective_limit("lxd.service", None, {"00-memlock.conf": OURS}, str(lxd_tree), {OURS: memlock("4M")})
    assert result.limit == MemlockLimit(4 * MIB, 4 * MIB)


def test_effective_skips_invalid_values(lxd_tree):
    put(lxd_tree, "/etc/systemd/system/lxd.service.d/99-bad.conf", memlock("unlimited"))
    put(lxd_tree, OURS, memlock("1M"))
    dropins = {name: paths[0] for name, paths in find_dropins("lxd.service", str(lxd_tree)).items()}
    result = effective_limit("lxd.service", UNIT_FILE, dropins, str(lxd_tree))
    assert result.source == OURS
    assert [(setting.value, setting.limit is None) for setting in result.settings] == [
        ("1M", False), ("unlimited", True)
    ]


# --- planning ------------------------------------------------------------------------------------


def plan(root, limit="256K", state="present", unit="lxd.service", name="00-memlock.conf"):
    return plan_dropin(unit, state, parse_limit(limit) if limit else None, name, str(root))


def test_plan_fresh_host(lxd_tree):
    result = plan(lxd_tree)
    assert result.changed
    assert result.before is None
    assert result.after == GOLDEN_LXD_256K.encode()
    assert result.path == OURS
    assert result.effective.limit == MemlockLimit(256 * KIB, 256 * KIB)
    assert result.effective.source == OURS
    assert (result.masked_by, result.overridden_by) == (None, None)
    assert result.unit_file == UNIT_FILE
    assert result.warnings == []


def test_plan_changes_nothing_on_disk(lxd_tree):
    before = tree_snapshot(lxd_tree)
    plan(lxd_tree)
    plan(lxd_tree, state="absent", limit=None)
    assert tree_snapshot(lxd_tree) == before


def test_plan_is_idempotent_after_apply(lxd_tree):
    apply_dropin(plan(lxd_tree), str(lxd_tree))
    again = plan(lxd_tree)
    assert not again.changed
    assert again.before == again.after == GOLDEN_LXD_256K.encode()


@pytest.mark.parametrize("spelling", ["262144", "256K", "0.25M"])
def test_plan_same_limit_other_spelling_is_unchanged(lxd_tree, spelling):
    apply_dropin(plan(lxd_tree, "256K"), str(lxd_tree))
    assert not plan(lxd_tree, spelling).changed


def test_plan_replaces_other_content(lxd_tree):
    put(lxd_tree, OURS, "[Service]\nLimitMEMLOCK=64K\n")
    result = plan(lxd_tree)
    assert result.changed
    assert result.before == b"[Service]\nLimitMEMLOCK=64K\n"
    assert result.effective.limit == MemlockLimit(256 * KIB, 256 * KIB)  # as it will be


def test_plan_later_sorting_dropin_overrides(lxd_tree):
    later = "/usr/lib/systemd/system/lxd.service.d/50-packaged.conf"
    put(lxd_tree, later, memlock("64K"))
    result = plan(lxd_tree)
    assert result.overridden_by == later
    assert result.masked_by is None
    assert result.effective.limit == MemlockLimit(64 * KIB, 64 * KIB)
    assert result.effective.source == later
    assert len(result.warnings) == 1
    assert later in result.warnings[0]
    assert "LimitMEMLOCK=64K" in result.warnings[0]


def test_plan_later_name_wins_over_earlier(lxd_tree):
    earlier = "/etc/systemd/system/lxd.service.d/00-first.conf"
    put(lxd_tree, earlier, memlock("64K"))
    result = plan(lxd_tree, name="99-memlock.conf")
    assert result.overridden_by is None
    assert result.effective.source == "/etc/systemd/system/lxd.service.d/99-memlock.conf"


def test_plan_later_sorting_dropin_without_the_setting_does_not_override(lxd_tree):
    put(lxd_tree, "/etc/systemd/system/lxd.service.d/override.conf", "[Service]\nLimitNOFILE=65536\n")
    result = plan(lxd_tree)
    assert result.overridden_by is None
    assert result.warnings == []


def test_plan_type_wide_service_d_sorting_later_overrides(lxd_tree):
    later = "/etc/systemd/system/service.d/99-all.conf"
    put(lxd_tree, later, memlock("infinity"))
    result = plan(lxd_tree)
    assert result.overridden_by == later
    assert result.effective.limit == MemlockLimit(None, None)


def test_plan_our_file_masks_same_name_in_lower_directories(lxd_tree):
    for lower in ("/run/systemd/system/lxd.service.d/00-memlock.conf",
                  "/usr/lib/systemd/system/lxd.service.d/00-memlock.conf",
                  "/etc/systemd/system/service.d/00-memlock.conf"):
        put(lxd_tree, lower, memlock("64K"))
    result = plan(lxd_tree)
    assert result.masked_by is None
    assert result.overridden_by is None
    assert result.effective.source == OURS
    assert [setting.path for setting in result.effective.settings] == [OURS]


def test_plan_masked_by_higher_priority_same_name(lxd_tree):
    higher = "/run/systemd/system.control/lxd.service.d/00-memlock.conf"
    put(lxd_tree, higher, memlock("64K"))
    result = plan(lxd_tree)
    assert result.masked_by == higher
    assert result.overridden_by == higher
    assert result.effective.limit == MemlockLimit(64 * KIB, 64 * KIB)
    assert result.changed  # the file is still written: it takes over once the other goes
    assert any(warning.startswith(higher + " hides " + OURS) for warning in result.warnings)


def test_plan_dev_null_link_masks_lower_copy(lxd_tree):
    lower = "/usr/lib/systemd/system/lxd.service.d/50-x.conf"
    put(lxd_tree, lower, memlock("64K"))
    masker = os.path.join(str(lxd_tree), "etc/systemd/system/lxd.service.d/50-x.conf")
    os.makedirs(os.path.dirname(masker), exist_ok=True)
    os.symlink("/dev/null", masker)
    result = plan(lxd_tree)
    assert result.overridden_by is None
    assert result.effective.source == OURS


def test_plan_prefix_and_template_directories_apply(tmp_path):
    put(tmp_path, "/lib/systemd/system/vault@.service", "[Service]\nExecStart=/usr/bin/vault\n")
    put(tmp_path, "/etc/systemd/system/vault@.service.d/50-template.conf", memlock("1M"))
    result = plan(tmp_path, unit="vault@a.service")
    assert result.overridden_by == "/etc/systemd/system/vault@.service.d/50-template.conf"

    put(tmp_path, "/lib/systemd/system/my-vault.service", "[Service]\nExecStart=/usr/bin/vault\n")
    put(tmp_path, "/usr/lib/systemd/system/my-.service.d/70-prefix.conf", memlock("2M"))
    result = plan(tmp_path, unit="my-vault.service")
    assert result.overridden_by == "/usr/lib/systemd/system/my-.service.d/70-prefix.conf"


def test_plan_unit_specific_copy_beats_type_wide_copy_of_same_name(lxd_tree):
    specific = "/usr/lib/systemd/system/lxd.service.d/50-x.conf"
    put(lxd_tree, specific, memlock("1M"))
    put(lxd_tree, "/etc/systemd/system/service.d/50-x.conf", memlock("2M"))
    result = plan(lxd_tree)
    assert result.effective.source == specific
    assert result.effective.limit == MemlockLimit(MIB, MIB)


def test_plan_warns_about_ignored_values(lxd_tree):
    put(lxd_tree, "/etc/systemd/system/lxd.service.d/99-lxd.conf", memlock("unlimited"))
    result = plan(lxd_tree)
    assert result.overridden_by is None
    assert result.warnings == [
        "/etc/systemd/system/lxd.service.d/99-lxd.conf: systemd ignores LimitMEMLOCK=unlimited (not a valid limit)"
    ]


def test_plan_unit_without_unit_file_warns(tmp_path):
    result = plan(tmp_path, unit="vault.service")
    assert result.unit_file is None
    assert result.path == "/etc/systemd/system/vault.service.d/00-memlock.conf"
    assert result.effective.source == result.path
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("no unit file for vault.service in ")


def test_plan_masked_unit_warns_and_ignores_its_file(tmp_path):
    os.makedirs(os.path.join(str(tmp_path), "etc/systemd/system"))
    os.symlink("/dev/null", os.path.join(str(tmp_path), "etc/systemd/system/vault.service"))
    result = plan(tmp_path, unit="vault.service")
    assert result.unit_masked
    assert "vault.service is masked (/etc/systemd/system/vault.service)" in result.warnings[0]


def test_plan_absent_reveals_lower_copy(lxd_tree):
    lower = "/usr/lib/systemd/system/lxd.service.d/00-memlock.conf"
    put(lxd_tree, lower, memlock("64K"))
    put(lxd_tree, OURS, memlock("1M"))
    result = plan(lxd_tree, state="absent", limit=None)
    assert result.changed
    assert result.after is None
    assert result.before == memlock("1M").encode()
    assert result.effective.source == lower
    assert result.overridden_by is None
    assert result.limit is None


def test_plan_absent_when_missing_is_unchanged(lxd_tree):
    result = plan(lxd_tree, state="absent", limit=None)
    assert not result.changed
    assert result.effective.limit is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(state="latest", limit="1M"), "state: 'latest' is not valid"),
        (dict(state="present", limit=None), "limit: required with state=present"),
        (dict(name="../x.conf"), "name: '../x.conf' must not contain '/'"),
    ],
)
def test_plan_refuses(lxd_tree, kwargs, message):
    with pytest.raises(DropinError, match="^" + message.replace("(", "\\(")):
        plan(lxd_tree, **kwargs)


def test_plan_refuses_directory_in_the_way(lxd_tree):
    os.makedirs(os.path.join(str(lxd_tree), OURS.lstrip("/")))
    with pytest.raises(DropinError, match="is a directory"):
        plan(lxd_tree)


# --- applying ------------------------------------------------------------------------------------


def test_apply_creates_directories_and_file_with_modes(lxd_tree):
    old_umask = os.umask(0o077)
    try:
        apply_dropin(plan(lxd_tree), str(lxd_tree))
    finally:
        os.umask(old_umask)
    full = os.path.join(str(lxd_tree), OURS.lstrip("/"))
    assert open(full, "rb").read() == GOLDEN_LXD_256K.encode()
    assert stat.S_IMODE(os.stat(full).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(os.path.dirname(full)).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(os.path.join(str(lxd_tree), "etc/systemd/system")).st_mode) == 0o755
    assert os.stat(full).st_uid == os.geteuid()
    assert sorted(os.listdir(os.path.dirname(full))) == ["00-memlock.conf"]


def test_apply_leaves_other_dropins_untouched(lxd_tree):
    put(lxd_tree, "/etc/systemd/system/lxd.service.d/10-other.conf", "[Service]\nLimitNOFILE=1\n")
    put(lxd_tree, "/etc/systemd/system/lxd.service.d/notes.txt", "hello\n")
    put(lxd_tree, "/usr/lib/systemd/system/lxd.service.d/00-memlock.conf", memlock("64K"))
    before = tree_snapshot(lxd_tree)
    apply_dropin(plan(lxd_tree), str(lxd_tree))
    after = tree_snapshot(lxd_tree)
    ours = os.path.relpath(os.path.join(str(lxd_tree), OURS.lstrip("/")), str(lxd_tree))
    assert set(after) - set(before) == {ours}
    assert {path: value for path, value in after.items() if path != ours} == before


def test_apply_absent_removes_only_the_file(lxd_tree):
    put(lxd_tree, OURS, memlock("1M"))
    put(lxd_tree, "/etc/systemd/system/lxd.service.d/10-other.conf", memlock("2M"))
    apply_dropin(plan(lxd_tree, state="absent", limit=None), str(lxd_tree))
    directory = os.path.join(str(lxd_tree), "etc/systemd/system/lxd.service.d")
    assert os.listdir(directory) == ["10-other.conf"]


def test_apply_absent_keeps_the_empty_directory(lxd_tree):
    put(lxd_tree, OURS, memlock("1M"))
    apply_dropin(plan(lxd_tree, state="absent", limit=None), str(lxd_tree))
    directory = os.path.join(str(lxd_tree), "etc/systemd/system/lxd.service.d")
    assert os.path.isdir(directory)
    assert os.listdir(directory) == []


def test_apply_unchanged_does_not_touch_the_file(lxd_tree):
    apply_dropin(plan(lxd_tree), str(lxd_tree))
    full = os.path.join(str(lxd_tree), OURS.lstrip("/"))
    inode = os.stat(full).st_ino
    apply_dropin(plan(lxd_tree), str(lxd_tree))
    assert os.stat(full).st_ino == inode


def test_apply_replaces_dangling_link(lxd_tree):
    full = os.path.join(str(lxd_tree), OURS.lstrip("/"))
    os.makedirs(os.path.dirname(full))
    os.symlink(str(lxd_tree / "nowhere"), full)
    result = plan(lxd_tree)
    assert result.before == b""
    apply_dropin(result, str(lxd_tree))
    assert not os.path.islink(full)
    assert open(full, "rb").read() == GOLDEN_LXD_256K.encode()


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
    names = _unit_prefix_names(unit) + ["service"]
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
        ours = effective_limit(unit, found.path, dropins, root)
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


def test_render_with_ipc_lock_adds_the_capability_settings_after_the_limit():
    text = render_dropin("vault.service", MemlockLimit(None, None), ipc_lock=True)
    assert text.splitlines()[-4:] == [
        "[Service]",
        "LimitMEMLOCK=infinity",
        "AmbientCapabilities=CAP_IPC_LOCK",
        "CapabilityBoundingSet=CAP_IPC_LOCK",
    ]
    assert "CAP_IPC_LOCK is added to vault.service's ambient and bounding" in text


def test_render_without_ipc_lock_has_no_capability_settings():
    assert "Capabilit" not in render_dropin("vault.service", MemlockLimit(None, None))
