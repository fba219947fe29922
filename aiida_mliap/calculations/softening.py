"""``compare_forces``: the softening scale of each model from the DFT and model nodes of perturbed configurations."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from aiida.engine import calcfunction

from ..data.softening import MliapSofteningData
from ..science.softening import NUMERICAL_CHECKS, numerical_change, pairs_frame, softening_table, voigt_to_tensor

DFT, MLIAP, MODEL = 'dft', 'mliap', 'model'


def compared_values(nodes: dict[str, Any]) -> tuple[dict, dict, dict]:
    """From the nodes ``compare_forces`` reads (its flat keyword names, see there): pw.x's values per label, per
    numerical check its values per label, and per model name its values per label (``pairs_frame``'s input)."""
    dft: dict[str, dict] = {}
    checks: dict[str, dict[str, dict]] = {check: {} for check in NUMERICAL_CHECKS}
    mliap: dict[str, dict[str, dict]] = {}
    names = {key.split('__')[1]: node.name for key, node in nodes.items() if key.startswith(f'{MODEL}__')}
    for key, node in nodes.items():
        parts = key.split('__')
        if parts[0] in (DFT, *NUMERICAL_CHECKS) and parts[1] == 'trajectory':
            (dft if parts[0] == DFT else checks[parts[0]])[parts[2]] = _dft_values(nodes, parts[0], parts[2])
        elif parts[0] == MLIAP and parts[2] == 'forces':
            result = nodes[f'{MLIAP}__{parts[1]}__results__{parts[3]}']
            mliap.setdefault(names[parts[1]], {})[parts[3]] = {
                'forces': node.get_array('forces'), 'stress': voigt_to_tensor(result['stress']),
                'energy': result['energy'],
            }  # fmt: skip
    return dft, checks, mliap


@calcfunction
def compare_forces(layout, failures, **nodes):
    """``layout``: per structure label ``{'parent', 'configuration', 'chemsys'}``; ``failures``: what has no value
    and why (a record, carried over); ``nodes``: ``model__<key>`` (the models), per label ``dft__trajectory__<label>``
    (pw.x's forces and stress) and ``dft__parameters__<label>`` (its energy), the same under ``kpoints__``,
    ``smearing__`` and ``cutoff__`` for the configurations run again with that setting tightened
    (``science.softening.NUMERICAL_CHECKS``), and per model key and label ``mliap__<key>__forces__<label>`` and
    ``mliap__<key>__results__<label>``."""
    dft, checks, mliap = compared_values(nodes)
    pairs = pairs_frame(dft, mliap, layout.get_dict())
    models = {key.split('__')[1]: {'name': node.name, 'sha256': node.sha256}
              for key, node in nodes.items() if key.startswith(f'{MODEL}__')}  # fmt: skip
    record = {
        'models': models,
        'softening': _records(softening_table(pairs)),
        'softening_by_chemsys': _records(softening_table(pairs, by_chemsys=True)),
        'failures': failures.get_dict(),
        'n_configurations': int(pairs.loc[pairs['quantity'] == 'forces', 'configuration'].nunique()),
        'n_parents': int(pairs['parent'].nunique()),
        'numerical_error': {check: numerical_change(dft, values) for check, values in checks.items()},
    }
    return MliapSofteningData(record)


def _dft_values(nodes: dict[str, Any], kind: str, label: str) -> dict:
    """pw.x's forces (eV/Å), stress (GPa, ASE's sign: QE's is positive under compression) and energy (eV)."""
    trajectory = nodes[f'{kind}__trajectory__{label}']
    return {'forces': trajectory.get_array('forces')[-1], 'stress': -np.asarray(trajectory.get_array('stress')[-1]),
            'energy': nodes[f'{kind}__parameters__{label}']['energy']}  # fmt: skip


def _records(frame: pd.DataFrame) -> list[dict]:
    """JSON-safe rows (NaN as None)."""
    return [{key: (None if isinstance(value, float) and value != value else value) for key, value in row.items()}
            for row in frame.to_dict('records')]  # fmt: skip
