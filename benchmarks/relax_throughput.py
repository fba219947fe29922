"""Relaxation throughput of the three engines: ASE loop, batched (ASE optimizers, one model call), vectorized.

    python benchmarks/relax_throughput.py [--framework chgnet --framework mace ...] [--device cpu|cuda]
        [--count 48] [--ase-count N] [--batched-count N] [--max-steps 500] [--rattle 0.05] [--json FILE]
    python benchmarks/relax_throughput.py --overhead [--batch 1 --batch 64 --batch 512] [--steps 20]

Frameworks: ``chgnet`` (0.3.0, bundled), ``mace`` (tiny, seeded), ``mace-mp-small`` (MACE-MP-0 small's architecture,
random weights: a foundation model's cost), ``matgl`` (M3GNet-MP-2021.2.8 from ../shared/data), ``sevenn``
(SevenNet-0, bundled; run this script with the SevenNet environment's python). Structures: Li-Fe-P-O MP crystals of
at most 40 atoms spread over the size range, rattled (seeded) and relaxed with FIRE + FrechetCellFilter. Each engine
runs in its own process (its own peak memory); the ASE loop and the batched engine may run on an evenly spread
subset of ``--ase-count``/``--batched-count`` structures (they are slow); rates are per structure and per atom-step.
Energies of the structures both engines relaxed are compared (within 1 meV/atom, same converged flag).

``--overhead``: the engines' own cost per structure-step with a zero-cost model (engine/harmonic.py), fixed steps
(nothing converges), batch sizes as given, the ASE engine beside it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get('MLIAP_SHARED_DATA', Path(__file__).resolve().parents[2] / 'shared' / 'data'))
MP_FILE = 'Li-Fe-P-O.json.gz'


def pick_structures(count: int, max_atoms: int = 40, rattle: float = 0.05, repeat: bool = False):
    """``count`` MP structures spread evenly over the size range, rattled (seeded); read with ASE alone, so that the
    SevenNet environment (no pymatgen) reads the same ones. ``repeat`` cycles through the file for large counts."""
    from ase import Atoms

    with gzip.open(SHARED / 'mp' / MP_FILE, 'rt') as handle:
        entries = [e for e in json.load(handle) if len(e['structure']['sites']) <= max_atoms]
    entries.sort(key=lambda e: (len(e['structure']['sites']), e['data']['material_id']))
    if repeat and count > len(entries):
        chosen = [entries[i % len(entries)] for i in range(count)]
    else:
        step = len(entries) / count
        chosen = [entries[int(i * step)] for i in range(count)]
    frames = []
    for index, entry in enumerate(chosen):
        sites = entry['structure']['sites']
        atoms = Atoms(
            [site['species'][0]['element'] for site in sites], positions=[site['xyz'] for site in sites],
            cell=entry['structure']['lattice']['matrix'], pbc=True,
        )  # fmt: skip
        if rattle:
            atoms.rattle(rattle, seed=index)
        atoms.info['label'] = str(index)
        frames.append(atoms)
    return frames


def load(name: str, device: str, workdir: Path, dtype: str | None = None):
    from aiida_mliap.frameworks import get_framework

    if name == 'chgnet':
        framework = get_framework('chgnet')
        path, bundled = framework.bundled_checkpoint('chgnet-0.3.0')
        return framework, framework.load(path.parent, [path.name], device, dtype or 'float32', bundled.options)
    if name in ('mace', 'mace-mp-small'):
        from aiida_mliap.tiny_models import MP_SMALL, TINY, build_mace

        framework = get_framework('mace')
        shape = TINY if name == 'mace' else MP_SMALL
        path = build_mace(workdir / f'{name}.model', [3, 8, 15, 26], shape=shape)
        return framework, framework.load(workdir, [path.name], device, dtype or 'float64', {})
    if name == 'sevenn':
        framework = get_framework('sevenn')
        path, bundled = framework.bundled_checkpoint('sevennet-0')
        return framework, framework.load(path.parent, [path.name], device, 'float32', bundled.options)
    framework = get_framework('matgl')
    folder = SHARED / 'models' / 'matgl' / 'M3GNet-MP-2021.2.8-PES'
    return framework, framework.load(folder, ['model.json', 'model.pt', 'state.pt'], device, 'float32', {})


def peak_memory(device: str) -> float:
    """MiB: torch's allocator peak on CUDA, else this process's peak RSS."""
    import resource

    import torch

    if device == 'cuda':
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_engine(name, engine, count, total, device, parameters, threads, budget):
    """One engine over the first ``count`` of the ``total`` structures, in this (child) process."""
    import torch

    from aiida_mliap.contract.parameters import with_defaults
    from aiida_mliap.engine.runner import Runner, set_threads

    set_threads(threads)
    every = pick_structures(total, rattle=parameters.pop('rattle'))
    frames = [every[int(i * total / count)] for i in range(count)]  # a subset spread like the whole
    parameters = with_defaults({**parameters, 'task': 'relax', 'device': device, 'engine': engine,
                                'batch_budget': budget})  # fmt: skip
    with tempfile.TemporaryDirectory() as workdir:
        framework, loaded = load(name, device, Path(workdir))
        runner = Runner(Path(workdir), device, threads)
        list(runner.records([frames[0].copy()], framework, loaded, {**parameters, 'max_steps': 1}))  # warm-up
        if device == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        records = {atoms.info['label']: record for atoms, record, _ in runner.records(frames, framework, loaded,
                                                                                     parameters)}  # fmt: skip
        if device == 'cuda':
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    atom_steps = sum(len(a) * (records[a.info['label']].get('n_steps', 0) + 1) for a in frames)
    return {'records': records, 'seconds': seconds, 'peak_mib': peak_memory(device), 'atom_steps': atom_steps,
            'count': count}  # fmt: skip


def run_overhead(engine: str, batch: int, steps: int, threads: int):
    """The engine's own cost per structure-step: the zero-cost model, ``batch`` structures, ``steps`` FIRE steps."""
    from functools import partial

    from aiida_mliap.contract.parameters import with_defaults
    from aiida_mliap.engine.batched import relax_batched
    from aiida_mliap.engine.harmonic import HarmonicModel
    from aiida_mliap.engine.runner import failure_record, is_out_of_memory, set_threads
    from aiida_mliap.engine.tasks import run_task
    from aiida_mliap.engine.vectorized import relax_vectorized
    from aiida_mliap.frameworks import get_framework

    set_threads(threads)
    frames = pick_structures(batch, repeat=True)
    model = HarmonicModel()
    parameters = with_defaults({'task': 'relax', 'fmax': 1e-12, 'max_steps': steps, 'device': 'cpu'})
    fail = partial(failure_record, get_framework('mace'))
    started = time.perf_counter()
    if engine == 'ase':
        records = [run_task(atoms, model.calculator(), parameters) for atoms in frames]
    elif engine == 'batched':
        records = [r for _, r, _ in relax_batched(frames, model.evaluate_batch, parameters, 10**9, fail,
                                                  is_out_of_memory)]  # fmt: skip
    else:
        records = [r for _, r, _ in relax_vectorized(frames, model, parameters, 10**9, fail, is_out_of_memory)]
    seconds = time.perf_counter() - started
    evaluations = sum(r.get('n_steps', 0) + 1 for r in records)  # a collapsing cell leaves early
    # the model alone, on the whole batch, as many times as the vectorized engine calls it
    from aiida_mliap.contract.system import System

    system = System.from_atoms(frames)
    tick = time.perf_counter()
    for _ in range(steps + 1):
        model(system)
    model_seconds = (time.perf_counter() - tick) * (evaluations / batch / (steps + 1))
    return {'seconds': seconds, 'evaluations': evaluations, 'model_seconds': model_seconds,
            'peak_mib': peak_memory('cpu')}  # fmt: skip


def in_child(function, *arguments):
    with multiprocessing.get_context('spawn').Pool(1, initializer=_quiet) as pool:
        return pool.apply(function, arguments)


def _quiet() -> None:
    import warnings

    warnings.filterwarnings('ignore')


def overhead(args) -> dict:
    rows = {}
    print('| engine | batch | structure-steps | s | ms per structure-step (engine only) | peak MiB |')
    print('|---|---|---|---|---|---|')
    for batch in args.batch or [1, 64, 512]:
        for engine in ('ase', 'batched', 'vectorized'):
            if engine != 'vectorized' and batch > args.ase_batch_limit:
                continue
            result = in_child(run_overhead, engine, batch, args.steps, args.threads)
            per_step = (result['seconds'] - result['model_seconds']) / result['evaluations'] * 1e3
            rows[f'{engine}@{batch}'] = {**result, 'engine_ms_per_structure_step': per_step}
            print(f'| {engine} | {batch} | {result["evaluations"]} | {result["seconds"]:.2f} | {per_step:.4f} | '
                  f'{result["peak_mib"]:.0f} |', flush=True)  # fmt: skip
    return rows


def throughput(args) -> dict:
    rows, summary = {}, []
    parameters = {'fmax': args.fmax, 'max_steps': args.max_steps, 'rattle': args.rattle}
    for name in args.framework or ['chgnet', 'mace', 'matgl']:
        results = {}
        for engine in args.engine or ('ase', 'batched', 'vectorized'):
            count = {'ase': args.ase_count, 'batched': args.batched_count}.get(engine) or args.count
            try:
                arguments = (min(count, args.count), args.count, args.device, dict(parameters), args.threads,
                             args.budget)  # fmt: skip
                result = in_child(run_engine, name, engine, *arguments)
            except Exception as exception:  # one framework's failure (e.g. not installed here) is reported, not fatal
                print(f'{name:14s} {engine:10s} FAILED: {type(exception).__name__}: {exception}', flush=True)
                continue
            results[engine] = result
            rate = result['count'] / result['seconds']
            print(f'{name:14s} {engine:10s} {result["count"]:4d} structures in {result["seconds"]:8.1f} s: '
                  f'{rate:8.3f} structures/s, {result["atom_steps"] / result["seconds"]:10.0f} atom-steps/s, '
                  f'peak {result["peak_mib"]:7.0f} MiB', flush=True)  # fmt: skip
        rows[name] = {engine: {k: v for k, v in r.items() if k != 'records'} for engine, r in results.items()}
        if 'ase' in results and 'vectorized' in results:
            summary.append((name, results, agreement(results['ase']['records'], results['vectorized']['records'])))
            rows[name]['agreement'] = summary[-1][2]
    print(f'\ndevice {args.device}, {args.threads} torch threads, fmax {args.fmax}, max_steps {args.max_steps}, '
          f'rattle {args.rattle} Å')  # fmt: skip
    print('| framework | ASE structures/s | batched structures/s | vectorized structures/s | vectorized atom-steps/s '
          '| vectorized / ASE | vectorized / batched | within 1 meV/atom | same converged | steps ratio | peak MiB '
          'ASE / batched / vectorized |')  # fmt: skip
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for name, results, agree in summary:
        rate = {engine: r['count'] / r['seconds'] for engine, r in results.items()}
        vec = results['vectorized']
        engines = ('ase', 'batched', 'vectorized')
        peaks = ' / '.join(f'{results[e]["peak_mib"]:.0f}' if e in results else '-' for e in engines)
        batched = f'{rate["batched"]:.3f}' if 'batched' in rate else '-'
        versus = f'{rate["vectorized"] / rate["batched"]:.2f}x' if 'batched' in rate else '-'
        print(f'| {name} | {rate["ase"]:.3f} | {batched} | {rate["vectorized"]:.3f} | '
              f'{vec["atom_steps"] / vec["seconds"]:.0f} | {rate["vectorized"] / rate["ase"]:.1f}x | {versus} | '
              f'{agree["close"]}/{agree["both"]} | {agree["same_converged"]}/{agree["compared"]} | '
              f'{agree["steps_ratio"]:.3f} | {peaks} |')  # fmt: skip
    return rows


def agreement(reference: dict, records: dict) -> dict:
    """How the vectorized engine's records compare with the ASE loop's, on the structures both relaxed."""
    shared = [k for k in reference if k in records]
    both = [k for k in shared if reference[k].get('energy_per_atom') is not None and
            records[k].get('energy_per_atom') is not None]  # fmt: skip
    close = sum(abs(reference[k]['energy_per_atom'] - records[k]['energy_per_atom']) < 1e-3 for k in both)
    steps = sum(reference[k].get('n_steps', 0) for k in shared)
    return {'compared': len(shared), 'both': len(both), 'close': close,
            'same_converged': sum(reference[k].get('converged') == records[k].get('converged') for k in shared),
            'steps_ratio': sum(records[k].get('n_steps', 0) for k in shared) / max(1, steps),
            'worst_mev_per_atom': max((1e3 * abs(reference[k]['energy_per_atom'] - records[k]['energy_per_atom'])
                                       for k in both), default=0.0)}  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--framework', action='append', choices=['chgnet', 'mace', 'mace-mp-small', 'matgl', 'sevenn'])
    parser.add_argument('--engine', action='append', choices=['ase', 'batched', 'vectorized'], help='default: all')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--count', type=int, default=48)
    parser.add_argument('--ase-count', type=int, help='structures for the ASE loop (default: --count)')
    parser.add_argument('--batched-count', type=int, help='structures for the batched engine (default: --count)')
    parser.add_argument('--max-steps', type=int, default=500)
    parser.add_argument('--fmax', type=float, default=0.05)
    parser.add_argument('--rattle', type=float, default=0.05, help='Å, seeded; 0 relaxes the DFT geometries')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--budget', type=int, help='batched engines: atoms + neighbour pairs per call')
    parser.add_argument('--overhead', action='store_true', help='the engines alone, with a zero-cost model')
    parser.add_argument('--batch', type=int, action='append', help='with --overhead (default 1, 64, 512)')
    parser.add_argument('--steps', type=int, default=20, help='with --overhead: FIRE steps per structure')
    parser.add_argument('--ase-batch-limit', type=int, default=512, help='with --overhead: largest ASE batch')
    parser.add_argument('--json', type=Path, help='write every figure to this file')
    args = parser.parse_args()
    rows = overhead(args) if args.overhead else throughput(args)
    if args.json:
        import torch

        device = torch.cuda.get_device_name(0) if args.device == 'cuda' else 'cpu'
        args.json.write_text(json.dumps({'arguments': {k: str(v) for k, v in vars(args).items()}, 'device': device,
                                         'rows': rows}, indent=1))  # fmt: skip


if __name__ == '__main__':
    main()
