"""Unit-test plumbing: import the collection from this checkout, run modules' main()."""

from __future__ import annotations

import json
import os
import sys
import tempfile

import pytest

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _make_collection_importable() -> None:
    """Put ansible_collections/vault_mlock/lxd -> this checkout on sys.path, wherever it lives."""
    parts = _REPO.split(os.sep)
    if parts[-3:-1] == ["ansible_collections", "vault_mlock"] and parts[-1] == "lxd":
        sys.path.insert(0, os.sep.join(parts[:-3]))
        return
    root = tempfile.mkdtemp(prefix="vault_mlock_unit_")
    os.makedirs(os.path.join(root, "ansible_collections", "vault_mlock"))
    os.symlink(_REPO, os.path.join(root, "ansible_collections", "vault_mlock", "lxd"))
    sys.path.insert(0, root)


_make_collection_importable()
# Shared test helpers (tests/unit/_files.py) import as `_files` from every test directory.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def vault(tmp_path):
    """An executable stand-in for the Vault binary, with no capabilities yet."""
    from _files import make_vault

    return make_vault(tmp_path)


@pytest.fixture
def run_module(capfd):
    """Run a module's main() with the given arguments; return its JSON result.

    Arguments go in through ansible-core's own patch_module_args. The module runs as on a
    target even when a controller-side test (a filter plugin, say) has imported ansible's
    controller code in this process; otherwise module.warn() would print instead of
    returning warnings. Warnings collect in a process-wide store that ansible-core never
    empties, so each run leaves it as it found it.
    """
    from unittest import mock

    from ansible.module_utils import _internal
    from ansible.module_utils.common import warnings as ansible_warnings
    from ansible.module_utils.testing import patch_module_args

    def run(module, args: dict) -> dict:
        saved = dict(ansible_warnings._global_warnings)
        try:
            with patch_module_args(args), mock.patch.object(_internal, "is_controller", False):
                with pytest.raises(SystemExit):
                    module.main()
        finally:
            ansible_warnings._global_warnings.clear()
            ansible_warnings._global_warnings.update(saved)
        out, _err = capfd.readouterr()
        return json.loads(out)

    return run
