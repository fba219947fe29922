"""``aiida-mliap setup``: the code (runner) and model nodes a benchmark needs; both idempotent."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click
from aiida.cmdline.params import options
from aiida.cmdline.utils import decorators, echo

from ..contract.schema import ENERGY_SCALES
from ..data.model import FRAMEWORKS, MliapModelData
from . import cmd_root
from .utils import DEFAULT_CODE_LABEL, dft_extra_missing, non_blank


@cmd_root.group('setup')
def cmd_setup():
    """Register the runner as a code and models as nodes."""


def runner_executable() -> str:
    found = shutil.which('aiida-mliap-run') or str(Path(sys.executable).parent / 'aiida-mliap-run')
    if not Path(found).exists():
        raise click.ClickException('cannot find the `aiida-mliap-run` executable: install aiida-mliap first')
    return found


def get_or_create_localhost(label: str):
    """The computer ``label``; ``localhost`` (this machine, no scheduler) is created when missing."""
    import tempfile

    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        return orm.load_computer(label)
    except NotExistent:
        if label != 'localhost':
            raise click.ClickException(
                f'computer `{label}` does not exist: set it up with `verdi computer setup`'
            ) from None
    workdir = Path(tempfile.gettempdir()) / 'aiida-mliap-work'
    computer = orm.Computer(
        label='localhost',
        hostname='localhost',
        transport_type='core.local',
        scheduler_type='core.direct',
        workdir=str(workdir),
    ).store()
    computer.configure()
    echo.echo_report(f'created computer localhost (work directory {workdir})')
    return computer


@cmd_setup.command('code')
@click.option('--computer', default='localhost', show_default=True, help='Computer the runner is installed on.')
@click.option('--label', default=DEFAULT_CODE_LABEL, show_default=True, help='Label of the code.')
@click.option('--executable', help='Path of aiida-mliap-run on that computer (default: the one installed here).')
@decorators.with_dbenv()
def setup_code(computer, label, executable):
    """Register the runner ``aiida-mliap-run`` as an InstalledCode (does nothing if it exists)."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    computer = get_or_create_localhost(computer)
    if executable is None and computer.transport_type != 'core.local':
        raise click.UsageError(f'give --executable: the path of aiida-mliap-run on {computer.label}')
    executable = executable or runner_executable()
    try:
        code = orm.load_code(f'{label}@{computer.label}')
    except NotExistent:
        pass
    else:
        installed = str(code.filepath_executable)
        if installed != executable:
            echo.echo_warning(f'code {code.full_label} runs {installed}, not {executable}: give --label to add another')
        echo.echo_report(f'code {code.full_label} exists (pk {code.pk})')
        return
    code = orm.InstalledCode(computer=computer, filepath_executable=executable, default_calc_job_plugin='mliap.calc')
    code.label = label
    code.description = 'aiida-mliap runner: MLIAP single points and relaxations on batches of structures'
    code.store()
    echo.echo_success(f'created code {code.full_label} (pk {code.pk})')


@cmd_setup.command('model')
@click.argument('source')
@click.option('--framework', type=click.Choice(FRAMEWORKS), help='Framework of a model given by path.')
@click.option('--name', callback=non_blank, help='Name of the model, e.g. mace-mp-0-medium (default: the file name).')
@click.option('--energy-scale', type=click.Choice(ENERGY_SCALES), help='Whether energies include MP2020 corrections.')
@click.option('--dtype', type=click.Choice(['float32', 'float64']), help='Default dtype for this model.')
@click.option('--factory', help='--framework ase: `package.module:function` called with the checkpoint path and the '
              'device, returning an ASE calculator (importable where the runner runs).')  # fmt: skip
@click.option('--modal', help='The fidelity of a multi-fidelity checkpoint (SevenNet-MF: PBE or R2SCAN).')
@options.DESCRIPTION(help='A description of the model.')
@decorators.with_dbenv()
def setup_model(source, framework, name, energy_scale, dtype, factory, modal, description):
    """Register a model: a name a framework ships (chgnet-0.3.0, chgnet-0.2.0, sevennet-0, sevennet-0-22may2024,
    sevennet-l3i5, sevennet-mf-0) or a checkpoint file/folder SOURCE.

    A model from a path needs --framework, and --energy-scale unless it is a checkpoint the framework knows (e.g. the
    original M3GNet-MP-2021.2.8-PES: raw_dft): the scale decides whether MP2020 corrections are applied to its
    energies, so it is never guessed. The framework vets the checkpoint first, in its own environment where it is
    not installed here (`aiida-mliap setup env`): one it could not run faithfully is refused here with the reason.
    """
    from ..frameworks import bundled_models

    bundled = bundled_models()
    # Options another framework would silently ignore are mistakes: refused before anything is read or stored.
    for option, value, owner in (('--factory', factory, 'ase'), ('--modal', modal, 'sevenn')):
        if value and (framework or bundled.get(source)) != owner:
            raise click.UsageError(f'{option} is for --framework {owner} models only')
    if source not in bundled:
        if not Path(source).exists():
            raise click.BadParameter(f'`{source}` is neither a bundled model ({", ".join(bundled)}) nor a path')
        if framework is None:
            raise click.UsageError('a model from a path needs --framework')
        source = str(Path(source).absolute())
    model_options = {key: value for key, value in {'factory': factory, 'modal': modal}.items() if value}
    try:
        node, created = MliapModelData.get_or_create(
            source, framework, energy_scale, name=name, options=model_options or None, default_dtype=dtype
        )
    except ValueError as exception:
        raise click.ClickException(f'refusing {source}: {exception}') from exception
    if created and description:
        node.description = description
    verb = 'registered' if created else 'already registered'
    echo.echo_success(f'{verb}: {node.name} ({node.framework}, {node.energy_scale}) pk {node.pk} sha256 {node.sha256}')
    for key, value in node.checkpoint_facts.items():
        if key == 'elements' and len(value) > 12:  # a universal model: the count, not 90 symbols
            value = f"{len(value)} ({', '.join(value[:6])}, ...; all in the node's checkpoint_facts)"
        echo.echo_report(f'{key}: {value}')


@cmd_setup.command('env')
@click.argument('framework', type=click.Choice(['chgnet', 'mace', 'matgl', 'sevenn']))
@click.option('--path', type=click.Path(path_type=Path), help='Where to make it (default: beside this environment, '
              'e.g. .venv-sevenn).')  # fmt: skip
@click.option('--torch', 'torch_spec', help='The torch to install first (default: the release installed here; on a '
              'GPU cluster the CUDA build you want, with --index-url).')  # fmt: skip
@click.option('--index-url', help='Package index for torch only (e.g. a CUDA wheel index).')
@click.option('--computer', default='localhost', show_default=True, help='Computer the environment is on.')
@click.option('--label', help='Label of the code (default: aiida-mliap-run-FRAMEWORK).')
@click.option('--reinstall', is_flag=True, help='Install again even if the environment is complete.')
@click.option('--no-code', is_flag=True, help='Only make the environment (no profile needed), e.g. in a build step.')
def setup_env(framework, path, torch_spec, index_url, computer, label, reinstall, no_code):
    """Make a Python environment for FRAMEWORK (torch first, the framework, the runner) and register its Code.

    Frameworks whose pins clash (sevenn needs e3nn>=0.5, mace-torch pins 0.4.4) each get one; a benchmark then
    runs every model on the Code of its framework's environment. Idempotent: a complete environment is reused.
    """
    from ..environments import create_environment, default_path, register_code, runner_in

    path = (path or default_path(framework)).absolute()
    try:
        facts = create_environment(framework, path, torch_spec, index_url, reinstall, echo=echo.echo_report)
        if no_code:
            echo.echo_success(f'{framework} {facts["frameworks"][framework]} in {path}')
            return
        decorators.load_backend_if_not_loaded()
        code, created = register_code(
            framework, runner_in(path), get_or_create_localhost(computer), label or f'{DEFAULT_CODE_LABEL}-{framework}',
            facts,
        )  # fmt: skip
    except (RuntimeError, ValueError) as exception:
        raise click.ClickException(str(exception)) from exception
    verb = 'created' if created else 'kept'
    echo.echo_success(
        f'{verb} code {code.full_label} (pk {code.pk}): {framework} {facts["frameworks"][framework]}, '
        f'torch {facts["torch"]}, Python {facts["python"]} in {path}'
    )


@cmd_setup.command('dft')
@click.option('--pseudos', 'folder', type=click.Path(exists=True, file_okay=False, path_type=Path),
              help='Folder of UPF files (default: $MLIAP_SHARED_DATA/pseudos/pslibrary-pbe, i.e. '
              '../shared/data/pseudos/pslibrary-pbe).')  # fmt: skip
@click.option('--cutoffs', type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='Cutoffs JSON in Ry (default: suggested_cutoffs_Ry.json in the folder).')  # fmt: skip
@click.option('--family', 'family_label', help='Label of the family (default: pslibrary-1.0.0-PBE).')
@click.option('--executable', help='Path of pw.x on the computer (default: the one on this PATH).')
@click.option('--computer', default='localhost', show_default=True, help='Computer pw.x runs on.')
@click.option('--label', help='Label of the pw.x code (default: pw).')
@decorators.with_dbenv()
def setup_dft(folder, cutoffs, family_label, executable, computer, label):
    """Install a pseudopotential family with its cutoffs (aiida-pseudo) and register pw.x as a Code, for the DFT
    check (`MliapDftCheckWorkChain`). Idempotent. On a cluster: an SSSP family (`aiida-pseudo install sssp -x PBE`)
    works as well; give its label to the work chain."""
    import os

    try:
        from ..dft.setup import DEFAULT_FAMILY, DEFAULT_PW_LABEL, STRINGENCY, install_family, register_pw_code
    except ImportError as exception:
        raise dft_extra_missing(exception) from exception
    if folder is None:
        shared = Path(os.environ.get('MLIAP_SHARED_DATA', '../shared/data'))
        folder = shared / 'pseudos' / 'pslibrary-pbe'
        if not folder.is_dir():
            raise click.UsageError(f'no {folder}: give --pseudos FOLDER (UPF files)')
    computer = get_or_create_localhost(computer)
    try:
        family, created = install_family(folder, family_label or DEFAULT_FAMILY, cutoffs)
        code, made = register_pw_code(computer, label or DEFAULT_PW_LABEL, executable)
    except ValueError as exception:
        raise click.ClickException(str(exception)) from exception
    verb = 'installed' if created else 'kept'
    echo.echo_success(f'{verb} family {family.label}: {len(family.nodes)} pseudopotentials, cutoffs ({STRINGENCY})')
    verb = 'created' if made else 'kept'
    echo.echo_success(f'{verb} code {code.full_label} (pk {code.pk}): {code.filepath_executable}')
