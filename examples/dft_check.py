"""DFT check of a CHGNet relaxation benchmark: Quantum ESPRESSO at CHGNet's geometry and at MP's, per structure.

    aiida-mliap -p PROFILE setup dft          # once: pseudopotential family + pw.x code
    python examples/dft_check.py --profile PROFILE [--chemsys Li-P] [--max-atoms 8] [--max-structures 2]
        [--benchmark PK]                      # reuse a finished relaxation benchmark instead of running one
        [--kpoints-distance 0.5] [--tolerance 5] [--max-refinements 3]   # the CLI's defaults (DFT_DEFAULTS)

Runs (unless --benchmark) a CHGNet relaxation benchmark of every structure of <= --max-atoms atoms of an MP chemical
system (the shared Li-Fe-P-O file, its --chemsys subsystem: every phase, so the hull is complete), picks the
structures whose symmetry CHGNet lowered, then those with the largest Ehull error, and runs
``MliapDftCheckWorkChain``: per structure SCFs at both geometries, each on its own mesh, refined until ΔE_geom =
E_DFT(CHGNet geometry) - E_DFT(MP geometry) per atom converges. Prints it with its uncertainty beside the DFT Ehull
and CHGNet's total-energy error, QE's largest force and pressure at MP's geometry, and what it says, only beyond the
uncertainty. ΔE_geom is QE's (PBE, pslibrary, MP's U and moments), standing in for MP's VASP setup.
Data: Materials Project (A. Jain et al., APL Materials 1, 011002 (2013)), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'data'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--profile')
    parser.add_argument('--file', type=Path, default=SHARED / 'mp' / 'Li-Fe-P-O.json.gz')
    parser.add_argument('--chemsys', default='Li-P')
    parser.add_argument('--max-atoms', type=int, default=8)
    parser.add_argument('--max-structures', type=int, default=2)
    parser.add_argument('--benchmark', type=int, help='pk of a finished relaxation benchmark to check instead')
    parser.add_argument('--model', default='chgnet-0.3.0')
    parser.add_argument('--code', default='aiida-mliap-run@localhost')
    parser.add_argument('--pw', default='pw@localhost', help='the pw.x code (`aiida-mliap setup dft`)')
    parser.add_argument('--family', default='pslibrary-1.0.0-PBE')
    parser.add_argument('--protocol', default='fast', help="aiida-quantumespresso's PwBaseWorkChain protocol")
    # The refinement series: the same defaults as `aiida-mliap benchmark dft-check` (DFT_DEFAULTS).
    parser.add_argument('--kpoints-distance', type=float, help='k-point spacing (1/Å) of the first level')
    parser.add_argument('--tolerance', type=float, help='meV/atom: refine until a level changes ΔE_geom by less')
    parser.add_argument('--max-refinements', type=int)
    args = parser.parse_args()

    from aiida import load_profile, orm
    from aiida.engine import run_get_node

    load_profile(args.profile, allow_switch=True)
    from aiida_mliap.analysis.dft_check import dft_check_builder
    from aiida_mliap.analysis.results import load_results
    from aiida_mliap.calculations.dataset import import_reference_files
    from aiida_mliap.data import MliapModelData
    from aiida_mliap.science.dft_check import CODE_ALLOWANCE, dft_check_table
    from aiida_mliap.workchains.benchmark import MliapBenchmarkWorkChain

    start = time.perf_counter()
    if args.benchmark:
        benchmark = orm.load_node(args.benchmark)
    else:
        group_label = f'mp/{args.chemsys}'
        import_reference_files([args.file], group_label, chemsys=args.chemsys)
        builder = MliapBenchmarkWorkChain.get_builder_from_protocol(
            orm.load_code(args.code), {'chgnet': MliapModelData.resolve(args.model)}, group_label, protocol='balanced',
            tasks=['relax'], overrides={'max_atoms': args.max_atoms},
        )  # fmt: skip
        _, benchmark = run_get_node(builder)
        print(f'{benchmark.process_label}<{benchmark.pk}> exit {benchmark.exit_status} in '
              f'{time.perf_counter() - start:.0f} s')  # fmt: skip
    builder = dft_check_builder(
        benchmark, orm.load_code(args.pw), args.family, rules=('symmetry_lowered', 'largest_ehull_error'),
        max_structures=args.max_structures, max_atoms=args.max_atoms, protocol=args.protocol,
    )  # fmt: skip
    if args.kpoints_distance is not None:
        builder.kpoints_distance = orm.Float(args.kpoints_distance)
    if args.tolerance is not None:
        builder.tolerance = orm.Float(args.tolerance / 1000)
    if args.max_refinements is not None:
        builder.max_refinements = orm.Int(args.max_refinements)
    labels = sorted(builder.model_structures)
    print(f'DFT check of {len(labels)} structures: {", ".join(labels)}')
    tick = time.perf_counter()
    _, check = run_get_node(builder)
    wall = time.perf_counter() - tick
    print(f'{check.process_label}<{check.pk}> exit {check.exit_status} in {wall:.0f} s '
          f'({wall / len(labels):.0f} s per structure)')  # fmt: skip

    table = load_results(benchmark)
    mine = table[table['label'].isin(labels) & table['task'].eq('relax')]
    print(dft_check_table(mine).drop(columns='model').to_string(index=False))
    print('meV/atom. E error: CHGNet at its own minimum - DFT at the MP geometry; dE_geom: E_DFT(CHGNet geometry) - '
          'E_DFT(MP geometry), +- its numerical uncertainty (the last change between comparable levels, '
          'docs/howto/dft-check.md; none: unknown, and DFT says cannot tell); DFT says: confirmed '
          '(a lower structure exists) or contradicted (CHGNet\'s landscape is wrong there) only beyond the uncertainty '
          f'plus {1000 * CODE_ALLOWANCE:.0f} meV/atom for QE vs VASP, else cannot tell. MP F_max, MP P: QE\'s largest '
          'force and pressure at the MP geometry (is it a stationary point?).')  # fmt: skip


if __name__ == '__main__':
    main()
