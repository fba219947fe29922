"""The per-model table of a multi-model benchmark, as it goes into the README: one row per model and task.

    python benchmarks/zoo_table.py -p PROFILE BENCHMARK_PK [BENCHMARK_PK ...]

Columns: for Ehull on the model hull, Ehull on the DFT-reference hull, formation energy and total energy the MAE and
mean signed error (meV/atom) and the share underpredicted; F1 and DAF of the stability classification on the
DFT-reference hull (Matbench Discovery's convention); the model's seconds per structure (runner wall time, one CPU
thread unless the job had more) and the work chain's wall time. Scored as ``summary_metrics`` scores: over the
structures each model was given (a benchmark with ``max_atoms`` on those it evaluated).
"""

from __future__ import annotations

import argparse

QUANTITIES = {
    'e_above_hull': 'Ehull model hull',
    'e_above_hull_dftref': 'Ehull DFT-ref hull',
    'e_form': 'formation',
    'energy': 'total',
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-p', '--profile', required=True)
    parser.add_argument('benchmarks', type=int, nargs='+')
    arguments = parser.parse_args()

    from aiida import load_profile, orm

    load_profile(arguments.profile)
    import pandas as pd

    from aiida_mliap.analysis import load_results
    from aiida_mliap.science.metrics import summary_metrics

    rows = []
    for pk in arguments.benchmarks:
        benchmark = orm.load_node(pk)
        table = load_results(benchmark)
        hours = (benchmark.mtime - benchmark.ctime).total_seconds() / 3600
        for entry in summary_metrics(table).values():
            row = {'model': entry['model'], 'task': entry['task'], 'n': entry['n_rows']}
            for key, name in QUANTITIES.items():
                errors = entry['errors'][key]
                row[f'{name} MAE'] = 1000 * errors['mae']
                row[f'{name} MSE'] = 1000 * errors['me']
                row[f'{name} % under'] = 100 * errors['fraction_under']
            classification = entry['classification']['dftref_hull']
            row['F1'], row['DAF'] = classification['f1'], classification['daf']
            rows_of = table[(table.model == entry['model']) & (table.task == entry['task'])]
            row['s/structure'] = rows_of.wall_time_s.mean()
            row['benchmark h'] = hours
            rows.append(row)
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt='.2f'))


if __name__ == '__main__':
    main()
