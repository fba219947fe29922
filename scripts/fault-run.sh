#!/usr/bin/env bash
# A fault run through the daemon on PostgreSQL + RabbitMQ (issue 28), to compare with a clean run of the same
# benchmark: CHGNet 0.3.0 on the Li-Fe-P system (structures of at most MLIAP_FAULT_MAX_ATOMS atoms and every elemental
# ground state), static + relax, batches of 8, two daemon workers. Faults injected into the second run:
#   1. the first runner is killed (kill -9) two seconds after it starts: no results file (before issue 28: 301,
#      the batch lost);
#   2. every daemon worker is killed (kill -9) while a compute_thermodynamics of the benchmark runs: the step runs
#      again and the interrupted calcfunction stays "Running" (before: gather could take that orphan).
# Then both runs' results tables are compared row by row and every structure must have exactly one row.
# Needs PostgreSQL on 127.0.0.1:5432 (a role that may create databases: PGUSER, default postgres) and RabbitMQ on
# 127.0.0.1:5672. Everything lives in a throw-away AIIDA_PATH and database, dropped at the end (MLIAP_FAULT_KEEP=1
# keeps them).
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(realpath "${MLIAP_SHARED_DATA:-../shared/data}")
max_atoms=${MLIAP_FAULT_MAX_ATOMS:-20}
work=$(mktemp -d /tmp/mliap-faults.XXXX)
export AIIDA_PATH=$work PGUSER=${PGUSER:-postgres}
db=mliap_faults_$(basename "$work" | tr -dc 'a-zA-Z0-9' | tr 'A-Z' 'a-z')
profile=faults
log() { echo "[$(date +%H:%M:%S)] $*"; }

cleanup() {
    verdi -p "$profile" daemon stop >/dev/null 2>&1 || true
    if [ -z "${MLIAP_FAULT_KEEP:-}" ]; then
        psql -q -h 127.0.0.1 -c "DROP DATABASE IF EXISTS $db" -c "DROP ROLE IF EXISTS $db" >/dev/null || true
        rm -rf "$work"
    else
        log "kept: AIIDA_PATH=$work, database $db"
    fi
}
trap cleanup EXIT

psql -q -h 127.0.0.1 -c "CREATE ROLE $db LOGIN PASSWORD '$db'" -c "CREATE DATABASE $db OWNER $db"
verdi profile setup core.psql_dos -n --profile-name "$profile" --email faults@localhost --first-name fault \
    --last-name run --institution aiida-mliap --broker core.rabbitmq --database-hostname 127.0.0.1 \
    --database-port 5432 --database-username "$db" --database-password "$db" --database-name "$db" \
    --repository-uri "file://$work/repository" --set-as-default >/dev/null
verdi config set daemon.timeout 60 >/dev/null
# A work directory of its own, so that fault 1 kills this profile's runner and nobody else's.
verdi computer setup -n -L localhost -H localhost -T core.local -S core.direct -w "$work/scratch" >/dev/null
verdi computer configure core.local localhost -n --safe-interval 0 >/dev/null
aiida-mliap setup code >/dev/null
aiida-mliap setup model chgnet-0.3.0 >/dev/null
aiida-mliap dataset import "$data/mp/Li-Fe-P-O.json.gz" --chemsys Li-Fe-P --group mp/Li-Fe-P >/dev/null
verdi daemon start 2 >/dev/null

launch() {  # prints the benchmark's pk
    aiida-mliap benchmark launch --group mp/Li-Fe-P --model chgnet-0.3.0 --task static --task relax \
        --protocol balanced --batch-size 8 --max-concurrent 2 --max-atoms "$max_atoms" --daemon \
        | sed -n 's/.*MliapBenchmarkWorkChain<\([0-9]*\)>.*/\1/p'
}
wait_for() {
    until verdi process show "$1" | grep -q -E '^state +(Finished|Excepted|Killed)'; do sleep 10; done
    verdi process show "$1" | grep -E '^state'
}
sql() { psql -h 127.0.0.1 -tA -d "$db" -c "$1"; }

log "clean run"
clean=$(launch)
wait_for "$clean"

log "fault run"
fault=$(launch)
# Fault 1: the first runner of the fault run (the clean run has ended: any runner in this profile's work
# directory), killed two seconds after it starts.
runner_pid() {
    for pid in $(pgrep -f 'bin/aiida-mliap-run'); do
        case $(readlink "/proc/$pid/cwd") in "$work/scratch"/*) echo "$pid"; return ;; esac
    done
}
until runner=$(runner_pid) && [ -n "$runner" ]; do sleep 0.2; done
sleep 2
kill -9 "$runner" && log "killed runner $runner ($(readlink "/proc/$runner/cwd" 2>/dev/null || echo gone)) two seconds after its start"
# Fault 2: every daemon worker killed while one of the fault run's compute_thermodynamics runs (it takes ~2 s).
query="SELECT count(*) FROM db_dbnode WHERE id > $fault AND attributes->>'process_label' = 'compute_thermodynamics'
       AND attributes->>'process_state' IN ('created', 'running')"
done_query="SELECT count(*) FROM db_dbnode WHERE id = $fault AND attributes->>'process_state' = 'finished'"
until [ "$(sql "$query")" != 0 ] || [ "$(sql "$done_query")" != 0 ]; do sleep 0.05; done
if [ "$(sql "$done_query")" != 0 ]; then
    log "missed: the benchmark finished before a compute_thermodynamics was seen running"
else
    workers=$(pgrep -f "$profile daemon worker" | tr '\n' ' ')
    kill -9 $workers && log "killed daemon workers $workers during compute_thermodynamics"
fi
wait_for "$fault"
log "orphans left Running by the kill: $(sql "SELECT count(*) FROM db_dbnode WHERE id > $fault
    AND node_type LIKE 'process.calculation.calcfunction%' AND attributes->>'process_state' = 'running'")"
verdi process report "$fault" | grep -E "304|not reached|thermodynamics|gather" || true

log "comparison"
cat > "$work/compare.py" <<EOF
import sys
from aiida import orm
from aiida_mliap.analysis.results import load_results
from aiida_mliap.cli.utils import headline_text
from aiida_mliap.analysis.benchmark import error_summary
import pandas as pd

clean, fault = orm.load_node($clean), orm.load_node($fault)
print(f'clean {clean.pk} [{clean.exit_status}], fault {fault.pk} [{fault.exit_status}] {fault.exit_message or ""}')
tables = {name: load_results(node) for name, node in (('clean', clean), ('fault', fault))}
for name, table in tables.items():
    rows = table.groupby(['label', 'task']).size()
    print(f'{name}: {len(table)} rows, {table.label.nunique()} structures, at most {rows.max()} row per structure '
          f'and task; statuses {table.status.value_counts().to_dict()}')
keys = ['label', 'task']
numbers = ['energy_per_atom_model', 'e_form_model', 'e_above_hull_model', 'e_above_hull_model_dftref']
joined = tables['clean'].merge(tables['fault'], on=keys, suffixes=('_clean', '_fault'))
worst = max(float((joined[f'{c}_fault'] - joined[f'{c}_clean']).abs().max()) for c in numbers)
print(f'rows in both: {len(joined)}; largest difference over {numbers}: {worst:.3g} eV/atom')
for entry in fault.outputs.summary['entries']:
    account = entry['accounting']
    print(f'fault {entry["task"]}: planned {account["planned"]}, evaluated {account["evaluated"]}, failed by the '
          f'model {account["failed_by_model"]}, not evaluated {account["not_evaluated"]}')
print(headline_text(pd.DataFrame(error_summary(fault))))
ok = fault.is_finished_ok and len(joined) == len(tables['clean']) == len(tables['fault']) and worst < 1e-9
print('SAME AS THE CLEAN RUN' if ok else 'DIFFERENT FROM THE CLEAN RUN')
sys.exit(0 if ok else 1)
EOF
verdi run "$work/compare.py"
