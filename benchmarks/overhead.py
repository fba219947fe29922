"""What AiiDA costs on top of the runner: the same relaxations through ``aiida.engine.run`` and the runner alone.

    python benchmarks/overhead.py [--profile NAME] [--count 24] [--max-atoms 24]

The runner alone gets an input folder written exactly as the CalcJob writes it; both paths start the same
``aiida-mliap-run`` executable, so the difference is AiiDA's share (submission, upload, retrieval, parsing,
storing nodes). Target: the AiiDA run costs less than 10 % extra. Needs the code and model that
``make demo`` registers.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'mp'


def pick_structures(path: Path, count: int, max_atoms: int):
    """The first ``count`` entries of the file with at most ``max_atoms`` atoms, as stored StructureData."""
    from aiida import orm
    from pymatgen.core import Structure

    with gzip.open(path, 'rt') as handle:
        entries = [d for d in json.load(handle) if len(d['structure']['sites']) <= max_atoms][:count]
    structures = []
    for entry in entries:
        node = orm.StructureData(pymatgen=Structure.from_dict(entry['structure']))
        node.label = entry['data']['material_id']
        structures.append(node.store())
    return structures


def run_plain(builder, executable: str) -> float:
    """Write the CalcJob's input folder by hand and time the runner alone on it."""
    import shutil

    from aiida_mliap.calculations.mliap import structures_to_extxyz
    from aiida_mliap.contract import files

    model = builder.model
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        (folder / files.PARAMETERS).write_text(
            json.dumps({**builder.parameters.get_dict(), 'model': model.runner_spec()})
        )
        (folder / files.STRUCTURES).write_text(structures_to_extxyz(dict(builder.structures)))
        for name in model.filenames:
            target = folder / files.MODEL_DIR / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with model.base.repository.open(name, 'rb') as source, open(target, 'wb') as sink:
                shutil.copyfileobj(source, sink)
        start = time.perf_counter()
        subprocess.run([executable, str(folder)], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--profile')
    parser.add_argument('--file', type=Path, default=SHARED / 'Li-Fe-P-O.json.gz')
    parser.add_argument('--count', type=int, default=24)
    parser.add_argument('--max-atoms', type=int, default=24)
    parser.add_argument('--model', default='chgnet-0.3.0')
    parser.add_argument('--code', default='aiida-mliap-run@localhost')
    parser.add_argument('--fmax', type=float, default=0.05)
    parser.add_argument('--max-steps', type=int, default=500)
    parser.add_argument('--repeat', type=int, default=2, help='alternate the two paths this many times')
    args = parser.parse_args()

    from aiida import load_profile, orm
    from aiida.engine import run_get_node
    from aiida.manage.caching import disable_caching

    load_profile(args.profile, allow_switch=True)
    from aiida_mliap.calculations.mliap import get_builder_for
    from aiida_mliap.data import MliapModelData

    code = orm.load_code(args.code)
    structures = pick_structures(args.file, args.count, args.max_atoms)
    parameters = {'task': 'relax', 'fmax': args.fmax, 'max_steps': args.max_steps, 'device': 'cpu'}
    builder = get_builder_for(code, MliapModelData.resolve(args.model), structures, parameters)
    atoms = sum(len(s.sites) for s in structures)
    print(f'{len(structures)} structures ({atoms} atoms) from {args.file.name}, {args.model}, fmax {args.fmax}')

    plain_times, aiida_times, runner_times = [], [], []
    for attempt in range(1, args.repeat + 1):
        plain_times.append(run_plain(builder, str(code.filepath_executable)))
        print(f'[{attempt}] runner alone:      {plain_times[-1]:8.1f} s', flush=True)
        with disable_caching():
            start = time.perf_counter()
            _, node = run_get_node(builder)
            aiida_times.append(time.perf_counter() - start)
        runner_times.append(node.outputs.summary['wall_time_s'])
        print(
            f'[{attempt}] aiida.engine.run:  {aiida_times[-1]:8.1f} s  (MliapCalculation<{node.pk}>, exit '
            f'{node.exit_status}; the runner inside it took {runner_times[-1]:.1f} s)',
            flush=True,
        )
    plain, through_aiida, inside = min(plain_times), min(aiida_times), min(runner_times)
    print(f'best of {args.repeat}: runner alone {plain:.1f} s, through AiiDA {through_aiida:.1f} s')
    print(f'ratio:               {through_aiida / plain:8.3f}  ({100 * (through_aiida / plain - 1):+.1f} %)')
    print(f'AiiDA bookkeeping (total - runner inside it): {through_aiida - inside:.1f} s')
    print(f'structures by status: {node.outputs.summary["counts"]}')


if __name__ == '__main__':
    main()
