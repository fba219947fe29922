"""Progress and headline errors of a benchmark work chain, from its provenance."""

from __future__ import annotations

from typing import Any

from aiida import orm

from ..engine.status import WITH_RESULT


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
    """MAE, mean signed error and RMSE (model - DFT, meV/atom) per model, task and quantity, from provenance."""
    from .metrics import headline_table
    from .results import load_results

    table = headline_table(load_results(benchmark))
    return table.to_dict('records')
