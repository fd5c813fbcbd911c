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


@pytest.fixture
def run_module(capfd):
    """Run a module's main() with the given arguments; return its JSON result.

    Uses ansible-core's own patch_module_args, so nothing private is touched.
    """
    from ansible.module_utils.testing import patch_module_args

    def run(module, args: dict) -> dict:
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                module.main()
        out, _err = capfd.readouterr()
        return json.loads(out)

    return run
