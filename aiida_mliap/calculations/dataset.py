"""Import a reference dataset: the file as a node, one calcfunction that turns it into structures and references."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiida import orm
from aiida.engine import calcfunction

from ..contract.hashing import sha256_of_file
from ..data.dataset import MP_CREDIT, MliapDatasetData
from ..data.reference import MliapReferenceData
from ..data.structure import structure_data
from ..provenance.links import attach_outputs, outputs_of
from ..science.entries import (
    ReferenceRecord,
    entry_disagreements,
    parse_chemsys,
    read_dataset,
    select_chemical_system,
    structure_disagreement,
)


@functools.lru_cache(maxsize=4)
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
    path: str | Path,
    group_label: str,
    force: bool = False,
    credit: str = MP_CREDIT,
    chemsys: str | None = None,
    release: str | None = None,
):
    """Import ``path`` (or only its entries within ``chemsys``) into ``group_label``; returns (group, dataset, created).

    A group is one benchmark over the union of its files: entries shared by several files (same MP id) are one
    structure, and a file that disagrees with the group on a shared entry (energy, correction or structure), or
    whose explicit ``release`` label differs from one already in the group, is refused before anything is stored
    (``force`` skips the check). A file imported before (same sha256) creates nothing: its nodes join the group.
    A selection is the output of ``select_subsystem`` on the whole file's node.
    """
    path = Path(path)
    content = whole = path.read_bytes()
    name = path.name
    if chemsys:
        chemsys = '-'.join(sorted(parse_chemsys(chemsys)))
        content, name = select_chemical_system(content, name, chemsys), subsystem_filename(chemsys, name)
    digest = hashlib.sha256(content).hexdigest()
    # Parsed before anything is stored, so that every problem surfaces first; the calcfunction reuses the parse.
    records = parse_reference_file(content, name)
    existing = MliapDatasetData.find(digest)
    if existing is not None:
        release = existing.base.attributes.get('release')
    if not force:
        problems = group_conflicts(group_label, records, release)
        if problems:
            shown = '\n  '.join(problems[:10]) + (
                f'\n  ... and {len(problems) - 10} more' if len(problems) > 10 else ''
            )
            raise ImportRefusedError(
                f'{name} cannot join group `{group_label}`: {len(problems)} disagreement(s), nothing imported:\n'
                f'  {shown}\nFiles that disagree on a shared entry come from different MP releases, whose energies '
                'and corrections differ, and one hull must not mix them. Import into another group, or pass --force '
                'if you know they are compatible.'
            )
    if existing is not None and was_imported(existing):
        group, _ = orm.Group.collection.get_or_create(group_label)
        group.add_nodes(_imported_nodes(existing))
        return group, existing, False

    if existing is not None:
        dataset = existing  # stored as the source of a selection (or left by an interrupted import), never imported
    elif chemsys:
        source = MliapDatasetData.find(hashlib.sha256(whole).hexdigest())
        if source is None:
            source = MliapDatasetData(path, kind='entries', credit=credit)
            describe_dataset(source, parse_reference_file(whole, path.name), release).store()
        dataset = select_subsystem(source, orm.Str(chemsys))
    else:
        dataset = describe_dataset(
            MliapDatasetData(path, kind='entries', credit=credit, sha256=digest), records, release
        )
        dataset.store()
    import_dataset(dataset)
    group, _ = orm.Group.collection.get_or_create(group_label)
    group.add_nodes(_imported_nodes(dataset))
    return group, dataset, True


def import_reference_files(
    paths: list[str | Path], group_label: str, force: bool = False, chemsys: str | None = None, **kwargs
) -> list[tuple[orm.Group, MliapDatasetData, bool]]:
    """Import several files into one group; the files are checked against each other first, so that a refusal
    leaves nothing of any of them stored. Shows a progress bar on a terminal."""
    import click

    if not force and len(paths) > 1:
        seen: dict[str, dict[str, Any]] = {}
        for path in paths:
            content = Path(path).read_bytes()
            name = Path(path).name
            if chemsys:
                content = select_chemical_system(content, name, chemsys)
            records = {r.label: r.attributes for r in parse_reference_file(content, name)}
            problems = entry_disagreements(records, seen, 'the files before it')
            if problems:
                raise ImportRefusedError(
                    f'{name} disagrees with the files before it on {len(problems)} shared entries, nothing '
                    f'imported: {"; ".join(problems[:10])}. They come from different MP releases.'
                )
            seen.update(records)
    imported = []
    with click.progressbar(paths, label='importing', item_show_func=lambda p: p and Path(p).name) as bar:
        for path in bar:
            imported.append(import_reference_file(path, group_label, force=force, chemsys=chemsys, **kwargs))
    return imported


def group_conflicts(group_label: str, records: tuple[ReferenceRecord, ...], release: str | None) -> list[str]:
    """Why ``records`` cannot share a hull with the datasets already in the group (empty when they can).

    The evidence: an explicit release label that differs, and shared entries (same MP id) whose energy, correction
    or structure differ. Files without shared entries and without labels share no hull facet to disagree on.
    """
    found = orm.QueryBuilder().append(orm.Group, filters={'label': group_label}).all(flat=True)
    datasets = group_datasets(found[0]) if found else []
    if not datasets:
        return []
    problems = [
        f'release `{release}` here, `{dataset.base.attributes.get("release")}` in {dataset.source}'
        for dataset in datasets
        if release and dataset.base.attributes.get('release') and dataset.base.attributes.get('release') != release
    ]
    new = {record.label: record for record in records}
    references = union_of_datasets(datasets, 'references', project='attributes')
    problems += entry_disagreements({label: r.attributes for label, r in new.items()}, references, f'`{group_label}`')
    shared = sorted(set(new) & set(references))
    structures = union_of_datasets(datasets, 'structures', project='attributes') if shared else {}
    for label in shared:
        old = structures[label]
        symbols = {kind['name']: kind['symbols'][0] for kind in old['kinds']}
        reason = structure_disagreement(
            new[label].structure,
            old['cell'],
            [site['position'] for site in old['sites']],
            [symbols[site['kind_name']] for site in old['sites']],
        )
        if reason:
            problems.append(f'{new[label].attributes["mp_id"]}: {reason} than in `{group_label}`')
    return problems


def union_of_datasets(
    datasets: list[MliapDatasetData], namespace: str, project: str = '*', labels: Iterable[str] | None = None
) -> dict[str, Any]:
    """The ``structures`` or ``references`` of several datasets by label (only ``labels``, if given): an entry shared
    by files is one."""
    from .tables import latest_by_label

    by_dataset = imported_nodes(datasets, namespace, project=project, labels=labels)
    return latest_by_label(by_dataset[dataset.sha256] for dataset in reversed(datasets))  # the first file wins


def subsystem_filename(chemsys: str, filename: str) -> str:
    return f'{chemsys}_from_{filename.removesuffix(".gz")}.gz'


def describe_dataset(
    dataset: MliapDatasetData, records: tuple[ReferenceRecord, ...], release: str | None = None
) -> MliapDatasetData:
    """Entry count, the release label the user gave (or None) and elements as attributes, so that listing datasets
    needs no file read."""
    dataset.base.attributes.set('n_entries', len(records))
    dataset.base.attributes.set('release', release)
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
    return describe_dataset(selection, parse_reference_file(content, name), dataset.base.attributes.get('release'))


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


def was_imported(dataset: MliapDatasetData) -> bool:
    """Whether an ``import_dataset`` of ``dataset`` finished: a file's node also exists, never imported itself, when
    only a selection of it was."""
    query = orm.QueryBuilder().append(MliapDatasetData, filters={'id': dataset.pk}, tag='dataset')
    query.append(
        orm.CalcFunctionNode,
        with_incoming='dataset',
        filters={'attributes.process_state': 'finished', 'attributes.process_label': 'import_dataset'},
    )
    return query.count() > 0


def _imported_nodes(dataset: MliapDatasetData) -> list[orm.Node]:
    """The dataset node and every structure and reference its import created."""
    created = [
        node
        for namespace in ('structures', 'references')
        for node in imported_nodes([dataset], namespace)[dataset.sha256].values()
    ]
    return [dataset, *created]


def imported_nodes(
    datasets: list[MliapDatasetData], namespace: str, project: str = '*', labels: Iterable[str] | None = None
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
    outputs = outputs_of(imports.values(), namespace, project, labels)
    return {dataset.sha256: outputs.get(imports.get(dataset.sha256), {}) for dataset in datasets}


def group_datasets(group: orm.Group) -> list[MliapDatasetData]:
    query = orm.QueryBuilder().append(orm.Group, filters={'id': group.pk}, tag='group')
    query.append(MliapDatasetData, with_group='group', filters={'attributes.kind': 'entries'})
    return query.all(flat=True)
