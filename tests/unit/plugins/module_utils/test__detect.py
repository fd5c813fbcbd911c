# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import INCUS, LXC, LXD, PVE
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._detect import detect_engine, resolve_engine


def which_of(*names):
    return lambda name: f"/usr/bin/{name}" if name in names else None


def detect(tmp_path, which=which_of(), paths=None, **kwargs):
    return detect_engine(etc_pve=str(tmp_path / "etc-pve"), root=str(tmp_path), which=which,
                         paths=[str(tmp_path / "lxc")] if paths is None else paths, **kwargs)


def test_proxmox_by_its_cluster_filesystem_directory(tmp_path):
    (tmp_path / "etc-pve" / "lxc").mkdir(parents=True)
    assert detect(tmp_path) == PVE


def test_proxmox_by_pct_or_its_unit(tmp_path):
    assert detect(tmp_path, which=which_of("pct")) == PVE
    unit = tmp_path / "lib/systemd/system/pve-container@.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\n")
    assert detect(tmp_path) == PVE


def test_plain_lxc_needs_lxc_start_and_a_container(tmp_path):
    assert detect(tmp_path, which=which_of("lxc-start")) == LXD  # no container
    (tmp_path / "lxc" / "vault").mkdir(parents=True)
    (tmp_path / "lxc" / "vault" / "config").write_text("lxc.uts.name = vault\n")
    assert detect(tmp_path, which=which_of("lxc-start")) == LXC
    assert detect(tmp_path) == LXD  # no lxc-start


def test_incus_only_where_its_socket_is_alone(tmp_path):
    (tmp_path / "var/lib/incus").mkdir(parents=True)
    (tmp_path / "var/lib/incus/unix.socket").write_text("")
    assert detect(tmp_path) == INCUS
    (tmp_path / "var/lib/lxd").mkdir(parents=True)
    (tmp_path / "var/lib/lxd/unix.socket").write_text("")
    assert detect(tmp_path) == LXD


def test_an_endpoint_means_an_api_engine(tmp_path):
    (tmp_path / "etc-pve" / "lxc").mkdir(parents=True)
    assert detect(tmp_path, endpoint="https://lxd.example.com:8443") == LXD


def test_a_forced_engine_is_not_detected():
    assert resolve_engine({"engine": "pve"}) == PVE
