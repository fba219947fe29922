"""Symmetry degrees of freedom of textbook structures, each written out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.spacegroup import crystal

from aiida_mliap.science.symmetry import SymmetryError, analyse, analyse_atoms, symmetry_change


def record(atoms, symprec=0.01):
    return analyse(atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers, symprec=symprec)


def cubic(symbols, basis, number, a):
    return crystal(symbols, basis, spacegroup=number, cellpar=[a, a, a, 90, 90, 90])


TEXTBOOK = {
    # name: (structure, space group, lattice system, DOF and where it comes from)
    'rocksalt NaCl': (bulk('NaCl', 'rocksalt', a=5.64), 225, 'cubic', 1),  # a; Na 4a, Cl 4b fixed
    'CsCl': (bulk('CsCl', 'cesiumchloride', a=4.12), 221, 'cubic', 1),  # a; Cs 1a, Cl 1b fixed
    'diamond Si': (bulk('Si', 'diamond', a=5.43), 227, 'cubic', 1),  # a; Si 8a fixed
    'fluorite CaF2': (bulk('CaF2', 'fluorite', a=5.46), 225, 'cubic', 1),  # a; Ca 4a, F 8c fixed
    'cubic perovskite SrTiO3': (
        cubic(['Sr', 'Ti', 'O'], [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], 221, 3.905),
        221,
        'cubic',
        1,  # a; Sr 1a, Ti 1b, O 3c fixed
    ),
    'rutile TiO2': (
        crystal(['Ti', 'O'], [(0, 0, 0), (0.305, 0.305, 0)], spacegroup=136, cellpar=[4.59, 4.59, 2.96, 90, 90, 90]),
        136,
        'tetragonal',
        3,  # a, c; O 4f (x, x, 0): x
    ),
    'wurtzite ZnO': (
        bulk('ZnO', 'wurtzite', a=3.25, c=5.21, u=0.382),
        186,
        'hexagonal',
        3,  # a, c; Zn 2b z, O 2b z; minus one z: the origin floats along c
    ),
    'spinel MgAl2O4': (
        crystal(
            ['Mg', 'Al', 'O'],
            [(0.125, 0.125, 0.125), (0.5, 0.5, 0.5), (0.263, 0.263, 0.263)],
            spacegroup=227,
            setting=2,
            cellpar=[8.08, 8.08, 8.08, 90, 90, 90],
        ),
        227,
        'cubic',
        2,  # a; O 32e (x, x, x): x
    ),
    'corundum Al2O3': (
        crystal(
            ['Al', 'O'], [(0, 0, 0.3523), (0.3064, 0, 0.25)], spacegroup=167, cellpar=[4.76, 4.76, 12.99, 90, 90, 120]
        ),
        167,
        'rhombohedral',
        4,  # a, c; Al 12c (0, 0, z): z; O 18e (x, 0, 1/4): x
    ),
}


@pytest.mark.parametrize('name', TEXTBOOK)
def test_textbook_dof(name):
    atoms, number, lattice_system, dof = TEXTBOOK[name]
    result = record(atoms)
    assert (result['spacegroup_number'], result['lattice_system'], result['dof']) == (number, lattice_system, dof)
    # The strict tolerance agrees on ideal structures.
    assert record(atoms, symprec=1e-5)['dof'] == dof


def test_wyckoff_details_of_rutile_and_wurtzite():
    rutile = record(TEXTBOOK['rutile TiO2'][0])
    assert [(o['element'], o['wyckoff'], o['multiplicity'], o['free']) for o in rutile['orbits']] == [
        (22, 'a', 2, 0),
        (8, 'f', 4, 1),
    ]
    assert (rutile['crystal_system'], rutile['point_group'], rutile['point_group_order']) == ('tetragonal', '4/mmm', 16)
    assert rutile['origin_dof'] == 0
    wurtzite = record(TEXTBOOK['wurtzite ZnO'][0])
    assert [(o['wyckoff'], o['free']) for o in wurtzite['orbits']] == [('b', 1), ('b', 1)]
    assert (wurtzite['lattice_dof'], wurtzite['wyckoff_dof'], wurtzite['origin_dof']) == (2, 2, 1)
    corundum = record(TEXTBOOK['corundum Al2O3'][0])
    assert corundum['crystal_system'] == 'trigonal'
    assert sorted((o['wyckoff'], o['multiplicity']) for o in corundum['orbits']) == [('c', 12), ('e', 18)]


@pytest.mark.parametrize('n_atoms', [2, 3, 7])
def test_triclinic_p1(n_atoms):
    """A general triclinic cell of n atoms: 6 lattice parameters + 3n coordinates - 3 for the floating origin.

    (Distinct elements: one atom, or two of one element, would sit on inversion centres, P-1.)"""
    rng = np.random.default_rng(n_atoms)
    atoms = Atoms(
        ['H', 'He', 'Li', 'Be', 'B', 'C', 'N'][:n_atoms],
        cell=[[4.1, 0.0, 0.0], [0.7, 4.6, 0.0], [0.4, 0.9, 5.3]],
        scaled_positions=rng.random((n_atoms, 3)),
        pbc=True,
    )
    result = record(atoms)
    assert result['spacegroup_number'] == 1 and result['lattice_system'] == 'triclinic'
    assert result['dof'] == 6 + 3 * n_atoms - 3


def test_supercell_counts_the_same_dof():
    """The DOF belongs to the crystal, not the cell chosen to describe it."""
    rutile = TEXTBOOK['rutile TiO2'][0]
    for repeat in ((2, 2, 2), (2, 1, 2)):  # the second breaks the tetragonal metric of the cell
        supercell = record(rutile.repeat(repeat))
        assert (supercell['spacegroup_number'], supercell['dof']) == (136, 3)
        assert [(o['wyckoff'], o['multiplicity'], o['free']) for o in supercell['orbits']] == [('a', 2, 0), ('f', 4, 1)]


def test_distortion_seen_only_at_the_strict_tolerance():
    atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True)
    atoms.positions[0] += [0.002, 0.001, 0.0]  # Å: below 0.01, above 1e-5
    loose, strict = analyse_atoms(atoms).values()
    assert loose['spacegroup_number'] == 225 and loose['dof'] == 1
    assert strict['spacegroup_number'] < 225 and strict['dof'] > 1
    assert symmetry_change(loose, strict) == 'lowered'
    assert symmetry_change(strict, loose) == 'raised'
    assert symmetry_change(loose, loose) == 'kept'


def test_overlapping_atoms_are_refused():
    atoms = Atoms('H2', cell=np.eye(3) * 3, scaled_positions=[[0, 0, 0], [0, 0, 0]], pbc=True)
    with pytest.raises(SymmetryError, match='no symmetry'):
        record(atoms)


def test_every_shared_mp_structure(shared_data):
    """All 2,680 structures of ../shared/data/mp/ at both tolerances: no error, and DOF within its bounds."""
    import gzip
    import json

    from pymatgen.core import Structure

    count = 0
    for path in sorted((shared_data / 'mp').glob('*.json.gz')):
        with gzip.open(path, 'rt') as handle:
            for data in json.load(handle):
                structure = Structure.from_dict(data['structure'])
                cell = (structure.lattice.matrix, structure.frac_coords, structure.atomic_numbers)
                for symprec in (0.01, 1e-5):
                    result = analyse(*cell, symprec=symprec)
                    # At least one lattice parameter; at most the P1 count of the primitive cell.
                    assert 1 <= result['dof'] <= 6 + 3 * len(structure) - 3, (data['data']['material_id'], result)
                    assert sum(o['sites'] for o in result['orbits']) == len(structure)
                count += 1
    assert count == 2680


def test_real_mp_structures_by_hand(lifepo_entries):
    """LiFePO4 (mp-19017, Pnma): a, b, c + Fe, P and two O at 4c (x, z each) + O at 8d (x, y, z) = 14.
    Fe2O3 (mp-19770, R-3c, corundum type): a, c + Fe 12c (z) + O 18e (x) = 4."""
    from pymatgen.core import Structure

    expected = {'mp-19017': ('Pnma', 14), 'mp-19770': ('R-3c', 4)}
    for data in lifepo_entries:
        if data['data']['material_id'] in expected:
            structure = Structure.from_dict(data['structure'])
            result = analyse(structure.lattice.matrix, structure.frac_coords, structure.atomic_numbers)
            assert (result['spacegroup_symbol'], result['dof']) == expected[data['data']['material_id']]
