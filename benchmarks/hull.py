"""Import one MP file and compute every formation energy and Ehull (both hulls) for ~1,000 entries, timed.

    taskset -c 0 python benchmarks/hull.py [--file ../shared/data/mp/Li-Fe-P-O.json.gz] [--repeat 3]

Each repeat runs in a fresh throw-away SQLite profile (its own AIIDA_PATH, removed afterwards), so the import is a
first import every time. The model is "DFT as a raw-scale model" (the raw DFT energies as its results), so the
MP2020 corrections are applied afresh as for a real raw-scale model. Reported per repeat:
- import: parse and check the file, the import calcfunction with one StructureData and one reference node per entry;
- thermo: ``compute_thermodynamics`` end to end (reads references and results, MP2020, both hulls, one thermo
  node per entry);
- end to end: the two together (the target: under 10 s on one core);
- hull: pymatgen's PhaseDiagram over the entries and every entry's decomposition and Ehull, alone (target < 2 s);
- pure thermodynamics: MP2020 plus both hulls without AiiDA.
Creating the stand-in model results (what an MliapCalculation's parser would store) is not timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'mp'


def fresh_profile(directory: Path, name: str) -> None:
    """A SQLite profile without broker in ``directory`` (process functions run without one)."""
    from aiida import load_profile
    from aiida.manage.configuration import create_profile, get_config

    config = get_config(create=True)
    create_profile(
        config,
        name=name,
        email='benchmark@localhost',
        storage_backend='core.sqlite_dos',
        storage_config={'filepath': str(directory / 'storage')},
    )
    load_profile(name, allow_switch=True)


def one_repeat(path: Path) -> dict[str, float]:
    from aiida_mliap.calculations.dataset import import_reference_file, imported_nodes
    from aiida_mliap.calculations.tables import union_of_tables
    from aiida_mliap.calculations.thermo import (
        compute_thermodynamics,
        thermo_records,
        thermodynamics,
        thermodynamics_inputs,
    )
    from aiida_mliap.data.reference import to_entry
    from aiida_mliap.science.hull import hull_quantities
    from aiida_mliap.testing import oracle_model, oracle_tables

    times = {}
    start = time.perf_counter()
    _, dataset, created = import_reference_file(path, 'benchmark')
    times['import'] = time.perf_counter() - start
    assert created, 'the profile is fresh: the import must create the nodes'

    model = oracle_model(tempfile.mkdtemp())
    start = time.perf_counter()
    tables = oracle_tables(dataset)
    times['tabulate'] = time.perf_counter() - start

    start = time.perf_counter()
    outputs, node = compute_thermodynamics.run_get_node(**thermodynamics_inputs(model, tables, [dataset]))
    times['thermo'] = time.perf_counter() - start
    times['end to end'] = times['import'] + times['tabulate'] + times['thermo']
    records = thermo_records(node)
    assert len(records) == dataset.base.attributes.get('n_entries') and outputs['summary']['counts'].get('ok')

    references = imported_nodes([dataset], 'references', project='attributes')[dataset.sha256]
    entries = {label: to_entry(attributes) for label, attributes in references.items()}
    start = time.perf_counter()
    hull_quantities(entries)
    times['hull'] = time.perf_counter() - start
    _, _, results = union_of_tables(tables)
    start = time.perf_counter()
    thermodynamics(model, references, results, None)
    times['pure thermodynamics'] = time.perf_counter() - start
    worst = max(abs(r['e_above_hull_model'] - references[label]['e_above_hull']) for label, r in records.items())
    times['n_entries'] = len(records)
    times['worst |dEhull| vs MP'] = worst
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--file', type=Path, default=SHARED / 'Li-Fe-P-O.json.gz')
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f'{args.file.name}, {args.repeat} repeat(s), {cores} core(s) available to this process')

    import shutil

    rows = []
    os.environ['AIIDA_PATH'] = tempfile.mkdtemp(prefix='hull-benchmark-')
    for repeat in range(args.repeat):
        directory = Path(os.environ['AIIDA_PATH']) / f'profile-{repeat}'
        try:
            fresh_profile(directory, f'hull-benchmark-{repeat}')
            rows.append(one_repeat(args.file))
        finally:
            from aiida.manage import get_manager

            get_manager().unload_profile()
            shutil.rmtree(directory, ignore_errors=True)
        print(f'  repeat {repeat + 1}: ' + ', '.join(f'{k} {v:.3g}' for k, v in rows[-1].items()), flush=True)
    shutil.rmtree(os.environ['AIIDA_PATH'], ignore_errors=True)
    print(f'{"step":<22}{"median s":>10}{"min s":>10}')
    for key in ('import', 'thermo', 'end to end', 'hull', 'pure thermodynamics'):
        values = [row[key] for row in rows]
        print(f'{key:<22}{statistics.median(values):>10.2f}{min(values):>10.2f}')
    worst = rows[0]['worst |dEhull| vs MP']
    print(f'entries: {rows[0]["n_entries"]}, worst |Ehull - MP| on the model hull: {worst:.1e} eV/atom')


if __name__ == '__main__':
    main()
