"""CHGNet single points on every entry of an MP chemical system, then formation energies and Ehull on both hulls.

    python examples/thermo_single_points.py --profile aiida-mliap-demo [--file ../shared/data/mp/Li-Fe-P-O.json.gz]

Prints MAE and mean signed error (model - DFT, eV/atom) of the total energy, the formation energy and Ehull on the
model hull and on the DFT-reference hull. Everything it computes is in the provenance graph.
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
    parser.add_argument('--model', default='chgnet-0.3.0')
    parser.add_argument('--code', default='aiida-mliap-run@localhost')
    parser.add_argument('--batch', type=int, default=100, help='structures per MliapCalculation')
    args = parser.parse_args()

    import pandas as pd
    from aiida import load_profile, orm
    from aiida.engine import run_get_node

    load_profile(args.profile, allow_switch=True)
    from aiida_mliap.calculations.dataset import import_reference_file, imported_nodes
    from aiida_mliap.calculations.mliap import get_builder_for
    from aiida_mliap.calculations.tables import tabulate
    from aiida_mliap.calculations.thermo import compute_thermodynamics, thermo_records, thermodynamics_inputs
    from aiida_mliap.data import MliapModelData

    start = time.perf_counter()
    group, dataset, _ = import_reference_file(args.file, f'mp/{args.file.name.split(".")[0]}')
    structures = imported_nodes([dataset], 'structures')[dataset.sha256]
    print(f'{len(structures)} entries of {dataset.source} in group {group.label} ({time.perf_counter() - start:.1f} s)')
    model, code = MliapModelData.resolve(args.model), orm.load_code(args.code)
    labels = sorted(structures)
    references = imported_nodes([dataset], 'references')[dataset.sha256]
    tables = []
    for first in range(0, len(labels), args.batch):
        chunk = [structures[label] for label in labels[first : first + args.batch]]
        tick = time.perf_counter()
        outputs, node = run_get_node(get_builder_for(code, model, chunk, {'task': 'static'}))
        # One table per batch: its reference and result nodes as the one input the hull step reads.
        chunk_references = {label: references[label] for label in labels[first : first + args.batch]}
        tables += tabulate(node.inputs.parameters, chunk_references, dict(outputs.get('results', {})))
        print(f'  MliapCalculation<{node.pk}>: {len(chunk)} structures, exit {node.exit_status}, '
              f'{outputs["summary"]["counts"]}, {time.perf_counter() - tick:.1f} s', flush=True)  # fmt: skip
    tick = time.perf_counter()
    thermo, node = compute_thermodynamics.run_get_node(**thermodynamics_inputs(model, tables, [dataset]))
    print(f'compute_thermodynamics: {time.perf_counter() - tick:.1f} s, {thermo["summary"]["counts"]}')

    frame = pd.DataFrame(thermo_records(node).values())
    pairs = {
        'total energy': ('energy_per_atom_model', 'energy_per_atom_dft'),
        'formation energy': ('e_form_model', 'e_form_dft'),
        'Ehull, model hull': ('e_above_hull_model', 'e_above_hull_dft'),
        'Ehull, DFT-reference hull': ('e_above_hull_model_dftref', 'e_above_hull_dft'),
    }
    rows = []
    for name, (model_column, dft_column) in pairs.items():
        error = (frame[model_column] - frame[dft_column]).dropna()
        rows.append({'quantity': name, 'n': len(error), 'MAE meV/atom': 1000 * error.abs().mean(),
                     'mean signed meV/atom': 1000 * error.mean(), 'underpredicted': (error < 0).mean()})  # fmt: skip
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f'{x:.1f}' if abs(x) >= 1 else f'{x:.2f}'))
    print(
        f'{model.name} ({model.energy_scale}), sha256 {model.sha256[:12]}...; total {time.perf_counter() - start:.0f} s'
    )


if __name__ == '__main__':
    main()
