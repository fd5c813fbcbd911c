#!/usr/bin/env bash
# Runs every test of vault_mlock.lxd on this machine, doing its own setup first:
#   sudo ./test.sh                 setup, unit, sanity, lint, molecule (every scenario)
#   sudo ./test.sh unit lint       only the stages named
#   sudo ./test.sh molecule:smoke  one Molecule scenario (molecule:NAME, repeatable)
# Setup installs Debian packages and LXD when missing, starts a daemon when none answers,
# builds the lab images once (cached by recipe) and a cached virtual environment.
# Molecule scenarios run VML_JOBS at a time (default 2); each stage prints its duration.
# Logs of every stage are kept in .cache/logs/.
set -uo pipefail

repo=$(cd "$(dirname "$0")" && pwd)
cd "$repo" || exit 1
logs="$repo/.cache/logs"
mkdir -p "$logs"
jobs=${VML_JOBS:-2}

all_scenarios() {
    local dir
    for dir in molecule/*/molecule.yml; do basename "$(dirname "$dir")"; done
}

stages=()
for arg in "$@"; do stages+=("$arg"); done
if [ ${#stages[@]} -eq 0 ]; then
    stages=(unit sanity lint)
    for scenario in $(all_scenarios); do stages+=("molecule:$scenario"); done
fi

log_of() { echo "$logs/${1//[:\/]/_}.log"; }

# run_stage NAME COMMAND...: runs it with its output in a log; prints one line with the
# duration and records it in NAME's .result file for the summary.
run_stage() {
    local name=$1 start rc took log
    shift
    log=$(log_of "$name")
    rm -f "${log%.log}.result"
    start=$(date +%s%N)
    "$@" >"$log" 2>&1
    rc=$?
    took=$(( ($(date +%s%N) - start) / 100000000 ))
    took="$((took / 10)).$((took % 10))"
    if [ $rc -eq 0 ]; then
        printf '==> %-28s ok      %7ss  %s\n' "$name" "$took" "$(stage_note "$name")"
        printf '%-28s ok      %7ss\n' "$name" "$took" >"${log%.log}.result"
    else
        { printf '==> %-28s FAILED  %7ss\n' "$name" "$took"; show_failure "$log"; } | cat
        printf '%-28s FAILED  %7ss\n' "$name" "$took" >"${log%.log}.result"
    fi
    return $rc
}

# Where a stage failed: the lines that say so (with a little context), then the log's end.
show_failure() {
    echo "---- what failed, from $1"
    grep -n -E -A8 'fatal:|FAILED|^E   |ERROR:|error:|Traceback' "$1" | head -n 80 | sed 's/^/    /'
    echo "---- last lines"
    tail -n 15 "$1" | sed 's/^/    /'
    echo "----"
}

# The line of a stage's log worth showing beside its duration.
stage_note() {
    local log
    log=$(log_of "$1")
    case "$1" in
        unit|molecule:*) grep -E '[0-9]+ passed' "$log" | tail -n 1 | sed 's/=//g; s/^ *//' ;;
        setup) grep -E '^LXD:' "$log" | tail -n 1 ;;
        *) true ;;
    esac
}

setup() {
    "$repo/tests/lab/lab.sh" up || return 1
    "$repo/tests/lab/venv.sh" >"$repo/.cache/venv-path" || return 1
}

# Ansible finds the collection through .cache/collections/ansible_collections/vault_mlock/lxd.
collection_env() {
    local tree="$repo/.cache/collections/ansible_collections/vault_mlock"
    mkdir -p "$tree"
    ln -sfn "$repo" "$tree/lxd"
    export ANSIBLE_COLLECTIONS_PATH="$repo/.cache/collections"
    # A copy installed by an earlier Molecule prerun would shadow this checkout.
    rm -rf ~/.ansible/collections/ansible_collections/vault_mlock/lxd
    export PATH="$venv/bin:$PATH"
    # Plain logs: no colour codes from Ansible, Molecule or pytest.
    export ANSIBLE_NOCOLOR=1 NO_COLOR=1 PY_COLORS=0 ANSIBLE_FORCE_COLOR=0
}

unit() { "$venv/bin/pytest" -q -p no:cacheprovider tests/unit; }

# ansible-test wants the collection at a real ansible_collections/NS/NAME path, outside this
# git work tree (where git would call the copy ignored): copy the files git knows there.
sanity() {
    local tree="${TMPDIR:-/tmp}/vault-mlock-sanity/ansible_collections/vault_mlock/lxd"
    rm -rf "$tree"
    mkdir -p "$tree"
    git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$tree"
    install_pip_bootstrap
    (cd "$tree" && ansible-test sanity --venv --requirements --python 3.11 --color no)
}

# ansible-test bootstraps pip in its venvs with a script from a host this machine may not
# reach; give it the project's own stand-in under the name it looks for.
install_pip_bootstrap() {
    local version
    version=$(python3 - "$venv" <<'PY'
import glob, re, sys
source = open(glob.glob(sys.argv[1] + "/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py")[0]).read()
print(re.search(r"pip='([0-9.]+)'", source).group(1))
PY
)
    mkdir -p ~/.ansible/test/cache
    cp "$repo/tests/lab/get_pip_offline.py" ~/.ansible/test/cache/"get_pip_${version//./_}.py"
}

lint() { ansible-lint --profile production --offline; }

molecule_scenario() { molecule test -s "$1"; }

echo "vault_mlock.lxd tests, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), on $(uname -n)"
start_all=$(date +%s)
ordered=(setup)
if run_stage setup setup; then
    venv=$(cat "$repo/.cache/venv-path")
    collection_env
    for stage in "${stages[@]}"; do
        case "$stage" in
            setup) ;;
            unit|sanity|lint) ordered+=("$stage"); run_stage "$stage" "$stage" ;;
            molecule:*)
                ordered+=("$stage")
                while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
                run_stage "$stage" molecule_scenario "${stage#molecule:}" &
                ;;
            *) ordered+=("$stage")
               echo "unknown stage '$stage'; known: unit sanity lint molecule:NAME ($(all_scenarios | tr '\n' ' '))"
               printf '%-28s UNKNOWN\n' "$stage" >"${logs}/${stage//[:\/]/_}.result" ;;
        esac
    done
    wait
fi

echo
echo "stage                        result  duration"
passed=0
failed=0
for stage in "${ordered[@]}"; do
    result="$logs/${stage//[:\/]/_}.result"
    if grep -q ' ok ' "$result" 2>/dev/null; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    cat "$result" 2>/dev/null || printf '%-28s NOT RUN\n' "$stage"
done
echo "total: $(( $(date +%s) - start_all ))s"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
