"""The report's figures (matplotlib, PNG and SVG), each from the results table alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .breakdowns import DOF_BIN_LABELS, with_bins

MEV = 1000.0


def _pyplot():
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def _series(table: pd.DataFrame):
    """(title, rows) per model and task, in a stable order."""
    for (model, task), rows in table.groupby(['model', 'task'], sort=True):
        yield f'{model} / {task}', rows


def parity(table: pd.DataFrame, plt):
    groups = list(_series(table))
    figure, axes = plt.subplots(1, max(1, len(groups)), figsize=(4.2 * max(1, len(groups)), 4.2), squeeze=False)
    for axis, (title, rows) in zip(axes[0], groups, strict=False):
        x, y = rows['energy_per_atom_dft'].astype(float), rows['energy_per_atom_model'].astype(float)
        axis.scatter(x, y, s=8, alpha=0.6)
        low, high = np.nanmin([x.min(), y.min()]), np.nanmax([x.max(), y.max()])
        axis.plot([low, high], [low, high], color='black', linewidth=0.8)
        axis.set(title=title, xlabel='DFT energy (eV/atom, MP2020)', ylabel='model energy (eV/atom)')
    return figure


def error_distribution(table: pd.DataFrame, plt):
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for title, rows in _series(table):
        errors = MEV * rows['error_energy'].dropna().astype(float)
        if len(errors):
            axis.hist(errors, bins=50, histtype='step', linewidth=1.5, label=f'{title} (mean {errors.mean():+.1f})')
    axis.axvline(0, color='black', linewidth=0.8)
    axis.set(xlabel='model - DFT energy (meV/atom)', ylabel='structures', title='Signed error of the total energy')
    axis.legend(fontsize=8)
    return figure


def _boxes(table: pd.DataFrame, column: str, order: list[str], xlabel: str, plt):
    groups = list(_series(table))
    figure, axes = plt.subplots(len(groups), 1, figsize=(8, 3.2 * max(1, len(groups))), squeeze=False)
    for axis, (title, rows) in zip(axes[:, 0], groups, strict=False):
        present = [value for value in order if (rows[column] == value).any()]
        data = [MEV * rows.loc[rows[column] == value, 'error_energy'].dropna().astype(float) for value in present]
        axis.boxplot(data, flierprops={'markersize': 3, 'alpha': 0.5})  # outliers shown: collapses are findings
        axis.set_xticks(
            range(1, len(present) + 1), [f'{value}\n(n={len(d)})' for value, d in zip(present, data, strict=True)]
        )
        axis.axhline(0, color='black', linewidth=0.8)
        axis.set(title=title, xlabel=xlabel, ylabel='model - DFT (meV/atom)')
    figure.tight_layout()
    return figure


def error_vs_dof(table: pd.DataFrame, plt):
    return _boxes(with_bins(table), 'dof_bin', DOF_BIN_LABELS, 'symmetry degrees of freedom (DFT structure)', plt)


def error_by_crystal_system(table: pd.DataFrame, plt):
    order = ['triclinic', 'monoclinic', 'orthorhombic', 'tetragonal', 'trigonal', 'hexagonal', 'cubic']
    return _boxes(table, 'crystal_system', order, 'crystal system (DFT structure)', plt)


def fixsym_gap(table: pd.DataFrame, plt):
    rows = table[table['task'] == 'relax_fixsym'].dropna(subset=['fixsym_energy_gap_per_atom', 'dof'])
    if rows.empty:
        return None
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for model, part in rows.groupby('model', sort=True):
        axis.scatter(part['dof'].astype(float), MEV * part['fixsym_energy_gap_per_atom'].astype(float), s=10,
                     alpha=0.6, label=model)  # fmt: skip
    axis.set_xscale('symlog', linthresh=1)
    axis.set(xlabel='symmetry DOF', ylabel='E(fixed symmetry) - E(free) (meV/atom)',
             title='Energy the symmetry constraint leaves on the table')  # fmt: skip
    axis.legend(fontsize=8)
    return figure


FIGURES = {
    'parity': parity,
    'error_distribution': error_distribution,
    'error_vs_dof': error_vs_dof,
    'error_by_crystal_system': error_by_crystal_system,
    'fixsym_gap': fixsym_gap,
}


def make_plots(table: pd.DataFrame, directory: Path) -> dict[str, Path]:
    """Every figure that the table has data for, as ``<name>.png`` and ``<name>.svg``; returns the PNG paths."""
    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    made = {}
    data = table.dropna(subset=['error_energy'])
    for name, draw in FIGURES.items():
        figure = draw(data, plt) if not data.empty else None
        if figure is None:
            continue
        for suffix in ('png', 'svg'):
            figure.savefig(directory / f'{name}.{suffix}', dpi=110, bbox_inches='tight')
        plt.close(figure)
        made[name] = directory / f'{name}.png'
    return made
