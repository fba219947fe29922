"""Errors broken down by structure class (crystal system, DOF, DFT Ehull, element...): the descriptive tables beside
the tests of the study's claims (``claims``)."""

from __future__ import annotations

import math

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
