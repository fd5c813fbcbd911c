"""Run a module's main() the way ansible-core documents for debugging a module: the
arguments in a JSON file named by sys.argv[1] ({"ANSIBLE_MODULE_ARGS": {...}}), the result
as JSON on stdout. AnsibleModule reads that file on every supported ansible-core (2.18
through 2.21) and keeps what it read for the rest of the process, so each run happens in a
forked child: it sees the test's monkeypatches and leaves nothing behind.

Modules run on a target, where only ansible.module_utils exists. From ansible-core 2.19 on,
once controller code (ansible.errors, ansible.plugins, ...) is imported into a process,
ansible.module_utils marks the process as a controller and a module's warnings go to the
controller's display instead of its result. A pytest process that also runs controller-side
tests (filters, role specs) has that mark; the child drops it before it runs the module, by
loading ansible.module_utils' own defaults again, so `pytest tests/unit` runs as one process.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import sys
import traceback
import warnings

import pytest

# What a target has of ansible (besides the package itself): anything else is controller code.
_TARGET_PACKAGES = ("ansible.release", "ansible._vendor", "ansible.module_utils")


def _controller_modules() -> list[str]:
    return sorted(
        name for name in sys.modules
        if name.startswith("ansible.") and not any(name == top or name.startswith(top + ".") for top in _TARGET_PACKAGES)
    )


def _as_target() -> None:
    """Give this process back ansible.module_utils' target defaults where controller code marked it.

    ansible-core 2.19 and later keep the mark in ansible.module_utils._internal, which the controller
    sets when it is imported; loading that module again restores what a target has. Earlier
    versions have no mark and need nothing.
    """
    if _controller_modules():
        try:
            marks = importlib.import_module("ansible.module_utils._internal")
        except ImportError:
            return
        importlib.reload(marks)


def _run_in_child(module, args_path: str) -> tuple[int, str]:
    """Fork; the child runs module.main() with sys.argv[1] = args_path. (exit status, stdout)."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        # Python 3.12 and later warn when a process with threads forks (a test's HTTP server
        # stands in for LXD): the child would hang on a lock another thread held. The child
        # runs only the module, which takes none of those threads' locks.
        warnings.filterwarnings("ignore", message=r".*use of fork\(\) may lead to deadlocks", category=DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 70
        try:
            _as_target()
            os.close(read_end)
            sys.stdout = os.fdopen(write_end, "w")
            sys.argv = [module.__file__, args_path]
            try:
                module.main()
                status = 0
            except SystemExit as done:
                status = done.code if isinstance(done.code, int) else 1
        except BaseException:  # pylint: disable=broad-except  # reported to the parent through stderr
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        output = reader.read()
    _pid, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status), output


@pytest.fixture
def run_module(tmp_path_factory):
    """Run a module's main() with the given arguments; return its JSON result."""
    directory = tmp_path_factory.mktemp("module_args")
    numbers = itertools.count()

    def run(module, args: dict) -> dict:
        args_path = directory / ("args-%d.json" % next(numbers))
        args_path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        status, output = _run_in_child(module, str(args_path))
        try:
            return json.loads(output)
        except ValueError:
            pytest.fail("%s exited with %s and printed no JSON result:\n%s" % (module.__name__, status, output))

    return run
