"""The CalcJob gives the same numbers as plain ASE: CHGNet relaxations, and single points of tiny MACE / matgl.

    python benchmarks/ase_equivalence.py [--profile NAME] [--count 10]

CHGNet 0.3.0 relaxes ``count`` Li-Fe-P-O structures through ``aiida.engine.run`` of MliapCalculation and through a
plain ASE loop (CHGNetCalculator, FrechetCellFilter, FIRE, same fmax and step limit) outside AiiDA. Tiny real
MACE and matgl models (built here, seeded) do single points both ways. Prints |Δ| per structure (eV/atom).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from overhead import SHARED, pick_structures


def tiny_models(directory: Path):
    """Seeded tiny MACE and M3GNet models, registered as nodes."""
    from aiida_mliap.data import MliapModelData
    from aiida_mliap.testing import build_tiny_m3gnet, build_tiny_mace

    mace, _ = MliapModelData.get_or_create(
        build_tiny_mace(directory / 'tiny.model', [3, 8, 15, 26]), framework='mace', name='tiny-mace',
        energy_scale='raw_dft',
    )  # fmt: skip
    matgl, _ = MliapModelData.get_or_create(
        build_tiny_m3gnet(directory / 'm3gnet', ['Li', 'Fe', 'P', 'O']), framework='matgl', name='tiny-m3gnet',
        energy_scale='raw_dft',
    )  # fmt: skip
    return mace, matgl


def report(title: str, rows: list[tuple[str, float, float]]) -> None:
    worst = max(abs(a - b) for _, a, b in rows)
    print(f'\n{title}: max |Δ| = {worst:.2e} eV/atom over {len(rows)} structures')
    for label, calcjob, plain in rows:
        print(f'  {label:<12} {calcjob:12.6f} {plain:12.6f}  Δ {calcjob - plain:+.2e}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--profile')
    parser.add_argument('--count', type=int, default=10)
    parser.add_argument('--max-atoms', type=int, default=24)
    parser.add_argument('--code', default='aiida-mliap-run@localhost')
    parser.add_argument('--fmax', type=float, default=0.05)
    parser.add_argument('--max-steps', type=int, default=500)
    args = parser.parse_args()

    from aiida import load_profile, orm
    from aiida.engine import run_get_node
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from chgnet.model import CHGNet, CHGNetCalculator

    load_profile(args.profile, allow_switch=True)
    from aiida_mliap.calculations.mliap import get_builder_for, structure_link_label
    from aiida_mliap.data import MliapModelData

    code = orm.load_code(args.code)
    structures = pick_structures(SHARED / 'Li-Fe-P-O.json.gz', args.count, args.max_atoms)
    relax = {'task': 'relax', 'fmax': args.fmax, 'max_steps': args.max_steps, 'optimizer': 'FIRE', 'device': 'cpu'}
    results, node = run_get_node(get_builder_for(code, MliapModelData.resolve('chgnet-0.3.0'), structures, relax))
    calculator = CHGNetCalculator(model=CHGNet.load(model_name='0.3.0', verbose=False), use_device='cpu')
    rows, flags = [], []
    for structure in structures:
        atoms = structure.get_ase()
        atoms.calc = calculator
        converged = FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=args.fmax, steps=args.max_steps)
        result = results['results'][structure_link_label(structure)]
        rows.append((structure.label, result['energy_per_atom'], atoms.get_potential_energy() / len(atoms)))
        flags.append(result['converged'] == converged)
    report(f'CHGNet 0.3.0 relaxation, MliapCalculation<{node.pk}> vs plain ASE', rows)
    print(f'  converged flags equal: {sum(flags)}/{len(flags)}')

    import matgl
    from mace.calculators import MACECalculator
    from matgl.ext.ase import PESCalculator

    with tempfile.TemporaryDirectory() as directory:
        mace_node, matgl_node = tiny_models(Path(directory))
        plain = {
            'tiny MACE': MACECalculator(model_paths=f'{directory}/tiny.model', device='cpu', default_dtype='float64'),
            'tiny M3GNet': PESCalculator(matgl.load_model(f'{directory}/m3gnet'), stress_unit='eV/A3'),
        }
        for (title, calculator), model in zip(plain.items(), (mace_node, matgl_node), strict=True):
            results, node = run_get_node(get_builder_for(code, model, structures, {'task': 'static'}))
            rows = []
            for structure in structures:
                atoms = structure.get_ase()
                atoms.calc = calculator
                rows.append(
                    (
                        structure.label,
                        results['results'][structure_link_label(structure)]['energy_per_atom'],
                        atoms.get_potential_energy() / len(atoms),
                    )
                )
            report(f'{title} single points, MliapCalculation<{node.pk}> vs plain ASE', rows)


if __name__ == '__main__':
    main()
