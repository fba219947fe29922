"""Per-structure result node: its own type so that QueryBuilder can target results of any framework."""

from .identity import IdentityDict

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


class MliapResultData(IdentityDict):
    """Energy (eV), energy per atom (eV/atom), largest force (eV/Å), stress (eV/Å^3, Voigt), status and timing."""
