# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from _files import put

from ansible_collections.vault_mlock.lxd.plugins.module_utils._exec_start import (
    Command,
    ExecStartError,
    commands_from_show,
    commands_from_unit_values,
    config_arguments,
    expand_specifiers,
    parse_systemctl_show,
    program,
    unit_exec_start_values,
)

UNIT = "openbao.service"

# As systemd 252 prints it (Debian 12), recorded in a guest.
SHOW = """\
LoadState=loaded
NeedDaemonReload=no
ExecStart={ path=/usr/local/bin/bao ; argv[]=/usr/local/bin/bao server -config=/etc/openbao/openbao.hcl ; \
ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }
MainPID=0
MemorySwapMax=infinity
"""


def test_systemctl_show_gives_properties_and_the_command():
    properties = parse_systemctl_show(SHOW)
    assert properties["LoadState"] == ["loaded"]
    commands = commands_from_show(properties["ExecStart"])
    assert commands == [Command(("/usr/local/bin/bao", "server", "-config=/etc/openbao/openbao.hcl"), exact=False)]
    assert program(commands) == "/usr/local/bin/bao"


def test_systemctl_show_of_a_unit_without_command_or_an_ex_property():
    assert commands_from_show([""]) == []
    ex = "{ path=/bin/vault ; argv[]=/bin/vault server -config /etc/vault.d ; flags=ignore-failure ; pid=0 }"
    assert commands_from_show([ex])[0].argv == ("/bin/vault", "server", "-config", "/etc/vault.d")


@pytest.mark.parametrize(
    "value, argv",
    [
        ("/usr/bin/bao server -config=/etc/openbao/openbao.hcl",
         ("/usr/bin/bao", "server", "-config=/etc/openbao/openbao.hcl")),
        ('-/usr/bin/bao server "-config=/etc/open bao/x.hcl"', ("/usr/bin/bao", "server", "-config=/etc/open bao/x.hcl")),
        ("!!/usr/bin/vault server -config='/etc/vault.d'", ("/usr/bin/vault", "server", "-config=/etc/vault.d")),
        ("@/usr/bin/bao bao server -config=/etc/%N.hcl", ("/usr/bin/bao", "bao", "server", "-config=/etc/openbao.hcl")),
    ],
)
def test_unit_file_values_are_split_as_systemd_does(value, argv):
    assert commands_from_unit_values([value], UNIT) == [Command(argv, exact=True)]


def test_an_empty_execstart_drops_the_commands_before_it():
    values = ["/usr/bin/bao server -config=/a.hcl", "", "/usr/bin/bao server -config=/b.hcl"]
    assert [command.argv[-1] for command in commands_from_unit_values(values, UNIT)] == ["-config=/b.hcl"]


def test_unbalanced_quotes_fail():
    with pytest.raises(ExecStartError, match="cannot be split into words"):
        commands_from_unit_values(['/usr/bin/bao server "-config=/x.hcl'], UNIT)


@pytest.mark.parametrize(
    "word, expected",
    [("%n", "vault@a.service"), ("%N", "vault@a"), ("%p", "vault"), ("%i", "a"), ("100%%", "100%"),
     ("%h", "%h")],
)
def test_specifiers(word, expected):
    assert expand_specifiers(word, "vault@a.service") == expected


@pytest.mark.parametrize(
    "argv, paths",
    [
        (("bao", "server", "-config=/a.hcl"), ["/a.hcl"]),
        (("bao", "server", "--config=/a.hcl"), ["/a.hcl"]),
        (("bao", "server", "-config", "/a.hcl", "--config", "/b"), ["/a.hcl", "/b"]),
        (("bao", "server", "-log-level=warn", "-config=/a.hcl", "-config=/d"), ["/a.hcl", "/d"]),
        (("/bin/sh", "-c", "exec /usr/bin/vault server -config=/etc/vault.d/vault.hcl"), ["/etc/vault.d/vault.hcl"]),
    ],
)
def test_config_arguments(argv, paths):
    assert config_arguments([Command(argv, exact=True)], UNIT) == paths


@pytest.mark.parametrize(
    "commands, message",
    [
        ([], "openbao.service has no ExecStart="),
        ([Command(("bao", "server", "-dev"), True)], "starts the server with -dev, which reads no configuration"),
        ([Command(("bao", "server"), True)], r"ExecStart of openbao.service \(bao server\) gives the server no -config"),
        ([Command(("bao", "server", "-config=${CONF}"), True)], "uses a variable or specifier"),
        ([Command(("bao", "server", "-config=%h/x.hcl"), True)], "uses a variable or specifier"),
    ],
)
def test_no_usable_config_argument_fails_clearly(commands, message):
    with pytest.raises(ExecStartError, match=message):
        config_arguments(commands, UNIT)


def test_unit_files_and_drop_ins_are_read_in_systemd_order(tmp_path):
    put(tmp_path, "/lib/systemd/system/openbao.service",
        "[Unit]\nDescription=OpenBao\n[Service]\nExecStart=/usr/bin/bao server -config=/etc/openbao/openbao.hcl\n")
    put(tmp_path, "/etc/systemd/system/openbao.service.d/20-config.conf",
        "[Service]\nExecStart=\nExecStart=/usr/bin/bao server \\\n  -config=/etc/openbao/main.hcl\n")
    put(tmp_path, "/etc/systemd/system/openbao.service.d/10-env.conf", "[Service]\nEnvironment=A=1\n")
    unit_file, values = unit_exec_start_values(UNIT, str(tmp_path))
    assert unit_file == "/lib/systemd/system/openbao.service"
    commands = commands_from_unit_values(values, UNIT)
    assert config_arguments(commands, UNIT) == ["/etc/openbao/main.hcl"]


def test_no_unit_file_means_no_values(tmp_path):
    assert unit_exec_start_values(UNIT, str(tmp_path)) == (None, [])
