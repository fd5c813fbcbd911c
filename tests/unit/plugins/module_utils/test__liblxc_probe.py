# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import time
from pathlib import Path

from ansible_collections.vault_mlock.lxd.plugins.module_utils._liblxc_probe import (
    execute_many,
    parse_started_prlimit,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import MemlockLimit

FILES = Path(__file__).parent / "files" / "pve"


def test_the_config_pct_start_wrote_holds_the_limit_at_start():
    assert parse_started_prlimit((FILES / "var-lib-lxc-101-config.txt").read_text()) == MemlockLimit(262144, 262144)


def test_no_line_means_the_monitor_s_limit():
    assert parse_started_prlimit("lxc.uts.name = vault\n") is None


def test_the_last_line_counts_as_for_liblxc():
    text = "lxc.prlimit.memlock = 1\nlxc.prlimit.memlock = unlimited\n"
    assert parse_started_prlimit(text) == MemlockLimit(None, None)


def test_commands_run_at_once_and_share_one_deadline():
    started = time.monotonic()
    results = execute_many([("a", ["sleep", "5"]), ("b", ["sleep", "5"]), ("c", ["echo", "hi"]),
                            ("d", ["/nonexistent/lxc-attach"])], timeout=1)
    assert time.monotonic() - started < 3  # two hung commands cost the deadline once
    assert isinstance(results[0], TimeoutError) and isinstance(results[1], TimeoutError)
    assert results[2] == (0, "hi\n", "")
    assert isinstance(results[3], OSError)
