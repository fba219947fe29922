"""``compute_thermodynamics``: formation energy and Ehull (both hulls) of one model over one dataset, in one call.

Inputs are the reference nodes and the model's result nodes themselves, so each value traces back to the DFT
entry and to the calculation that produced the model energy.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiida import orm
from aiida.engine import calcfunction

from ..data.dataset import MliapDatasetData
from ..data.model import MliapModelData
from ..data.reference import to_entry
from ..data.thermo import MliapThermoData
from ..engine.status import WITH_RESULT, Status
from .hull import correct_model_entries, hull_quantities
from .outputs import attach_outputs, outputs_of


def thermodynamics_inputs(
    model: MliapModelData,
    dataset: MliapDatasetData,
    summaries: list[orm.Dict],
    elemental_references: MliapDatasetData | None = None,
) -> dict[str, Any]:
    """The calcfunction's arguments: aggregate nodes that link to every reference and every result.

    ``summaries`` are the ``summary`` outputs of the calculations whose results count (AiiDA's process functions
    slow down quadratically with the number of inputs, so the thousands of result nodes are reached through them).
    """
    inputs: dict[str, Any] = {'model': model, 'dataset': dataset}
    if elemental_references is not None:
        inputs['elemental_references'] = elemental_references
    inputs.update({f'summaries__{index}': summary for index, summary in enumerate(summaries)})
    return inputs


def results_of(summaries: list[orm.Dict]) -> dict[str, dict[str, Any]]:
    """Attributes of the ``results.<label>`` outputs of the processes that produced ``summaries``.

    A structure that several calculations hold (restarts of an unconverged relaxation) counts with its latest
    result; so pass the summaries of one task of one model.
    """
    query = orm.QueryBuilder().append(orm.Dict, filters={'id': {'in': [s.pk for s in summaries]}}, tag='summary')
    query.append(orm.ProcessNode, with_outgoing='summary', project='id')
    results: dict[str, dict[str, Any]] = {}
    outputs = outputs_of(query.all(flat=True), 'results', project='attributes')
    for pk in sorted(outputs):
        results.update(outputs[pk])
    return results


def thermo_records(node: orm.CalcFunctionNode) -> dict[str, dict[str, Any]]:
    """The ``thermo.<label>`` values a ``compute_thermodynamics`` call produced, by label (one query)."""
    return outputs_of([node.pk], 'thermo', project='attributes')[node.pk]


@calcfunction
def compute_thermodynamics(model, dataset, elemental_references=None, **summaries):
    """Per reference entry of ``dataset`` a ``thermo.<label>`` node (stored in bulk), plus a ``summary`` with
    counts, reasons and the members of both hulls."""
    from .dataset import imported_nodes

    if dataset.kind != 'entries':
        raise ValueError(f'`dataset` must hold entries, not {dataset.kind}')
    references = imported_nodes([dataset], 'references', project='attributes')[dataset.sha256]
    results = results_of(list(summaries.values()))
    unknown = sorted(set(results) - set(references))
    if unknown:
        raise ValueError(f'{len(unknown)} results have no entry in {dataset.source}, e.g. {unknown[:5]}')
    fixed = read_elemental_references(elemental_references) if elemental_references is not None else None
    records, summary = thermodynamics(model, references, results, fixed)
    summary['dataset'] = dataset.source
    summary['elemental_references'] = elemental_references.source if elemental_references is not None else 'dataset'
    attach_outputs({'thermo': {label: MliapThermoData(record) for label, record in records.items()}})
    return {'summary': orm.Dict(summary)}


def thermodynamics(
    model: MliapModelData,
    references: dict[str, dict[str, Any]],
    results: dict[str, dict[str, Any]],
    fixed_references: dict[str, float] | None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The values behind ``compute_thermodynamics`` from reference and result attributes; one dataset is one hull."""
    attributes = references
    mp_ids = {label: a['mp_id'] for label, a in attributes.items()}

    dft_entries = {label: to_entry(a) for label, a in attributes.items()}
    dft, dft_undefined, dft_stable = hull_quantities(dft_entries, fixed_references)

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
    modelled, model_undefined, model_stable = hull_quantities(corrected, fixed_references)

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
        'model_sha256': model.sha256,
        'energy_scale': model.energy_scale,
        'dft_hull': sorted(mp_ids[label] for label in dft_stable),
        'model_hull': sorted(mp_ids[label] for label in model_stable),
        'reasons': {label: record['reason'] for label, record in records.items() if record['reason']},
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
