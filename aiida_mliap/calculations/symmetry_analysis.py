"""``analyse_symmetry``: space group, DOF and symmetry change on relaxation, for a batch of structures in one call.

Its inputs are what it reads: the structures themselves (``initial__<label>``, and ``final__<label>`` for the
relaxed ones) with the batch's table for the model's energies, or a dataset file for its DFT structures alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from aiida import orm
from aiida.engine import calcfunction

from ..contract.parameters import task_name
from ..data.dataset import MliapDatasetData
from ..data.symmetry import MliapSymmetryData
from ..data.table import MliapBatchTable
from ..provenance.links import attach_outputs
from ..science.symmetry import SYMPRECS, SymmetryError, analyse_atoms, symmetry_change, symprec_key

INITIAL, FINAL = 'initial', 'final'


def symmetry_inputs(
    initial: Mapping[str, orm.StructureData] | None = None,
    final: Mapping[str, orm.StructureData] | None = None,
    table: MliapBatchTable | None = None,
    free: MliapBatchTable | None = None,
    dataset: MliapDatasetData | None = None,
    symprecs: tuple[float, ...] = SYMPRECS,
) -> dict[str, Any]:
    """The calcfunction's arguments.

    ``initial``/``final``: a batch's input and relaxed structures by label, with ``table`` (that batch's table: the
    model, task and energies); ``free``: the table of the free relaxation of the same batch, when ``table`` is of a
    fixed-symmetry one (gives the energy the constraint leaves on the table); or ``dataset`` for its DFT structures.
    """
    inputs: dict[str, Any] = {'parameters': orm.Dict({'symprecs': list(symprecs)})}
    for key, value in (('dataset', dataset), ('table', table), ('free', free)):
        if value is not None:
            inputs[key] = value
    inputs.update({f'{INITIAL}__{label}': node for label, node in (initial or {}).items()})
    inputs.update({f'{FINAL}__{label}': node for label, node in (final or {}).items()})
    return inputs


@calcfunction
def analyse_symmetry(parameters, dataset=None, table=None, free=None, **structures):
    """Per structure a ``symmetry.<label>`` node (stored in bulk) and a ``summary`` with histograms."""
    symprecs = tuple(parameters['symprecs'])
    initial = {k[len(INITIAL) + 2 :]: node for k, node in structures.items() if k.startswith(f'{INITIAL}__')}
    final = {k[len(FINAL) + 2 :]: node for k, node in structures.items() if k.startswith(f'{FINAL}__')}
    if (dataset is None) == (not initial):
        raise ValueError('give either a dataset or the initial structures of a batch, not both')
    pairs = dataset_pairs(dataset) if dataset is not None else batch_pairs(initial, final, table)
    free_energies = _energies(free) if free is not None else {}
    records = {}
    for label, pair in pairs.items():
        record = structure_record(pair, symprecs)
        if free is not None:
            free_energy, energy = free_energies.get(label), pair.get('energy_per_atom')
            record['fixsym_energy_gap_per_atom'] = (
                energy - free_energy if energy is not None and free_energy is not None else None
            )
        records[label] = record
    attach_outputs({'symmetry': {label: MliapSymmetryData(record) for label, record in records.items()}})
    return {'summary': orm.Dict(summarize(records))}


def _energies(table: MliapBatchTable) -> dict[str, float]:
    return {
        label: row['result']['energy_per_atom']
        for label, row in table.rows.items()
        if row['result'] and row['result'].get('energy_per_atom') is not None
    }


def structure_record(pair: dict[str, Any], symprecs: tuple[float, ...]) -> dict[str, Any]:
    """Symmetry of the initial and (if relaxed) final structure at every tolerance, headline keys at the first."""
    record = {key: pair.get(key) for key in ('label', 'mp_id', 'model_sha256', 'task', 'fix_symmetry')}
    record.update(status='ok', reason='', initial=None, final=None)
    try:
        record['initial'] = analyse_atoms(pair['initial'], symprecs)
        if pair.get('final') is not None:
            record['final'] = analyse_atoms(pair['final'], symprecs)
    except SymmetryError as exception:
        record.update(status='symmetry_error', reason=str(exception))
        return record
    keys = [symprec_key(symprec) for symprec in symprecs]
    initial, final = record['initial'][keys[0]], (record['final'] or {}).get(keys[0])
    record.update(
        spacegroup_initial=initial['spacegroup_number'],
        spacegroup_symbol_initial=initial['spacegroup_symbol'],
        crystal_system=initial['crystal_system'],
        lattice_system=initial['lattice_system'],
        dof=initial['dof'],
        spacegroup_final=final['spacegroup_number'] if final else None,
        spacegroup_symbol_final=final['spacegroup_symbol'] if final else None,
        dof_final=final['dof'] if final else None,
        symmetry_change=symmetry_change(initial, final) if final else None,
        symmetry_change_by_symprec={
            key: symmetry_change(record['initial'][key], record['final'][key]) if final else None for key in keys
        },
    )
    if pair.get('final') is not None:
        record.update(geometry_change(pair['initial'], pair['final']))
    return record


def geometry_change(initial, final) -> dict[str, Any]:
    """How far a relaxation moved the structure, as Matbench Discovery reports it: pymatgen's ``StructureMatcher``
    (default tolerances) RMS and largest site distance, normalised by (volume per site)^(1/3), None when the two no
    longer match; and the relative volume change."""
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.io.ase import AseAtomsAdaptor

    before, after = AseAtomsAdaptor.get_structure(initial), AseAtomsAdaptor.get_structure(final)
    distances = StructureMatcher().get_rms_dist(before, after)
    return {
        'matches_dft': distances is not None,
        'rmsd_to_dft': None if distances is None else float(distances[0]),
        'max_distance_to_dft': None if distances is None else float(distances[1]),
        'volume_change': float(after.volume / before.volume - 1.0),
    }


def summarize(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ok = [record for record in records.values() if record['status'] == 'ok']
    return {
        'n_structures': len(records),
        'counts': dict(Counter(record['status'] for record in records.values())),
        'spacegroups': {str(k): v for k, v in sorted(Counter(r['spacegroup_initial'] for r in ok).items())},
        'crystal_systems': dict(Counter(record['crystal_system'] for record in ok)),
        'dof': {str(k): v for k, v in sorted(Counter(record['dof'] for record in ok).items())},
        'symmetry_changes': dict(Counter(record['symmetry_change'] for record in ok if record['symmetry_change'])),
        'reasons': {label: record['reason'] for label, record in records.items() if record['reason']},
    }


def dataset_pairs(dataset: MliapDatasetData) -> dict[str, dict[str, Any]]:
    """The DFT structures of a dataset, read from its file (the input itself)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    from .dataset import read_records

    return {
        record.label: {
            'label': record.label,
            'mp_id': record.attributes['mp_id'],
            'initial': AseAtomsAdaptor.get_atoms(record.structure),
        }
        for record in read_records(dataset)
    }


def batch_pairs(
    initial: Mapping[str, orm.StructureData], final: Mapping[str, orm.StructureData], table: MliapBatchTable | None
) -> dict[str, dict[str, Any]]:
    """Per structure label: its input and relaxed structure, with the model, task and energy of its result."""
    content = table.get_dict() if table is not None else {}
    rows = content.get('rows', {})
    fix_symmetry = task_name(content.get('parameters', {})) == 'relax_fixsym'
    pairs = {}
    for label, structure in initial.items():
        result = (rows.get(label) or {}).get('result') or {}
        pairs[label] = {
            'label': label,
            'mp_id': structure.label,
            'initial': structure.get_ase(),
            'final': final[label].get_ase() if label in final else None,
            'model_sha256': result.get('model_sha256'),
            'task': content.get('task'),
            'fix_symmetry': fix_symmetry,
            'energy_per_atom': result.get('energy_per_atom'),
        }
    return pairs
