"""The softening figures: model against DFT force components per model, and each model's force slope against its
Ehull compression slope (the two measures the rival explanation ties together)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .plots import _pyplot, save_figure


def force_parity(pairs: pd.DataFrame, summary: dict[str, Any], plt):
    """One panel per model: its force components on DFT's, coloured by perturbation, the diagonal and the fitted
    slope through the origin (title: slope, interval, MAE)."""
    forces = pairs[pairs['quantity'] == 'forces']
    if forces.empty:
        return None
    rows = {row['model']: row for row in summary['models']}
    models = sorted(forces['model'].unique())
    columns = min(4, len(models))
    lines = math.ceil(len(models) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(3.3 * columns, 3.3 * lines), squeeze=False)
    limit = float(np.abs(forces[['dft', 'mliap']].to_numpy(float)).max()) * 1.05
    kinds = forces['perturbation'].str.replace(r'_\d+$', '', regex=True)
    colours = {kind: plt.get_cmap('tab10')(i) for i, kind in enumerate(sorted(kinds.unique()))}
    for axis, model in zip(axes.ravel(), models, strict=False):
        part = forces[forces['model'] == model]
        for kind, colour in colours.items():
            chosen = part[kinds.loc[part.index] == kind]
            axis.scatter(chosen['dft'], chosen['mliap'], s=6, alpha=0.6, color=colour, label=kind)
        axis.plot([-limit, limit], [-limit, limit], color='grey', linestyle='--', linewidth=0.8)
        row = rows.get(model, {})
        if row.get('slope') is not None:
            axis.plot([-limit, limit], [-limit * row['slope'], limit * row['slope']], color='black', linewidth=1)
        interval = row.get('slope_ci95')
        spread = f' [{interval[0]:.2f}, {interval[1]:.2f}]' if interval else ''
        scale = '-' if row.get('slope') is None else f'{row["slope"]:.3f}{spread}, MAE {row["mae"]:.3f} eV/Å'
        axis.set_title(f'{model}\ns = {scale}', fontsize=8)
        axis.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect='equal')
        axis.tick_params(labelsize=7)
    for axis in axes.ravel()[len(models) :]:
        axis.set_visible(False)
    axes[0, 0].legend(fontsize=7, markerscale=2)
    figure.supxlabel('DFT force component (eV/Å)', fontsize=9)
    figure.supylabel('model force component (eV/Å)', fontsize=9)
    figure.tight_layout()
    return figure


def softening_vs_compression(summary: dict[str, Any], plt):
    """Each model's force slope (softening, measured) against its Ehull slope (compression, from the benchmark),
    both with their 95 % intervals; dashed lines at 1 (no softening, no compression)."""
    rows = [row for row in summary['models'] if row['slope'] is not None and row['ehull_slope'] is not None]
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(6.5, 5))
    for i, row in enumerate(rows):
        x, y = row['ehull_slope'], row['slope']
        xlow, xhigh = row['ehull_slope_ci95'] or (x, x)
        ylow, yhigh = row['slope_ci95'] or (y, y)
        colour = plt.get_cmap('tab10')(i % 10)
        axis.errorbar(x, y, xerr=[[x - xlow], [xhigh - x]], yerr=[[y - ylow], [yhigh - y]], fmt='o', capsize=3,
                      color=colour, label=f'{row["model"]} ({row["ehull_task"]})')  # fmt: skip
    axis.axhline(1, color='grey', linestyle='--', linewidth=0.8)
    axis.axvline(1, color='grey', linestyle='--', linewidth=0.8)
    words = summary['association']
    rho = '' if words['spearman'] is None else f': Spearman rho {words["spearman"]:+.2f}, p {words["p_value"]:.2f}'
    axis.set(xlabel='slope of model Ehull on DFT Ehull (benchmark; < 1: compressed)',
             ylabel='slope of model forces on DFT forces (< 1: softer)',
             title=f'{words["n_models"]} models{rho}')  # fmt: skip
    axis.legend(fontsize=7, loc='best')
    figure.tight_layout()
    return figure


def make_softening_plots(pairs: pd.DataFrame, summary: dict[str, Any], directory: Path) -> dict[str, Path]:
    """Both figures as PNG and SVG under ``directory``; returns the PNG paths of those drawn."""
    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, figure in (('force_parity', force_parity(pairs, summary, plt)),
                         ('softening_vs_compression', softening_vs_compression(summary, plt))):  # fmt: skip
        if figure is not None:
            made[name] = save_figure(figure, directory / name, plt)
    return made
