# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A guest's symbolic links, read from the host, must never lead out of the guest's root."""

from __future__ import annotations

import errno
import os

import pytest
from _files import put

from ansible_collections.vault_mlock.lxd.plugins.module_utils._safe_root import (
    exists_in_root,
    listdir_in_root,
    open_in_root,
    read_text_in_root,
    resolve_in_root,
)


@pytest.fixture
def scene(tmp_path):
    """A host file outside the guest's root, and a guest root full of links that point at it."""
    outside = tmp_path / "host"
    put(outside, "/secret", "host secret\n")
    root = tmp_path / "guest"
    put(root, "/etc/hostname", "guest\n")
    put(root, "/sys/fs/cgroup/system.slice/memory.swap.max", "0\n")
    os.makedirs(root / "links")
    # An absolute link, as the guest would write it, naming the host's file by its host path.
    os.symlink(str(outside / "secret"), root / "links/absolute")
    os.symlink(str(outside), root / "links/absolute-dir")
    # A relative link climbing far above the root.
    os.symlink("../../../../../../../../" + str(outside / "secret").lstrip("/"), root / "links/climb")
    os.symlink("/etc/hostname", root / "links/hostname")
    os.symlink("../etc", root / "links/etc")
    os.symlink("loop-b", root / "links/loop-a")
    os.symlink("loop-a", root / "links/loop-b")
    os.symlink("/sys/fs/cgroup", root / "links/cgroup")
    return root, outside


def test_the_trap_is_real(scene):
    """Plain open() follows the guest's absolute link to the host's file: what must never happen."""
    root, _outside = scene
    with open(root / "links/absolute") as stream:
        assert stream.read() == "host secret\n"


@pytest.mark.parametrize("path", ["/links/absolute", "links/climb", "/links/absolute-dir/secret",
                                  "/../../../" + "links/absolute"])
def test_links_out_of_the_root_are_resolved_inside_it(scene, path):
    root, _outside = scene
    with pytest.raises(FileNotFoundError):
        read_text_in_root(str(root), path)


def test_an_absolute_link_reads_the_guest_copy_when_there_is_one(scene):
    root, outside = scene
    put(root, str(outside / "secret"), "guest copy\n")
    assert read_text_in_root(str(root), "/links/absolute") == "guest copy\n"
    assert read_text_in_root(str(root), "/links/climb") == "guest copy\n"


@pytest.mark.parametrize(
    "path, text",
    [
        ("/etc/hostname", "guest\n"),
        ("/links/hostname", "guest\n"),
        ("/links/etc/hostname", "guest\n"),
        ("/links/../etc/./hostname", "guest\n"),
        ("/links/cgroup/system.slice/memory.swap.max", "0\n"),
    ],
)
def test_links_inside_the_root_work(scene, path, text):
    root, _outside = scene
    assert read_text_in_root(str(root), path) == text


def test_a_link_loop_fails_as_the_kernel_does(scene):
    root, _outside = scene
    with pytest.raises(OSError) as failure:
        read_text_in_root(str(root), "/links/loop-a")
    assert failure.value.errno == errno.ELOOP


def test_a_file_in_the_middle_of_a_path_fails(scene):
    root, _outside = scene
    with pytest.raises(NotADirectoryError):
        read_text_in_root(str(root), "/etc/hostname/more")


def test_directories_and_existence(scene):
    root, _outside = scene
    assert listdir_in_root(str(root), "/links/cgroup") == ["system.slice"]
    assert exists_in_root(str(root), "/links/hostname")
    assert not exists_in_root(str(root), "/links/absolute")
    fd = open_in_root(str(root), "/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert sorted(os.listdir(fd)) == ["etc", "links", "sys"]
    finally:
        os.close(fd)


def test_no_descriptor_is_left_open(scene):
    root, _outside = scene
    before = len(os.listdir("/proc/self/fd"))
    for _attempt in range(20):
        read_text_in_root(str(root), "/links/cgroup/system.slice/memory.swap.max")
        with pytest.raises(OSError):
            read_text_in_root(str(root), "/links/loop-a")
        with pytest.raises(OSError):
            read_text_in_root(str(root), "/links/absolute")
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize(
    "path, resolved",
    [
        ("/links/hostname", "/etc/hostname"),
        ("/links/etc/hostname", "/etc/hostname"),
        ("/links/absolute-dir/secret", None),  # below: the host path, kept inside the root
        ("/links/climb", None),
        ("/missing/a/b", "/missing/a/b"),
    ],
)
def test_resolve_stays_inside(scene, path, resolved):
    root, outside = scene
    expected = resolved or str(outside / "secret")
    assert resolve_in_root(str(root), path) == expected
    assert not os.path.exists(os.path.join(str(root), expected.lstrip("/"))) or resolved
