"""``compare_forces``: the softening scale of each model from the DFT and model nodes of perturbed configurations."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from aiida.engine import calcfunction

from ..data.softening import MliapSofteningData
from ..science.softening import pairs_frame, softening_table, voigt_to_tensor

DFT, MLIAP, MODEL = 'dft', 'mliap', 'model'


def compared_values(nodes: dict[str, Any]) -> tuple[dict, dict, dict]:
    """``science.softening.pairs_frame``'s ``dft`` and ``mliap`` from the nodes ``compare_forces`` reads (its
    flat keyword names, see there), models by name."""
    dft: dict[str, dict] = {}
    mliap: dict[str, dict[str, dict]] = {}
    names = {key.split('__')[1]: node.name for key, node in nodes.items() if key.startswith(f'{MODEL}__')}
    for key, node in nodes.items():
        parts = key.split('__')
        if parts[0] == DFT and parts[1] == 'trajectory':
            forces, stress = node.get_array('forces')[-1], node.get_array('stress')[-1]
            energy = nodes[f'{DFT}__parameters__{parts[2]}']['energy']
            # QE's stress is positive under compression; ASE's (the models') the other way round.
            dft[parts[2]] = {'forces': forces, 'stress': -np.asarray(stress), 'energy': energy}
        elif parts[0] == MLIAP and parts[2] == 'forces':
            result = nodes[f'{MLIAP}__{parts[1]}__results__{parts[3]}']
            mliap.setdefault(names[parts[1]], {})[parts[3]] = {
                'forces': node.get_array('forces'), 'stress': voigt_to_tensor(result['stress']),
                'energy': result['energy'],
            }  # fmt: skip
    return dft, mliap, names


@calcfunction
def compare_forces(layout, failures, **nodes):
    """``layout``: per structure label ``{'parent', 'configuration', 'chemsys'}``; ``failures``: what has no value
    and why (a record, carried over); ``nodes``: ``model__<key>`` (the models), per label ``dft__trajectory__<label>``
    (pw.x's forces and stress) and ``dft__parameters__<label>`` (its energy), and per model key and label
    ``mliap__<key>__forces__<label>`` and ``mliap__<key>__results__<label>``."""
    dft, mliap, _ = compared_values(nodes)
    pairs = pairs_frame(dft, mliap, layout.get_dict())
    models = {key: {'name': node.name, 'sha256': node.sha256}
              for key, node in nodes.items() if key.startswith(f'{MODEL}__')}  # fmt: skip
    record = {
        'models': {key.split('__')[1]: value for key, value in models.items()},
        'softening': _records(softening_table(pairs)),
        'softening_by_chemsys': _records(softening_table(pairs, by_chemsys=True)),
        'failures': failures.get_dict(),
        'n_configurations': int(pairs.loc[pairs['quantity'] == 'forces', 'configuration'].nunique()),
        'n_parents': int(pairs['parent'].nunique()),
    }
    return MliapSofteningData(record)


def _records(frame: pd.DataFrame) -> list[dict]:
    """JSON-safe rows (NaN as None)."""
    return [{key: (None if isinstance(value, float) and value != value else value) for key, value in row.items()}
            for row in frame.to_dict('records')]  # fmt: skip
