"""Softening of a model's potential energy surface, measured on perturbed crystals against DFT.

Deng et al. (npj Comput. Mater. 11, 9 (2025)) measure softening as the least-squares slope, through the origin, of a
model's force components on the DFT ones over off-equilibrium structures: below 1, the model's surface is flatter
than DFT's. The report's other slope (model Ehull on DFT Ehull) is a proxy that instability also lowers; this one is
the direct measure. The interval resamples parent structures, not components: the components of one parent's
perturbations are far from independent.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from .breakdowns import DOF_BIN_LABELS, DOF_BINS
from .claims import N_BOOTSTRAP, SEED, bootstrap_ols, cluster_codes, cluster_weights, interval95, ols

QUANTITIES = ('forces', 'stress', 'energy')  # force and stress components; E(perturbed) - E(parent)
MIN_GROUP_PARENTS = 3  # a chemical system's own slope needs this many parent structures
MAX_ATOMS = 8  # the worked example's DFT budget on two cores
# A perturbed cell stays close to its parent: the parent's mesh at this spacing (Å⁻¹) serves all its configurations,
# so a force difference between them is not a sampling difference. Denser than the DFT check's first level: forces
# converge more slowly with sampling than a difference of two energies.
KPOINTS_DISTANCE = 0.3


def softening_scale(
    pairs: pd.DataFrame, cluster: str = 'parent', n_bootstrap: int = N_BOOTSTRAP, seed: int = SEED
) -> dict[str, Any]:
    """Slope through the origin of ``mliap`` (the model's values) on ``dft`` (sum(xy) / sum(x^2)), its 95 % interval
    from a bootstrap over ``cluster`` (None below ``claims.MIN_CLUSTERS`` clusters), and the MAE and RMSE of
    model - DFT."""
    rows = pairs.dropna(subset=['dft', 'mliap', cluster])
    x, y = rows['dft'].to_numpy(float), rows['mliap'].to_numpy(float)
    result: dict[str, Any] = {'n': len(rows), 'n_parents': int(rows[cluster].nunique())}
    if not len(rows) or not np.any(x):
        return {**result, 'slope': None, 'slope_ci95': None, 'mae': None, 'rmse': None}
    design = x[:, None]
    weights = cluster_weights(rows[cluster], n_bootstrap, seed)
    resampled = None
    if weights is not None:
        codes, _ = cluster_codes(rows[cluster])
        resampled = bootstrap_ols(design, y, codes, weights)[:, 0]
    errors = y - x
    return {
        **result,
        'slope': float(ols(design, y)[0]),
        'slope_ci95': None if resampled is None else interval95(resampled),
        'mae': float(np.abs(errors).mean()),
        'rmse': float(np.sqrt((errors**2).mean())),
    }


def softening_table(pairs: pd.DataFrame, by_chemsys: bool = False, **bootstrap) -> pd.DataFrame:
    """Per model and quantity (and chemical system where it has ``MIN_GROUP_PARENTS`` parents), the softening scale.
    ``pairs``: one row per compared value, with ``model`` (its name), ``quantity``, ``parent``, ``dft`` and
    ``mliap`` (the DFT and the model's value in the same units), and ``chemsys`` for ``by_chemsys``."""
    keys = ['model', 'quantity'] + (['chemsys'] if by_chemsys else [])
    rows = []
    for key, group in pairs.groupby(keys, sort=True):
        if by_chemsys and group['parent'].nunique() < MIN_GROUP_PARENTS:
            continue
        rows.append({**dict(zip(keys, key, strict=True)), **softening_scale(group, **bootstrap)})
    return pd.DataFrame(rows)


# The perturbations of the worked example (Deng et al. use rattled and strained crystals alike): displacements that
# give forces of ~0.1-1 eV/Å, strains that give stresses of a few GPa, small enough to stay in the parent's basin.
PERTURBATIONS = {'rattle': [0.03, 0.08], 'volume': [0.02, -0.02], 'shear': [0.02]}


def perturbation_problem(spec: dict[str, Any]) -> str | None:
    """Why ``spec`` cannot make configurations, or None: lists of numbers under ``rattle`` (Å, > 0), ``volume``
    and ``shear`` (|x| < 0.5), a whole ``seed``, at least one perturbation."""
    unknown = sorted(set(spec) - {*PERTURBATIONS, 'seed'})
    if unknown:
        return f'unknown perturbations {unknown}: use {sorted(PERTURBATIONS)} and seed'
    if not isinstance(spec.get('seed'), int) or isinstance(spec.get('seed'), bool):
        return f'the perturbations need a whole `seed`, got {spec.get("seed")!r}'
    for kind in PERTURBATIONS:
        values = spec.get(kind, [])
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in values):  # fmt: skip
            return f'`{kind}` must be a list of numbers, got {values!r}'
        if kind == 'rattle' and any(v <= 0 for v in values):
            return f'`rattle` sigmas must be positive (Å), got {values}'
        if kind != 'rattle' and any(abs(v) >= 0.5 for v in values):
            return f'`{kind}` strains must lie within ±0.5, got {values}'
    if not any(spec.get(kind) for kind in PERTURBATIONS):
        return 'no perturbation asked for: give `rattle`, `volume` or `shear` values'
    return None


def perturbations(atoms, spec: dict[str, list[float]], seed: int) -> dict[str, Any]:
    """Named copies of ``atoms`` (an ASE Atoms), one per value of ``spec``: ``rattle_i``, every atom displaced by a
    normal deviate of sigma (Å) per Cartesian component; ``volume_i``, the cell scaled isotropically to (1 + v) times
    its volume, fractional coordinates kept; ``shear_i``, the cell sheared by a symmetric xy strain of that size.
    Each rattle draws from its own stream of ``seed``, so adding a perturbation does not move the others."""
    found = {}
    for index, sigma in enumerate(spec.get('rattle', [])):
        rattled = atoms.copy()
        rng = np.random.default_rng([seed, index])
        rattled.positions = rattled.positions + rng.normal(0.0, sigma, rattled.positions.shape)
        found[f'rattle_{index}'] = rattled
    for kind in ('volume', 'shear'):
        for index, size in enumerate(spec.get(kind, [])):
            strain = np.eye(3) * (1 + size) ** (1 / 3)
            if kind == 'shear':
                strain = np.eye(3)
                strain[0, 1] = strain[1, 0] = size / 2
            strained = atoms.copy()
            strained.set_cell(atoms.cell[:] @ strain, scale_atoms=True)
            found[f'{kind}_{index}'] = strained
    return found


VOIGT = ('xx', 'yy', 'zz', 'yz', 'xz', 'xy')
VOIGT_INDICES = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
EV_PER_A3_TO_GPA = 160.21766208


def pairs_frame(dft: dict[str, dict], mliap: dict[str, dict[str, dict]], layout: dict[str, dict]) -> pd.DataFrame:
    """One row per compared value: ``model``, ``parent``, ``configuration`` (its label), ``perturbation`` (its
    kind and index: ``rattle_0``; ``parent``), ``chemsys``, ``quantity`` (``forces``:
    eV/Å per atom and Cartesian component; ``stress``: GPa per Voigt component, ASE's sign, tension positive;
    ``energy``: E(configuration) - E(parent), eV/atom), ``component``, ``dft`` and ``mliap``.

    ``dft`` and ``mliap[model]``: per structure label ``forces`` (n, 3), ``stress`` (3, 3, GPa, ASE's sign) and
    ``energy`` (eV); ``layout``: per label its ``parent`` label, ``configuration`` name (``parent`` for the parent
    itself) and ``chemsys``. Values missing on either side are left out (the caller records why)."""
    rows = []
    for model, values in sorted(mliap.items()):
        for label, place in sorted(layout.items()):
            ours, theirs = dft.get(label), values.get(label)
            if ours is None or theirs is None:
                continue
            base = {'model': model, 'parent': place['parent'], 'configuration': label,
                    'perturbation': place['configuration'], 'chemsys': place['chemsys']}  # fmt: skip
            if place['configuration'] != 'parent':
                model_forces = np.asarray(theirs['forces'], dtype=float)
                for (atom, axis), value in np.ndenumerate(np.asarray(ours['forces'], dtype=float)):
                    rows.append({**base, 'quantity': 'forces', 'component': f'{atom}{"xyz"[axis]}', 'dft': value,
                                 'mliap': model_forces[atom, axis]})  # fmt: skip
                parent_dft, parent_mliap = dft.get(place['parent']), values.get(place['parent'])
                if parent_dft is not None and parent_mliap is not None:
                    n_atoms = len(ours['forces'])
                    rows.append({**base, 'quantity': 'energy', 'component': 'per_atom',
                                 'dft': (ours['energy'] - parent_dft['energy']) / n_atoms,
                                 'mliap': (theirs['energy'] - parent_mliap['energy']) / n_atoms})  # fmt: skip
            for name, (i, j) in zip(VOIGT, VOIGT_INDICES, strict=True):
                rows.append({**base, 'quantity': 'stress', 'component': name,
                             'dft': ours['stress'][i][j], 'mliap': theirs['stress'][i][j]})  # fmt: skip
    columns = ['model', 'parent', 'configuration', 'perturbation', 'chemsys', 'quantity', 'component', 'dft', 'mliap']
    return pd.DataFrame(rows, columns=columns)


def voigt_to_tensor(voigt: list[float]) -> np.ndarray:
    """ASE's Voigt stress (eV/Å^3: xx, yy, zz, yz, xz, xy) as a 3x3 tensor in GPa."""
    tensor = np.zeros((3, 3))
    for value, (i, j) in zip(voigt, VOIGT_INDICES, strict=True):
        tensor[i, j] = tensor[j, i] = value * EV_PER_A3_TO_GPA
    return tensor


def select_parents(
    rows: pd.DataFrame, labels: tuple[str, ...] = (), max_atoms: int = MAX_ATOMS, max_parents: int = 10,
    max_e_above_hull: float = 0.0,
) -> list[str]:  # fmt: skip
    """Parent structures from reference rows (``label``, ``chemsys``, ``n_atoms``, ``e_above_hull``, optional
    ``dof``): the given ``labels`` first, then structures on the hull (or within ``max_e_above_hull``, eV/atom) of 2
    to ``max_atoms`` atoms, one per chemical system per round, within a system the DOF bin chosen least so far, then
    the smallest cell: a few parents spread over many systems and over symmetry DOF. A 1-atom cell is left out: a
    rattle only translates it, and its forces stay zero. A given label that is unknown or too large is a
    ValueError."""
    known = rows.set_index('label')
    unknown = sorted(set(labels) - set(known.index))
    if unknown:
        raise ValueError(f'not in the dataset: {unknown}')
    too_large = {label: int(known.loc[label, 'n_atoms']) for label in labels if known.loc[label, 'n_atoms'] > max_atoms}
    if too_large:
        raise ValueError(f'larger than the DFT budget of {max_atoms} atoms: {too_large}')
    rows = rows.assign(dof=pd.to_numeric(rows['dof']) if 'dof' in rows else np.nan)
    rows['dof_bin'] = pd.cut(rows['dof'], DOF_BINS, labels=DOF_BIN_LABELS).astype(str)
    pool = rows[rows['n_atoms'].between(2, max_atoms) & (rows['e_above_hull'] <= max_e_above_hull)
                & ~rows['label'].isin(labels)].sort_values(['n_atoms', 'label'])  # fmt: skip
    chosen = list(labels)
    seen = Counter(rows.set_index('label').loc[list(labels), 'dof_bin'])
    waiting = {chemsys: list(group.itertuples()) for chemsys, group in pool.groupby('chemsys', sort=True)}
    while len(chosen) < max_parents and any(waiting.values()):
        for candidates in waiting.values():
            if not candidates or len(chosen) >= max_parents:
                continue
            pick = min(candidates, key=lambda row: (seen[row.dof_bin], row.n_atoms, row.label))
            candidates.remove(pick)
            chosen.append(pick.label)
            seen[pick.dof_bin] += 1
    return chosen


# The DFT values' numerical error: one configuration per parent (its largest rattle) run again with one setting
# tightened at a time; the change is the error that setting leaves. k-points: the spacing times the DFT check's
# refinement; smearing: degauss halved on the same mesh; cutoff: both plane-wave cutoffs raised by this factor.
NUMERICAL_CHECKS = ('kpoints', 'smearing', 'cutoff')
CUTOFF_CHECK = 1.3


def numerical_change(dft: dict[str, dict], tightened: dict[str, dict]) -> dict[str, Any]:
    """How much the DFT values of the configurations run twice change when one setting is tightened: per label the
    largest force component change (eV/Å), stress component change (GPa) and energy change (eV/atom), and the
    largest of each over all labels (None without any): the numerical error the compared DFT values carry from it."""
    per_label = {}
    for label, other in sorted(tightened.items()):
        if label not in dft:
            continue
        base = dft[label]
        per_label[label] = {
            'forces': float(np.abs(np.asarray(other['forces']) - np.asarray(base['forces'])).max()),
            'stress': float(np.abs(np.asarray(other['stress']) - np.asarray(base['stress'])).max()),
            'energy': abs(other['energy'] - base['energy']) / len(base['forces']),
        }
    largest = {key: max((values[key] for values in per_label.values()), default=None) for key in QUANTITIES}
    return {'per_configuration': per_label, 'largest': largest}
