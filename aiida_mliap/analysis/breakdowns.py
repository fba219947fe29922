"""Errors broken down by structure class, and the symmetry hypothesis tested against systematic softening.

The study this project reproduces reports the largest underprediction for structures with many symmetry degrees of
freedom (DOF). Its rival explanation is systematic softening of the potential energy surface, which would make the
error follow size and energy scale instead. ``symmetry_hypothesis`` measures both: rank correlation of the signed
error with DOF, and the same correlation once the number of atoms and the DFT energy are controlled for.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .metrics import error_metrics

DOF_BINS = [-0.5, 0.5, 3.5, 10.5, 30.5, 100.5, math.inf]
DOF_BIN_LABELS = ['0', '1-3', '4-10', '11-30', '31-100', '>100']
EHULL_BINS = [-math.inf, 1e-6, 0.025, 0.05, 0.1, 0.2, math.inf]  # eV/atom
EHULL_BIN_LABELS = ['on hull', '0-25', '25-50', '50-100', '100-200', '>200 meV/atom']
BREAKDOWNS = ('crystal_system', 'dof_bin', 'spacegroup_initial', 'symmetry_change', 'ehull_bin', 'element')


def with_bins(table: pd.DataFrame) -> pd.DataFrame:
    """``dof_bin`` and ``ehull_bin`` (DFT energy above hull) columns."""
    table = table.copy()
    table['dof_bin'] = pd.cut(pd.to_numeric(table['dof']), DOF_BINS, labels=DOF_BIN_LABELS)
    table['ehull_bin'] = pd.cut(pd.to_numeric(table['e_above_hull_dft']), EHULL_BINS, labels=EHULL_BIN_LABELS)
    return table


def breakdown(table: pd.DataFrame, by: str, quantity: str = 'energy') -> pd.DataFrame:
    """Error metrics of ``quantity`` (see ``metrics.QUANTITIES``) per model, task and value of ``by``.

    ``by='element'`` counts a structure once under each of its elements.
    """
    if by not in BREAKDOWNS:
        raise ValueError(f'unknown breakdown `{by}`: choose from {BREAKDOWNS}')
    table = with_bins(table)
    if by == 'element':
        table = table.assign(element=table['chemsys'].str.split('-')).explode('element')
    rows = []
    for (model, task, value), group in table.groupby(['model', 'task', by], observed=True, sort=True, dropna=True):
        metrics = error_metrics(group[f'error_{quantity}'])
        if metrics['n']:
            rows.append({'model': model, 'task': task, by: value, **metrics})
    return pd.DataFrame(rows)


def _ranks(matrix: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(matrix, axis=-1)  # ties share their average rank, as pandas' rank does


def _resampled_ranks(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Average ranks of ``values[index]`` row by row, without sorting: a value's rank within a resample is the count of
    drawn values below it plus half the count of its ties (plus one half). ~10x faster than ranking each resample."""
    _, classes = np.unique(values, return_inverse=True)
    width, rows = int(classes.max()) + 1, index.shape[0]
    drawn = classes[index]
    counts = np.bincount((drawn + width * np.arange(rows)[:, None]).ravel(), minlength=rows * width)
    counts = counts.reshape(rows, width)
    below = np.cumsum(counts, axis=1) - counts
    return np.take_along_axis(below, drawn, 1) + (np.take_along_axis(counts, drawn, 1) + 1) / 2


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b``."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    with np.errstate(invalid='ignore', divide='ignore'):
        return (a * b).sum(axis=-1) / np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))


def _residual(values: np.ndarray, controls: np.ndarray) -> np.ndarray:
    """Each row of ``values`` minus its least-squares fit on an intercept and the control rows (last axis: samples)."""
    design = np.concatenate([np.ones_like(values)[:, None, :], controls], axis=1)  # (rows, k + 1, samples)
    gram = np.einsum('rks,rls->rkl', design, design)
    projected = np.einsum('rks,rs->rk', design, values)
    beta = np.einsum('rkl,rl->rk', np.linalg.pinv(gram), projected)
    return values - np.einsum('rks,rk->rs', design, beta)


def _statistics(columns: list[np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    """The four rank correlations for each row of ``index`` (the sample itself, or bootstrap resamples) at once;
    ``columns``: signed error, DOF, atoms, DFT energy."""
    e, d, a, en = (_resampled_ranks(column, index) for column in columns)
    controls = np.stack([a, en], axis=1)
    return {
        'rho_dof': _correlation(e, d),
        'rho_n_atoms': _correlation(e, a),
        'rho_energy_dft': _correlation(e, en),
        'rho_dof_controlled': _correlation(_residual(e, controls), _residual(d, controls)),
    }


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(_correlation(_ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))))


def partial_spearman(x: np.ndarray, y: np.ndarray, controls: np.ndarray) -> float:
    """Rank correlation of ``x`` and ``y`` with the (linear, on ranks) effect of the ``controls`` columns removed."""
    ranked = _ranks(np.asarray(controls, float).T)[None]
    residuals = (_residual(_ranks(np.asarray(v, float))[None], ranked) for v in (x, y))
    return float(_correlation(*residuals)[0])


def symmetry_hypothesis(
    table: pd.DataFrame, quantity: str = 'energy', n_bootstrap: int = 1000, seed: int = 0
) -> list[dict[str, Any]]:
    """Per model and task: Spearman rho of the signed error with DOF, with atoms and with DFT energy, and rho with DOF
    controlling for both, each with a bootstrap 95 % percentile interval (``n_bootstrap`` resamples of the
    structures, seeded), and what the numbers say."""
    rows = []
    for (model, task), group in table.groupby(['model', 'task'], sort=True):
        data = group[[f'error_{quantity}', 'dof', 'n_atoms', 'energy_per_atom_dft']].apply(pd.to_numeric).dropna()
        if len(data) < 10:
            continue
        columns = [data[c].to_numpy(float) for c in data.columns]
        point = _statistics(columns, np.arange(len(data))[None])
        generator = np.random.default_rng(seed)
        resampled: dict[str, list[np.ndarray]] = {key: [] for key in point}
        for start in range(0, n_bootstrap, 100):  # chunks bound the memory: 100 x n values per array
            index = generator.integers(0, len(data), (min(100, n_bootstrap - start), len(data)))
            for key, values in _statistics(columns, index).items():
                resampled[key].append(values)
        row: dict[str, Any] = {'model': model, 'task': task, 'n': len(data)}
        for key, value in point.items():
            low, high = np.nanpercentile(np.concatenate(resampled[key]), [2.5, 97.5])
            row[key], row[f'{key}_ci'] = float(value[0]), (float(low), float(high))
        row['verdict'] = verdict(row)
        rows.append(row)
    return rows


def verdict(row: dict[str, Any]) -> str:
    """Plain words for the signs and intervals: a negative rho means more DOF, more underprediction."""
    low, high = row['rho_dof_ci']
    controlled_high = row['rho_dof_controlled_ci'][1]
    if high < 0 and controlled_high < 0:
        return 'more DOF, more underprediction, also with atoms and energy scale controlled: supports the hypothesis'
    if high < 0:
        return (
            'more DOF, more underprediction, but not beyond what atoms and energy scale explain: '
            'consistent with systematic softening'
        )
    if low > 0:
        return 'more DOF, less underprediction: contradicts the hypothesis'
    return 'no significant rank correlation with DOF at 95 %'
