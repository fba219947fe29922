"""``compute_thermodynamics``: formation energy and Ehull (both hulls) of one model and task over a dataset group.

Its inputs are the batch tables of that model and task (``tabulate_batch``: made from the reference and result
nodes themselves), the datasets they come from and, optionally, fixed elemental references: it reads nothing else,
so every value traces back through input and create links to the DFT entry and to the model's result.
Over more structures than one call should take, ``run_thermodynamics`` splits the tables into chunks placed
against the vertices of the whole set's hulls (``thermo_candidates`` -> ``hull_of_chunks``), whose node is then an
input too, and ``merge_thermodynamics`` makes the one summary.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiida import orm
from aiida.engine import calcfunction
from pymatgen.entries.computed_entries import ComputedEntry

from ..contract.schema import ROW_RESULT_KEYS
from ..contract.status import WITH_RESULT, Status
from ..data.dataset import MliapDatasetData
from ..data.model import MliapModelData
from ..data.reference import to_entry
from ..data.table import MliapBatchTable
from ..data.thermo import MliapThermoData
from ..provenance.links import attach_outputs, outputs_of
from ..science.hull import (
    correct_model_entries,
    elemental_ground_states,
    hull_candidates,
    hull_quantities,
    hull_vertices,
)
from .tables import union_of_tables

TABLES, DATASETS = 'tables', 'datasets'


def thermodynamics_inputs(
    model: MliapModelData,
    tables: list[MliapBatchTable],
    datasets: list[MliapDatasetData] = (),
    elemental_references: MliapDatasetData | None = None,
) -> dict[str, Any]:
    """The calcfunction's arguments: the tables of one model and task, and the datasets they were drawn from."""
    inputs: dict[str, Any] = {'model': model}
    if elemental_references is not None:
        inputs['elemental_references'] = elemental_references
    inputs.update({f'{TABLES}__{index}': table for index, table in enumerate(tables)})
    inputs.update({f'{DATASETS}__{index}': dataset for index, dataset in enumerate(datasets)})
    return inputs


def run_thermodynamics(
    model: MliapModelData,
    tables: list[MliapBatchTable],
    datasets: list[MliapDatasetData] = (),
    elemental_references: MliapDatasetData | None = None,
    chunk: int | None = None,
    link: str = 'thermo',
) -> orm.Dict:
    """The thermodynamics of one model and task, in one ``compute_thermodynamics`` call (label ``link``) or, over
    more than ``chunk`` tables, in chunks of at most ``chunk`` tables each: ``thermo_candidates`` per chunk
    (``<link>_candidates_<k>``), ``hull_of_chunks`` (``<link>_hull``), ``compute_thermodynamics`` per chunk against
    it (``<link>_<k>``) and ``merge_thermodynamics`` (``<link>``). Every call takes bounded inputs; the values equal
    one call's. Returns the summary."""
    if chunk is None or len(tables) <= chunk:
        inputs = thermodynamics_inputs(model, tables, datasets, elemental_references)
        return compute_thermodynamics(**inputs, metadata={'call_link_label': link})['summary']
    chunks = [tables[start : start + chunk] for start in range(0, len(tables), chunk)]
    candidates = {
        f'candidates__{index}': thermo_candidates(
            model=model, **{f'{TABLES}__{i}': table for i, table in enumerate(part)},
            metadata={'call_link_label': f'{link}_candidates_{index}'},
        )
        for index, part in enumerate(chunks)
    }  # fmt: skip
    hull = hull_of_chunks(**candidates, metadata={'call_link_label': f'{link}_hull'})
    summaries = {}
    for index, part in enumerate(chunks):
        inputs = thermodynamics_inputs(model, part, datasets, elemental_references)
        outputs = compute_thermodynamics(**inputs, hull=hull, metadata={'call_link_label': f'{link}_{index}'})
        summaries[f'summaries__{index}'] = outputs['summary']
    return merge_thermodynamics(**summaries, metadata={'call_link_label': link})['summary']


def thermo_records(node: orm.CalcFunctionNode) -> dict[str, dict[str, Any]]:
    """The ``thermo.<label>`` values a ``compute_thermodynamics`` call produced, by label (one query)."""
    return outputs_of([node.pk], 'thermo', project='attributes')[node.pk]


@calcfunction
def compute_thermodynamics(model, elemental_references=None, hull=None, **nodes):
    """Per reference entry of the tables a ``thermo.<label>`` node (stored in bulk), plus a ``summary`` with counts,
    reasons, the members of both hulls and the error and classification metrics.

    ``hull`` (``hull_of_chunks``): the tables are one chunk of a larger set, placed against that set's hulls."""
    tables, datasets = _ordered(nodes, TABLES), _ordered(nodes, DATASETS)
    if not tables:
        raise ValueError('give the batch tables of one model and task (tables__0, ...)')
    task, references, results = union_of_tables(tables)
    fixed = read_elemental_references(elemental_references) if elemental_references is not None else None
    records, summary = thermodynamics(model, references, results, fixed, hull.get_dict() if hull else None)
    summary.update(
        task=task,
        datasets=[dataset.source for dataset in datasets],
        elemental_references=elemental_references.source if elemental_references is not None else 'dataset',
    )
    attach_outputs({'thermo': {label: MliapThermoData({**record, 'task': task}) for label, record in records.items()}})
    return {'summary': orm.Dict(summary)}


@calcfunction
def thermo_candidates(model, **tables):
    """One chunk's share of a hull too large for one call: the entries of its ``tables__<i>`` that can be vertices of
    the whole set's DFT and model hulls (``hull_candidates``), with the stand-in corner energy each decided with."""
    task, references, results = union_of_tables(_ordered(tables, TABLES))
    dft_entries, corrected, _, _ = hull_entries(model, references, results)
    candidates = {'task': task, 'model_sha256': model.sha256}
    for name, entries in (('dft', dft_entries), ('model', corrected)):
        labels, ceiling = hull_candidates(entries)
        records = {label: hull_record(entries[label], references[label]['mp_id']) for label in labels}
        candidates[name] = {'ceiling': ceiling, 'entries': records}
    return orm.Dict(candidates)


@calcfunction
def hull_of_chunks(**candidates):
    """The DFT and model hulls of a whole set from its chunks' ``thermo_candidates``: the elemental ground states (the
    lowest DFT elemental entry of each element) and the vertices of each hull, which every chunk's
    ``compute_thermodynamics`` is then placed against."""
    parts = [candidates[key].get_dict() for key in sorted(candidates, key=_index)]
    if len({(part['task'], part['model_sha256']) for part in parts}) > 1:
        raise ValueError('hull candidates of several models or tasks; one hull is one model and one task')
    hull: dict[str, Any] = {}
    merged = {name: {k: v for part in parts for k, v in part[name]['entries'].items()} for name in ('dft', 'model')}
    ground_states = elemental_ground_states(read_hull_entries(merged['dft']))
    for name in ('dft', 'model'):
        ceiling = min(part[name]['ceiling'] for part in parts)
        vertices = hull_vertices(read_hull_entries(merged[name]), ground_states, ceiling)
        hull[name] = {label: merged[name][label] for label in sorted(vertices)}
    hull['ground_states'] = ground_states
    return orm.Dict(hull)


@calcfunction
def merge_thermodynamics(**summaries):
    """One model and task's ``summary`` from its chunks' (``summaries__<i>``): counts and reasons added up, metrics
    recombined exactly from theirs (``merge_group_metrics``), the hulls and ground states the chunks share."""
    from ..science.metrics import merge_group_metrics

    parts = [summaries[key].get_dict() for key in sorted(summaries, key=_index)]
    first = parts[0]
    added = lambda key: dict(sum((Counter(part[key]) for part in parts), Counter()))  # noqa: E731
    summary = {key: first[key] for key in CHUNK_INVARIANT}
    summary.update(
        n_entries=sum(part['n_entries'] for part in parts),
        counts=added('counts'),
        result_counts=added('result_counts'),
        reasons={label: reason for part in parts for label, reason in part['reasons'].items()},
        n_chunks=len(parts),
        **merge_group_metrics(parts),
    )
    return {'summary': orm.Dict(summary)}


# What every chunk of one model and task states alike (the hull is the whole set's).
CHUNK_INVARIANT = ('model_name', 'model_sha256', 'energy_scale', 'elemental_ground_states', 'dft_hull', 'model_hull',
                   'task', 'datasets', 'elemental_references')  # fmt: skip


def hull_record(entry: ComputedEntry, mp_id: str) -> dict[str, Any]:
    """What a hull needs of an entry: composition and total energy on the corrected scale."""
    return {'mp_id': mp_id, 'composition': entry.composition.as_dict(), 'energy': float(entry.energy)}


def read_hull_entries(records: dict[str, dict[str, Any]]) -> dict[str, ComputedEntry]:
    return {
        label: ComputedEntry(record['composition'], record['energy'], entry_id=label)
        for label, record in records.items()
    }


def _ordered(nodes: dict[str, Any], namespace: str) -> list[Any]:
    return [nodes[key] for key in sorted(nodes, key=_index) if key.startswith(f'{namespace}__')]


def _index(key: str) -> tuple[str, int]:
    namespace, _, index = key.partition('__')
    return namespace, int(index) if index.isdigit() else -1


def thermodynamics(
    model: MliapModelData,
    references: dict[str, dict[str, Any]],
    results: dict[str, dict[str, Any]],
    fixed_references: dict[str, float] | None,
    hull: dict[str, Any] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The values behind ``compute_thermodynamics`` from reference and result attributes; all entries are one hull,
    or, given ``hull`` (``hull_of_chunks``), one chunk placed against the hull of the whole set.

    Both hulls stand on the same elemental phases: the DFT ground state of each element, evaluated by DFT for the
    DFT hull and by the model for the model hull. Where the model has no energy for a ground state, the entries
    with that element get ``no_model_elemental_reference``, never a silently different reference."""
    from ..science.metrics import record_metrics

    attributes = references
    mp_ids = {label: a['mp_id'] for label, a in attributes.items()}
    dft_entries, corrected, not_evaluated, refused = hull_entries(model, references, results)
    if hull is None:
        ground_states, dft_hull, model_hull = elemental_ground_states(dft_entries), None, None
    else:
        ground_states = hull['ground_states']
        dft_hull, model_hull = (read_hull_entries(hull[name]) for name in ('dft', 'model'))
        mp_ids.update({label: record['mp_id'] for name in ('dft', 'model') for label, record in hull[name].items()})
    dft, dft_undefined, dft_stable = hull_quantities(dft_entries, fixed_references, ground_states, dft_hull)
    modelled, model_undefined, model_stable = hull_quantities(corrected, fixed_references, ground_states, model_hull)

    records = {}
    for label, reference in attributes.items():
        record = _record(label, reference, model, results.get(label), dft.get(label), modelled.get(label), mp_ids)
        if label in corrected:
            entry = corrected[label]
            record['energy_per_atom_model'] = float(entry.energy_per_atom)
            record['model_correction_per_atom'] = float(entry.correction / entry.composition.num_atoms)
            if record['e_above_hull_dft'] is not None:
                record['e_above_hull_model_dftref'] = record['e_above_hull_dft'] + (
                    record['energy_per_atom_model'] - record['energy_per_atom_dft']
                )
        status, reason = _status(label, dft_undefined, not_evaluated, refused, model_undefined)
        record.update(status=status, reason=reason)
        records[label] = record

    summary = {
        'n_entries': len(records),
        'counts': dict(Counter(record['status'] for record in records.values())),
        'result_counts': dict(Counter(r['status'] if r else Status.NOT_RUN.value for r in map(results.get, records))),
        'model_name': model.name,
        'model_sha256': model.sha256,
        'energy_scale': model.energy_scale,
        'elemental_ground_states': {element: mp_ids[label] for element, label in sorted(ground_states.items())},
        'dft_hull': sorted(mp_ids[label] for label in dft_stable),
        'model_hull': sorted(mp_ids[label] for label in model_stable),
        'reasons': {label: record['reason'] for label, record in records.items() if record['reason']},
        # Scored over the structures the model was given, as science.metrics.summary_metrics scores load_results.
        **record_metrics([record for label, record in records.items() if label in results]),
    }
    return records, summary


def hull_entries(
    model: MliapModelData, references: dict[str, dict[str, Any]], results: dict[str, dict[str, Any]]
) -> tuple[dict[str, ComputedEntry], dict[str, ComputedEntry], dict[str, str], dict[str, str]]:
    """(DFT entries, model entries on the MP2020-corrected scale, why each entry has no model energy, why MP2020
    refused a model entry), by label."""
    dft_entries = {label: to_entry(a) for label, a in references.items()}
    raw, not_evaluated = {}, {}
    for label in references:
        result = results.get(label)
        if result is None:
            not_evaluated[label] = 'the model has no result for this entry'
        elif Status(result['status']) not in WITH_RESULT or result['energy'] is None:
            not_evaluated[label] = f'model result {result["status"]}: {result.get("message", "")}'.strip()
        else:
            raw[label] = to_entry(references[label], energy=result['energy'], corrected=False)
    corrected, refused = correct_model_entries(raw, model.energy_scale)
    return dft_entries, corrected, not_evaluated, refused


def _record(label, reference, model, result, dft, modelled, mp_ids) -> dict[str, Any]:
    named = lambda decomposition: {mp_ids[k]: v for k, v in decomposition.items()}  # noqa: E731
    return {
        'label': label,
        'mp_id': reference['mp_id'],
        'formula': reference['formula'],
        'chemsys': reference['chemsys'],
        'n_atoms': reference['n_atoms'],
        'model_name': model.name,
        'model_sha256': model.sha256,
        'energy_scale': model.energy_scale,
        'task': result['task'] if result is not None else None,
        'energy_per_atom_dft': reference['energy_per_atom'],
        'energy_per_atom_model_raw': result['energy_per_atom'] if result is not None else None,
        'energy_per_atom_model': None,
        'model_correction_per_atom': None,
        'e_form_dft': dft['e_form'] if dft else None,
        'e_form_model': modelled['e_form'] if modelled else None,
        'e_above_hull_dft': dft['e_above_hull'] if dft else None,
        'e_above_hull_model': modelled['e_above_hull'] if modelled else None,
        'e_above_hull_model_dftref': None,
        'decomposition_dft': named(dft['decomposition']) if dft else None,
        'decomposition_model': named(modelled['decomposition']) if modelled else None,
        **_result_columns(result),
    }


def _result_columns(result: dict[str, Any] | None) -> dict[str, Any]:
    """The result's ``ROW_RESULT_KEYS`` as the thermo record carries them; a structure without one is ``not_run``."""
    if result is None:
        return {'result_status': Status.NOT_RUN.value, **dict.fromkeys(ROW_RESULT_KEYS[1:])}
    return {'result_status': result['status'], **{key: result.get(key) for key in ROW_RESULT_KEYS[1:]}}


def _status(label, dft_undefined, not_evaluated, refused, model_undefined) -> tuple[str, str]:
    """The first reason a quantity is missing, in pipeline order; ``ok`` when every value is defined."""
    for status, reasons in (
        ('no_dft_elemental_reference', dft_undefined),
        ('not_evaluated', not_evaluated),
        ('correction_refused', refused),
        ('no_model_elemental_reference', model_undefined),
    ):
        if label in reasons:
            return status, reasons[label]
    return 'ok', ''


def read_elemental_references(dataset: MliapDatasetData) -> dict[str, float]:
    """Energy per atom by element from a file of elemental ComputedEntry dicts keyed by symbol (MP's format)."""
    import json

    from pymatgen.entries.computed_entries import ComputedEntry

    from ..science.entries import decompress

    with dataset.open(mode='rb') as handle:
        content = json.loads(decompress(handle.read()))
    return {symbol: float(ComputedEntry.from_dict(entry).energy_per_atom) for symbol, entry in content.items()}


def elemental_reference_conflicts(references: MliapDatasetData, entries: dict[str, dict[str, Any]]) -> list[str]:
    """Why fixed elemental references cannot serve datasets whose reference attributes by label are ``entries``:
    the same evidence as between two dataset files (``entry_disagreements``) on the MP entries both hold."""
    import json

    from pymatgen.entries.computed_entries import ComputedEntry

    from ..contract.labels import link_label
    from ..science.entries import decompress, entry_disagreements

    with references.open(mode='rb') as handle:
        content = json.loads(decompress(handle.read()))
    as_attributes = {}
    for data in content.values():
        entry = ComputedEntry.from_dict(data)
        mp_id = (entry.data or {}).get('material_id') or str(entry.entry_id).removesuffix('-GGA')
        as_attributes[link_label(mp_id)] = {
            'mp_id': mp_id,
            'formula': entry.composition.reduced_formula,
            'energy': float(entry.uncorrected_energy),
            'correction': float(entry.correction),
        }
    return entry_disagreements(as_attributes, entries, 'the datasets')
