# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How long reading every guest's memlock limit takes, by each way of reading it, in one run.

Starts N busybox guests (image vault-mlock/tiny, names vml-bench-NNN) on the local LXD daemon and
times over all of them, first with no Vault in any guest (the common host), then with a process
named vault in each (a shell script: its comm is its file name):

  No Vault in any guest:
  (a0) vault_mlock.lxd.memlock_probe in this process (method=auto): connect, MemlockProbe.run
  (c)  the per-guest way: `ansible all -m ansible.builtin.raw -a 'cat /proc/1/limits'` over the
       lxd connection with 5 forks (busybox guests have no python, so raw instead of command)
  (d0) the whole module: `ansible localhost -m vault_mlock.lxd.memlock_probe`
  A vault process in every guest:
  (a)  the module in this process, as (a0): through the host's /proc, no command in any guest
  (b)  its exec path: method=exec (a sh script run inside every guest, all at once)
  (d)  the whole module, as (d0)
  (e)  `ansible localhost -m ansible.builtin.ping`: what any module costs through ansible

It prints the table, how many commands each in-process run started inside guests, and the three
figures to hold: (c)/(d0) (how many times faster than raw), (a) in seconds, (d) - (e).
The machine is shared and noisy: compare the ratios, not the seconds. The guests are deleted at
the end, on an error and on Ctrl-C too, unless --keep is given (a later run reuses them).

  $(tests/lab/venv.sh)/bin/python bench/probe_bench.py [--guests 100] [--no-vault] [--keep]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.join(REPO, ".cache", "collections")
IMAGE = "vault-mlock/tiny"
PREFIX = "vml-bench-"
NAME_RE = re.compile(re.escape(PREFIX) + r"[0-9]{3,}$")
LXD_WORKERS = 8  # concurrent create/start/delete calls; LXD serialises much of it anyway
# A process named vault in a busybox guest: a script's comm is its file name.
VAULT_SCRIPT = "/tmp/vault"
START_VAULT = (f"grep -qx vault /proc/[0-9]*/comm 2>/dev/null && exit 0; "
               f"printf '#!/bin/sh\\nwhile :; do sleep 3600; done\\n' > {VAULT_SCRIPT}; chmod +x {VAULT_SCRIPT}; "
               f"({VAULT_SCRIPT} </dev/null >/dev/null 2>&1 &)")
# A reused guest may still run the vault of an earlier run.
STOP_VAULT = "for comm in /proc/[0-9]*/comm; do [ \"$(cat $comm 2>/dev/null)\" = vault ] || continue; " \
             "pid=${comm#/proc/}; kill ${pid%/comm}; done; true"


def collection_on_path() -> None:
    """Make ansible_collections.vault_mlock.lxd importable here and findable by ansible (as test.sh does)."""
    link = os.path.join(COLLECTIONS, "ansible_collections", "vault_mlock", "lxd")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    for path in reversed(COLLECTIONS.split(os.pathsep)):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS


collection_on_path()

import pylxd  # noqa: E402  (the venv has it; the collection needs the path set up above)

from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_api import connect  # noqa: E402
from ansible_collections.vault_mlock.lxd.plugins.module_utils._probe import MemlockProbe  # noqa: E402


def guest_names(count: int):
    width = max(3, len(str(count)))
    return [f"{PREFIX}{number:0{width}d}" for number in range(1, count + 1)]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the guests --------------------------------------------------------------------------------

def start_guest(client, name: str) -> str:
    """Create (from IMAGE) and start one guest, or start it if it exists; returns what was done."""
    if client.instances.exists(name):
        instance = client.instances.get(name)
        if instance.status == "Running":
            return "reused"
        instance.start(wait=True)
        return "started"
    instance = client.instances.create({"name": name, "source": {"type": "image", "alias": IMAGE}}, wait=True)
    instance.start(wait=True)
    return "created"


def start_guests(client, names) -> dict:
    done = {}
    pool = ThreadPoolExecutor(max_workers=LXD_WORKERS)
    try:
        for name, what in zip(names, pool.map(lambda name: start_guest(client, name), names)):
            done[what] = done.get(what, 0) + 1
    finally:
        # On Ctrl-C: let running calls finish, so that cleanup sees every guest they made.
        pool.shutdown(wait=True, cancel_futures=True)
    return done


def bench_guests(client):
    return [instance.name for instance in client.instances.all() if NAME_RE.match(instance.name)]


def delete_guest(client, name: str) -> None:
    instance = client.instances.get(name)
    if instance.status != "Stopped":
        instance.stop(force=True, wait=True)
    instance.delete(wait=True)


def delete_guests(client) -> int:
    names = bench_guests(client)
    with ThreadPoolExecutor(max_workers=LXD_WORKERS) as pool:
        list(pool.map(lambda name: delete_guest(client, name), names))
    left = bench_guests(client)
    if left:
        raise RuntimeError(f"these guests are still there: {' '.join(left)}")
    return len(names)


def run_in_guests(names, script: str) -> None:
    """``script`` (idempotent) in every guest: START_VAULT or STOP_VAULT."""
    def run_in(name):
        # Now and then an `lxc exec` (LXD 5.0.2) never returns under load: try again, the command is idempotent.
        for attempt in range(3):
            try:
                subprocess.run(["lxc", "exec", name, "--", "sh", "-c", script], check=True, capture_output=True,
                               timeout=20)
                return
            except subprocess.TimeoutExpired:
                say(f"{name}: lxc exec did not return (attempt {attempt + 1})")
        raise RuntimeError(f"could not run {script!r} in {name}")

    with ThreadPoolExecutor(max_workers=LXD_WORKERS) as pool:
        list(pool.map(run_in, names))


def wait_for_inits(client, names, timeout: float = 120) -> None:
    """Until every guest's init has forked its child (busybox init runs /etc/inittab's sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        api, endpoint = connect()
        probe = MemlockProbe(api, endpoint=endpoint, method="proc").run(names)
        missing = [report.name for report in probe.instances if report.pid1 is None]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"no init seen in {len(missing)} guests, e.g. {missing[:5]}")
        time.sleep(1)


# --- the ways of reading the limits ------------------------------------------------------------

class Timer:
    """Wall and CPU seconds of what runs inside it: this process's (its threads too) and its finished children's,
    which a loaded machine inflates less than wall seconds."""

    def __init__(self) -> None:
        self.walls, self.cpus = [], []

    @staticmethod
    def _cpu() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def __enter__(self):
        self._start = (time.perf_counter(), self._cpu())
        return self

    def __exit__(self, *_exc):
        self.walls.append(time.perf_counter() - self._start[0])
        self.cpus.append(self._cpu() - self._start[1])

    @property
    def medians(self):
        """(wall, cpu) medians."""
        return statistics.median(self.walls), statistics.median(self.cpus)


class CountingApi:
    """The API, counting the commands the probe starts inside guests."""

    def __init__(self, api):
        self.api = api
        self.commands = 0

    def __getattr__(self, name):
        return getattr(self.api, name)

    def execute_many(self, commands):
        self.commands += len(commands)
        return self.api.execute_many(commands)


def time_probe(method: str, names, repeat: int):
    """Median (wall, cpu) seconds of connect + MemlockProbe.run over ``names``, the last report, and the commands
    it ran."""
    timer = Timer()
    report = None
    for _run in range(repeat):
        with timer:
            api, endpoint = connect()
            counting = CountingApi(api)
            report = MemlockProbe(counting, endpoint=endpoint, method=method).run(names)
    return timer.medians, report, counting.commands


def ansible_bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def ansible_env() -> dict:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_LOAD_CALLBACK_PLUGINS="0",
               ANSIBLE_COLLECTIONS_PATH=COLLECTIONS)
    env.pop("ANSIBLE_CONFIG", None)
    return env


def time_ansible_raw(names, workdir: str, repeat: int, forks: int):
    """Median (wall, cpu) seconds of one `ansible all -m raw` over the guests; and how many printed their limits."""
    inventory = os.path.join(workdir, "inventory.json")
    with open(inventory, "w", encoding="utf-8") as stream:
        json.dump({"all": {"hosts": {name: None for name in names},
                           "vars": {"ansible_connection": "community.general.lxd"}}}, stream)
    # --task-timeout: now and then an `lxc exec` of a short command never returns under load.
    argv = [ansible_bin("ansible"), "all", "-i", inventory, "--forks", str(forks), "--task-timeout", "60", "-o",
            "-m", "ansible.builtin.raw", "-a", "cat /proc/1/limits"]
    timer = Timer()
    answered = 0
    for _run in range(repeat):
        with timer:
            result = subprocess.run(argv, cwd=workdir, env=ansible_env(), capture_output=True, text=True, check=False)
        lines = result.stdout.splitlines()
        answered = sum(1 for line in lines if "Max locked memory" in line)
        others = [line[:200] for line in lines if "Max locked memory" not in line]
        if result.returncode != 0 or others:
            say(f"ansible raw exited {result.returncode}; hosts without the limits row: {len(others)}, "
                f"e.g. {others[:3]}")
    return timer.medians, answered


def time_ansible_localhost(module: str, args: str, workdir: str, repeat: int):
    """Median (wall, cpu) seconds of `ansible localhost -m MODULE -a ARGS`, and its last result."""
    argv = [ansible_bin("ansible"), "localhost", "-m", module, "-a", args,
            "-e", f"ansible_python_interpreter={sys.executable}"]
    env = dict(ansible_env(), ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    timer = Timer()
    module_result = {}
    for _run in range(repeat):
        with timer:
            result = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, check=False)
        try:  # "localhost | SUCCESS => {...}"
            module_result = json.loads(result.stdout.split("=>", 1)[1])
        except (ValueError, IndexError) as exc:
            say(f"ansible localhost -m {module}: unreadable output ({exc}): {result.stdout[-600:]}")
    return timer.medians, module_result


def time_ansible_module(names, workdir: str, repeat: int):
    """Median (wall, cpu) seconds of the whole module through `ansible localhost`; and how many guests it read."""
    seconds, result = time_ansible_localhost("vault_mlock.lxd.memlock_probe",
                                             json.dumps({"instances": list(names), "method": "auto"}), workdir, repeat)
    read = sum(1 for report in result.get("instances", []) if report["pid1"] is not None)
    return seconds, read


# --- the table ---------------------------------------------------------------------------------

def machine_line() -> str:
    try:
        lxd_version = pylxd.Client().host_info["environment"]["server_version"]
    except Exception:  # the table is still worth printing
        lxd_version = "?"
    with open("/proc/loadavg", encoding="ascii") as loadavg:
        load = " ".join(loadavg.read().split()[:3])
    return (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}, LXD {lxd_version}, load {load}")


def print_table(rows, raw) -> None:
    """Rows of (method, guests, (wall, cpu) seconds, commands run inside guests or None), each with how many times
    faster than raw (wall)."""
    header = (f"{'method':<66} {'guests':>6} {'seconds':>8} {'cpu s':>7} {'per guest':>10} {'vs raw':>7} "
              f"{'commands':>8}")
    print(header)
    print("-" * len(header))
    for method, guests, (wall, cpu), commands in rows:
        per_guest = f"{wall / guests * 1000:.2f} ms" if guests else "-"
        print(f"{method:<66} {guests:>6} {wall:>8.3f} {cpu:>7.2f} {per_guest:>10} {raw[0] / wall:>6.1f}x "
              f"{'-' if commands is None else commands:>8}")


def pid1_limits(report) -> dict:
    return {item.name: item.pid1.memlock if item.pid1 else None for item in report.instances}


def run(options) -> int:
    names = guest_names(options.guests)
    client = pylxd.Client()
    print(f"# {machine_line()}")
    start = time.perf_counter()
    done = start_guests(client, names)
    wait_for_inits(client, names)
    if done.get("reused"):
        run_in_guests(names, STOP_VAULT)
    say(f"guests ready in {time.perf_counter() - start:.1f}s ({done})")
    repeat, ansible_repeat = options.repeat, options.ansible_repeat
    rows = []
    failures = []
    with tempfile.TemporaryDirectory(prefix="vml-bench-") as workdir:
        bare_seconds, bare_report, bare_commands = time_probe("auto", names, repeat)
        rows.append((f"(a0) no Vault: memlock_probe in-process (median of {repeat})", len(names), bare_seconds,
                     bare_commands))
        raw_seconds, answered = time_ansible_raw(names, workdir, ansible_repeat, options.forks)
        rows.append((f"(c) ansible -m raw 'cat /proc/1/limits', {options.forks} forks (median of {ansible_repeat})",
                     len(names), raw_seconds, len(names)))
        bare_module_seconds, bare_read = time_ansible_module(names, workdir, ansible_repeat)
        rows.append((f"(d0) no Vault: ansible localhost -m memlock_probe (median of {ansible_repeat})", len(names),
                     bare_module_seconds, None))
        absent = sum(1 for report in bare_report.instances if report.verdict == "absent")
        if absent != len(names) or bare_read != len(names):
            failures.append(f"without Vault: {absent} absent in-process, the module read {bare_read}")
        if not options.no_vault:
            run_in_guests(names, START_VAULT)
            proc_seconds, proc_report, proc_commands = time_probe("auto", names, repeat)
            rows.append((f"(a) Vault in each: memlock_probe in-process (median of {repeat})", len(names),
                         proc_seconds, proc_commands))
            exec_seconds, exec_report, exec_commands = time_probe("exec", names, repeat)
            rows.append((f"(b) Vault in each: exec path, in-process (median of {repeat})", len(names), exec_seconds,
                         exec_commands))
            module_seconds, read = time_ansible_module(names, workdir, ansible_repeat)
            rows.append((f"(d) Vault in each: ansible localhost -m memlock_probe (median of {ansible_repeat})",
                         len(names), module_seconds, None))
            ping_seconds, _pong = time_ansible_localhost("ansible.builtin.ping", "", workdir, ansible_repeat)
            rows.append((f"(e) ansible localhost -m ping (median of {ansible_repeat})", 0, ping_seconds, None))
    print_table(rows, raw_seconds)
    print(f"# ansible raw printed /proc/1/limits for {answered} of {len(names)}; without Vault the probe judged "
          f"{absent} of {len(names)} absent, the module read {bare_read}")
    print(f"# no Vault, end to end: (c) / (d0) = {raw_seconds[0] / bare_module_seconds[0]:.2f}x faster than raw "
          f"(goal >= 3x); in CPU seconds {raw_seconds[1] / bare_module_seconds[1]:.2f}x")
    if not options.no_vault:
        proc_limits, exec_limits = pid1_limits(proc_report), pid1_limits(exec_report)
        agree = sum(1 for name in names if proc_limits[name] is not None and proc_limits[name] == exec_limits[name])
        with_vault = sum(1 for report in proc_report.instances if report.processes and report.service is not None)
        print(f"# Vault in each: the probe judged a vault process in {with_vault} of {len(names)} guests; both paths "
              f"read the same PID 1 limit in {agree}; the module read {read}")
        print(f"# Vault in each, in-module: (a) = {proc_seconds[0]:.3f} s, {proc_seconds[1]:.3f} CPU s "
              "(goal <= 0.25 s for 100 guests)")
        print(f"# Vault in each, end to end: (d) - (e) = {module_seconds[0] - ping_seconds[0]:+.2f} s, "
              f"{module_seconds[1] - ping_seconds[1]:+.2f} CPU s over ansible localhost -m ping (goal <= 0.4 s)")
        if agree != len(names) or with_vault != len(names):
            failures.append(f"with Vault: {with_vault} judged, {agree} agree")
    print("# (c) uses ansible.builtin.raw: the busybox guests have no python for ansible.builtin.command")
    print(f"# {machine_line()}")
    # Only the probe must read every guest; what ansible loses is a finding, not a failure.
    for failure in failures:
        say(failure)
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--guests", type=int, default=100, help="how many busybox guests (default 100)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs of (a0), (a) and (b); the median counts (default 5)")
    parser.add_argument("--ansible-repeat", type=int, default=3,
                        help="runs of each ansible command, (c), (d0), (d) and (e); the median counts (default 3)")
    parser.add_argument("--forks", type=int, default=5, help="ansible forks for (c) (default 5, ansible's own)")
    parser.add_argument("--no-vault", action="store_true", help="only the rows without Vault: (a0), (c) and (d0)")
    parser.add_argument("--keep", action="store_true", help="leave the guests running, for a later run to reuse")
    parser.add_argument("--delete", action="store_true", help="only delete the vml-bench guests, then exit")
    options = parser.parse_args()
    if options.guests < 1 or options.repeat < 1 or options.ansible_repeat < 1 or options.forks < 1:
        parser.error("--guests, --repeat, --ansible-repeat and --forks take a number of at least 1")
    client = pylxd.Client()
    if options.delete:
        say(f"deleted {delete_guests(client)} guests")
        return 0
    # SIGTERM as Ctrl-C, so that the finally below deletes the guests either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return run(options)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        if not options.keep:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave guests behind
            say(f"deleting the vml-bench guests: {delete_guests(client)} deleted")


if __name__ == "__main__":
    sys.exit(main())
