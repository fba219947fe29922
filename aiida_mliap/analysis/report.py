"""``write_report``: report.html (one self-contained page), results.csv and metrics.json from the results table."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from .breakdowns import BREAKDOWNS, breakdown
from .claims import CLAIM_NAMES, HIGH_DOF, science
from .metrics import as_percent, headline_table, json_safe, summary_metrics
from .pathologies import SUSPECT_BELOW_DFT, worst_structures
from .plots import make_plots

CAPTIONS = {
    'parity': 'Model against DFT total energy per atom (MP2020-corrected scale), per model and task.',
    'error_distribution': 'Signed error of the total energy; left of zero is underprediction.',
    'error_vs_dof': 'Signed error by symmetry degrees of freedom of the DFT structure (boxes: quartiles).',
    'error_by_crystal_system': 'Signed error by crystal system of the DFT structure.',
    'fixsym_gap': 'Energy of the fixed-symmetry relaxation minus the free one, against DOF.',
}


def metrics_document(table: pd.DataFrame) -> dict[str, Any]:
    """Everything metrics.json holds: deterministic (seeded bootstrap, sorted keys, no pks or dates)."""
    return json_safe(
        {
            'models': table.attrs.get('models', []),
            'datasets': table.attrs.get('datasets', []),
            'parameters': table.attrs.get('parameters', {}),
            'n_rows': len(table),
            'status_counts': {
                f'{model}/{task}': rows['status'].value_counts().sort_index().to_dict()
                for (model, task), rows in table.groupby(['model', 'task'], sort=True)
            },
            'metrics': summary_metrics(table),
            'breakdowns': {by: breakdown(table, by).to_dict('records') for by in BREAKDOWNS},
            **science(table),
            'pathologies': {
                'suspect_below_dft': SUSPECT_BELOW_DFT,
                'suspected_unphysical_minima': {
                    f'{model}/{task}': int(rows['suspected_unphysical_minimum'].sum())
                    for (model, task), rows in table.groupby(['model', 'task'], sort=True)
                },
                'worst': worst_structures(table).to_dict('records'),
            },
        }
    )


def write_report(table: pd.DataFrame, directory: Path, title: str) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write the three files (and the figures, PNG and SVG, under ``figures/``); returns their paths and what
    metrics.json holds."""
    directory.mkdir(parents=True, exist_ok=True)
    document = metrics_document(table)
    paths = {'csv': directory / 'results.csv', 'json': directory / 'metrics.json', 'html': directory / 'report.html'}
    table.to_csv(paths['csv'], index=False)
    paths['json'].write_text(json.dumps(document, indent=1, sort_keys=True) + '\n')
    figures = make_plots(table, directory / 'figures')
    paths['html'].write_text(render_html(table, document, figures, title))
    return paths, document


def _table_html(frame: pd.DataFrame, floats: str = '{:.1f}') -> str:
    return frame.to_html(index=False, border=0, classes='data', float_format=floats.format, na_rep='-')


def render_html(table: pd.DataFrame, document: dict[str, Any], figures: dict[str, Path], title: str) -> str:
    headline = as_percent(headline_table(table, document['metrics']))
    classification = pd.DataFrame(
        [
            {'model': entry['model'], 'task': entry['task'], 'hull': hull, **values}
            for entry in document['metrics'].values()
            for hull, values in entry['classification'].items()
        ]
    )
    sections = [
        f'<h1>{html.escape(title)}</h1>',
        '<h2>Errors against DFT (model - DFT)</h2>',
        _table_html(headline) if not headline.empty else '<p>No results with energies.</p>',
        '<h2>Stability classification (stable: E<sub>hull</sub> ≤ 0; Matbench Discovery)</h2>',
        _table_html(classification, '{:.3f}') if not classification.empty else '<p>-</p>',
        *science_sections(document),
        *pathology_sections(document),
    ]
    for name, path in figures.items():
        encoded = base64.b64encode(path.read_bytes()).decode()
        sections.append(
            f'<figure><img alt="{name}" src="data:image/png;base64,{encoded}">'
            f'<figcaption>{html.escape(CAPTIONS[name])}</figcaption></figure>'
        )
    for by in ('crystal_system', 'dof_bin', 'symmetry_change', 'ehull_bin', 'element'):
        frame = pd.DataFrame(document['breakdowns'][by])
        if frame.empty:
            continue
        frame = frame.assign(**{k: 1000 * frame[k] for k in ('mae', 'me', 'rmse')})
        frame = frame.rename(columns={'mae': 'MAE meV/atom', 'me': 'mean signed', 'rmse': 'RMSE'})
        sections += [f'<h2>Total-energy error by {by.replace("_", " ")}</h2>', _table_html(frame, '{:.2f}')]
    status = pd.DataFrame([{'model/task': k, **v} for k, v in document['status_counts'].items()]).fillna(0)
    sections += ['<h2>Structures by status</h2>', _table_html(status, '{:.0f}')]
    sections += ['<h2>Models</h2>', _table_html(pd.DataFrame(document['models']))]
    sections += ['<h2>Protocol (runner parameters per task, as run)</h2>']
    sections += [
        f'<h3>{html.escape(task)}</h3><pre>{html.escape(json.dumps(sets, indent=1, sort_keys=True))}</pre>'
        for task, sets in document['parameters'].items()
    ]
    datasets = pd.DataFrame(document['datasets'])
    sections += ['<h2>Data and credit</h2>', _table_html(datasets) if not datasets.empty else '']
    return PAGE.format(title=html.escape(title), body='\n'.join(sections))


def _with_ci(value: float | None, interval: list[float] | None, scale: float = 1000.0, digits: int = 1) -> str:
    """``value [low, high]`` scaled (eV -> meV by default); the interval left out where there is none."""
    if value is None:
        return '-'
    text = f'{scale * value:+.{digits}f}'
    if interval:
        text += f' [{scale * interval[0]:+.{digits}f}, {scale * interval[1]:+.{digits}f}]'
    return text


def pathology_sections(document: dict[str, Any]) -> list[str]:
    """The worst structures per model and task, with what the relaxation did to them."""
    found = document['pathologies']
    worst = pd.DataFrame(found['worst'])
    if worst.empty:
        return []
    for column in ('error_e_above_hull', 'error_energy', 'relax_drop_per_atom'):
        worst[column] = 1000 * pd.to_numeric(worst[column])
    worst = worst.rename(
        columns={
            'error_e_above_hull': 'Ehull error (meV/atom)',
            'error_energy': 'energy error (meV/atom)',
            'relax_drop_per_atom': 'relax - static (meV/atom)',
            'rmsd_to_dft': 'RMSD to DFT (normalised)',
            'volume_change': 'volume change',
            'suspected_unphysical_minimum': 'suspected unphysical minimum',
            'n_atoms': 'atoms',
            'dof': 'DOF',
        }
    )
    counts = ', '.join(f'{key}: {value}' for key, value in found['suspected_unphysical_minima'].items())
    return [
        '<h2>Worst structures</h2>',
        f'<p>Per model and task the ten largest Ehull errors (model hull), and every relaxation that ended more than '
        f'{1000 * found["suspect_below_dft"]:.0f} meV/atom below the DFT energy: DFT relaxed the same structure, so a '
        f"model minimum that deep is a suspected hole in the model's landscape ({html.escape(counts)}). RMSD: "
        'pymatgen StructureMatcher, normalised by (volume per atom)<sup>1/3</sup>; empty when the structures no longer '
        'match.</p>',
        _table_html(worst, '{:.3g}'),
    ]


def science_sections(document: dict[str, Any]) -> list[str]:
    """The study's claims per model and task, what each says in words, and the two rival explanations measured."""
    verdicts = pd.DataFrame(document['verdicts']).rename(
        columns={
            'claim_1_underprediction': '1. systematic underprediction (mean signed error < 0)',
            'claim_2_ehull_mae_above_30': '2. Ehull MAE > 30 meV/atom',
            'claim_3_high_dof': f'3. Ehull MAE > 40 meV/atom above {HIGH_DOF} DOF, DOF the cause',
            'softening': 'model Ehull vs DFT Ehull',
        }
    )
    claims = pd.DataFrame(
        [
            {
                'model': row['model'],
                'task': row['task'],
                'quantity': CLAIM_NAMES[row['quantity']],
                'n': row['n'],
                'chemical systems': row['n_chemsys'],
                'MAE (meV/atom)': _with_ci(row['mae'], row['mae_ci95'], digits=1).lstrip('+'),
                'mean signed error (meV/atom)': _with_ci(row['mean_signed'], row['mean_signed_ci95']),
                'underpredicted (%)': '-' if row['fraction_under'] is None else f'{100 * row["fraction_under"]:.0f}',
            }
            for row in document['claims']
            if row['n']
        ]
    )
    rivals = pd.DataFrame(
        [
            {
                'model': soft['model'],
                'task': soft['task'],
                'n': soft['n'],
                'slope of model Ehull on DFT Ehull': _with_ci(soft['slope'], soft['slope_ci95'], 1.0, 2),
                'DOF coefficient, controlled (meV/atom per DOF)': _with_ci(
                    dof['coef_dof'], dof['coef_dof_ci95'], digits=2
                ),
                'DOF coefficient, alone (meV/atom per DOF)': _with_ci(
                    dof['coef_dof_alone'], dof['coef_dof_alone_ci95'], digits=2
                ),
                'DFT Ehull coefficient (meV/atom per meV/atom)': _with_ci(
                    dof['coef_e_above_hull_dft'], dof['coef_e_above_hull_dft_ci95'], 1.0, 2
                ),
            }
            for soft, dof in zip(document['softening'], document['dof_effect'], strict=True)
        ]
    )
    binned = pd.DataFrame(
        [
            {
                'model': row['model'],
                'task': row['task'],
                'DFT Ehull': row['ehull_bin'],
                'n': row['n'],
                'mean signed Ehull error (meV/atom)': f'{1000 * row["mean_signed"]:+.1f}',
                'DOF coefficient (meV/atom per DOF)': _with_ci(row['coef_dof'], row['coef_dof_ci95'], digits=2),
            }
            for row in document['dof_effect_by_ehull_bin']
        ]
    )
    return [
        "<h2>The study's claims, tested</h2>",
        '<p>Intervals: 95 % from a bootstrap that resamples whole chemical systems (their entries share a hull and are '
        'not independent); none where fewer than five chemical systems are present. Words come from the intervals '
        'only.</p>',
        _table_html(verdicts) if not verdicts.empty else '<p>No results.</p>',
        _table_html(claims) if not claims.empty else '',
        '<h2>Rival explanations: instability and softening</h2>',
        "<p>Slope of the model's Ehull (model hull) on the DFT Ehull: below 1, the model compresses the landscape "
        'toward the hull. DOF coefficients: least squares of the signed Ehull error on DOF, controlled for DFT Ehull, '
        'number of atoms, number of elements and crystal system, and alone; negative: more DOF, more '
        'underprediction.</p>',
        _table_html(rivals) if not rivals.empty else '<p>No Ehull pairs.</p>',
        '<h3>DOF effect within bins of DFT Ehull</h3>',
        _table_html(binned) if not binned.empty else '<p>-</p>',
    ]


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table.data {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
table.data th, table.data td {{ padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }}
table.data th {{ background: #f3f3f3; }}
figure {{ margin: 1.5em 0; }} figure img {{ max-width: 100%; }} figcaption {{ color: #555; font-size: 0.9em; }}
pre {{ background: #f7f7f7; padding: 0.7em; font-size: 0.85em; }}
</style></head>
<body>
{body}
</body></html>
"""
