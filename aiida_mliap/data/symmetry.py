"""Symmetry of one structure before and after a model's relaxation, at two tolerances."""

from .identity import IdentityDict


class MliapSymmetryData(IdentityDict):
    """Headline keys at the default tolerance for QueryBuilder filters (``spacegroup_initial``, ``spacegroup_final``,
    ``crystal_system``, ``dof``, ``symmetry_change``, ...), the full spglib records under ``initial``/``final`` by
    tolerance, and ``fixsym_energy_gap_per_atom`` when a free relaxation of the same structure was compared."""
