# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An LXD host as the daemon-limit code sees it: a systemd unit of one flavour, its daemon and
running instances, behaving as each flavour really does on restart and reload.

The `systemctl show` texts are systemd 252's own output (Debian 12) for Debian's lxd.service,
for the unit snapd generates for the LXD snap (snapd's service template with the lxd snap's
daemon app: stop-command, reload-command, restart-condition on-failure, no stop-mode) and for
incus.service. What a restart and a reload do to instances follows the snap's scripts
(canonical/lxd-pkg-snap, snapcraft/commands/daemon.{start,stop,reload}) and the lab's
measurements for deb LXD and Incus.
"""

from __future__ import annotations

from ansible_collections.vault_mlock.lxd.plugins.module_utils._daemon_decide import ProcessInfo, is_lxd_snap_reload
from ansible_collections.vault_mlock.lxd.plugins.module_utils._sizes import RLIM_INFINITY, MemlockLimit, lower_limit
from ansible_collections.vault_mlock.lxd.plugins.module_utils._unit_show import parse_show

KIB = 1024
MIB = 1024 * KIB

SHOW_DEB = """\
Restart=on-failure
MainPID={main_pid}
LimitMEMLOCK={hard}
LimitMEMLOCKSoft={soft}
KillMode=process
Id=lxd.service
LoadState=loaded
ActiveState={state}
NeedDaemonReload={reload}
"""

SHOW_SNAP = """\
Restart=on-failure
MainPID={main_pid}
ExecReload={{ path=/usr/bin/snap ; argv[]=/usr/bin/snap run --command=reload lxd.daemon ; ignore_errors=no ; \
start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }}
ExecStop={{ path=/usr/bin/snap ; argv[]=/usr/bin/snap run --command=stop lxd.daemon ; ignore_errors=no ; \
start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }}
LimitMEMLOCK={hard}
LimitMEMLOCKSoft={soft}
KillMode=process
Id=snap.lxd.daemon.service
LoadState=loaded
ActiveState={state}
NeedDaemonReload={reload}
"""

SHOW_INCUS = SHOW_DEB.replace("Id=lxd.service", "Id=incus.service")

# A unit whose ExecReload only signals the daemon: a reload starts no new process.
SHOW_SIGNAL_RELOAD = SHOW_DEB.replace(
    "KillMode=process\n",
    "KillMode=process\nExecReload={{ path=/bin/kill ; argv[]=/bin/kill -HUP $MAINPID ; ignore_errors=no ; "
    "start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }}\n",
)

FLAVOURS = {
    "deb": (SHOW_DEB, "lxd.service", "lxd"),
    "snap": (SHOW_SNAP, "snap.lxd.daemon.service", "daemon.start"),
    "incus": (SHOW_INCUS, "incus.service", "incusd"),
}

DAEMON_ARGV = {
    "deb": ("/usr/bin/lxd", "--group", "lxd", "--logfile=/var/log/lxd/lxd.log"),
    "snap": ("lxd", "--logfile", "/var/snap/lxd/common/lxd/logs/lxd.log", "--group", "lxd"),
    "incus": ("/usr/libexec/incus/incusd", "--group", "incus-admin", "--logfile", "/var/log/incus/incus.log"),
}


def show_value(size):
    return "infinity" if size is None else str(size)


def show_text(template, main_pid, limit, state="active", need_reload=False):
    return template.format(
        main_pid=main_pid or 0, hard=show_value(limit.hard), soft=show_value(limit.soft),
        state=state, reload="yes" if need_reload else "no",
    )


class FakeHost:
    """One LXD host: the unit's loaded and on-disk LimitMEMLOCK, the daemon, the running instances.

    ``can_raise`` is what this process's capabilities foresee; ``kernel_allows_hard`` what the kernel
    then does (they differ when a security module refuses). ``calls`` records every side effect.
    """

    def __init__(self, flavour="deb", daemon_limit=MemlockLimit(512 * KIB, 8 * MIB), loaded=None, files=None,
                 can_raise=False, kernel_allows_hard=None, ceiling=None, running=True, template=None,
                 restart_delay=0.0):
        self.flavour = flavour
        default_template, self.unit_name, self.main_comm = FLAVOURS[flavour]
        self.template = template or default_template
        self.loaded = loaded if loaded is not None else daemon_limit
        self.files = files if files is not None else self.loaded
        self.can_raise = can_raise
        self.kernel_allows_hard = can_raise if kernel_allows_hard is None else kernel_allows_hard
        self.ceiling = ceiling
        self.restart_delay = restart_delay
        self.clock = 0.0
        self.calls = []
        self.next_pid = 200
        self.limits = {}
        self.main_pid = None
        self.daemon_pid = None
        self.pending_start = None
        # Two running guests, with the host PID of their init and the limit it started with.
        self.instances = {"vault-a": (5001, MemlockLimit(512 * KIB, 8 * MIB)),
                          "vault-b": (5002, MemlockLimit(512 * KIB, 8 * MIB))}
        if running:
            self._start(daemon_limit)

    # -- the simulated host -----------------------------------------------------------------
    def _pid(self):
        self.next_pid += 1
        return self.next_pid

    def _start(self, limit):
        self.main_pid = self._pid()
        self.daemon_pid = self._pid() if self.flavour == "snap" else self.main_pid
        self.limits = {self.main_pid: limit, self.daemon_pid: limit}

    def _stop(self, reason):
        # The snap's daemon.stop with no state file ("host shutdown") sends SIGPWR to lxd, which
        # shuts every instance down; with "reload" in the state file it leaves them alone.
        if self.flavour == "snap" and reason == "restart":
            self.instances = {}
        self.main_pid = self.daemon_pid = None
        self.limits = {}

    def start_guest(self, name):
        """A guest started now inherits the daemon's limit."""
        self.instances[name] = (self._pid(), self.limits[self.daemon_pid])

    @property
    def unit_has_exec_stop(self):
        return "ExecStop=" in self.template

    # -- DaemonHost ---------------------------------------------------------------------------
    def show(self, unit):
        self.calls.append(("show", unit))
        state = "active" if self.main_pid else "inactive"
        if self.pending_start is not None:
            if self.clock < self.pending_start:
                return parse_show(show_text(self.template, None, self.loaded, "activating"), unit)
            self.pending_start = None
            self._start(lower_limit(self.loaded, self.ceiling))
            state = "active"
        need = self.files != self.loaded
        return parse_show(show_text(self.template, self.main_pid, self.loaded, state, need), unit)

    def daemon_reload(self):
        self.calls.append(("daemon-reload",))
        self.loaded = self.files

    def restart(self, unit):
        self.calls.append(("restart", unit))
        self._stop("restart" if self.unit_has_exec_stop else "process")
        self._start(lower_limit(self.loaded, self.ceiling))

    def reload(self, unit):
        self.calls.append(("reload", unit))
        units = parse_show(show_text(self.template, self.main_pid, self.loaded), unit)
        if any(is_lxd_snap_reload(argv) for argv in units.exec_reload):
            # daemon.reload: state "reload", kill lxd; daemon.start exits 1; systemd restarts the unit.
            self._stop("reload")
            self.pending_start = self.clock + self.restart_delay
        # Any other ExecReload only signals the daemon: no new process, no new limit.

    def wait_ready(self, unit, timeout):
        self.calls.append(("wait-ready", unit))

    def processes(self):
        found = [ProcessInfo(1, 0, "systemd", ("/sbin/init",))]
        if self.main_pid:
            found.append(ProcessInfo(self.main_pid, 1, self.main_comm,
                                     DAEMON_ARGV[self.flavour] if self.flavour != "snap" else ("/bin/sh", "daemon.start")))
        if self.flavour == "snap" and self.daemon_pid:
            found.append(ProcessInfo(self.daemon_pid, self.main_pid, "lxd", DAEMON_ARGV["snap"]))
            found.append(ProcessInfo(self.daemon_pid + 50, self.main_pid, "lxcfs", ("lxcfs", "/var/snap/lxd/common/var/lib/lxcfs")))
        for name, (pid, _limit) in self.instances.items():
            found.append(ProcessInfo(pid - 1, 1, "lxd" if self.flavour != "incus" else "incusd",
                                     (f"[lxc monitor] /var/lib/lxd/containers {name}",)))
            found.append(ProcessInfo(pid, pid - 1, "init", ("/sbin/init",)))
        return found

    def read_limit(self, pid):
        for _name, (instance_pid, limit) in self.instances.items():
            if instance_pid == pid:
                return limit
        if pid not in self.limits:
            raise FileNotFoundError(pid)
        return self.limits[pid]

    def set_limit(self, pid, limit):
        self.calls.append(("prlimit", pid, limit))
        old = self.limits[pid]
        grows = (RLIM_INFINITY if limit.hard is None else limit.hard) > (RLIM_INFINITY if old.hard is None else old.hard)
        if grows and not self.kernel_allows_hard:
            raise PermissionError(1, "Operation not permitted")
        self.limits[pid] = limit

    def may_raise_hard(self):
        if self.can_raise:
            return True, "has CAP_SYS_RESOURCE in the initial user namespace"
        return False, "has CAP_SYS_RESOURCE only in a user namespace, and the kernel checks it in the initial one"

    def systemd_ceiling(self):
        return self.ceiling

    def sleep(self, seconds):
        self.clock += seconds

    def monotonic(self):
        return self.clock

    # -- what the tests look at ---------------------------------------------------------------
    def acts(self):
        """The side effects that change something (prlimit, daemon-reload, restart, reload) and the wait for the daemon."""
        return [call for call in self.calls if call[0] != "show"]

    def instance_pids(self):
        return {name: pid for name, (pid, _limit) in self.instances.items()}
