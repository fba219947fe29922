"""``analyse_symmetry``: space group, DOF and symmetry change on relaxation for a batch of structures, in one call.

Inputs are aggregate nodes that link to the structures (the ``summary`` outputs of MliapCalculations, or an
imported dataset), so one call covers thousands of structures and each symmetry node traces back to them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiida import orm
from aiida.engine import calcfunction

from ..data.dataset import MliapDatasetData
from ..data.symmetry import MliapSymmetryData
from ..engine.parameters import with_defaults
from .outputs import attach_outputs, inputs_of, outputs_of
from .symmetry import SYMPRECS, SymmetryError, analyse_atoms, symmetry_change, symprec_key
from .thermo import results_of

SUMMARIES, FREE = 'summaries', 'free'


def symmetry_inputs(
    summaries: list[orm.Dict] = (),
    free_relaxations: list[orm.Dict] = (),
    dataset: MliapDatasetData | None = None,
    symprecs: tuple[float, ...] = SYMPRECS,
) -> dict[str, Any]:
    """The calcfunction's arguments.

    ``summaries``: of the calculations whose structures to analyse (one task, one model); ``free_relaxations``:
    of free relaxations of the same structures by the same model, when ``summaries`` are of a ``fix_symmetry``
    relaxation (gives the energy the constraint leaves on the table); or ``dataset`` for its DFT structures alone.
    """
    inputs: dict[str, Any] = {'parameters': orm.Dict({'symprecs': list(symprecs)})}
    if dataset is not None:
        inputs['dataset'] = dataset
    inputs.update({f'{SUMMARIES}__{index}': summary for index, summary in enumerate(summaries)})
    inputs.update({f'{FREE}__{index}': summary for index, summary in enumerate(free_relaxations)})
    return inputs


@calcfunction
def analyse_symmetry(parameters, dataset=None, **summaries):
    """Per structure a ``symmetry.<label>`` node (stored in bulk) and a ``summary`` with histograms."""
    symprecs = tuple(parameters['symprecs'])
    analysed = [summary for key, summary in summaries.items() if key.startswith(f'{SUMMARIES}__')]
    free = [summary for key, summary in summaries.items() if key.startswith(f'{FREE}__')]
    if (dataset is None) == (not analysed):
        raise ValueError('give either a dataset or the summaries of calculations, not both')
    pairs = dataset_pairs(dataset) if dataset is not None else calculation_pairs(analysed)
    free_energies = {label: r['energy_per_atom'] for label, r in results_of(free).items()} if free else {}
    records = {}
    for label, pair in pairs.items():
        record = structure_record(pair, symprecs)
        if free:
            free_energy, energy = free_energies.get(label), pair.get('energy_per_atom')
            record['fixsym_energy_gap_per_atom'] = (
                energy - free_energy if energy is not None and free_energy is not None else None
            )
        records[label] = record
    attach_outputs({'symmetry': {label: MliapSymmetryData(record) for label, record in records.items()}})
    return {'summary': orm.Dict(summarize(records))}


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
    return record


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
    from .dataset import imported_nodes

    structures = imported_nodes([dataset], 'structures')[dataset.sha256]
    return {
        label: {'label': label, 'mp_id': node.label, 'initial': node.get_ase()} for label, node in structures.items()
    }


def calculations_of(summaries: list[orm.Dict]) -> list[int]:
    query = orm.QueryBuilder().append(orm.Dict, filters={'id': {'in': [s.pk for s in summaries]}}, tag='summary')
    query.append(orm.CalcJobNode, with_outgoing='summary', project='id')
    return query.all(flat=True)


def calculation_pairs(summaries: list[orm.Dict]) -> dict[str, dict[str, Any]]:
    """Per structure label: its input structure and its relaxed structure (if any), with the result's model, task
    and energy. Pass the summaries of one task of one model."""
    calculations = calculations_of(summaries)
    inputs = inputs_of(calculations, 'structures')
    relaxed = outputs_of(calculations, 'relaxed_structures')
    results = outputs_of(calculations, 'results', project='attributes')
    parameters = inputs_of_single(calculations, 'parameters')
    pairs: dict[str, dict[str, Any]] = {}
    for pk in sorted(calculations):  # restarts: the first calculation holds the initial structure, the latest the final
        fix_symmetry = with_defaults(parameters.get(pk, {}))['fix_symmetry']
        for label, structure in inputs[pk].items():
            result = results[pk].get(label, {})
            final = relaxed[pk].get(label)
            pair = pairs.setdefault(label, {'label': label, 'mp_id': structure.label, 'initial': structure.get_ase()})
            pair.update(
                model_sha256=result.get('model_sha256'),
                task=result.get('task'),
                fix_symmetry=fix_symmetry,
                energy_per_atom=result.get('energy_per_atom'),
                final=final.get_ase() if final is not None else None,
            )
    return pairs


def inputs_of_single(calculations: list[int], link_label: str) -> dict[int, dict[str, Any]]:
    """The dict of one ``Dict`` input (e.g. ``parameters``) of each calculation, in one query."""
    query = orm.QueryBuilder().append(orm.CalcJobNode, filters={'id': {'in': calculations}}, project='id', tag='c')
    query.append(orm.Dict, with_outgoing='c', edge_filters={'label': link_label}, project='attributes')
    return dict(query.all())
