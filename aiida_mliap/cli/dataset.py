"""``aiida-mliap dataset``: import reference data (file or Materials Project API) and see what is loaded."""

from __future__ import annotations

import os
from pathlib import Path

import click
from aiida.cmdline.params import arguments
from aiida.cmdline.utils import decorators, echo

from . import cmd_root
from .utils import chemical_system, non_blank


@cmd_root.group('dataset')
def cmd_dataset():
    """Reference datasets (DFT entries) as groups of structures and reference nodes."""


@cmd_dataset.command('import')
@click.argument('files', nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option('-G', '--group', 'group_label', required=True, callback=non_blank,
              help='Group that receives the dataset.')  # fmt: skip
@click.option('--chemsys', callback=chemical_system, help='Import only the entries within this chemical system (e.g. '
              'Li-Fe-P): its hull is complete when the file is.')  # fmt: skip
@click.option('--release', callback=non_blank, help='Label of the MP release the file comes from (e.g. 2023-02-07), '
              'stored on the dataset; a group refuses a file whose label differs from one it holds.')  # fmt: skip
@click.option('--force', is_flag=True, help='Import even if the file disagrees with the group (another MP release).')
@decorators.with_dbenv()
def dataset_import(files, group_label, chemsys, release, force):
    """Import FILES: each a JSON(.gz) list of pymatgen ComputedStructureEntry dicts, or extxyz with energies in info.

    Every entry becomes a StructureData (the DFT structure, labelled by its MP id) and a reference node (raw
    energy, MP2020 correction, run type, U values, oxidation states, the source's Ehull and Ef). A file imported
    before creates nothing new. With --chemsys, the selection is a dataset of its own, made from the file's node by
    the `select_subsystem` calcfunction.

    A group is one benchmark over the union of its files: import several files into one group (one command or
    several). Entries shared by files are one structure. A file that disagrees with the group on a shared entry
    (energy, correction or structure: another MP release) or whose --release differs is refused, naming the entries.
    """
    from ..calculations.dataset import import_reference_files

    try:
        imported = import_reference_files(files, group_label, force=force, chemsys=chemsys, release=release)
    except ValueError as exception:  # ImportRefusedError, DatasetError: nothing was stored
        raise click.ClickException(str(exception)) from exception
    for group, dataset, created in imported:
        _report_import(group, dataset, created)


def _report_import(group, dataset, created) -> None:
    if created:
        echo.echo_success(
            f'imported {dataset.base.attributes.get("n_entries")} entries of {dataset.source} '
            f'into group `{group.label}` (dataset pk {dataset.pk}, sha256 {dataset.sha256[:12]}..., '
            f'release {dataset.base.attributes.get("release")})'
        )
    else:
        echo.echo_report(
            f'{dataset.source} was imported before (dataset pk {dataset.pk}): nothing new created; '
            f'group `{group.label}` holds its nodes'
        )
    echo.echo(f'Credit: {dataset.credit}')


@cmd_dataset.command('import-refs')
@click.argument('file', type=click.Path(exists=True, dir_okay=False, path_type=Path))
@decorators.with_dbenv()
def dataset_import_refs(file):
    """Import a file of elemental reference entries (MP's format: symbol -> ComputedEntry dict)."""
    from ..calculations.dataset import import_elemental_references

    try:
        node, created = import_elemental_references(file)
    except ValueError as exception:
        raise click.ClickException(str(exception)) from None
    if created:
        count = node.base.attributes.get('n_entries')
        echo.echo_success(f'imported {count} elemental references from {file.name}: pk {node.pk}')
    else:
        echo.echo_report(f'{file.name} was imported before: pk {node.pk}')


@cmd_dataset.command('fetch-mp')
@click.argument('chemsys')
@click.option('-G', '--group', 'group_label', required=True, help='Group that receives the dataset.')
@decorators.with_dbenv()
def dataset_fetch_mp(chemsys, group_label):
    """Fetch every GGA/GGA+U entry of CHEMSYS (e.g. Li-Fe-P-O) from the Materials Project and import it.

    Needs the `mp-api` package and MP_API_KEY in the environment; the key never enters the provenance.
    """
    key = os.environ.get('MP_API_KEY')
    if not key:
        raise click.ClickException('set MP_API_KEY in the environment (your key from materialsproject.org)')
    try:
        from mp_api.client import MPRester
    except ImportError:
        raise click.ClickException(
            'fetching from the Materials Project needs mp-api: pip install "aiida-mliap[mp]"'
        ) from None
    try:
        with MPRester(key) as rester:
            entries = rester.get_entries_in_chemsys(chemsys, additional_criteria={'thermo_types': ['GGA_GGA+U']})
    except Exception as exception:
        raise click.ClickException(f'could not reach the Materials Project (offline?): {exception}') from None
    from ..calculations.dataset import import_entries

    group, dataset, _ = import_entries(entries, f'{chemsys}.json.gz', group_label)
    echo.echo_success(f'imported {dataset.base.attributes.get("n_entries")} entries of {chemsys} into `{group.label}`')


@cmd_dataset.command('list')
@decorators.with_dbenv()
def dataset_list():
    """Imported datasets with their groups, entry counts and releases."""
    from aiida import orm
    from tabulate import tabulate

    from ..data.dataset import MliapDatasetData

    query = orm.QueryBuilder().append(
        MliapDatasetData,
        project=[
            'id',
            'attributes.source',
            'attributes.kind',
            'attributes.n_entries',
            'attributes.release',
            'attributes.sha256',
        ],
    )
    # A second query: aiida's outer join through the group table drops the datasets that are in no group.
    in_groups = orm.QueryBuilder().append(MliapDatasetData, project='id', tag='dataset')
    in_groups.append(orm.Group, with_node='dataset', project='label')
    groups: dict[int, list[str]] = {}
    for pk, label in in_groups.all():
        groups.setdefault(pk, []).append(label)
    rows = [
        [pk, source, kind, n, release, sha[:12], ', '.join(sorted(groups.get(pk, []))) or '(none)']
        for pk, source, kind, n, release, sha in query.order_by({MliapDatasetData: 'id'}).all()
    ]
    if not rows:
        echo.echo_report('no datasets: import one with `aiida-mliap dataset import FILE --group LABEL`')
        return
    echo.echo(tabulate(rows, headers=['pk', 'source', 'kind', 'entries', 'release', 'sha256', 'group']))


@cmd_dataset.command('show')
@arguments.GROUP()
@decorators.with_dbenv()
def dataset_show(group):
    """Summary of a dataset group: entries by chemical system and run type, hull and credit."""
    from collections import Counter

    from ..calculations.dataset import group_datasets, imported_nodes

    datasets = group_datasets(group)
    if not datasets:
        raise click.ClickException(f'group `{group.label}` holds no dataset: import one with `dataset import`')
    references = imported_nodes(datasets, 'references', project='attributes')
    for dataset in datasets:
        entries = list(references[dataset.sha256].values())
        echo.echo(f'{dataset.source}: {len(entries)} entries, release {dataset.base.attributes.get("release")}')
        echo.echo(f'  chemical systems: {len({r["chemsys"] for r in entries})}, elements: '
                  f'{"-".join(dataset.base.attributes.get("chemsys") or [])}')  # fmt: skip
        echo.echo(f'  run types: {dict(Counter(r["run_type"] for r in entries))}')
        echo.echo(f'  stable (source Ehull = 0): {sum(1 for r in entries if r.get("e_above_hull") == 0)}')
        echo.echo(f'  credit: {dataset.credit}')
    unique = {label for by_label in references.values() for label in by_label}
    echo.echo(f'group `{group.label}`: {len(datasets)} datasets, {sum(map(len, references.values()))} entries, '
              f'{len(unique)} unique: one benchmark, one hull')  # fmt: skip
