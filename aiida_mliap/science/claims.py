"""The study's three claims, per model and task, tested against its two rival explanations.

Claims: (1) universal potentials systematically underpredict Ehull, formation and total energy; (2) even the best
model's Ehull MAE exceeds ~30 meV/atom; (3) the error exceeds ~40 meV/atom for structures with many symmetry degrees of
freedom (DOF), and symmetry is the cause. Rivals: *instability* (structures far above the hull come out too low, and
high-DOF structures tend to be the less stable ones) and *softening* (a too-flat potential energy surface); both
compress the energy landscape toward the hull.

Entries of one chemical system share a hull and its errors, so they are not independent: every interval here comes
from a bootstrap that resamples whole chemical systems (seeded, reproducible). Resampling clusters with replacement is
weighting each cluster by how often it was drawn, so sums and least-squares normal equations are built once per
cluster and each resample only reweights them: memory is bounded by the number of chemical systems, not of rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .metrics import QUANTITIES, QUANTITY_NAMES

# quantity of the metrics.json contract -> the same quantity in ``metrics.QUANTITIES`` (its model and DFT columns).
CONTRACT_QUANTITIES = {
    'e_above_hull_model': 'e_above_hull',
    'e_above_hull_dftref': 'e_above_hull_dftref',
    'e_form': 'e_form',
    'energy': 'energy',
}
CLAIM_QUANTITIES = {name: QUANTITIES[quantity] for name, quantity in CONTRACT_QUANTITIES.items()}
CLAIM_NAMES = {name: QUANTITY_NAMES[quantity] for name, quantity in CONTRACT_QUANTITIES.items()}
EHULL_MAE_CLAIM = 0.030  # eV/atom: claim 2
HIGH_DOF_MAE_CLAIM = 0.040  # eV/atom: claim 3, for structures with more than HIGH_DOF degrees of freedom
HIGH_DOF = 10
EHULL_BINS = [-math.inf, 1e-6, 0.05, 0.2, math.inf]  # DFT Ehull, eV/atom
EHULL_BIN_LABELS = ['on hull', '0-50', '50-200', '>200 meV/atom']
MIN_CLUSTERS = 5  # fewer chemical systems than this: no interval (a bootstrap over 2 clusters says nothing)
MIN_CHEMSYS_ROWS = 5  # per-chemical-system softening slopes need this many entries
N_BOOTSTRAP, SEED = 1000, 0


def cluster_weights(clusters: pd.Series, n_bootstrap: int = N_BOOTSTRAP, seed: int = SEED) -> np.ndarray | None:
    """(n_bootstrap, n_clusters) multiplicities of each cluster (a chemical system, a parent structure; codes in
    sorted order) in each resample; None below ``MIN_CLUSTERS``. The draws depend only on the seed and the number of
    clusters."""
    n_clusters = clusters.nunique()
    if n_clusters < MIN_CLUSTERS:
        return None
    draws = np.random.default_rng(seed).integers(0, n_clusters, (n_bootstrap, n_clusters))
    offsets = n_clusters * np.arange(n_bootstrap)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n_bootstrap * n_clusters).reshape(n_bootstrap, -1)


def cluster_codes(clusters: pd.Series) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(clusters, sort=True)
    return codes, len(uniques)


def interval95(values: np.ndarray) -> list[float] | None:
    finite = values[np.isfinite(values)]
    return [float(v) for v in np.percentile(finite, [2.5, 97.5])] if len(finite) else None


def _span(values, central: bool = False) -> float:
    """The range of ``values``; ``central``: of their middle 90 %, so that one outlier (a 300-DOF cell among cells of
    at most 30) does not stretch what "across the data" means."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return 0.0
    low, high = np.percentile(values, [5, 95]) if central else (values.min(), values.max())
    return float(high - low)


def uninformative(result: dict[str, Any], spans: dict[str, tuple[float, float]]) -> list[str]:
    """The keys whose 95 % interval says less than the data: an interval on a coefficient of x whose width times the
    range of the middle 90 % of x exceeds the whole range of the response (for a mean, x spans 1) admits effects
    across typical data larger than anything observed, e.g. a DOF coefficient of [-146, +0.04] meV/atom per DOF. The
    report flags them; verdicts drawn from them say so."""
    found = []
    for key, (x_span, y_span) in spans.items():
        interval = result.get(f'{key}_ci95')
        if interval and (interval[1] - interval[0]) * x_span > y_span:
            found.append(key)
    return found


def _cluster_sums(values: np.ndarray, codes: np.ndarray, n_clusters: int) -> np.ndarray:
    return np.bincount(codes, weights=values, minlength=n_clusters)


def error_claims(
    frame: pd.DataFrame, model_column: str, dft_column: str, n_bootstrap: int = N_BOOTSTRAP, seed: int = SEED
) -> dict[str, Any]:
    """n, MAE, mean signed error and fraction underpredicted of model - DFT over the rows where both are defined, with
    chemical-system bootstrap intervals of the MAE and the mean."""
    rows = frame[[model_column, dft_column, 'chemsys']].dropna()
    errors = (rows[model_column].astype(float) - rows[dft_column].astype(float)).to_numpy()
    result: dict[str, Any] = {'n': len(errors), 'n_chemsys': int(rows['chemsys'].nunique())}
    if not len(errors):
        empty = dict.fromkeys(('mae', 'mean_signed', 'fraction_under', 'mae_ci95', 'mean_signed_ci95'))
        return result | empty | {'uninformative': []}
    result |= {
        'mae': float(np.mean(np.abs(errors))),
        'mean_signed': float(np.mean(errors)),
        'fraction_under': float(np.mean(errors < 0)),
        'mae_ci95': None,
        'mean_signed_ci95': None,
    }
    weights = cluster_weights(rows['chemsys'], n_bootstrap, seed)
    if weights is not None:
        codes, n_clusters = cluster_codes(rows['chemsys'])
        count = weights @ _cluster_sums(np.ones_like(errors), codes, n_clusters)
        result['mae_ci95'] = interval95(weights @ _cluster_sums(np.abs(errors), codes, n_clusters) / count)
        result['mean_signed_ci95'] = interval95(weights @ _cluster_sums(errors, codes, n_clusters) / count)
    result['uninformative'] = uninformative(result, dict.fromkeys(('mae', 'mean_signed'), (1.0, _span(errors))))
    return result


def ols(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares coefficients (minimum norm where the design is rank-deficient, as statsmodels' pinv)."""
    return np.linalg.lstsq(design, target, rcond=None)[0]


def bootstrap_ols(design: np.ndarray, target: np.ndarray, codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n_bootstrap, k) coefficients of the least squares over each cluster resample: per-cluster normal equations,
    reweighted. A resample that lacks a crystal system leaves its indicator empty; pinv gives the rest as OLS would."""
    n_clusters = weights.shape[1]
    k = design.shape[1]
    grams = np.zeros((n_clusters, k, k))
    np.add.at(grams, codes, design[:, :, None] * design[:, None, :])
    moments = np.zeros((n_clusters, k))
    np.add.at(moments, codes, design * target[:, None])
    gram = np.einsum('bc,ckl->bkl', weights, grams)
    moment = weights @ moments
    return np.einsum('bkl,bl->bk', np.linalg.pinv(gram, hermitian=True), moment)


def dof_design(rows: pd.DataFrame, dof_column: str = 'dof') -> tuple[np.ndarray, list[str]]:
    """The controlled DOF regression's design: intercept, DOF, DFT Ehull, atoms, number of elements, and an indicator
    for each crystal system present except the first in alphabetical order (the baseline)."""
    systems = sorted(rows['crystal_system'].unique())
    columns = {
        'intercept': np.ones(len(rows)),
        dof_column: rows[dof_column].to_numpy(float),
        'e_above_hull_dft': rows['e_above_hull_dft'].to_numpy(float),
        'n_atoms': rows['n_atoms'].to_numpy(float),
        'n_elements': rows['chemsys'].str.count('-').to_numpy(float) + 1,
    }
    for system in systems[1:]:
        columns[f'crystal_system[{system}]'] = (rows['crystal_system'] == system).to_numpy(float)
    return np.column_stack(list(columns.values())), list(columns)


def regression_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows where the Ehull error on the model hull and every covariate of the DOF regression are defined, with
    ``ehull_error`` (model - DFT) and ``dof_per_atom``."""
    needed = ['e_above_hull_model', 'e_above_hull_dft', 'dof', 'n_atoms', 'chemsys', 'crystal_system']
    rows = table.dropna(subset=needed).copy()
    for column in ('e_above_hull_model', 'e_above_hull_dft', 'dof', 'n_atoms'):
        rows[column] = rows[column].astype(float)
    rows['ehull_error'] = rows['e_above_hull_model'] - rows['e_above_hull_dft']
    rows['dof_per_atom'] = rows['dof'] / rows['n_atoms']
    return rows


def _fit(rows: pd.DataFrame, design: np.ndarray, target: np.ndarray, weights: np.ndarray | None):
    point = ols(design, target)
    if weights is None:
        return point, None
    codes, _ = cluster_codes(rows['chemsys'])
    return point, bootstrap_ols(design, target, codes, weights)


def softening(rows: pd.DataFrame, n_bootstrap: int = N_BOOTSTRAP, seed: int = SEED) -> dict[str, Any]:
    """Pooled OLS of the model's Ehull on the DFT Ehull: slope < 1 means the model compresses the landscape toward
    the hull (what instability and softening both predict)."""
    design = np.column_stack([np.ones(len(rows)), rows['e_above_hull_dft'].to_numpy(float)])
    weights = cluster_weights(rows['chemsys'], n_bootstrap, seed)
    point, resampled = _fit(rows, design, rows['e_above_hull_model'].to_numpy(float), weights)
    result = {
        'slope': float(point[1]),
        'intercept': float(point[0]),
        'slope_ci95': None if resampled is None else interval95(resampled[:, 1]),
        'n': len(rows),
    }
    spans = {'slope': (_span(rows['e_above_hull_dft'], True), _span(rows['e_above_hull_model']))}
    return result | {'uninformative': uninformative(result, spans)}


def softening_by_chemsys(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """The same slope within each chemical system with at least ``MIN_CHEMSYS_ROWS`` entries and a spread of DFT
    Ehull (one hull each: no cross-system mixing)."""
    found = []
    for chemsys, group in rows.groupby('chemsys', sort=True):
        if len(group) < MIN_CHEMSYS_ROWS or group['e_above_hull_dft'].nunique() < 2:
            continue
        design = np.column_stack([np.ones(len(group)), group['e_above_hull_dft'].to_numpy(float)])
        intercept, slope = ols(design, group['e_above_hull_model'].to_numpy(float))
        found.append({'chemsys': chemsys, 'slope': float(slope), 'intercept': float(intercept), 'n': len(group)})
    return found


def dof_effect(rows: pd.DataFrame, n_bootstrap: int = N_BOOTSTRAP, seed: int = SEED) -> dict[str, Any]:
    """OLS of the signed Ehull error (model hull) on DOF with DFT Ehull, atoms, elements and crystal system as
    covariates; the same with DOF per atom; DOF alone (what a plot of error against DOF shows); and the DFT-Ehull
    coefficient (the instability signal). Intervals by the chemical-system bootstrap."""
    weights = cluster_weights(rows['chemsys'], n_bootstrap, seed)
    target = rows['ehull_error'].to_numpy(float)
    result: dict[str, Any] = {'n': len(rows), 'n_chemsys': int(rows['chemsys'].nunique())}
    design, names = dof_design(rows)
    point, resampled = _fit(rows, design, target, weights)
    result['covariates'] = names
    for key, index in (('coef_dof', 1), ('coef_e_above_hull_dft', 2)):
        result[key] = float(point[index])
        result[f'{key}_ci95'] = None if resampled is None else interval95(resampled[:, index])
    per_atom, _ = dof_design(rows, 'dof_per_atom')
    point, resampled = _fit(rows, per_atom, target, weights)
    result['coef_dof_per_atom'] = float(point[1])
    result['coef_dof_per_atom_ci95'] = None if resampled is None else interval95(resampled[:, 1])
    alone = np.column_stack([np.ones(len(rows)), rows['dof'].to_numpy(float)])
    point, resampled = _fit(rows, alone, target, weights)
    result['coef_dof_alone'] = float(point[1])
    result['coef_dof_alone_ci95'] = None if resampled is None else interval95(resampled[:, 1])
    error_span, dof_span = _span(target), _span(rows['dof'], True)
    spans = {
        'coef_dof': (dof_span, error_span),
        'coef_dof_alone': (dof_span, error_span),
        'coef_dof_per_atom': (_span(rows['dof_per_atom'], True), error_span),
        'coef_e_above_hull_dft': (_span(rows['e_above_hull_dft'], True), error_span),
    }
    result['uninformative'] = uninformative(result, spans)
    return result


def dof_effect_by_ehull_bin(rows: pd.DataFrame, n_bootstrap: int = N_BOOTSTRAP, seed: int = SEED) -> list[dict]:
    """Within each DFT-Ehull bin, the slope of the signed Ehull error on DOF: a DOF effect that survives inside bins
    of equal stability is not instability in disguise."""
    bins = pd.cut(rows['e_above_hull_dft'], EHULL_BINS, labels=EHULL_BIN_LABELS)
    found = []
    for label in EHULL_BIN_LABELS:
        group = rows[bins == label]
        if len(group) < MIN_CHEMSYS_ROWS or group['dof'].nunique() < 2:
            continue
        design = np.column_stack([np.ones(len(group)), group['dof'].to_numpy(float)])
        weights = cluster_weights(group['chemsys'], n_bootstrap, seed)
        point, resampled = _fit(group, design, group['ehull_error'].to_numpy(float), weights)
        row = {
            'ehull_bin': label,
            'n': len(group),
            'coef_dof': float(point[1]),
            'coef_dof_ci95': None if resampled is None else interval95(resampled[:, 1]),
            'mean_signed': float(group['ehull_error'].mean()),
        }
        spans = {'coef_dof': (_span(group['dof'], True), _span(group['ehull_error']))}
        found.append(row | {'uninformative': uninformative(row, spans)})
    return found


def _side(interval: list[float] | None, value: float) -> int | None:
    """+1: the interval lies above ``value``; -1: below; 0: it contains it; None: no interval."""
    if interval is None:
        return None
    return 1 if interval[0] > value else -1 if interval[1] < value else 0


def _holds(interval: list[float] | None, value: float, holds_when: int) -> str:
    """'holds' when the interval lies on the ``holds_when`` side (+1 above, -1 below) of ``value``."""
    side = _side(interval, value)
    if side is None:
        return 'cannot tell (too few chemical systems)'
    return 'cannot tell at 95 %' if side == 0 else 'holds' if side == holds_when else 'does not hold'


def verdicts(claims: list[dict], soft: dict, dof: dict, high_dof: dict) -> dict[str, str]:
    """Plain words per claim for one model and task, from the intervals only."""
    by_quantity = {row['quantity']: row for row in claims}
    under = []
    for quantity, name in (('e_above_hull_model', 'Ehull'), ('e_form', 'formation'), ('energy', 'total')):
        row = by_quantity.get(quantity)
        if row and row['n']:
            mse = 1000 * row['mean_signed']
            under.append(f'{name} {mse:+.1f} meV/atom: {_holds(row["mean_signed_ci95"], 0.0, -1)}')
    ehull = by_quantity.get('e_above_hull_model') or {}
    claim_2 = 'no Ehull errors'
    if ehull.get('n'):
        mae = 1000 * ehull['mae']
        claim_2 = f'Ehull MAE {mae:.1f} meV/atom vs 30: {_holds(ehull["mae_ci95"], EHULL_MAE_CLAIM, 1)}'
    return {
        'claim_1_underprediction': '; '.join(under) or 'no errors',
        'claim_2_ehull_mae_above_30': claim_2,
        'claim_3_high_dof': _claim_3(dof, high_dof),
        'softening': _softening_words(soft),
    }


def _claim_3(dof: dict, high_dof: dict) -> str:
    """Claim 3 has two parts: the size of the error for many-DOF structures, and whether DOF is its cause once
    stability, size, chemistry and crystal system are accounted for."""
    if not dof.get('n'):
        return 'no structures with DOF and Ehull'
    size = f'no structures above {HIGH_DOF} DOF'
    if high_dof.get('n'):
        size = (
            f'Ehull MAE above {HIGH_DOF} DOF {1000 * high_dof["mae"]:.1f} meV/atom (n={high_dof["n"]}) vs 40: '
            f'{_holds(high_dof["mae_ci95"], HIGH_DOF_MAE_CLAIM, 1)}'
        )
    return f'{size}; cause: {dof_cause(dof)}'


def dof_cause(dof: dict) -> str:
    """What the regressions say about DOF as the cause of the Ehull error (negative coefficient: more DOF, more
    underprediction)."""
    controlled = _side(dof['coef_dof_ci95'], 0.0)
    alone = _side(dof['coef_dof_alone_ci95'], 0.0)
    instability = _side(dof['coef_e_above_hull_dft_ci95'], 0.0)
    if controlled is None:
        return 'cannot tell (too few chemical systems)'
    if controlled < 0:
        return 'more DOF, more underprediction beyond stability, size, chemistry and crystal system: supports it'
    if controlled > 0:
        return 'more DOF, less underprediction once controlled: contradicts it'
    if 'coef_dof' in dof.get('uninformative', []):  # "no effect once controlled" would read more than it holds
        return (
            'cannot tell: the controlled DOF interval is wider than the data (uninformative), not evidence of no effect'
        )
    if alone < 0 and instability < 0:
        return (
            'explained by instability: the error follows the DFT Ehull, with which DOF is correlated; '
            'no DOF effect once it is controlled'
        )
    if alone < 0:
        return 'explained by the controls (size, chemistry, crystal system): no DOF effect once they are controlled'
    if alone > 0:
        return 'as measured, more DOF goes with less underprediction (against the claim); no DOF effect once controlled'
    return 'no DOF effect at 95 %'


def _softening_words(soft: dict) -> str:
    if not soft.get('n'):
        return 'no Ehull pairs'
    side = _side(soft['slope_ci95'], 1.0)
    if side == 0 and 'slope' in soft.get('uninformative', []):
        return f'slope {soft["slope"]:.2f}: cannot tell, the interval is wider than the data (uninformative)'
    words = {
        -1: 'landscape compressed toward the hull (as instability and softening both predict)',
        0: 'no compression at 95 %',
        1: 'landscape stretched away from the hull',
        None: 'cannot tell (too few chemical systems)',
    }
    return f'slope {soft["slope"]:.2f}: {words[side]}'


def science(table: pd.DataFrame, n_bootstrap: int = N_BOOTSTRAP, seed: int = SEED) -> dict[str, list[dict]]:
    """``claims``, ``softening``, ``dof_effect`` (the metrics.json contract, docs/science.md) and the supporting
    ``softening_by_chemsys``, ``dof_effect_by_ehull_bin`` and ``verdicts`` rows, per model and task."""
    found: dict[str, list[dict]] = {
        key: [] for key in ('claims', 'softening', 'dof_effect', 'softening_by_chemsys', 'dof_effect_by_ehull_bin')
    }
    found['verdicts'] = []
    for (model, task), group in table.groupby(['model', 'task'], sort=True):
        key = {'model': model, 'task': task}
        claims = [
            key | {'quantity': quantity} | error_claims(group, *columns, n_bootstrap=n_bootstrap, seed=seed)
            for quantity, columns in CLAIM_QUANTITIES.items()
        ]
        found['claims'] += claims
        rows = regression_rows(group)
        soft = softening(rows, n_bootstrap, seed) if len(rows) > 2 else {'n': 0}
        dof = dof_effect(rows, n_bootstrap, seed) if len(rows) > 2 else {'n': 0}
        if soft['n']:
            found['softening'].append(key | soft)
            found['dof_effect'].append(key | dof)
        found['softening_by_chemsys'] += [key | row for row in softening_by_chemsys(rows)]
        found['dof_effect_by_ehull_bin'] += [key | row for row in dof_effect_by_ehull_bin(rows, n_bootstrap, seed)]
        high = error_claims(
            rows[rows['dof'] > HIGH_DOF], 'e_above_hull_model', 'e_above_hull_dft', n_bootstrap=n_bootstrap, seed=seed
        )
        found['verdicts'].append(key | verdicts(claims, soft, dof, high))
    return found


def controlled_error(rows: pd.DataFrame) -> pd.Series:
    """The signed Ehull error with the fitted effect of every control (DFT Ehull, atoms, elements, crystal system)
    removed and the DOF effect kept: a partial residual, what "error by DOF with controls" plots."""
    design, names = dof_design(rows)
    coefficients = ols(design, rows['ehull_error'].to_numpy(float))
    controls = [i for i, name in enumerate(names) if name not in ('intercept', 'dof')]
    return rows['ehull_error'] - design[:, controls] @ coefficients[controls]
