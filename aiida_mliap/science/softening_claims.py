"""What the measured softening says: per model, is its potential energy surface softer than DFT's, and across models,
does the softer one also compress the hull more (the rival explanation of the study's underprediction)?

The force slope's verdict reads its interval (bootstrap over parent structures) against 1, widened by the DFT
values' own numerical error: a slope that differs from 1 by less than the DFT forces' relative change under tighter
k-points, smearing and cutoff (summed) is not a softening this measurement can show. The association across
models is Spearman's rank correlation of the two slopes with an exact permutation p-value: with seven models, only
a strong ordering can show.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MIN_MODELS = 4  # fewer models than this: no rank correlation is shown at 5 %, whatever the data
ALPHA = 0.05


def force_verdict(row: dict[str, Any], dft_error: float) -> str:
    """Words for one model's force slope ``row`` (``slope``, ``slope_ci95``, ``n_parents``); ``dft_error``: the DFT
    forces' relative numerical error (``dft_relative_error``)."""
    if row.get('slope') is None:
        return 'no force pairs'
    interval = row.get('slope_ci95')
    if not interval:
        return f'slope {row["slope"]:.2f}: cannot tell (no interval: {row.get("n_parents", 0)} parents, fewer than 5)'
    low, high = interval
    if high < 1 - dft_error:
        return f'slope {row["slope"]:.2f}: softer than DFT at 95 %'
    if low > 1 + dft_error:
        return f'slope {row["slope"]:.2f}: stiffer than DFT at 95 %'
    return f'slope {row["slope"]:.2f}: no softening shown at 95 % (interval reaches 1 within the DFT error)'


def dft_relative_error(record: dict[str, Any], rms_force: float | None) -> float:
    """The DFT forces' numerical error over the RMS DFT force component: the sum over the checks (k-points,
    smearing, cutoff) of the largest force change each gave (eV/Å); 0 where none was measured."""
    changes = [check['largest'].get('forces') for check in record.get('numerical_error', {}).values()]
    total = sum(change for change in changes if change is not None)
    return float(total) / rms_force if rms_force else 0.0


def ehull_compression(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per model name its slope of model Ehull on DFT Ehull from ``claims.science`` rows, single points preferred
    (their compression is the surface's alone; a relaxation adds the geometry's)."""
    chosen: dict[str, dict[str, Any]] = {}
    for row in found.get('softening', []):
        if row['model'] not in chosen or row['task'] == 'static':
            chosen[row['model']] = row
    return chosen


def association(pairs: list[tuple[float, float]]) -> dict[str, Any]:
    """Spearman's rho of force slope against Ehull slope over models, with the exact two-sided permutation p-value;
    words that say whether the softer model also compresses more."""
    n = len(pairs)
    result: dict[str, Any] = {'n_models': n, 'spearman': None, 'p_value': None}
    if n < MIN_MODELS:
        return result | {'words': f'cannot tell: {n} model(s) with both slopes; a rank correlation needs '
                                  f'{MIN_MODELS} or more'}  # fmt: skip
    from scipy.stats import permutation_test, spearmanr

    x, y = np.array(pairs, dtype=float).T
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return result | {'words': 'cannot tell: one of the slopes is the same for every model'}
    # Only x is permuted (y fixed): n! pairings, all of them enumerated up to 8 models, sampled beyond.
    test = permutation_test(
        (x,), lambda a: spearmanr(a, y).statistic, permutation_type='pairings',
        n_resamples=math.factorial(n) if n <= 8 else 20000, alternative='two-sided', random_state=0,
    )  # fmt: skip
    rho, p = float(test.statistic), float(test.pvalue)
    result |= {'spearman': rho, 'p_value': p}
    if p >= ALPHA:
        return result | {'words': f'no association shown (rho {rho:+.2f}, p {p:.2f}, {n} models): the softer surface '
                                  'does not go with the stronger hull compression at 5 %'}  # fmt: skip
    if rho > 0:
        return result | {'words': f'yes (rho {rho:+.2f}, p {p:.3f}, {n} models): the models with the softer forces '
                                  'also compress the hull more, as the softening explanation predicts'}  # fmt: skip
    return result | {'words': f'the opposite (rho {rho:+.2f}, p {p:.3f}, {n} models): the models with the softer '
                              'forces compress the hull less'}  # fmt: skip


def softening_summary(record: dict[str, Any], rms_force: float | None, found: dict[str, Any]) -> dict[str, Any]:
    """metrics.json's ``softening_forces``: per model its force, stress and energy slopes with intervals, the force
    verdict, its Ehull compression slope from the benchmark (``found``: ``claims.science``), and the association.
    ``record``: a ``MliapSofteningData``'s dict; ``rms_force``: RMS of the compared DFT force components (eV/Å)."""
    dft_error = dft_relative_error(record, rms_force)
    compression = ehull_compression(found)
    sha256 = {entry['name']: entry['sha256'] for entry in record.get('models', {}).values()}
    rows, pairs = [], []
    for row in record.get('softening', []):
        if row['quantity'] != 'forces':
            continue
        name = row['model']
        others = {r['quantity']: r for r in record['softening'] if r['model'] == name}
        ehull = compression.get(name, {})
        entry = {
            'model': name, 'sha256': sha256.get(name), 'n': row['n'], 'n_parents': row['n_parents'],
            'slope': row['slope'], 'slope_ci95': row['slope_ci95'], 'mae': row['mae'], 'rmse': row['rmse'],
            'verdict': force_verdict(row, dft_error),
            'stress_slope': others.get('stress', {}).get('slope'),
            'stress_slope_ci95': others.get('stress', {}).get('slope_ci95'),
            'energy_slope': others.get('energy', {}).get('slope'),
            'energy_slope_ci95': others.get('energy', {}).get('slope_ci95'),
            'ehull_task': ehull.get('task'), 'ehull_slope': ehull.get('slope'),
            'ehull_slope_ci95': ehull.get('slope_ci95'),
        }  # fmt: skip
        rows.append(entry)
        if entry['slope'] is not None and entry['ehull_slope'] is not None:
            pairs.append((entry['slope'], entry['ehull_slope']))
    failures = record.get('failures', {})
    return {
        'n_parents': record.get('n_parents'),
        'n_configurations': record.get('n_configurations'),
        'dft_numerical_error': {name: change['largest'] for name, change in record.get('numerical_error', {}).items()},
        'dft_relative_force_error': dft_error,
        'rms_dft_force': rms_force,
        'dft_failures': len(failures.get('dft', {})),
        'model_failures': {key: len(value) for key, value in sorted(failures.get('models', {}).items())},
        'models': rows,
        'association': association(pairs),
    }
