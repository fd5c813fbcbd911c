# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils import _atomic
from ansible_collections.vault_mlock.lxd.plugins.module_utils._atomic import write_atomic


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.parametrize(
    "content, expected",
    [
        ("[Service]\nLimitMEMLOCK=256K\n", b"[Service]\nLimitMEMLOCK=256K\n"),
        (b"\x00\xffbinary", b"\x00\xffbinary"),
        ("gr\u00fc\u00dfe\n", "gr\u00fc\u00dfe\n".encode("utf-8")),
        ("", b""),
    ],
)
def test_writes_content(tmp_path, content, expected):
    target = tmp_path / "file.conf"
    write_atomic(str(target), content)
    assert target.read_bytes() == expected


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o640, 0o444, 0o755])
def test_mode_is_set_whatever_the_umask(tmp_path, mode):
    target = tmp_path / "file.conf"
    old_umask = os.umask(0o077)
    try:
        write_atomic(str(target), "x", mode)
    finally:
        os.umask(old_umask)
    assert _mode(target) == mode


def test_default_mode_is_0644(tmp_path):
    target = tmp_path / "file.conf"
    write_atomic(str(target), "x")
    assert _mode(target) == 0o644


def test_replaces_existing_file_with_a_new_inode(tmp_path):
    target = tmp_path / "file.conf"
    target.write_text("old\n")
    os.chmod(target, 0o600)
    old_inode = os.stat(target).st_ino
    write_atomic(str(target), "new\n", 0o644)
    assert target.read_text() == "new\n"
    assert _mode(target) == 0o644
    assert os.stat(target).st_ino != old_inode  # renamed into place, not rewritten


def test_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep\n")
    target = tmp_path / "file.conf"
    target.symlink_to(elsewhere)
    write_atomic(str(target), "new\n")
    assert not target.is_symlink()
    assert target.read_text() == "new\n"
    assert elsewhere.read_text() == "keep\n"


def test_leaves_no_temporary_file_on_success(tmp_path):
    write_atomic(str(tmp_path / "file.conf"), "x")
    assert sorted(os.listdir(tmp_path)) == ["file.conf"]


def test_relative_path_is_written_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_atomic("file.conf", "x")
    assert (tmp_path / "file.conf").read_text() == "x"
    assert sorted(os.listdir(tmp_path)) == ["file.conf"]


def test_temporary_file_is_private_while_written(tmp_path, monkeypatch):
    """Until it is complete, the temporary file is 0600 and sits next to the target."""
    seen = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            seen.append(stat.S_IMODE(info.st_mode))
        return real_fsync(fd)

    monkeypatch.setattr(_atomic.os, "fsync", recording_fsync)
    write_atomic(str(tmp_path / "file.conf"), "x", 0o666)
    assert seen == [0o600]
    assert _mode(tmp_path / "file.conf") == 0o666


@pytest.mark.parametrize("failing", ["fsync", "fchmod", "replace"])
def test_error_keeps_old_file_and_removes_temporary(tmp_path, monkeypatch, failing):
    target = tmp_path / "file.conf"
    target.write_text("old\n")

    def broken(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_atomic.os, failing, broken)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(str(target), "new\n")
    monkeypatch.undo()
    assert target.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["file.conf"]


def test_interrupt_during_write_removes_temporary(tmp_path, monkeypatch):
    """Not only OSError: a KeyboardInterrupt mid-write must not leave a temporary file either."""
    target = tmp_path / "file.conf"
    real_fdopen = os.fdopen

    def fdopen_that_fails_on_write(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)

        class Wrapper:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                handle.close()
                return False

            def write(self, _data):
                raise KeyboardInterrupt()

        return Wrapper()

    monkeypatch.setattr(_atomic.os, "fdopen", fdopen_that_fails_on_write)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(str(target), b"new")
    monkeypatch.undo()
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_missing_directory_raises_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomic(str(tmp_path / "missing" / "file.conf"), "x")
    assert os.listdir(tmp_path) == []


def _write_many(path, letter, times):
    for _round in range(times):
        write_atomic(path, letter * 65536)


def test_two_writers_at_once_leave_one_whole_file_and_readers_never_see_a_mix(tmp_path):
    """Two runs at once: every read sees one writer's whole content, never a mix or a gap."""
    import multiprocessing

    path = str(tmp_path / "00-memlock.conf")
    write_atomic(path, "a" * 65536)
    writers = [multiprocessing.Process(target=_write_many, args=(path, letter, 300)) for letter in "ab"]
    for writer in writers:
        writer.start()
    seen = set()
    while any(writer.is_alive() for writer in writers):
        with open(path, encoding="ascii") as handle:
            content = handle.read()
        assert content in ("a" * 65536, "b" * 65536)
        seen.add(content[0])
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    assert os.listdir(str(tmp_path)) == ["00-memlock.conf"]
    with open(path, encoding="ascii") as handle:
        assert handle.read() in ("a" * 65536, "b" * 65536)


def test_owner_and_group_are_set_when_given(tmp_path):
    target = tmp_path / "openbao.hcl"
    write_atomic(str(target), "ui = true\n", 0o640, uid=1234, gid=2345)
    info = os.stat(target)
    assert (info.st_uid, info.st_gid, _mode(target)) == (1234, 2345, 0o640)
    write_atomic(str(target), "ui = false\n", 0o640, gid=3456)  # the owner stays as the writer's
    assert (os.stat(target).st_uid, os.stat(target).st_gid) == (os.getuid(), 3456)
