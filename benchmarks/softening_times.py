"""What a softening measurement cost and found, from its provenance: the slopes per model and the wall times.

    python benchmarks/softening_times.py -p PROFILE SOFTENING_PK

Prints per model the force, stress and energy-difference slopes with their intervals and the force MAE; the DFT
numerical error per check; then wall times: the work chain's, pw.x's per kind of SCF (compared SCFs that ran and
those taken from the cache, and each numerical check), summed and largest, and each model's runner time. pw.x's own
wall time is read from its output parameters (``wall_time_seconds``), the runner's from its calculation's
summary (``wall_time_s``).
"""

from __future__ import annotations

import argparse
import re


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-p', '--profile', required=True)
    parser.add_argument('softening', type=int)
    arguments = parser.parse_args()

    from aiida import load_profile, orm

    load_profile(arguments.profile)
    import pandas as pd

    from aiida_mliap.analysis.softening import softening_frame

    node = orm.load_node(arguments.softening)
    table = softening_frame(node).pivot(index='model', columns='quantity')
    shown = pd.DataFrame({
        f'{quantity} slope': [_interval(table.loc[m, ('slope', quantity)], table.loc[m, ('slope_ci95', quantity)])
                              for m in table.index]
        for quantity in ('forces', 'stress', 'energy')
    }, index=table.index)  # fmt: skip
    shown['force MAE (eV/Å)'] = table[('mae', 'forces')].round(4)
    shown['components'] = table[('n', 'forces')]
    shown['parents'] = table[('n_parents', 'forces')]
    print(shown.to_markdown())
    record = node.outputs.softening
    print(
        f'\n{record["n_configurations"]} configurations, {record["n_parents"]} parents; failures {record["failures"]}'
    )
    for check, found in record['numerical_error'].items():
        print(f'DFT numerical error, {check}: largest {found["largest"]}')

    rows = []
    for call in node.called:
        if call.process_label != 'MliapPwBaseWorkChain':
            continue
        calcs = [c for c in call.called if c.process_label == 'PwCalculation']
        check = re.search(r'_(kpoints|smearing|cutoff)$', call.label)
        seconds = sum(c.outputs.output_parameters.get('wall_time_seconds', 0.0) for c in calcs
                      if 'output_parameters' in c.outputs)  # fmt: skip
        cached = all(c.base.caching.is_created_from_cache for c in calcs)
        kind = check.group(1) if check else ('compared, from cache' if cached else 'compared')
        rows.append({'kind': kind, 'label': call.label, 'pw.x s': seconds})
    scf = pd.DataFrame(rows)
    print('\npw.x wall time per kind of SCF (seconds; cached SCFs: the time of the run they were taken from)')
    print(scf.groupby('kind')['pw.x s'].agg(['count', 'sum', 'mean', 'max']).round(0).to_markdown())
    for call in node.called:
        if call.process_label == 'MliapBaseWorkChain':
            jobs = [c for c in call.called_descendants if c.process_label == 'MliapCalculation']
            seconds = sum(c.outputs.summary.get('wall_time_s') or 0.0 for c in jobs if 'summary' in c.outputs)
            print(f'{call.label}: {len(jobs)} job(s), runner {seconds:.0f} s')
    print(f'\nwork chain wall time: {(node.mtime - node.ctime).total_seconds() / 60:.1f} min '
          f'({node.process_label}<{node.pk}> [{node.exit_status}])')  # fmt: skip


def _interval(value, interval) -> str:
    if value is None or value != value:
        return '-'
    return f'{value:.3f}' + (f' [{interval[0]:.3f}, {interval[1]:.3f}]' if isinstance(interval, list) else '')


if __name__ == '__main__':
    main()
