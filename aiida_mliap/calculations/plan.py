"""The batches of a benchmark as one stored node, so that a work chain's state does not grow with the structures.

``plan_batches`` splits the union of the datasets into balanced batches and stores them as an ``ArrayData``:
``labels`` batch after batch, ``offsets`` (batch ``b`` is ``labels[offsets[b]:offsets[b + 1]]``), ``n_atoms`` (per
label, for progress estimates) and ``skipped`` (the labels ``max_atoms`` leaves out). Labels, not pks: an exported
and re-imported plan still means the same. A benchmark's work units are (model, task, batch), numbered
model-major; ``unit_coordinates`` maps one back.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from ..data.dataset import MliapDatasetData
from ..data.reference import to_entry
from ..science.hull import elemental_ground_states
from .dataset import union_of_datasets


def balanced_batches(sizes: dict[str, int], batch_size: int) -> list[list[str]]:
    """Split labels into ``ceil(n / batch_size)`` batches of near-equal count and a similar mix of sizes.

    Batches run side by side and the last ones decide when a model's task ends, so batches are dealt round-robin from
    the largest structure down: 557 structures in batches of at most 100 become 6 of 92-93, not 5 x 100 and one of 57.
    """
    count = -(-len(sizes) // batch_size)
    batches: list[list[str]] = [[] for _ in range(count)]
    for i, label in enumerate(sorted(sizes, key=lambda label: (-sizes[label], label))):
        batches[i % count].append(label)
    return [sorted(batch) for batch in batches]


def evaluated_structures(
    datasets: list[MliapDatasetData], structures: dict[str, int], max_atoms: int | None
) -> tuple[dict[str, int], set[str]]:
    """Atoms per label of the ``structures`` (label -> pk) a benchmark evaluates, and the labels ``max_atoms`` leaves
    out. The elemental DFT ground states are always evaluated, whatever their size: both hulls stand on them."""
    query = orm.QueryBuilder().append(
        orm.StructureData, filters={'id': {'in': list(structures.values())}}, project=['id', 'attributes.sites']
    )
    atoms = {pk: len(sites) for pk, sites in query.iterall()}
    if max_atoms is None:
        return {label: atoms[pk] for label, pk in structures.items()}, set()
    references = union_of_datasets(datasets, 'references', project='attributes')
    corners = set(elemental_ground_states({label: to_entry(a) for label, a in references.items()}).values())
    sizes = {label: atoms[pk] for label, pk in structures.items() if atoms[pk] <= max_atoms or label in corners}
    return sizes, set(structures) - set(sizes)


@calcfunction
def plan_batches(batch_size, max_atoms=None, **datasets):
    """The balanced batches over the union of ``datasets`` (in key order: the first file wins a shared label).

    Reads the structures the datasets' imports created (their outputs, determined by the datasets) for their sizes.
    """
    ordered = [datasets[key] for key in sorted(datasets)]
    structures = union_of_datasets(ordered, 'structures', project='id')
    sizes, skipped = evaluated_structures(ordered, structures, max_atoms.value if max_atoms is not None else None)
    batches = balanced_batches(sizes, batch_size.value) if sizes else []
    plan = orm.ArrayData()
    plan.set_array('labels', np.array([label for batch in batches for label in batch], dtype=str))
    plan.set_array('offsets', np.cumsum([0] + [len(batch) for batch in batches], dtype=np.int64))
    plan.set_array('n_atoms', np.array([sizes[label] for batch in batches for label in batch], dtype=np.int64))
    plan.set_array('skipped', np.array(sorted(skipped), dtype=str))
    plan.base.attributes.set('n_batches', len(batches))
    plan.base.attributes.set('n_evaluated', len(sizes))
    plan.base.attributes.set('batch_size', batch_size.value)
    return plan


def batch_labels(plan: orm.ArrayData, index: int) -> list[str]:
    """The labels of batch ``index`` of a plan."""
    offsets = plan.get_array('offsets')
    return plan.get_array('labels')[offsets[index] : offsets[index + 1]].tolist()


def batch_atoms(plan: orm.ArrayData) -> list[int]:
    """Atoms per batch."""
    offsets, sizes = plan.get_array('offsets'), plan.get_array('n_atoms')
    return [int(sizes[offsets[i] : offsets[i + 1]].sum()) for i in range(len(offsets) - 1)]


def skipped_labels(plan: orm.ArrayData) -> list[str]:
    return plan.get_array('skipped').tolist()


def unit_coordinates(unit: int, models: list[str], tasks: list[str], n_batches: int) -> tuple[str, str, int]:
    """(model, task, batch index) of work unit ``unit``, numbered model-major, then task, then batch."""
    per_model = len(tasks) * n_batches
    return models[unit // per_model], tasks[unit % per_model // n_batches], unit % n_batches
