# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Starts and deletes the lab's LXD instances, for Molecule's create and destroy steps and the demo.

    instances.py up SPEC     delete what an earlier run left, launch every instance from its local
                             image, wait until systemd in each has booted, then initialise each
                             nested daemon and import its guest image
    instances.py down SPEC   delete the instances

SPEC is JSON: {"instances": [PLATFORM, ...], "images": DIR, "instance_config": PATH or null}.
A PLATFORM is a Molecule platform: name, image (a local alias), config (string values), and
    lxd_host: true     a nested LXD host: security.nesting, a dir storage pool, and the lab's
                       guest image imported into its inner daemon as vault-mlock/guest;
    incus_host: true   the same for a nested Incus host, with vault-mlock/guest-trixie;
    inner_image: NAME  the lab image imported inside instead (null: none).
With instance_config, `up` writes Molecule's instance config there and `down` removes it.

One process does it all because each Ansible task on the controller costs about half a second
of CPU, and a scenario's create and destroy steps used to make four per platform.
Prints one JSON object: {"changed": BOOL, "deleted": [...], "launched": [...], ...}.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

BOOTED = ("running", "degraded")
BOOT_TRIES = 60  # one second apart; an exec right after the start may fail and is tried again

PRESEED = """storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root: {path: /, pool: default, type: disk}
"""


class LabError(Exception):
    pass


def run(argv, stdin=None, check=True):
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError("%s: exit %d: %s" % (" ".join(argv), proc.returncode, proc.stderr.strip()))
    return proc


def nested_daemon(platform):
    """(cli, admin, inner image or None) for a nested host, None for a plain guest."""
    if platform.get("incus_host"):
        return "incus", ["incus", "admin"], platform.get("inner_image", "guest-trixie")
    if platform.get("lxd_host"):
        return "lxc", ["lxd"], platform.get("inner_image", "guest")
    return None


def existing_instances():
    urls = json.loads(run(["lxc", "query", "/1.0/instances"]).stdout)
    return {url.rsplit("/", 1)[-1] for url in urls}


def delete(spec, report):
    existing = existing_instances()
    names = [p["name"] for p in spec["instances"] if p["name"] in existing]
    if names:
        run(["lxc", "delete", "--force"] + names)
    report["deleted"] = names
    config = spec.get("instance_config")
    if config and os.path.exists(config):
        os.unlink(config)


def launch(platform):
    config = dict(platform.get("config") or {})
    if nested_daemon(platform):
        config["security.nesting"] = "true"
    argv = ["lxc", "launch", platform["image"], platform["name"]]
    for key, value in sorted(config.items()):
        argv += ["-c", "%s=%s" % (key, value)]
    run(argv)


def wait_for_boot(name):
    state = ""
    for _attempt in range(BOOT_TRIES):
        state = run(["lxc", "exec", name, "--", "systemctl", "is-system-running", "--wait"],
                    check=False).stdout.strip()
        if state in BOOTED:
            return
        time.sleep(1)
    raise LabError("%s: systemd did not finish booting (is-system-running: %r)" % (name, state))


def initialise_daemon(name, cli, admin):
    """A dir storage pool and a default profile, unless the daemon has a pool already."""
    run(["lxc", "exec", name, "--"] + admin + ["waitready", "--timeout", "60"])
    pools = run(["lxc", "exec", name, "--", cli, "storage", "list", "--format", "csv"]).stdout
    if pools.strip():
        return False
    run(["lxc", "exec", name, "--"] + admin + ["init", "--preseed"], stdin=PRESEED)
    return True


def import_image(name, cli, image, images):
    alias = "vault-mlock/" + image
    if run(["lxc", "exec", name, "--", cli, "image", "info", alias], check=False).returncode == 0:
        return False
    source = os.path.join(images, "vault-mlock_" + image)
    run(["lxc", "file", "push", "--quiet", os.path.join(source, "meta.tar.gz"),
         os.path.join(source, "rootfs.tar.gz"), name + "/root/"])
    run(["lxc", "exec", name, "--", cli, "image", "import", "/root/meta.tar.gz",
         "/root/rootfs.tar.gz", "--alias", alias])
    run(["lxc", "exec", name, "--", "rm", "/root/meta.tar.gz", "/root/rootfs.tar.gz"])
    return True


def write_instance_config(path, platforms):
    # The short connection name `lxd` lets testinfra use its fast `lxc exec` backend.
    text = "".join("- instance: %s\n  connection: lxd\n" % p["name"] for p in platforms)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def up(spec, report):
    delete(spec, report)
    platforms = spec["instances"]
    for platform in platforms:
        launch(platform)
    report["launched"] = [p["name"] for p in platforms]
    # Launched first, then waited for: the guests boot side by side.
    for platform in platforms:
        wait_for_boot(platform["name"])
    report["initialised"], report["imported"] = [], []
    for platform in platforms:
        nested = nested_daemon(platform)
        if not nested:
            continue
        cli, admin, image = nested
        if initialise_daemon(platform["name"], cli, admin):
            report["initialised"].append(platform["name"])
        if image and import_image(platform["name"], cli, image, spec["images"]):
            report["imported"].append(platform["name"])
    if spec.get("instance_config"):
        write_instance_config(spec["instance_config"], platforms)


def main(argv):
    if len(argv) != 3 or argv[1] not in ("up", "down"):
        sys.stderr.write(__doc__)
        return 2
    spec = json.loads(argv[2])
    report = {}
    try:
        (up if argv[1] == "up" else delete)(spec, report)
    except LabError as error:
        report["error"] = str(error)
        print(json.dumps(report))
        return 1
    report["changed"] = any(report.get(key) for key in ("deleted", "launched", "initialised", "imported"))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
