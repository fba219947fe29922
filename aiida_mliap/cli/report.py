"""``aiida-mliap report`` and ``aiida-mliap export``: the study's tables and figures, and the archive to share."""

from __future__ import annotations

from pathlib import Path

import click
from aiida.cmdline.utils import decorators, echo

from . import cmd_root
from .utils import headline_text


@cmd_root.command('report')
@click.argument('source')
@click.option('-o', '--output', 'directory', type=click.Path(file_okay=False, path_type=Path), default='report',
              show_default=True, help='Folder for report.html, results.csv, metrics.json and figures/.')  # fmt: skip
@click.option('--softening', 'softening_pk', type=int,
              help='pk of a softening work chain (`benchmark softening`) of the same models: its section, '
                   'metrics.json `softening_forces`, softening_pairs.csv.')  # fmt: skip
@decorators.with_dbenv()
def cmd_report(source, directory, softening_pk):
    """Report on SOURCE: a dataset group, a results group (label or pk) or a benchmark work chain (pk)."""
    from aiida import orm

    from ..analysis.report import write_report
    from ..analysis.results import load_results, resolve_source
    from ..science.metrics import headline_table

    try:
        resolved = resolve_source(source)
    except ValueError as exception:
        raise click.BadParameter(str(exception), param_hint='SOURCE') from None
    name = f'group {resolved.label}' if isinstance(resolved, orm.Group) else f'{resolved.process_label}<{resolved.pk}>'
    echo.echo_report(f'reporting on {name} (pk {resolved.pk})')
    softening = None if softening_pk is None else _softening(softening_pk)
    table = load_results(resolved)
    if table.empty:
        raise click.ClickException(f'{name}: no results yet (no finished compute_thermodynamics behind it)')
    paths, document = write_report(table, directory, title=f'aiida-mliap report: {name}', softening=softening)
    echo.echo(headline_text(headline_table(table, document['metrics'])))
    echo.echo_success(f'{len(table)} rows: ' + ', '.join(str(path) for path in paths.values()))


def _softening(pk: int):
    """(record, compared pairs) of a softening measurement, or a one-line error."""
    from aiida import orm

    from ..analysis.softening import comparison_of, load_force_pairs

    try:
        node = orm.load_node(pk)
        record = comparison_of(node).outputs.result.get_dict()
    except Exception as exception:
        raise click.BadParameter(str(exception), param_hint='--softening') from None
    return record, load_force_pairs(node)


@cmd_root.command('export')
@click.argument('group_label')
@click.option('-o', '--output', 'filename', type=click.Path(dir_okay=False, path_type=Path), required=True,
              help='The archive to write (FILE.aiida).')  # fmt: skip
@click.option('-f', '--force', is_flag=True, help='Overwrite an existing file.')
@decorators.with_dbenv()
def cmd_export(group_label, filename, force):
    """Archive a dataset group with everything benchmarks made of it: results groups, work chains, models.

    Import it elsewhere with `verdi archive import FILE`; `aiida-mliap report GROUP_LABEL` then works there.
    """
    from ..analysis.archive import export_benchmark

    try:
        counts = export_benchmark(group_label, filename, overwrite=force)
    except (ValueError, FileExistsError) as exception:
        raise click.ClickException(str(exception)) from None
    echo.echo_success(f'wrote {filename}: ' + ', '.join(f'{count} {kind}' for kind, count in counts.items()))
