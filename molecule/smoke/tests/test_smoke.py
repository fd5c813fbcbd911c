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
