"""Which energy scale does a model predict: raw MP (VASP) energies, or MP2020-corrected ones?

    python benchmarks/energy_scale.py -p PROFILE BENCHMARK_PK [BENCHMARK_PK ...]

Reads the static single points of the benchmarks (on the DFT structures) from provenance and compares each model's
*own* energy (before any correction of ours) with the entries' raw and MP2020-corrected energies: a model trained on
raw energies has a small mean signed error against the raw ones and one of about the mean correction (hundreds of
meV/atom in oxides) against the corrected ones, and the other way round. This is how the scale recorded on a model
node is established (``energy_scale``; never guessed). Also prints seconds per structure of the static task, and for
a raw_dft model the largest difference between the correction we added to its energy and the entry's own MP2020
correction (the same rules on the same structure: zero up to float noise).
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-p', '--profile', required=True)
    parser.add_argument('benchmarks', type=int, nargs='+')
    arguments = parser.parse_args()

    from aiida import load_profile, orm

    load_profile(arguments.profile)
    import pandas as pd

    from aiida_mliap.analysis import load_results
    from aiida_mliap.calculations.dataset import union_of_datasets

    rows = []
    for pk in arguments.benchmarks:
        benchmark = orm.load_node(pk)
        datasets = [benchmark.inputs.datasets[key] for key in sorted(benchmark.inputs.datasets)]
        references = union_of_datasets(datasets, 'references', project='attributes')
        dft = pd.DataFrame.from_dict(references, orient='index')
        dft['raw'] = dft.energy / dft.n_atoms
        dft['corrected'] = (dft.energy + dft.correction) / dft.n_atoms
        dft['own_correction'] = dft.correction / dft.n_atoms
        table = load_results(benchmark)
        columns = ['raw', 'corrected', 'own_correction']
        table = table[(table.task == 'static') & (table.status == 'ok')].join(dft[columns], on='label')
        for model, group in table.groupby('model'):
            against_raw = 1000 * (group.energy_per_atom_model_raw - group.raw)
            against_corrected = 1000 * (group.energy_per_atom_model_raw - group.corrected)
            rows.append(
                {
                    'model': model,
                    'recorded scale': group.energy_scale.iloc[0],
                    'n': len(group),
                    'MSE vs raw': against_raw.mean(),
                    'MAE vs raw': against_raw.abs().mean(),
                    'MSE vs corrected': against_corrected.mean(),
                    'MAE vs corrected': against_corrected.abs().mean(),
                    'measured scale': 'raw_dft'
                    if against_raw.abs().mean() < against_corrected.abs().mean()
                    else 'mp2020_corrected',
                    's/structure': group.wall_time_s.mean(),
                    'max |added - own correction| eV/atom': (
                        (group.energy_per_atom_model - group.energy_per_atom_model_raw - group.own_correction)
                        .abs()
                        .max()
                        if group.energy_scale.iloc[0] == 'raw_dft'
                        else None
                    ),
                }
            )
    print('meV/atom, the model\'s own energies (before our MP2020 correction), static single points on the DFT '
          'structures')  # fmt: skip
    frame = pd.DataFrame(rows)
    check = 'max |added - own correction| eV/atom'
    frame[check] = [f'{value:.1e}' if pd.notna(value) else '-' for value in frame[check]]
    print(frame.to_markdown(index=False, floatfmt='.1f'))


if __name__ == '__main__':
    main()
