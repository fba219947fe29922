"""Relax a few real Materials Project structures with CHGNet 0.3.0 through the CalcJob, compare with DFT.

Run through ``make demo`` (which sets up the profile, code and model first) or, once those exist::

    python examples/quickstart.py --mp-id mp-19017 --mp-id mp-1960

CHGNet 0.3.0 predicts MP2020-corrected energies, so it is compared with MP's corrected DFT energies.
Data: Materials Project (A. Jain et al., APL Materials 1, 011002 (2013)), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

DEFAULT_FILE = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'mp' / 'Li-Fe-P-O.json.gz'
# LiFePO4, FePO4, Li2O, Fe2O3, LiFeO2, Li3PO4: 3 to 28 atoms, GGA and GGA+U.
DEFAULT_IDS = ['mp-19017', 'mp-20361', 'mp-1960', 'mp-19770', 'mp-18782', 'mp-13725']


def read_entries(path: Path, mp_ids: list[str]) -> dict:
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    with gzip.open(path, 'rt') as handle:
        entries = {d['data']['material_id']: d for d in json.load(handle)}
    missing = [mp_id for mp_id in mp_ids if mp_id not in entries]
    if missing:
        raise SystemExit(f'{path.name} has no entries {missing}')
    return {mp_id: ComputedStructureEntry.from_dict(entries[mp_id]) for mp_id in mp_ids}


def structures_in_group(label: str, entries: dict) -> list:
    """StructureData for each entry, kept in a group so that reruns reuse the same nodes (and the cache)."""
    from aiida import orm

    group, _ = orm.Group.collection.get_or_create(label)
    existing = {node.label: node for node in group.nodes if isinstance(node, orm.StructureData)}
    structures = []
    for mp_id, entry in entries.items():
        if mp_id not in existing:
            node = orm.StructureData(pymatgen=entry.structure)
            node.label = mp_id
            node.description = f'{entry.composition.reduced_formula}, DFT-relaxed structure from the Materials Project'
            group.add_nodes(node.store())
            existing[mp_id] = node
        structures.append(existing[mp_id])
    return structures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--profile', help='AiiDA profile (default: the default profile)')
    parser.add_argument('--file', type=Path, default=DEFAULT_FILE, help='MP entries (JSON.gz)')
    parser.add_argument('--mp-id', action='append', dest='mp_ids', help='MP ids to relax (repeatable)')
    parser.add_argument('--model', default='chgnet-0.3.0')
    parser.add_argument('--code', default='aiida-mliap-run@localhost')
    parser.add_argument('--fmax', type=float, default=0.05)
    parser.add_argument('--max-steps', type=int, default=500)
    args = parser.parse_args()

    from aiida import load_profile, orm
    from aiida.engine import run_get_node
    from tabulate import tabulate

    load_profile(args.profile, allow_switch=True)
    from aiida_mliap.calculations.mliap import get_builder_for, structure_link_label
    from aiida_mliap.data import MliapModelData

    entries = read_entries(args.file, args.mp_ids or DEFAULT_IDS)
    structures = structures_in_group(f'quickstart/{args.file.name.split(".")[0]}', entries)
    model = MliapModelData.resolve(args.model)
    parameters = {'task': 'relax', 'fmax': args.fmax, 'max_steps': args.max_steps, 'optimizer': 'FIRE'}
    print(f'relaxing {len(structures)} structures with {model.name} (sha256 {model.sha256[:12]}...)', flush=True)
    results, node = run_get_node(get_builder_for(orm.load_code(args.code), model, structures, parameters))

    rows, errors = [], []
    for structure in structures:
        entry = entries[structure.label]
        result = results['results'][structure_link_label(structure)]
        energy = result['energy_per_atom']
        difference = None if energy is None else 1000 * (energy - entry.energy_per_atom)
        if difference is not None:
            errors.append(difference)
        rows.append(
            [
                structure.label,
                entry.composition.reduced_formula,
                len(entry.structure),
                result['status'],
                result['n_steps'],
                entry.energy_per_atom,
                energy,
                difference,
            ]
        )
    headers = [
        'mp_id',
        'formula',
        'atoms',
        'status',
        'steps',
        'E_DFT eV/atom',
        f'E_{model.name} eV/atom',
        'diff meV/atom',
    ]
    print(tabulate(rows, headers=headers, floatfmt=('', '', '', '', '', '.4f', '.4f', '+.1f')))
    if errors:
        mean = sum(errors) / len(errors)
        mae = sum(abs(e) for e in errors) / len(errors)
        print(f'mean signed error {mean:+.1f} meV/atom, MAE {mae:.1f} meV/atom over {len(errors)} structures')
    print(f'MliapCalculation<{node.pk}> exit status {node.exit_status}; all of it is in the provenance graph:')
    print(f'  verdi process show {node.pk}   |   aiida-mliap show {node.pk}')
    print('E_DFT: Materials Project (Jain et al., APL Mater. 1, 011002 (2013)), MP2020-corrected, CC BY 4.0')
    if not node.is_finished_ok:
        raise SystemExit(f'the calculation finished with exit status {node.exit_status}: {node.exit_message}')


if __name__ == '__main__':
    main()
