"""Checks that catch a bad structure before the model sees it, so it fails alone with a precise reason."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from ..contract.status import Status

MIN_DISTANCE = 0.5  # Å: closer than this, two atoms overlap for every potential in use.


def check_structure(atoms: Atoms, supported_numbers: frozenset[int] | None) -> tuple[Status, str] | None:
    """Return ``(status, message)`` when ``atoms`` must not be evaluated, else None."""
    if len(atoms) == 0:
        return Status.INVALID_STRUCTURE, 'the structure has no atoms'
    if not np.all(np.isfinite(atoms.positions)) or not np.all(np.isfinite(atoms.cell.array)):
        return Status.INVALID_STRUCTURE, 'the structure has non-finite coordinates or cell'
    if atoms.pbc.all() and abs(atoms.cell.volume) < 1e-6:
        return Status.INVALID_STRUCTURE, 'the periodic cell has zero volume'
    if supported_numbers is not None:
        unsupported = sorted(set(atoms.get_chemical_symbols()) - _symbols(supported_numbers))
        if unsupported:
            return Status.UNSUPPORTED_ELEMENT, f'the model does not cover element(s) {", ".join(unsupported)}'
    first, second, distance = neighbor_list('ijd', atoms, MIN_DISTANCE)
    if len(distance):
        k = int(np.argmin(distance))
        return (
            Status.INVALID_STRUCTURE,
            f'atoms {first[k]} and {second[k]} overlap ({distance[k]:.3f} Å apart, minimum {MIN_DISTANCE} Å)',
        )
    return None


def _symbols(numbers: frozenset[int]) -> set[str]:
    from ase.data import chemical_symbols

    return {chemical_symbols[z] for z in numbers}


def check_outputs(energy: float, forces: np.ndarray, stress: np.ndarray | None) -> str | None:
    """Return why a model's outputs are unusable (NaN, inf, absurd forces), else None."""
    if not np.isfinite(energy):
        return f'the energy is not finite ({energy})'
    if not np.all(np.isfinite(forces)):
        return 'the forces are not finite'
    if stress is not None and not np.all(np.isfinite(stress)):
        return 'the stress is not finite'
    largest = float(np.abs(forces).max()) if len(forces) else 0.0
    if largest > 1e3:
        return f'the forces exploded (largest component {largest:.3g} eV/Å)'
    return None
