"""The report's figures (matplotlib, PNG and SVG), each from the results table alone; Ehull first.

Conventions a reader should not have to check: errors are model - DFT in meV/atom, histograms compared side by side
share one bin width, count axes are integers, every series is one model and task with the same colour everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..science.breakdowns import DOF_BIN_LABELS, with_bins
from ..science.claims import controlled_error, regression_rows, science

MEV = 1000.0
PARITY = (  # (model column, DFT column, axis name)
    ('e_above_hull_model', 'e_above_hull_dft', 'Ehull, model hull'),
    ('e_above_hull_model_dftref', 'e_above_hull_dft', 'Ehull, DFT-reference hull'),
    ('e_form_model', 'e_form_dft', 'formation energy'),
    ('energy_per_atom_model', 'energy_per_atom_dft', 'total energy'),
)
HISTOGRAM_BIN_MEV = 10.0
ROLLING_WINDOW = 0.04  # eV/atom of DFT Ehull per rolling-MAE window
MIN_PER_BIN = 5  # fewer structures than this in a bin or window: no mean drawn as if it were one


def _pyplot():
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def _series(table: pd.DataFrame):
    """(title, rows) per model and task, in a stable order."""
    for (model, task), rows in table.groupby(['model', 'task'], sort=True):
        yield f'{model} / {task}', rows


def _colours(table: pd.DataFrame, plt) -> dict[str, tuple]:
    titles = [title for title, _ in _series(table)]
    cycle = plt.get_cmap('tab10')
    return {title: cycle(i % 10) for i, title in enumerate(titles)}


def _integer_counts(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.yaxis.set_major_locator(MaxNLocator(integer=True))


def _robust_limits(values: np.ndarray) -> tuple[float, float]:
    """Axis limits at the data's extremes, or at five interquartile ranges beyond the quartiles where a collapse
    lies further out, so that one 3.5 eV/atom point does not squeeze every other point into a corner; the points
    beyond are drawn at the edge and counted."""
    q1, q3 = np.percentile(values, [25, 75])
    fence = 5 * max(q3 - q1, 1e-3)
    return max(float(values.min()), q1 - fence), min(float(values.max()), q3 + fence)


def parity(table: pd.DataFrame, plt):
    """Model against DFT for Ehull (both hulls), formation and total energy: one row per model and task. Far
    outliers (``_robust_limits``) are drawn as triangles on the edge and counted in the title."""
    groups = list(_series(table))
    figure, axes = plt.subplots(len(groups), 4, figsize=(13, 3.2 * len(groups)), squeeze=False)
    for row, (title, rows) in zip(axes, groups, strict=True):
        for axis, (model, dft, name) in zip(row, PARITY, strict=True):
            pair = rows[[model, dft]].apply(pd.to_numeric).dropna()
            note = ''
            if len(pair):
                low, high = _robust_limits(pair.to_numpy().ravel())
                clipped = pair.clip(low, high)
                outside = (clipped != pair).any(axis=1)
                axis.scatter(clipped.loc[~outside, dft], clipped.loc[~outside, model], s=5, alpha=0.5)
                if outside.any():
                    axis.scatter(clipped.loc[outside, dft], clipped.loc[outside, model], s=18, marker='^',
                                 color='tab:red', label='beyond the axes, shown at the edge')  # fmt: skip
                    note = f'; {int(outside.sum())} of {len(pair)} at the edge'
                axis.plot([low, high], [low, high], color='black', linewidth=0.8)
                axis.set(xlim=(low, high), ylim=(low, high))
            axis.set(xlabel=f'DFT {name} (eV/atom)', ylabel='model (eV/atom)', title=f'{title}\n{name}{note}')
            axis.title.set_fontsize(9)
    figure.tight_layout()
    return figure


def error_distribution(table: pd.DataFrame, plt):
    """Signed errors of Ehull (model hull) and of the total energy, every series on the same bins."""
    colours = _colours(table, plt)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for axis, column, name in zip(
        axes, ('error_e_above_hull', 'error_energy'), ('Ehull, model hull', 'total energy'), strict=True
    ):
        errors = MEV * pd.to_numeric(table[column]).dropna()
        if errors.empty:
            continue
        low, high = np.percentile(errors, [0.5, 99.5])
        bins = np.arange(np.floor(low / HISTOGRAM_BIN_MEV), np.ceil(high / HISTOGRAM_BIN_MEV) + 1) * HISTOGRAM_BIN_MEV
        for title, rows in _series(table):
            values = MEV * pd.to_numeric(rows[column]).dropna()
            if len(values):
                axis.hist(values.clip(bins[0], bins[-1]), bins=bins, histtype='step', linewidth=1.4,
                          color=colours[title], label=f'{title} (mean {values.mean():+.0f})')  # fmt: skip
        axis.axvline(0, color='black', linewidth=0.8)
        axis.set(xlabel=f'model - DFT {name} (meV/atom; {HISTOGRAM_BIN_MEV:g} meV bins, tails clipped)',
                 ylabel='structures')  # fmt: skip
        _integer_counts(axis)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def hull_distance(table: pd.DataFrame, plt):
    """Matbench Discovery's hull-distance figure: the Ehull error (model hull) against the DFT Ehull, with a rolling
    MAE; where the rolling MAE rises above the dashed diagonal, errors exceed the distance to the hull and the
    stability call is a coin toss."""
    colours = _colours(table, plt)
    tasks = sorted(table['task'].unique())
    figure, axes = plt.subplots(1, len(tasks), figsize=(6.5 * len(tasks), 4.5), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        shown = table.loc[table['task'] == task, ['e_above_hull_dft', 'error_e_above_hull']].apply(pd.to_numeric)
        shown = shown.dropna()
        if shown.empty:
            continue
        right = 1.05 * float(np.percentile(shown['e_above_hull_dft'], 95)) or 0.1
        low, high = np.percentile(MEV * shown['error_e_above_hull'], [1, 99])
        beyond = int((shown['e_above_hull_dft'] > right).sum())
        ends = []
        for title, rows in _series(table[table['task'] == task]):
            pair = rows[['e_above_hull_dft', 'error_e_above_hull']].apply(pd.to_numeric).dropna()
            if pair.empty:
                continue
            x, error = pair['e_above_hull_dft'].to_numpy(), pair['error_e_above_hull'].to_numpy()
            axis.scatter(x, MEV * error, s=3, alpha=0.25, color=colours[title])
            centres = np.linspace(0, right, 60)
            inside = np.abs(x[None, :] - centres[:, None]) <= ROLLING_WINDOW / 2
            counts = inside.sum(axis=1)
            rolling = np.where(
                counts >= MIN_PER_BIN, (inside * np.abs(error)).sum(axis=1) / np.maximum(counts, 1), np.nan
            )
            axis.plot(centres, MEV * rolling, color=colours[title], linewidth=2, label=title)
            high = max(high, float(np.nanmax(MEV * rolling, initial=0.0)))
            drawn = centres[np.isfinite(rolling)]
            ends.append(f'{title}: {drawn[-1]:.2f}' if len(drawn) else f'{title}: nowhere')
        axis.set_xlim(-0.01, right)
        axis.set_ylim(1.2 * min(low, -50.0), 1.2 * max(high, 50.0))
        axis.plot([0, right], [0, MEV * right], linestyle='--', color='grey', linewidth=1)
        axis.axhline(0, color='black', linewidth=0.8)
        axis.set(xlabel='DFT Ehull (eV/atom)', ylabel='Ehull error, model hull (meV/atom)', title=task)
        axis.legend(fontsize=7)
        # Why a line stops: the rolling MAE is drawn only where its window holds enough structures.
        axis.text(0.01, 0.01, f'rolling MAE over {MEV * ROLLING_WINDOW:.0f} meV windows, drawn where a window holds '
                  f'>= {MIN_PER_BIN} structures (up to {"; ".join(ends)} eV/atom)\n{beyond} structures beyond '
                  f'{right:.2f} eV/atom (95th percentile) not shown', transform=axis.transAxes, fontsize=6,
                  va='bottom', color='#555555')  # fmt: skip
    figure.tight_layout()
    return figure


def precision_recall(table: pd.DataFrame, plt):
    """Cumulative precision and recall of "stable" (Ehull <= 0 by DFT) when screening structures in order of the
    model's Ehull (DFT-reference hull, as Matbench Discovery ranks), per model and task."""
    colours = _colours(table, plt)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for title, rows in _series(table):
        pair = rows[['e_above_hull_model_dftref', 'e_above_hull_dft']].apply(pd.to_numeric).dropna()
        stable = (pair.sort_values('e_above_hull_model_dftref')['e_above_hull_dft'] <= 0).to_numpy()
        if not stable.sum():
            continue
        screened = np.arange(1, len(stable) + 1)
        hits = np.cumsum(stable)
        axes[0].plot(screened, 100 * hits / screened, color=colours[title], label=title)
        axes[1].plot(screened, 100 * hits / stable.sum(), color=colours[title], label=title)
    for axis, name in zip(axes, ('precision (%)', 'recall (%)'), strict=True):
        axis.set(xlabel='structures screened, lowest model Ehull first', ylabel=name, ylim=(0, 102))
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def error_vs_dof(table: pd.DataFrame, plt):
    """Mean signed Ehull error (model hull) per DOF bin, as measured and with the controls' effect removed (partial
    residuals of the controlled regression, claims.dof_effect). Every point carries its n; a bin with fewer than
    ``MIN_PER_BIN`` structures is a hollow grey marker off the line, and the axis is scaled to the bins that hold
    enough: one 100-atom cell is not a trend, and must not set the scale (beyond it, it sits at the edge with its
    value written)."""
    colours = _colours(table, plt)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    positions = np.arange(len(DOF_BIN_LABELS))
    titles = [title for title, _ in _series(table)]
    offsets = dict(zip(titles, np.linspace(-0.12, 0.12, len(titles)) if len(titles) > 1 else [0.0], strict=True))
    solid, thin = [0.0], []  # y extents of the well-filled bins (0 always shown); thin bins drawn after the scale
    for title, rows in _series(table):
        rows = regression_rows(rows)
        if len(rows) < 10:
            continue
        rows = with_bins(rows.assign(controlled=controlled_error(rows)))
        x = positions + offsets.get(title, 0.0)
        for axis, column in zip(axes, ('ehull_error', 'controlled'), strict=True):
            grouped = rows.groupby('dof_bin', observed=False)[column]
            mean = MEV * grouped.mean().reindex(DOF_BIN_LABELS).to_numpy(float)
            sem = np.nan_to_num(MEV * grouped.sem().reindex(DOF_BIN_LABELS).to_numpy(float))
            count = grouped.count().reindex(DOF_BIN_LABELS).fillna(0).to_numpy(int)
            enough = count >= MIN_PER_BIN
            axis.errorbar(x[enough], mean[enough], yerr=sem[enough], marker='o', capsize=3, color=colours[title],
                          label=title)  # fmt: skip
            solid += [*(mean[enough] - sem[enough]), *(mean[enough] + sem[enough])]
            for xi, yi, n in zip(x[enough], mean[enough], count[enough], strict=True):
                axis.annotate(f'n={n}', (xi, yi), textcoords='offset points', xytext=(4, 4), fontsize=6,
                              color=colours[title])  # fmt: skip
            few = ~enough & (count > 0)
            thin += [(axis, xi, yi, n) for xi, yi, n in zip(x[few], mean[few], count[few], strict=True)]
    pad = 0.15 * (max(solid) - min(solid)) or 20.0
    low, high = min(solid) - pad, max(solid) + pad
    labelled, stacked = set(), {}
    for axis, xi, yi, n in thin:
        inside = low <= yi <= high
        y = min(max(yi, low), high)
        marker = 'o' if inside else ('v' if yi < low else '^')
        label = None if axis in labelled else f'n < {MIN_PER_BIN}: not a mean to read'
        labelled.add(axis)
        axis.scatter([xi], [y], marker=marker, facecolors='none', edgecolors='grey', s=30, label=label)
        text = f'n={n}' if inside else f'n={n}: {yi:+.0f}'
        place = (id(axis), round(float(y)), round(float(xi)))  # labels at one edge of one bin: stacked, not overlaid
        rank = stacked[place] = stacked.get(place, -1) + 1
        rise = (6 + 9 * rank) if yi <= high else -(10 + 9 * rank)
        axis.annotate(text, (xi, y), textcoords='offset points', xytext=(-4, rise), fontsize=6, color='grey',
                      ha='right')  # fmt: skip
    for axis, name in zip(
        axes, ('as measured', 'controlled for DFT Ehull, atoms, elements, crystal system'), strict=True
    ):
        axis.axhline(0, color='black', linewidth=0.8)
        axis.set_xticks(positions, DOF_BIN_LABELS)
        axis.set(xlabel='symmetry DOF of the DFT structure', ylabel='mean Ehull error ± s.e. (meV/atom)', title=name,
                 xlim=(-0.5, len(DOF_BIN_LABELS) - 0.5), ylim=(low, high))  # fmt: skip
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def _boxes(table: pd.DataFrame, column: str, order: list[str], xlabel: str, plt):
    groups = list(_series(table))
    figure, axes = plt.subplots(len(groups), 1, figsize=(8, 3.2 * max(1, len(groups))), squeeze=False)
    for axis, (title, rows) in zip(axes[:, 0], groups, strict=False):
        present = [value for value in order if (rows[column] == value).any()]
        data = [MEV * rows.loc[rows[column] == value, 'error_e_above_hull'].dropna().astype(float) for value in present]
        boxes = axis.boxplot(data, flierprops={'markersize': 3, 'alpha': 0.5})  # outliers shown: collapses are findings
        for index, values in enumerate(data):  # too few to read as a distribution: greyed
            if len(values) < MIN_PER_BIN:
                for part in ('boxes', 'medians'):
                    boxes[part][index].set(color='#bbbbbb')
                for part in ('whiskers', 'caps'):
                    for line in boxes[part][2 * index : 2 * index + 2]:
                        line.set(color='#bbbbbb')
        axis.set_xticks(
            range(1, len(present) + 1), [f'{value}\n(n={len(d)})' for value, d in zip(present, data, strict=True)]
        )
        axis.axhline(0, color='black', linewidth=0.8)
        axis.set(title=title, xlabel=xlabel, ylabel='Ehull error (meV/atom)')
    figure.tight_layout()
    return figure


def error_by_crystal_system(table: pd.DataFrame, plt):
    order = ['triclinic', 'monoclinic', 'orthorhombic', 'tetragonal', 'trigonal', 'hexagonal', 'cubic']
    return _boxes(table, 'crystal_system', order, 'crystal system (DFT structure)', plt)


def _table_position(symbol: str) -> tuple[int, int]:
    """(row, column) on an 18-column periodic table, lanthanides and actinides on rows 8 and 9."""
    from pymatgen.core import Element

    element = Element(symbol)
    if element.is_lanthanoid:
        return 8, element.Z - 57 + 3
    if element.is_actinoid:
        return 9, element.Z - 89 + 3
    return element.row, element.group


def element_errors(table: pd.DataFrame, plt):
    """Mean signed total-energy error of the structures containing each element, one periodic table per model (its
    static single points where it has them)."""
    exploded = table.assign(element=table['chemsys'].str.split('-')).explode('element')
    exploded = exploded.dropna(subset=['error_energy'])
    if exploded.empty:
        return None
    per_model = []
    for model, rows in exploded.groupby('model', sort=True):
        task = 'static' if (rows['task'] == 'static').any() else sorted(rows['task'].unique())[0]
        grouped = rows[rows['task'] == task].groupby('element')['error_energy']
        per_model.append((f'{model} / {task}', MEV * grouped.mean(), grouped.count()))
    from pymatgen.core import Element

    limit = (
        max(
            float(np.max(np.abs(means[counts >= MIN_PER_BIN].to_numpy()), initial=0.0))
            for _, means, counts in per_model
        )
        or 1.0
    )
    figure, axes = plt.subplots(len(per_model), 1, figsize=(9, 4.3 * len(per_model)), squeeze=False)
    colormap = plt.get_cmap('RdBu_r')
    every = [element.symbol for element in Element if element.Z <= 103]
    for axis, (title, means, counts) in zip(axes[:, 0], per_model, strict=True):
        for symbol in every:
            row, column = _table_position(symbol)
            value, count = means.get(symbol), int(counts.get(symbol, 0))
            few = value is not None and count < MIN_PER_BIN  # shown, but not coloured as if it were a mean to read
            colour = '#f2f2f2' if value is None else '#dddddd' if few else colormap(0.5 + 0.5 * value / limit)
            axis.add_patch(plt.Rectangle((column - 0.47, row - 0.47), 0.94, 0.94, color=colour))
            dark = value is not None and not few and abs(value) > 0.6 * limit
            ink = 'white' if dark else ('#999999' if value is None or few else 'black')
            axis.text(column, row - 0.22, symbol, ha='center', va='center', fontsize=7, color=ink,
                      weight='bold' if value is not None else 'normal')  # fmt: skip
            if value is not None:
                axis.text(column, row + 0.08, f'{value:+.0f}', ha='center', va='center', fontsize=5.5, color=ink)
                axis.text(column, row + 0.32, f'n={count}', ha='center', va='center', fontsize=4.5, color=ink)
        axis.set(xlim=(0.4, 18.6), ylim=(9.6, 0.4))
        axis.set_title(f'{title}: mean signed total-energy error (meV/atom; grey: n < {MIN_PER_BIN})', fontsize=10)
        axis.set_aspect('equal')
        axis.axis('off')
    figure.colorbar(plt.cm.ScalarMappable(norm=plt.Normalize(-limit, limit), cmap=colormap), ax=axes[:, 0].tolist(),
                    shrink=0.4, label='meV/atom')  # fmt: skip
    return figure


def softening_slopes(found: dict, plt):
    """Slope of the model's Ehull on the DFT Ehull per model and task (95 % chemical-system bootstrap interval), with
    the slope within each chemical system as dots; 1 means no compression. ``found``: ``claims.science``."""
    if not found['softening']:
        return None
    figure, axis = plt.subplots(figsize=(7, 0.5 * len(found['softening']) + 1.8))
    labels = []
    for i, row in enumerate(found['softening']):
        labels.append(f'{row["model"]} / {row["task"]}')
        low, high = row['slope_ci95'] or (row['slope'], row['slope'])
        axis.errorbar(row['slope'], i, xerr=[[row['slope'] - low], [high - row['slope']]], fmt='o', color='black',
                      capsize=3)  # fmt: skip
        key = (row['model'], row['task'])
        within = [r['slope'] for r in found['softening_by_chemsys'] if (r['model'], r['task']) == key]
        axis.scatter(within, np.full(len(within), i + 0.2), s=8, alpha=0.5, color='tab:blue')
    axis.axvline(1, color='grey', linestyle='--')
    axis.set_yticks(range(len(labels)), labels)
    axis.set(xlabel='slope of model Ehull on DFT Ehull (black: pooled, 95 % interval; blue: per chemical system)')
    figure.tight_layout()
    return figure


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
    'hull_distance': hull_distance,
    'precision_recall': precision_recall,
    'error_distribution': error_distribution,
    'error_vs_dof': error_vs_dof,
    'softening_slopes': None,  # drawn from the claims (science), not from the table
    'element_errors': element_errors,
    'error_by_crystal_system': error_by_crystal_system,
    'fixsym_gap': fixsym_gap,
}


def make_plots(table: pd.DataFrame, directory: Path, found: dict | None = None) -> dict[str, Path]:
    """Every figure that the table has data for, as ``<name>.png`` and ``<name>.svg``; returns the PNG paths.
    ``found``: ``claims.science(table)`` when the caller has it already."""
    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    made = {}
    data = table.dropna(subset=['error_energy'])
    for name, draw in FIGURES.items():
        if data.empty:
            continue
        if draw is None:
            figure = softening_slopes(found if found is not None else science(table), plt)
        else:
            figure = draw(data, plt)
        if figure is not None:
            made[name] = save_figure(figure, directory / name, plt)
    return made


def save_figure(figure, stem: Path, plt) -> Path:
    """``figure`` as ``<stem>.png`` and ``<stem>.svg`` (the report's two formats), closed; returns the PNG."""
    for suffix in ('png', 'svg'):
        figure.savefig(stem.parent / f'{stem.name}.{suffix}', dpi=110, bbox_inches='tight')
    plt.close(figure)
    return stem.parent / f'{stem.name}.png'
