# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import stat

import pytest
from _files import OURS, UNIT_FILE, memlock, put, tree_snapshot
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.vault_mlock.lxd.plugins.module_utils._dropins import (
    DropinContent,
    DropinError,
    apply_dropin,
    dropin_path,
    plan_dropin,
    render_dropin,
    validate_dropin_name,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import RLIM_INFINITY, MemlockLimit, parse_limit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._systemd import SystemdError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_settings import read_limit_settings

KIB = 1024
MIB = 1024 * KIB


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
    assert render_dropin(unit, DropinContent(parse_limit(limit))) == golden


@given(st.integers(min_value=0, max_value=RLIM_INFINITY - 1), st.sampled_from(["lxd.service", "vault.service"]))
def test_rendered_dropin_reads_back_as_its_limit(size, unit):
    limit = MemlockLimit(size, size)
    settings = read_limit_settings("/x.conf", render_dropin(unit, DropinContent(limit)))
    assert [setting.limit for setting in settings] == [limit]


# --- planning ------------------------------------------------------------------------------------


def plan(root, limit="256K", state="present", unit="lxd.service", name="00-memlock.conf", ipc_lock=False,
         no_swap=False):
    content = DropinContent(parse_limit(limit) if limit else None, ipc_lock, no_swap)
    return plan_dropin(unit, state, content, name, str(root))


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
        "/etc/systemd/system/lxd.service.d/99-lxd.conf: systemd ignores LimitMEMLOCK=unlimited ('unlimited' is not "
        "a size: 'unlimited' is not a suffix systemd knows here (E, P, T, G, M, K or B, upper case, once each, larger "
        "before smaller))"
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
    assert result.content is None


def test_plan_absent_when_missing_is_unchanged(lxd_tree):
    result = plan(lxd_tree, state="absent", limit=None)
    assert not result.changed
    assert result.effective.limit is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(state="latest", limit="1M"), "state: 'latest' is not valid"),
        (dict(state="present", limit=None), "limit: missing, and required with state=present unless no_swap=true"),
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


# --- CAP_IPC_LOCK: added to the bounding set only where the unit restricts it ---------------------

VAULT_UNIT = "/lib/systemd/system/vault.service"
VAULT_OURS = "/etc/systemd/system/vault.service.d/00-memlock.conf"
VAULT_LATER = "/etc/systemd/system/vault.service.d/50-local.conf"
EVERY_CAPABILITY = 41  # cap_chown .. cap_checkpoint_restore

GOLDEN_VAULT_IPC_LOCK_ROOT = """\
# Managed by vault_mlock.lxd.memlock_dropin; local changes will be overwritten.
# LimitMEMLOCK caps the memory each process of vault.service may lock in RAM (RLIMIT_MEMLOCK).
# infinity is no limit; systemd's K, M, G are powers of 1024.
# In a process started by vault.service, `ulimit -l` prints unlimited.
# CAP_IPC_LOCK joins vault.service's ambient capabilities; its bounding set already holds it.
[Service]
LimitMEMLOCK=infinity
AmbientCapabilities=CAP_IPC_LOCK
"""


def vault_tree(root, *lines):
    put(root, VAULT_UNIT, "[Service]\nExecStart=/usr/bin/vault server\n" + "".join(line + "\n" for line in lines))
    return root


def vault_plan(root, limit="infinity"):
    return plan(root, limit=limit, unit="vault.service", ipc_lock=True)


def test_ipc_lock_never_narrows_an_unrestricted_bounding_set(tmp_path):
    """CapabilityBoundingSet=CAP_IPC_LOCK here would leave a root service CAP_IPC_LOCK alone (CapBnd 0x4000)."""
    result = vault_plan(vault_tree(tmp_path))
    assert result.after == GOLDEN_VAULT_IPC_LOCK_ROOT.encode()
    assert not result.adds_bounding
    assert len(result.bounding.names) == EVERY_CAPABILITY and "cap_dac_override" in result.bounding.names
    assert result.ambient.names == ["cap_ipc_lock"]
    assert result.warnings == []


def test_ipc_lock_joins_a_restricted_bounding_set(tmp_path):
    result = vault_plan(vault_tree(tmp_path, "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"))
    text = result.after.decode()
    assert result.adds_bounding
    assert text.splitlines()[-3:] == ["LimitMEMLOCK=infinity", "AmbientCapabilities=CAP_IPC_LOCK",
                                      "CapabilityBoundingSet=CAP_IPC_LOCK"]
    assert "# CAP_IPC_LOCK joins vault.service's ambient capabilities, and its bounding set" in text
    assert result.bounding.names == ["cap_net_bind_service", "cap_ipc_lock"]


@pytest.mark.parametrize(
    "unit_lines, later, adds, names",
    [
        # restricted, CAP_IPC_LOCK already in: nothing to add
        (["CapabilityBoundingSet=CAP_IPC_LOCK CAP_CHOWN"], None, False, ["cap_chown", "cap_ipc_lock"]),
        # everything but one capability: CAP_IPC_LOCK is in
        (["CapabilityBoundingSet=~CAP_SYS_ADMIN"], None, False, "all but cap_sys_admin"),
        # an empty reset in the unit file: the set is empty, the drop-in adds CAP_IPC_LOCK
        (["CapabilityBoundingSet="], None, True, ["cap_ipc_lock"]),
        # two lines in the unit file, merged, then ours
        (["CapabilityBoundingSet=CAP_NET_RAW", "CapabilityBoundingSet=CAP_CHOWN"], None, True,
         ["cap_chown", "cap_net_raw", "cap_ipc_lock"]),
        # restricted only by a later drop-in: ours replaces the full set first, the later one adds to it
        ([], "CapabilityBoundingSet=CAP_NET_RAW", True, ["cap_net_raw", "cap_ipc_lock"]),
        # a later drop-in that lifts every restriction ('~' alone is every capability)
        (["CapabilityBoundingSet=CAP_NET_RAW"], "CapabilityBoundingSet=~", False, "all"),
    ],
)
def test_ipc_lock_bounding_decisions(tmp_path, unit_lines, later, adds, names):
    vault_tree(tmp_path, *unit_lines)
    if later:
        put(tmp_path, VAULT_LATER, f"[Service]\n{later}\n")
    result = vault_plan(tmp_path)
    assert result.adds_bounding is adds
    assert ("CapabilityBoundingSet=CAP_IPC_LOCK" in result.after.decode()) is adds
    if names == "all":
        assert len(result.bounding.names) == EVERY_CAPABILITY
    elif names == "all but cap_sys_admin":
        assert len(result.bounding.names) == EVERY_CAPABILITY - 1 and "cap_sys_admin" not in result.bounding.names
    else:
        assert result.bounding.names == names
    assert result.warnings == []


@pytest.mark.parametrize("later", ["CapabilityBoundingSet=~CAP_IPC_LOCK", "CapabilityBoundingSet="])
def test_ipc_lock_taken_away_later_is_warned_not_fought(tmp_path, later):
    vault_tree(tmp_path, "CapabilityBoundingSet=CAP_NET_RAW")
    put(tmp_path, VAULT_LATER, f"[Service]\n{later}\n")
    result = vault_plan(tmp_path)
    assert not result.adds_bounding  # the line would not survive; with '~' it would even cost CAP_NET_RAW
    assert "cap_ipc_lock" not in result.bounding.names
    assert result.warnings == [
        f"{VAULT_LATER} sets CapabilityBoundingSet= after {VAULT_OURS} and leaves CAP_IPC_LOCK out of "
        "vault.service's bounding set; add CAP_IPC_LOCK there"
    ]


def test_ipc_lock_ambient_reset_later_is_warned(tmp_path):
    vault_tree(tmp_path)
    put(tmp_path, VAULT_LATER, "[Service]\nAmbientCapabilities=\n")
    result = vault_plan(tmp_path)
    assert result.ambient.names == []
    assert result.warnings == [
        f"{VAULT_LATER} sets AmbientCapabilities= after {VAULT_OURS} and leaves CAP_IPC_LOCK out of "
        "vault.service's ambient capabilities; add CAP_IPC_LOCK there"
    ]


def test_ipc_lock_rewrites_an_older_narrowing_dropin(tmp_path):
    """A drop-in from before, with the bounding line on an unrestricted unit, is rewritten without it."""
    vault_tree(tmp_path)
    put(tmp_path, VAULT_OURS, "[Service]\nLimitMEMLOCK=infinity\nAmbientCapabilities=CAP_IPC_LOCK\n"
                              "CapabilityBoundingSet=CAP_IPC_LOCK\n")
    result = vault_plan(tmp_path)
    assert result.changed and not result.adds_bounding
    assert len(result.bounding.names) == EVERY_CAPABILITY
    apply_dropin(result, str(tmp_path))
    assert not vault_plan(tmp_path).changed


def test_ipc_lock_decision_is_stable_after_apply(tmp_path):
    vault_tree(tmp_path, "CapabilityBoundingSet=CAP_NET_BIND_SERVICE")
    first = vault_plan(tmp_path)
    apply_dropin(first, str(tmp_path))
    again = vault_plan(tmp_path)
    assert not again.changed and again.adds_bounding
    assert again.bounding.names == ["cap_net_bind_service", "cap_ipc_lock"]


def test_without_ipc_lock_no_capability_lines(tmp_path):
    result = plan(vault_tree(tmp_path, "CapabilityBoundingSet=CAP_NET_RAW"), limit="1M", unit="vault.service")
    assert "Capabilit" not in result.after.decode()
    assert result.bounding.names == ["cap_net_raw"] and result.ambient.names == []


# --- MemorySwapMax=0 -----------------------------------------------------------------------------

GOLDEN_NO_SWAP = """\
# Managed by vault_mlock.lxd.memlock_dropin; local changes will be overwritten.
# MemorySwapMax=0 keeps the memory of snap.vault.vaultd.service out of swap (cgroup v2).
[Service]
MemorySwapMax=0
"""


def test_no_swap_alone_needs_no_limit(tmp_path):
    result = plan(tmp_path, limit=None, unit="snap.vault.vaultd.service", name="00-no-swap.conf", no_swap=True)
    assert result.path == "/etc/systemd/system/snap.vault.vaultd.service.d/00-no-swap.conf"
    assert result.after == GOLDEN_NO_SWAP.encode()
    assert result.effective.limit is None and result.overridden_by is None


def test_no_swap_beside_a_limit(tmp_path):
    text = plan(tmp_path, limit="1M", unit="vault.service", no_swap=True).after.decode()
    assert text.splitlines()[-2:] == ["LimitMEMLOCK=1M", "MemorySwapMax=0"]
