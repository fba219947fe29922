#!/usr/bin/env bash
# The main job behind `make demo`: a profile (SQLite + ZeroMQ broker, no services) when none exists, the runner
# code and CHGNet 0.3.0 from its wheel, a real MP dataset (the Li-Fe-P system of the shared Li-Fe-P-O file: every
# phase of it, so its hull is complete), then a benchmark: single points on the DFT structures and relaxations,
# formation energies, both hulls and symmetry, ending with the table of errors against DFT.
# Environment: MLIAP_PROFILE (default aiida-mliap-demo), MLIAP_SHARED_DATA (default ../shared/data),
# MLIAP_DEMO_CHEMSYS (default Li-Fe-P); extra arguments go to `aiida-mliap benchmark launch`.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${MLIAP_PROFILE:-aiida-mliap-demo}
data=${MLIAP_SHARED_DATA:-../shared/data}
chemsys=${MLIAP_DEMO_CHEMSYS:-Li-Fe-P}
group="mp/$chemsys"
if ! verdi profile show "$profile" >/dev/null 2>&1; then
    verdi presto --profile-name "$profile" --use-zeromq
fi
aiida-mliap -p "$profile" setup code
aiida-mliap -p "$profile" setup model chgnet-0.3.0
aiida-mliap -p "$profile" dataset import "$data/mp/Li-Fe-P-O.json.gz" --chemsys "$chemsys" --group "$group"
aiida-mliap -p "$profile" benchmark launch --group "$group" --model chgnet-0.3.0 --task static --task relax \
    --protocol balanced "$@"
