"""``load_results`` timed and its SQL queries counted, the table saved; or two saved tables compared column for column.

    python benchmarks/load_results_paths.py --profile P --source GROUP_OR_PK [--repeat 3] --save T.pkl [--json F]
    python benchmarks/load_results_paths.py --compare BEFORE.pkl AFTER.pkl

Made for the change that has ``load_results`` read forward (thermo records carry the result columns) instead of
walking back thermo -> tables -> tabulate_batch -> result nodes: run the first form with the code before and after
on the same profile (``PYTHONPATH`` of a worktree of the earlier commit selects the earlier code), then compare.
Queries are counted at SQLAlchemy's engine (every query on SQLite; on PostgreSQL the streamed ``COPY`` of
``query_frame`` bypasses it and counts as none).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def measure(args) -> None:
    from aiida import load_profile
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    load_profile(args.profile, allow_switch=True)
    import aiida_mliap
    from aiida_mliap.analysis.results import load_results

    counted = []
    event.listen(Engine, 'before_cursor_execute', lambda *_: counted.append(1))
    source = int(args.source) if args.source.isdigit() else args.source
    times, queries = [], []
    for _ in range(args.repeat):
        counted.clear()
        start = time.perf_counter()
        table = load_results(source)
        times.append(time.perf_counter() - start)
        queries.append(len(counted))
    table.to_pickle(args.save)
    found = {'code': aiida_mliap.__file__, 'rows': len(table), 'columns': len(table.columns),
             'seconds': times, 'median_s': statistics.median(times), 'queries': queries}  # fmt: skip
    print(json.dumps(found))
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(found, handle, indent=1)


def compare(before_path: str, after_path: str) -> int:
    import pandas as pd

    before, after = pd.read_pickle(before_path), pd.read_pickle(after_path)
    # Node ids differ between profiles only; on one profile they are equal too, and compared.
    problems = []
    if list(before.columns) != list(after.columns):
        problems.append(f'columns differ: {sorted(set(before.columns) ^ set(after.columns))} / order')
    if len(before) != len(after):
        problems.append(f'rows: {len(before)} vs {len(after)}')
    for column in before.columns:
        if column not in after or len(before) != len(after):
            continue
        left, right = before[column].reset_index(drop=True), after[column].reset_index(drop=True)
        if not left.equals(right):
            both_missing = left.isna() & right.isna()
            unequal = ~(both_missing | (left.astype(object) == right.astype(object)))
            problems.append(f'{column}: {int(unequal.sum())} rows differ, e.g. {left[unequal].head(3).tolist()} vs '
                            f'{right[unequal].head(3).tolist()}; dtypes {left.dtype} / {right.dtype}')  # fmt: skip
    print(f'{len(before)} rows x {len(before.columns)} columns: ' + ('identical' if not problems else 'DIFFERENT'))
    for problem in problems:
        print('  ' + problem)
    return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--profile')
    parser.add_argument('--source')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--save')
    parser.add_argument('--json')
    parser.add_argument('--compare', nargs=2, metavar=('BEFORE', 'AFTER'))
    args = parser.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare))
    measure(args)


if __name__ == '__main__':
    main()
