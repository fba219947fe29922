"""Relaxations that went wrong, found and listed rather than averaged away.

A model whose landscape has a hole relaxes into it: in the Li-Fe-P demo three phosphorus structures relaxed to 0.21-0.71
eV/atom below their DFT energies with their symmetry kept. DFT relaxed the same structures, so a model minimum that far
below the DFT energy is far more likely a hole in the model than a better structure; the flag says "suspected", and
the DFT check (issue 18) is what settles it.
"""

from __future__ import annotations

import pandas as pd

SUSPECT_BELOW_DFT = 0.2  # eV/atom: a relaxed model energy this far below the DFT energy is flagged
RELAX_TASKS = ('relax', 'relax_fixsym')
WORST_COLUMNS = [
    'model', 'task', 'mp_id', 'formula', 'n_atoms', 'dof', 'error_e_above_hull', 'error_energy', 'relax_drop_per_atom',
    'symmetry_change', 'rmsd_to_dft', 'volume_change', 'suspected_unphysical_minimum',
]  # fmt: skip


def add_relaxation_checks(table: pd.DataFrame) -> pd.DataFrame:
    """``relax_drop_per_atom``: a relaxation's energy minus the same model's static energy of the same structure
    (eV/atom; None without a static row); ``suspected_unphysical_minimum``: a relaxation that ended more than
    ``SUSPECT_BELOW_DFT`` below the DFT energy."""
    table = table.copy()
    static = table[table['task'] == 'static'].set_index(['model_sha256', 'label'])['energy_per_atom_model']
    relaxed = table['task'].isin(RELAX_TASKS)
    keys = pd.MultiIndex.from_frame(table.loc[relaxed, ['model_sha256', 'label']])
    table['relax_drop_per_atom'] = None
    if relaxed.any():
        drop = table.loc[relaxed, 'energy_per_atom_model'].to_numpy(float) - static.reindex(keys).to_numpy(float)
        table.loc[relaxed, 'relax_drop_per_atom'] = drop
    table['relax_drop_per_atom'] = pd.to_numeric(table['relax_drop_per_atom'])
    error = pd.to_numeric(table['error_energy'])
    table['suspected_unphysical_minimum'] = relaxed & (error < -SUSPECT_BELOW_DFT)
    return table


def worst_structures(table: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """Per model and task, the ``n`` structures with the largest |Ehull error| on the model hull, plus every
    suspected unphysical minimum, worst first."""
    rows = table.dropna(subset=['error_e_above_hull'])
    picked = []
    for _, group in rows.groupby(['model', 'task'], sort=True):
        ranked = group.reindex(group['error_e_above_hull'].abs().sort_values(ascending=False).index)
        picked.append(
            pd.concat([ranked.head(n), ranked[ranked['suspected_unphysical_minimum']]]).drop_duplicates('label')
        )
    if not picked:
        return pd.DataFrame(columns=WORST_COLUMNS)
    return pd.concat(picked)[WORST_COLUMNS].reset_index(drop=True)
