"""The vectorized engine against ASE's FIRE + FrechetCellFilter: step by step in float64, and to 1 meV/atom on real
models from DFT and rattled geometries; its neighbour lists against ASE's; its bookkeeping (structures joining and
leaving, out-of-memory halving, one failing structure) with the zero-cost model."""

from __future__ import annotations

import gzip
import json
from functools import partial

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list

from aiida_mliap.contract.parameters import with_defaults
from aiida_mliap.contract.system import System, via_atoms
from aiida_mliap.engine.harmonic import HarmonicModel
from aiida_mliap.engine.runner import engine_used, failure_record, is_out_of_memory
from aiida_mliap.engine.tasks import run_task
from aiida_mliap.engine.vectorized import relax_vectorized
from aiida_mliap.frameworks import get_framework
from aiida_mliap.frameworks.neighbours import neighbour_pairs

RELAX = with_defaults({'task': 'relax', 'fmax': 0.05, 'max_steps': 150, 'device': 'cpu'})


@pytest.fixture(scope='module')
def mp_atoms(shared_data) -> list[Atoms]:
    """Li-Fe-P-O crystals of at most 40 atoms, spread over the size range (every k-th by size and MP id)."""
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    with gzip.open(shared_data / 'mp' / 'Li-Fe-P-O.json.gz', 'rt') as handle:
        entries = [e for e in json.load(handle) if len(e['structure']['sites']) <= 40]
    entries.sort(key=lambda e: (len(e['structure']['sites']), e['data']['material_id']))
    chosen = [entries[int(i * len(entries) / 48)] for i in range(48)]
    return [AseAtomsAdaptor.get_atoms(Structure.from_dict(e['structure'])) for e in chosen]


def rattled(frames: list[Atoms], amplitude: float = 0.05) -> list[Atoms]:
    out = []
    for seed, atoms in enumerate(frames):
        atoms = atoms.copy()
        atoms.rattle(amplitude, seed=seed)
        out.append(atoms)
    return out


def ase_engine(frames, calculator, parameters):
    return [run_task(atoms.copy(), calculator, parameters) for atoms in frames]


def vectorized(frames, evaluate, parameters, budget=100_000, framework='mace'):
    fail = partial(failure_record, get_framework(framework))
    finished = relax_vectorized([a.copy() for a in frames], evaluate, parameters, budget, fail, is_out_of_memory)
    records = dict((index, record) for index, record, _ in finished)
    return [records[i] for i in range(len(frames))]


def test_neighbour_pairs_equal_ase(mp_atoms):
    """Every pair within the cutoff, with its periodic shift, as ASE's neighbor_list finds them: periodic cells of
    all sizes, a molecule and a slab-like cell periodic along one axis only."""
    molecule = Atoms('H2O', positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    chain = Atoms('Li2', positions=[[0, 0, 0], [1.5, 0.3, 0]], cell=[2.9, 15, 15], pbc=[True, False, False])
    frames = [*mp_atoms[::4], molecule, chain]
    system = System.from_atoms(frames)
    i, j, shifts = neighbour_pairs(system, 5.0)
    ptr = system.ptr.tolist()
    for b, atoms in enumerate(frames):
        first, second, shift = neighbor_list('ijS', atoms, 5.0)
        expected = sorted(zip(first.tolist(), second.tolist(), map(tuple, shift.tolist()), strict=True))
        mine = (i >= ptr[b]) & (i < ptr[b + 1])
        found = sorted(zip((i[mine] - ptr[b]).tolist(), (j[mine] - ptr[b]).tolist(), map(tuple, shifts[mine].tolist()),
                           strict=True))  # fmt: skip
        assert found == expected, f'structure {b} ({atoms.get_chemical_formula()})'


def test_first_steps_equal_ase_in_float64(tiny_mace_file, mp_atoms):
    """Tiny MACE in float64: the first 20 steps' energies equal ASE's to 1e-6 eV/atom, with the cell relaxing and with
    it fixed, through the host path and the device graph alike (they agree to the last bits)."""
    mace = get_framework('mace')
    loaded = mace.load(tiny_mace_file.parent, [tiny_mace_file.name], 'cpu', 'float64', {})
    frames = rattled(mp_atoms[::6])
    for relax_cell in (True, False):
        # fmax 1e-6: the untrained model's forces are small; every structure takes its 20 steps
        parameters = {**RELAX, 'fmax': 1e-6, 'max_steps': 20, 'trajectory': 'steps', 'relax_cell': relax_cell}
        reference = ase_engine(frames, loaded.calculator, parameters)
        assert sum(e['n_steps'] == 20 for e in reference) >= len(frames) - 2  # high-symmetry cells have no forces
        for evaluate in (loaded.evaluate_system, via_atoms(loaded.evaluate_batch)):
            records = vectorized(frames, evaluate, parameters, budget=3_000)  # a few structures per call
            for expected, got in zip(reference, records, strict=True):
                assert got['n_steps'] == expected['n_steps']
                np.testing.assert_allclose(
                    got['trajectory']['energy_per_atom'], expected['trajectory']['energy_per_atom'], atol=1e-6, rtol=0
                )
                np.testing.assert_allclose(got['trajectory']['volume'], expected['trajectory']['volume'], rtol=1e-9)


@pytest.fixture(scope='module')
def real_models(tiny_mace_file, shared_data):
    """name -> (framework name, LoadedModel, fmax): CHGNet 0.3.0, M3GNet-MP-2021.2.8 and the tiny MACE (whose
    untrained forces need a tight fmax to take steps)."""
    chgnet, matgl, mace = get_framework('chgnet'), get_framework('matgl'), get_framework('mace')
    path, bundled = chgnet.bundled_checkpoint('chgnet-0.3.0')
    m3gnet = shared_data / 'models' / 'matgl' / 'M3GNet-MP-2021.2.8-PES'
    return {
        'chgnet': ('chgnet', chgnet.load(path.parent, [path.name], 'cpu', 'float32', bundled.options), 0.05),
        'm3gnet': ('matgl', matgl.load(m3gnet, ['model.json', 'model.pt', 'state.pt'], 'cpu', 'float32', {}), 0.05),
        'mace': ('mace', mace.load(tiny_mace_file.parent, [tiny_mace_file.name], 'cpu', 'float64', {}), 1e-3),
    }


# Structures per framework and start, chosen for CI's time (ASE's loop costs 10-100 ms per structure-step here):
# every 2nd of the 48 (1-40 atoms, at most 30 steps: its untrained forces wander) for the tiny MACE; for CHGNet and
# M3GNet every 6th up to 20 atoms (4 structures, 1-20 atoms). benchmarks/relax_throughput.py runs all 48.
SUBSET = {'chgnet': (6, 20, 150), 'm3gnet': (6, 20, 150), 'mace': (2, 40, 30)}  # stride, largest, max_steps


@pytest.mark.parametrize('start', ['dft', 'rattled'])
@pytest.mark.parametrize('name', ['chgnet', 'm3gnet', 'mace'])
def test_final_energies_equal_ase(name, start, real_models, mp_atoms):
    """Final energies within 1 meV/atom of the ASE engine and the same converged flag for >= 95 % of structures."""
    framework, loaded, fmax = real_models[name]
    stride, largest, max_steps = SUBSET[name]
    frames = [atoms for atoms in mp_atoms[::stride] if len(atoms) <= largest]
    frames = rattled(frames) if start == 'rattled' else frames
    parameters = {**RELAX, 'fmax': fmax, 'max_steps': max_steps}
    reference = ase_engine(frames, loaded.calculator, parameters)
    evaluate = loaded.evaluate_system or via_atoms(loaded.evaluate_batch)
    records = vectorized(frames, evaluate, parameters, budget=20_000, framework=framework)
    pairs = list(zip(records, reference, strict=True))
    close = sum(abs(r['energy_per_atom'] - e['energy_per_atom']) < 1e-3 for r, e in pairs)
    same = sum(r['converged'] == e['converged'] for r, e in pairs)
    steps = sum(r['n_steps'] for r in records) / max(1, sum(e['n_steps'] for e in reference))
    print(f'{name} from {start}: {close}/{len(frames)} within 1 meV/atom, {same} same converged, steps {steps:.3f}')
    assert close >= 0.95 * len(frames) and same >= 0.95 * len(frames)
    assert sum(e['n_steps'] for e in reference) > 0


def harmonic_frames(mp_atoms, count: int = 6) -> list[Atoms]:
    """``count`` structures of distinct sizes (every 8th by size), rattled."""
    return rattled(mp_atoms[::8][:count], 0.1)


def test_structures_join_and_leave_and_memory_halves(mp_atoms):
    """A budget of a few structures (they join as others finish) and a device that holds two structures (the batch
    halves until calls fit) give every structure the record it gets alone."""
    model = HarmonicModel()
    frames = harmonic_frames(mp_atoms, 8)
    parameters = {**RELAX, 'max_steps': 40, 'fmax': 1e-3}
    alone = [vectorized([atoms], model, parameters)[0] for atoms in frames]
    tried, fitted = [], []

    def scarce(system):
        tried.append(len(system))
        if len(system) > 2:
            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
        fitted.append(len(system))
        return model(system)

    for evaluate, budget in ((model, 2_500), (scarce, 10**9)):
        records = vectorized(frames, evaluate, parameters, budget=budget)
        for got, expected in zip(records, alone, strict=True):
            assert got['n_steps'] == expected['n_steps'] and got['status'] == expected['status']
            # the same arithmetic, summed in other orders within a larger batch
            assert got['energy_per_atom'] == pytest.approx(expected['energy_per_atom'], abs=1e-9)
    assert tried[:3] == [len(frames), len(frames) // 2, 1] and max(fitted) == 2


def test_one_failing_structure_leaves_alone(mp_atoms):
    """A model exception on one structure, NaN forces on another and a collapsing cell on a third: each leaves with
    its reason; the others end exactly as they do without them."""
    model = HarmonicModel()
    frames = harmonic_frames(mp_atoms, 6)
    poison = {len(frames[1]): 'raise', len(frames[3]): 'nan'}
    assert len(poison) == 2 and len(frames[1]) != len(frames[3])

    def flaky(system):
        energy, forces, stress = model(system)
        kinds = [poison.get(int(n)) for n in system.counts]
        if 'raise' in kinds:
            raise ValueError('the model refuses this structure')
        for b, kind in enumerate(kinds):
            if kind == 'nan':
                energy[b] = float('nan')
        return energy, forces, stress

    parameters = {**RELAX, 'max_steps': 30, 'fmax': 1e-3}
    plain = vectorized(frames, model, parameters)
    records = vectorized(frames, flaky, parameters)
    assert records[1]['status'] == 'error' and 'refuses' in records[1]['message']
    assert records[3]['status'] == 'exploded' and 'energy is not finite' in records[3]['message']
    for k in (0, 2, 4, 5):
        if len(frames[k]) in poison:
            continue
        assert records[k]['energy_per_atom'] == pytest.approx(plain[k]['energy_per_atom'], abs=1e-9)
    squeezing = HarmonicModel(bulk=50.0, volume_per_atom=0.5)  # a cell driven to collapse
    collapsed = vectorized(frames[:2], squeezing, {**parameters, 'max_steps': 300})
    assert all(r['status'] == 'exploded' and 'volume' in r['message'] for r in collapsed)


def test_engine_fallbacks_are_named():
    """The symmetry constraint and other optimizers run on the batched engine, and the record says why."""

    class Loaded:
        evaluate_batch = evaluate_system = staticmethod(lambda frames: None)

    assert engine_used(Loaded, with_defaults({'task': 'relax'})) == ('vectorized', None)
    engine, why = engine_used(Loaded, with_defaults({'task': 'relax', 'fix_symmetry': True}))
    assert engine == 'batched' and 'FixSymmetry' in why
    engine, why = engine_used(Loaded, with_defaults({'task': 'relax', 'optimizer': 'BFGS'}))
    assert engine == 'batched' and 'BFGS' in why
    assert engine_used(Loaded, with_defaults({'task': 'static'})) == ('vectorized', None)
