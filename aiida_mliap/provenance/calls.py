"""Which of a benchmark's called processes count: one rule for every lookup by call link label.

A label can name several processes: a step repeated after a daemon restart leaves the interrupted calcfunction
"Running" for ever (until ``verdi process repair``), and a broker redelivery can run a process twice. So wherever
the benchmark, its lanes, its status or its DFT check find children by label, they take the *latest finished* one:
excepted, killed, running or created-only copies never count, and a copy that finished with exit status 0 wins over
one that finished with another. A base work chain that finished with a non-zero status still counts (it attaches
every result it has before it exits); a calcfunction that failed is excepted, so for those "finished" means "ok".
"""

from __future__ import annotations

from collections.abc import Iterable

from aiida import orm
from aiida.common.links import LinkType


def batch_link_label(name: str, task: str, index: int | str) -> str:
    """The call link label of a model's batch (``index=''``: the prefix of them all)."""
    return f'batch_{name}_{task}_{index}'


def table_link_label(name: str, task: str, index: int | str) -> str:
    return f'table_{name}_{task}_{index}'


def batch_calls(benchmark: orm.ProcessNode, name: str, task: str, finished: bool = True) -> dict[int, orm.ProcessNode]:
    """The base work chains of one model and task that count (``best_of``), by batch index."""
    return lane_calls(benchmark, LinkType.CALL_WORK, batch_link_label(name, task, ''), finished)


def rank(node: orm.ProcessNode) -> tuple:
    """Sort key of copies of one label, best last: finished ok, then finished, then anything; then the latest."""
    return (node.is_finished_ok, node.is_finished, node.ctime)


def best_of(nodes: Iterable[orm.ProcessNode], finished: bool = True) -> orm.ProcessNode | None:
    """The copy that counts among processes of one label (``finished=False``: also an unfinished one, for progress
    of a running benchmark), or None."""
    candidates = [node for node in nodes if node.is_finished or not finished]
    return max(candidates, key=rank) if candidates else None


def call(node: orm.ProcessNode, link_type: LinkType, label: str, finished: bool = True) -> orm.ProcessNode | None:
    """The process ``node`` called under exactly ``label`` that counts, or None."""
    calls = node.base.links.get_outgoing(link_type=link_type, link_label_filter=label).all_nodes()
    return best_of(calls, finished)


def indexed_calls(
    node: orm.ProcessNode, link_type: LinkType, prefix: str, finished: bool = True
) -> dict[int, orm.ProcessNode]:
    """The processes ``node`` called with link labels ``<prefix><index>`` that count, by index (model names may be
    prefixes of each other, hence the exact form)."""
    links = node.base.links.get_outgoing(link_type=link_type).all()
    copies = _copies(((link.link_label, link.node) for link in links), prefix)
    return _best_by_index(copies, finished)


def lane_calls(
    benchmark: orm.ProcessNode, link_type: LinkType, prefix: str, finished: bool = True
) -> dict[int, orm.ProcessNode]:
    """``indexed_calls`` over the processes the benchmark's lanes called and those it called itself (tables of a
    batch a lane did not tabulate, of the structures not evaluated): one query whatever their number."""
    own = benchmark.base.links.get_outgoing(link_type=link_type).all()
    pairs = [(link.link_label, link.node) for link in own]
    query = orm.QueryBuilder().append(orm.WorkflowNode, filters={'id': benchmark.pk}, tag='benchmark')
    query.append(orm.WorkflowNode, with_incoming='benchmark', tag='lane',
                 edge_filters={'type': LinkType.CALL_WORK.value, 'label': {'like': 'lane%'}})  # fmt: skip
    query.append(
        orm.ProcessNode, with_incoming='lane', edge_project='label', project='*', tag='call',
        edge_filters={'type': link_type.value, 'label': {'like': f'{prefix}%'}},
    )  # fmt: skip
    pairs += [(row['lane--call']['label'], row['call']['*']) for row in query.iterdict()]
    copies = _copies(pairs, prefix)
    return _best_by_index(copies, finished)


def _copies(pairs: Iterable[tuple[str, orm.ProcessNode]], prefix: str) -> dict[int, list[orm.ProcessNode]]:
    """``(link label, process)`` pairs of the form ``<prefix><index>``, grouped by index."""
    copies: dict[int, list[orm.ProcessNode]] = {}
    for label, node in pairs:
        suffix = label[len(prefix) :]
        if label.startswith(prefix) and suffix.isdigit():
            copies.setdefault(int(suffix), []).append(node)
    return copies


def _best_by_index(copies: dict[int, list[orm.ProcessNode]], finished: bool) -> dict[int, orm.ProcessNode]:
    best = {index: best_of(nodes, finished) for index, nodes in sorted(copies.items())}
    return {index: node for index, node in best.items() if node is not None}
