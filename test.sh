#!/usr/bin/env bash
# Runs every test of vault_mlock.lxd on this machine, doing its own setup first:
#   sudo ./test.sh                  setup, then every stage below
#   sudo ./test.sh unit lint        only the stages named
#   sudo ./test.sh molecule:smoke   one Molecule scenario (molecule:NAME, repeatable)
#   sudo ./test.sh setup            the lab, its images and the virtual environments only
# Stages:
#   unit:2.18 sanity:2.18    pytest and ansible-test sanity on the oldest ansible-core the
#                            collection supports, in a cached virtual environment here
#   unit:2.21 sanity:2.21    the same on the newest ansible-core, in a throwaway Debian 13 guest
#                            (Python 3.13) of the lab's compat-trixie image, which holds it
#   lint                     ansible-lint, yamllint of molecule/ and antsibull-changelog lint
#   molecule:NAME            one Molecule scenario on real LXD guests, for each molecule/NAME; one
#                            whose molecule/NAME/precondition.sh exits 77 is skipped, saying why
# Short names: unit, sanity (both versions), compat (all four), molecule (every scenario).
# Setup installs Debian packages and LXD when missing, starts a daemon when none answers,
# builds the lab images these stages need once (cached by recipe) and the cached virtual
# environments. Stages run VML_JOBS at a time (default 3); each prints its duration; the summary adds
# the CPU seconds of the processes it started here (not what runs inside guests).
# Logs of every stage are kept in .cache/logs/. Nothing is written to ~/.ansible.
set -uo pipefail

repo=$(cd "$(dirname "$0")" && pwd)
cd "$repo" || exit 1
logs="$repo/.cache/logs"
mkdir -p "$logs"
jobs=${VML_JOBS:-3}
VML_CACHE=${VML_CACHE:-/var/cache/vault-mlock-lxd}
FLOOR=2.18     # meta/runtime.yml's requires_ansible; tests/requirements-2.18.txt
NEWEST=2.21    # tests/requirements-2.21.txt, baked into the compat-trixie image
COMPAT_GUEST_ROOT=/root/ansible_collections/vault_mlock/lxd

all_scenarios() {
    local dir
    for dir in molecule/*/molecule.yml; do basename "$(dirname "$dir")"; done
}

# Every stage, longest first (by the durations the last run on this machine recorded; a stage
# never timed counts as longest), so that the last stages to start are short ones and the run
# does not end waiting on one long scenario. Without records: every scenario, then the rest.
DURATIONS="$VML_CACHE/stage-durations"
default_stages() {
    local stage
    {
        for scenario in $(all_scenarios); do echo "molecule:$scenario"; done
        echo "sanity:$NEWEST"; echo "sanity:$FLOOR"; echo "unit:$NEWEST"; echo "unit:$FLOOR"; echo lint
    } | while read -r stage; do
        echo "$(awk -v s="$stage" '$1 == s { d = $2 } END { print (d == "" ? 99999 : d) }' "$DURATIONS" 2>/dev/null || echo 99999) $stage"
    done | sort -s -k1,1nr | cut -d' ' -f2
}

# record_duration NAME SECONDS: keeps the newest passing duration of each stage for default_stages.
record_duration() {
    (
        flock 8
        { grep -v "^$1 " "$DURATIONS" 2>/dev/null; echo "$1 $2"; } >"$DURATIONS.new" && mv "$DURATIONS.new" "$DURATIONS"
    ) 8>"$DURATIONS.lock"
}

stages=()
for arg in "${@:-default}"; do
    case "$arg" in
        default) while read -r stage; do stages+=("$stage"); done < <(default_stages) ;;
        setup) ;;  # setup always runs first
        unit) stages+=("unit:$FLOOR" "unit:$NEWEST") ;;
        sanity) stages+=("sanity:$FLOOR" "sanity:$NEWEST") ;;
        compat) stages+=("unit:$FLOOR" "sanity:$FLOOR" "unit:$NEWEST" "sanity:$NEWEST") ;;
        molecule) for scenario in $(all_scenarios); do stages+=("molecule:$scenario"); done ;;
        *) stages+=("$arg") ;;
    esac
done

log_of() { echo "$logs/${1//[:\/]/_}.log"; }

# run_stage NAME COMMAND...: runs it with its output in a log; prints one line with the
# duration and records it in NAME's .result file for the summary.
run_stage() {
    local name=$1 start rc took log cpu
    shift
    log=$(log_of "$name")
    rm -f "${log%.log}.result"
    start=$(date +%s%N)
    "$@" >"$log" 2>&1
    rc=$?
    times >"${log%.log}.times"
    cpu=$(tail -n 1 "${log%.log}.times" | awk '{ gsub(/[ms]/, " "); print int($1 * 60 + $2 + $3 * 60 + $4) }')
    took=$(( ($(date +%s%N) - start) / 100000000 ))
    took="$((took / 10)).$((took % 10))"
    # A failed stage can end early: only a passing run tells how long the stage takes.
    [ "$name" = setup ] || [ $rc -ne 0 ] || record_duration "$name" "${took%.*}"
    if [ $rc -eq "$SKIPPED" ]; then
        printf '==> %-28s skipped %7ss  %s\n' "$name" "$took" "$(tail -n 1 "$log")"
        printf '%-28s skipped %7ss  %s\n' "$name" "$took" "$(tail -n 1 "$log")" >"${log%.log}.result"
    elif [ $rc -eq 0 ]; then
        printf '==> %-28s ok      %7ss  %s\n' "$name" "$took" "$(stage_note "$name")"
        printf '%-28s ok      %7ss  cpu %4ss  %s\n' "$name" "$took" "$cpu" "$(stage_note "$name")" >"${log%.log}.result"
    else
        { printf '==> %-28s FAILED  %7ss\n' "$name" "$took"; show_failure "$log"; } | cat
        printf '%-28s FAILED  %7ss  cpu %4ss\n' "$name" "$took" "$cpu" >"${log%.log}.result"
    fi
    [ $rc -ne "$SKIPPED" ] || return 0
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
        unit:*) grep -E '^unit: ' "$log" | tail -n 1 ;;
        molecule:*) grep -E '[0-9]+ passed' "$log" | tail -n 1 | sed 's/=//g; s/^ *//' ;;
        setup) grep -E '^LXD:' "$log" | tail -n 1 ;;
        *) true ;;
    esac
}

# The lab images the chosen stages use: the three every run needs and whatever the chosen
# scenarios name (vault-mlock/NAME). The compat image is built by the first stage that needs
# it, beside the scenarios, rather than before every stage.
images_needed() {
    local stage images="guest lxd-host tiny"
    for stage in "${stages[@]}"; do
        case "$stage" in
            molecule:*)
                [ -d "molecule/${stage#molecule:}" ] || continue
                images+=" $(grep -rhoE 'vault-mlock/[a-z0-9-]+' "molecule/${stage#molecule:}" | sed 's|vault-mlock/||' | tr '\n' ' ')" ;;
        esac
    done
    echo "$images" | tr ' ' '\n' | grep . | awk '!seen[$0]++' | tr '\n' ' '
}

setup() {
    # shellcheck disable=SC2046  # one image name per word
    "$repo/tests/lab/lab.sh" up $(images_needed) || return 1
    "$repo/tests/lab/venv.sh" >"$repo/.cache/venv-path" || return 1
    if [[ " ${stages[*]} " == *":$FLOOR "* ]]; then
        "$repo/tests/lab/venv.sh" "tests/requirements-$FLOOR.txt" >"$repo/.cache/venv-$FLOOR-path" || return 1
    fi
}

# Everything Ansible keeps goes under .cache: the collection is found through
# .cache/collections/ansible_collections/vault_mlock/lxd (a link to this checkout), and
# ANSIBLE_HOME, its temporary files and Molecule's and ansible-lint's caches live there too.
collection_env() {
    local tree="$repo/.cache/collections/ansible_collections/vault_mlock"
    mkdir -p "$tree" "$repo/.cache/ansible" "$repo/.cache/xdg"
    ln -sfn "$repo" "$tree/lxd"
    export ANSIBLE_COLLECTIONS_PATH="$repo/.cache/collections"
    export ANSIBLE_HOME="$repo/.cache/ansible" ANSIBLE_LOCAL_TEMP="$repo/.cache/ansible/tmp"
    export XDG_CACHE_HOME="$repo/.cache/xdg"
    export PATH="$venv/bin:$PATH"
    # Plain logs: no colour codes from Ansible, Molecule or pytest.
    export ANSIBLE_NOCOLOR=1 NO_COLOR=1 PY_COLORS=0 ANSIBLE_FORCE_COLOR=0
}

# Unit tests run in one pytest process, as a developer runs them (`pytest tests/unit`); module
# tests run each main() in a forked child that is a target again (tests/unit/plugins/modules/
# conftest.py). Prints `unit: N passed, M skipped (ansible-core X, Python Y)`.
# shellcheck disable=SC2016  # expands where it runs, here or in a guest
UNIT_SCRIPT='
set -u -o pipefail
"$python" -m pytest -q -p no:cacheprovider -rs tests/unit | tee "$out/unit.txt"; rc=$?
"$python" - "$out/unit.txt" <<"PY"
import re, sys
import ansible.release
last = [line for line in open(sys.argv[1]) if re.search(r"\d+ (passed|failed|error)", line)][-1]
print("unit: " + ", ".join("%s %s" % found for found in re.findall(r"(\d+) (\w+)", last))
      + " (ansible-core %s, Python %d.%d)" % ((ansible.release.__version__,) + sys.version_info[:2]))
PY
[ $rc -eq 0 ]
'

unit_here() {  # VERSION
    local venv_path out
    venv_path=$(cat "$repo/.cache/venv-$1-path")
    out="$repo/.cache/unit-$1"
    mkdir -p "$out"
    python="$venv_path/bin/python" out="$out" bash -c "$UNIT_SCRIPT"
}

# ansible-test wants the collection at a real ansible_collections/NS/NAME path, outside this
# git work tree (where git would call the copy ignored): copy the files git knows there.
# Its own caches (sanity environments, the pip bootstrap) live under the lab's cache, in a
# HOME of their own: never in ~/.ansible.
sanity_here() {  # VERSION
    local version=$1 venv_path tree home pip_version
    venv_path=$(cat "$repo/.cache/venv-$version-path")
    tree="${TMPDIR:-/tmp}/vault-mlock-sanity/$(echo "$repo" | sha256sum | cut -c1-8)-$version/ansible_collections/vault_mlock/lxd"
    rm -rf "$tree"
    mkdir -p "$tree"
    git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$tree"
    home="$VML_CACHE/ansible-test/$version"
    pip_version=$("$venv_path/bin/python" - <<'PY'
import glob, re, sys
source = open(glob.glob(sys.prefix + "/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py")[0]).read()
print(re.search(r"pip='([0-9.]+)'", source).group(1).replace(".", "_"))
PY
)
    mkdir -p "$home/.ansible/test/cache"
    # ansible-test bootstraps pip in its environments with a script from a host this machine
    # may not reach; give it the project's stand-in under the name it looks for.
    cp "$repo/tests/lab/get_pip_offline.py" "$home/.ansible/test/cache/get_pip_$pip_version.py"
    (
        cd "$tree" || exit 1
        # One run at a time creates the shared sanity environments.
        exec 7>"$home/.lock"
        flock 7
        HOME="$home" "$venv_path/bin/ansible-test" sanity --python "$("$venv_path/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --color no
    )
}

# in_compat_guest NAME SCRIPT: a throwaway guest from the compat-trixie image with a copy of
# the files git knows at $COMPAT_GUEST_ROOT runs SCRIPT there (HOME is ansible-test's, baked
# into the image with its sanity environments).
in_compat_guest() {
    local name="vml-compat-$1-$$" rc
    "$repo/tests/lab/lab.sh" images compat-trixie || return 1
    lxc launch --ephemeral vault-mlock/compat-trixie "$name" -q 2>&1 | grep -v -i network
    # Until boot ends, systemd-tmpfiles may empty /tmp under ansible-test's and pytest's feet.
    lxc exec "$name" -- systemctl is-system-running --wait >/dev/null
    git ls-files -co --exclude-standard -z | tar --null --ignore-failed-read -T - -cf - \
        | lxc exec "$name" -- sh -c "mkdir -p $COMPAT_GUEST_ROOT && tar -C $COMPAT_GUEST_ROOT -xf -" || return 1
    lxc exec "$name" --env HOME=/opt/vml-compat/home --env LANG=C.UTF-8 --env NO_COLOR=1 --env PY_COLORS=0 \
        --cwd "$COMPAT_GUEST_ROOT" -- bash -c "$2"
    rc=$?
    lxc delete --force "$name" >/dev/null
    return $rc
}

unit_in_guest() {
    in_compat_guest unit "python=/opt/vml-compat/venv/bin/python out=/root/unit; mkdir -p \$out; $UNIT_SCRIPT"
}

sanity_in_guest() {
    # shellcheck disable=SC2016  # expands in the guest
    in_compat_guest sanity '/opt/vml-compat/venv/bin/ansible-test sanity --python "$(python3 -c "import sys; print(\"%d.%d\" % sys.version_info[:2])")" --color no'
}

lint() {
    ansible-lint --profile production --offline || return 1
    yamllint -f parsable molecule || return 1
    antsibull-changelog lint
}

# Scenarios name their instances (and lxc remotes) alike in every checkout: one run of a
# scenario at a time on this machine, whichever checkout it comes from. Molecule's state of
# the scenario is forgotten first, as an interrupted run may have left it saying "created"
# (create.yml deletes such a run's instances). A scenario whose molecule/NAME/precondition.sh
# exits 77 cannot run on this machine: skipped, with the reason it printed as the log's last line.
# One that changes the machine under other scenarios (molecule/swap gives it swap) names them in
# molecule/NAME/exclusive_with, and holds their locks too.
SKIPPED=77
molecule_scenario() {
    local why lock other
    if [ -x "molecule/$1/precondition.sh" ]; then
        why=$("molecule/$1/precondition.sh")
        if [ $? -eq "$SKIPPED" ]; then echo "skipped: $why"; return "$SKIPPED"; fi
    fi
    rm -rf "$ANSIBLE_LOCAL_TEMP"/molecule.*."$1"
    local locks=("$1")
    [ ! -f "molecule/$1/exclusive_with" ] || while read -r other; do locks+=("$other"); done <"molecule/$1/exclusive_with"
    # Taken in name order, so that two scenarios that exclude each other cannot wait on each other.
    set -- molecule test -s "$1"
    for lock in $(printf '%s\n' "${locks[@]}" | sort -ru); do set -- flock "$VML_CACHE/molecule-$lock.lock" "$@"; done
    "$@"
}

stage_command() {  # NAME -> the command that runs it, or nothing for an unknown stage
    case "$1" in
        "unit:$FLOOR") echo "unit_here $FLOOR" ;;
        "sanity:$FLOOR") echo "sanity_here $FLOOR" ;;
        "unit:$NEWEST") echo unit_in_guest ;;
        "sanity:$NEWEST") echo sanity_in_guest ;;
        lint) echo lint ;;
        molecule:*) [ ! -f "molecule/${1#molecule:}/molecule.yml" ] || echo "molecule_scenario ${1#molecule:}" ;;
    esac
}

# Throwaway compat guests of this run go when it ends, however it ends.
cleanup() {
    local name
    for name in $(lxc list --format csv -c n 2>/dev/null | grep -E "^vml-compat-[a-z]+-$$\$"); do
        lxc delete --force "$name" >/dev/null 2>&1
    done
}
trap cleanup EXIT

echo "vault_mlock.lxd tests, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), on $(uname -n)"
start_all=$(date +%s)
ordered=(setup)
if run_stage setup setup; then
    venv=$(cat "$repo/.cache/venv-path")
    collection_env
    for stage in "${stages[@]}"; do
        [[ " ${ordered[*]} " != *" $stage "* ]] || continue
        ordered+=("$stage")
        command=$(stage_command "$stage")
        if [ -z "$command" ]; then
            echo "unknown stage '$stage'; known: unit:$FLOOR sanity:$FLOOR unit:$NEWEST sanity:$NEWEST lint molecule:NAME ($(all_scenarios | tr '\n' ' '))"
            printf '%-28s UNKNOWN\n' "$stage" >"${logs}/${stage//[:\/]/_}.result"
            continue
        fi
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
        # shellcheck disable=SC2086  # the command and its arguments
        run_stage "$stage" $command &
    done
    wait
fi

echo
echo "stage                        result  duration"
passed=0
failed=0
skipped=0
for stage in "${ordered[@]}"; do
    result="$logs/${stage//[:\/]/_}.result"
    if grep -q ' ok ' "$result" 2>/dev/null; then passed=$((passed + 1))
    elif grep -q ' skipped ' "$result" 2>/dev/null; then skipped=$((skipped + 1))
    else failed=$((failed + 1)); fi
    cat "$result" 2>/dev/null || printf '%-28s NOT RUN\n' "$stage"
done
echo "total: $(( $(date +%s) - start_all ))s"
echo "stages: $passed passed, $skipped skipped, $failed failed"
[ "$failed" -eq 0 ]
