"""Relaxations that fell into a hole of the model's landscape are flagged and listed, not averaged away."""

from __future__ import annotations

import pandas as pd

from aiida_mliap.science.metrics import add_errors
from aiida_mliap.science.pathologies import SUSPECT_BELOW_DFT, add_relaxation_checks, worst_structures


def table() -> pd.DataFrame:
    labels = [f's{i}' for i in range(15)]
    dft = [-5.0 - 0.01 * i for i in range(15)]
    static = [e + 0.01 for e in dft]
    relaxed = [e - 0.005 for e in static]
    relaxed[3] = dft[3] - SUSPECT_BELOW_DFT - 0.3  # a collapse
    relaxed[4] = dft[4] - SUSPECT_BELOW_DFT + 0.01  # deep, but not past the threshold
    rows = []
    for task, energies in (('static', static), ('relax', relaxed)):
        for i, label in enumerate(labels):
            rows.append(
                {
                    'model': 'm', 'model_sha256': 'x', 'task': task, 'label': label, 'mp_id': f'mp-{i}',
                    'formula': 'P', 'n_atoms': 4, 'dof': i, 'energy_per_atom_dft': dft[i],
                    'energy_per_atom_model': energies[i], 'e_form_dft': 0.0, 'e_form_model': 0.0,
                    'e_above_hull_dft': 0.01 * i, 'e_above_hull_model': 0.01 * i + energies[i] - dft[i],
                    'e_above_hull_model_dftref': 0.0, 'symmetry_change': 'kept', 'rmsd_to_dft': 0.01,
                    'volume_change': 0.0,
                }
            )  # fmt: skip
    return add_errors(pd.DataFrame(rows))


def test_flags_and_drop():
    checked = add_relaxation_checks(table())
    relax = checked[checked['task'] == 'relax'].set_index('label')
    assert relax['suspected_unphysical_minimum'].sum() == 1 and relax.loc['s3', 'suspected_unphysical_minimum']
    assert abs(relax.loc['s0', 'relax_drop_per_atom'] + 0.005) < 1e-12
    assert checked.loc[checked['task'] == 'static', 'relax_drop_per_atom'].isna().all()
    assert not checked.loc[checked['task'] == 'static', 'suspected_unphysical_minimum'].any()


def test_worst_lists_the_collapse_first_and_every_suspect():
    checked = add_relaxation_checks(table())
    worst = worst_structures(checked, n=2)
    relax = worst[worst['task'] == 'relax']
    assert relax.iloc[0]['mp_id'] == 'mp-3' and relax.iloc[0]['suspected_unphysical_minimum']
    assert len(worst[worst['task'] == 'static']) == 2
