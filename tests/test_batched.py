"""The batched relaxation engine against the ASE engine, per framework, and its failure handling."""

from __future__ import annotations

import itertools
from functools import partial

import numpy as np
import pytest
import torch
from ase import Atoms

from aiida_mliap.contract.parameters import with_defaults
from aiida_mliap.engine.batched import relax_batched
from aiida_mliap.engine.runner import failure_record, is_out_of_memory
from aiida_mliap.engine.tasks import run_task
from aiida_mliap.frameworks import get_framework

RELAX = with_defaults({'task': 'relax', 'fmax': 0.05, 'max_steps': 40, 'device': 'cpu'})
# The tiny untrained models' forces are small: a tighter fmax makes them take steps too.
FMAX = {'chgnet': 0.05, 'mace': 1e-4, 'matgl': 1e-4}
# The failure-handling tests compare two runs of the same engine step by step: a few steps show it (and CHGNet's
# relaxations were the slowest tests of the suite).
SHORT = {**RELAX, 'max_steps': 8}


@pytest.fixture(scope='module')
def loaded_models(tiny_mace_file, tiny_matgl_dir):
    """framework -> (framework, LoadedModel): CHGNet 0.3.0 and the tiny MACE and M3GNet models, on CPU."""
    chgnet = get_framework('chgnet')
    path, bundled = chgnet.bundled_checkpoint('chgnet-0.3.0')
    options = bundled.options
    mace = get_framework('mace')
    matgl = get_framework('matgl')
    return {
        'chgnet': (chgnet, chgnet.load(path.parent, [path.name], 'cpu', 'float32', options)),
        'mace': (mace, mace.load(tiny_mace_file.parent, [tiny_mace_file.name], 'cpu', 'float64', {})),
        'matgl': (matgl, matgl.load(tiny_matgl_dir, ['model.json', 'model.pt', 'state.pt'], 'cpu', 'float32', {})),
    }


def rattled(small_lifepo_atoms, count: int) -> list[Atoms]:
    frames = []
    for i, atoms in enumerate(small_lifepo_atoms[:count]):
        atoms = atoms.copy()
        atoms.rattle(0.05, seed=i)
        atoms.set_cell(atoms.cell * 1.02, scale_atoms=True)
        frames.append(atoms)
    return frames


def run_batched(frames, framework, loaded, parameters=RELAX, evaluate=None, budget=100_000):
    finished = relax_batched(
        frames, evaluate or loaded.evaluate_batch, parameters, budget, partial(failure_record, framework),
        is_out_of_memory,
    )  # fmt: skip
    return {index: record for index, record, _ in finished}


@pytest.mark.parametrize('name', ['chgnet', 'mace', 'matgl'])
def test_batched_engine_matches_ase(name, loaded_models, small_lifepo_atoms):
    framework, loaded = loaded_models[name]
    parameters = {**RELAX, 'fmax': FMAX[name]}
    frames = rattled(small_lifepo_atoms, 6)
    reference = []
    for atoms in frames:
        atoms = atoms.copy()
        reference.append((run_task(atoms, loaded.calculator, parameters), atoms))
    batched = [atoms.copy() for atoms in frames]
    # A budget of a few structures per call, so that structures join and leave the batch.
    records = run_batched(batched, framework, loaded, parameters, budget=2_000)

    assert sorted(records) == list(range(len(frames)))
    agree = 0
    for index, (expected, relaxed) in enumerate(reference):
        record = records[index]
        assert record['status'] == expected['status'] and record['converged'] == expected['converged']
        agree += abs(record['energy_per_atom'] - expected['energy_per_atom']) < 1e-3
        if record['n_steps'] == expected['n_steps']:
            np.testing.assert_allclose(batched[index].cell.array, relaxed.cell.array, atol=1e-3)
    assert agree >= 0.95 * len(frames)
    assert any(record['n_steps'] > 0 for record in records.values())


def test_out_of_memory_halves_the_batch(loaded_models, small_lifepo_atoms):
    """A device that holds two structures: the engine halves its batch until calls fit; results are unchanged."""
    framework, loaded = loaded_models['chgnet']
    frames = rattled(small_lifepo_atoms, 5)
    sizes = []

    def scarce(batch):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError(f'CUDA out of memory. Tried to allocate 2.00 GiB (a batch of {len(batch)})')
        return loaded.evaluate_batch(batch)

    split = run_batched([a.copy() for a in frames], framework, loaded, SHORT, evaluate=scarce)
    plain = run_batched([a.copy() for a in frames], framework, loaded, SHORT)
    assert sizes[:2] == [5, 2] and max(sizes[1:]) <= 2
    for index, record in plain.items():
        assert split[index]['status'] == record['status'] and record['energy_per_atom'] is not None
        assert split[index]['n_steps'] == record['n_steps']
        assert split[index]['energy_per_atom'] == pytest.approx(record['energy_per_atom'], abs=1e-6)


def test_one_bad_structure_never_sinks_its_batch(loaded_models, small_lifepo_atoms):
    """CHGNet refuses isolated atoms inside its batched graph call: that structure leaves with the reason."""
    framework, loaded = loaded_models['chgnet']
    frames = rattled(small_lifepo_atoms, 3)
    isolated = Atoms('Li2', positions=[[0, 0, 0], [6, 6, 6]], cell=[12, 12, 12], pbc=True)
    records = run_batched([frames[0], isolated, *frames[1:]], framework, loaded, SHORT)
    assert records[1]['status'] == 'model_refused' and 'isolated' in records[1]['message']
    assert all(records[i]['status'] in ('ok', 'unconverged') and records[i]['n_steps'] > 0 for i in (0, 2, 3))


def test_both_engines_through_the_calcjob(runner_code, chgnet_model, make_structures):
    """The engine is a runner parameter: each calculation records the one it used, and both give the same results."""
    from aiida.engine import run_get_node

    from aiida_mliap.calculations.mliap import get_builder_for

    structures = make_structures(3)
    runs, trajectories = {}, {}
    # The trajectory on request: steps with the ASE loop, frames with the batched engines, the same steps every way.
    for engine, trajectory in (('ase', 'steps'), ('batched', 'frames'), ('vectorized', 'frames')):
        parameters = {'task': 'relax', 'max_steps': 60, 'device': 'cpu', 'engine': engine, 'trajectory': trajectory}
        results, node = run_get_node(get_builder_for(runner_code, chgnet_model, structures, parameters))
        assert node.is_finished_ok, node.exit_message
        assert results['summary']['environment']['engine'] == engine
        runs[engine] = {label: result.base.attributes.all for label, result in results['results'].items()}
        trajectories[engine] = dict(results['trajectories'].items())
    for (label, record), engine in itertools.product(runs['ase'].items(), ('batched', 'vectorized')):
        assert runs[engine][label]['n_steps'] == record['n_steps']
        assert runs[engine][label]['energy_per_atom'] == pytest.approx(record['energy_per_atom'], abs=1e-5)
        steps, frames = trajectories['ase'][label], trajectories[engine][label]
        assert set(steps.get_arraynames()) == {'energy_per_atom', 'forces_max', 'volume'}
        assert len(steps.get_array('energy_per_atom')) == record['n_steps'] + 1  # the first evaluation and each step
        for name in ('energy_per_atom', 'forces_max', 'volume'):
            np.testing.assert_allclose(frames.get_array(name), steps.get_array(name), atol=1e-4)
        assert steps.get_array('energy_per_atom')[-1] == pytest.approx(record['energy_per_atom'], abs=1e-6)
        assert frames.get_array('positions').shape == (record['n_steps'] + 1, record['n_atoms'], 3)
        assert frames.get_array('cell').shape == (record['n_steps'] + 1, 3, 3)
