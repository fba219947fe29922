"""``compute_thermodynamics``: formation energy and Ehull (both hulls) of one model and task over a dataset group.

Its inputs are the batch tables of that model and task (``tabulate_batch``: made from the reference and result
nodes themselves), the datasets they come from and, optionally, fixed elemental references: it reads nothing else,
so every value traces back through input and create links to the DFT entry and to the model's result.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiida import orm
from aiida.engine import calcfunction

from ..data.dataset import MliapDatasetData
from ..data.model import MliapModelData
from ..data.reference import to_entry
from ..data.table import MliapBatchTable
from ..data.thermo import MliapThermoData
from ..engine.status import WITH_RESULT, Status
from .hull import correct_model_entries, elemental_ground_states, hull_quantities
from .outputs import attach_outputs, outputs_of
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


def thermo_records(node: orm.CalcFunctionNode) -> dict[str, dict[str, Any]]:
    """The ``thermo.<label>`` values a ``compute_thermodynamics`` call produced, by label (one query)."""
    return outputs_of([node.pk], 'thermo', project='attributes')[node.pk]


@calcfunction
def compute_thermodynamics(model, elemental_references=None, **nodes):
    """Per reference entry of the tables a ``thermo.<label>`` node (stored in bulk), plus a ``summary`` with counts,
    reasons, the members of both hulls and the error and classification metrics."""
    tables = [nodes[key] for key in sorted(nodes, key=_index) if key.startswith(f'{TABLES}__')]
    datasets = [nodes[key] for key in sorted(nodes, key=_index) if key.startswith(f'{DATASETS}__')]
    if not tables:
        raise ValueError('give the batch tables of one model and task (tables__0, ...)')
    task, references, results = union_of_tables(tables)
    fixed = read_elemental_references(elemental_references) if elemental_references is not None else None
    records, summary = thermodynamics(model, references, results, fixed)
    summary.update(
        task=task,
        datasets=[dataset.source for dataset in datasets],
        elemental_references=elemental_references.source if elemental_references is not None else 'dataset',
    )
    attach_outputs({'thermo': {label: MliapThermoData({**record, 'task': task}) for label, record in records.items()}})
    return {'summary': orm.Dict(summary)}


def _index(key: str) -> tuple[str, int]:
    namespace, _, index = key.partition('__')
    return namespace, int(index) if index.isdigit() else -1


def thermodynamics(
    model: MliapModelData,
    references: dict[str, dict[str, Any]],
    results: dict[str, dict[str, Any]],
    fixed_references: dict[str, float] | None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The values behind ``compute_thermodynamics`` from reference and result attributes; all entries are one hull.

    Both hulls stand on the same elemental phases: the DFT ground state of each element, evaluated by DFT for the
    DFT hull and by the model for the model hull. Where the model has no energy for a ground state, the entries
    with that element get ``no_model_elemental_reference``, never a silently different reference."""
    from ..analysis.metrics import record_metrics

    attributes = references
    mp_ids = {label: a['mp_id'] for label, a in attributes.items()}

    dft_entries = {label: to_entry(a) for label, a in attributes.items()}
    ground_states = elemental_ground_states(dft_entries)
    dft, dft_undefined, dft_stable = hull_quantities(dft_entries, fixed_references, ground_states)

    raw, not_evaluated = {}, {}
    for label in references:
        result = results.get(label)
        if result is None:
            not_evaluated[label] = 'the model has no result for this entry'
        elif Status(result['status']) not in WITH_RESULT or result['energy'] is None:
            not_evaluated[label] = f'model result {result["status"]}: {result.get("message", "")}'.strip()
        else:
            raw[label] = to_entry(attributes[label], energy=result['energy'], corrected=False)
    corrected, refused = correct_model_entries(raw, model.energy_scale)
    modelled, model_undefined, model_stable = hull_quantities(corrected, fixed_references, ground_states)

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
        # Scored over the structures the model was given, as analysis.metrics.summary_metrics scores load_results.
        **record_metrics([record for label, record in records.items() if label in results]),
    }
    return records, summary


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
    }


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

    from ..parsers.entries import decompress

    with dataset.open(mode='rb') as handle:
        content = json.loads(decompress(handle.read()))
    return {symbol: float(ComputedEntry.from_dict(entry).energy_per_atom) for symbol, entry in content.items()}


def elemental_reference_conflicts(references: MliapDatasetData, entries: dict[str, dict[str, Any]]) -> list[str]:
    """Why fixed elemental references cannot serve datasets whose reference attributes by label are ``entries``:
    the same evidence as between two dataset files (``entry_disagreements``) on the MP entries both hold."""
    import json

    from pymatgen.entries.computed_entries import ComputedEntry

    from ..labels import link_label
    from ..parsers.entries import decompress, entry_disagreements

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
