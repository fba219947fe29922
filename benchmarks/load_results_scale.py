"""``load_results`` on 10⁵-10⁶ rows of PostgreSQL: time and peak memory (targets: 150,000 rows < 20 s; 1M < 2 min,
peak < 4 GB).

    python benchmarks/load_results_scale.py --profile PROFILE --benchmark PK --rows 150000 1000000 --json FILE

Running 10⁶ structure-tasks through the daemon takes days on a small machine, so the rows are made by copying a real
run: ``PROFILE`` is a PostgreSQL profile holding one finished benchmark (``benchmarks/scale.py --storage postgres``
leaves one), ``PK`` its work chain. Every node created from the benchmark's launch on (its calculations, batch
tables, results, thermodynamics and symmetry records) and its model node are copied K - 1 times inside PostgreSQL
(``INSERT ... SELECT``: new ids and UUIDs, the same attributes and links, the same group memberships), each copy a
"model" of its own: ``sha256`` / ``model_sha256`` and ``name`` / ``model_name`` get a ``-copy<k>`` suffix. The
dataset, its structures and references are not copied, so the dataset group then holds K models' results on the
same N structures, as a study of K models would (nine models x 150,000 structures is 1.35 M rows). The tables keep
their full ``rows`` attribute, so PostgreSQL stores (and has to skip over) what a real run stores.

Per target size (in increasing order; copies are added, never removed): ``load_results`` of the dataset group in a
fresh process, its rows, seconds and peak resident memory (the best of ``--repeat``), and the database size.
The copies are for this benchmark only: run it on a profile made for it, never on one that holds your results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

LOAD = """
import json, resource, sys, time
from aiida import load_profile
load_profile(sys.argv[1])
from aiida_mliap.analysis.results import load_results
start = time.perf_counter()
table = load_results(sys.argv[2])
seconds = time.perf_counter() - start
print(json.dumps({'rows': len(table), 'models': int(table['model_sha256'].nunique()), 'seconds': seconds,
                  'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  'columns': len(table.columns)}))
"""

COPY_NODES = """
INSERT INTO db_dbnode (id, uuid, node_type, process_type, label, description, ctime, mtime, attributes, extras,
                       repository_metadata, dbcomputer_id, user_id)
SELECT id + :shift, gen_random_uuid(), node_type, process_type, label, description, ctime, mtime,
       CASE WHEN attributes ? 'model_sha256'
            THEN attributes || jsonb_build_object('model_sha256', (attributes->>'model_sha256') || :suffix,
                                                  'model_name', (attributes->>'model_name') || :suffix)
            WHEN id = ANY(:models)
            THEN attributes || jsonb_build_object('sha256', (attributes->>'sha256') || :suffix,
                                                  'name', (attributes->>'name') || :suffix)
            ELSE attributes END,
       extras, repository_metadata, dbcomputer_id, user_id
FROM db_dbnode WHERE id >= :first AND id <= :last OR id = ANY(:models)
"""
COPY_LINKS = """
INSERT INTO db_dblink (input_id, output_id, label, type)
SELECT CASE WHEN input_id >= :first AND input_id <= :last OR input_id = ANY(:models) THEN input_id + :shift
            ELSE input_id END,
       output_id + :shift, label, type
FROM db_dblink WHERE output_id >= :first AND output_id <= :last OR output_id = ANY(:models)
"""
COPY_MEMBERSHIPS = """
INSERT INTO db_dbgroup_dbnodes (dbnode_id, dbgroup_id)
SELECT dbnode_id + :shift, dbgroup_id FROM db_dbgroup_dbnodes
WHERE dbnode_id >= :first AND dbnode_id <= :last OR dbnode_id = ANY(:models)
"""
RESET_SEQUENCES = [
    "SELECT setval('db_dbnode_id_seq', (SELECT max(id) FROM db_dbnode))",
    "SELECT setval('db_dblink_id_seq', (SELECT max(id) FROM db_dblink))",
    "SELECT setval('db_dbgroup_dbnodes_id_seq', (SELECT max(id) FROM db_dbgroup_dbnodes))",
]


def source_of(benchmark_pk: int) -> dict:
    """What one copy copies: the id range of the benchmark's nodes, its model nodes, and the stride of the ids."""
    from aiida import orm
    from sqlalchemy import text

    from aiida_mliap.data.model import MliapModelData

    benchmark = orm.load_node(benchmark_pk)
    session = storage_session()
    original_last = benchmark.base.extras.get('load_results_scale_last', None)
    last = original_last or session.execute(text('SELECT max(id) FROM db_dbnode')).scalar_one()
    if original_last is None:
        benchmark.base.extras.set('load_results_scale_last', last)
    models = orm.QueryBuilder().append(MliapModelData, filters={'id': {'<': benchmark_pk}}, project='id', tag='m')
    models.append(orm.ProcessNode, with_incoming='m', filters={'id': {'>=': benchmark_pk, '<=': last}})
    return {'first': benchmark_pk, 'last': last, 'models': sorted(set(models.all(flat=True))), 'stride': last + 1}


def storage_session():
    from aiida.manage import get_manager

    return get_manager().get_profile_storage().get_session()


def copies_present(source: dict) -> int:
    from sqlalchemy import text

    found = storage_session().execute(text('SELECT max(id) FROM db_dbnode')).scalar_one()
    return 1 + (found - source['last']) // source['stride'] if found > source['last'] else 1


def add_copies(source: dict, total: int) -> float:
    """Copies until ``total`` models' worth of rows exist (each its own transaction); seconds spent."""
    from sqlalchemy import text

    session = storage_session()
    start = time.perf_counter()
    for k in range(copies_present(source), total):
        parameters = {'shift': k * source['stride'], 'suffix': f'-copy{k}', 'first': source['first'],
                      'last': source['last'], 'models': source['models']}  # fmt: skip
        for statement in (COPY_NODES, COPY_LINKS, COPY_MEMBERSHIPS):
            session.execute(text(statement), parameters)
        for statement in RESET_SEQUENCES:
            session.execute(text(statement))
        session.commit()
        print(f'  {time.strftime("%H:%M:%S")} copy {k} of {total - 1} stored', flush=True)
    session.execute(text('ANALYZE'))
    session.commit()
    return time.perf_counter() - start


def database_bytes() -> int:
    from sqlalchemy import text

    return int(storage_session().execute(text('SELECT pg_database_size(current_database())')).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--profile', required=True, help='a PostgreSQL profile made for this (copies are added)')
    parser.add_argument('--benchmark', type=int, required=True, help='pk of its finished benchmark work chain')
    parser.add_argument('--group', default='scale', help='the dataset group to load')
    parser.add_argument('--rows', type=int, nargs='+', default=[150_000, 1_000_000])
    parser.add_argument('--repeat', type=int, default=2)
    parser.add_argument('--json', type=Path, required=True)
    args = parser.parse_args()

    from aiida import load_profile

    profile = load_profile(args.profile)
    if profile.storage_backend != 'core.psql_dos':
        sys.exit(f'{args.profile} is not a PostgreSQL profile')
    source = source_of(args.benchmark)
    measured = []
    base_rows = None
    for target in sorted(args.rows):
        if base_rows is None:
            base_rows = json.loads(load(args.profile, args.group))['rows'] // copies_present(source)
            print(f'one copy holds {base_rows} rows; models {source["models"]}', flush=True)
        copies = -(-target // base_rows)
        copy_s = add_copies(source, copies)
        runs = [json.loads(load(args.profile, args.group)) for _ in range(args.repeat)]
        best = min(runs, key=lambda run: run['seconds'])
        row = {'target_rows': target, 'copies': copies, 'rows': best['rows'], 'models': best['models'],
               'columns': best['columns'], 'load_results_s': [round(run['seconds'], 1) for run in runs],
               'load_results_peak_mb': round(max(run['peak_mb'] for run in runs)),
               'database_gb': round(database_bytes() / 1e9, 2), 'copy_s': round(copy_s)}  # fmt: skip
        print(json.dumps(row), flush=True)
        measured.append(row)
        args.json.write_text(json.dumps({'profile': args.profile, 'benchmark': args.benchmark,
                                         'measured': measured}, indent=2) + '\n')  # fmt: skip


def load(profile: str, group: str) -> str:
    done = subprocess.run([sys.executable, '-c', LOAD, profile, group], env=dict(os.environ), check=True,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


if __name__ == '__main__':
    main()
