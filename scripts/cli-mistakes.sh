#!/usr/bin/env bash
# Replays the mistakes of issue 29 through the CLI on a throw-away SQLite profile and prints, for each: the shell exit
# status, the first line of the message, and whether the number of nodes changed (a refused input must store nothing).
# Run from the repository root with the venv's bin on PATH: `PATH=$PWD/.venv/bin:$PATH bash scripts/cli-mistakes.sh`
# (about 5 minutes on 2 cores; ../shared/data reachable, or MLIAP_SHARED_DATA set).
set -uo pipefail
shared=$(realpath "${MLIAP_SHARED_DATA:-../shared/data}")
scratch=$(mktemp -d)
export AIIDA_PATH=$scratch MPLCONFIGDIR=$scratch
cd "$scratch"
verdi presto --profile-name mistakes >/dev/null 2>&1 || { echo "could not make a profile"; exit 1; }
count() { python -c "from aiida import load_profile, orm; load_profile(); print(orm.QueryBuilder().append(orm.Node).count())"; }

# What a user has before making mistakes: the runner, CHGNet, a small dataset with a good static benchmark.
aiida-mliap setup code >/dev/null
aiida-mliap setup model chgnet-0.3.0 >/dev/null 2>&1
aiida-mliap dataset import "$shared/mp/Li-Fe-P-O.json.gz" -G li-o --chemsys Li-O >/dev/null 2>&1
aiida-mliap benchmark launch --group li-o --model chgnet-0.3.0 --task static --max-atoms 8 --device cpu \
    --progress-every 600 >/dev/null 2>&1
good_rows=$(python -c "from aiida import load_profile; load_profile()
from aiida_mliap.analysis.results import load_results
t = load_results('li-o'); print(int((t['task'] == 'static').sum()))")
head -c 5000 /dev/urandom > noise.pth.tar
head -c 20000 <(gzip -dc "$shared/mp/Li-Fe-P-O.json.gz" | gzip) > truncated.json.gz
echo 'not json' > notjson.json
model_pk=$(python -c "from aiida import load_profile, orm; load_profile()
from aiida_mliap.data.model import MliapModelData
print(orm.QueryBuilder().append(MliapModelData).first(flat=True).pk)")

printf '| # | mistake | exit | nodes | message |\n|---|---|---|---|---|\n'
n=0
try() {  # try "description" expected-to-store(yes/no) command...
    local what=$1 stores=$2; shift 2
    n=$((n + 1))
    local before after output status
    before=$(count)
    output=$("$@" 2>&1 </dev/null); status=$?
    after=$(count)
    local message
    message=$(printf '%s\n' "$output" | grep -m1 -E '^(Error|Critical)' | cut -c1-150 | sed 's/|/\\|/g')
    [ -z "$message" ] && message=$(printf '%s\n' "$output" | tail -1 | cut -c1-150 | sed 's/|/\\|/g')
    local nodes="unchanged"
    [ "$before" != "$after" ] && nodes="+$((after - before))"
    [ "$stores" = no ] && [ "$nodes" != unchanged ] && nodes="$nodes (REFUSED BUT STORED)"
    printf '| %d | %s | %s | %s | %s |\n' "$n" "$what" "$status" "$nodes" "$message"
}
launch=(aiida-mliap launch relax --group li-o --model chgnet-0.3.0 --limit 1)
bench=(aiida-mliap benchmark launch --group li-o --model chgnet-0.3.0 --task static --max-atoms 8)
try "launch relax --max-steps 0" no "${launch[@]}" --max-steps 0
try "launch relax --fmax 0" no "${launch[@]}" --fmax 0
try "launch relax --limit 0" no aiida-mliap launch relax --group li-o --model chgnet-0.3.0 --limit 0
try "launch relax of an unknown model" no aiida-mliap launch relax --group li-o --model chgnet-9
try "launch relax of an unknown group" no aiida-mliap launch relax --group nowhere --model chgnet-0.3.0
try "launch relax --code that does not exist" no "${launch[@]}" --code nothing@localhost
try "launch relax --device cuda without a GPU" yes "${launch[@]}" --device cuda
try "benchmark launch --batch-size 0" no "${bench[@]}" --batch-size 0
try "benchmark launch --max-concurrent 0" no "${bench[@]}" --max-concurrent 0
try "benchmark launch --max-steps 0" no "${bench[@]}" --max-steps 0
try "benchmark launch --max-atoms -3" no "${bench[@]}" --max-atoms -3
try "benchmark launch --progress-every 0" no "${bench[@]}" --progress-every 0
try "benchmark launch --task nonsense" no "${bench[@]}" --task nonsense
try "benchmark launch --device cuda without a GPU" yes "${bench[@]}" --device cuda --progress-every 600
rows=$(python -c "from aiida import load_profile; load_profile()
from aiida_mliap.analysis.results import load_results
t = load_results('li-o'); print(int((t['task'] == 'static').sum()), int(t['newer_failed_attempts'].gt(0).sum()))")
try "dataset import of a truncated .json.gz" no aiida-mliap dataset import truncated.json.gz -G t1
try "dataset import of a file that is not JSON" no aiida-mliap dataset import notjson.json -G t2
try "dataset import of a missing file" no aiida-mliap dataset import missing.json.gz -G t3
try "dataset import --chemsys Li-Xx" no aiida-mliap dataset import "$shared/mp/Li-Fe-P-O.json.gz" -G t4 --chemsys Li-Xx
try "dataset import -G ''" no aiida-mliap dataset import "$shared/mp/Li-Fe-P-O.json.gz" -G ''
try "setup model: random bytes as CHGNet" no aiida-mliap setup model noise.pth.tar --framework chgnet \
    --energy-scale mp2020_corrected
try "setup model: a matgl folder as MACE" no aiida-mliap setup model "$shared/models/matgl/M3GNet-MP-2021.2.8-PES" \
    --framework mace --energy-scale raw_dft
try "setup model chgnet-0.3.0 --energy-scale raw_dft" no aiida-mliap setup model chgnet-0.3.0 --energy-scale raw_dft
try "setup model chgnet-0.3.0 --modal PBE" no aiida-mliap setup model chgnet-0.3.0 --modal PBE
try "setup model of a path without --framework" no aiida-mliap setup model noise.pth.tar
try "report PK of a model" no aiida-mliap report "$model_pk" -o r1
try "report of an unknown group" no aiida-mliap report nowhere -o r2
echo
echo "report of li-o after the failed --device cuda benchmark: $rows (static rows, rows with a newer failed attempt);"
echo "static rows of the good benchmark before: $good_rows"
rm -rf "$scratch"
