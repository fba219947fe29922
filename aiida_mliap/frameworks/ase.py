"""Any user's ASE calculator: a checkpoint file and an importable factory, no adapter to write.

The factory (``package.module:function``) is called with the checkpoint's path and the device and returns an ASE
calculator. It must be importable in the runner's Python environment. The checkpoint is hashed like every model;
the factory and its distribution's version are recorded on the model node and in every calculation.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import LoadedModel, MliapFramework


def load_factory(spec: str | None) -> Callable:
    """The callable named ``package.module:function``; ValueError saying what is wrong otherwise."""
    module_name, _, attribute = (spec or '').partition(':')
    if not module_name or not attribute:
        raise ValueError(f'give the factory as `package.module:function`, got {spec!r}')
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exception:
        raise ValueError(f'cannot import the factory `{spec}`: {exception}') from None
    if not callable(factory):
        raise ValueError(f'the factory `{spec}` is not callable')
    return factory


def factory_version(spec: str) -> str | None:
    """Version of the distribution that provides the factory's top-level package, if it is an installed one."""
    top = spec.partition(':')[0].split('.')[0]
    for name in importlib.metadata.packages_distributions().get(top, []):
        return f'{name} {importlib.metadata.version(name)}'
    return None


class AseFramework(MliapFramework):
    name = 'ase'
    distribution = 'ase'
    module = 'ase'
    dtypes = ('float32', 'float64')
    default_dtype = 'float64'  # recorded as requested; the user's calculator decides its own precision

    def vet_options(self, options: dict[str, Any], facts: dict[str, Any] | None = None) -> dict[str, Any]:
        spec = options.get('factory')
        load_factory(spec)
        return {'factory': spec, 'factory_version': factory_version(spec)}

    def load(self, model_dir: Path, files: list[str], device: str, dtype: str, options: dict[str, Any]) -> LoadedModel:
        spec = options.get('factory')
        calculator = load_factory(spec)(str(model_dir / files[0]), device)
        adaptations = {'factory': spec, 'factory_version': factory_version(spec) or 'not an installed distribution'}
        return LoadedModel(calculator, None, dtype, device, adaptations=adaptations)
