#!/usr/bin/env bash
# The test command behind `make test` (and .ci/run). Three passes over the real stack:
#   1. the whole suite on SQLite with the built-in ZeroMQ broker (daemon tests included; as root, a one-node Slurm
#      cluster is started first for tests/test_slurm.py, and Quantum ESPRESSO installed for tests/dft);
#   2. the storage tests on a throw-away PostgreSQL cluster made by pgtest, as an unprivileged user
#      (PostgreSQL refuses to run as root);
#   3. the storage and daemon tests on the running PostgreSQL (127.0.0.1:5432) + RabbitMQ (127.0.0.1:5672).
# Extra arguments go to pytest in every pass; MLIAP_TEST_PASSES="2 3" runs only some passes.
# Every pass runs even when an earlier one failed; the script ends with a line per pass and fails if any did.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
passes=${MLIAP_TEST_PASSES:-1 2 3}
export PYTHONDONTWRITEBYTECODE=1
run_pass() { [[ " $passes " == *" $1 "* ]]; }
declare -A outcome
record() { outcome[$1]=$2; }

if run_pass 1; then
echo "== 1/3 full suite: SQLite + ZeroMQ broker"
if [ "$(id -u)" = 0 ]; then
    bash scripts/slurm.sh || echo "no Slurm cluster: tests/test_slurm.py will say why"
fi
# The DFT check's tests run real pw.x (Quantum ESPRESSO). As root it is installed from Debian when missing; without
# root, install it yourself (`conda install -c conda-forge qe`, or your cluster's module) or tests/dft say why they skip.
if ! command -v pw.x >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends quantum-espresso >/dev/null \
            || echo "could not install quantum-espresso: tests/dft/test_dft_check.py will skip"
    else
        echo "no pw.x and no root: tests/dft/test_dft_check.py will skip (conda install -c conda-forge qe)"
    fi
fi
python -m pytest tests "$@"; record 1 $?
fi

if run_pass 2; then
echo "== 2/3 storage tests on a pgtest PostgreSQL cluster, as an unprivileged user"
if [ "$(id -u)" = 0 ]; then
    user=${MLIAP_TEST_USER:-nobody}
    scratch=$(mktemp -d)
    chmod 755 "$scratch"
    workdir=$repo
    if ! runuser -u "$user" -- test -r "$repo/pyproject.toml" -a -x "$repo/.venv/bin/python"; then
        # The checkout sits below a folder the user cannot enter (e.g. /root): run from a readable copy, with
        # the copied venv's scripts and editable-install finder pointed at the copy.
        echo "user $user cannot read $repo: running this pass from a copy in $scratch"
        workdir=$scratch/repo
        cp -a "$repo" "$workdir"
        find "$workdir/.venv/bin" -maxdepth 1 -type f -exec sed -i "1s|^#!$repo/|#!$workdir/|" {} +
        sed -i "s|'$repo/|'$workdir/|g" "$workdir"/.venv/lib/python3*/site-packages/__editable___*finder.py
        chmod -R a+rX "$workdir"
    fi
    mkdir -m 777 "$scratch/home"
    shared=$(realpath ../shared/data)
    # Its own AIIDA_PATH: an AIIDA_PATH of the caller's (root's) would be a folder the user cannot write to.
    runuser -u "$user" -- env PATH="$workdir/.venv/bin:$PATH" HOME="$scratch/home" MPLCONFIGDIR="$scratch/home" \
        AIIDA_PATH="$scratch/home" \
        XDG_CACHE_HOME="$scratch/home" PYTHONDONTWRITEBYTECODE=1 MLIAP_TEST_STORAGE=pgtest MLIAP_SHARED_DATA="$shared" \
        bash -c "cd '$workdir' && python -m pytest tests -m storage --basetemp='$scratch/home/pytest' $*"
    record 2 $?
    rm -rf "$scratch"
else
    MLIAP_TEST_STORAGE=pgtest python -m pytest tests -m storage "$@"; record 2 $?
fi
fi

if run_pass 3; then
echo "== 3/3 storage and daemon tests on the running PostgreSQL + RabbitMQ"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "PostgreSQL is not running: starting it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    echo "RabbitMQ is not running: starting it"
    rabbitmq-server -detached
    sleep 10
fi
MLIAP_TEST_STORAGE=production python -m pytest tests -m "storage or daemon" "$@"; record 3 $?
fi

echo "== summary"
failed=0
for pass in 1 2 3; do
    [ -n "${outcome[$pass]:-}" ] || continue
    if [ "${outcome[$pass]}" = 0 ]; then echo "pass $pass: passed"; else echo "pass $pass: FAILED (pytest exit ${outcome[$pass]})"; failed=1; fi
done
exit $failed
