# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from _files import UNIT_FILE, put
from _host_proc import make_host


@pytest.fixture
def host(tmp_path):
    """A fake LXD host's /proc with a daemon and guests (see _host_proc.make_host)."""
    return make_host(tmp_path)


@pytest.fixture
def lxd_tree(tmp_path):
    """A host with Debian's lxd.service and no drop-ins."""
    put(tmp_path, UNIT_FILE, "[Unit]\nDescription=LXD\n[Service]\nExecStart=/usr/bin/lxd\nKillMode=process\n")
    return tmp_path
