#!/usr/bin/env bash
# Installs tests/requirements.txt into a virtual environment cached by the file's hash,
# and prints the environment's path. A second run with the same requirements installs nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cache=${VML_CACHE:-/var/cache/vault-mlock-lxd}
python=${VML_PYTHON:-python3}
hash=$( (cat "$here/tests/requirements.txt"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)
venv="$cache/venv-$hash"
# The marker is written last, so an interrupted install is redone rather than trusted.
if [ ! -f "$venv/.complete" ]; then
    echo "[venv] installing tests/requirements.txt into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$cache"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/tests/requirements.txt" >&2
    touch "$venv/.complete"
fi
echo "$venv"
