#!/usr/bin/env bash
# Installs a requirements file (default tests/requirements.txt) into a virtual environment
# cached under the lab's cache by the hash of the file and of the Python that runs it, and
# prints the environment's path. A second run with the same requirements installs nothing.
#   tests/lab/venv.sh                               Molecule, ansible-lint, the main unit run
#   tests/lab/venv.sh tests/requirements-2.18.txt   the oldest ansible-core the collection supports
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
requirements=${1:-tests/requirements.txt}
case "$requirements" in /*) ;; *) requirements="$here/$requirements" ;; esac
cache=${VML_CACHE:-/var/cache/vault-mlock-lxd}
python=${VML_PYTHON:-python3}
hash=$( (cat "$requirements"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)
venv="$cache/venv-$hash"
mkdir -p "$cache"
# One install at a time into one environment; the marker is written last, so an interrupted
# install is redone rather than trusted.
exec 8>"$venv.lock"
flock 8
if [ ! -f "$venv/.complete" ]; then
    echo "[venv] installing ${requirements#"$here"/} into $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
    touch "$venv/.complete"
fi
echo "$venv"
