# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import pytest
from _files import VAULT_CONTENT, read_xattr

from ansible_collections.vault_mlock.lxd.plugins.module_utils._capabilities import (
    CapabilityError,
    CapabilitySet,
    parse_capabilities,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._file_capability import (
    MEMLOCK_WARNING,
    CapabilityChange,
    apply_file_capability,
    describe_os_error,
    desired_rootid,
    in_user_namespace,
    plan_file_capability,
    read_file_capability,
    resolve_path,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._xattr_caps import (
    XATTR_NAME,
    FileCapability,
    decode_xattr,
    encode_xattr,
)

IPC_LOCK_EP_V2 = struct.pack("<5I", 0x02000001, 1 << 14, 0, 0, 0)


@pytest.fixture
def initial_ns(tmp_path):
    path = tmp_path / "uid_map"
    path.write_text("         0          0 4294967295\n")
    return str(path)


@pytest.fixture
def guest_ns(tmp_path):
    path = tmp_path / "uid_map_guest"
    path.write_text("         0    1000000    1000000000\n")
    return str(path)


def plan(path, *args, uid_map_path=None, **kwargs) -> CapabilityChange:
    return plan_file_capability(str(path), *args, uid_map_path=uid_map_path, **kwargs)


def run(path, *args, **kwargs) -> CapabilityChange:
    return apply_file_capability(plan(path, *args, **kwargs))


# --- user namespaces -----------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, namespaced",
    [
        ("         0          0 4294967295\n", False),
        ("0 0 4294967295", False),
        ("         0    1000000    1000000000\n", True),
        ("         0     100000      65536\n", True),
        ("0 0 4294967295\n1 1 1\n", True),
        ("         0          0 1000\n", True),
    ],
)
def test_uid_map_tells_a_user_namespace(tmp_path, text, namespaced):
    uid_map = tmp_path / "uid_map"
    uid_map.write_text(text)
    assert in_user_namespace(str(uid_map)) is namespaced


def test_no_uid_map_means_the_initial_namespace(tmp_path):
    assert in_user_namespace(str(tmp_path / "missing")) is False


def test_this_machine_reports_its_own_namespace():
    with open("/proc/self/uid_map") as handle:
        expected = handle.read().split() != ["0", "0", "4294967295"]
    assert in_user_namespace() is expected


# --- paths ---------------------------------------------------------------------------------

def test_regular_file_resolves_to_itself(vault):
    assert resolve_path(str(vault)).path == str(vault)
    assert resolve_path(str(vault)).link is None


def test_symlink_chain_is_followed_like_readlink_f(vault, tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "vault").symlink_to(vault)
    (tmp_path / "current").symlink_to(tmp_path / "bin")
    (tmp_path / "vault-link").symlink_to("current/vault")
    resolved = resolve_path(str(tmp_path / "vault-link"))
    assert resolved.path == os.path.realpath(vault)
    assert resolved.link == str(tmp_path / "vault-link")
    link = str(tmp_path / "vault-link")
    readlink = subprocess.run(["readlink", "-f", link], check=False, capture_output=True, text=True)
    assert resolved.path == readlink.stdout.strip()


def test_follow_false_refuses_a_symlink_and_names_the_option(vault, tmp_path):
    (tmp_path / "link").symlink_to(vault)
    with pytest.raises(CapabilityError) as caught:
        resolve_path(str(tmp_path / "link"), follow=False)
    assert str(caught.value).startswith(f"follow: {tmp_path / 'link'} is a symbolic link (to {vault})")
    assert "follow=true" in str(caught.value)


def test_follow_false_accepts_a_regular_file(vault):
    assert resolve_path(str(vault), follow=False).path == str(vault)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is a directory; file capabilities go on a regular file"),
        (os.mkfifo, "is a named pipe"),
        (lambda p: p.symlink_to(p.parent / "nowhere"), "is a symbolic link to"),
    ],
)
def test_not_a_regular_file_fails(tmp_path, make, fragment):
    path = tmp_path / "target"
    make(path)
    with pytest.raises(CapabilityError) as caught:
        resolve_path(str(path))
    assert str(caught.value).startswith("path: ")
    assert fragment in str(caught.value)


def test_device_and_empty_path_fail():
    with pytest.raises(CapabilityError, match=r"^path: /dev/null is a character device"):
        resolve_path("/dev/null")
    with pytest.raises(CapabilityError, match=r"^path: the path is empty"):
        resolve_path("")


@pytest.mark.parametrize(
    "code, writing, fragment",
    [
        (errno.EOPNOTSUPP, True, "its file system does not support the security.capability extended attribute"),
        (errno.ENOTSUP, False, "does not support the security.capability"),
        (errno.EROFS, True, "it is on a read-only file system"),
        (errno.EPERM, True, "permission denied; setting file capabilities needs root with CAP_SETFCAP"),
        (errno.EACCES, False, "permission denied"),
        (errno.EOVERFLOW, False, "carries a capability for another user namespace"),
        (errno.EINVAL, True, "a rootid must be a uid mapped in this user namespace"),
        (errno.EIO, True, os.strerror(errno.EIO)),
    ],
)
def test_os_errors_become_one_sentence_naming_the_path(code, writing, fragment):
    message = describe_os_error(OSError(code, os.strerror(code)), "/usr/bin/vault", writing)
    verb = "set" if writing else "read"
    assert message.startswith(f"path: cannot {verb} the capabilities of /usr/bin/vault: ")
    assert fragment in message


@pytest.mark.parametrize(
    "current_rootid, asked, expected",
    [(None, None, None), (1000000, None, 1000000), (1000000, 0, None), (None, 65536, 65536), (5, 7, 7)],
)
def test_desired_rootid(current_rootid, asked, expected):
    current = FileCapability(CapabilitySet(), 3 if current_rootid else 2, current_rootid)
    assert desired_rootid(current, asked) == expected
    assert desired_rootid(None, asked) == (asked or None)


# --- planning and applying on real files ---------------------------------------------------

def test_set_writes_revision_2_and_reads_back(vault, initial_ns):
    change = run(vault, uid_map_path=initial_ns)
    assert change.changed
    assert (change.before_text, change.after_text, change.rootid) == ("", "cap_ipc_lock=ep", None)
    assert read_xattr(vault) == IPC_LOCK_EP_V2
    assert change.warnings == ()
    assert change.in_user_namespace is False


def test_second_run_changes_nothing(vault, initial_ns):
    run(vault, uid_map_path=initial_ns)
    ctime = os.stat(vault).st_ctime_ns
    again = run(vault, "CAP_IPC_LOCK=+pe", uid_map_path=initial_ns)
    assert not again.changed
    assert again.before_text == again.after_text == "cap_ipc_lock=ep"
    assert os.stat(vault).st_ctime_ns == ctime


def test_plan_writes_nothing(vault, initial_ns):
    change = plan(vault, uid_map_path=initial_ns)
    assert change.changed and change.after_text == "cap_ipc_lock=ep"
    assert read_xattr(vault) is None


def test_setting_keeps_content_mode_owner_and_mtime(vault, initial_ns):
    os.utime(vault, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    os.chown(vault, 1234, 5678)
    vault.chmod(0o4751)
    before = os.stat(vault)
    run(vault, "cap_ipc_lock,cap_net_bind_service=ep", uid_map_path=initial_ns)
    after = os.stat(vault)
    assert read_xattr(vault) is not None
    assert vault.read_bytes() == VAULT_CONTENT
    assert (after.st_mode, after.st_uid, after.st_gid, after.st_mtime_ns, after.st_ino) == (
        before.st_mode, before.st_uid, before.st_gid, before.st_mtime_ns, before.st_ino
    )


def test_diff_shows_getcap_texts(vault, initial_ns):
    run(vault, "cap_net_bind_service=ep", uid_map_path=initial_ns)
    change = plan(vault, uid_map_path=initial_ns)
    assert change.diff() == {
        "before": "cap_net_bind_service=ep\n",
        "after": "cap_net_bind_service,cap_ipc_lock=ep\n",
        "before_header": str(vault),
        "after_header": str(vault),
    }


def test_present_keeps_other_capabilities(vault, initial_ns):
    run(vault, "cap_net_bind_service=ep", uid_map_path=initial_ns)
    change = run(vault, uid_map_path=initial_ns)
    assert change.after_text == "cap_net_bind_service,cap_ipc_lock=ep"


def test_absent_removes_flags_then_the_xattr(vault, initial_ns):
    run(vault, "cap_ipc_lock,cap_net_bind_service=ep", uid_map_path=initial_ns)
    change = run(vault, "cap_net_bind_service", state="absent", uid_map_path=initial_ns)
    assert (change.before_text, change.after_text) == ("cap_net_bind_service,cap_ipc_lock=ep", "cap_ipc_lock=ep")
    change = run(vault, state="absent", uid_map_path=initial_ns)
    assert change.changed and change.after_text == ""
    assert read_xattr(vault) is None
    assert not run(vault, state="absent", uid_map_path=initial_ns).changed


def test_exact_replaces_and_empty_removes(vault, initial_ns):
    run(vault, "cap_net_raw,cap_chown=eip", uid_map_path=initial_ns)
    change = run(vault, "cap_ipc_lock=ep", state="exact", uid_map_path=initial_ns)
    assert (change.before_text, change.after_text) == ("cap_chown,cap_net_raw=eip", "cap_ipc_lock=ep")
    assert read_xattr(vault) == IPC_LOCK_EP_V2
    change = run(vault, "", state="exact", uid_map_path=initial_ns)
    assert (change.changed, change.after_text, read_xattr(vault)) == (True, "", None)


def test_an_empty_xattr_is_removed_by_exact_empty(vault, initial_ns):
    os.setxattr(vault, XATTR_NAME, struct.pack("<5I", 0x02000000, 0, 0, 0, 0))
    change = run(vault, "=", state="exact", uid_map_path=initial_ns)
    assert (change.changed, change.before_text, change.after_text) == (True, "=", "")
    assert read_xattr(vault) is None


def test_symlink_is_followed_and_reported(vault, tmp_path, initial_ns):
    link = tmp_path / "vault-link"
    link.symlink_to(vault.name)
    change = run(link, uid_map_path=initial_ns)
    assert (change.path, change.link) == (str(vault), str(link))
    assert read_xattr(vault) == IPC_LOCK_EP_V2
    assert os.getxattr(link, XATTR_NAME) == IPC_LOCK_EP_V2  # seen through the link


@pytest.mark.parametrize(
    "current, text, state, fragment",
    [
        ("cap_ipc_lock=ep", "cap_ipc_lock=ep cap_net_raw+p", "exact", "not on cap_net_raw"),
        ("cap_ipc_lock=ep", "cap_net_raw=p", "present", "not on cap_net_raw"),
        ("cap_ipc_lock=ep", "cap_ipc_lock=e", "exact", "e without p or i"),
        ("cap_ipc_lock=ep", "cap_ipc_lok=ep", "present", "unknown capability 'cap_ipc_lok'"),
        ("cap_ipc_lock=ep", "cap_ipc_lock", "present", "no operator and flags"),
        ("cap_ipc_lock=ep", "cap_ipc_lock", "exact", "no operator and flags"),
        # Dropping e from one capability of two would need an effective flag per capability.
        ("cap_net_bind_service,cap_ipc_lock=ep", "cap_net_bind_service=e", "absent", "not on cap_net_bind_service"),
    ],
)
def test_bad_requests_fail_before_writing(vault, initial_ns, current, text, state, fragment):
    os.setxattr(vault, XATTR_NAME, encode_xattr(parse_capabilities(current)))
    before = read_xattr(vault)
    with pytest.raises(CapabilityError) as caught:
        run(vault, text, state=state, uid_map_path=initial_ns)
    assert str(caught.value).startswith("capability: ")
    assert fragment in str(caught.value)
    assert read_xattr(vault) == before


def test_an_unstorable_result_names_the_state_and_what_the_file_carries(vault, initial_ns):
    os.setxattr(vault, XATTR_NAME, IPC_LOCK_EP_V2)
    with pytest.raises(CapabilityError) as caught:
        run(vault, "cap_net_raw=p", uid_map_path=initial_ns)
    assert str(caught.value).startswith(
        f"capability: state=present with 'cap_net_raw=p' on {vault}, which carries 'cap_ipc_lock=ep', "
        "gives a set the file format cannot store: 'cap_ipc_lock=ep cap_net_raw+p' has e on some"
    )


def test_unknown_state_and_bad_rootid_fail_before_reading(vault):
    with pytest.raises(CapabilityError, match=r"^state: 'on' is not one of present, absent, exact"):
        plan(vault, state="on")
    with pytest.raises(CapabilityError, match=r"^rootid: -5 is not a uid"):
        plan(vault, rootid=-5)


def test_rootid_writes_revision_3_and_is_kept_afterwards(vault, initial_ns):
    change = run(vault, rootid=1000000, uid_map_path=initial_ns)
    assert (change.after_text, change.rootid, change.after.revision) == ("cap_ipc_lock=ep", 1000000, 3)
    assert decode_xattr(read_xattr(vault)).rootid == 1000000
    assert not run(vault, rootid=1000000, uid_map_path=initial_ns).changed
    change = run(vault, "cap_net_bind_service=ep", uid_map_path=initial_ns)
    assert (change.after_text, change.rootid) == ("cap_net_bind_service,cap_ipc_lock=ep", 1000000)
    assert decode_xattr(read_xattr(vault)).rootid == 1000000


def test_a_different_rootid_is_a_change_and_zero_means_revision_2(vault, initial_ns):
    run(vault, rootid=1000000, uid_map_path=initial_ns)
    change = run(vault, rootid=65536, uid_map_path=initial_ns)
    assert change.changed and decode_xattr(read_xattr(vault)).rootid == 65536
    change = run(vault, rootid=0, uid_map_path=initial_ns)
    assert change.changed and change.rootid is None
    assert read_xattr(vault) == IPC_LOCK_EP_V2
    assert not run(vault, rootid=0, uid_map_path=initial_ns).changed


def test_read_returns_none_without_xattr(vault):
    assert read_file_capability(str(vault)) is None
    os.setxattr(vault, XATTR_NAME, IPC_LOCK_EP_V2)
    assert read_file_capability(str(vault)).revision == 2


def test_warning_in_a_user_namespace(vault, guest_ns):
    change = plan(vault, uid_map_path=guest_ns)
    assert change.in_user_namespace is True
    assert change.warnings == (MEMLOCK_WARNING,)
    assert "does not lift RLIMIT_MEMLOCK" in MEMLOCK_WARNING
    assert "LimitMEMLOCK" in MEMLOCK_WARNING and "limits.kernel.memlock" in MEMLOCK_WARNING
    assert MEMLOCK_WARNING.count(". ") == 0  # one sentence


def test_no_warning_for_other_capabilities_or_removal(vault, guest_ns):
    assert plan(vault, "cap_net_bind_service=ep", uid_map_path=guest_ns).warnings == ()
    assert plan(vault, state="absent", uid_map_path=guest_ns).warnings == ()


# --- file systems that cannot take it -------------------------------------------------------

def test_file_system_without_xattrs_fails_when_a_change_is_needed():
    # procfs files are regular files whose file system has no extended attributes.
    with pytest.raises(CapabilityError) as caught:
        plan_file_capability("/proc/version")
    assert str(caught.value) == (
        "path: cannot set the capabilities of /proc/version: its file system does not support the "
        "security.capability extended attribute; put the file on a file system with extended attributes "
        "(such as ext4, xfs, btrfs or tmpfs)"
    )


def test_file_system_without_xattrs_is_fine_when_nothing_is_to_remove():
    change = plan_file_capability("/proc/version", state="absent")
    assert not change.changed and change.before_text == ""


def test_write_failure_is_reported_and_leaves_the_file_alone(vault, initial_ns, monkeypatch):
    change = plan(vault, uid_map_path=initial_ns)

    def refuse(*_args, **_kwargs):
        raise OSError(errno.ENOTSUP, os.strerror(errno.ENOTSUP))

    monkeypatch.setattr(os, "setxattr", refuse)
    with pytest.raises(CapabilityError, match=r"^path: cannot set the capabilities of .*vault: its file system"):
        apply_file_capability(change)
    assert read_xattr(vault) is None


_CHILD = r"""
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
from ansible_collections.vault_mlock.lxd.plugins.module_utils._capabilities import (
    CapabilityError,
    CapabilitySet,
    parse_capabilities,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._file_capability import (
    apply_file_capability, plan_file_capability)
try:
    apply_file_capability(plan_file_capability(sys.argv[2]))
except CapabilityError as exc:
    print(exc)
    sys.exit(3)
"""


def _child(prefix, path):
    command = prefix + [sys.executable, "-c", _CHILD, json.dumps(sys.path), str(path)]
    return subprocess.run(command, check=False, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root and unshare")
def test_read_only_file_system(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "vault").write_bytes(VAULT_CONTENT)
    script = f'mount --bind "{folder}" "{folder}" && mount -o remount,ro,bind "{folder}" "{folder}" && exec "$0" "$@"'
    done = _child(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], folder / "vault")
    if "mount" in done.stderr:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == (
        f"path: cannot set the capabilities of {folder / 'vault'}: it is on a read-only file system"
    )
    assert read_xattr(folder / "vault") is None


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv")
def test_permission_denied_without_cap_setfcap(vault):
    done = _child(["setpriv", "--bounding-set", "-setfcap"], vault)
    assert done.returncode == 3, done.stderr
    assert "permission denied; setting file capabilities needs root with CAP_SETFCAP" in done.stdout
    assert read_xattr(vault) is None


_GUEST_CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.vault_mlock.lxd.plugins.module_utils._file_capability import (
    apply_file_capability, plan_file_capability)
print("imported", flush=True)
first = apply_file_capability(plan_file_capability(sys.argv[2]))
second = plan_file_capability(sys.argv[2])
print(first.in_user_namespace, first.changed, first.after_text, first.rootid, len(first.warnings), second.changed)
"""


@pytest.mark.skipif(
    shutil.which("unshare") is None or not os.path.exists("/usr/bin/python3") or os.geteuid() != 0,
    reason="needs root, unshare and a system python3",
)
def test_inside_a_user_namespace_the_kernel_stores_revision_3_for_its_root():
    # An unprivileged LXD guest in miniature: root inside is uid 1000000 outside. Everything the
    # child touches must be reachable for that uid, so nothing lives under pytest's private tmp.
    repo = os.path.realpath(os.path.join(os.path.dirname(_file_capability_path()), "..", ".."))
    root = tempfile.mkdtemp(prefix="vault_mlock_userns_")
    try:
        os.chmod(root, 0o755)
        os.makedirs(os.path.join(root, "ansible_collections", "vault_mlock"))
        os.symlink(repo, os.path.join(root, "ansible_collections", "vault_mlock", "lxd"))
        binary = os.path.join(root, "vault")
        with open(binary, "wb") as handle:
            handle.write(VAULT_CONTENT)
        os.chown(binary, 1000000, 1000000)
        command = [
            "unshare", "--user", "--map-users=1000000,0,65536", "--map-groups=1000000,0,65536",
            "--setuid=0", "--setgid=0", "/usr/bin/python3", "-c", _GUEST_CHILD, root, binary,
        ]
        done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=root)
        if not done.stdout.startswith("imported"):
            pytest.skip(f"cannot run a user namespace here: {done.stderr.strip()[-300:]}")
        assert done.returncode == 0, done.stderr
        # Inside: a namespace, a change, plain text, the rootid invisible, the warning, then idempotent.
        assert done.stdout.splitlines()[1] == "True True cap_ipc_lock=ep None 1 False"
        # Outside: the kernel wrote revision 3 with the namespace's root uid.
        outside = decode_xattr(os.getxattr(binary, XATTR_NAME))
        assert (outside.revision, outside.rootid) == (3, 1000000)
        host_view = plan_file_capability(binary, state="present")
        assert (host_view.changed, host_view.before_text, host_view.rootid) == (False, "cap_ipc_lock=ep", 1000000)
    finally:
        shutil.rmtree(root)


def _file_capability_path() -> str:
    from ansible_collections.vault_mlock.lxd.plugins.module_utils import _file_capability

    return _file_capability.__file__
