"""One Python environment per framework, each with its own runner registered as an AiiDA Code.

Frameworks that cannot share an environment (sevenn needs e3nn >= 0.5, mace-torch pins 0.4.4) each get a virtual
environment holding torch, the framework and the runner (which never imports aiida). The Code carries the extra
``mliap_framework``: a benchmark runs each model on the Code of its framework's environment unless told otherwise,
and registering a model whose framework is not installed here asks that environment's runner about the checkpoint.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiida import orm

from .frameworks import bundled_models, describe, get_framework

DISTRIBUTION = 'aiida-mliap'
EXTRA_KEY = 'mliap_framework'  # on a Code: the framework its environment was made for
STAMP = 'aiida-mliap-environment.json'  # inside the environment: what was installed, once it all worked
# The daemon exports its own sys.path as PYTHONPATH and its jobs inherit it: the environment's Python would then
# import the main environment's packages first (sevenn failed on mace-torch's e3nn 0.4.4). The job script drops it.
ISOLATE = 'unset PYTHONPATH'


def framework_requirements(framework: str) -> list[str]:
    """The framework's pins and the runner's, read from this package's own extras (one place for both)."""
    from packaging.requirements import Requirement

    found = {'runner': [], framework: []}
    for line in importlib.metadata.requires(DISTRIBUTION) or []:
        requirement = Requirement(line)
        for extra in found:
            if requirement.marker is not None and requirement.marker.evaluate({'extra': extra}):
                found[extra].append(str(requirement).split(';')[0].strip())
    if not found[framework]:
        raise ValueError(f'aiida-mliap has no `{framework}` extra: no environment recipe for it')
    return found[framework] + found['runner']


def own_source() -> list[str]:
    """How to install this very aiida-mliap elsewhere: the checkout it came from (editable stays editable)."""
    distribution = importlib.metadata.distribution(DISTRIBUTION)
    text = distribution.read_text('direct_url.json')
    if text:
        url = json.loads(text)
        if url.get('url', '').startswith('file://'):
            path = url['url'][len('file://') :]
            return ['-e', path] if url.get('dir_info', {}).get('editable') else [path]
    return [f'{DISTRIBUTION}=={distribution.version}']


def default_torch() -> str:
    """The torch this environment runs (the CPU wheel here): the same release goes into the new one."""
    try:
        return f'torch=={importlib.metadata.version("torch").split("+")[0]}'
    except importlib.metadata.PackageNotFoundError:
        return 'torch'


def default_path(framework: str) -> Path:
    """Beside this environment: ``<prefix>-<framework>`` (``.venv`` -> ``.venv-sevenn``)."""
    prefix = Path(sys.prefix)
    return prefix.with_name(f'{prefix.name}-{framework}')


def runner_in(path: Path) -> Path:
    return path / 'bin' / 'aiida-mliap-run'


def probe(runner: str | Path) -> dict[str, Any]:
    """The environment as its runner sees it: Python, torch and the version of every framework (None: absent)."""
    return _ask(runner, ['--environment'])


def create_environment(
    framework: str,
    path: Path,
    torch: str | None = None,
    index_url: str | None = None,
    reinstall: bool = False,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Make (or reuse) the virtual environment at ``path`` for ``framework``; returns its probe.

    Torch goes in first, alone, so that pip never swaps in another build (a multi-GB CUDA one) for the framework.
    """
    requirements = framework_requirements(framework)
    stamp = path / STAMP
    if stamp.is_file() and not reinstall:
        recorded = json.loads(stamp.read_text())
        if recorded.get('framework') == framework:
            try:
                facts = probe(runner_in(path))
            except ValueError:  # broken since (a moved checkout, a deleted package): made again below
                facts = {'frameworks': {}}
            if facts['frameworks'].get(framework):
                echo(f'environment {path} exists ({framework} {facts["frameworks"][framework]}): --reinstall to redo')
                return facts
    python = Path(getattr(sys, '_base_executable', sys.executable))
    torch = torch or default_torch()
    pip = [str(path / 'bin' / 'python'), '-m', 'pip', 'install', '--quiet']
    steps = [
        ('virtual environment', [str(python), '-m', 'venv', str(path)]),
        (torch, [*pip, torch, *(['--index-url', index_url] if index_url else [])]),
        (' '.join(requirements), [*pip, *requirements]),
        ('the runner (aiida-mliap, without aiida)', [*pip, '--no-deps', *own_source()]),
    ]
    for what, command in steps:
        echo(f'installing {what} ...')
        tick = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f'`{" ".join(command)}` failed:\n{done.stderr.strip()[-3000:]}')
        echo(f'  done in {time.monotonic() - tick:.0f} s')
    facts = probe(runner_in(path))
    if not facts['frameworks'].get(framework):
        raise RuntimeError(f'{framework} does not import in {path}: {facts}')
    stamp.write_text(json.dumps({'framework': framework, 'requirements': requirements, 'torch': torch, **facts}))
    return facts


def register_code(framework: str, runner: Path, computer: orm.Computer, label: str, facts: dict[str, Any]):
    """The environment's runner as an InstalledCode marked with its framework; an existing one is kept.

    Returns ``(code, created)``.
    """
    from aiida.common.exceptions import NotExistent

    try:
        code = orm.load_code(f'{label}@{computer.label}')
    except NotExistent:
        code = orm.InstalledCode(
            computer=computer, filepath_executable=str(runner), default_calc_job_plugin='mliap.calc'
        )
        code.prepend_text = ISOLATE
        code.label = label
        code.description = f'aiida-mliap runner in the {framework} environment {runner.parent.parent}'
        code.store()
        created = True
    else:
        if str(code.filepath_executable) != str(runner):
            raise ValueError(f'code {code.full_label} runs {code.filepath_executable}, not {runner}: another --label')
        if ISOLATE not in (code.prepend_text or ''):
            raise ValueError(
                f'code {code.full_label} does not `{ISOLATE}`: under the daemon its jobs would import the main '
                "environment's packages; register it again with another --label"
            )
        created = False
    code.base.extras.set(EXTRA_KEY, framework)
    code.base.extras.set('mliap_environment', facts)
    return code, created


def environment_code(framework: str) -> orm.InstalledCode | None:
    """The newest Code registered for ``framework``'s environment, if any."""
    query = orm.QueryBuilder().append(orm.InstalledCode, filters={f'extras.{EXTRA_KEY}': framework})
    found = query.order_by({orm.InstalledCode: {'id': 'desc'}}).first(flat=True)
    return found


def code_for(model, default: orm.AbstractCode | None, explicit: dict[str, orm.AbstractCode] | None = None):
    """The Code to run ``model`` on: one given for it, else its framework's environment, else ``default``."""
    explicit = explicit or {}
    for key in (model.name, model.sha256, str(model.pk)):
        if key in explicit:
            return explicit[key]
    return environment_code(model.framework) or default


def describe_checkpoint(source: str, framework: str | None, options: dict[str, Any] | None) -> dict[str, Any]:
    """``frameworks.describe`` where the framework is installed: here, or in its registered environment.

    Without either, a checkpoint file is taken as it is (its framework vets it where it runs); a bundled name is
    refused, since only the framework knows where it ships it.
    """
    framework = framework or bundled_models().get(source)
    if framework is None:
        raise ValueError(f'`{source}` is no bundled model ({", ".join(bundled_models())}): give its framework')
    if get_framework(framework).is_installed():
        return describe(source, framework, options)
    code = environment_code(framework)
    if code is None:
        if source in get_framework(framework).bundled:
            raise ValueError(
                f'{framework} is not installed here and no environment is registered for it: '
                f'`aiida-mliap setup env {framework}` first'
            )
        path = str(Path(source).absolute())
        return {'framework': framework, 'name': None, 'path': path, 'options': dict(options or {}),
                'energy_scale': None, 'facts': {}, 'framework_version': None}  # fmt: skip
    if code.computer.transport_type != 'core.local':
        raise ValueError(f'the {framework} environment ({code.full_label}) is not on this machine: register the model '
                         'with its checkpoint file here and --energy-scale')  # fmt: skip
    arguments = ['--describe', source, '--framework', framework, '--options', json.dumps(options or {})]
    return _ask(code.filepath_executable, arguments)


def _ask(runner: str | Path, arguments: list[str]) -> dict[str, Any]:
    try:
        done = subprocess.run([str(runner), *arguments], capture_output=True, text=True)
    except OSError as exception:
        raise ValueError(f'cannot run {runner} ({exception}): make its environment again with `setup env`') from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ['no message']
        raise ValueError(f'{runner} {arguments[0]}: {lines[-1]}')
    return json.loads(done.stdout.strip().splitlines()[-1])
