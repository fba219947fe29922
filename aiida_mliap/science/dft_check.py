"""Which structures of a relaxation benchmark to check with DFT, and what the checks say.

Selection rules over ``load_results`` rows of one model and task ``relax``: ``symmetry_lowered`` (the relaxation
lowered the space group), ``largest_ehull_error`` (|Ehull error| on the DFT-reference hull, largest first),
``stability_flip`` (stable by the model and not by DFT, or the reverse), ``labels`` (given). Every chosen row keeps
its reasons. At most ``max_structures``: the given labels, then rows of the narrower rules (symmetry lowered,
stability flips), then the others, each by |Ehull error|, largest first.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
import pandas as pd

from .metrics import STABILITY_THRESHOLD

RULES = ('symmetry_lowered', 'largest_ehull_error', 'stability_flip')
ERROR = 'abs_error_e_above_hull_dftref'


def rule_masks(rows: pd.DataFrame) -> dict[str, pd.Series]:
    """Per rule, the rows it picks (``largest_ehull_error`` picks every row with an error: it ranks, not filters)."""
    stable_dft = rows['e_above_hull_dft'] <= STABILITY_THRESHOLD
    stable_model = rows['e_above_hull_model_dftref'] <= STABILITY_THRESHOLD
    both = rows['e_above_hull_dft'].notna() & rows['e_above_hull_model_dftref'].notna()
    return {
        'symmetry_lowered': rows['symmetry_change'].eq('lowered'),
        'largest_ehull_error': rows[ERROR].notna(),
        'stability_flip': both & (stable_dft != stable_model),
    }


def select_structures(
    table: pd.DataFrame,
    model: str | None = None,
    rules: Iterable[str] = RULES,
    labels: Iterable[str] = (),
    max_structures: int = 10,
    max_atoms: int | None = None,
) -> pd.DataFrame:
    """The rows of ``table`` (``load_results``) to DFT-check, with a ``reasons`` column; ``model``: its name or
    sha256 (needed when the table holds several models)."""
    rules, labels = list(rules), list(labels)
    unknown = sorted(set(rules) - set(RULES))
    if unknown:
        raise ValueError(f'unknown selection rules {unknown}: choose from {list(RULES)}')
    rows = table[table['task'].eq('relax') & table['status'].isin(['ok', 'unconverged'])]
    if model is not None:
        rows = rows[rows['model'].eq(model) | rows['model_sha256'].eq(model)]
    models = sorted(rows['model'].dropna().unique())
    if len(models) != 1:
        raise ValueError(f'relaxations of {len(models)} models {models}: name one (model=...)' if models else
                         'no finished relaxation in this table (task `relax`)')  # fmt: skip
    if max_atoms is not None:
        rows = rows[rows['n_atoms'] <= max_atoms]
    masks = rule_masks(rows)
    reasons = pd.Series([[] for _ in range(len(rows))], index=rows.index, dtype=object)
    for rule in rules:
        for index in rows.index[masks[rule]]:
            reasons[index].append(rule)
    missing = sorted(set(labels) - set(rows['label']) - set(rows['mp_id']))
    if missing:
        bound = f' of <= {max_atoms} atoms' if max_atoms else ''
        raise ValueError(f'not among the finished relaxations{bound}: {missing[:10]}')
    for index in rows.index[rows['label'].isin(labels) | rows['mp_id'].isin(labels)]:
        reasons[index].append('labels')
    chosen = rows.assign(reasons=reasons)[reasons.map(bool)]
    order = chosen.assign(
        _given=chosen['reasons'].map(lambda r: 'labels' in r),
        _narrow=chosen['reasons'].map(lambda r: any(rule in r for rule in ('symmetry_lowered', 'stability_flip'))),
        _error=chosen[ERROR].fillna(-np.inf),
    ).sort_values(['_given', '_narrow', '_error'], ascending=False, kind='stable')
    return order.drop(columns=['_given', '_narrow', '_error']).head(max_structures)


# The DFT check's numerical defaults, one set for the work chain, the CLI and the example (docs/howto/dft-check.md).
DFT_DEFAULTS = {
    'kpoints_distance': 0.5,  # Å⁻¹, the first level; each geometry gets its own mesh at this spacing
    'refinement': 0.75,  # each level multiplies the spacing by this (and halves a metal's smearing)
    'max_refinements': 3,  # levels after the first
    'tolerance': 0.005,  # eV/atom: ΔE_geom converged when a refinement changes it by less
    'smearing_tolerance': 0.0005,  # eV/atom: |-TS| above this in a gapped system is an artefact, repaired or flagged
}
# Band gap (eV) above which a system counts as gapped (``band_gap`` already returns 0 for a metal): smearing there
# must leave no -TS.
GAP_MIN = 0.1
# Filled bands per spin channel further than this from a whole number: a partly filled band, a metal.
FILLING_TOLERANCE = 0.01
GEOMETRIES = ('model', 'reference')
# What the QE (pslibrary, U on atomic projections) vs VASP (MP's PAW, U on PAW projectors) difference may add to a
# difference of two geometries, eV/atom: an allowance stated, not measured; no verdict inside it.
CODE_ALLOWANCE = 0.005
DFT_CHECK_NOTE = (
    "The model's total-energy error at its own geometry, E_model(model geometry) - E_DFT(MP geometry), is the sum of "
    'ΔE_geom = E_DFT(model geometry) - E_DFT(MP geometry), the part DFT confirms when negative (a lower structure '
    "exists) and contradicts when positive (DFT puts the model's geometry higher: the model's landscape is wrong "
    'there), and of the rest, E_model(model geometry) - E_DFT(model geometry). ΔE_geom is computed with Quantum '
    "ESPRESSO (PBE, one pseudopotential family, MP's U and initial moments) and stands in for the same difference "
    "in MP's VASP setup: an approximation, stated here with every number it gives."
)


def dft_verdict(delta_e_geom: float | None, uncertainty: float | None) -> str | None:
    """``confirmed`` (DFT also finds the model's geometry lower) or ``contradicted`` (DFT finds it higher) only when
    |ΔE_geom| exceeds its numerical uncertainty plus ``CODE_ALLOWANCE``; otherwise, and when the uncertainty is
    unknown, ``cannot tell``. None without a check."""
    if delta_e_geom is None or delta_e_geom != delta_e_geom:
        return None
    if uncertainty is None or uncertainty != uncertainty:
        return 'cannot tell'
    margin = abs(uncertainty) + CODE_ALLOWANCE
    if delta_e_geom < -margin:
        return 'confirmed'
    return 'contradicted' if delta_e_geom > margin else 'cannot tell'


def band_gap(eigenvalues: np.ndarray, occupations: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Gap (eV) between the highest occupied and the lowest empty band over all k-points and spins; 0 for a metal.

    Told by the eigenvalues against the electron count, not by which states the smearing occupies: cold smearing
    0.37 eV wide occupies conduction states across a 0.7 eV gap on some meshes and not on others (mp-1179990's CHGNet
    cell read as a metal on three meshes of five). Per spin channel the filled bands n = sum_k w_k sum_b f / f_full
    (f_full 2 without spin, 1 with) must be a whole number, else a band is partly filled (a metal); the gap is the
    lowest band n+1 minus the highest band n over k-points and spins, none where they overlap (a metal). A metal on a
    coarse mesh can still show a gap between sampled levels; the DFT check's series sees it close on a denser one.
    """
    eigenvalues, occupations = np.asarray(eigenvalues, float), np.asarray(occupations, float)
    full = 2.0 if eigenvalues.ndim == 2 else 1.0
    if eigenvalues.ndim == 2:  # (k, bands) without spin
        eigenvalues, occupations = eigenvalues[None], occupations[None]
    weights = np.ones(eigenvalues.shape[1]) if weights is None else np.asarray(weights, float)
    weights = weights / weights.sum()
    highest, lowest = [], []
    for energies, filling in zip(eigenvalues, occupations, strict=True):
        count = float(weights @ filling.sum(axis=1)) / full
        bands = round(count)
        if abs(count - bands) > FILLING_TOLERANCE:
            return 0.0
        if bands:
            highest.append(energies[:, bands - 1].max())
        if bands < energies.shape[1]:
            lowest.append(energies[:, bands].min())
    if not highest or not lowest:  # no empty (or no filled) band computed: no gap to read
        return 0.0
    return max(float(min(lowest) - max(highest)), 0.0)


def is_metal(gap: float | None) -> bool:
    """No gap, or none known."""
    return gap is None or gap < GAP_MIN


def occupation_state(level: dict, geometry: str) -> tuple:
    """What a level's energy at one geometry depends on besides the mesh: nothing more for a gapped cell (its -TS is
    checked apart); the smearing for a metal (``metal_<geometry>``: found metallic at this level or an earlier one)."""
    metal = level.get(f'metal_{geometry}')
    if not (is_metal(level.get(f'gap_{geometry}')) if metal is None else metal):
        return ('gapped',)
    return ('metal', level.get(f'smearing_{geometry}'), level.get(f'degauss_{geometry}'))


def level_changes(levels: list[dict]) -> list[float | None]:
    """|change of ΔE_geom| from each level to the next; None where the two are not one setting apart: a geometry
    turned from metal to gapped or back, or its smearing changed other than by a smearing step. A change across
    such a switch measures the switch, not the convergence, so the series starts its comparison again."""
    changes: list[float | None] = []
    for before, after in itertools.pairwise(levels):
        width = 2 if after.get('step') == 'smearing' else 3  # a smearing step may change a metal's width only
        same = all(occupation_state(before, g)[:width] == occupation_state(after, g)[:width] for g in GEOMETRIES)
        changes.append(abs(after['delta_e_geom'] - before['delta_e_geom']) if same else None)
    return changes


def series_uncertainty(levels: list[dict]) -> float | None:
    """ΔE_geom's numerical uncertainty: the last change; after a smearing step the larger of it and the sampling
    step's change before it (each setting's own last change: neither is known to be the smaller). None without a
    comparable last pair of levels."""
    changes = level_changes(levels)
    if not changes or changes[-1] is None:
        return None
    if levels[-1].get('step') == 'smearing' and len(changes) > 1 and changes[-2] is not None:
        return max(changes[-2:])
    return changes[-1]


def with_dft_split(table: pd.DataFrame) -> pd.DataFrame:
    """The rows with a finished DFT check, with ``dft_verdict`` and ``error_rest`` = total-energy error - ΔE_geom
    (the model's error against DFT at the model's own geometry, eV/atom)."""
    checked = table[table['dft_check_status'].isin(['ok', 'unconverged'])]
    verdicts = [dft_verdict(*pair) for pair in zip(checked['dft_check_delta_e_geom'],
                                                   checked['dft_check_uncertainty'], strict=True)]  # fmt: skip
    return checked.assign(
        dft_verdict=pd.Series(verdicts, index=checked.index, dtype=object),
        error_rest=checked['error_energy'] - checked['dft_check_delta_e_geom'],
    )


def dft_check_table(table: pd.DataFrame) -> pd.DataFrame:
    """One line per DFT-checked structure (meV/atom): DFT Ehull of the MP geometry, the model's total-energy error,
    ΔE_geom with its numerical uncertainty, the rest, the verdict, and whether MP's geometry is a stationary point in
    QE (largest force, eV/Å; pressure, kbar); failed and unconverged checks with their status."""
    checked = table[table['dft_check_status'].notna()]
    split = with_dft_split(table)
    columns = ['model', 'mp_id', 'formula', 'n_atoms', 'symmetry_change', 'e_above_hull_dft', 'error_energy',
               'dft_check_delta_e_geom', 'dft_check_uncertainty', 'dft_check_status', 'dft_check_mp_max_force',
               'dft_check_mp_pressure']  # fmt: skip
    shown = checked[columns].join(split[['error_rest', 'dft_verdict']])
    for column in ('e_above_hull_dft', 'error_energy', 'dft_check_delta_e_geom', 'dft_check_uncertainty',
                   'error_rest'):  # fmt: skip
        shown[column] = (1000 * pd.to_numeric(shown[column])).round(1)
    for column, digits in (('dft_check_mp_max_force', 3), ('dft_check_mp_pressure', 1)):
        shown[column] = pd.to_numeric(shown[column]).round(digits)
    return shown.rename(
        columns={'e_above_hull_dft': 'DFT Ehull', 'error_energy': 'E error', 'dft_check_delta_e_geom': 'dE_geom',
                 'dft_check_uncertainty': '+-', 'error_rest': 'E error - dE_geom', 'dft_check_status': 'status',
                 'dft_verdict': 'DFT says', 'dft_check_mp_max_force': 'MP F_max eV/A',
                 'dft_check_mp_pressure': 'MP P kbar'}
    ).sort_values(['model', 'mp_id']).reset_index(drop=True)  # fmt: skip


def dft_check_split(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per model, task and value of ``by`` (``dof_bin``, ``symmetry_change``): of the DFT-checked structures, how
    many DFT confirms or contradicts beyond uncertainty and allowance (``dft_verdict``), and the mean total-energy
    error, mean ΔE_geom and mean rest (error - ΔE_geom), eV/atom."""
    from .breakdowns import with_bins

    checked = with_dft_split(table)
    if checked.empty:
        return pd.DataFrame()
    checked = with_bins(checked).assign(
        confirmed=lambda f: f['dft_verdict'].eq('confirmed'), contradicted=lambda f: f['dft_verdict'].eq('contradicted')
    )
    grouped = checked.groupby(['model', 'task', by], observed=True, sort=True)
    return grouped.agg(
        n=('label', 'size'),
        confirmed=('confirmed', 'sum'),
        contradicted=('contradicted', 'sum'),
        mean_error=('error_energy', 'mean'),
        mean_delta_e_geom=('dft_check_delta_e_geom', 'mean'),
        mean_rest=('error_rest', 'mean'),
    ).reset_index()
