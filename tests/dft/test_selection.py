"""Which structures the DFT check takes, and how the report splits an error with ΔE_geom (frames, no pw.x)."""

from __future__ import annotations

import pandas as pd
import pytest

from aiida_mliap.science.dft_check import dft_check_split, select_structures


def rows() -> pd.DataFrame:
    """Six relaxations by one model: a(lowered, |err| 5), b(kept, 40), c(kept, 20; a stability flip), d(too big),
    e(failed), f(kept, 1); and a static row that never counts."""
    base = {'model': 'm', 'model_sha256': 'abc', 'task': 'relax', 'status': 'ok', 'n_atoms': 4}
    data = [
        ('a', 'lowered', 0.005, 0.05, 0.055), ('b', 'kept', 0.040, 0.10, 0.14), ('c', 'kept', -0.020, 0.01, -0.01),
        ('d', 'lowered', 0.090, 0.0, 0.09), ('e', 'kept', None, 0.0, None), ('f', 'kept', 0.001, 0.2, 0.201),
    ]  # fmt: skip
    frame = pd.DataFrame(
        [{**base, 'label': label, 'mp_id': label.upper(), 'symmetry_change': change,
          'abs_error_e_above_hull_dftref': None if error is None else abs(error), 'e_above_hull_dft': dft,
          'e_above_hull_model_dftref': model} for label, change, error, dft, model in data]
    )  # fmt: skip
    frame.loc[frame['label'].eq('d'), 'n_atoms'] = 20
    frame.loc[frame['label'].eq('e'), 'status'] = 'failed'
    static = frame.iloc[[1]].assign(task='static', label='s', abs_error_e_above_hull_dftref=9.0)
    return pd.concat([frame, static], ignore_index=True)


def test_rules_order_and_bounds():
    chosen = select_structures(rows(), max_structures=3, max_atoms=8)
    # The narrow rules first (a: lowered, c: flip), then the largest error of the rest (b); d too big, e failed.
    assert chosen['label'].tolist() == ['c', 'a', 'b']
    assert chosen.set_index('label')['reasons'].to_dict() == {
        'c': ['largest_ehull_error', 'stability_flip'], 'a': ['symmetry_lowered', 'largest_ehull_error'],
        'b': ['largest_ehull_error'],
    }  # fmt: skip
    assert select_structures(rows(), rules=['symmetry_lowered'])['label'].tolist() == ['d', 'a']
    given = select_structures(rows(), rules=[], labels=['F'], max_atoms=8)
    assert given['label'].tolist() == ['f'] and given['reasons'].tolist() == [['labels']]


def test_refusals():
    with pytest.raises(ValueError, match='unknown selection rules'):
        select_structures(rows(), rules=['lowest_energy'])
    with pytest.raises(ValueError, match='not among the finished relaxations of <= 8 atoms'):
        select_structures(rows(), labels=['d'], max_atoms=8)
    two = pd.concat([rows(), rows().assign(model='n', model_sha256='def')])
    with pytest.raises(ValueError, match='name one'):
        select_structures(two)
    assert select_structures(two, model='def')['model'].unique().tolist() == ['n']


def test_split_of_the_error():
    frame = pd.DataFrame({
        'model': 'm', 'task': 'relax', 'label': ['a', 'b', 'c', 'd'], 'dof': [0, 0, 5, 5],
        'e_above_hull_dft': 0.0, 'symmetry_change': ['kept', 'kept', 'lowered', 'lowered'],
        'error_energy': [-0.030, -0.010, -0.050, 0.0], 'dft_check_delta_e_geom': [-0.020, 0.0005, 0.010, None],
        'dft_check_status': ['ok', 'ok', 'ok', 'failed'], 'dft_check_uncertainty': [0.001, 0.001, 0.001, None],
    })  # fmt: skip
    split = dft_check_split(frame, 'symmetry_change').set_index('symmetry_change')
    assert split.loc['kept', ['n', 'confirmed', 'contradicted']].tolist() == [2, 1, 0]
    assert split.loc['lowered', 'n'] == 1 and split.loc['lowered', 'contradicted'] == 1  # the failed one left out
    assert split.loc['lowered', 'mean_rest'] == pytest.approx(-0.060)
    assert dft_check_split(frame.assign(dft_check_status=None), 'dof_bin').empty
