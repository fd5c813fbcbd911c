"""The smoke guest carries the memlock limit LXD was told to give it."""

LIMIT_BYTES = 65536  # limits.kernel.memlock in molecule.yml


def _memlock_row(text):
    return next(line.split()[3:5] for line in text.splitlines() if line.startswith("Max locked memory"))


def test_pid1_carries_the_configured_memlock_limit(host):
    assert _memlock_row(host.file("/proc/1/limits").content_string) == [str(LIMIT_BYTES)] * 2


def test_ulimit_prints_kib_not_bytes(host):
    # An exec shell is forked by the LXD daemon, but limits.kernel.memlock applies to it too.
    assert host.check_output("sh -c 'ulimit -l'") == str(LIMIT_BYTES // 1024)


def test_guest_is_unprivileged(host):
    # The initial user namespace maps every uid onto itself: "0 0 4294967295".
    assert host.file("/proc/self/uid_map").content_string.split() != ["0", "0", "4294967295"]


def test_systemd_is_pid1(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def _collection_sizes():
    """The collection's size parser, imported from this checkout (test.sh links it there)."""
    import importlib
    import os
    import sys

    sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], ".cache", "collections"))
    return importlib.import_module("ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes")


def _size_texts(count=120, seed=20261128):
    """Sizes as operators write them: every suffix, fractions, soft:hard pairs, infinity."""
    import random

    rnd = random.Random(seed)
    texts = ["0", "1", "infinity", "64K", "256K", "1.5K", "8M", "1G", "16E", "1023", "4K:8K", "infinity:infinity"]
    while len(texts) < count:
        number = str(rnd.choice([rnd.randrange(0, 2048), rnd.randrange(0, 2**40)]))
        if rnd.random() < 0.2:
            number += "." + str(rnd.randrange(0, 1000))
        texts.append(number + rnd.choice(["", "B", "K", "M", "G", "T", "P", "E"]))
    return texts


def test_size_parser_agrees_with_systemd(host):
    """Every text the parser accepts gives the same bytes in systemd; what it refuses, systemd ignores."""
    sizes = _collection_sizes()
    texts = _size_texts()
    settings = {f"vml-size-{index}": f"LimitMEMLOCK={text}" for index, text in enumerate(texts)}
    settings["vml-size-default"] = ""  # systemd's default, what an ignored value leaves
    host.check_output(" && ".join(
        f"printf '[Service]\\nExecStart=/bin/true\\n{line}\\n' > /run/systemd/system/{unit}.service"
        for unit, line in settings.items()) + " && systemctl daemon-reload")
    try:
        shown = host.check_output("systemctl show -p Id -p LimitMEMLOCK -p LimitMEMLOCKSoft "
                                  + " ".join(f"{unit}.service" for unit in settings))
    finally:
        host.run("rm -f /run/systemd/system/vml-size-*.service && systemctl daemon-reload")
    by_unit = {}
    for block in shown.strip().split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines())
        by_unit[fields["Id"][:-len(".service")]] = (fields["LimitMEMLOCKSoft"], fields["LimitMEMLOCK"])

    def systemd_text(size):
        return "infinity" if size is None else str(size)

    accepted = refused = 0
    for index, text in enumerate(texts):
        try:
            limit = sizes.parse_limit(text)
        except sizes.SizeError:
            refused += 1
            assert by_unit[f"vml-size-{index}"] == by_unit["vml-size-default"], text
            continue
        accepted += 1
        assert by_unit[f"vml-size-{index}"] == (systemd_text(limit.soft), systemd_text(limit.hard)), text
    assert accepted >= len(texts) // 2 and refused >= 1
