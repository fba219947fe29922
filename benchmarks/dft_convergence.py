"""How fast ΔE_geom converges: the DFT check's series, level by level, for the example's structures.

    python benchmarks/dft_convergence.py --profile P --check PK          # print the levels of a finished check
    python benchmarks/dft_convergence.py --profile P --benchmark PK --label mp_1120743 --label mp_1179990 \\
        [--levels 5] [--json FILE]                                          # run every level, then print

The second form runs ``MliapDftCheckWorkChain`` on a finished relaxation benchmark with a tolerance no refinement
meets, so that all ``--levels`` run, each a denser sampling (spacing 0.5 x 0.75^i 1/Å; the smearing step comes
only after a converged sampling step, so never here): the default check stops where the sampling has converged
(and a metal's smearing with it), this shows what further levels would have changed. Prints per structure and level:
what it changed, both meshes, smearing, gaps, ΔE_geom and its change (meV/atom; `switch` where a geometry turned
from metal to gapped or back, which the check does not count as convergence), and the wall time.
"""

from __future__ import annotations

import argparse
import json
import time

from aiida_mliap.science.dft_check import GEOMETRIES, level_changes


def series(check_node) -> list[dict]:
    """Per structure and level, from the check's records (``MliapDftCheckData``)."""
    rows = []
    for label, record in sorted(check_node.outputs.checks.items()):
        comparable = [True, *(change is not None for change in level_changes(record['levels']))]
        previous = None
        for level, same in zip(record['levels'], comparable, strict=True):
            delta = 1000 * level['delta_e_geom']
            gaps = [level.get(f'gap_{g}') for g in GEOMETRIES]
            rows.append({
                'label': label, 'level': level['level'], 'step': level.get('step'),
                'mesh model': 'x'.join(map(str, level['mesh_model'])),
                'mesh MP': 'x'.join(map(str, level['mesh_reference'])),
                'degauss model / MP (eV)': ' / '.join(
                    'none' if level[f'degauss_{g}'] is None else f"{level[f'degauss_{g}']:.4f}" for g in GEOMETRIES
                ),
                'smearing model / MP': f"{level['smearing_model']} / {level['smearing_reference']}",
                'gap model / MP (eV)': ' / '.join('?' if gap is None else f'{gap:.2f}' for gap in gaps),
                'dE_geom meV/atom': round(delta, 2),
                'change': None if previous is None else round(delta - previous, 2) if same else 'switch',
            })  # fmt: skip
            previous = delta
        final, uncertainty = record['delta_e_geom'], record['delta_e_geom_uncertainty']
        rows.append({'label': label, 'level': 'status', 'mesh model': record['status'],
                     'dE_geom meV/atom': None if final is None else round(1000 * final, 2),
                     'change': None if uncertainty is None else round(1000 * uncertainty, 2)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--profile')
    parser.add_argument('--check', type=int, help='pk of a finished MliapDftCheckWorkChain')
    parser.add_argument('--benchmark', type=int, help='pk of a finished relaxation benchmark to check')
    parser.add_argument('--label', action='append', default=[], help='structure to check (repeatable)')
    parser.add_argument('--levels', type=int, default=5, help='levels to run (refinements + 1)')
    parser.add_argument('--pw', default='pw@localhost')
    parser.add_argument('--family', default='pslibrary-1.0.0-PBE')
    parser.add_argument('--json', help='write the rows here')
    args = parser.parse_args()

    import pandas as pd
    from aiida import load_profile, orm
    from aiida.engine import run_get_node

    load_profile(args.profile, allow_switch=True)
    if args.check:
        node = orm.load_node(args.check)
    else:
        from aiida_mliap.analysis.dft_check import dft_check_builder

        builder = dft_check_builder(orm.load_node(args.benchmark), orm.load_code(args.pw), args.family,
                                    labels=tuple(args.label), max_structures=len(args.label))  # fmt: skip
        builder.tolerance = orm.Float(1e-9)  # no level converges: every level runs
        builder.max_refinements = orm.Int(args.levels - 1)
        start = time.perf_counter()
        _, node = run_get_node(builder)
        print(f'{node.process_label}<{node.pk}> exit {node.exit_status} in {time.perf_counter() - start:.0f} s')
    rows = series(node)
    print(pd.DataFrame(rows).to_string(index=False))
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(rows, handle, indent=1)


if __name__ == '__main__':
    main()
