# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from _host_proc import make_host


@pytest.fixture
def host(tmp_path):
    """A fake LXD host's /proc with a daemon and guests (see _host_proc.make_host)."""
    return make_host(tmp_path)
