"""Relaxation throughput: the ASE engine (one optimizer loop per structure) against the batched engine.

    python benchmarks/relax_throughput.py [--count 48] [--framework chgnet --framework mace --framework matgl]
        [--device cpu|cuda] [--max-steps 500] [--threads N] [--profile]

The same ``count`` MP structures (Li-Fe-P-O, sizes spread from 1 to 40 atoms) are relaxed from their DFT geometry
with FIRE + FrechetCellFilter, fmax 0.05 eV/Å, by CHGNet 0.3.0 (bundled), a tiny MACE model (built here, seeded) and
the original M3GNet (../shared/data/models/matgl), once per engine, each run in its own process so that its peak
memory is its own. Prints structures/s of both, their ratio, energy agreement (share within 1 meV/atom, same
converged flags) and peak memory (RSS on CPU, torch's allocator peak on CUDA). ``--profile`` adds cProfile's top
functions of each batched run.
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import io
import json
import multiprocessing
import pstats
import resource
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'data'


def pick_structures(count: int, max_atoms: int = 40):
    """``count`` Li-Fe-P-O structures spread evenly over the size range (sorted by atoms, every k-th)."""
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    with gzip.open(SHARED / 'mp' / 'Li-Fe-P-O.json.gz', 'rt') as handle:
        entries = [e for e in json.load(handle) if len(e['structure']['sites']) <= max_atoms]
    entries.sort(key=lambda e: (len(e['structure']['sites']), e['data']['material_id']))
    step = len(entries) / count
    chosen = [entries[int(i * step)] for i in range(count)]
    frames = [AseAtomsAdaptor.get_atoms(Structure.from_dict(e['structure'])) for e in chosen]
    for index, atoms in enumerate(frames):
        atoms.info['label'] = index
    return frames


def load(framework_name: str, device: str, workdir: Path):
    from aiida_mliap.frameworks import get_framework

    framework = get_framework(framework_name)
    if framework_name == 'chgnet':
        path, bundled = framework.bundled_checkpoint('chgnet-0.3.0')
        return framework, framework.load(path.parent, [path.name], device, 'float32', bundled.options)
    if framework_name == 'mace':
        from aiida_mliap.testing import build_tiny_mace

        path = build_tiny_mace(workdir / 'tiny.model', [3, 8, 15, 26])
        return framework, framework.load(workdir, [path.name], device, 'float64', {})
    folder = SHARED / 'models' / 'matgl' / 'M3GNet-MP-2021.2.8-PES'
    return framework, framework.load(folder, ['model.json', 'model.pt', 'state.pt'], device, 'float32', {})


def run(framework_name, engine, count, device, max_steps, fmax, threads, profile, budget=None):
    """One engine over the structures, in this (child) process: records, seconds, peak memory (MiB), profile."""
    import torch

    from aiida_mliap.engine.parameters import with_defaults
    from aiida_mliap.engine.runner import Runner, set_threads

    set_threads(threads)  # as the runner does
    frames = pick_structures(count)
    asked = {'task': 'relax', 'max_steps': max_steps, 'fmax': fmax, 'device': device, 'engine': engine}
    parameters = with_defaults({**asked, 'batch_budget': budget})
    with tempfile.TemporaryDirectory() as workdir:
        framework, loaded = load(framework_name, device, Path(workdir))
        runner = Runner(Path(workdir), device, threads)  # its own dispatch between the engines, checks included
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        started = time.perf_counter()
        finished = runner.records(frames, framework, loaded, parameters)
        records = {atoms.info['label']: record for atoms, record, _ in finished}
        seconds = time.perf_counter() - started
        report = ''
        if profiler:
            profiler.disable()
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats('cumulative').print_stats(25)
            report = stream.getvalue()
    if device == 'cuda':
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return records, seconds, peak, report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--count', type=int, default=48)
    parser.add_argument('--framework', action='append', choices=['chgnet', 'mace', 'matgl'])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--max-steps', type=int, default=500)
    parser.add_argument('--fmax', type=float, default=0.05, help='eV/Å (the tiny MACE needs ~1e-4 to take steps)')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--profile', action='store_true')
    parser.add_argument('--budget', type=int, help='batched engine: atoms + neighbour pairs per call (default: device)')
    parser.add_argument('--engine', action='append', choices=['ase', 'batched'], help='default: both')
    args = parser.parse_args()
    context = multiprocessing.get_context('spawn')
    rows = []
    for name in args.framework or ['chgnet', 'mace', 'matgl']:
        results = {}
        for engine in args.engine or ('ase', 'batched'):
            with context.Pool(1) as pool:
                task = (name, engine, args.count, args.device, args.max_steps, args.fmax, args.threads, args.profile,
                        args.budget)  # fmt: skip
                results[engine] = pool.apply(run, task)
            records, seconds, peak, report = results[engine]
            line = f'{name:7s} {engine:8s} {len(records)} structures in {seconds:7.1f} s, peak {peak:7.0f} MiB'
            print(line, flush=True)
            if report:
                print(report)
        if len(results) < 2:
            continue
        (ase_records, ase_s, ase_peak, _), (records, s, peak, _) = results['ase'], results['batched']
        both = [i for i in ase_records if ase_records[i].get('energy_per_atom') is not None and
                records[i].get('energy_per_atom') is not None]  # fmt: skip
        close = sum(abs(ase_records[i]['energy_per_atom'] - records[i]['energy_per_atom']) < 1e-3 for i in both)
        same = sum(ase_records[i].get('converged') == records[i].get('converged') for i in ase_records)
        steps = sum(r.get('n_steps', 0) for r in ase_records.values())
        rates = (args.count / ase_s, args.count / s, ase_s / s)
        rows.append((name, *rates, close, len(both), same, steps, ase_peak, peak))
    print(
        f'\ndevice {args.device}, {args.threads} torch threads, {args.count} structures, fmax {args.fmax}, '
        f'max_steps {args.max_steps}'
    )
    print(
        '| framework | ASE structures/s | batched structures/s | ratio | within 1 meV/atom | same converged | '
        'FIRE steps (ASE) | peak MiB ASE / batched |'
    )
    print('|---|---|---|---|---|---|---|---|')
    for name, ase_rate, rate, ratio, close, n, same, steps, ase_peak, peak in rows:
        print(
            f'| {name} | {ase_rate:.3f} | {rate:.3f} | {ratio:.2f}x | {close}/{n} | {same}/{args.count} | {steps} | '
            f'{ase_peak:.0f} / {peak:.0f} |'
        )


if __name__ == '__main__':
    main()
