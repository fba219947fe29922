"""Import a reference dataset: the file as a node, one calcfunction that turns it into structures and references."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from aiida import orm
from aiida.engine import calcfunction

from ..data.dataset import MP_CREDIT, MliapDatasetData
from ..data.reference import MliapReferenceData
from ..data.structure import structure_data
from ..engine.hashing import sha256_of_file
from ..parsers.entries import (
    ReferenceRecord,
    dataset_release,
    parse_chemsys,
    read_dataset,
    select_chemical_system,
)
from .outputs import attach_outputs, outputs_of


@functools.lru_cache(maxsize=1)
def parse_reference_file(content: bytes, filename: str) -> tuple[ReferenceRecord, ...]:
    """``read_dataset`` remembered for the last file: the import checks the whole file before storing anything and
    the calcfunction then reads the same bytes (a pure function of them, so provenance is unaffected)."""
    return tuple(read_dataset(content, filename))


def read_records(dataset: MliapDatasetData) -> tuple[ReferenceRecord, ...]:
    with dataset.open(mode='rb') as handle:
        return parse_reference_file(handle.read(), dataset.source)


@calcfunction
def import_dataset(dataset):
    """Per entry a ``structures.<label>`` (the DFT structure) and a ``references.<label>`` node.

    Stored in bulk (see ``outputs.attach_outputs``): returning them would cost ~25 ms per node.
    """
    structures, references = {}, {}
    digest = dataset.sha256  # read once: an attribute of a stored node is a query
    for record in read_records(dataset):
        structure = structure_data(record.structure)
        structure.label = record.attributes['mp_id']
        structures[record.label] = structure
        reference = MliapReferenceData({**record.attributes, 'dataset_sha256': digest})
        reference.label = record.attributes['mp_id']
        references[record.label] = reference
    attach_outputs({'structures': structures, 'references': references})


class ImportRefusedError(ValueError):
    """The import would mix releases in one group, or the file is unreadable; nothing was stored."""


def import_reference_file(
    path: str | Path, group_label: str, force: bool = False, credit: str = MP_CREDIT, chemsys: str | None = None
):
    """Import ``path`` (or only its entries within ``chemsys``) into ``group_label``; returns (group, dataset, created).

    A file (or selection) imported before (same sha256) creates nothing: its nodes are only added to the group.
    A selection is the output of ``select_subsystem`` on the whole file's node, so the provenance shows where it
    came from.
    """
    path = Path(path)
    content = whole = path.read_bytes()
    name = path.name
    if chemsys:
        chemsys = '-'.join(sorted(parse_chemsys(chemsys)))
        content, name = select_chemical_system(content, name, chemsys), subsystem_filename(chemsys, name)
    digest = hashlib.sha256(content).hexdigest()
    existing = MliapDatasetData.find(digest)
    if existing is not None:
        group, _ = orm.Group.collection.get_or_create(group_label)
        group.add_nodes(_imported_nodes(existing))
        return group, existing, False

    # Parsed before anything is stored, so that every problem surfaces first; the calcfunction reuses the parse.
    records = parse_reference_file(content, name)
    release = dataset_release(records)
    if not force:
        query = orm.QueryBuilder().append(orm.Group, filters={'label': group_label}, tag='group')
        query.append(MliapDatasetData, with_group='group', filters={'attributes.kind': 'entries'})
        clash = [n for n in query.all(flat=True) if n.base.attributes.get('release') != release]
        if clash:
            raise ImportRefusedError(
                f'group `{group_label}` holds {clash[0].source} '
                f'(MP release of {clash[0].base.attributes.get("release")}) '
                f'and {name} is from {release}: one hull must not mix MP releases, whose energies and corrections '
                'differ. Import into another group, or pass --force if you know they are compatible.'
            )
    if chemsys:
        source = MliapDatasetData.find(hashlib.sha256(whole).hexdigest())
        if source is None:
            source = MliapDatasetData(path, kind='entries', credit=credit)
            describe_dataset(source, parse_reference_file(whole, path.name)).store()
        dataset = select_subsystem(source, orm.Str(chemsys))
    else:
        dataset = describe_dataset(MliapDatasetData(path, kind='entries', credit=credit, sha256=digest), records)
        dataset.store()
    import_dataset(dataset)
    group, _ = orm.Group.collection.get_or_create(group_label)
    group.add_nodes(_imported_nodes(dataset))
    return group, dataset, True


def subsystem_filename(chemsys: str, filename: str) -> str:
    return f'{chemsys}_from_{filename.removesuffix(".gz")}.gz'


def describe_dataset(dataset: MliapDatasetData, records: tuple[ReferenceRecord, ...]) -> MliapDatasetData:
    """Entry count, MP release and elements as attributes, so that listing datasets needs no file read."""
    dataset.base.attributes.set('n_entries', len(records))
    dataset.base.attributes.set('release', dataset_release(records))
    dataset.base.attributes.set('chemsys', sorted({el for r in records for el in r.attributes['composition']}))
    return dataset


@calcfunction
def select_subsystem(dataset, chemsys):
    """The entries of ``dataset`` whose elements lie within ``chemsys``, as a dataset of their own."""
    import tempfile

    with dataset.open(mode='rb') as handle:
        content = select_chemical_system(handle.read(), dataset.source, chemsys.value)
    name = subsystem_filename(chemsys.value, dataset.source)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / name
        path.write_bytes(content)
        selection = MliapDatasetData(path, kind='entries', credit=dataset.credit)
    return describe_dataset(selection, parse_reference_file(content, name))


def import_elemental_references(path: str | Path) -> tuple[MliapDatasetData, bool]:
    """Store a file of elemental reference entries (MP's format) once; returns (node, created)."""
    from .thermo import read_elemental_references

    path = Path(path)
    digest = sha256_of_file(path)
    existing = MliapDatasetData.find(digest)
    if existing is not None:
        return existing, False
    node = MliapDatasetData(path, kind='elemental_references', sha256=digest)
    try:
        references = read_elemental_references(node)
    except Exception as exception:
        raise ValueError(f'{path.name} is not a dict of elemental ComputedEntry dicts: {exception}') from None
    node.base.attributes.set('n_entries', len(references))
    return node.store(), True


def import_entries(entries: list, filename: str, group_label: str, force: bool = False):
    """Import pymatgen ComputedStructureEntry objects (what mp-api returns) as the file ``filename`` would be.

    The entries are written as a gzipped JSON list first, so that the dataset node holds exactly what was imported.
    """
    import gzip
    import json
    import tempfile

    from monty.json import MontyEncoder

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / filename
        # mtime=0: the same entries give the same bytes, hence the same sha256, and a second fetch creates nothing.
        content = json.dumps([entry.as_dict() for entry in entries], cls=MontyEncoder)
        path.write_bytes(gzip.compress(content.encode(), mtime=0))
        return import_reference_file(path, group_label, force=force)


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
    """By dataset sha256, the ``structures`` or ``references`` each dataset's import created, by label.

    ``project='attributes'`` gives their attributes instead of the nodes: one query instead of one per node.
    """
    query = orm.QueryBuilder()
    query.append(MliapDatasetData, filters={'id': {'in': [d.pk for d in datasets]}}, project='attributes.sha256')
    query.append(
        orm.CalcFunctionNode,
        filters={'attributes.process_state': 'finished', 'attributes.process_label': 'import_dataset'},
        project='id',
    )
    imports = dict(query.all())
    outputs = outputs_of(imports.values(), namespace, project)
    return {dataset.sha256: outputs.get(imports.get(dataset.sha256), {}) for dataset in datasets}


def group_datasets(group: orm.Group) -> list[MliapDatasetData]:
    query = orm.QueryBuilder().append(orm.Group, filters={'id': group.pk}, tag='group')
    query.append(MliapDatasetData, with_group='group', filters={'attributes.kind': 'entries'})
    return query.all(flat=True)
