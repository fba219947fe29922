#!/usr/bin/env bash
# The main job behind `make demo`: a profile (SQLite + ZeroMQ broker, no services) when none exists, the runner
# code, CHGNet 0.3.0 from its wheel, then a relaxation of real Li-Fe-P-O structures through the CalcJob.
# Extra arguments go to examples/quickstart.py (e.g. --mp-id mp-19017 --fmax 0.02).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${MLIAP_PROFILE:-aiida-mliap-demo}
if ! verdi profile show "$profile" >/dev/null 2>&1; then
    verdi presto --profile-name "$profile" --use-zeromq
fi
aiida-mliap -p "$profile" setup code
aiida-mliap -p "$profile" setup model chgnet-0.3.0
python examples/quickstart.py --profile "$profile" "$@"
