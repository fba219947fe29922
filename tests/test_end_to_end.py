"""Real runs of MliapCalculation (aiida.engine.run) with CHGNet 0.3.0 and tiny real MACE and matgl models."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.build import bulk
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE

from aiida_mliap.calculations.mliap import MliapCalculation, get_builder_for, structure_link_label
from aiida_mliap.data import MliapModelData, MliapResultData

pytestmark = pytest.mark.storage

RELAX = {'task': 'relax', 'fmax': 0.1, 'max_steps': 60, 'optimizer': 'FIRE', 'device': 'cpu'}


def exit_status(name: str) -> int:
    return MliapCalculation.exit_codes[name].status


def test_chgnet_relax_matches_plain_ase(runner_code, chgnet_model, make_structures):
    """The CalcJob's CHGNet relaxation equals a plain ASE CHGNetCalculator relaxation with the same settings."""
    from chgnet.model import CHGNet, CHGNetCalculator

    structures = make_structures(2)
    results, node = run_get_node(get_builder_for(runner_code, chgnet_model, structures, RELAX))
    assert node.is_finished_ok, node.exit_message

    calculator = CHGNetCalculator(model=CHGNet.load(model_name='0.3.0', verbose=False), use_device='cpu')
    for structure in structures:
        label = structure_link_label(structure)
        atoms = structure.get_ase()
        atoms.calc = calculator
        optimizer = FIRE(FrechetCellFilter(atoms), logfile=None)
        converged = optimizer.run(fmax=RELAX['fmax'], steps=RELAX['max_steps'])
        result = results['results'][label]
        assert result['converged'] == converged
        assert result['energy_per_atom'] == pytest.approx(atoms.get_potential_energy() / len(atoms), abs=1e-5)
        relaxed = results['relaxed_structures'][label].get_ase()
        np.testing.assert_allclose(relaxed.cell.array, atoms.cell.array, atol=1e-4)
        assert result['model_sha256'] == chgnet_model.sha256

    assert any(results['results'][structure_link_label(s)]['n_steps'] > 0 for s in structures), 'nothing relaxed'
    summary = results['summary'].get_dict()
    assert summary['environment']['framework'] == 'chgnet' and summary['environment']['device'] == 'cpu'


def test_chgnet_batched_single_points_match_the_calculator(runner_code, chgnet_model, make_structures):
    """Static CHGNet runs go through its batched graph API; the numbers equal CHGNetCalculator's."""
    from chgnet.model import CHGNet, CHGNetCalculator

    structures = make_structures(5)
    results, node = run_get_node(get_builder_for(runner_code, chgnet_model, structures, {'task': 'static'}))
    assert node.is_finished_ok, node.exit_message
    calculator = CHGNetCalculator(model=CHGNet.load(model_name='0.3.0', verbose=False), use_device='cpu')
    for structure in structures:
        atoms = structure.get_ase()
        atoms.calc = calculator
        result = results['results'][structure_link_label(structure)]
        assert result['energy_per_atom'] == pytest.approx(atoms.get_potential_energy() / len(atoms), abs=1e-6)
        assert result['forces_max'] == pytest.approx(np.linalg.norm(atoms.get_forces(), axis=1).max(), abs=1e-5)
        np.testing.assert_allclose(result['stress'], atoms.get_stress(), atol=1e-6)


@pytest.mark.parametrize('framework', ['mace', 'matgl'])
def test_tiny_models_static_match_their_calculators(framework, runner_code, make_structures, request):
    model = request.getfixturevalue(f'{framework}_model')
    structures = make_structures(3)
    results, node = run_get_node(get_builder_for(runner_code, model, structures, {'task': 'static'}))
    assert node.is_finished_ok, node.exit_message
    if framework == 'mace':
        from mace.calculators import MACECalculator

        calculator = MACECalculator(
            model_paths=str(request.getfixturevalue('tiny_mace_file')), device='cpu', default_dtype='float64'
        )
    else:
        import matgl
        from matgl.ext.ase import PESCalculator

        potential = matgl.load_model(request.getfixturevalue('tiny_matgl_dir'))
        calculator = PESCalculator(potential, stress_unit='eV/A3')
    for structure in structures:
        atoms = structure.get_ase()
        atoms.calc = calculator
        result = results['results'][structure_link_label(structure)]
        assert result['energy_per_atom'] == pytest.approx(atoms.get_potential_energy() / len(atoms), abs=1e-5)
        np.testing.assert_allclose(result['stress'], atoms.get_stress(), atol=1e-6)
    assert 'relaxed_structures' not in results


def test_bad_structures_fail_alone(runner_code, mace_model, make_structures):
    """Unsupported element and overlapping atoms among valid structures: valid results stored, each failure named."""
    valid = make_structures(2)
    sodium = orm.StructureData(ase=bulk('NaCl', 'rocksalt', a=5.64))
    sodium.label = 'NaCl'
    overlap = orm.StructureData(ase=Atoms('LiO', positions=[[0, 0, 0], [0.3, 0, 0]], cell=[5, 5, 5], pbc=True))
    overlap.label = 'overlap'
    builder = get_builder_for(runner_code, mace_model, [*valid, sodium.store(), overlap.store()], RELAX)
    results, node = run_get_node(builder)

    assert node.exit_status == exit_status('ERROR_SOME_STRUCTURES_FAILED'), node.exit_message
    for structure in valid:
        label = structure_link_label(structure)
        assert results['results'][label]['status'] in ('ok', 'unconverged')
        assert label in results['relaxed_structures']
    assert results['results']['NaCl']['status'] == 'unsupported_element'
    assert 'Na' in results['results']['NaCl']['message'] and 'Cl' in results['results']['NaCl']['message']
    assert results['results']['overlap']['status'] == 'invalid_structure'
    assert 'overlap' in results['results']['overlap']['message']
    assert results['summary']['counts']['unsupported_element'] == 1


def test_chgnet_refuses_isolated_atoms(runner_code, chgnet_model, lifepo_entries, make_structures):
    """mp-1211341 (Li3FeO6) has atoms beyond CHGNet's graph cutoff: refused alone, its neighbour evaluated."""
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    data = next(e for e in lifepo_entries if e['data']['material_id'] == 'mp-1211341')
    refused = orm.StructureData(pymatgen=ComputedStructureEntry.from_dict(data).structure)
    refused.label = 'mp-1211341'
    builder = get_builder_for(runner_code, chgnet_model, [*make_structures(1), refused.store()], {'task': 'static'})
    results, node = run_get_node(builder)
    assert node.exit_status == exit_status('ERROR_SOME_STRUCTURES_FAILED'), node.exit_message
    assert results['results']['mp_1211341']['status'] == 'model_refused'
    assert 'isolated atom' in results['results']['mp_1211341']['message']
    assert results['summary']['counts']['ok'] == 1


def test_swapped_remote_checkpoint_refused(runner_code, mace_model, tiny_mace_file, make_structures, tmp_path):
    """A pre-installed checkpoint is used in place; one whose hash differs from the model node's is refused."""
    installed = tmp_path / 'installed'
    installed.mkdir()
    shutil.copy(tiny_mace_file, installed / 'tiny.model')
    remote = orm.RemoteData(remote_path=str(installed), computer=runner_code.computer).store()
    builder = get_builder_for(runner_code, mace_model, make_structures(1), {'task': 'static'})
    builder.remote_checkpoint = remote
    _, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message

    (installed / 'tiny.model').write_bytes(b'a different checkpoint')
    builder = get_builder_for(runner_code, mace_model, make_structures(1), {'task': 'static'})
    builder.remote_checkpoint = remote
    _, node = run_get_node(builder)
    assert node.exit_status == exit_status('ERROR_MODEL_HASH_MISMATCH')
    assert 'refusing to run' in node.exit_message


def test_environment_failures_are_never_cache_sources(
    runner_code, mace_model, tiny_mace_file, make_structures, tmp_path
):
    """A job refused because of its machine (here: a swapped pre-installed checkpoint) is not a result of its inputs:
    with caching on, the same launch on a repaired machine runs again instead of copying the failure."""
    from aiida.manage.caching import enable_caching

    installed = tmp_path / 'installed'
    installed.mkdir()
    (installed / 'tiny.model').write_bytes(b'a different checkpoint')
    remote = orm.RemoteData(remote_path=str(installed), computer=runner_code.computer).store()
    structures = make_structures(1, start=5)

    def launch():
        builder = get_builder_for(runner_code, mace_model, structures, {'task': 'static'})
        builder.remote_checkpoint = remote
        with enable_caching(identifier='aiida.calculations:mliap.calc'):
            return run_get_node(builder)[1]

    failed = launch()
    assert failed.exit_status == exit_status('ERROR_MODEL_HASH_MISMATCH')
    assert not failed.base.caching.is_valid_cache
    shutil.copy(tiny_mace_file, installed / 'tiny.model')
    repaired = launch()
    assert repaired.is_finished_ok and not repaired.base.caching.is_created_from_cache


def test_corrupt_model_file_gives_a_clear_exit_code(runner_code, make_structures, tmp_path):
    corrupt = tmp_path / 'corrupt.model'
    corrupt.write_bytes(b'PK\x03\x04 this is not a MACE model')
    # Registration refuses it (the framework loads it first): a node made directly stands for a checkpoint that
    # broke after registration, which the runner must still refuse with its own exit code.
    model = MliapModelData(corrupt, 'mace', name='corrupt', energy_scale='raw_dft').store()
    _, node = run_get_node(get_builder_for(runner_code, model, make_structures(1), {'task': 'static'}))
    assert node.exit_status == exit_status('ERROR_MODEL_LOAD_FAILED')
    assert 'mace could not load the model' in node.exit_message


def test_query_recipe(runner_code, mace_model, make_structures):
    """The README recipe: input structure -> relaxed structure and energy for one model sha256, one query."""
    structures = make_structures(2)
    results, node = run_get_node(get_builder_for(runner_code, mace_model, structures, RELAX))
    assert node.exit_status in (0, exit_status('ERROR_UNCONVERGED'))
    structure = structures[1]

    # --- recipe (kept identical to README.md) ---
    label = structure_link_label(structure)
    query = orm.QueryBuilder()
    query.append(MliapModelData, filters={'attributes.sha256': mace_model.sha256}, tag='model')
    query.append(MliapCalculation, with_incoming='model', tag='calc')
    query.append(
        orm.StructureData,
        with_outgoing='calc',
        filters={'uuid': structure.uuid},
        edge_filters={'label': f'structures__{label}'},
    )
    query.append(
        orm.StructureData, with_incoming='calc', edge_filters={'label': f'relaxed_structures__{label}'}, project='*'
    )
    query.append(
        MliapResultData,
        with_incoming='calc',
        edge_filters={'label': f'results__{label}'},
        project='attributes.energy_per_atom',
    )
    relaxed, energy_per_atom = query.one()
    # --- end recipe ---

    assert relaxed.uuid == results['relaxed_structures'][label].uuid
    assert energy_per_atom == results['results'][label]['energy_per_atom']
