"""Error and stability-classification metrics over a results table (``load_results``), Matbench Discovery's way.

Classification follows Riebesell et al., "A framework to evaluate machine learning crystal stability predictions",
Nat. Mach. Intell. 7, 836 (2025), arXiv:2308.14920 (``matbench_discovery.metrics.discovery``): a material is stable
when its energy above hull is <= 0 (``STABILITY_THRESHOLD``), DFT decides the truth, and the discovery acceleration
factor is precision divided by the prevalence of stable materials in the set.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

STABILITY_THRESHOLD = 0.0

# quantity -> (model column, DFT column); errors are model - DFT in eV/atom.
QUANTITIES = {
    'energy': ('energy_per_atom_model', 'energy_per_atom_dft'),
    'e_form': ('e_form_model', 'e_form_dft'),
    'e_above_hull': ('e_above_hull_model', 'e_above_hull_dft'),
    'e_above_hull_dftref': ('e_above_hull_model_dftref', 'e_above_hull_dft'),
}
QUANTITY_NAMES = {
    'energy': 'total energy',
    'e_form': 'formation energy',
    'e_above_hull': 'Ehull (model hull)',
    'e_above_hull_dftref': 'Ehull (DFT-ref hull)',
}


def error_metrics(errors: pd.Series | np.ndarray) -> dict[str, float]:
    """MAE, mean signed error, RMSE (eV/atom) and fraction underpredicted of signed errors (model - DFT)."""
    values = np.asarray(pd.Series(errors).dropna(), dtype=float)
    if not len(values):
        return {'n': 0, 'mae': math.nan, 'me': math.nan, 'rmse': math.nan, 'fraction_under': math.nan}
    return {
        'n': len(values),
        'mae': float(np.mean(np.abs(values))),
        'me': float(np.mean(values)),
        'rmse': float(np.sqrt(np.mean(values**2))),
        'fraction_under': float(np.mean(values < 0)),
    }


def classification_metrics(
    e_above_hull_true: pd.Series | np.ndarray,
    e_above_hull_pred: pd.Series | np.ndarray,
    threshold: float = STABILITY_THRESHOLD,
) -> dict[str, float]:
    """Stability classification against DFT: tp, fp, fn, tn, n, precision, recall, F1, accuracy, DAF, n_failed.

    As Matbench Discovery's ``classify_stable(fillna=True)``: a structure without a prediction (the model failed on
    it) counts as predicted unstable and stays in the denominator (``n_failed`` says how many); only rows without a
    DFT value are left out."""
    true = np.asarray(e_above_hull_true, float)
    pred = np.asarray(e_above_hull_pred, float)
    known = ~np.isnan(true)
    true, pred = true[known], pred[known]
    failed = np.isnan(pred)
    actual = true <= threshold
    predicted = ~failed & (np.where(failed, np.inf, pred) <= threshold)
    counts = (actual & predicted, ~actual & predicted, actual & ~predicted, ~actual & ~predicted)
    return classification_from_counts(*(int(mask.sum()) for mask in counts), int(failed.sum()))


def classification_from_counts(tp: int, fp: int, fn: int, tn: int, n_failed: int) -> dict[str, float]:
    """``classification_metrics`` from its confusion counts (which add up over disjoint sets of structures)."""
    n = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    prevalence = (tp + fn) / n if n else math.nan
    return {
        'n': n,
        'tp': tp,
        'fp': fp,
        'fn': fn,
        'tn': tn,
        'n_failed': n_failed,
        'precision': precision,
        'recall': recall,
        'f1': 2 * precision * recall / (precision + recall) if precision + recall > 0 else math.nan,
        'accuracy': (tp + tn) / n if n else math.nan,
        'prevalence': prevalence,
        'daf': precision / prevalence if prevalence and not math.isnan(precision) else math.nan,
    }


HULLS = {'model_hull': 'e_above_hull_model', 'dftref_hull': 'e_above_hull_model_dftref'}


def group_metrics(rows: pd.DataFrame) -> dict[str, Any]:
    """Error metrics of every quantity and classification on both hull conventions, for rows of one model and task.

    The one implementation behind the report's metrics.json and the thermodynamics summary (JSON-safe: NaN -> None).
    """
    rows = add_errors(rows) if 'error_energy' not in rows else rows
    metrics = {
        'errors': {quantity: error_metrics(rows[f'error_{quantity}']) for quantity in QUANTITIES},
        'classification': {
            hull: classification_metrics(rows['e_above_hull_dft'], rows[column]) for hull, column in HULLS.items()
        },
    }
    return json_safe(metrics)


def record_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """``group_metrics`` of thermo records (one model and task)."""
    columns = sorted({column for pair in QUANTITIES.values() for column in pair} | set(HULLS.values()))
    frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in records], columns=columns, dtype=float)
    return group_metrics(frame)


def merge_group_metrics(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """``group_metrics`` of the union of disjoint sets of rows from each set's: errors from their sums (n x mean),
    classification from the confusion counts. Equal to computing them over all rows, to rounding."""
    errors = {}
    for quantity in QUANTITIES:
        stats = [part['errors'][quantity] for part in parts if part['errors'][quantity]['n']]
        n = sum(stat['n'] for stat in stats)
        if not n:
            errors[quantity] = error_metrics([])
            continue
        total = {key: sum(stat['n'] * stat[key] for stat in stats) for key in ('mae', 'me', 'fraction_under')}
        errors[quantity] = {
            'n': n,
            'mae': total['mae'] / n,
            'me': total['me'] / n,
            'rmse': math.sqrt(sum(stat['n'] * stat['rmse'] ** 2 for stat in stats) / n),
            'fraction_under': round(total['fraction_under']) / n,
        }
    classification = {
        hull: classification_from_counts(
            *(sum(part['classification'][hull][key] for part in parts) for key in ('tp', 'fp', 'fn', 'tn', 'n_failed'))
        )
        for hull in HULLS
    }
    return json_safe({'errors': errors, 'classification': classification})


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN -> None, numpy scalars -> Python, tuples -> lists, keys -> str."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if hasattr(value, 'item'):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def add_errors(table: pd.DataFrame) -> pd.DataFrame:
    """Signed (``error_<quantity>``) and absolute (``abs_error_<quantity>``) errors, model - DFT, eV/atom."""
    table = table.copy()
    for quantity, (model, dft) in QUANTITIES.items():
        table[f'error_{quantity}'] = table[model] - table[dft]
        table[f'abs_error_{quantity}'] = table[f'error_{quantity}'].abs()
    return table


def summary_metrics(table: pd.DataFrame) -> dict[str, Any]:
    """Per model and task: error metrics of every quantity and classification on both hull conventions.

    Scored over the structures the model was given: a row without any calculation (``status`` ``not_run``: left out
    by ``max_atoms``, or never reached by a job) is not the model's failure and is left out; a structure the model
    failed on stays in and counts as predicted unstable (Matbench Discovery's ``fillna``)."""
    table = add_errors(table) if 'error_energy' not in table else table
    if 'status' in table:
        table = table[table['status'] != 'not_run']
    summary: dict[str, Any] = {}
    for (model, sha256, task), rows in table.groupby(['model', 'model_sha256', 'task'], sort=True):
        entry: dict[str, Any] = {'model': model, 'model_sha256': sha256, 'task': task, 'n_rows': len(rows)}
        entry.update(group_metrics(rows))
        summary[f'{model}/{task}'] = entry
    return summary


def headline_table(table: pd.DataFrame | None, summary: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per model, task and quantity: n, MAE, mean signed error (meV/atom), fraction underpredicted.

    ``summary``: ``summary_metrics(table)`` when the caller has it already."""
    rows = []
    for entry in (summary if summary is not None else summary_metrics(table)).values():
        for quantity, metrics in entry['errors'].items():
            if metrics['n']:
                rows.append(
                    {
                        'model': entry['model'],
                        'task': entry['task'],
                        'quantity': QUANTITY_NAMES[quantity],
                        'n': metrics['n'],
                        'MAE meV/atom': 1000 * metrics['mae'],
                        'mean signed meV/atom': 1000 * metrics['me'],
                        'RMSE meV/atom': 1000 * metrics['rmse'],
                        'underpredicted': metrics['fraction_under'],
                    }
                )
    return pd.DataFrame(rows)


def as_percent(headline: pd.DataFrame) -> pd.DataFrame:
    """The headline table for reading: the underpredicted fraction as a percentage."""
    if headline.empty:
        return headline
    return headline.assign(underpredicted=headline['underpredicted'].map('{:.0%}'.format))
