"""What the measured softening says in words: the force slope's verdict against 1 (widened by the DFT error) and the
rank association of softening with Ehull compression across models."""

from __future__ import annotations

import math

import pytest

from aiida_mliap.science.softening_claims import association, force_verdict, softening_summary


def test_a_force_slope_is_judged_by_its_interval_and_the_dft_error():
    row = {'slope': 0.85, 'slope_ci95': [0.80, 0.90], 'n_parents': 10}
    assert force_verdict(row, 0.0).endswith('softer than DFT at 95 %')
    assert 'no softening shown' in force_verdict(row, 0.15)  # the DFT forces themselves are uncertain by 15 %
    assert force_verdict({**row, 'slope': 1.1, 'slope_ci95': [1.05, 1.2]}, 0.01).endswith('stiffer than DFT at 95 %')
    assert 'no softening shown' in force_verdict({**row, 'slope_ci95': [0.7, 1.02]}, 0.0)
    assert 'cannot tell' in force_verdict({'slope': 0.8, 'slope_ci95': None, 'n_parents': 3}, 0.0)
    assert force_verdict({'slope': None}, 0.0) == 'no force pairs'


def test_the_association_is_an_exact_rank_test_and_says_when_it_cannot_tell():
    same_order = [(0.70 + 0.05 * i, 0.80 + 0.02 * i) for i in range(7)]
    found = association(same_order)
    assert found['spearman'] == pytest.approx(1.0)
    assert found['p_value'] == pytest.approx(2 / math.factorial(7))  # both perfect orderings of 5,040
    assert found['words'].startswith('yes')
    opposite = association([(x, -y) for x, y in same_order])
    assert opposite['spearman'] == pytest.approx(-1.0) and opposite['words'].startswith('the opposite')
    shuffled = association([(0.7, 0.9), (0.8, 0.85), (0.9, 0.95), (0.75, 0.8), (0.85, 0.92)])
    assert shuffled['p_value'] > 0.05 and shuffled['words'].startswith('no association shown')
    few = association(same_order[:3])
    assert few['spearman'] is None and few['words'].startswith('cannot tell: 3 model(s)')


def test_the_summary_joins_the_measured_slopes_with_the_benchmark_compression():
    record = {
        'models': {'a': {'name': 'model-a', 'sha256': 'aa'}, 'b': {'name': 'model-b', 'sha256': 'bb'}},
        'softening': [
            {'model': 'model-a', 'quantity': 'forces', 'n': 90, 'n_parents': 10, 'slope': 0.8,
             'slope_ci95': [0.75, 0.85], 'mae': 0.05, 'rmse': 0.07},
            {'model': 'model-a', 'quantity': 'stress', 'n': 60, 'n_parents': 10, 'slope': 0.9,
             'slope_ci95': [0.8, 1.0], 'mae': 0.5, 'rmse': 0.6},
            {'model': 'model-b', 'quantity': 'forces', 'n': 90, 'n_parents': 10, 'slope': 0.97,
             'slope_ci95': [0.9, 1.05], 'mae': 0.03, 'rmse': 0.04},
        ],
        'numerical_error': {'kpoints': {'largest': {'forces': 0.012, 'stress': 0.1, 'energy': 1e-4}},
                            'smearing': {'largest': {'forces': 0.008, 'stress': 0.1, 'energy': 1e-4}},
                            'cutoff': {'largest': {'forces': None, 'stress': None, 'energy': None}}},
        'failures': {'dft': {'x': 'exit status 305'}, 'models': {}},
        'n_parents': 10, 'n_configurations': 30,
    }  # fmt: skip
    found = {'softening': [
        {'model': 'model-a', 'task': 'relax', 'slope': 0.7, 'slope_ci95': [0.6, 0.8]},
        {'model': 'model-a', 'task': 'static', 'slope': 0.85, 'slope_ci95': [0.8, 0.9]},
    ]}  # fmt: skip
    summary = softening_summary(record, 0.4, found)
    a, b = summary['models']
    assert a['sha256'] == 'aa' and a['stress_slope'] == 0.9 and a['energy_slope'] is None
    assert (a['ehull_task'], a['ehull_slope']) == ('static', 0.85)  # single points preferred over relaxations
    assert b['ehull_slope'] is None  # not in the benchmark: no pair
    assert summary['dft_relative_force_error'] == pytest.approx(0.05)
    assert a['verdict'].endswith('softer than DFT at 95 %') and 'no softening shown' in b['verdict']
    assert summary['dft_failures'] == 1 and summary['association']['n_models'] == 1
