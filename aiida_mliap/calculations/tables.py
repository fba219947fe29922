"""``tabulate_batch``: the reference and result nodes of one batch as one ``MliapBatchTable`` node.

A calcfunction must read only its inputs, and one that reads a hundred thousand results is slow (links are validated
one by one): so the hull and symmetry steps take one table per batch, and each table is made from its batch's
reference and result nodes by this calcfunction, which closes the provenance. Those nodes become its inputs
``references.<label>`` and ``results.<label>`` in one bulk insert (``attach_inputs``; 1,000 links through the engine's
own input handling took 66 s on PostgreSQL), named beforehand by their UUIDs in its ``members`` input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aiida import orm
from aiida.engine import Process, calcfunction

from ..contract.parameters import task_name
from ..contract.schema import TABLE_REFERENCE_KEYS, TABLE_RESULT_KEYS
from ..data.table import MliapBatchTable
from ..provenance.links import attach_inputs, inputs_of

if TYPE_CHECKING:
    import pandas as pd

REFERENCES, RESULTS = 'references', 'results'


@calcfunction
def tabulate_batch(parameters, members):
    """``members``: ``{'references': {label: uuid}, 'results': {label: uuid}}``, the reference entries of the batch
    (where it has them) and the structures with a result; linked as inputs, then read; a row per label of either."""
    attach_inputs(members.get_dict())
    pk = Process.current().node.pk
    references, results = (inputs_of([pk], namespace, 'attributes')[pk] for namespace in (REFERENCES, RESULTS))
    rows = {
        label: {'reference': _subset(references.get(label), TABLE_REFERENCE_KEYS),
                'result': _subset(results.get(label), TABLE_RESULT_KEYS)}
        for label in sorted(set(references) | set(results))
    }  # fmt: skip
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


def _subset(attributes: dict | None, keys: tuple[str, ...]) -> dict | None:
    return None if attributes is None else {key: attributes.get(key) for key in keys}


def make_table(
    parameters: orm.Dict,
    references: Mapping[str, orm.Node | str],
    results: Mapping[str, orm.Node | str],
    call_link_label: str | None = None,
) -> MliapBatchTable:
    """The table of one batch from its reference and result nodes (or their UUIDs) by label."""

    def uuids(nodes: Mapping[str, orm.Node | str]) -> dict[str, str]:
        return {label: node if isinstance(node, str) else node.uuid for label, node in sorted(nodes.items())}

    members = orm.Dict({REFERENCES: uuids(references), RESULTS: uuids(results)})
    metadata = {'call_link_label': call_link_label} if call_link_label else {}
    return tabulate_batch(parameters=parameters, members=members, metadata=metadata)


def tabulate(
    parameters: orm.Dict,
    references: Mapping[str, orm.Node | str],
    results: Mapping[str, orm.Node | str],
    batch_size: int = 100,
    call_link_label: str | None = None,
) -> list[MliapBatchTable]:
    """Tables of at most ``batch_size`` structures over ``references`` (by label) and their ``results``."""
    labels = sorted(set(references) | set(results))
    tables = []
    for start in range(0, len(labels), batch_size):
        chunk = labels[start : start + batch_size]
        tables.append(
            make_table(
                parameters,
                {label: references[label] for label in chunk if label in references},
                {label: results[label] for label in chunk if label in results},
                f'{call_link_label}_{start // batch_size}' if call_link_label else None,
            )
        )
    return tables


def union_of_tables(tables: Iterable[MliapBatchTable]) -> tuple[str, dict[str, dict], dict[str, dict]]:
    """(task, reference attributes by label, result attributes by label) over tables of one model and task.

    A label in several tables keeps its latest result (tables in creation order); two tables that disagree on a
    label's reference entry (another MP release) or tables of different tasks are refused."""
    from ..science.entries import entry_disagreements

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


def latest_rows(frame: pd.DataFrame, keys: list[str], order: list[str], usable: str | None = None) -> pd.DataFrame:
    """``latest_by_label`` on a frame of 10^6 rows: per ``keys``, the last row in ``order`` (creation order).

    With ``usable`` (a boolean column: the row holds a result), an unusable row never displaces a usable one: a
    failed rerun (no GPU, a broken checkpoint) must not hide the good result of an earlier run. Per key the latest
    usable row wins, the latest row only where none is usable, and the chosen rows count in ``newer_failed_attempts``
    the unusable rows of their key created after them."""
    ordered = frame.sort_values(order, kind='stable')
    if usable is None:
        return ordered.drop_duplicates(keys, keep='last')
    chosen = ordered.sort_values(usable, kind='stable').drop_duplicates(keys, keep='last')
    last = order[-1]
    pairs = ordered[[*keys, last, usable]].merge(chosen[[*keys, last]], on=keys, suffixes=('', '_chosen'))
    newer = pairs[~pairs[usable].astype(bool) & (pairs[last] > pairs[f'{last}_chosen'])]
    counts = newer.groupby(keys).size().rename('newer_failed_attempts').reset_index()
    chosen = chosen.drop(columns=['newer_failed_attempts'], errors='ignore').merge(counts, on=keys, how='left')
    chosen['newer_failed_attempts'] = chosen['newer_failed_attempts'].fillna(0).astype('int64')
    return chosen
