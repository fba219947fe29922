"""Symmetry analysis of every structure in ../shared/data/mp/ at both tolerances, timed, with histograms.

    taskset -c 0 python benchmarks/symmetry.py [--repeat 3] [--histograms]

Times ``analyse`` (spglib dataset, Wyckoff orbits, site-symmetry DOF) at symprec 0.01 and 1e-5 per structure;
reading the files and building the structures is not timed. Target: > 200 structures/s on one core.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'mp'


def load_cells(folder: Path) -> list[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """(MP id, (lattice, fractional positions, atomic numbers)) of every entry of every file in ``folder``."""
    from pymatgen.core import Structure

    cells = []
    for path in sorted(folder.glob('*.json.gz')):
        with gzip.open(path, 'rt') as handle:
            for data in json.load(handle):
                structure = Structure.from_dict(data['structure'])
                cell = (structure.lattice.matrix, structure.frac_coords, np.array(structure.atomic_numbers))
                cells.append((f'{path.name.split(".")[0]}:{data["data"]["material_id"]}', cell))
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--folder', type=Path, default=SHARED)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--histograms', action='store_true', help='print space group and DOF histograms')
    args = parser.parse_args()

    from aiida_mliap.science.symmetry import SYMPRECS, analyse

    cells = load_cells(args.folder)
    print(f'{len(cells)} structures from {args.folder}, symprec {SYMPRECS}')
    rates, records = [], {}
    for _ in range(args.repeat):
        start = time.perf_counter()
        for name, cell in cells:
            records[name] = [analyse(*cell, symprec=symprec) for symprec in SYMPRECS]
        rates.append(len(cells) / (time.perf_counter() - start))
    print(f'structures/s (both tolerances): median {statistics.median(rates):.0f}, runs {[round(r) for r in rates]}')
    if not args.histograms:
        return
    loose = [pair[0] for pair in records.values()]
    differ = sum(1 for pair in records.values() if pair[0]['spacegroup_number'] != pair[1]['spacegroup_number'])
    print(f'space group differs between the tolerances for {differ} structures')
    groups = Counter((r['spacegroup_number'], r['spacegroup_symbol']) for r in loose)
    print('space group -> count (symprec 0.01):')
    print(', '.join(f'{number} {symbol}: {count}' for (number, symbol), count in sorted(groups.items())))
    print('crystal system -> count:', dict(Counter(r['crystal_system'] for r in loose).most_common()))
    dofs = [r['dof'] for r in loose]
    print('DOF -> count:', dict(sorted(Counter(dofs).items())))
    bins = [(low, 2 * low - 1) for low in (1, 2, 4, 8, 16, 32, 64, 128, 256)]
    print('DOF bin -> count:', {f'{low}-{high}': sum(low <= d <= high for d in dofs) for low, high in bins})
    print(f'DOF median {statistics.median(dofs)}, max {max(dofs)}')


if __name__ == '__main__':
    main()
