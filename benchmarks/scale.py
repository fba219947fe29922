"""A benchmark of N structures end to end through the daemon: what AiiDA costs per structure, and how it grows.

    python benchmarks/scale.py --structures N --storage {sqlite,postgres} --json FILE
        [--batch-size 500] [--max-concurrent 2] [--workers 2] [--restarts K] [--workdir DIR]

The dataset: the 1,894 real entries of the union of the three shared MP files, then strained copies of them until
there are N. Copy k of an entry has its own id (``mp-<id>-s<k>``), its lattice scaled by (1 + 0.001 k) and its
uncorrected energy raised by k meV/atom: every copy lies above its original, so the real entries keep the hull (the
DFT hull of the copies is the real one) and every copy is a metastable polymorph with a well-defined Ehull of at
least k meV/atom. The model: a tiny MACE (seeded, built here over the union's elements), single points: it is real
and fast, so the run measures AiiDA and the pipeline, not a potential.

A fresh profile in its own AIIDA_PATH (under --workdir, kept): SQLite + the built-in ZeroMQ broker, or PostgreSQL
(a new database on 127.0.0.1, made with ``psql -U postgres``) + RabbitMQ. Written to --json:
- ``n_structures``, ``wall_s`` (the benchmark work chain, launch to end), ``runner_s`` (the runner's own seconds per
  structure, summed), ``aiida_overhead_s_per_structure`` = (wall_s x lanes - runner_s) / N: the lane-seconds not
  spent in the model;
- ``db_bytes_per_structure``: database plus file repository, divided by N (after the run);
- ``max_checkpoint_bytes``: the largest checkpoint of the benchmark work chain seen while it ran (polled every
  second), and ``max_lane_checkpoint_bytes`` the same for its lanes;
- ``load_results_s``, ``load_results_peak_mb``: ``load_results`` of the dataset group in a fresh process (its peak
  resident memory), ``report_s``: ``aiida-mliap report``;
- with ``--restarts K``: the daemon is stopped and started K times while batches run (after the 1st, 2nd, ...
  finished batch), and ``results_per_structure`` counts how many model results each structure got over every
  calculation of the benchmark (``{"1": N}``: nothing lost, nothing computed twice).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

SHARED = Path(os.environ.get('MLIAP_SHARED_DATA', Path(__file__).resolve().parents[2] / 'shared' / 'data'))
FILES = ('Li-Fe-P-O', 'Li-Co-Ni-O', 'Na-Fe-P-O')


def mp_like_entries(count: int) -> list[dict]:
    """``count`` entries: the union's real ones, then strained copies with raised energies (see the module doc)."""
    real: dict[str, dict] = {}
    for name in FILES:
        with gzip.open(SHARED / 'mp' / f'{name}.json.gz', 'rt') as handle:
            for entry in json.load(handle):
                real.setdefault(entry['data']['material_id'], entry)
    originals = [real[key] for key in sorted(real)]
    entries = originals[:count]
    k = 0
    while len(entries) < count:
        k += 1
        for original in originals[: count - len(entries)]:
            entries.append(strained_copy(original, k))
    return entries


def strained_copy(entry: dict, k: int) -> dict:
    copy = json.loads(json.dumps(entry))
    copy['data']['material_id'] = f'{entry["data"]["material_id"]}-s{k}'
    copy['entry_id'] = f'{copy["data"]["material_id"]}-GGA'
    scale = 1 + 0.001 * k
    lattice = copy['structure']['lattice']
    lattice['matrix'] = [[scale * x for x in row] for row in lattice['matrix']]
    for key in ('a', 'b', 'c'):
        lattice[key] = lattice.get(key, 0) * scale
    if 'volume' in lattice:
        lattice['volume'] *= scale**3
    for site in copy['structure']['sites']:
        site['xyz'] = [scale * x for x in site['xyz']]
    copy['energy'] += 0.001 * k * len(copy['structure']['sites'])
    return copy


def run(command: list[str], env: dict[str, str], check: bool = True) -> str:
    done = subprocess.run(command, env=env, check=False, capture_output=True, text=True)
    if check and done.returncode:
        raise RuntimeError(f'{" ".join(command)} failed ({done.returncode}): {done.stdout}{done.stderr}')
    return done.stdout


def make_profile(name: str, storage: str, env: dict[str, str], workdir: Path) -> None:
    """A new profile; the daemon gets a minute to start and stop (aiida's 2 s fail on a busy machine)."""
    if storage == 'sqlite':
        run(['verdi', 'presto', '--profile-name', name, '--use-zeromq'], env)
        run(['verdi', '-p', name, 'config', 'set', 'daemon.timeout', '60'], env)
        return
    database = name.replace('-', '_')
    for sql in (f"CREATE ROLE {database} LOGIN PASSWORD '{database}'",
                f"CREATE DATABASE {database} OWNER {database} ENCODING 'UTF8' TEMPLATE template0"):  # fmt: skip
        run(['psql', '-U', 'postgres', '-h', '127.0.0.1', '-c', sql], env)
    run(['verdi', 'profile', 'setup', 'core.psql_dos', '--profile-name', name, '--email', 'scale@localhost',
         '--first-name', 'scale', '--last-name', 'run', '--institution', 'aiida-mliap', '--database-hostname',
         '127.0.0.1', '--database-name', database, '--database-username', database, '--database-password', database,
         '--repository-uri', f'file://{workdir / "repository"}', '--broker', 'core.rabbitmq', '--non-interactive'],
        env)  # fmt: skip
    run(['verdi', '-p', name, 'config', 'set', 'daemon.timeout', '60'], env)


def tiny_mace(path: Path) -> Path:
    from pymatgen.core import Element

    from aiida_mliap.testing import build_tiny_mace

    elements = sorted({el for name in FILES for el in name.split('-')}, key=lambda symbol: Element(symbol).Z)
    return build_tiny_mace(path, [Element(symbol).Z for symbol in elements])


def checkpoint_bytes(node) -> int:
    return len(node.checkpoint or '')


def watch(pk: int, restart, restarts: int = 0, every: float = 1.0) -> dict[str, int]:
    """Poll the benchmark and its lanes until it ends: the largest checkpoints seen, progress on the way; the daemon
    restarted (``restart()``) after the first ``restarts`` finished batches."""
    from aiida import orm

    largest = {'benchmark': 0, 'lane': 0, 'restarts': 0}
    last_print = 0.0
    while True:
        node = orm.load_node(pk)
        largest['benchmark'] = max(largest['benchmark'], checkpoint_bytes(node))
        lanes = [child for child in node.called if child.process_label == 'MliapLaneWorkChain']
        for lane in lanes:
            largest['lane'] = max(largest['lane'], checkpoint_bytes(lane))
        # The lanes call base work chains and, as each ends, its table (tabulate_batch): count the batches only.
        done = sum(c.is_terminated and c.process_label == 'MliapBaseWorkChain' for lane in lanes for c in lane.called)
        if largest['restarts'] < restarts and done > largest['restarts'] and not node.is_terminated:
            largest['restarts'] += 1
            print(f'  {time.strftime("%H:%M:%S")} {done} batches done: daemon restart {largest["restarts"]}')
            restart()
        if time.time() - last_print > 60:
            print(f'  {time.strftime("%H:%M:%S")} {node.process_state.value}: {done} batches done', flush=True)
            last_print = time.time()
        if node.is_terminated:
            return largest
        time.sleep(every)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob('*') if f.is_file())


def database_bytes(profile, storage: str) -> int:
    config = profile.storage_config
    if storage == 'sqlite':
        return folder_bytes(Path(config['filepath']))
    from aiida.manage import get_manager
    from sqlalchemy import text

    session = get_manager().get_profile_storage().get_session()
    size = session.execute(text('SELECT pg_database_size(current_database())')).scalar_one()
    return int(size) + folder_bytes(Path(config['repository_uri'].removeprefix('file://')))


LOAD = """
import json, resource, sys, time
from aiida import load_profile
load_profile(sys.argv[1])
from aiida_mliap.analysis.results import load_results
start = time.perf_counter()
table = load_results(sys.argv[2])
print(json.dumps({'rows': len(table), 'seconds': time.perf_counter() - start,
                  'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--structures', type=int, required=True)
    parser.add_argument('--storage', choices=['sqlite', 'postgres'], default='sqlite')
    parser.add_argument('--json', type=Path, required=True)
    parser.add_argument('--batch-size', type=int, default=500)
    parser.add_argument('--max-concurrent', type=int, default=2)
    parser.add_argument('--workers', type=int, default=2, help='daemon workers')
    parser.add_argument('--restarts', type=int, default=0, help='daemon stops and starts while batches run')
    parser.add_argument('--workdir', type=Path)
    args = parser.parse_args()

    n = args.structures
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix=f'mliap-scale-{n}-'))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ['AIIDA_PATH'] = str(workdir / 'aiida')
    env = dict(os.environ)
    profile_name = f'scale-{n}-{args.storage}-{os.getpid()}'
    print(f'workdir {workdir}, profile {profile_name}', flush=True)

    dataset = workdir / f'mp-like-{n}.json.gz'
    with gzip.open(dataset, 'wt') as handle:
        json.dump(mp_like_entries(n), handle)
    make_profile(profile_name, args.storage, env, workdir)
    mliap = ['aiida-mliap', '-p', profile_name]
    run([*mliap, 'setup', 'code'], env)
    model = tiny_mace(workdir / 'tiny-mace.model')
    run([*mliap, 'setup', 'model', str(model), '--framework', 'mace', '--name', 'tiny-mace',
         '--energy-scale', 'raw_dft'], env)  # fmt: skip
    start = time.perf_counter()
    run([*mliap, 'dataset', 'import', str(dataset), '-G', 'scale'], env)
    import_s = time.perf_counter() - start
    print(f'imported {n} entries in {import_s:.0f} s', flush=True)
    run(['verdi', '-p', profile_name, 'daemon', 'start', str(args.workers)], env)
    try:
        output = run([*mliap, 'benchmark', 'launch', '-G', 'scale', '--model', 'tiny-mace', '--task', 'static',
                      '--protocol', 'fast', '--device', 'cpu', '--batch-size', str(args.batch_size),
                      '--max-concurrent', str(args.max_concurrent), '-d'], env)  # fmt: skip
        pk = int(output.split('MliapBenchmarkWorkChain<')[1].split('>')[0])
        from aiida import load_profile, orm

        profile = load_profile(profile_name)
        daemon = ['verdi', '-p', profile_name, 'daemon']
        largest = watch(pk, lambda: (run([*daemon, 'stop'], env), run([*daemon, 'start', str(args.workers)], env)),
                        args.restarts)  # fmt: skip
    finally:
        run(['verdi', '-p', profile_name, 'daemon', 'stop'], env, check=False)
    node = orm.load_node(pk)
    wall_s = (node.mtime - node.ctime).total_seconds()
    query = orm.QueryBuilder().append(orm.CalcJobNode, tag='job')
    query.append(orm.Data, with_incoming='job', edge_filters={'label': {'like': 'results__%'}},
                 project='attributes.wall_time_s')  # fmt: skip
    runner_s = sum(seconds or 0.0 for seconds in query.all(flat=True))
    lanes = len([child for child in node.called if child.process_label == 'MliapLaneWorkChain'])
    computed = orm.QueryBuilder().append(orm.CalcJobNode, tag='job')
    computed.append(orm.Data, with_incoming='job', edge_filters={'label': {'like': 'results__%'}},
                    edge_project='label')  # fmt: skip
    per_structure = Counter(Counter(computed.all(flat=True)).values())
    # What the run measured is written first: a failure in the analysis below must not lose it.
    result = {
        'n_structures': n,
        'storage': args.storage,
        'process_state': node.process_state.value,
        'exit_status': node.exit_status,
        'batch_size': args.batch_size,
        'max_concurrent': args.max_concurrent,
        'daemon_workers': args.workers,
        'import_s': round(import_s, 1),
        'wall_s': round(wall_s, 1),
        'runner_s': round(runner_s, 1),
        'aiida_overhead_s_per_structure': round((wall_s * lanes - runner_s) / n, 4),
        'db_bytes_per_structure': round(database_bytes(profile, args.storage) / n),
        'max_checkpoint_bytes': largest['benchmark'],
        'max_lane_checkpoint_bytes': largest['lane'],
        'daemon_restarts': largest['restarts'],
        'results_per_structure': {str(k): v for k, v in sorted(per_structure.items())},
        'workdir': str(workdir),
    }
    args.json.write_text(json.dumps(result, indent=2) + '\n')
    if not node.is_finished_ok:
        sys.exit(f'{node.process_label}<{pk}> ended {node.process_state.value} [{node.exit_status}]: '
                 f'`verdi -p {profile_name} process report {pk}`; measured so far in {args.json}')  # fmt: skip
    loaded = json.loads(run([sys.executable, '-c', LOAD, profile_name, 'scale'], env))
    start = time.perf_counter()
    run([*mliap, 'report', 'scale', '-o', str(workdir / 'report')], env)
    result.update(
        load_results_rows=loaded['rows'],
        load_results_s=round(loaded['seconds'], 2),
        load_results_peak_mb=round(loaded['peak_mb']),
        report_s=round(time.perf_counter() - start, 1),
    )
    args.json.write_text(json.dumps(result, indent=2) + '\n')
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
