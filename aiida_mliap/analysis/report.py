"""``write_report``: report.html (one self-contained page), results.csv and metrics.json from the results table."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..science.breakdowns import BREAKDOWNS, breakdown
from ..science.claims import CLAIM_NAMES, HIGH_DOF, science
from ..science.dft_check import DFT_CHECK_NOTE, dft_check_split
from ..science.metrics import json_safe, summary_metrics
from ..science.pathologies import SUSPECT_BELOW_DFT, worst_structures
from .plots import make_plots
from .softening_report import CAPTIONS as SOFTENING_CAPTIONS
from .softening_report import add_softening, softening_sections

CAPTIONS = {
    'hull_distance': 'Ehull error (model hull) against the DFT Ehull: points, signed errors; lines, the MAE in a '
    'rolling 40 meV/atom window of DFT Ehull, drawn only where a window holds at least 5 structures (a line that '
    'stops has run out of data: the figure says where; 1-99 % of errors and 95 % of DFT Ehull shown). Where a line '
    'lies above the dashed diagonal, the typical error exceeds the distance to the hull and stability calls are '
    'unreliable. Points sinking with DFT Ehull are the compression both rival explanations predict.',
    'parity': 'Model against DFT: Ehull on both hulls, formation and total energy (eV/atom, MP2020-corrected scale). '
    'Points more than five interquartile ranges beyond the quartiles are red triangles drawn at the edge and counted '
    'in the panel title, so that one collapse does not squeeze the rest.',
    'precision_recall': 'Screening in order of the model Ehull: cumulative precision and recall of DFT-stable '
    'structures (Matbench Discovery).',
    'error_vs_dof': 'Mean signed Ehull error per DOF bin, as measured (left) and with the controls removed '
    '(right: partial residuals of the controlled regression), each point with its n. Bins with fewer than 5 '
    'structures are hollow grey markers outside the line: not a mean to read. A slope that vanishes on the right is '
    'not a DOF effect.',
    'softening_slopes': 'Slope of the model Ehull on the DFT Ehull: pooled with its chemical-system bootstrap '
    'interval, and within each chemical system. 1 means no compression toward the hull.',
    'error_distribution': 'Signed errors of Ehull (model hull) and total energy, on one bin width for every series.',
    'element_errors': 'Mean signed total-energy error of the structures containing each element (a structure '
    'counts under each of its elements), with n per element; elements with fewer than 5 structures are greyed.',
    'error_by_crystal_system': 'Ehull error (model hull) by crystal system of the DFT structure, n under each box; '
    'outliers shown; boxes of fewer than 5 structures are grey.',
    'fixsym_gap': 'Energy of the fixed-symmetry relaxation minus the free one, against DOF.',
    **SOFTENING_CAPTIONS,
}


def metrics_document(table: pd.DataFrame) -> dict[str, Any]:
    """Everything metrics.json holds: deterministic (seeded bootstrap, sorted keys, no pks or dates)."""
    return json_safe(
        {
            'models': table.attrs.get('models', []),
            'datasets': table.attrs.get('datasets', []),
            'parameters': table.attrs.get('parameters', {}),
            'environments': table.attrs.get('environments', []),
            'n_rows': len(table),
            'rows_with_newer_failed_attempts': int(
                (table.get('newer_failed_attempts', pd.Series(dtype=int)) > 0).sum()
            ),
            'status_counts': {
                f'{model}/{task}': rows['status'].value_counts().sort_index().to_dict()
                for (model, task), rows in table.groupby(['model', 'task'], sort=True)
            },
            'metrics': summary_metrics(table),
            'breakdowns': {by: breakdown(table, by).to_dict('records') for by in BREAKDOWNS},
            **science(table),
            'dft_checks': {by: dft_check_split(table, by).to_dict('records') for by in ('dof_bin', 'symmetry_change')},
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


def write_report(
    table: pd.DataFrame, directory: Path, title: str, softening: tuple[dict, pd.DataFrame] | None = None
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write the three files (and the figures, PNG and SVG, under ``figures/``); returns their paths and what
    metrics.json holds. ``softening``: a softening measurement's record and compared pairs
    (``analysis.softening``), for its section, ``softening_forces`` and softening_pairs.csv."""
    directory.mkdir(parents=True, exist_ok=True)
    document = metrics_document(table)
    paths = {'csv': directory / 'results.csv', 'json': directory / 'metrics.json', 'html': directory / 'report.html'}
    table.to_csv(paths['csv'], index=False)
    figures = make_plots(table, directory / 'figures', document)
    if softening is not None:
        figures |= add_softening(document, *softening, directory)
        document = json_safe(document)
    paths['json'].write_text(json.dumps(document, indent=1, sort_keys=True) + '\n')
    paths['html'].write_text(render_html(table, document, figures, title))
    return paths, document


def _table_html(frame: pd.DataFrame, floats: str = '{:.1f}', style: str = '') -> str:
    """``style``: extra CSS class, ``small`` (a wide table) or ``words`` (sentences that wrap)."""
    classes = ['data', style] if style else ['data']
    return frame.to_html(index=False, border=0, classes=classes, float_format=floats.format, na_rep='-')


def side_by_side(document: dict[str, Any]) -> pd.DataFrame:
    """One row per model and task, Ehull first: the table a reader compares models with (text, formatted)."""
    rows = []
    for entry in document['metrics'].values():
        errors, dftref = entry['errors'], entry['classification']['dftref_hull']
        row = {'model': entry['model'], 'task': entry['task'], 'structures': str(entry['n_rows'])}
        for quantity, name in (('e_above_hull', 'Ehull'), ('e_form', 'formation'), ('energy', 'total')):
            metrics = errors[quantity]
            row[f'{name} MAE'] = _number(_mev(metrics['mae']), '{:.1f}')
            row[f'{name} mean signed'] = _number(_mev(metrics['me']), '{:+.1f}')
            if quantity == 'e_above_hull':
                row['Ehull under (%)'] = _number(_percent(metrics['fraction_under']), '{:.0f}')
        row['F1'] = _number(dftref['f1'], '{:.2f}')
        row['DAF'] = _number(dftref['daf'], '{:.2f}')
        rows.append(row)
    return pd.DataFrame(rows)


def _number(value: float | None, form: str) -> str:
    return '-' if value is None else form.format(value)


def _mev(value: float | None) -> float | None:
    return None if value is None else 1000 * value


def _percent(value: float | None) -> float | None:
    return None if value is None else 100 * value


def what_ran(table: pd.DataFrame, document: dict[str, Any]) -> str:
    """One sentence: structures, models, tasks."""
    models = sorted(table['model'].dropna().unique())
    tasks = sorted(table['task'].dropna().unique())
    structures = table['label'].nunique() if 'label' in table else len(table)
    return (
        f'<p class="lead">{structures} structures x {len(models)} model(s) ({html.escape(", ".join(models))}) x '
        f'task(s) {html.escape(", ".join(tasks))}: {document["n_rows"]} rows. Errors are model - DFT in meV/atom on '
        'the MP2020-corrected scale; negative is underprediction.</p>' + _failed_attempts(document)
    )


def _failed_attempts(document: dict[str, Any]) -> str:
    """The warning a shared group report needs when later runs failed where an earlier one had results."""
    rows = document.get('rows_with_newer_failed_attempts', 0)
    if not rows:
        return ''
    return (
        f'<p class="note"><strong>{rows} rows have a newer failed attempt</strong> (a rerun of the same model and '
        'task that produced no result: no GPU, a broken checkpoint, a lost job): each keeps its latest successful '
        'result; column <code>newer_failed_attempts</code> of results.csv names them.</p>'
    )


def _figure(name: str, figures: dict[str, Path]) -> str:
    if name not in figures:
        return ''
    encoded = base64.b64encode(figures[name].read_bytes()).decode()
    return (
        f'<figure><img alt="{name}" src="data:image/png;base64,{encoded}">'
        f'<figcaption>{html.escape(CAPTIONS[name])}</figcaption></figure>'
    )


def render_html(table: pd.DataFrame, document: dict[str, Any], figures: dict[str, Path], title: str) -> str:
    models = side_by_side(document)
    sections = [
        f'<h1>{html.escape(title)}</h1>',
        what_ran(table, document),
        '<h2>Models side by side</h2>',
        _table_html(models) if not models.empty else '<p>No results with energies.</p>',
        '<p class="note">MAE and mean signed error in meV/atom (model - DFT); Ehull on the model\'s own hull. F1 and '
        'DAF (discovery acceleration factor) on the DFT-reference hull, as Matbench Discovery ranks models; there the '
        'Ehull error equals the total-energy error by construction (Ehull<sub>DFT</sub> + E<sub>model</sub> - '
        'E<sub>DFT</sub>), so it is not repeated. Stable means Ehull &le; 0; a structure the model failed on counts '
        'as predicted unstable. Both hulls are in the classification table below.</p>',
        *science_sections(document),
        _figure('hull_distance', figures),
        _figure('parity', figures),
        _figure('precision_recall', figures),
        symmetry_words(document) if 'error_vs_dof' in figures else '',
        _figure('error_vs_dof', figures),
        _figure('softening_slopes', figures),
        _figure('error_distribution', figures),
        _figure('element_errors', figures),
        *softening_sections(document, lambda name: _figure(name, figures)),
        *pathology_sections(document),
        *dft_check_sections(document),
        _figure('error_by_crystal_system', figures),
        _figure('fixsym_gap', figures),
    ]
    classification = pd.DataFrame(
        [
            {'model': entry['model'], 'task': entry['task'], 'hull': hull.replace('_', ' '), **values}
            for entry in document['metrics'].values()
            for hull, values in entry['classification'].items()
        ]
    )
    if not classification.empty:
        for column in ('precision', 'recall', 'accuracy', 'prevalence'):
            classification[column] = 100 * pd.to_numeric(classification[column])
        classification = classification.rename(
            columns={c: f'{c} (%)' for c in ('precision', 'recall', 'accuracy', 'prevalence')}
            | {'n_failed': 'failed (counted unstable)', 'f1': 'F1', 'daf': 'DAF'}
        )
        sections += ['<h2>Stability classification against DFT</h2>', _table_html(classification, '{:.2f}')]
    for by in ('crystal_system', 'dof_bin', 'symmetry_change', 'ehull_bin', 'element'):
        frame = pd.DataFrame(document['breakdowns'][by])
        if frame.empty:
            continue
        frame = frame.assign(
            **{k: 1000 * frame[k] for k in ('mae', 'me', 'rmse')}, fraction_under=100 * frame['fraction_under']
        )
        frame = frame.rename(
            columns={
                'mae': 'MAE (meV/atom)',
                'me': 'mean signed (meV/atom)',
                'rmse': 'RMSE (meV/atom)',
                'fraction_under': 'underpredicted (%)',
                by: BREAKDOWN_NAMES[by],
            }
        )
        sections += [f'<h3>Total-energy error by {BREAKDOWN_NAMES[by]}</h3>', _table_html(frame, '{:.1f}')]
    status = pd.DataFrame([{'model / task': k, **v} for k, v in document['status_counts'].items()]).fillna(0)
    sections += ['<h2>Structures by status</h2>', _table_html(status, '{:.0f}')]
    sections += ['<h2>Models</h2>', _table_html(pd.DataFrame(document['models']))]
    sections += protocol_sections(document)
    datasets = pd.DataFrame(document['datasets'])
    sections += ['<h2>Data and credit</h2>', _table_html(datasets) if not datasets.empty else '']
    return PAGE.format(title=html.escape(title), body='\n'.join(s for s in sections if s))


BREAKDOWN_NAMES = {
    'crystal_system': 'crystal system',
    'dof_bin': 'symmetry DOF',
    'symmetry_change': 'symmetry change on relaxation',
    'ehull_bin': 'DFT Ehull',
    'element': 'element',
}


def protocol_sections(document: dict[str, Any]) -> list[str]:
    """What actually ran: the runner parameters that apply to each task and the environments the runner recorded."""
    from ..contract.parameters import applicable

    sections = ['<h2>Protocol, as run</h2>']
    for task, sets in document['parameters'].items():
        shown = [applicable(parameters) for parameters in sets]
        frame = pd.DataFrame(shown).drop(columns=['task'], errors='ignore')
        sections += [f'<h3>{html.escape(task)}</h3>', _table_html(frame.astype(str))]
    environments = pd.DataFrame(document.get('environments', []))
    if not environments.empty:
        sha = {model['sha256']: model['name'] for model in document['models']}
        environments.insert(0, 'model', environments.pop('model_sha256').map(sha))
        environments = environments.rename(columns={'torch_threads': 'threads'})
        sections += [
            '<h3>Runner environments (recorded by each calculation)</h3>',
            _table_html(environments.astype(str)),
        ]
    return sections


UNINFORMATIVE = '‡'
UNINFORMATIVE_NOTE = (
    f'{UNINFORMATIVE}: the interval is wider than the data (its width times the range of the middle 90 % of the '
    'variable exceeds the whole range of the errors): it admits effects larger than anything observed, so it says '
    'nothing either way.'
)


def _with_ci(row: dict[str, Any], key: str, scale: float = 1000.0, digits: int = 1) -> str:
    """``value [low, high]`` of ``row[key]`` scaled (eV -> meV by default); the interval left out where there is
    none, flagged where it is uninformative (``claims.uninformative``)."""
    value, interval = row.get(key), row.get(f'{key}_ci95')
    if value is None:
        return '-'
    text = f'{scale * value:+.{digits}f}'
    if interval:
        text += f' [{scale * interval[0]:+.{digits}f}, {scale * interval[1]:+.{digits}f}]'
        if key in row.get('uninformative', []):
            text += f' {UNINFORMATIVE}'
    return text


def pathology_sections(document: dict[str, Any]) -> list[str]:
    """The worst structures per model and task, with what the relaxation did to them."""
    found = document['pathologies']
    worst = pd.DataFrame(found['worst'])
    if worst.empty:
        return []
    for column in ('error_e_above_hull', 'error_energy', 'relax_drop_per_atom'):
        worst[column] = 1000 * pd.to_numeric(worst[column])
    worst['suspected_unphysical_minimum'] = worst['suspected_unphysical_minimum'].map({True: 'yes', False: ''})
    worst = worst.rename(
        columns={
            'error_e_above_hull': 'Ehull error (meV/atom)',
            'error_energy': 'energy error (meV/atom)',
            'relax_drop_per_atom': 'relax - static (meV/atom)',
            'rmsd_to_dft': 'RMSD to DFT (normalised)',
            'volume_change': 'volume change',
            'suspected_unphysical_minimum': 'suspected unphysical minimum',
            'symmetry_change': 'symmetry',
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
        _table_html(worst, '{:.3g}', 'small'),
    ]


def dft_check_sections(document: dict[str, Any]) -> list[str]:
    """The model's error at its own geometry split into what DFT confirms and what it contradicts (DFT checks)."""
    sections = []
    for by, name in (('dof_bin', 'symmetry DOF'), ('symmetry_change', 'symmetry change on relaxation')):
        frame = pd.DataFrame(document['dft_checks'][by])
        if frame.empty:
            continue
        means = ('mean_error', 'mean_delta_e_geom', 'mean_rest')
        frame = frame.assign(**{key: 1000 * frame[key] for key in means}).rename(
            columns={by: name, 'confirmed': 'DFT confirms lower', 'contradicted': 'DFT contradicts',
                     'mean_error': 'mean error (meV/atom)', 'mean_delta_e_geom': 'mean ΔE_geom (meV/atom)',
                     'mean_rest': 'mean error - ΔE_geom (meV/atom)'}
        )  # fmt: skip
        sections += [f'<h3>DFT check by {name}</h3>', _table_html(frame, '{:+.1f}')]
    if sections:
        sections = ['<h2>DFT check of model-relaxed geometries</h2>', f'<p class="note">{DFT_CHECK_NOTE}</p>',
                    *sections]  # fmt: skip
    return sections


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
    measured = {row['model']: row['verdict'] for row in document.get('softening_forces', {}).get('models', [])}
    if measured and not verdicts.empty:
        verdicts['model forces vs DFT forces (softening measured)'] = verdicts['model'].map(measured).fillna('-')
    claims = pd.DataFrame(
        [
            {
                'model': row['model'],
                'task': row['task'],
                'quantity': CLAIM_NAMES[row['quantity']],
                'n': row['n'],
                'chemical systems': row['n_chemsys'],
                'MAE (meV/atom)': _with_ci(row, 'mae', digits=1).lstrip('+'),
                'mean signed error (meV/atom)': _with_ci(row, 'mean_signed'),
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
                'slope of model Ehull on DFT Ehull': _with_ci(soft, 'slope', 1.0, 2),
                'DOF coefficient, controlled (meV/atom per DOF)': _with_ci(dof, 'coef_dof', digits=2),
                'DOF coefficient, alone (meV/atom per DOF)': _with_ci(dof, 'coef_dof_alone', digits=2),
                'DFT Ehull coefficient (meV/atom per meV/atom)': _with_ci(dof, 'coef_e_above_hull_dft', 1.0, 2),
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
                'DOF coefficient (meV/atom per DOF)': _with_ci(row, 'coef_dof', digits=2),
            }
            for row in document['dof_effect_by_ehull_bin']
        ]
    )
    return [
        "<h2>The study's claims, tested</h2>",
        '<p>Intervals: 95 % from a bootstrap that resamples whole chemical systems (their entries share a hull and are '
        'not independent); none where fewer than five chemical systems are present. Words come from the intervals '
        'only.</p>',
        _table_html(verdicts, style='words') if not verdicts.empty else '<p>No results.</p>',
        _table_html(claims) if not claims.empty else '',
        '<h2>Rival explanations: instability and softening</h2>',
        "<p>Slope of the model's Ehull (model hull) on the DFT Ehull: below 1, the model compresses the landscape "
        'toward the hull. DOF coefficients: least squares of the signed Ehull error on DOF, controlled for DFT Ehull, '
        'number of atoms, number of elements and crystal system, and alone; negative: more DOF, more '
        'underprediction.</p>',
        _table_html(rivals) if not rivals.empty else '<p>No Ehull pairs.</p>',
        '<h3>DOF effect within bins of DFT Ehull</h3>',
        _table_html(binned) if not binned.empty else '<p>-</p>',
        f'<p class="note">{UNINFORMATIVE_NOTE}</p>',
    ]


def symmetry_words(document: dict[str, Any]) -> str:
    """The symmetry claim's verdict in plain words, right above the figure a reader would judge it by."""
    lines = ''.join(
        f'<li><b>{html.escape(row["model"])} / {html.escape(row["task"])}</b>: '
        f'{html.escape(row["claim_3_high_dof"])}</li>'
        for row in document['verdicts']
    )
    if not lines:
        return ''
    return (
        f'<h3>Does symmetry (DOF) drive the error?</h3><ul>{lines}</ul><p class="note">From the intervals of the '
        'controlled regression, not from the figure below: its bins with few structures are grey and carry no '
        'weight in words.</p>'
    )


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table.data {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
table.data th, table.data td {{ padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }}
table.data th {{ background: #f3f3f3; }}
table.data td {{ white-space: nowrap; }} table.small {{ font-size: 0.8em; }}
table.words td {{ white-space: normal; text-align: left; vertical-align: top; }}
p.lead {{ font-size: 1.05em; }} p.note {{ color: #555; font-size: 0.88em; max-width: 60em; }}
figure {{ margin: 1.5em 0; }} figure img {{ max-width: 100%; }} figcaption {{ color: #555; font-size: 0.9em; }}
pre {{ background: #f7f7f7; padding: 0.7em; font-size: 0.85em; }}
</style></head>
<body>
{body}
</body></html>
"""
