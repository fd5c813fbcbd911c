# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from ansible_collections.vault_mlock.lxd.plugins.module_utils._proc import in_user_namespace, read_memlock_limit
from ansible_collections.vault_mlock.lxd.plugins.modules import memlock_facts

NOBODY = 65534


def this_machine_in_user_namespace() -> bool:
    with open("/proc/1/uid_map") as uid_map:
        return in_user_namespace(uid_map.read())


def unique_name() -> str:
    return "vt" + uuid.uuid4().hex[:10]  # never a real process; comm keeps 15 characters


@pytest.fixture
def start_process():
    """Start a copy of sleep under a unique name with a given memlock limit (and user); stop it afterwards."""
    started = []
    # pytest's tmp_path is private to root; the process may run as nobody.
    directory = tempfile.mkdtemp(prefix="memlock-facts-")
    os.chmod(directory, 0o755)

    def start(memlock_bytes: int, uid: int = 0, prefix: str = ""):
        name = (prefix + unique_name())[:15]
        binary = os.path.join(directory, name)
        shutil.copy(shutil.which("sleep"), binary)

        def limit_and_switch_user():
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (memlock_bytes, memlock_bytes))
            if uid:
                os.setgid(uid)
                os.setuid(uid)

        process = subprocess.Popen([binary, "60"], preexec_fn=limit_and_switch_user)
        started.append(process)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(f"/proc/{process.pid}/comm") as comm:
                if comm.read().strip() == name:
                    break
            time.sleep(0.01)
        return name, process.pid

    yield start
    for process in started:
        process.kill()
        process.wait()
    shutil.rmtree(directory)


def test_facts_without_process_or_unit_find_no_vault(run_module):
    name = unique_name()
    result = run_module(memlock_facts, {"process": [name], "units": [name + ".service"]})
    assert result["changed"] is False
    assert result["verdict"] == "absent"
    assert result["processes"] == [] and result["service"] is None
    # Where systemd runs (a Debian 13 guest), it answers for the unit: not found.
    assert all(unit["load_state"] == "not-found" for unit in result["units"])
    assert f"no {name} process runs" in result["message"]
    assert result["message"].endswith("no Vault here")
    assert result["in_user_namespace"] is this_machine_in_user_namespace()
    pid1 = read_memlock_limit(1)
    assert (result["pid1"]["memlock"]["soft_bytes"], result["pid1"]["memlock"]["hard_bytes"]) == (pid1.soft, pid1.hard)
    assert result["pid1"]["host_pid"] is None
    assert set(result["swap"]) == {"total_bytes", "areas", "hidden", "devices", "zswap"}
    assert result["required"] is None
    facts = result["ansible_facts"]["vault_mlock_memlock"]
    assert facts == {key: result[key] for key in facts}
    assert set(facts) >= {"in_user_namespace", "pid1", "processes", "units", "service", "swap", "verdict", "message"}


@pytest.mark.parametrize("required, size", [("4K", 4096), ("1G", 1 << 30), ("infinity", None)])
def test_facts_keep_the_required_size_as_one_value(run_module, required, size):
    name = unique_name()
    result = run_module(memlock_facts, {"process": [name], "units": [name], "required": required,
                                        "_ansible_check_mode": True})
    assert result["required"] == {"size": size}
    assert result["verdict"] == "absent"  # no Vault: nothing to hold against the size
    assert result["changed"] is False


def test_facts_without_units_judge_nothing(run_module):
    result = run_module(memlock_facts, {"process": [unique_name()], "units": []})
    assert result["verdict"] == "unknown"
    assert "no units were named (units: [])" in result["message"]


def test_facts_find_a_process_whose_limit_is_too_low(run_module, start_process):
    name, pid = start_process(4096, uid=NOBODY)  # no capabilities: the 4 KiB limit binds it
    result = run_module(memlock_facts, {"process": [unique_name(), name]})
    assert [(p["pid"], p["name"]) for p in result["processes"]] == [(pid, name)]
    found = result["processes"][0]
    assert found["memlock"]["soft_ulimit_kib"] == 4
    assert found["cap_ipc_lock_effective"] is False
    assert found["vmsize_bytes"] > 4096
    assert found["binary"].endswith("/" + name)
    assert result["verdict"] == "too_low"
    assert f"{name} (PID {pid}) may lock 4 KiB (ulimit -l 4) but needs its whole VmSize" in result["message"]
    assert result["service"] == {"name": f"{name} (PID {pid})", "source": "process", "memlock": found["memlock"],
                                 "locks_memory": True}
    assert result["units"] == []  # a Vault process runs: systemd is not asked


@pytest.mark.skipif(this_machine_in_user_namespace(), reason="CAP_IPC_LOCK counts only in the initial user namespace")
def test_facts_capability_lifts_the_limit_outside_user_namespaces(run_module, start_process):
    name, pid = start_process(4096)  # root: CAP_IPC_LOCK effective
    result = run_module(memlock_facts, {"process": [name]})
    assert result["processes"][0]["cap_ipc_lock_effective"] is True
    assert result["verdict"] == "ok"
    assert result["message"] == (f"this machine: {name} (PID {pid}) holds CAP_IPC_LOCK outside any user namespace, "
                                 "so its memlock limit does not bind it")


@pytest.mark.parametrize(
    "args, message",
    [
        ({"required": "2 gigs"}, "required: '2 gigs' is not a size"),
        ({"process": [""]}, "process: give at least one process name"),
        ({"units": ["vault.socket"]}, "units: 'vault.socket' is a .socket unit"),
        ({"units": ["a/b"]}, "units: 'a/b' contains '/'"),
    ],
)
def test_facts_refuse_bad_options(run_module, args, message):
    result = run_module(memlock_facts, args)
    assert result["failed"] is True
    assert message in result["msg"]


def test_the_documentation_lists_every_returned_key(run_module):
    import yaml

    result = run_module(memlock_facts, {"process": [unique_name()], "units": []})
    documented = set(yaml.safe_load(memlock_facts.RETURN))
    assert documented == set(result["ansible_facts"]["vault_mlock_memlock"]) | {"ansible_facts"}
    yaml.safe_load(memlock_facts.DOCUMENTATION)
    yaml.safe_load(memlock_facts.EXAMPLES)


def test_facts_judge_a_bao_on_swap_never_on_its_limit(run_module, start_process):
    """A process named like OpenBao's bao, under a 4 KiB limit far below its VmSize: no memlock limit is asked for;
    its verdict rests on this machine's swap (read from /proc/swaps, as the kernel shows it) and its cgroups."""
    name, pid = start_process(4096, uid=NOBODY, prefix="bao-")
    result = run_module(memlock_facts, {"process": [name]})
    found = result["processes"][0]
    assert (found["pid"], found["vmlck_bytes"]) == (pid, 0)
    assert found["cgroup_swap"] is not None
    assert result["service"]["locks_memory"] is False
    assert result["message"].startswith(f"this machine: {name} (PID {pid}) does not lock its memory (OpenBao "
                                        "removed mlock in 2.0), so it needs no memlock limit; ")
    assert "LimitMEMLOCK" not in result["message"] and "ulimit" not in result["message"]
    with open("/proc/swaps") as swaps:
        has_swap = len(swaps.read().splitlines()) > 1
    if result["swap"]["hidden"]:
        assert result["verdict"] in ("unknown", "protected")
    elif has_swap:
        assert result["verdict"] in ("exposed", "not_enforced", "protected")
    else:
        assert result["verdict"] == "protected"
        assert "the host has no swap" in result["message"]
