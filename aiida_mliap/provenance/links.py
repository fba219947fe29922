"""Attach thousands of output or input nodes to the running calcfunction in one transaction.

aiida-core stores a process's outputs one at a time, each with link-validation queries and its own commit: about
25-50 ms per node on SQLite, so a 1,000-entry import spent a minute there. Inputs are no better: each link of a
calcfunction's inputs is validated with a count query and a scan of the links added so far (a 1,000-input
``tabulate_batch`` took 66 s on PostgreSQL, 85% of it there; cProfile). Here the same rows (new nodes and CREATE links
labelled as ``Process.update_outputs`` labels them; INPUT_CALC links from stored nodes labelled as a calcfunction's
namespaced inputs) go in through the storage backend's ``bulk_insert``, the path ``verdi archive import`` takes. The
provenance graph is the one the slow path writes; what is skipped is only the per-link checks, done here once for the
whole set.

One of the two modules that reach below aiida-core's public API (the other, ``provenance/frames.py``, only reads):
what they touch is listed in ``provenance/internals.py``, whose test pins the aiida-core release, so an upgrade fails
loudly until they are checked again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiida import orm
from aiida.common import timezone
from aiida.common.hashing import make_hash
from aiida.common.links import LinkType, validate_link_label
from aiida.engine import Process
from aiida.orm.entities import EntityTypes

NAMESPACE_SEPARATOR = '__'


def _running_calculation(caller: str) -> orm.CalculationNode:
    process = Process.current()
    if process is None or not isinstance(process.node, orm.CalculationNode) or not process.node.is_stored:
        raise RuntimeError(f'{caller} must be called from inside a running calcfunction')
    return process.node


def attach_inputs(uuids: Mapping[str, Mapping[str, str]]) -> int:
    """Link the stored Data nodes ``{namespace: {label: uuid}}`` as inputs ``namespace.label`` of the running
    calculation function, so that what it then reads (``inputs_of``) is its input, as if it had been passed in.

    For a calcfunction whose other inputs name these nodes (their UUIDs in a Dict), so that its hash, computed from
    those inputs when it was stored, stands for these links too. The calculation is marked as no cache source: a
    cached copy would get only the inputs passed in, not these links (its function body never runs). Returns how many.
    """
    node = _running_calculation('attach_inputs')
    node.base.caching.is_valid_cache = False
    labelled = {f'{ns}{NAMESPACE_SEPARATOR}{label}': uuid for ns, by in uuids.items() for label, uuid in by.items()}
    if not labelled:
        return 0
    existing = set(node.base.links.get_incoming().all_link_labels())
    for link_label in labelled:
        validate_link_label(link_label)
        if link_label in existing:
            raise ValueError(f'{node} already has an input `{link_label}`')
    query = orm.QueryBuilder().append(orm.Node, filters={'uuid': {'in': list(set(labelled.values()))}},
                                      project=['uuid', 'id', 'node_type'])  # fmt: skip
    found = {uuid: (pk, node_type) for uuid, pk, node_type in query.iterall()}
    missing = sorted(label for label, uuid in labelled.items() if uuid not in found)
    if missing:
        raise ValueError(f'{len(missing)} inputs are not stored nodes, e.g. {missing[:5]}')
    not_data = sorted(label for label, uuid in labelled.items() if not found[uuid][1].startswith('data.'))
    if not_data:
        raise ValueError(f'inputs must be Data nodes: {not_data[:5]}')
    links = [
        {'input_id': found[uuid][0], 'output_id': node.pk, 'label': link_label, 'type': LinkType.INPUT_CALC.value}
        for link_label, uuid in labelled.items()
    ]
    with node.backend.transaction():
        node.backend.bulk_insert(EntityTypes.LINK, links)
    return len(links)


def attach_outputs(outputs: Mapping[str, Mapping[str, orm.Data]]) -> int:
    """Store ``{namespace: {label: node}}`` as outputs ``namespace.label`` of the running calculation function.

    The nodes must be new and hold no repository files (attributes only). Returns how many were stored.
    """
    parent = _running_calculation('attach_outputs')
    labelled = {
        f'{ns}{NAMESPACE_SEPARATOR}{label}': node for ns, nodes in outputs.items() for label, node in nodes.items()
    }
    if not labelled:
        return 0
    existing = set(parent.base.links.get_outgoing(link_type=LinkType.CREATE).all_link_labels())
    now = timezone.now()
    rows = []
    for link_label, node in labelled.items():
        validate_link_label(link_label)
        if link_label in existing:
            raise ValueError(f'{parent} already has an output `{link_label}`')
        if not isinstance(node, orm.Data) or node.is_stored:
            raise ValueError(f'output `{link_label}` must be a new Data node, got {node!r}')
        if node.base.repository.list_object_names():
            raise ValueError(f'output `{link_label}` holds repository files: store it through the normal outputs')
        node._validate_storability()
        node._validate()
        node.backend_entity.clean_values()  # what Node.store does before hashing
        rows.append(
            {
                'uuid': node.uuid,
                'node_type': node.node_type,
                'process_type': None,
                'label': node.label,
                'description': node.description,
                'ctime': now,
                'mtime': now,
                'attributes': node.base.attributes.all,
                'extras': {node.base.caching._HASH_EXTRA_KEY: make_hash(node.base.caching.get_objects_to_hash())},
                'repository_metadata': {},
                'dbcomputer_id': None,
                'user_id': parent.user.pk,
            }
        )
    backend = parent.backend
    with backend.transaction():
        ids = backend.bulk_insert(EntityTypes.NODE, rows)
        links = [
            {'input_id': parent.pk, 'output_id': pk, 'label': label, 'type': LinkType.CREATE.value}
            for pk, label in zip(ids, labelled, strict=True)
        ]
        backend.bulk_insert(EntityTypes.LINK, links)
    return len(rows)


def outputs_of(
    process_ids: Iterable[int],
    namespace: str,
    project: str | tuple[str, ...] = '*',
    labels: Iterable[str] | None = None,
) -> dict[int, dict[str, Any]]:
    """Outputs ``namespace.<label>`` of the given processes by process pk and label, in one query (only the given
    ``labels``, if any: a batch of a dataset of 10^5 without reading the rest).

    ``project='attributes'`` gives their attributes instead of the nodes (reading thousands of nodes one by one
    is a query each); a tuple of attribute keys gives a dict of just those (the database extracts them: at 10^5
    nodes, converting whole attribute dicts dominates).
    """
    return _linked(process_ids, namespace, project, 'with_incoming', labels)


def inputs_of(
    process_ids: Iterable[int], namespace: str, project: str | tuple[str, ...] = '*'
) -> dict[int, dict[str, Any]]:
    """Inputs ``namespace.<label>`` of the given processes, as ``outputs_of`` gives outputs."""
    return _linked(process_ids, namespace, project, 'with_outgoing')


def _linked(
    process_ids: Iterable[int],
    namespace: str,
    project: str | tuple[str, ...],
    relation: str,
    labels: Iterable[str] | None = None,
) -> dict[int, dict[str, Any]]:
    process_ids = list(process_ids)
    found: dict[int, dict[str, Any]] = {pk: {} for pk in process_ids}
    if not process_ids:
        return found
    query = linked_query(process_ids, namespace, project, relation, labels)
    for row in query.iterdict():
        label = row['process--node']['label'][len(namespace) + len(NAMESPACE_SEPARATOR) :]
        node = row['node']
        value = node[project] if isinstance(project, str) else {key: node[f'attributes.{key}'] for key in project}
        found[row['process']['id']][label] = value
    return found


def linked_query(
    process_ids: list[int],
    namespace: str,
    project: str | tuple[str, ...],
    relation: str = 'with_incoming',
    labels: Iterable[str] | None = None,
) -> orm.QueryBuilder:
    """The query behind ``outputs_of``: per process (its id projected), the nodes linked to it under
    ``namespace.<label>`` (``project`` of them, then the link label), for callers that read it another way (a frame)."""
    query = orm.QueryBuilder()
    query.append(orm.ProcessNode, filters={'id': {'in': process_ids}}, project='id', tag='process')
    query.append(
        orm.Data,
        edge_filters={
            'label': {'like': f'{namespace}{NAMESPACE_SEPARATOR}%'}
            if labels is None
            else {'in': [f'{namespace}{NAMESPACE_SEPARATOR}{label}' for label in labels]}
        },
        edge_project='label',
        project=project if isinstance(project, str) else [f'attributes.{key}' for key in project],
        tag='node',
        **{relation: 'process'},
    )
    return query
