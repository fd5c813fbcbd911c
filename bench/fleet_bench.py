# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How long the site playbook takes over a converged fleet, against `ansible -m ping` over the same hosts.

Builds the demo's scene (tests/lab/scene.yml) under its own names: the nested LXD host vml-fleet-host,
whose inner daemon runs under a 512K memlock limit, and its guest vml-fleet-001 running the Vault
stand-in as vault.service; clones that guest to N guests (vml-fleet-001 to vml-fleet-N, stopped while
copied), converges `ansible-playbook vault_mlock.lxd.site` over them once, then times in one run:

  (a) the site playbook again, which must change nothing
  (b) `ansible all -m ansible.builtin.ping` over the same N guests and the host

and prints both, and (a) / (b). Ansible runs as in the demo (its defaults; --pipelining turns that on).
The lxc client's configuration (with the remote vml-fleet, the inner daemon through a proxy socket)
and everything Ansible keeps live in .cache/fleet-bench/state; vml-fleet-host, that socket and that
directory are removed at the end, on an error and on Ctrl-C too (--keep leaves the scene up:
LXD_CONF=.cache/fleet-bench/state/lxc lxc list vml-fleet:). The inventories and each run's log stay
in .cache/fleet-bench.

  $(tests/lab/venv.sh)/bin/python bench/fleet_bench.py [--guests 10] [--repeat 1] [--keep]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKDIR = os.path.join(REPO, ".cache", "fleet-bench")
STATE = os.path.join(WORKDIR, "state")
COLLECTIONS = os.path.join(REPO, ".cache", "collections")
HOST = "vml-fleet-host"
REMOTE = "vml-fleet"
PREFIX = "vml-fleet-"
SOCKET = f"/tmp/{HOST}.sock"  # where scene.yml exposes the inner daemon
BOOTED = ("running", "degraded")  # degraded: the scene's vault.service fails until the site playbook fixes it
COPY_WORKERS = 3
BOOT_SECONDS = 180


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def guest_names(count: int):
    width = max(3, len(str(count)))
    return [f"{PREFIX}{number:0{width}d}" for number in range(1, count + 1)]


def environment(pipelining: bool) -> dict:
    """As demo.sh runs Ansible, with everything it and lxc keep under STATE."""
    env = dict(os.environ,
               ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
               ANSIBLE_HOME=os.path.join(STATE, "ansible"),
               ANSIBLE_LOCAL_TEMP=os.path.join(STATE, "ansible", "tmp"),
               ANSIBLE_DISPLAY_SKIPPED_HOSTS="false",
               ANSIBLE_PYTHON_INTERPRETER="auto_silent",
               ANSIBLE_NOCOLOR="1",
               ANSIBLE_PIPELINING="1" if pipelining else "0",
               LXD_CONF=os.path.join(STATE, "lxc"),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("ANSIBLE_CONFIG", None)
    return env


def inventory(names) -> dict:
    """The demo's inventory (playbooks/inventory/example.yml) with this bench's host and guests."""
    return {"all": {
        "children": {
            "lxd_hosts": {
                "hosts": {HOST: {"ansible_connection": "community.general.lxd"}},
                "vars": {"lxd_host_memlock_limit": "8M", "lxd_host_restart_guests": True,
                         "memlock_verify_required": "3M"},
            },
            "vault_guests": {
                "hosts": {name: {} for name in names},
                "vars": {"ansible_connection": "community.general.lxd", "ansible_lxd_remote": REMOTE},
            },
        },
        "vars": {"ansible_become": False},
    }}


def write_inventory(name: str, names) -> str:
    path = os.path.join(WORKDIR, name)
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(inventory(names), stream, indent=1)
    return path


class Bench:
    def __init__(self, options) -> None:
        self.options = options
        self.env = environment(options.pipelining)
        self.names = guest_names(options.guests)

    def run(self, argv, log: str = "", check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        result = subprocess.run(argv, env=self.env, cwd=WORKDIR, capture_output=True, text=True, check=False,
                                **kwargs)
        if log:
            with open(os.path.join(WORKDIR, log), "w", encoding="utf-8") as stream:
                stream.write(result.stdout + result.stderr)
        if check and result.returncode != 0:
            where = f" (log: {os.path.join(WORKDIR, log)})" if log else ""
            raise RuntimeError(f"{' '.join(argv[:4])} ... exited {result.returncode}{where}: "
                               f"{(result.stdout + result.stderr)[-1500:]}")
        return result

    def timed(self, argv, log: str, check: bool = True):
        start = time.perf_counter()
        result = self.run(argv, log, check)
        return time.perf_counter() - start, result

    def playbook(self, inventory_path: str, playbook: str, log: str, check: bool = True):
        return self.timed([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory_path,
                           playbook], log, check)

    # --- the scene ---------------------------------------------------------------------------------

    def build_scene(self) -> None:
        first = self.names[0]
        scene = write_inventory("scene.json", [first])
        seconds, _result = self.playbook(scene, os.path.join(REPO, "tests", "lab", "scene.yml"), "scene.log")
        say(f"scene built in {seconds:.0f}s: {HOST} with {first}")
        start = time.perf_counter()
        self.run(["lxc", "stop", f"{REMOTE}:{first}"])

        def copy(name):
            self.run(["lxc", "copy", f"{REMOTE}:{first}", f"{REMOTE}:{name}"])

        with ThreadPoolExecutor(max_workers=COPY_WORKERS) as pool:
            list(pool.map(copy, self.names[1:]))
        self.run(["lxc", "start"] + [f"{REMOTE}:{name}" for name in self.names])
        with ThreadPoolExecutor(max_workers=COPY_WORKERS) as pool:
            list(pool.map(self.wait_for_boot, self.names))
        say(f"{first} cloned to {len(self.names)} guests in {time.perf_counter() - start:.0f}s")

    def wait_for_boot(self, name: str) -> None:
        # A guest that never boots (its systemd short of inotify instances) keeps --wait waiting, and now and then
        # an `lxc exec` never returns under load: each try has its time, the whole wait a deadline.
        deadline = time.monotonic() + BOOT_SECONDS
        said = "no answer"
        while time.monotonic() < deadline:
            try:
                answer = self.run(["lxc", "exec", f"{REMOTE}:{name}", "--", "systemctl", "is-system-running",
                                   "--wait"], check=False, timeout=30)
            except subprocess.TimeoutExpired:
                said = "still waiting after 30 s"
                continue
            said = f"{answer.stdout.strip()!r} {answer.stderr.strip()[-300:]!r}"
            if answer.stdout.strip() in BOOTED:
                return
            time.sleep(1)
        raise RuntimeError(f"{name}: systemd did not finish booting in {BOOT_SECONDS} s (is-system-running: {said})")

    # --- the figures -------------------------------------------------------------------------------

    def measure(self) -> int:
        fleet = write_inventory("fleet.json", self.names)
        site = "vault_mlock.lxd.site"
        seconds, _result = self.playbook(fleet, site, "converge.log")
        say(f"converged in {seconds:.0f}s")
        rerun_seconds, ping_seconds, changed = [], [], []
        for run in range(self.options.repeat):
            seconds, result = self.playbook(fleet, site, f"rerun-{run + 1}.log")
            rerun_seconds.append(seconds)
            changed.append(changed_tasks(result.stdout))
            # --task-timeout: now and then an `lxc exec` never returns under load.
            seconds, result = self.timed([os.path.join(os.path.dirname(sys.executable), "ansible"), "all", "-i",
                                          fleet, "-m", "ansible.builtin.ping", "-o", "--task-timeout", "60"],
                                         f"ping-{run + 1}.log")
            ping_seconds.append(seconds)
            pongs = result.stdout.count('"ping": "pong"')
            if pongs != len(self.names) + 1:
                raise RuntimeError(f"ping answered from {pongs} of {len(self.names) + 1} hosts")
        rerun, ping = statistics.median(rerun_seconds), statistics.median(ping_seconds)
        hosts = len(self.names) + 1
        of = f"(median of {self.options.repeat})" if self.options.repeat > 1 else ""
        header = f"{'what':<58} {'hosts':>5} {'seconds':>8} {'ratio':>7}"
        print(header)
        print("-" * len(header))
        print(f"{'(a) ansible-playbook vault_mlock.lxd.site, converged ' + of:<58} {hosts:>5} {rerun:>8.1f} "
              f"{rerun / ping:>6.2f}x")
        print(f"{'(b) ansible all -m ping ' + of:<58} {hosts:>5} {ping:>8.1f} {1:>6.2f}x")
        print(f"# (a) / (b) = {rerun / ping:.2f} with {len(self.names)} guests and 1 host; "
              f"{(rerun - ping) / len(self.names):.2f} s more per guest than ping")
        print(f"# tasks changed by each rerun: {changed} (must be 0); pipelining "
              f"{'on' if self.options.pipelining else 'off'} (Ansible's default: off)")
        return 0 if not any(changed) else 1

    # --- cleaning up -------------------------------------------------------------------------------

    def clean(self) -> None:
        subprocess.run(["lxc", "delete", "--force", HOST], env=self.env, capture_output=True, check=False)
        left = subprocess.run(["lxc", "info", HOST], env=self.env, capture_output=True, check=False)
        if os.path.exists(SOCKET):
            os.unlink(SOCKET)
        shutil.rmtree(STATE, ignore_errors=True)
        if left.returncode == 0:
            raise RuntimeError(f"{HOST} is still there")
        say(f"deleted {HOST} and {STATE}")


def changed_tasks(recap_text: str) -> int:
    """The sum of changed= over the PLAY RECAP lines."""
    recap = recap_text.rsplit("PLAY RECAP", 1)[-1]
    return sum(int(number) for number in re.findall(r"\bchanged=(\d+)", recap))


def machine_line() -> str:
    with open("/proc/loadavg", encoding="ascii") as loadavg:
        load = " ".join(loadavg.read().split()[:3])
    return (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}, load {load}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--guests", type=int, default=10, help="how many Vault guests in the nested host (default 10)")
    parser.add_argument("--repeat", type=int, default=1, help="reruns and pings; the median counts (default 1)")
    parser.add_argument("--pipelining", action="store_true", help="run Ansible with pipelining (default: off)")
    parser.add_argument("--keep", action="store_true", help="leave the scene up at the end")
    parser.add_argument("--delete", action="store_true", help="only delete what an earlier run left, then exit")
    options = parser.parse_args()
    if options.guests < 1 or options.repeat < 1:
        parser.error("--guests and --repeat take a number of at least 1")
    link = os.path.join(COLLECTIONS, "ansible_collections", "vault_mlock", "lxd")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    bench = Bench(options)
    if options.delete:
        bench.clean()
        return 0
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C, so that the finally below cleans up
    try:
        bench.clean()  # what an interrupted --keep run left
        os.makedirs(os.path.join(STATE, "lxc"))
        print(f"# {machine_line()}")
        bench.build_scene()
        status = bench.measure()
        print(f"# {machine_line()}")
        return status
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        if not options.keep:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave the scene behind
            bench.clean()


if __name__ == "__main__":
    sys.exit(main())
