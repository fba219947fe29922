"""Per-structure result node: its own type so that QueryBuilder can target results of any framework."""

from .identity import IdentityDict


class MliapResultData(IdentityDict):
    """Energy (eV), energy per atom (eV/atom), largest force (eV/Å), stress (eV/Å^3, Voigt), status and timing."""
