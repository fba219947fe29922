"""The softening scale: a slope through the origin with an interval over parent structures."""

import numpy as np
import pandas as pd
import pytest

from aiida_mliap.science.softening import softening_scale, softening_table


def pairs(slope: float, n_parents: int = 12, per_parent: int = 30, noise: float = 0.02, seed: int = 1):
    """Force components of ``n_parents`` parents' perturbations, a model ``slope`` times softer than DFT."""
    rng = np.random.default_rng(seed)
    dft = rng.normal(0.0, 0.5, (n_parents, per_parent))
    mliap = slope * dft + rng.normal(0.0, noise, dft.shape)
    return pd.DataFrame({
        'model': 'soft', 'quantity': 'forces', 'parent': np.repeat([f'mp-{i}' for i in range(n_parents)], per_parent),
        'chemsys': np.repeat([f'A-{i % 4}' for i in range(n_parents)], per_parent),
        'dft': dft.ravel(), 'mliap': mliap.ravel(),
    })  # fmt: skip


def test_slope_through_the_origin_and_its_interval():
    frame = pairs(0.8)
    found = softening_scale(frame)
    x, y = frame['dft'].to_numpy(), frame['mliap'].to_numpy()
    assert found['slope'] == pytest.approx(x @ y / (x @ x), abs=1e-12)
    low, high = found['slope_ci95']
    assert low < found['slope'] < high and high - low < 0.05 and found['slope'] == pytest.approx(0.8, abs=0.01)
    assert found['n'] == 360 and found['n_parents'] == 12
    assert found['rmse'] == pytest.approx(np.sqrt(((y - x) ** 2).mean()))
    # An offset the origin does not absorb: the slope through the origin is not the OLS slope with an intercept.
    shifted = frame.assign(mliap=frame['mliap'] + 0.3)
    assert softening_scale(shifted)['slope'] == pytest.approx(x @ (y + 0.3) / (x @ x))


def test_too_few_parents_give_no_interval_and_no_data_no_slope():
    few = softening_scale(pairs(0.9, n_parents=3))
    assert few['slope'] == pytest.approx(0.9, abs=0.01) and few['slope_ci95'] is None
    empty = softening_scale(pairs(0.9).iloc[:0])
    assert empty['n'] == 0 and empty['slope'] is None


def test_table_per_model_quantity_and_chemical_system():
    frame = pd.concat([pairs(0.8), pairs(1.0, seed=2).assign(model='stiff')])
    table = softening_table(frame).set_index('model')
    assert table.loc['soft', 'slope'] == pytest.approx(0.8, abs=0.01)
    assert table.loc['stiff', 'slope'] == pytest.approx(1.0, abs=0.01)
    per_system = softening_table(frame, by_chemsys=True)
    assert len(per_system) == 8 and set(per_system['n_parents']) == {3}  # 12 parents over 4 systems, per model


def test_parents_spread_over_chemical_systems():
    from aiida_mliap.science.softening import select_parents

    rows = pd.DataFrame({
        'label': ['li', 'li2', 'p4', 'lip', 'li3p', 'big', 'unstable', 'o2'],
        'chemsys': ['Li', 'Li', 'P', 'Li-P', 'Li-P', 'Li-P', 'Li-P', 'O'],
        'n_atoms': [1, 2, 4, 16, 8, 20, 4, 2],
        'e_above_hull': [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.0],
    })  # fmt: skip
    # One cell per system before a second of any; 1-atom, unstable and too large cells left out.
    assert select_parents(rows, max_parents=10) == ['li2', 'li3p', 'o2', 'p4']
    assert select_parents(rows, labels=('unstable',), max_parents=2) == ['unstable', 'li2']
    with pytest.raises(ValueError, match=r"DFT budget of 8 atoms: \{'big': 20\}"):
        select_parents(rows, labels=('big',))
    with pytest.raises(ValueError, match='not in the dataset'):
        select_parents(rows, labels=('mp-0',))


def test_parents_spread_over_dof_bins_within_a_system():
    from aiida_mliap.science.softening import select_parents

    rows = pd.DataFrame({
        'label': ['a', 'b', 'c', 'd', 'e'], 'chemsys': ['Li', 'Li', 'Li-P', 'Li-P', 'Li-P'],
        'n_atoms': [2, 3, 4, 8, 6], 'e_above_hull': 0.0, 'dof': [0, 2, 0, 7, 0],
    })  # fmt: skip
    # Li-P's first pick is its 7-DOF cell (bin '0' is taken by Li), not its smallest; the next round takes the rest.
    assert select_parents(rows, max_parents=4) == ['a', 'd', 'b', 'c']
    assert select_parents(rows.drop(columns='dof'), max_parents=4) == ['a', 'c', 'b', 'e']  # smallest cells
    assert select_parents(rows, labels=('c',), max_parents=2) == ['c', 'b']  # a given 0-DOF parent counts too


@pytest.mark.parametrize(
    'spec, fragment',
    [
        ({'rattle': [0.03]}, 'whole `seed`'),
        ({'rattle': [-0.1], 'seed': 0}, 'must be positive'),
        ({'volume': [0.7], 'seed': 0}, 'within ±0.5'),
        ({'twist': [0.1], 'seed': 0}, 'unknown perturbations'),
        ({'rattle': 0.03, 'seed': 0}, 'must be a list of numbers'),
        ({'seed': 0}, 'no perturbation asked for'),
    ],
)
def test_perturbations_refused_with_the_reason(spec, fragment):
    from aiida_mliap.science.softening import PERTURBATIONS, perturbation_problem

    assert fragment in perturbation_problem(spec)
    assert perturbation_problem({**PERTURBATIONS, 'seed': 0}) is None
