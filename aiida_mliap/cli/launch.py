"""``aiida-mliap launch``: run the MLIAP CalcJob on structures from a group or by pk."""

from __future__ import annotations

import click
from aiida.cmdline.params import arguments, options, types
from aiida.cmdline.utils import decorators, echo

from ..contract.parameters import DEFAULTS, OPTIMIZERS, RUNNER_TASKS
from . import cmd_root
from .utils import CODES, DAEMON, POSITIVE, exit_for, launch_process, resolve_codes, resolve_model


@cmd_root.group('launch')
def cmd_launch():
    """Launch calculations."""


@cmd_launch.command('relax')
@click.option('--model', 'model_id', required=True, help='Model name, sha256 or pk (see `aiida-mliap model list`).')
@CODES
@options.GROUP(help='Group whose StructureData to evaluate.')
@click.option('-S', '--structure', 'structures', multiple=True, type=types.DataParamType(), help='Structure pk/uuid.')
@click.option('--limit', type=POSITIVE, help='Take only the first LIMIT structures (ordered by pk).')
@click.option('--task', type=click.Choice(RUNNER_TASKS), default=DEFAULTS['task'], show_default=True)
@click.option(
    '--fmax',
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS['fmax'],
    show_default=True,
    help='Force criterion, eV/Å.',
)
@click.option('--max-steps', type=POSITIVE, default=DEFAULTS['max_steps'], show_default=True)
@click.option('--optimizer', type=click.Choice(OPTIMIZERS), default=DEFAULTS['optimizer'], show_default=True)
@click.option('--fix-symmetry', is_flag=True, help='Keep the space group during relaxation (ASE FixSymmetry).')
@click.option('--fixed-cell', is_flag=True, help='Relax positions only.')
@click.option('--device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True)
@DAEMON
@decorators.with_dbenv()
def launch_relax(
    model_id,
    code_values,
    group,
    structures,
    limit,
    task,
    fmax,
    max_steps,
    optimizer,
    fix_symmetry,
    fixed_cell,
    device,
    daemon,
):
    """Relax (or single-point with --task static) structures with one model in one MliapCalculation."""
    from aiida import orm

    from ..calculations.mliap import get_builder_for

    chosen = list(structures)
    if group is not None:
        query = orm.QueryBuilder().append(orm.Group, filters={'id': group.pk}, tag='group')
        query.append(orm.StructureData, with_group='group').order_by({orm.StructureData: {'id': 'asc'}})
        chosen.extend(query.all(flat=True))
    if not chosen:
        raise click.UsageError('give structures with --group or --structure')
    chosen = chosen[:limit] if limit is not None else chosen
    parameters = {
        'task': task,
        'fmax': fmax,
        'max_steps': max_steps,
        'optimizer': optimizer,
        'fix_symmetry': fix_symmetry,
        'relax_cell': not fixed_cell,
        'device': device,
    }
    try:
        model = resolve_model(model_id)
        builder = get_builder_for(resolve_codes(code_values, {'model': model})['model'], model, chosen, parameters)
    except ValueError as exception:
        raise click.UsageError(str(exception)) from exception
    echo.echo_report(f'{len(chosen)} structures, task {task}, model {builder.model.name}')
    node = launch_process(builder, daemon)
    if not daemon:
        echo.echo(f'outputs: verdi calcjob outputls {node.pk}; results table: aiida-mliap show {node.pk}')
        exit_for(node)


@cmd_root.command('show')
@arguments.CALCULATION()
@decorators.with_dbenv()
def show(calculation):
    """Table of the per-structure results of an MliapCalculation."""
    from tabulate import tabulate

    from ..analysis.calcjob import results_table

    table = results_table(calculation)
    echo.echo(tabulate(table, headers='keys', floatfmt='.4f', showindex=False))
    if calculation.is_terminated and not calculation.is_finished_ok:  # scripts see a failed one, as for `launch`
        echo.echo_warning(f'{calculation.process_label}<{calculation.pk}> {calculation.process_state.value} '
                          f'[{calculation.exit_status}] {calculation.exit_message or ""}'.strip())  # fmt: skip
        exit_for(calculation)
