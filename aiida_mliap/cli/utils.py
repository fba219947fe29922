"""Helpers shared by the CLI commands: one way to launch, one way to find a model or a code."""

from __future__ import annotations

import time
from collections.abc import Callable

import click
from aiida import orm
from aiida.cmdline.utils import echo
from aiida.engine import ProcessBuilder
from aiida.engine.utils import loop_scope

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
    from ..science.entries import parse_chemsys

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
        with loop_scope(runner.loop):
            signum = run_until_interrupted(process, runner.loop)
    except BaseException as exception:  # a second Ctrl-C, or a crash: end what it started
        ended = end_process_tree(process.node, f'{type(exception).__name__} in the foreground launch')
        echo.echo_error(f'{process.node.process_label}<{process.node.pk}> killed ({type(exception).__name__}): {ended}')
        raise SystemExit(EXIT_FAILED) from None
    finally:
        for handle in pending:
            handle.cancel()
    node = process.node
    if signum is not None:
        echo.echo_error(f'{node.process_label}<{node.pk}> killed: {end_process_tree(node, signum)}')
        raise SystemExit(EXIT_FAILED)
    status = f'[{node.exit_status}] {node.exit_message or ""}'.strip()
    if node.is_finished_ok:
        echo.echo_success(f'{node.process_label}<{node.pk}> finished {status}')
    else:
        echo.echo_warning(f'{node.process_label}<{node.pk}> finished {status}')
    return node


def run_until_interrupted(process, loop) -> str | None:
    """Run ``process`` to its end, or until Ctrl-C (or SIGTERM): then stop the event loop between steps and return
    the signal's name; a second Ctrl-C interrupts at once. The caller ends the process tree from outside the loop.

    Neither aiida's own handler (it kills inside the signal handler, wherever the interpreter is: mid-commit it fails
    with "This session is in 'prepared' state") nor a kill from the loop (it reaches the top process only, without a
    broker) ends the jobs a foreground launch started.
    """
    import asyncio
    import signal

    from plumpy.greenback_bridge import ensure_portal, run_until_complete

    interrupted = loop.create_future()
    label, signals = f'{process.node.process_label}<{process.node.pk}>', []

    def on_signal(name: str) -> None:
        if not interrupted.done():
            echo.echo_warning(f'{name}: ending {label} and everything it started (again to interrupt at once)')
            interrupted.set_result(name)

    def handler(signum, _frame):
        # Only flag it: the handler runs between any two bytecodes of the main thread, and a database read here
        # (an expired node's pk) or a print can land inside the main thread's own, breaking its connection.
        if signals:  # the second: at once, wherever the loop is stuck
            raise KeyboardInterrupt
        signals.append(signum)
        loop.call_soon_threadsafe(on_signal, signal.Signals(signum).name)

    async def stepping() -> None:
        await ensure_portal()  # the process's steps run the scheduler's and transport's coroutines synchronously
        await process.step_until_terminated()

    async def first() -> str | None:
        task = asyncio.ensure_future(stepping())
        await asyncio.wait([task, interrupted], return_when=asyncio.FIRST_COMPLETED)
        if interrupted.done():
            loop.set_exception_handler(lambda *_: None)  # the abandoned steps' tasks end with the interpreter
            return interrupted.result()
        task.result()  # the process's own exception, if it raised one
        return None

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:  # and a signal never cuts a system call (a database round trip) short
        signal.siginterrupt(signum, False)
    try:
        return run_until_complete(loop, first())
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def end_process_tree(root: orm.ProcessNode, reason: str) -> str:
    """Kill the scheduler job of every unfinished calculation below ``root`` and mark every unfinished process of
    the tree killed. A foreground launch runs without a broker: aiida's own kill reaches the top process only, and
    its children would stay 'Waiting' with their runners computing on, beyond the reach of `verdi process kill`."""
    from aiida.common.exceptions import RemoteOperationError
    from aiida.engine.daemon.execmanager import kill_calculation
    from plumpy.process_states import ProcessState

    tree, todo = [], [root]
    while todo:
        node = todo.pop()
        tree.append(node)
        todo.extend(node.called)
    open_nodes = [node for node in tree if not node.is_sealed and not node.is_terminated]
    jobs, problems = 0, []
    for calc in (node for node in open_nodes if isinstance(node, orm.CalcJobNode) and node.get_job_id()):
        try:
            with calc.get_authinfo().get_transport() as transport:
                kill_calculation(calc, transport)
            jobs += 1
        except (RemoteOperationError, OSError) as exception:
            problems.append(f'job {calc.get_job_id()} of {calc.pk}: {exception}')
    for node in reversed(open_nodes):  # children before parents
        node.set_process_state(ProcessState.KILLED)
        node.set_process_status(f'killed: {reason}')
        node.seal()
    if not open_nodes:
        return 'every process it started has ended'
    text = f'{len(open_nodes)} unfinished processes marked killed, {jobs} scheduler jobs ended'
    return text + (f'; could not end {", ".join(problems)}: end them by hand' if problems else '')


# Shell exit statuses of the commands that run or inspect a process (AiiDA's own exit statuses exceed 255).
EXIT_FAILED, EXIT_NOT_OK = 1, 3  # excepted or killed; finished with a non-zero exit status (printed)


def exit_for(node: orm.ProcessNode) -> None:
    """End the command with a non-zero shell status when ``node`` ended badly, so that scripts see it."""
    if node.is_finished_ok or not node.is_terminated:
        return
    raise SystemExit(EXIT_NOT_OK if node.is_finished else EXIT_FAILED)


def resolve_model(identifier: str) -> MliapModelData:
    """``MliapModelData.resolve`` for the command line: its errors as click's, a registration reported."""
    from ..frameworks import bundled_models

    registered = bool(orm.QueryBuilder().append(MliapModelData, filters={'attributes.name': identifier}).count())
    try:
        node = MliapModelData.resolve(identifier)
    except ValueError as exception:
        raise click.BadParameter(str(exception)) from None
    if identifier in bundled_models() and not registered:
        echo.echo_report(f'registered bundled model {identifier} as {node.pk}')
    return node


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
    """The headline error table (``science.metrics.headline_table``) for the terminal."""
    from tabulate import tabulate

    from ..science.metrics import as_percent

    return tabulate(as_percent(headline), headers='keys', showindex=False, floatfmt='.1f')


def dft_extra_missing(exception: ImportError) -> click.ClickException:
    """The error for a DFT command without aiida-quantumespresso and aiida-pseudo installed."""
    return click.ClickException(f'{exception}: install the extra, `pip install aiida-mliap[dft]`')
