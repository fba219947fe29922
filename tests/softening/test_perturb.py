"""Perturbed configurations with provenance: each one an output of ``perturb_structure``, linked to its parent."""

import numpy as np
import pytest
from aiida import orm
from ase.build import bulk

from aiida_mliap.calculations.perturb import perturb_structure
from aiida_mliap.science.softening import PERTURBATIONS


def test_perturbations_link_to_their_parent_and_seed():
    parent = orm.StructureData(ase=bulk('Si', 'diamond', a=5.43, cubic=True))
    parent.label = 'mp-149'
    parameters = orm.Dict({**PERTURBATIONS, 'seed': 7})
    outputs, node = perturb_structure.run_get_node(parent, parameters)
    assert sorted(outputs) == ['rattle_0', 'rattle_1', 'shear_0', 'volume_0', 'volume_1']
    assert node.inputs.structure.uuid == parent.uuid and node.inputs.parameters['seed'] == 7
    atoms = parent.get_ase()
    for index, sigma in enumerate(PERTURBATIONS['rattle']):
        moved = outputs[f'rattle_{index}'].get_ase()
        displacement = moved.positions - atoms.positions
        assert np.allclose(moved.cell[:], atoms.cell[:]) and 0.5 * sigma < displacement.std() < 1.5 * sigma
        assert outputs[f'rattle_{index}'].label == f'mp-149 rattle_{index}'
    assert outputs['volume_0'].get_ase().get_volume() == pytest.approx(1.02 * atoms.get_volume())
    assert outputs['volume_1'].get_ase().get_volume() == pytest.approx(0.98 * atoms.get_volume())
    sheared = outputs['shear_0'].get_ase().cell[:]
    assert sheared[0, 1] == pytest.approx(0.01 * 5.43) and sheared[1, 0] == pytest.approx(0.01 * 5.43)
    # The same seed gives the same configurations; another seed other rattles (strains do not depend on it).
    again, _ = perturb_structure.run_get_node(parent, orm.Dict({**PERTURBATIONS, 'seed': 7}))
    other, _ = perturb_structure.run_get_node(parent, orm.Dict({**PERTURBATIONS, 'seed': 8}))
    assert np.array_equal(again['rattle_1'].get_ase().positions, outputs['rattle_1'].get_ase().positions)
    assert not np.allclose(other['rattle_1'].get_ase().positions, outputs['rattle_1'].get_ase().positions)
