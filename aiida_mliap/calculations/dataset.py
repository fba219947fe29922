"""Import a reference dataset: the file as a node, one calcfunction that turns it into structures and references."""

from __future__ import annotations

from pathlib import Path

from aiida import orm
from aiida.engine import calcfunction

from ..data.dataset import MP_CREDIT, MliapDatasetData
from ..data.reference import MliapReferenceData
from ..engine.hashing import sha256_of_file
from ..parsers.entries import ReferenceRecord, dataset_release, read_dataset


def read_records(dataset: MliapDatasetData) -> list[ReferenceRecord]:
    with dataset.open(mode='rb') as handle:
        return read_dataset(handle.read(), dataset.source)


@calcfunction
def import_dataset(dataset):
    """Per entry a ``structures.<label>`` (the DFT structure) and a ``references.<label>`` node."""
    structures, references = {}, {}
    for record in read_records(dataset):
        structure = orm.StructureData(pymatgen=record.structure)
        structure.label = record.attributes['mp_id']
        structures[record.label] = structure
        reference = MliapReferenceData({**record.attributes, 'dataset_sha256': dataset.sha256})
        reference.label = record.attributes['mp_id']
        references[record.label] = reference
    return {'structures': structures, 'references': references}


class ImportRefusedError(ValueError):
    """The import would mix releases in one group, or the file is unreadable; nothing was stored."""


def import_reference_file(path: str | Path, group_label: str, force: bool = False, credit: str = MP_CREDIT):
    """Import ``path`` into ``group_label``; returns (group, dataset node, created).

    A file imported before (same sha256) creates nothing: its nodes are only added to the group.
    """
    path = Path(path)
    digest = sha256_of_file(path)
    existing = MliapDatasetData.find(digest)
    if existing is not None:
        group, _ = orm.Group.collection.get_or_create(group_label)
        group.add_nodes(_imported_nodes(existing))
        return group, existing, False

    # Parsed here as well as in the calcfunction: every problem must surface before anything is stored.
    records = read_dataset(path.read_bytes(), path.name)
    release = dataset_release(records)
    if not force:
        query = orm.QueryBuilder().append(orm.Group, filters={'label': group_label}, tag='group')
        query.append(MliapDatasetData, with_group='group', filters={'attributes.kind': 'entries'})
        clash = [n for n in query.all(flat=True) if n.base.attributes.get('release') != release]
        if clash:
            raise ImportRefusedError(
                f'group `{group_label}` holds {clash[0].source} '
                f'(MP release of {clash[0].base.attributes.get("release")}) '
                f'and {path.name} is from {release}: one hull must not mix MP releases, whose energies and corrections '
                'differ. Import into another group, or pass --force if you know they are compatible.'
            )
    dataset = MliapDatasetData(path, kind='entries', credit=credit, sha256=digest)
    dataset.base.attributes.set('n_entries', len(records))
    dataset.base.attributes.set('release', release)
    dataset.base.attributes.set('chemsys', sorted({el for r in records for el in r.attributes['composition']}))
    dataset.store()
    import_dataset(dataset)
    group, _ = orm.Group.collection.get_or_create(group_label)
    group.add_nodes(_imported_nodes(dataset))
    return group, dataset, True


def _imported_nodes(dataset: MliapDatasetData) -> list[orm.Node]:
    """The dataset node and every structure and reference its import created."""
    created = [
        node
        for namespace in ('structures', 'references')
        for node in imported_nodes([dataset], namespace)[dataset.sha256].values()
    ]
    return [dataset, *created]


def imported_nodes(
    datasets: list[MliapDatasetData], namespace: str, project: str = '*'
) -> dict[str, dict[str, orm.Node]]:
    """By dataset sha256, the ``structures`` or ``references`` each dataset's import created, by label (one query).

    ``project='attributes'`` gives their attributes instead of the nodes: one query instead of one per node.
    """
    cls = {'structures': orm.StructureData, 'references': MliapReferenceData}[namespace]
    query = orm.QueryBuilder()
    query.append(
        MliapDatasetData, filters={'id': {'in': [d.pk for d in datasets]}}, project='attributes.sha256', tag='dataset'
    )
    query.append(
        orm.CalcFunctionNode, with_incoming='dataset', filters={'attributes.process_state': 'finished'}, tag='f'
    )
    query.append(
        cls,
        with_incoming='f',
        edge_filters={'label': {'like': f'{namespace}__%'}},
        edge_project='label',
        project=project,
        tag='node',
    )
    found: dict[str, dict[str, orm.Node]] = {dataset.sha256: {} for dataset in datasets}
    for row in query.iterdict():
        label = row['f--node']['label'].partition('__')[2]
        found[row['dataset']['attributes.sha256']][label] = row['node'][project]
    return found


def group_datasets(group: orm.Group) -> list[MliapDatasetData]:
    query = orm.QueryBuilder().append(orm.Group, filters={'id': group.pk}, tag='group')
    query.append(MliapDatasetData, with_group='group', filters={'attributes.kind': 'entries'})
    return query.all(flat=True)
