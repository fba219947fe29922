"""analyse_symmetry on real CalcJobs (CHGNet relaxations, free and symmetry-constrained) and on a dataset."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mliap.calculations.dataset import import_reference_file
from aiida_mliap.calculations.mliap import get_builder_for, structure_link_label
from aiida_mliap.calculations.symmetry_analysis import analyse_symmetry, symmetry_inputs
from aiida_mliap.calculations.tables import tabulate
from aiida_mliap.data.symmetry import MliapSymmetryData
from aiida_mliap.provenance.links import outputs_of
from aiida_mliap.science.symmetry import analyse_atoms

RELAX = {'task': 'relax', 'fmax': 0.1, 'max_steps': 60, 'optimizer': 'FIRE', 'device': 'cpu'}


def symmetry_records(node) -> dict:
    return outputs_of([node.pk], 'symmetry', project='attributes')[node.pk]


def test_relaxations_free_and_fixed_symmetry(runner_code, chgnet_model, make_structures):
    structures = make_structures(3)
    free, free_node = run_get_node(get_builder_for(runner_code, chgnet_model, structures, RELAX))
    fixed, fixed_node = run_get_node(
        get_builder_for(runner_code, chgnet_model, structures, {**RELAX, 'fix_symmetry': True})
    )
    assert free_node.is_finished_ok and fixed_node.is_finished_ok

    labelled = {structure_link_label(structure): structure for structure in structures}
    table = tabulate(fixed_node.inputs.parameters, {}, dict(fixed['results']))[0]
    free_table = tabulate(free_node.inputs.parameters, {}, dict(free['results']))[0]
    outputs, node = analyse_symmetry.run_get_node(
        **symmetry_inputs(labelled, dict(fixed['relaxed_structures']), table=table, free=free_table)
    )
    assert outputs['summary']['counts'] == {'ok': 3}
    records = symmetry_records(node)
    for structure in structures:
        label = structure_link_label(structure)
        record = records[label]
        expected = analyse_atoms(structure.get_ase())['symprec_0.01']
        assert (record['spacegroup_initial'], record['dof']) == (expected['spacegroup_number'], expected['dof'])
        assert record['mp_id'] == structure.label and record['model_sha256'] == chgnet_model.sha256
        assert record['task'] == 'relax_fixsym' and record['fix_symmetry'] is True
        # FixSymmetry keeps the space group at the default tolerance.
        assert record['symmetry_change'] == 'kept' and record['spacegroup_final'] == record['spacegroup_initial']
        gap = fixed['results'][label]['energy_per_atom'] - free['results'][label]['energy_per_atom']
        assert record['fixsym_energy_gap_per_atom'] == pytest.approx(gap, abs=1e-12)
        assert gap > -5e-3, 'a free relaxation should not end much higher than a constrained one'

    # The headline keys are what QueryBuilder filters on.
    crystal_system = records[structure_link_label(structures[0])]['crystal_system']
    query = orm.QueryBuilder().append(
        MliapSymmetryData,
        filters={
            'attributes.crystal_system': crystal_system,
            'attributes.symmetry_change': 'kept',
            'attributes.dof': {'>=': 1},
            'attributes.model_sha256': chgnet_model.sha256,
        },
        project='attributes.mp_id',
    )
    assert structures[0].label in query.all(flat=True)


@pytest.mark.storage
def test_dataset_structures(li_extxyz):
    """Without a model: the DFT structures of a dataset; bcc and fcc Li, one lattice parameter each."""
    _, dataset, _ = import_reference_file(li_extxyz('li-symmetry.extxyz', 'sym'), 'symmetry-dataset')
    outputs, node = analyse_symmetry.run_get_node(**symmetry_inputs(dataset=dataset))
    records = symmetry_records(node)
    assert {label: (r['spacegroup_initial'], r['dof']) for label, r in records.items()} == {
        'sym_1': (229, 1),
        'sym_2': (225, 1),
    }
    assert records['sym_1']['symmetry_change'] is None and records['sym_1']['final'] is None
    assert outputs['summary']['crystal_systems'] == {'cubic': 2}
    with pytest.raises(ValueError, match='either a dataset or the initial structures'):
        analyse_symmetry(**symmetry_inputs())


def test_only_inputs_are_read(runner_code, chgnet_model, make_structures):
    """Closed provenance: from each symmetry node back through create and input links to the structures and
    results it was computed from (the relaxed structure and the result nodes themselves)."""
    structures = make_structures(2)
    relaxed, calc = run_get_node(get_builder_for(runner_code, chgnet_model, structures, RELAX))
    labelled = {structure_link_label(structure): structure for structure in structures}
    table = tabulate(calc.inputs.parameters, {}, dict(relaxed['results']))[0]
    _, node = analyse_symmetry.run_get_node(**symmetry_inputs(labelled, dict(relaxed['relaxed_structures']), table))
    inputs = {link.node.pk for link in node.base.links.get_incoming().all()}
    for label, structure in labelled.items():
        assert structure.pk in inputs and relaxed['relaxed_structures'][label].pk in inputs
    table_inputs = {link.node.pk for link in table.creator.base.links.get_incoming().all()}
    assert {result.pk for result in relaxed['results'].values()} <= table_inputs


def test_geometry_change_of_a_relaxation():
    """RMSD and volume change as Matbench Discovery reports them: zero for the same cell, the volume ratio for a scaled
    one (StructureMatcher scales volumes before matching), no match for another structure."""
    from ase.build import bulk

    from aiida_mliap.calculations.symmetry_analysis import geometry_change

    rocksalt = bulk('NaCl', 'rocksalt', a=5.6)
    same = geometry_change(rocksalt, rocksalt.copy())
    assert same['matches_dft'] and same['rmsd_to_dft'] == pytest.approx(0, abs=1e-8) and same['volume_change'] == 0
    larger = rocksalt.copy()
    larger.set_cell(rocksalt.cell * 1.05, scale_atoms=True)
    scaled = geometry_change(rocksalt, larger)
    assert scaled['matches_dft'] and scaled['volume_change'] == pytest.approx(1.05**3 - 1)
    moved = rocksalt.copy()
    moved.positions[1] += [0.4, 0.0, 0.0]
    distorted = geometry_change(rocksalt, moved)
    assert distorted['matches_dft'] and distorted['rmsd_to_dft'] > 0.01
    other = geometry_change(rocksalt, bulk('NaCl', 'zincblende', a=6.0))
    assert not other['matches_dft'] and other['rmsd_to_dft'] is None
