"""The study's claims and its rivals on synthetic tables whose answer is known, and an independent recomputation of
every ``claims``, ``softening`` and ``dof_effect`` row from a results.csv (statsmodels, not our code).

Set ``MLIAP_STUDY_REPORT`` to a report directory (results.csv + metrics.json, e.g. the README's worked study) to run
the same recomputation on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from aiida_mliap.science.claims import science

SYSTEMS = ['cubic', 'hexagonal', 'monoclinic', 'orthorhombic', 'tetragonal', 'triclinic', 'trigonal']


def synthetic(error_of, dof_of, n_chemsys=30, per_chemsys=25, seed=3) -> pd.DataFrame:
    """A results table: ``n_chemsys`` chemical systems, DFT Ehull 20 % on the hull and exponential above it, DOF from
    ``dof_of(ehull, generator)``, Ehull error ``error_of(ehull, dof)`` plus a per-chemical-system offset and noise."""
    generator = np.random.default_rng(seed)
    n = n_chemsys * per_chemsys
    chemsys = np.repeat([f'A{i}-B-O' if i % 2 else f'A{i}-O' for i in range(n_chemsys)], per_chemsys)
    ehull = np.where(generator.random(n) < 0.2, 0.0, generator.exponential(0.12, n))
    dof = dof_of(ehull, generator)
    offset = np.repeat(generator.normal(0, 0.004, n_chemsys), per_chemsys)
    error = error_of(ehull, dof) + offset + generator.normal(0, 0.006, n)
    energy_dft = generator.normal(-6, 1, n)
    return pd.DataFrame(
        {
            'mp_id': [f'mp-{i}' for i in range(n)], 'model': 'm', 'task': 'static', 'chemsys': chemsys,
            'n_atoms': generator.integers(2, 60, n), 'dof': dof, 'crystal_system': generator.choice(SYSTEMS, n),
            'e_above_hull_dft': ehull, 'e_above_hull_model': ehull + error,
            'e_above_hull_model_dftref': ehull + 0.8 * error,
            'e_form_dft': -2 + ehull, 'e_form_model': -2 + ehull + error,
            'energy_per_atom_dft': energy_dft, 'energy_per_atom_model': energy_dft + error,
        }
    )  # fmt: skip


def dof_follows_ehull(ehull, generator):
    return np.round(4 + 150 * ehull + generator.integers(0, 6, len(ehull)))


def dof_independent(ehull, generator):
    return generator.integers(0, 60, len(ehull)).astype(float)


def test_error_from_instability_only_is_explained_by_instability():
    table = synthetic(lambda ehull, dof: -0.3 * ehull, dof_follows_ehull)
    document = science(table)
    (verdict,) = document['verdicts']
    (dof,) = document['dof_effect']
    assert dof['coef_dof_alone_ci95'][1] < 0  # a plot against DOF alone shows an effect ...
    assert dof['coef_dof_ci95'][0] < 0 < dof['coef_dof_ci95'][1]  # ... which the controls remove
    assert 'explained by instability' in verdict['claim_3_high_dof']
    (soft,) = document['softening']
    assert soft['slope'] == pytest.approx(0.7, abs=0.05) and soft['slope_ci95'][1] < 1
    assert 'compressed' in verdict['softening']
    assert verdict['claim_1_underprediction'].startswith('Ehull') and 'holds' in verdict['claim_1_underprediction']


def test_built_in_dof_effect_is_found():
    table = synthetic(lambda ehull, dof: -0.0015 * dof, dof_independent)
    document = science(table)
    (verdict,) = document['verdicts']
    (dof,) = document['dof_effect']
    assert dof['coef_dof'] == pytest.approx(-0.0015, abs=2e-4) and dof['coef_dof_ci95'][1] < 0
    assert 'supports it' in verdict['claim_3_high_dof']
    assert 'no compression' in verdict['softening']  # the error does not follow DFT Ehull
    assert 'vs 40: holds' in verdict['claim_3_high_dof']  # mean 35 DOF above 10 -> ~ -50 meV/atom
    bins = pd.DataFrame(document['dof_effect_by_ehull_bin'])
    assert (bins['coef_dof'] < -0.001).all()  # the effect survives within bins of equal stability


def test_no_effect_at_all():
    table = synthetic(lambda ehull, dof: 0.0 * dof, dof_independent)
    (verdict,) = science(table)['verdicts']
    assert 'no DOF effect' in verdict['claim_3_high_dof'] or 'cannot tell' in verdict['claim_3_high_dof']
    assert 'vs 30: does not hold' in verdict['claim_2_ehull_mae_above_30']


def test_bootstrap_is_seeded_and_resamples_chemical_systems():
    table = synthetic(lambda ehull, dof: -0.3 * ehull, dof_follows_ehull)
    first, again, other = science(table, seed=0), science(table, seed=0), science(table, seed=1)
    assert first == again
    assert first['softening'][0]['slope_ci95'] != other['softening'][0]['slope_ci95']
    # The same interval by brute force: the documented draws (seed, number of chemical systems; codes in sorted
    # order), each resample built row by row and fitted with numpy.
    codes, names = pd.factorize(table['chemsys'], sort=True)
    draws = np.random.default_rng(0).integers(0, len(names), (1000, len(names)))
    slopes = []
    for drawn in draws:
        rows = np.concatenate([np.flatnonzero(codes == c) for c in drawn])
        x, y = table['e_above_hull_dft'].to_numpy()[rows], table['e_above_hull_model'].to_numpy()[rows]
        slopes.append(np.polyfit(x, y, 1)[0])
    assert first['softening'][0]['slope_ci95'] == pytest.approx(list(np.percentile(slopes, [2.5, 97.5])), abs=1e-10)
    means = [np.mean((table['e_form_model'] - table['e_form_dft']).to_numpy()[
        np.concatenate([np.flatnonzero(codes == c) for c in drawn])]) for drawn in draws]  # fmt: skip
    (e_form,) = [row for row in first['claims'] if row['quantity'] == 'e_form']
    assert e_form['mean_signed_ci95'] == pytest.approx(list(np.percentile(means, [2.5, 97.5])), abs=1e-10)


def test_too_few_chemical_systems_gives_no_interval():
    table = synthetic(lambda ehull, dof: -0.3 * ehull, dof_follows_ehull, n_chemsys=3, per_chemsys=40)
    document = science(table)
    assert document['softening'][0]['slope_ci95'] is None
    assert 'too few chemical systems' in document['verdicts'][0]['claim_3_high_dof']


def recompute(results: pd.DataFrame, document: dict) -> int:
    """Every claims / softening / dof_effect row of ``document`` recomputed from ``results`` with pandas and
    statsmodels; returns how many rows were checked."""
    columns = {
        'e_above_hull_model': ('e_above_hull_model', 'e_above_hull_dft'),
        'e_above_hull_dftref': ('e_above_hull_model_dftref', 'e_above_hull_dft'),
        'e_form': ('e_form_model', 'e_form_dft'),
        'energy': ('energy_per_atom_model', 'energy_per_atom_dft'),
    }
    checked = 0
    for row in document['claims']:
        rows = results[(results['model'] == row['model']) & (results['task'] == row['task'])]
        model, dft = columns[row['quantity']]
        errors = (rows[model] - rows[dft]).dropna()
        assert row['n'] == len(errors)
        if len(errors):
            assert row['mae'] == pytest.approx(errors.abs().mean(), abs=1e-8)
            assert row['mean_signed'] == pytest.approx(errors.mean(), abs=1e-8)
            assert row['fraction_under'] == pytest.approx((errors < 0).mean(), abs=1e-8)
        checked += 1
    for soft, dof in zip(document['softening'], document['dof_effect'], strict=True):
        rows = results[(results['model'] == soft['model']) & (results['task'] == soft['task'])]
        needed = ['e_above_hull_model', 'e_above_hull_dft', 'dof', 'n_atoms', 'chemsys', 'crystal_system']
        rows = rows.dropna(subset=needed)
        fit = sm.OLS(rows['e_above_hull_model'], sm.add_constant(rows['e_above_hull_dft'])).fit()
        assert soft['n'] == len(rows)
        assert soft['slope'] == pytest.approx(fit.params['e_above_hull_dft'], abs=1e-8)
        assert soft['intercept'] == pytest.approx(fit.params['const'], abs=1e-8)
        covariates = pd.DataFrame(
            {
                'dof': rows['dof'], 'e_above_hull_dft': rows['e_above_hull_dft'], 'n_atoms': rows['n_atoms'],
                'n_elements': rows['chemsys'].str.split('-').str.len(),
            }
        )  # fmt: skip
        dummies = pd.get_dummies(rows['crystal_system'], drop_first=True, dtype=float)
        design = sm.add_constant(pd.concat([covariates, dummies], axis=1).astype(float))
        fit = sm.OLS(rows['e_above_hull_model'] - rows['e_above_hull_dft'], design).fit()
        assert dof['coef_dof'] == pytest.approx(fit.params['dof'], abs=1e-8)
        assert dof['coef_e_above_hull_dft'] == pytest.approx(fit.params['e_above_hull_dft'], abs=1e-8)
        checked += 2
    return checked


def test_independent_recomputation_from_results_csv(tmp_path):
    table = pd.concat(
        [
            synthetic(lambda ehull, dof: -0.3 * ehull, dof_follows_ehull),
            synthetic(lambda ehull, dof: -0.0015 * dof, dof_independent, seed=4).assign(model='other', task='relax'),
        ]
    )
    document = json.loads(json.dumps(science(table)))  # as metrics.json holds it
    table.to_csv(tmp_path / 'results.csv', index=False)
    assert recompute(pd.read_csv(tmp_path / 'results.csv'), document) == 2 * 4 + 2 * 2


@pytest.mark.skipif('MLIAP_STUDY_REPORT' not in os.environ, reason='MLIAP_STUDY_REPORT (a report directory) not set')
def test_independent_recomputation_of_a_report():
    directory = Path(os.environ['MLIAP_STUDY_REPORT'])
    document = json.loads((directory / 'metrics.json').read_text())
    checked = recompute(pd.read_csv(directory / 'results.csv'), document)
    assert checked == len(document['claims']) + 2 * len(document['softening']) > 0


def test_dof_effect_against_the_claim_is_named():
    """More DOF, less underprediction as measured (DOF follows stability, the error falls with DFT Ehull and rises
    with DOF through it), no DOF effect once controlled: the words say it goes against the claim."""
    table = synthetic(lambda ehull, dof: +0.3 * ehull, dof_follows_ehull)
    (verdict,) = science(table)['verdicts']
    assert 'against the claim' in verdict['claim_3_high_dof']
