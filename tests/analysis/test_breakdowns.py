"""Breakdowns on a synthetic table whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiida_mliap.science.breakdowns import breakdown
from aiida_mliap.science.metrics import add_errors


def synthetic(error_of, n=300, seed=1) -> pd.DataFrame:
    generator = np.random.default_rng(seed)
    atoms = generator.integers(1, 80, n)
    dof = atoms + generator.integers(0, 20, n)  # DOF grows with size, as in real crystals
    energy = generator.normal(-6, 1, n)
    dft = energy + 0.0
    model = dft + error_of(dof, atoms, energy) + generator.normal(0, 0.002, n)
    return add_errors(
        pd.DataFrame(
            {
                'model': 'm', 'task': 'relax', 'model_sha256': 'x', 'dof': dof, 'n_atoms': atoms,
                'energy_per_atom_dft': dft, 'energy_per_atom_model': model, 'e_form_model': None, 'e_form_dft': None,
                'e_above_hull_model': None, 'e_above_hull_model_dftref': None,
                'e_above_hull_dft': generator.choice([0.0, 0.03, 0.3], n),
                'crystal_system': generator.choice(['cubic', 'triclinic'], n),
                'chemsys': generator.choice(['Li-O', 'Fe-Li-O'], n), 'spacegroup_initial': 1, 'symmetry_change': 'kept',
            }
        )
    )  # fmt: skip


def test_breakdowns():
    table = synthetic(lambda dof, atoms, energy: -0.001 * atoms)
    by_system = breakdown(table, 'crystal_system')
    assert set(by_system['crystal_system']) == {'cubic', 'triclinic'} and by_system['n'].sum() == len(table)
    by_element = breakdown(table, 'element')
    assert by_element.set_index('element').loc['Li', 'n'] == len(table)
    by_dof = breakdown(table, 'dof_bin')
    assert by_dof['n'].sum() == len(table)
    by_hull = breakdown(table, 'ehull_bin')
    assert set(by_hull['ehull_bin']) == {'on hull', '25-50', '>200 meV/atom'}
    with pytest.raises(ValueError, match='unknown breakdown'):
        breakdown(table, 'colour')
