"""MLIAP framework adapters, discovered through the ``mliap.frameworks`` entry point group.

A new framework is one module subclassing :class:`~aiida_mliap.frameworks.base.MliapFramework` plus one entry point.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from .base import LoadedModel, MliapFramework

ENTRY_POINT_GROUP = 'mliap.frameworks'

__all__ = (
    'ENTRY_POINT_GROUP',
    'LoadedModel',
    'MliapFramework',
    'available_frameworks',
    'bundled_models',
    'describe',
    'get_framework',
)


def available_frameworks() -> list[str]:
    return sorted(ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def get_framework(name: str) -> MliapFramework:
    matches = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not matches:
        raise ValueError(f'unknown framework `{name}`; registered frameworks: {available_frameworks()}')
    return next(iter(matches)).load()()


def bundled_models() -> dict[str, str]:
    """Every checkpoint name a framework ships in its wheel -> the framework (known without it installed)."""
    return {name: framework for framework in available_frameworks() for name in get_framework(framework).bundled}


def describe(source: str, framework: str | None = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Where the checkpoint ``source`` (a bundled name or a path) is and what its framework knows of it.

    Runs where the framework is installed: in the main environment, or through ``aiida-mliap-run --describe`` in
    the framework's own environment. ``ValueError`` for a checkpoint the framework would refuse to run.
    """
    options = dict(options or {})
    name = None
    if framework is None:
        framework = bundled_models().get(source)
        if framework is None:
            raise ValueError(f'`{source}` is no bundled model ({", ".join(bundled_models())}): give its framework')
    adapter = get_framework(framework)
    if source in adapter.bundled:
        path, bundled = adapter.bundled_checkpoint(source)
        name, options, energy_scale = source, {**bundled.options, **options}, bundled.energy_scale
    else:
        path, energy_scale = Path(source).absolute(), None
    try:
        facts = adapter.checkpoint_facts(path)
        facts.update(adapter.vet_options(options, facts))
    except RuntimeError as exception:
        raise ValueError(str(exception)) from exception
    numbers = load_on_cpu(adapter, path, options).supported_numbers
    if numbers is not None:  # the elements it covers: a job that needs another is refused before it runs
        from ase.data import chemical_symbols

        facts['elements'] = sorted(chemical_symbols[number] for number in numbers)
    return {
        'framework': framework,
        'name': name,
        'path': str(path),
        'options': options,
        'energy_scale': energy_scale or facts.get('energy_scale'),
        'facts': facts,
        'framework_version': adapter.version(),
    }


def load_on_cpu(adapter: MliapFramework, path: Path, options: dict[str, Any]) -> LoadedModel:
    """Load the checkpoint as the runner will (same files, same options; on the CPU), so that a file the framework
    cannot load is refused at registration with the framework's own error, not at run time (``ValueError``)."""
    from ..contract.hashing import model_layout

    root, names = model_layout(path)
    try:
        return adapter.load(root, names, 'cpu', adapter.resolve_dtype(None), options)
    except Exception as exception:  # whatever the framework raises is the reason to give
        reason = str(exception).strip().splitlines()[0] if str(exception).strip() else 'no message'
        raise ValueError(f'{adapter.name} cannot load {path}: {type(exception).__name__}: {reason}') from exception
