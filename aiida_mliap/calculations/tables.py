"""``tabulate_batch``: the reference and result nodes of one batch as one ``MliapBatchTable`` node.

Calculation functions slow down with the number of their inputs (links are validated one by one), and a
calcfunction must read only its inputs: so the hull and symmetry steps take one table per batch, and each table
is made from its batch's reference and result nodes by this calcfunction, which closes the provenance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aiida import orm
from aiida.engine import calcfunction

from ..data.table import MliapBatchTable
from ..engine.parameters import task_name

if TYPE_CHECKING:
    import pandas as pd

REFERENCES, RESULTS = 'references', 'results'


@calcfunction
def tabulate_batch(parameters, **nodes):
    """``references__<label>`` (the reference entries of the batch, where it has them) and ``results__<label>``
    (the structures with a result); a row per label of either."""
    references, results = _split(nodes, REFERENCES), _split(nodes, RESULTS)
    rows = {
        label: {
            'reference': references[label].get_dict() if label in references else None,
            'result': results[label].get_dict() if label in results else None,
        }
        for label in sorted(set(references) | set(results))
    }
    hashes = {row['result'].get('model_sha256') for row in rows.values() if row['result']} - {None}
    if len(hashes) > 1:
        raise ValueError(f'results of several models in one batch: {sorted(hashes)}')
    table = {
        'task': task_name(parameters.get_dict()),
        'parameters': parameters.get_dict(),
        'model_sha256': hashes.pop() if hashes else None,
        'rows': rows,
    }
    return MliapBatchTable(table)


def tabulate(
    parameters: orm.Dict,
    references: Mapping[str, orm.Node],
    results: Mapping[str, orm.Node],
    batch_size: int = 100,
    call_link_label: str | None = None,
) -> list[MliapBatchTable]:
    """Tables of at most ``batch_size`` structures over ``references`` (by label) and their ``results``."""
    labels = sorted(set(references) | set(results))
    tables = []
    for start in range(0, len(labels), batch_size):
        chunk = labels[start : start + batch_size]
        inputs: dict[str, Any] = {'parameters': parameters}
        inputs.update({f'{REFERENCES}__{label}': references[label] for label in chunk if label in references})
        inputs.update({f'{RESULTS}__{label}': results[label] for label in chunk if label in results})
        if call_link_label:
            inputs['metadata'] = {'call_link_label': f'{call_link_label}_{start // batch_size}'}
        tables.append(tabulate_batch(**inputs))
    return tables


def union_of_tables(tables: Iterable[MliapBatchTable]) -> tuple[str, dict[str, dict], dict[str, dict]]:
    """(task, reference attributes by label, result attributes by label) over tables of one model and task.

    A label in several tables keeps its latest result (tables in creation order); two tables that disagree on a
    label's reference entry (another MP release) or tables of different tasks are refused."""
    from ..parsers.entries import entry_disagreements

    tasks, references, results = set(), {}, {}
    for table in tables:
        tasks.add(table.task)
        rows = table.rows
        orphans = sorted(label for label, row in rows.items() if row['reference'] is None)
        if orphans:
            raise ValueError(f'{len(orphans)} results have no reference entry in the datasets, e.g. {orphans[:5]}')
        new = {label: row['reference'] for label, row in rows.items()}
        problems = entry_disagreements(new, references, 'another table')
        if problems:
            raise ValueError(f'tables disagree on {len(problems)} reference entries: {"; ".join(problems[:5])}')
        references.update(new)
        results = latest_by_label([results, {label: row['result'] for label, row in rows.items() if row['result']}])
    if len(tasks) > 1:
        raise ValueError(f'tables of several tasks: {sorted(tasks)}; one hull is one model and one task')
    return (tasks.pop() if tasks else None), references, results


def latest_by_label(mappings: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The rule for restarts and relaunches: over mappings in creation order, a label's latest value wins."""
    merged: dict[str, Any] = {}
    for mapping in mappings:
        merged.update(mapping)
    return merged


def latest_rows(frame: pd.DataFrame, keys: list[str], order: list[str]) -> pd.DataFrame:
    """``latest_by_label`` on a frame of 10^6 rows: per ``keys``, the last row in ``order`` (creation order)."""
    return frame.sort_values(order, kind='stable').drop_duplicates(keys, keep='last')


def _split(nodes: Mapping[str, orm.Node], namespace: str) -> dict[str, orm.Node]:
    prefix = f'{namespace}__'
    return {key[len(prefix) :]: node for key, node in nodes.items() if key.startswith(prefix)}
