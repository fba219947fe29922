"""``load_results`` and every metric on 1,000 and 10,000 stored result rows, timed (target: 10,000 in < 10 s).

    taskset -c 0 python benchmarks/analysis.py [--rows 1000 10000] [--repeat 3] [--keep AIIDA_PATH]

A throw-away SQLite profile (its own AIIDA_PATH, removed afterwards) gets MP's Li-Fe-P-O file (973 entries), the
symmetry analysis of its DFT structures, and then "models" until the row count is reached: each is the DFT-as-a-model
oracle with seeded noise (``aiida_mliap.testing``), run through ``compute_thermodynamics`` like a benchmark's model.
Filling the profile is not timed. Timed per size (median of the repeats): ``load_results`` on the dataset group (all
models), then ``summary_metrics``, every breakdown and the tests of the claims (``science``, 1,000 chemical-system
bootstrap resamples).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hull import SHARED, fresh_profile


def fill(first: int, models: int, directory: Path, dataset) -> None:
    """Models ``first`` .. ``first + models - 1``, each through ``compute_thermodynamics``."""
    from aiida_mliap.calculations.thermo import compute_thermodynamics, thermodynamics_inputs
    from aiida_mliap.testing import oracle_model, oracle_tables

    for variant in range(first, first + models):
        model = oracle_model(directory, variant=variant)
        tables = oracle_tables(dataset, {'task': 'static', 'noise': 0.03, 'seed': variant})
        compute_thermodynamics(**thermodynamics_inputs(model, tables, [dataset]))


def timed(group_label: str, n_bootstrap: int) -> dict[str, float]:
    from aiida_mliap.analysis.results import load_results
    from aiida_mliap.science.breakdowns import BREAKDOWNS, breakdown
    from aiida_mliap.science.claims import science
    from aiida_mliap.science.metrics import summary_metrics

    start = time.perf_counter()
    table = load_results(group_label)
    loaded = time.perf_counter()
    summary_metrics(table)
    for by in BREAKDOWNS:
        breakdown(table, by)
    science(table, n_bootstrap=n_bootstrap)
    done = time.perf_counter()
    return {'rows': len(table), 'load_results': loaded - start, 'metrics': done - loaded, 'total': done - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rows', type=int, nargs='+', default=[1000, 10000])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--bootstrap', type=int, default=1000)
    parser.add_argument('--keep', type=Path, help='make the profile in this AIIDA_PATH and keep it (for later runs)')
    arguments = parser.parse_args()

    os.environ['AIIDA_PATH'] = str(arguments.keep or tempfile.mkdtemp(prefix='analysis-benchmark-'))
    try:
        root = Path(os.environ['AIIDA_PATH'])
        fresh_profile(root, 'analysis-benchmark')
        from aiida_mliap.calculations.dataset import import_reference_file
        from aiida_mliap.calculations.symmetry_analysis import analyse_symmetry, symmetry_inputs

        _, dataset, _ = import_reference_file(SHARED / 'Li-Fe-P-O.json.gz', 'analysis')
        analyse_symmetry(**symmetry_inputs(dataset=dataset))
        entries = dataset.base.attributes.get('n_entries')
        filled = 0
        for rows in sorted(arguments.rows):
            models = math.ceil(rows / entries)
            tick = time.perf_counter()
            fill(filled + 1, models - filled, root, dataset)
            filled = models
            print(f'profile filled to {models} models x {entries} entries ({time.perf_counter() - tick:.0f} s)')
            runs = [timed('analysis', arguments.bootstrap) for _ in range(arguments.repeat)]
            median = {key: statistics.median(run[key] for run in runs) for key in ('load_results', 'metrics', 'total')}
            print(
                f'{runs[0]["rows"]:>6} rows: load_results {median["load_results"]:.2f} s, metrics and breakdowns '
                f'{median["metrics"]:.2f} s, total {median["total"]:.2f} s (median of {arguments.repeat})',
                flush=True,
            )
    finally:
        if arguments.keep:
            print(f'kept: AIIDA_PATH={arguments.keep}, profile analysis-benchmark, dataset group `analysis`')
        else:
            shutil.rmtree(os.environ['AIIDA_PATH'], ignore_errors=True)


if __name__ == '__main__':
    main()
