"""What the runner writes and everything downstream reads: one home, so runner, parser and nodes cannot drift apart."""

from __future__ import annotations

from typing import Any

import numpy as np

from .status import Status

# The keys of one structure's result record (runner -> results.jsonl -> parser -> MliapResultData).
RESULT_KEYS = (
    'label',
    'n_atoms',
    'formula',
    'task',
    'status',
    'message',
    'energy',
    'energy_per_atom',
    'forces_max',
    'stress',
    'converged',
    'n_steps',
    'wall_time_s',
    'model_sha256',
)

# What a row of the results table takes from a structure's result: ``compute_thermodynamics`` carries these
# forward into its thermo records (``status`` as ``result_status``), so the table is read without walking back.
ROW_RESULT_KEYS = ('status', 'converged', 'n_steps', 'forces_max', 'wall_time_s')

# What a batch table copies of each row (``tabulate_batch``): what thermodynamics, the symmetry analysis and the
# thermo records read, and no more (a table is one copy of every structure of its batch).
TABLE_REFERENCE_KEYS = (
    'label', 'mp_id', 'formula', 'chemsys', 'n_atoms', 'composition', 'energy', 'energy_per_atom', 'correction',
    'run_type', 'is_hubbard', 'hubbards', 'potcar_spec', 'oxide_type', 'oxidation_states',
)  # fmt: skip
TABLE_RESULT_KEYS = ('task', 'model_sha256', 'message', 'energy', 'energy_per_atom', *ROW_RESULT_KEYS)

# Energy (eV), forces (eV/Å) and Voigt stress (eV/Å^3) of one structure, as a framework returns them.
Outputs = tuple[float, np.ndarray, np.ndarray]

# Whether a model's (and a dataset's) energies include the MP2020 corrections.
ENERGY_SCALES = ('mp2020_corrected', 'raw_dft')


def empty_result() -> dict[str, Any]:
    """The schema's value keys, present (as null) even for a structure that failed."""
    return {
        'energy': None,
        'energy_per_atom': None,
        'forces_max': None,
        'stress': None,
        'converged': False,
        'n_steps': 0,
        'status': Status.ERROR.value,
        'message': '',
    }
