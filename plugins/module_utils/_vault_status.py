# Copyright: vault_mlock.lxd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can change at any time.

"""Whether a Vault or OpenBao server answers on its API, and in which state (vault_status).

The question is ``GET /v1/sys/health``, which needs no token. Vault and OpenBao answer it with a
JSON body (initialized, sealed, standby, performance_standby, version, ...) and a status code
that depends on the state: 200 active, 429 standby, 473 performance standby, 472 DR secondary,
501 not initialised, 503 sealed. The query parameters below make every state answer 200, and
the body is read whatever the code, so a proxy that ignores them changes nothing.

One small program (HEALTH_PROGRAM) asks, with Python's standard library; it runs on the machine
the module runs on, or inside an LXD guest through the LXD API. Its output is only ever parsed as
JSON data (parse_answer): nothing it prints is run. Everything else here is pure.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
import socket
import time
from typing import Callable, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from ansible_collections.vault_mlock.lxd.plugins.module_utils._config_syntax import (
    JSON,
    ConfigError,
    file_format,
    hcl_statements,
    hcl_value_bool,
    json_value_bool,
    tokenize_hcl,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines import (
    ENGINE_ARGUMENT_SPEC,
    LIBLXC_ENGINES,
    EngineError,
)
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._detect import resolve_engine
from ansible_collections.vault_mlock.lxd.plugins.module_utils._engines._liblxc import open_liblxc
from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_api import connect
from ansible_collections.vault_mlock.lxd.plugins.module_utils._lxd_transport import LxdError
from ansible_collections.vault_mlock.lxd.plugins.module_utils._vault_config import config_files, read_configs

# What `vault` and `bao` use when VAULT_ADDR / BAO_ADDR is unset, and a listener's default address.
DEFAULT_ADDR = "https://127.0.0.1:8200"
LISTENER_DEFAULT_ADDRESS = "127.0.0.1:8200"
HEALTH_PATH = "/v1/sys/health"
# Every state answers 200 with its body: standby, performance standby, DR secondary, sealed, not initialised.
HEALTH_QUERY = "standbyok=true&perfstandbyok=true&drsecondarycode=200&sealedcode=200&uninitcode=200"
# The status codes Vault gives each state when asked without the query parameters.
STATE_CODES = {200: "active", 429: "standby", 472: "dr_secondary", 473: "performance_standby", 501: "uninitialized",
               503: "sealed"}
ANSWER_LIMIT = 65536  # bytes of the body the program reads

ACTIVE, STANDBY, PERFORMANCE_STANDBY, DR_SECONDARY = "active", "standby", "performance_standby", "dr_secondary"
SEALED, UNINITIALIZED = "sealed", "uninitialized"


class StatusError(ValueError):
    """Bad input: the message names the option and the accepted form."""


# --- where to ask ------------------------------------------------------------------------------


def normalize_addr(addr: str, option: str = "api_addr") -> str:
    """``scheme://host[:port]`` of an API address (as VAULT_ADDR or BAO_ADDR is written); a path is refused."""
    text = (addr or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StatusError(f"{option}: {addr!r} is not an API address; expected http(s)://HOST[:PORT] as in VAULT_ADDR or "
                          f"BAO_ADDR, such as {DEFAULT_ADDR}")
    try:
        port = parts.port
    except ValueError:
        raise StatusError(f"{option}: {addr!r} has a bad port; expected http(s)://HOST[:PORT]") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise StatusError(f"{option}: {addr!r} has more than a scheme, host and port; expected http(s)://HOST[:PORT] "
                          "(the module adds /v1/sys/health itself)")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def health_url(addr: str) -> str:
    return f"{addr}{HEALTH_PATH}?{HEALTH_QUERY}"


def listener_url(address: Optional[str], tls_disable: Optional[bool], source: str) -> str:
    """The address a client on the same machine reaches a tcp listener at.

    A listener on every address (0.0.0.0, ::, no host) is asked on the loopback address of its family.
    """
    address = LISTENER_DEFAULT_ADDRESS if address is None else address
    if "{{" in address or "$" in address:
        raise StatusError(f"{source}: the listener's address {address!r} is a template the module cannot resolve; "
                          "set api_addr")
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise StatusError(f"{source}: the listener's address {address!r} is not HOST:PORT; set api_addr")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a name
    scheme = "http" if tls_disable else "https"
    return f"{scheme}://{host}:{port}"


def _hcl_block_body(text: str, start: int, end: int, path: str) -> str:
    """The text between the braces of the block statement text[start:end]."""
    brace = next(token for token in tokenize_hcl(text[start:end], path) if token.kind == "{")
    return text[start + brace.end:end - 1]


def _hcl_listeners(text: str, path: str) -> List[Tuple[Optional[str], Optional[bool]]]:
    listeners = []
    for statement in hcl_statements(text, path):
        if statement.key.lower() != "listener" or not statement.labels or statement.labels[0].lower() != "tcp":
            continue
        address, tls_disable = None, None
        for item in hcl_statements(_hcl_block_body(text, statement.start, statement.end, path), path):
            if item.value is None:
                continue
            if item.key.lower() == "address":
                address = item.value.text.strip('"') if item.value.kind == "string" else item.value.text
            elif item.key.lower() == "tls_disable":
                tls_disable = hcl_value_bool(item.value)
        listeners.append((address, tls_disable))
    return listeners


def _json_listeners(text: str) -> List[Tuple[Optional[str], Optional[bool]]]:
    document = json.loads(text)
    found = document.get("listener") if isinstance(document, dict) else None
    listeners = []
    for entry in found if isinstance(found, list) else [found]:
        if not isinstance(entry, dict):
            continue
        tcp = entry.get("tcp")
        for stanza in tcp if isinstance(tcp, list) else [tcp]:
            if isinstance(stanza, dict):
                address = stanza.get("address")
                tls_disable = stanza.get("tls_disable")
                listeners.append((address if isinstance(address, str) else None,
                                  None if tls_disable is None else json_value_bool(tls_disable)))
    return listeners


def addr_from_configs(configs: Sequence[Tuple[str, str]]) -> Optional[Tuple[str, str]]:
    """(URL, file) of the first tcp listener in the configuration files ``[(path, text)]``; None without one."""
    for path, text in configs:
        try:
            listeners = _json_listeners(text) if file_format(text) == JSON else _hcl_listeners(text, path)
        except (ConfigError, ValueError) as exc:
            raise StatusError(f"config: {path}: cannot read its listener ({exc}); set api_addr") from None
        if listeners:
            address, tls_disable = listeners[0]
            return listener_url(address, tls_disable, f"config: {path}"), path
    return None


# --- the question, asked where the server runs -------------------------------------------------

# argv: URL, validate (1 or 0), CA file ('' for the system's), timeout in seconds. Prints one JSON line:
# {"status": CODE, "body": TEXT} or {"error": TEXT}. No proxy is used: the server is asked directly.
HEALTH_PROGRAM = r"""
import json, ssl, sys, urllib.error, urllib.request
url, validate, cafile, timeout = sys.argv[1], sys.argv[2] == "1", sys.argv[3], float(sys.argv[4])
handlers = [urllib.request.ProxyHandler({})]
if url.startswith("https:"):
    if validate:
        context = ssl.create_default_context(cafile=cafile or None)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    handlers.append(urllib.request.HTTPSHandler(context=context))
opener = urllib.request.build_opener(*handlers)
request = urllib.request.Request(url, headers={"Accept": "application/json"})
try:
    with opener.open(request, timeout=timeout) as response:
        answer = {"status": response.status, "body": response.read(%d).decode("utf-8", "replace")}
except urllib.error.HTTPError as exc:
    answer = {"status": exc.code, "body": exc.read(%d).decode("utf-8", "replace")}
except Exception as exc:
    reason = getattr(exc, "reason", None) or exc
    answer = {"error": "%%s: %%s" %% (type(reason).__name__, reason)}
print(json.dumps(answer))
""" % (ANSWER_LIMIT, ANSWER_LIMIT)


def program_argv(python: str, url: str, validate_certs: bool, ca_cert: Optional[str], timeout: float) -> List[str]:
    return [python, "-c", HEALTH_PROGRAM, url, "1" if validate_certs else "0", ca_cert or "", f"{timeout:g}"]


@dataclass(frozen=True)
class Answer:
    """One try: the HTTP status and body, or why there was none (``error``)."""

    status: Optional[int] = None
    body: str = ""
    error: str = ""


def parse_answer(returned: int, stdout: str, stderr: str = "") -> Answer:
    """What the program printed, read as data only; anything else is an error naming what came back."""
    lines = [line for line in (stdout or "").splitlines() if line.strip()]
    if returned != 0 or len(lines) != 1:
        said = (stderr or stdout or "").strip().splitlines()
        last = said[-1][:300] if said else "no output"
        if returned == 127:
            return Answer(error=f"python3 was not found to ask the API ({last})")
        return Answer(error=f"the health check exited with {returned}: {last}")
    try:
        document = json.loads(lines[0])
    except ValueError:
        return Answer(error=f"the health check printed no JSON: {lines[0][:300]!r}")
    if not isinstance(document, dict):
        return Answer(error="the health check printed JSON that is not an object")
    if isinstance(document.get("error"), str):
        return Answer(error=document["error"][:300])
    status, body = document.get("status"), document.get("body")
    if not isinstance(status, int) or isinstance(status, bool) or not isinstance(body, str):
        return Answer(error="the health check printed an answer of an unexpected shape")
    return Answer(status=status, body=body)


@dataclass(frozen=True)
class VaultState:
    """What the server said about itself. ``answering`` false means it gave no usable answer (``error`` says why)."""

    answering: bool
    state: Optional[str] = None  # active, standby, performance_standby, dr_secondary, sealed, uninitialized
    initialized: Optional[bool] = None
    sealed: Optional[bool] = None
    standby: Optional[bool] = None
    performance_standby: Optional[bool] = None
    version: Optional[str] = None
    cluster_name: Optional[str] = None
    status: Optional[int] = None
    error: str = ""


def _flag(document: dict, key: str) -> Optional[bool]:
    value = document.get(key)
    return value if isinstance(value, bool) else None


def judge_answer(answer: Answer) -> VaultState:
    """The server's state from one answer: the body's flags, else the status code's meaning."""
    if answer.error:
        return VaultState(False, error=answer.error)
    try:
        document = json.loads(answer.body) if answer.body.strip() else {}
    except ValueError:
        document = None
    if not isinstance(document, dict):
        return VaultState(False, status=answer.status,
                          error=f"HTTP {answer.status} without a JSON body: not a Vault or OpenBao API")
    if not document and answer.status not in STATE_CODES:
        return VaultState(False, status=answer.status, error=f"HTTP {answer.status} with no health body")
    initialized, sealed = _flag(document, "initialized"), _flag(document, "sealed")
    standby, performance = _flag(document, "standby"), _flag(document, "performance_standby")
    if initialized is None and sealed is None:
        if answer.status not in STATE_CODES or answer.status == 200:
            return VaultState(False, status=answer.status,
                              error=f"HTTP {answer.status} without initialized or sealed: not a Vault or OpenBao "
                                    "health answer")
        coded = STATE_CODES[answer.status]
        initialized = coded != UNINITIALIZED
        sealed = coded in (SEALED, UNINITIALIZED)
        standby = coded in (STANDBY, PERFORMANCE_STANDBY, DR_SECONDARY) if standby is None else standby
        performance = coded == PERFORMANCE_STANDBY if performance is None else performance
    if initialized is False:
        state = UNINITIALIZED
    elif sealed:
        state = SEALED
    elif performance:
        state = PERFORMANCE_STANDBY
    elif document.get("replication_dr_mode") == "secondary" or answer.status == 472:
        state = DR_SECONDARY
    elif standby:
        state = STANDBY
    else:
        state = ACTIVE
    version, cluster = document.get("version"), document.get("cluster_name")
    return VaultState(True, state, initialized is not False, bool(sealed) or initialized is False, bool(standby),
                      bool(performance), version if isinstance(version, str) else None,
                      cluster if isinstance(cluster, str) else None, answer.status)


# --- waiting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Waited:
    state: VaultState
    waited: float  # seconds from the first try to the last answer
    tries: int
    timed_out: bool  # it never answered within ``timeout``
    unseal_timed_out: bool  # it answered sealed (initialised) until ``unseal_timeout`` ran out


def wait_for(ask: Callable[[float], VaultState], timeout: float, unseal_timeout: float,
             clock: Callable[[], float], sleep: Callable[[float], None], pause: float = 1.0,
             request_timeout: float = 5.0) -> Waited:
    """Ask until the server answers (within ``timeout`` s); then, while it is initialised and sealed, until it is
    unsealed (within ``unseal_timeout`` s more; 0 does not wait). ``ask(seconds)`` asks once, waiting at most that long.
    """
    start = clock()
    deadline = start + timeout
    unseal_deadline = None
    tries = 0
    while True:
        now = clock()
        limit = unseal_deadline if unseal_deadline is not None else deadline
        state = ask(max(0.5, min(request_timeout, limit - now)))
        tries += 1
        now = clock()
        if state.answering:
            if not (state.initialized and state.sealed) or unseal_timeout <= 0:
                return Waited(state, now - start, tries, False, False)
            if unseal_deadline is None:
                unseal_deadline = now + unseal_timeout
        limit = unseal_deadline if unseal_deadline is not None else deadline
        if now >= limit:
            return Waited(state, now - start, tries, unseal_deadline is None, unseal_deadline is not None)
        sleep(min(pause, limit - now))


def describe(where: str, addr: str, waited: Waited, timeout: float, unseal_timeout: float) -> str:
    """One sentence: what the server said, or why it said nothing. ``where`` ('guest g1') leads it when given."""
    state = waited.state
    lead = f"{where}: " if where else ""
    if not state.answering:
        if waited.timed_out:
            return (f"{lead}no answer from the Vault API at {addr} within {timeout:g}s "
                    f"({waited.tries} tries; last: {state.error})")
        return f"{lead}the Vault API at {addr} stopped answering while it was sealed ({state.error})"
    version = f" {state.version}" if state.version else ""
    text = f"{lead}the Vault API at {addr} answers: {state.state.replace('_', ' ')}{version}"
    if state.state == SEALED:
        if waited.unseal_timed_out:
            text += f", and it stayed sealed for {unseal_timeout:g}s"
        text += " (it must be unsealed: `vault operator unseal`, `bao operator unseal`, or its auto-unseal)"
    elif state.state == UNINITIALIZED:
        text += " (`vault operator init` or `bao operator init` has not run: it is not yet a member of any cluster)"
    return text + f", after {waited.waited:.1f}s"


def check_timeouts(timeout: float, unseal_timeout: float) -> None:
    if timeout is None or timeout <= 0:
        raise StatusError(f"timeout: {timeout!r} must be a number of seconds above 0")
    if unseal_timeout is None or unseal_timeout < 0:
        raise StatusError(f"unseal_timeout: {unseal_timeout!r} must be a number of seconds, 0 or more "
                          "(0: do not wait for unsealing)")


# --- the whole wait, as vault_status runs it ---------------------------------------------------

ARGUMENT_SPEC = dict(
    api_addr=dict(type="str", default=""),
    config=dict(type="list", elements="path", default=[]),
    validate_certs=dict(type="bool", default=True),
    ca_cert=dict(type="path"),
    timeout=dict(type="float", default=60),
    unseal_timeout=dict(type="float", default=0),
    fail_when_sealed=dict(type="bool", default=False),
    node=dict(type="str"),
    instance=dict(type="str"),
    project=dict(type="str", default="default"),
    endpoint=dict(type="str"),
    client_cert=dict(type="path", aliases=["cert_file"]),
    client_key=dict(type="path", aliases=["key_file"], no_log=False),
    # validate_certs and ca_cert above are Vault's; the engine's are the LXD API's defaults.
    engine=ENGINE_ARGUMENT_SPEC["engine"],
    lxcpath=ENGINE_ARGUMENT_SPEC["lxcpath"],
)
Runner = Callable[[Sequence[str]], Tuple[int, str, str]]


def _address(params: dict) -> Tuple[str, str]:
    """(address, where it came from): api_addr, else the configuration's first tcp listener, else the default."""
    if params["api_addr"]:
        return normalize_addr(params["api_addr"]), "api_addr"
    if params["config"]:
        if params["instance"]:
            raise StatusError("config: the configuration is read only on the machine the module runs on; with "
                              "instance, give api_addr")
        files = config_files(params["config"], "/", "config")
        found = addr_from_configs([(config.path, config.text) for config in read_configs(files, "/")])
        if found:
            return found[0], f"config {found[1]}"
    return DEFAULT_ADDR, "default"


def _asker(params: dict, url: str, run: Runner, python: str) -> Callable[[float], VaultState]:
    """ask(seconds): one question, on this machine or, with ``instance``, inside that guest through its engine.

    The LXD connection waits for each answer as long as the server may take to answer at all (``timeout``).
    """
    if not params["instance"]:
        return lambda seconds: judge_answer(parse_answer(*run(program_argv(
            python, url, params["validate_certs"], params["ca_cert"], seconds))))
    if resolve_engine(params) in LIBLXC_ENGINES:
        return _liblxc_asker(params, url)
    try:
        api, _endpoint = connect(endpoint=params["endpoint"], project=params["project"],
                                 client_cert=params["client_cert"], client_key=params["client_key"],
                                 timeout=params["timeout"])
    except LxdError as exc:
        raise StatusError(f"instance: cannot reach the LXD daemon to ask guest {params['instance']}: {exc}") from exc

    def ask(seconds: float) -> VaultState:
        argv = program_argv("python3", url, params["validate_certs"], params["ca_cert"], seconds)
        try:
            return judge_answer(parse_answer(*api.execute(params["instance"], argv)))
        except LxdError as exc:
            return judge_answer(Answer(error=f"LXD: {exc}"))
    return ask


def _liblxc_asker(params: dict, url: str) -> Callable[[float], VaultState]:
    """ask(seconds) inside a plain LXC or Proxmox VE container, through lxc-attach or pct exec."""
    name = params["instance"]
    try:
        engine = open_liblxc(resolve_engine(params), params)
        engine.container(name)
    except EngineError as exc:
        raise StatusError(f"instance: {exc}") from exc

    def ask(seconds: float) -> VaultState:
        argv = program_argv("python3", url, params["validate_certs"], params["ca_cert"], seconds)
        return judge_answer(parse_answer(*engine.execute(name, argv, seconds + 15)))
    return ask


def stays_sealed_sentence(where: str, said: str) -> str:
    """Why a rolling restart stops at a server that stays sealed: the one sentence both roles show."""
    return (f"{where} waits for unsealing: {said}. No further guest or node is restarted, so the cluster keeps its "
            f"quorum: unseal {where.split(' ', 1)[-1]}, then run the play again to go on with the next one")


def vault_status(params: dict, run: Runner, python: str, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, hostname: Callable[[], str] = socket.gethostname
                 ) -> Tuple[dict, Optional[str]]:
    """(the module's result, the failure message or None). Raises StatusError or ConfigError on bad input."""
    check_timeouts(params["timeout"], params["unseal_timeout"])
    if params["instance"] is not None and not params["instance"].strip():
        raise StatusError("instance: the empty string names no guest; give an instance name or leave it out")
    addr, source = _address(params)
    ask = _asker(params, health_url(addr), run, python)
    waited = wait_for(ask, params["timeout"], params["unseal_timeout"], clock, sleep)
    state = waited.state
    where = f"guest {params['instance']}" if params["instance"] else ""
    result = dict(changed=False, api_addr=addr, addr_source=source, answering=state.answering, state=state.state,
                  initialized=state.initialized, sealed=state.sealed, standby=state.standby,
                  performance_standby=state.performance_standby, version=state.version,
                  cluster_name=state.cluster_name, status=state.status, waited=round(waited.waited, 1),
                  tries=waited.tries, unseal_timed_out=waited.unseal_timed_out,
                  message=describe(where, addr, waited, params["timeout"], params["unseal_timeout"]))
    if not state.answering:
        return result, result.pop("message")
    if params["fail_when_sealed"] and state.state == SEALED:
        said = describe("", addr, waited, params["timeout"], params["unseal_timeout"])
        return result, stays_sealed_sentence(where or f"node {params.get('node') or hostname()}", said)
    return result, None
