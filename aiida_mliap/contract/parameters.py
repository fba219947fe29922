"""The runner's parameters: defaults and validation, shared by the CalcJob's port validator and the runner."""

from __future__ import annotations

from typing import Any

RUNNER_TASKS = ('static', 'relax')
# The benchmark's tasks, as runner parameters: a relaxation with or without the symmetry constraint.
TASKS: dict[str, dict[str, Any]] = {
    'static': {'task': 'static'},
    'relax': {'task': 'relax', 'fix_symmetry': False},
    'relax_fixsym': {'task': 'relax', 'fix_symmetry': True},
}
OPTIMIZERS = ('FIRE', 'BFGS', 'LBFGS')
DTYPES = ('float32', 'float64', 'highest')  # highest: float64 where the framework supports it
DEVICES = ('auto', 'cpu', 'cuda')
# ase: one ASE optimizer loop per structure; batched: the same ASE optimizers advanced together, one batched model call
# per step; vectorized: FIRE and the Frechet cell filter as batched torch operations on the model's device (engine/
# fire.py), ASE's numbers without ASE's per-structure Python. The symmetry constraint and other optimizers fall back
# to batched, frameworks without a batched call to ase; the calculation's environment record names the engine that ran
# and why (docs/relaxation-engines.md).
ENGINES = ('ase', 'batched', 'vectorized')

DEFAULTS: dict[str, Any] = {
    'task': 'relax',
    'relax_cell': True,
    'fmax': 0.05,
    'max_steps': 500,
    'optimizer': 'FIRE',
    'fix_symmetry': False,
    'symprec': 0.01,
    'dtype': None,
    'device': 'auto',
    'engine': 'vectorized',
    'batch_budget': None,  # batched engines: atoms + neighbour pairs per model call; None: from the device
    'trajectory': None,  # relaxations: 'steps' (energy, largest force, volume per step) or 'frames' (also geometry)
    'keep_forces': False,  # every atom's force (eV/Å) at the end, one array per structure: the softening measurement
}
TRAJECTORIES = (None, 'steps', 'frames')


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(key: str, value: Any) -> str | None:
    """Return why ``value`` is not acceptable for ``key``, or None."""
    choices = {'task': RUNNER_TASKS, 'optimizer': OPTIMIZERS, 'device': DEVICES, 'engine': ENGINES}
    if key in choices:
        return None if value in choices[key] else f'`{key}` must be one of {list(choices[key])}, got {value!r}'
    if key == 'trajectory':
        return None if value in TRAJECTORIES else f'`trajectory` must be null, "steps" or "frames", got {value!r}'
    if key == 'dtype':
        return None if value is None or value in DTYPES else f'`dtype` must be null or one of {list(DTYPES)}'
    if key in ('relax_cell', 'fix_symmetry', 'keep_forces'):
        return None if isinstance(value, bool) else f'`{key}` must be true or false, got {value!r}'
    if key in ('fmax', 'symprec'):
        if not _is_number(value) or not value > 0:
            return f'`{key}` must be a positive number, got {value!r}'
        return None
    if key in ('max_steps', 'batch_budget'):
        if value is None and key == 'batch_budget':
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return f'`{key}` must be a positive integer, got {value!r}'
        return None
    return f'unknown parameter `{key}`; known parameters: {sorted(DEFAULTS)}'


def validate_parameters(parameters: dict[str, Any]) -> str | None:
    """Return a message listing every problem with ``parameters``, or None when they are valid."""
    problems = [message for key, value in parameters.items() if (message := _check(key, value))]
    return '; '.join(problems) or None


def with_defaults(parameters: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULTS, **parameters}


def task_parameters(parameters: dict[str, Any], task: str) -> dict[str, Any]:
    """``parameters`` for the benchmark's ``task`` (a key of ``TASKS``): the one encoding, ``task_name`` its inverse."""
    if task not in TASKS:
        raise ValueError(f'unknown task `{task}`: choose one of {sorted(TASKS)}')
    return {**parameters, **TASKS[task]}


def task_name(parameters: dict[str, Any]) -> str:
    """The benchmark's task (a key of ``TASKS``) of a calculation's runner parameters."""
    parameters = with_defaults(parameters)
    if parameters['task'] == 'static':
        return 'static'
    return 'relax_fixsym' if parameters['fix_symmetry'] else 'relax'


RELAX_ONLY = ('relax_cell', 'fmax', 'max_steps', 'optimizer', 'fix_symmetry', 'symprec', 'trajectory')


def applicable(parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters (defaults filled in) that change what a task computes: a single point has no optimizer, and
    ``symprec`` only matters under the symmetry constraint."""
    parameters = with_defaults(parameters)
    dropped = set(RELAX_ONLY) if parameters['task'] == 'static' else set()
    if not parameters['fix_symmetry']:
        dropped.add('symprec')
    return {key: value for key, value in sorted(parameters.items()) if key not in dropped}
