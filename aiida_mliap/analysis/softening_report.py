"""The report's softening section: the measured force slopes per model, in words, beside the benchmark's Ehull
compression, from one ``MliapSofteningWorkChain`` (``aiida-mliap report SOURCE --softening PK``)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..science.softening_claims import softening_summary
from .softening_plots import make_softening_plots

CHECK_NAMES = {'kpoints': 'k-points (spacing x 0.75)', 'smearing': 'smearing halved', 'cutoff': 'cutoffs x 1.3'}
CAPTIONS = {
    'force_parity': 'Model against DFT force components (eV/Å) on the perturbed configurations, one panel per model, '
    'coloured by perturbation; dashed: the diagonal; black: the slope through the origin. Below the diagonal on both '
    'sides is a softer surface than DFT.',
    'softening_vs_compression': "Each model's force slope (softening, measured against pw.x on perturbed crystals) "
    'against its slope of model Ehull on DFT Ehull (compression, from the benchmark), with 95 % intervals. If '
    'softening drove the compression, the points would rise from lower left to upper right.',
}


def add_softening(document: dict[str, Any], record: dict[str, Any], pairs: pd.DataFrame, directory: Path) -> dict:
    """Put ``softening_forces`` into the metrics ``document`` (from the stored record, the compared pairs and the
    benchmark's Ehull slopes already in it); write the pairs as softening_pairs.csv and the figures; returns them."""
    forces = pairs.loc[pairs['quantity'] == 'forces', 'dft'].to_numpy(float)
    rms = float(np.sqrt((forces**2).mean())) if len(forces) else None
    document['softening_forces'] = softening_summary(record, rms, document)
    pairs.to_csv(directory / 'softening_pairs.csv', index=False)
    return make_softening_plots(pairs, document['softening_forces'], directory / 'figures')


def _interval(value: float | None, interval: list[float] | None) -> str:
    if value is None:
        return '-'
    return f'{value:.3f}' + (f' [{interval[0]:.3f}, {interval[1]:.3f}]' if interval else ' (no interval)')


def softening_sections(document: dict[str, Any], figure) -> list[str]:
    """The section: what was measured, the table per model, the answer in words, the two figures. ``figure``: the
    report's figure renderer (name -> HTML)."""
    summary = document.get('softening_forces')
    if not summary:
        return []
    rows = pd.DataFrame(
        [
            {
                'model': row['model'],
                'force slope s': _interval(row['slope'], row['slope_ci95']),
                'verdict': row['verdict'].split(': ', 1)[-1],
                'force MAE (eV/Å)': '-' if row['mae'] is None else f'{row["mae"]:.3f}',
                'stress slope': _interval(row['stress_slope'], row['stress_slope_ci95']),
                'energy-difference slope': _interval(row['energy_slope'], row['energy_slope_ci95']),
                'Ehull slope (benchmark)': _interval(row['ehull_slope'], row['ehull_slope_ci95'])
                + (f' ({row["ehull_task"]})' if row['ehull_task'] else ''),
                'components': row['n'],
                'parents': row['n_parents'],
            }
            for row in summary['models']
        ]
    )
    numerical = '; '.join(
        f'{CHECK_NAMES[check]}: ' + ('not measured' if error.get('forces') is None else
                                     f'forces {error["forces"]:.4f} eV/Å, stress {error["stress"]:.3f} GPa, energy '
                                     f'{1000 * error["energy"]:.2f} meV/atom')
        for check, error in summary['dft_numerical_error'].items()
    ) or 'not measured'  # fmt: skip
    small = summary['n_parents'] is not None and summary['n_parents'] < 5
    return [
        '<h2>Softening, measured: model against DFT forces on perturbed crystals</h2>',
        f'<p>{summary["n_configurations"]} perturbed configurations of {summary["n_parents"]} parent structures, '
        'pw.x forces and stress on each (one k-point mesh per parent), every model on the same structures. Slope: '
        'least squares through the origin of the model on DFT (Deng et al., npj Comput. Mater. 11, 9 (2025)); '
        'below 1, a surface softer than DFT. Intervals: 95 % bootstrap over parent structures. DFT numerical error '
        '(largest change over the configurations run again with one setting tightened): '
        f'{html.escape(numerical)}. Their force changes summed, relative to the RMS DFT force component: '
        f'{100 * summary["dft_relative_force_error"]:.1f} %; a slope within that of 1 is not called softer. '
        f'{summary["dft_failures"]} SCF(s) failed (left out, with their reasons in the node).</p>',
        '<p class="note"><strong>Too few parents for intervals</strong>: each slope stands alone.</p>' if small else '',
        _table_html(rows),
        '<h3>Does the model whose surface is softer also compress the hull more?</h3>',
        f'<p>{html.escape(summary["association"]["words"])}.</p>',
        figure('softening_vs_compression'),
        figure('force_parity'),
    ]


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, classes=['data', 'small'], na_rep='-')
