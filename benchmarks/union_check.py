"""Acceptance check of a benchmark over several MP files in one group (issue 14): one row per unique entry, and the
DFT Ehull of every row equal to an independent pymatgen PhaseDiagram over the union of the files.

    python benchmarks/union_check.py -p PROFILE BENCHMARK_PK FILE [FILE ...]

Prints the counts, the largest Ehull deviation, the headline table and the work chain's wall time.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-p', '--profile', required=True)
    parser.add_argument('benchmark', type=int)
    parser.add_argument('files', type=Path, nargs='+')
    arguments = parser.parse_args()

    from aiida import load_profile, orm

    load_profile(arguments.profile)
    from pymatgen.analysis.phase_diagram import PhaseDiagram
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    from aiida_mliap.analysis import load_results
    from aiida_mliap.science.metrics import as_percent, headline_table

    node = orm.load_node(arguments.benchmark)
    table = load_results(node)
    entries: dict[str, ComputedStructureEntry] = {}
    read = 0
    for path in arguments.files:
        with gzip.open(path, 'rt') as handle:
            content = json.load(handle)
        read += len(content)
        entries.update({entry['data']['material_id']: ComputedStructureEntry.from_dict(entry) for entry in content})
    diagram = PhaseDiagram(list(entries.values()))
    print(f'{read} entries in {len(arguments.files)} files, {len(entries)} unique')
    for (model, task), rows in table.groupby(['model', 'task']):
        duplicated = int(rows['mp_id'].duplicated().sum())
        missing = sorted(set(entries) - set(rows['mp_id']))
        worst = max(
            abs(row.e_above_hull_dft - diagram.get_e_above_hull(entries[row.mp_id])) for row in rows.itertuples()
        )
        print(
            f'{model}/{task}: {len(rows)} rows, {duplicated} duplicated, {len(missing)} entries without a row, '
            f'largest |Ehull_DFT - PhaseDiagram(union)| {worst:.2e} eV/atom, '
            f'statuses {rows["status"].value_counts().to_dict()}'
        )
    print(as_percent(headline_table(table)).to_string(index=False, float_format=lambda x: f'{x:.1f}'))
    for entry in node.outputs.summary['entries']:
        for hull, values in entry['classification'].items():
            print(
                f'{entry["model"]}/{entry["task"]} {hull}: F1 {values["f1"]:.3f} DAF {values["daf"]:.2f} '
                f'(tp {values["tp"]} fp {values["fp"]} fn {values["fn"]} tn {values["tn"]}, '
                f'{values["n_failed"]} failed counted unstable)'
            )
    print(f'wall time {node.process_label}<{node.pk}>: {node.mtime - node.ctime} (created {node.ctime:%H:%M:%S})')


if __name__ == '__main__':
    main()
