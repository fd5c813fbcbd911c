# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A guest's unit files, read from the host: any entry naming a unit sends the question to the guest's systemd,
and no link of the guest is followed out of its root."""

from __future__ import annotations

import os

import pytest
from _files import put

from ansible_collections.vault_mlock.lxd.plugins.module_utils._guest_unit_files import (
    entry_names,
    units_from_files,
)

UNITS = ("vault.service", "openbao.service")
UNIT_TEXT = "[Service]\nExecStart=/usr/local/bin/vault server\n"


@pytest.fixture
def guest(tmp_path):
    """A Debian-like guest root: systemd runs it, /lib links to usr/lib, and units that are not Vault's."""
    root = tmp_path / "guest"
    os.makedirs(root / "run/systemd/system")
    put(root, "/usr/lib/systemd/system/ssh.service", "[Service]\n")
    os.symlink("usr/lib", root / "lib")
    os.makedirs(root / "etc/systemd/system/multi-user.target.wants")
    os.symlink("/lib/systemd/system/ssh.service", root / "etc/systemd/system/multi-user.target.wants/ssh.service")
    return root


def test_a_guest_without_vaults_units_is_told_from_its_files(guest):
    units = units_from_files(str(guest), UNITS)
    assert units.systemd is True and units.loaded == []
    assert [(unit.name, unit.load_state, unit.state) for unit in units.units] == [
        ("vault.service", "not-found", "inactive (dead)"), ("openbao.service", "not-found", "inactive (dead)")]


def test_a_guest_without_systemd(tmp_path):
    root = tmp_path / "busybox"
    put(root, "/etc/inittab", "::sysinit:/etc/init.d/rcS\n")
    units = units_from_files(str(root), UNITS)
    assert (units.systemd, units.units) == (False, [])


@pytest.mark.parametrize("path", [
    "/etc/systemd/system/vault.service",
    "/run/systemd/system/vault.service",
    "/run/systemd/transient/openbao.service",  # systemd-run --unit openbao
    "/usr/lib/systemd/system/openbao.service",
    "/lib/systemd/system/vault.service",  # through the guest's /lib -> usr/lib
    "/usr/local/lib/systemd/system/vault.service",
    "/etc/systemd/system/multi-user.target.wants/vault.service",
    "/usr/lib/systemd/system/vault-cluster.target.requires/openbao.service",
    "/etc/systemd/system/vault.service.d/override.conf",
])
def test_any_file_of_a_unit_asks_the_guest(guest, path):
    put(guest, path, UNIT_TEXT)
    assert units_from_files(str(guest), UNITS) is None


@pytest.mark.parametrize("target", ["/dev/null", "/opt/vault/vault.service", "../../../../../../etc/passwd"])
def test_a_link_of_a_units_name_is_the_guests_systemd_to_judge(guest, target):
    """A mask (/dev/null), a linked unit file, a link climbing out: none is followed, each is asked about."""
    os.symlink(target, guest / "etc/systemd/system/vault.service")
    assert units_from_files(str(guest), UNITS) is None


def test_a_template_names_its_instances(guest):
    put(guest, "/usr/lib/systemd/system/vault@.service", UNIT_TEXT)
    assert units_from_files(str(guest), ["vault@main.service"]) is None
    assert units_from_files(str(guest), ["vault.service"]) is not None


def test_links_out_of_the_guests_root_are_not_followed(tmp_path, guest):
    """The guest's unit directories link to host paths holding vault.service: on the host they would lead there,
    inside the guest they lead nowhere, so the guest has no unit file and nothing is asked."""
    host_units = tmp_path / "host-units"
    put(host_units, "/vault.service", UNIT_TEXT)
    put(host_units, "/multi-user.target.wants/vault.service", UNIT_TEXT)
    os.rmdir(guest / "run/systemd/system")
    os.symlink(str(host_units), guest / "run/systemd/system")  # also systemd's own directory: the host's is no proof
    os.makedirs(guest / "usr/local/lib/systemd")
    os.symlink(str(host_units), guest / "usr/local/lib/systemd/system")
    os.symlink(str(host_units / "multi-user.target.wants"), guest / "usr/lib/systemd/system/graphical.target.wants")
    # The trap: the host follows them.
    assert "vault.service" in os.listdir(guest / "usr/local/lib/systemd/system")
    assert "vault.service" in os.listdir(guest / "usr/lib/systemd/system/graphical.target.wants")
    units = units_from_files(str(guest), UNITS)
    assert (units.systemd, units.units) == (False, [])  # /run/systemd/system is not there inside the guest
    os.unlink(guest / "run/systemd/system")
    os.makedirs(guest / "run/systemd/system")
    units = units_from_files(str(guest), UNITS)
    assert units is not None and units.systemd and units.loaded == []


def test_links_inside_the_guests_root_are_followed(guest):
    put(guest, "/opt/units/vault.service", UNIT_TEXT)
    os.makedirs(guest / "usr/local/lib/systemd")
    os.symlink("/opt/units", guest / "usr/local/lib/systemd/system")
    assert units_from_files(str(guest), UNITS) is None


def test_an_unreadable_root_asks_the_guest(tmp_path):
    assert units_from_files(str(tmp_path / "gone"), UNITS) is None


def test_a_name_systemctl_completes_asks_the_guest(guest):
    assert entry_names("vault") is None
    assert units_from_files(str(guest), ["vault"]) is None
    assert entry_names("vault@a.service") == {"vault@a.service", "vault@.service", "vault@a.service.d",
                                              "vault@.service.d"}


PROGRAMS = ("vault", "bao")


@pytest.mark.parametrize("path, text", [
    ("/etc/systemd/system/secrets.service", "[Service]\nExecStart=/opt/openbao/bin/bao server -config=/etc/bao\n"),
    ("/run/systemd/transient/run-r1.service", "[Service]\nExecStart=-@/usr/bin/vault vault server\n"),
    ("/usr/lib/systemd/system/kv.service", '[Service]\nExecStart="/usr/bin/bao" server\n'),
])
def test_a_unit_of_another_name_that_starts_vault_or_bao_is_asked_about(guest, path, text):
    """The guest's own question finds loaded services by their ExecStart; the files must not say less."""
    assert units_from_files(str(guest), UNITS, PROGRAMS) is not None
    put(guest, path, text)
    assert units_from_files(str(guest), UNITS, PROGRAMS) is None
    assert units_from_files(str(guest), UNITS) is not None  # without the programs only names count


def test_a_service_file_that_is_no_regular_file_is_never_read(guest):
    """A FIFO would block the probe on the host for ever; a link out of the guest's root reads the guest's own."""
    os.mkfifo(guest / "etc/systemd/system/trap.service")
    outside = guest.parent / "outside.service"
    outside.write_text("[Service]\nExecStart=/usr/bin/vault server\n")
    os.symlink(str(outside), guest / "etc/systemd/system/escape.service")
    units = units_from_files(str(guest), UNITS, PROGRAMS)
    assert units is not None and units.loaded == []
