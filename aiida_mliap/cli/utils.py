"""Helpers shared by the CLI commands: one way to launch, one way to find a model or a code."""

from __future__ import annotations

import time
from collections.abc import Callable

import click
from aiida import orm
from aiida.cmdline.utils import echo
from aiida.engine import ProcessBuilder

from ..data.model import MliapModelData

DEFAULT_CODE_LABEL = 'aiida-mliap-run'

CODES = click.option(
    '--code',
    'code_values',
    multiple=True,
    metavar='[MODEL=]CODE',
    help='The aiida-mliap-run Code: MODEL=CODE for one model (name, sha256 or pk), CODE for the models whose framework '
    f"has no environment of its own (`setup env`). Default: each framework's environment, else {DEFAULT_CODE_LABEL}.",
)

POSITIVE = click.IntRange(min=1)  # counts and limits: refused at parse time, before anything is stored


def non_blank(context: click.Context, parameter: click.Parameter, value: str | None) -> str | None:
    """A label or name given as an empty or blank string is a mistake (a shell variable that was not set)."""
    if value is not None and not value.strip():
        raise click.BadParameter('must not be blank')
    return value


def chemical_system(context: click.Context, parameter: click.Parameter, value: str | None) -> str | None:
    """``Li-Fe-P``: element symbols joined by dashes, checked before anything is read or stored."""
    from ..parsers.entries import parse_chemsys

    if value is not None:
        try:
            parse_chemsys(value)
        except ValueError as exception:
            raise click.BadParameter(str(exception)) from None
    return value


DAEMON = click.option(
    '-d', '--daemon', is_flag=True, help='Submit to the daemon and return; otherwise run here until finished.'
)


def launch_process(
    builder: ProcessBuilder,
    daemon: bool,
    progress: Callable[[orm.ProcessNode], str] | None = None,
    every: float = 30.0,
) -> orm.ProcessNode:
    """Submit to the daemon with ``daemon``, otherwise run in this interpreter until it finishes, printing
    ``progress(node)`` every ``every`` seconds (a callback on the runner's own event loop: same thread, same
    database session), so that a long foreground run never looks hung."""
    from aiida.engine import submit
    from aiida.manage import get_manager

    if daemon:
        node = submit(builder)
        echo.echo_success(f'submitted {node.process_label}<{node.pk}> to the daemon')
        return node
    # A local runner without a broker connection, as aiida.engine.run makes: no broker (or daemon) needs to run.
    runner = get_manager().create_runner(communicator=None)
    process = runner.instantiate_process(builder)
    echo.echo_report(f'running {process.node.process_label}<{process.node.pk}> here (Ctrl-C kills it)')
    pending = []

    def report() -> None:
        try:
            echo.echo(f'[{time.strftime("%H:%M:%S")}] {progress(process.node)}')
        except Exception as exception:  # progress is a courtesy: never let it stop the run
            echo.echo_warning(f'progress unavailable: {exception}')
        pending.append(runner.loop.call_later(every, report))

    if progress is not None:
        pending.append(runner.loop.call_later(every, report))
    try:
        _, node = runner.run_get_node(process)
    finally:
        for handle in pending:
            handle.cancel()
    status = f'[{node.exit_status}] {node.exit_message or ""}'.strip()
    if node.is_finished_ok:
        echo.echo_success(f'{node.process_label}<{node.pk}> finished {status}')
    else:
        echo.echo_warning(f'{node.process_label}<{node.pk}> finished {status}')
    return node


# Shell exit statuses of the commands that run or inspect a process (AiiDA's own exit statuses exceed 255).
EXIT_FAILED, EXIT_NOT_OK = 1, 3  # excepted or killed; finished with a non-zero exit status (printed)


def exit_for(node: orm.ProcessNode) -> None:
    """End the command with a non-zero shell status when ``node`` ended badly, so that scripts see it."""
    if node.is_finished_ok or not node.is_terminated:
        return
    raise SystemExit(EXIT_NOT_OK if node.is_finished else EXIT_FAILED)


def resolve_model(identifier: str) -> MliapModelData:
    """A model by name, sha256, pk or uuid; a bundled name is registered on first use."""
    from aiida.orm import QueryBuilder

    from ..frameworks import bundled_models

    for key in ('name', 'sha256'):
        found = QueryBuilder().append(MliapModelData, filters={f'attributes.{key}': identifier}).all(flat=True)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            choices = ', '.join(f'{m.pk} ({m.sha256[:12]})' for m in found)
            raise click.BadParameter(f'several models are called `{identifier}`: {choices}; give a pk or sha256')
    if identifier in bundled_models():
        try:
            node, _ = MliapModelData.from_bundled(identifier)
        except ValueError as exception:
            raise click.BadParameter(str(exception)) from None
        echo.echo_report(f'registered bundled model {identifier} as {node.pk}')
        return node
    try:
        node = orm.load_node(identifier)
    except Exception:
        node = None
    if isinstance(node, MliapModelData):
        return node
    raise click.BadParameter(f'no model `{identifier}`: register it with `aiida-mliap setup model`')


def resolve_codes(values: tuple[str, ...], models: dict[str, MliapModelData]) -> dict[str, orm.AbstractCode]:
    """The Code for each of ``models`` (same keys) from ``--code`` values (``environments.code_for``)."""
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from ..environments import code_for

    def load(label: str) -> orm.AbstractCode:
        try:
            return orm.load_code(label)
        except MultipleObjectsError:
            found = orm.QueryBuilder().append(orm.AbstractCode, filters={'label': label}, project='*').all(flat=True)
            names = ', '.join(sorted(code.full_label for code in found))
            raise click.BadParameter(
                f'several codes are labelled `{label}` ({names}): choose one with --code LABEL@COMPUTER',
                param_hint='--code',
            ) from None
        except (NotExistent, ValueError) as exception:
            raise click.BadParameter(f'no code `{label}`: {exception}', param_hint='--code') from None

    default, explicit = None, {}
    for value in values:
        key, separator, label = value.rpartition('=')
        if separator:
            explicit[key] = load(label)
        else:
            default = load(label)
    known = {str(key) for model in models.values() for key in (model.name, model.sha256, model.pk)}
    unknown = sorted(set(explicit) - known)
    if unknown:
        raise click.BadParameter(f'--code for models not in this launch: {", ".join(unknown)}', param_hint='--code')
    chosen = {}
    for key, model in models.items():
        code = code_for(model, default, explicit)
        chosen[key] = code if code is not None else (default := load(DEFAULT_CODE_LABEL))
    return chosen


def headline_text(headline) -> str:
    """The headline error table (``analysis.metrics.headline_table``) for the terminal."""
    from tabulate import tabulate

    from ..analysis.metrics import as_percent

    return tabulate(as_percent(headline), headers='keys', showindex=False, floatfmt='.1f')


def dft_extra_missing(exception: ImportError) -> click.ClickException:
    """The error for a DFT command without aiida-quantumespresso and aiida-pseudo installed."""
    return click.ClickException(f'{exception}: install the extra, `pip install aiida-mliap[dft]`')
