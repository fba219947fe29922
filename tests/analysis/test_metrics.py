"""Error and classification metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from aiida_mliap.science.metrics import classification_metrics, error_metrics, headline_table, summary_metrics


def test_error_metrics_by_hand():
    metrics = error_metrics(pd.Series([-0.03, -0.01, 0.02, None]))
    assert metrics['n'] == 3
    assert metrics['mae'] == pytest.approx(0.02)
    assert metrics['me'] == pytest.approx(-0.02 / 3)
    assert metrics['rmse'] == pytest.approx(math.sqrt((0.0009 + 0.0001 + 0.0004) / 3))
    assert metrics['fraction_under'] == pytest.approx(2 / 3)
    assert math.isnan(error_metrics([])['mae'])


def test_classification_by_hand():
    """Matbench Discovery's convention: stable when Ehull <= 0; DAF = precision / prevalence."""
    true = np.array([0.0, -0.01, 0.05, 0.2, 0.0, 0.1, np.nan])
    pred = np.array([-0.02, 0.03, -0.01, 0.3, 0.0, 0.2, 0.0])
    metrics = classification_metrics(true, pred)
    # stable (true): 0, 1, 4; predicted stable: 0, 2, 4 -> tp 2 (0, 4), fp 1 (2), fn 1 (1), tn 2 (3, 5)
    assert (metrics['tp'], metrics['fp'], metrics['fn'], metrics['tn']) == (2, 1, 1, 2)
    assert metrics['precision'] == pytest.approx(2 / 3) and metrics['recall'] == pytest.approx(2 / 3)
    assert metrics['f1'] == pytest.approx(2 / 3) and metrics['accuracy'] == pytest.approx(4 / 6)
    assert metrics['prevalence'] == pytest.approx(0.5) and metrics['daf'] == pytest.approx(4 / 3)
    nothing_predicted = classification_metrics([0.0, 0.1], [0.5, 0.5])
    assert math.isnan(nothing_predicted['precision']) and math.isnan(nothing_predicted['daf'])


def test_failed_structures_count_as_predicted_unstable():
    """Matbench Discovery's fillna: a structure without a prediction stays in the denominator as predicted unstable
    (a stable one becomes a false negative, an unstable one a true negative) and is counted in n_failed."""
    true = np.array([0.0, 0.0, 0.1, 0.1, np.nan])
    pred = np.array([-0.01, np.nan, np.nan, 0.2, np.nan])
    metrics = classification_metrics(true, pred)
    assert (metrics['tp'], metrics['fp'], metrics['fn'], metrics['tn']) == (1, 0, 1, 2)
    assert metrics['n'] == 4 and metrics['n_failed'] == 2
    assert metrics['recall'] == pytest.approx(0.5) and metrics['prevalence'] == pytest.approx(0.5)


def test_summary_per_model_and_task():
    table = pd.DataFrame(
        {
            'model': ['a', 'a', 'b'],
            'model_sha256': ['1', '1', '2'],
            'task': ['static', 'static', 'relax'],
            'energy_per_atom_model': [-1.01, -2.0, -3.05],
            'energy_per_atom_dft': [-1.0, -2.02, -3.0],
            'e_form_model': [None, -0.5, -0.4],
            'e_form_dft': [-0.1, -0.45, -0.3],
            'e_above_hull_model': [0.0, 0.1, 0.0],
            'e_above_hull_model_dftref': [0.0, 0.05, -0.05],
            'e_above_hull_dft': [0.01, 0.0, 0.0],
        }
    )
    summary = summary_metrics(table)
    assert sorted(summary) == ['a/static', 'b/relax']
    assert summary['a/static']['errors']['energy']['mae'] == pytest.approx(0.015)
    assert summary['a/static']['errors']['e_form']['n'] == 1
    assert summary['b/relax']['classification']['dftref_hull']['tp'] == 1
    headline = headline_table(table)
    row = headline[(headline['model'] == 'a') & (headline['quantity'] == 'total energy')].iloc[0]
    assert row['n'] == 2 and row['mean signed meV/atom'] == pytest.approx(5.0)
