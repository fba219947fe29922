"""Softening of a model's potential energy surface, measured on perturbed crystals against DFT.

Deng et al. (npj Comput. Mater. 11, 9 (2025)) measure softening as the least-squares slope, through the origin, of a
model's force components on the DFT ones over off-equilibrium structures: below 1, the model's surface is flatter
than DFT's. The report's other slope (model Ehull on DFT Ehull) is a proxy that instability also lowers; this one is
the direct measure. The interval resamples parent structures, not components: the components of one parent's
perturbations are far from independent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .claims import N_BOOTSTRAP, SEED, bootstrap_ols, cluster_codes, cluster_weights, interval95, ols

QUANTITIES = ('forces', 'stress', 'energy')  # force and stress components; E(perturbed) - E(parent)
MIN_GROUP_PARENTS = 3  # a chemical system's own slope needs this many parent structures


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
