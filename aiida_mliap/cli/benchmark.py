"""``aiida-mliap benchmark``: launch a whole benchmark over a dataset group, and follow it."""

from __future__ import annotations

import click
from aiida.cmdline.params import arguments
from aiida.cmdline.utils import decorators, echo

from ..protocols import protocol_names
from ..science.dft_check import DFT_DEFAULTS
from ..science.softening import KPOINTS_DISTANCE as SOFTENING_KPOINTS
from ..science.softening import MAX_ATOMS, PERTURBATIONS
from . import cmd_root
from .utils import (
    CODES,
    DAEMON,
    POSITIVE,
    dft_extra_missing,
    exit_for,
    headline_text,
    launch_process,
    resolve_codes,
    resolve_model,
)


@cmd_root.group('benchmark')
def cmd_benchmark():
    """Benchmarks: models x tasks over every structure of a dataset group."""


@cmd_benchmark.command('launch')
@click.option('-G', '--group', 'group_label', required=True, help='Dataset group (from `dataset import`).')
@click.option('--model', 'model_ids', multiple=True, required=True, help='Model name, sha256 or pk; repeatable.')
@click.option('--task', 'tasks', multiple=True, type=click.Choice(['static', 'relax', 'relax_fixsym']),
              default=['static'], show_default=True, help='Repeatable.')  # fmt: skip
@click.option(
    '--protocol',
    type=click.Choice(protocol_names()),
    default='balanced',
    show_default=True,
    help='matbench: exactly Matbench Discovery (no restarts, MP elemental references).',
)
@click.option(
    '--elemental-references',
    'references',
    help='Fixed elemental references for formation energies: a '
    'file (imported on first use), or the source name or pk of one from `dataset import-refs`.',
)
@CODES
@click.option('--batch-size', type=POSITIVE, default=100, show_default=True, help='Structures per calculation.')
@click.option('--max-concurrent', type=POSITIVE, default=4, show_default=True, help='Batches in flight.')
@click.option('--max-steps', type=POSITIVE, help='Override the protocol: relaxation step limit.')
@click.option(
    '--hull-chunk-size',
    type=POSITIVE,
    default=20000,
    show_default=True,
    help='Structures per thermodynamics call; larger sets run in chunks (same values, bounded inputs).',
)
@click.option('--max-atoms', type=POSITIVE, help='Evaluate only structures of at most this many atoms (all stay in the '
              'hulls\' references).')  # fmt: skip
@click.option('--device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True)
@click.option('--progress-every', type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help='Seconds between progress lines of a foreground run.')  # fmt: skip
@DAEMON
@decorators.with_dbenv()
def benchmark_launch(group_label, model_ids, tasks, protocol, references, code_values, batch_size, max_concurrent,
                     max_steps, hull_chunk_size, max_atoms, device, progress_every, daemon):  # fmt: skip
    """Run every structure of GROUP through each model and task, then Ef, Ehull (both hulls) and symmetry."""
    from aiida import orm

    from ..contract.labels import link_label
    from ..workchains.benchmark import MliapBenchmarkWorkChain

    try:
        group = orm.load_group(group_label)
    except Exception as exception:
        raise click.BadParameter(f'no group `{group_label}`: {exception}', param_hint='--group') from None
    models = {link_label(model.name): model for model in map(resolve_model, model_ids)}
    parameters = {'device': device, **({'max_steps': max_steps} if max_steps is not None else {})}
    codes = resolve_codes(code_values, models)
    overrides = {'parameters': parameters, 'batch_size': batch_size, 'max_concurrent': max_concurrent, 'codes': codes,
                 'hull_chunk_size': hull_chunk_size}  # fmt: skip
    if max_atoms is not None:
        overrides['max_atoms'] = max_atoms
    if references:
        overrides['elemental_references'] = _elemental_references(references)
    try:
        builder = MliapBenchmarkWorkChain.get_builder_from_protocol(
            next(iter(codes.values())), models, group, protocol=protocol, tasks=list(tasks), overrides=overrides
        )
    except ValueError as exception:
        raise click.ClickException(str(exception)) from None
    echo.echo_report(f'benchmark of {", ".join(models)} on `{group.label}`: tasks {list(tasks)}, protocol {protocol}')
    for key, code in codes.items():
        echo.echo_report(f'  {key}: {models[key].framework} on {code.full_label}')
    node = launch_process(builder, daemon, progress=progress_text, every=progress_every)
    if daemon:
        echo.echo(f'follow it with: aiida-mliap benchmark status {node.pk}')
        return
    echo.echo(error_table(node))
    echo_accounting(node)
    exit_for(node)


@cmd_benchmark.command('dft-check')
@arguments.PROCESS()
@click.option('--model', 'model_id', help='Model name or sha256 (needed when the benchmark ran several).')
@click.option('--rule', 'rules', multiple=True, type=click.Choice(['symmetry_lowered', 'largest_ehull_error',
              'stability_flip']), help='Selection rule; repeatable (default: all three).')  # fmt: skip
@click.option('--label', 'labels', multiple=True, help='An MP id or structure label to check as well; repeatable.')
@click.option('--max-structures', type=POSITIVE, default=10, show_default=True)
@click.option('--max-atoms', type=POSITIVE, help='Only structures of at most this many atoms.')
@click.option('--pw', 'pw_label', default='pw@localhost', show_default=True, help='pw.x code (`setup dft`).')
@click.option('--family', default='pslibrary-1.0.0-PBE', show_default=True, help='Pseudopotential family.')
@click.option('--protocol', type=click.Choice(['fast', 'balanced', 'stringent']), default='fast', show_default=True,
              help="aiida-quantumespresso's PwBaseWorkChain protocol.")  # fmt: skip
@click.option(
    '--kpoints-distance',
    type=click.FloatRange(min=0, min_open=True),
    default=DFT_DEFAULTS['kpoints_distance'],
    show_default=True,
    help='k-point spacing (1/Å) of the first level; each geometry gets its own mesh.',
)
@click.option(
    '--tolerance',
    type=click.FloatRange(min=0, min_open=True),
    default=1000 * DFT_DEFAULTS['tolerance'],
    show_default=True,
    help='meV/atom: ΔE_geom is refined until a level changes it by less.',
)
@click.option(
    '--max-refinements',
    type=click.IntRange(min=0),
    default=DFT_DEFAULTS['max_refinements'],
    show_default=True,
    help='Denser levels at most; a difference not converged then is `unconverged`.',
)
@DAEMON
@decorators.with_dbenv()
def benchmark_dft_check(process, model_id, rules, labels, max_structures, max_atoms, pw_label, family, protocol,
                        kpoints_distance, tolerance, max_refinements, daemon):  # fmt: skip
    """pw.x at the model-relaxed and at the reference geometry of selected structures of a relaxation benchmark:
    ΔE_geom per structure, refined until converged, with its uncertainty (`load_results` columns dft_check_*; a
    section of the report)."""
    from aiida import orm

    from ..analysis.dft_check import dft_check_builder
    from ..science.dft_check import RULES

    try:
        from ..workchains.dft_check import MliapDftCheckWorkChain  # noqa: F401  (the `dft` extra)
    except ImportError as exception:
        raise dft_extra_missing(exception) from exception
    try:
        builder = dft_check_builder(
            process, _local_code(pw_label), family, model_id, tuple(rules or RULES), tuple(labels), max_structures,
            max_atoms, protocol,
        )  # fmt: skip
    except ValueError as exception:
        raise click.ClickException(str(exception)) from None
    builder.kpoints_distance = orm.Float(kpoints_distance)
    builder.tolerance = orm.Float(tolerance / 1000)
    builder.max_refinements = orm.Int(max_refinements)
    chosen = sorted(builder.model_structures)
    echo.echo_report(f'DFT check of {len(chosen)} structures: {", ".join(chosen)}')
    node = launch_process(builder, daemon)
    if not daemon:
        echo.echo(f'{node.process_label}<{node.pk}> finished [{node.exit_status}]; results: '
                  f'`aiida-mliap report` or load_results({process.pk}) columns dft_check_*')  # fmt: skip
        exit_for(node)


@cmd_benchmark.command('softening')
@click.option('-G', '--group', 'group_label', required=True, help='Dataset group whose entries are the parents.')
@click.option('--model', 'model_ids', multiple=True, required=True, help='Model name, sha256 or pk; repeatable.')
@CODES
@click.option('--label', 'labels', multiple=True, help='An MP id or structure label to use as a parent; repeatable.')
@click.option('--max-parents', type=POSITIVE, default=10, show_default=True)
@click.option('--max-atoms', type=POSITIVE, default=MAX_ATOMS, show_default=True, help='The DFT budget per cell.')
@click.option('--max-e-above-hull', type=click.FloatRange(min=0), default=0.0, show_default=True,
              help='eV/atom: parents on (or this close to) the hull, relaxed in DFT.')  # fmt: skip
@click.option('--rattle', multiple=True, type=click.FloatRange(min=0, min_open=True, max=0.5),
              help=f'Å; repeatable (default {PERTURBATIONS["rattle"]}).')  # fmt: skip
@click.option('--volume', multiple=True, type=click.FloatRange(min=-0.2, max=0.2),
              help=f'Relative volume change; repeatable (default {PERTURBATIONS["volume"]}).')  # fmt: skip
@click.option('--shear', multiple=True, type=click.FloatRange(min=-0.2, max=0.2),
              help=f'xy shear strain; repeatable (default {PERTURBATIONS["shear"]}).')  # fmt: skip
@click.option('--seed', type=click.IntRange(min=0), default=0, show_default=True, help='Seed of the rattles.')
@click.option('--pw', 'pw_label', default='pw@localhost', show_default=True, help='pw.x code (`setup dft`).')
@click.option('--family', default='pslibrary-1.0.0-PBE', show_default=True, help='Pseudopotential family.')
@click.option('--protocol', type=click.Choice(['fast', 'balanced', 'stringent']), default='fast', show_default=True,
              help="aiida-quantumespresso's PwBaseWorkChain protocol.")  # fmt: skip
@click.option('--kpoints-distance', type=click.FloatRange(min=0, min_open=True), default=SOFTENING_KPOINTS,
              show_default=True, help="k-point spacing (1/Å) of each parent's mesh.")  # fmt: skip
@click.option(
    '--spin/--no-spin',
    default=True,
    show_default=True,
    help="Spin-polarised SCFs from MP's initial moments; --no-spin for parents MP found non-magnetic.",
)
@click.option('--max-concurrent', type=POSITIVE, default=2, show_default=True, help='SCFs in flight at once.')
@click.option('--device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True)
@DAEMON
@decorators.with_dbenv()
def benchmark_softening(group_label, model_ids, code_values, labels, max_parents, max_atoms, max_e_above_hull,
                        rattle, volume, shear, seed, pw_label, family, protocol, kpoints_distance, spin,
                        max_concurrent, device, daemon):  # fmt: skip
    """Softening measured: pw.x and each model on seeded perturbations (rattles, strains) of parents from GROUP;
    per model the slope of its forces (and stresses, energy differences) on DFT's, with a bootstrap interval over
    parents."""
    from aiida import orm

    from ..contract.labels import link_label

    try:
        from ..analysis.softening import softening_builder  # the `dft` extra
    except ImportError as exception:
        raise dft_extra_missing(exception) from exception
    try:
        group = orm.load_group(group_label)
    except Exception as exception:
        raise click.BadParameter(f'no group `{group_label}`: {exception}', param_hint='--group') from None
    pw_code = _local_code(pw_label)
    models = {link_label(model.name): model for model in map(resolve_model, model_ids)}
    codes = resolve_codes(code_values, models)
    try:
        builder = softening_builder(group, models, codes, pw_code, family, tuple(labels), max_parents, max_atoms,
                                    max_e_above_hull, protocol)  # fmt: skip
    except ValueError as exception:
        raise click.ClickException(str(exception)) from None
    from ..workchains.softening import lacking_elements

    lacking = lacking_elements(models, dict(builder.parents))
    if lacking:
        raise click.ClickException(lacking)
    spec = {'rattle': list(rattle), 'volume': list(volume), 'shear': list(shear)}
    builder.perturbations = orm.Dict({**(spec if any(spec.values()) else PERTURBATIONS), 'seed': seed})
    builder.kpoints_distance = orm.Float(kpoints_distance)
    builder.spin = orm.Bool(spin)
    builder.max_concurrent = orm.Int(max_concurrent)
    builder.device = orm.Str(device)
    echo.echo_report(f'softening of {", ".join(models)}: parents {", ".join(sorted(builder.parents))}')
    node = launch_process(builder, daemon)
    if not daemon:
        echo.echo(f'{node.process_label}<{node.pk}> finished [{node.exit_status}]; '
                  f'aiida_mliap.analysis.softening.load_force_pairs({node.pk})')  # fmt: skip
        exit_for(node)


def _local_code(label: str):
    """A code by label; on this computer, its executable must exist (a missing pw.x is said now, not per SCF)."""
    from pathlib import Path

    from aiida import orm

    try:
        code = orm.load_code(label)
    except Exception as exception:
        raise click.BadParameter(
            f'no code `{label}` (`aiida-mliap setup dft`): {exception}', param_hint='--pw'
        ) from None
    executable = getattr(code, 'filepath_executable', None)
    if code.computer.transport_type == 'core.local' and executable and not Path(executable).exists():
        raise click.BadParameter(f'`{label}` runs {executable}, which does not exist on this computer',
                                 param_hint='--pw')  # fmt: skip
    return code


@cmd_benchmark.command('status')
@arguments.PROCESS()
@decorators.with_dbenv()
def benchmark_status(process):
    """Structures done / failed / pending per model and task of a benchmark; once it has ended, what was not
    evaluated and why. Exits non-zero for a benchmark that ended badly."""
    state = process.process_state.value if process.process_state else ''
    status = f' [{process.exit_status}]' if process.is_finished else ''
    echo.echo(f'{process.process_label}<{process.pk}>: {state}{status}')
    echo.echo(progress_text(process))
    echo_accounting(process)
    exit_for(process)


def echo_accounting(node) -> None:
    """The benchmark's account of the structures it lost (``workchains.accounting``), one warning per model and task."""
    entries = node.outputs.summary.get('entries', []) if 'summary' in node.outputs else []
    for entry in entries:
        line = (entry.get('accounting') or {}).get('headline')
        if line:
            echo.echo_warning(f'{entry["model"]}/{entry["task"]}: {line}')


def _elemental_references(value: str):
    """A node from a path (imported on first use), a source file name or a pk."""
    from pathlib import Path

    from ..calculations.dataset import import_elemental_references

    if Path(value).is_file():
        return import_elemental_references(value)[0]
    return value


def progress_text(node) -> str:
    """Done / failed / pending per model and task, rate and time left (``analysis.benchmark.progress``)."""
    from tabulate import tabulate

    from ..analysis.benchmark import progress

    return 'progress\n' + tabulate(progress(node), headers='keys', showindex=False)


def error_table(node) -> str:
    import pandas as pd

    from ..analysis.benchmark import error_summary

    return headline_text(pd.DataFrame(error_summary(node)))
