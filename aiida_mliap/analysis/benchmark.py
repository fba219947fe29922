"""Progress and headline errors of a benchmark work chain, from its provenance."""

from __future__ import annotations

from typing import Any

from aiida import orm
from aiida.common.links import LinkType

from ..calculations.outputs import outputs_of
from ..engine.status import WITH_RESULT

QUANTITIES = {
    'total energy': ('energy_per_atom_model', 'energy_per_atom_dft'),
    'formation energy': ('e_form_model', 'e_form_dft'),
    'Ehull (model hull)': ('e_above_hull_model', 'e_above_hull_dft'),
    'Ehull (DFT-ref hull)': ('e_above_hull_model_dftref', 'e_above_hull_dft'),
}


def progress(benchmark: orm.WorkflowNode) -> list[dict[str, Any]]:
    """Per model and task: structures done (a result), failed (for good), pending (not finished or not started)."""
    from ..calculations.dataset import group_datasets, imported_nodes

    datasets = group_datasets(orm.load_group(benchmark.inputs.group.value))
    total = sum(len(labels) for labels in imported_nodes(datasets, 'references', project='id').values())
    rows = {}
    for name in sorted(benchmark.inputs.models):
        for task in benchmark.inputs.tasks.get_list():
            rows[(name, task)] = {'model': name, 'task': task, 'done': 0, 'failed': 0, 'pending': total}
    with_result = {s.value for s in WITH_RESULT}
    for child in benchmark.called:
        key = (child.base.extras.get('mliap_model', None), child.base.extras.get('mliap_task', None))
        if key not in rows or not child.is_terminated or 'summary' not in child.outputs:
            continue
        counts = child.outputs.summary['counts']
        done = sum(count for status, count in counts.items() if status in with_result)
        lost = sum(count for status, count in counts.items() if status not in with_result)  # recorded reasons
        rows[key]['done'] += done
        rows[key]['failed'] += lost
        rows[key]['pending'] -= done + lost
    return list(rows.values())


def error_summary(benchmark: orm.WorkflowNode) -> list[dict[str, Any]]:
    """MAE and mean signed error (model - DFT, meV/atom) per model, task and quantity, from the thermo nodes."""
    from ..labels import link_label

    calls = benchmark.base.links.get_outgoing(link_type=LinkType.CALL_CALC, link_label_filter='thermo_%').all()
    by_label = {link.link_label: link.node.pk for link in calls}
    values = outputs_of(by_label.values(), 'thermo', project='attributes')
    rows = []
    for name, model in sorted(benchmark.inputs.models.items()):
        for task in benchmark.inputs.tasks.get_list():
            pk = by_label.get(f'thermo_{link_label(name)}_{task}')
            records = list(values[pk].values()) if pk else []
            for quantity, (model_key, dft_key) in QUANTITIES.items():
                errors = [r[model_key] - r[dft_key] for r in records if None not in (r[model_key], r[dft_key])]
                if errors:
                    rows.append(
                        {
                            'model': model.name,
                            'task': task,
                            'quantity': quantity,
                            'n': len(errors),
                            'MAE meV/atom': 1000 * sum(abs(e) for e in errors) / len(errors),
                            'mean signed meV/atom': 1000 * sum(errors) / len(errors),
                            'underpredicted': f'{sum(e < 0 for e in errors) / len(errors):.0%}',
                        }
                    )
    return rows
