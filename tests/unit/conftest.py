"""Unit-test plumbing: import the collection from this checkout, wherever it lives."""

from __future__ import annotations

import os
import sys
import tempfile

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

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
# Hypothesis keeps its example database under the checkout's .cache, not in the working directory.
set_hypothesis_home_dir(os.path.join(_REPO, ".cache", "hypothesis"))
# Shared test helpers (tests/unit/_files.py) import as `_files` from every test directory.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def vault(tmp_path):
    """An executable stand-in for the Vault binary, with no capabilities yet."""
    from _files import make_vault

    return make_vault(tmp_path)
