"""Space group, Wyckoff positions and symmetry degrees of freedom of a crystal, with spglib (no AiiDA).

Degrees of freedom (DOF) are the continuous parameters a structure keeps within its space group:

    DOF = lattice DOF + sum over Wyckoff orbits of the orbit's free coordinates - floating-origin directions

- lattice DOF by lattice system: triclinic 6, monoclinic 4, orthorhombic 3, tetragonal 2, hexagonal 2,
  rhombohedral 2, cubic 1;
- an orbit's free coordinates: the dimension of the subspace fixed by every rotation of its site-symmetry group
  (the operations of the space group that map the site onto itself), computed from spglib's operations;
- in polar space groups every site may slide along the polar directions together: that shift of the origin is
  not a physical parameter, so the dimension of the subspace fixed by the whole point group is subtracted.

Worked examples: rutile TiO2 (P4_2/mnm): a, c + O at 4f (x, x, 0) = 3; wurtzite ZnO (P6_3mc): a, c + z of Zn and
z of O at 2b, minus the floating origin along c = 3; a triclinic P1 cell of n atoms: 6 + 3n - 3.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import spglib

SYMPRECS = (0.01, 1e-5)  # Å: the default, and the strict second tolerance
LATTICE_DOF = {
    'triclinic': 6,
    'monoclinic': 4,
    'orthorhombic': 3,
    'tetragonal': 2,
    'hexagonal': 2,
    'rhombohedral': 2,
    'cubic': 1,
}
CHANGES = ('kept', 'lowered', 'raised', 'changed')


class SymmetryError(ValueError):
    """spglib found no symmetry for the cell (overlapping atoms, a broken cell)."""


@functools.cache
def crystal_and_lattice_system(number: int) -> tuple[str, str]:
    """Crystal system from pymatgen's space-group tables; lattice system as pymatgen's ``get_lattice_type``
    (the crystal family, with R-centred trigonal groups as rhombohedral)."""
    from pymatgen.symmetry.groups import SpaceGroup

    group = SpaceGroup.from_int_number(number)
    crystal = group.crystal_system
    if group.symbol.startswith('R'):
        return crystal, 'rhombohedral'
    return crystal, 'hexagonal' if crystal == 'trigonal' else crystal


def fixed_dimension(rotations: np.ndarray) -> int:
    """Dimension of the subspace left fixed by every rotation (3 minus the rank of the stacked R - 1)."""
    return 3 - int(np.linalg.matrix_rank(np.concatenate([r - np.eye(3) for r in rotations]).astype(float)))


@functools.cache
def operations(hall_number: int) -> tuple[np.ndarray, np.ndarray]:
    """The space group's operations in its standardized conventional setting, from spglib's database."""
    ops = spglib.get_symmetry_from_database(hall_number)
    return np.asarray(ops['rotations']), np.asarray(ops['translations'])


def analyse(lattice: np.ndarray, positions: np.ndarray, numbers: np.ndarray, symprec: float = SYMPRECS[0]) -> dict:
    """Symmetry record of a cell (lattice rows in Å, fractional positions, atomic numbers) at ``symprec`` (Å).

    Site symmetries are taken in spglib's standardized, idealized conventional cell with the database's operations:
    a supercell that breaks the lattice's metric (say 2x1x2 of a tetragonal cell) carries only some of the
    operations in its own basis, and would overcount the free coordinates.
    """
    lattice, positions, numbers = np.asarray(lattice, float), np.asarray(positions, float), np.asarray(numbers, int)
    dataset = spglib.get_symmetry_dataset((lattice, positions, numbers), symprec=symprec)
    if dataset is None:
        raise SymmetryError(f'spglib found no symmetry at symprec {symprec}: {spglib.get_error_message()}')
    rotations, translations = operations(int(dataset.hall_number))
    crystal, lattice_system = crystal_and_lattice_system(int(dataset.number))

    # Orbits are named by their first atom in the given cell; conventional-cell atoms map to them via the
    # primitive cell.
    orbit_of_primitive = dict(zip(dataset.mapping_to_primitive, dataset.crystallographic_orbits, strict=True))
    std_orbits = np.array([orbit_of_primitive[p] for p in dataset.std_mapping_to_primitive])
    std_positions, std_lattice = np.asarray(dataset.std_positions), np.asarray(dataset.std_lattice)
    orbits = []
    for representative in sorted({int(i) for i in dataset.crystallographic_orbits}):
        members = np.flatnonzero(std_orbits == representative)
        site = std_positions[members[0]]
        images = rotations @ site + translations - site
        images -= np.round(images)
        in_site_group = np.linalg.norm(images @ std_lattice, axis=1) < 1e-3
        orbits.append(
            {
                'element': int(numbers[representative]),
                'wyckoff': str(dataset.wyckoffs[representative]),
                'multiplicity': len(members),
                'site_symmetry': str(dataset.site_symmetry_symbols[representative]),
                'free': fixed_dimension(rotations[in_site_group]),
                'sites': int(np.sum(dataset.crystallographic_orbits == representative)),
            }
        )
    point_rotations = np.unique(rotations.reshape(len(rotations), 9), axis=0).reshape(-1, 3, 3)
    n_primitive = len(set(dataset.mapping_to_primitive))
    lattice_dof = LATTICE_DOF[lattice_system]
    wyckoff_dof = sum(orbit['free'] for orbit in orbits)
    origin_dof = fixed_dimension(point_rotations)
    return {
        'symprec': symprec,
        'spacegroup_number': int(dataset.number),
        'spacegroup_symbol': str(dataset.international),
        'hall_number': int(dataset.hall_number),
        'hall_symbol': str(dataset.hall),
        'crystal_system': crystal,
        'lattice_system': lattice_system,
        'point_group': str(dataset.pointgroup),
        'point_group_order': len(point_rotations),
        # Operations of the crystal modulo the given cell's lattice: what "lowered" and "raised" compare.
        'n_operations': len(point_rotations) * len(numbers) // n_primitive,
        'wyckoff_letters': [str(letter) for letter in dataset.wyckoffs],
        'orbits': orbits,
        'lattice_dof': lattice_dof,
        'wyckoff_dof': wyckoff_dof,
        'origin_dof': origin_dof,
        'dof': lattice_dof + wyckoff_dof - origin_dof,
    }


def analyse_atoms(atoms, symprecs: tuple[float, ...] = SYMPRECS) -> dict[str, Any]:
    """``analyse`` of ASE Atoms (or anything with ``cell``, scaled positions and numbers) at every tolerance."""
    cell = (np.asarray(atoms.cell[:]), atoms.get_scaled_positions(wrap=True), atoms.numbers)
    return {symprec_key(symprec): analyse(*cell, symprec=symprec) for symprec in symprecs}


def symprec_key(symprec: float) -> str:
    """Attribute key of a tolerance, e.g. ``symprec_0.01``, ``symprec_1e-05``."""
    return f'symprec_{symprec:g}'


def symmetry_change(before: dict, after: dict) -> str:
    """``kept`` (same space group), ``lowered``/``raised`` (fewer/more operations mapping the cell onto itself),
    or ``changed`` (another group with as many operations)."""
    if before['spacegroup_number'] == after['spacegroup_number'] and before['n_operations'] == after['n_operations']:
        return 'kept'
    if after['n_operations'] < before['n_operations']:
        return 'lowered'
    if after['n_operations'] > before['n_operations']:
        return 'raised'
    return 'changed'
