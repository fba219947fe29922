"""The small interface every MLIAP framework implements: load a checkpoint, hand back an ASE calculator."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase import Atoms
from ase.calculators.calculator import Calculator

from ..contract.schema import Outputs
from ..contract.status import Status

if TYPE_CHECKING:  # torch is imported where a model runs, not by the aiida side that reads this module
    from ..contract.system import System, TensorOutputs


@dataclass
class LoadedModel:
    calculator: Calculator
    supported_numbers: frozenset[int] | None
    dtype: str
    device: str
    # Single points of many structures in one call, where the framework offers it; same numbers as the calculator.
    evaluate_batch: Callable[[list[Atoms]], list[Outputs]] | None = None
    # The same on a whole batch as tensors on the device (graph built there too), where the framework allows it:
    # the vectorized engine's call. Without it, the engine goes through ``evaluate_batch`` and the host.
    evaluate_system: Callable[[System], TensorOutputs] | None = None
    # How the framework had to adapt this checkpoint to run it faithfully (recorded in every calculation's summary).
    adaptations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Bundled:
    """A checkpoint shipped inside the framework's wheel: registered by name, offline."""

    relative_path: str  # inside the framework's installed package
    options: dict[str, Any]
    energy_scale: str


class MliapFramework(ABC):
    """One module per framework, registered in the ``mliap.frameworks`` entry point group."""

    name: str
    distribution: str  # the PyPI distribution whose version is recorded
    module: str  # the package it imports, where bundled checkpoints live
    dtypes: tuple[str, ...] = ('float32',)
    default_dtype: str = 'float32'
    bundled: dict[str, Bundled] = {}

    def version(self) -> str:
        return importlib.metadata.version(self.distribution)

    def is_installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def bundled_checkpoint(self, name: str) -> tuple[Path, Bundled]:
        """Path of a checkpoint shipped with the installed framework, and what is known of it."""
        if name not in self.bundled:
            raise ValueError(f'unknown bundled {self.name} checkpoint `{name}`; bundled: {sorted(self.bundled)}')
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f'{self.distribution} is not installed here: it ships `{name}`')
        bundled = self.bundled[name]
        path = Path(spec.origin).parent / bundled.relative_path
        if not path.is_file():
            raise FileNotFoundError(f'the installed {self.distribution} does not ship {bundled.relative_path}')
        return path, bundled

    @abstractmethod
    def load(self, model_dir: Path, files: list[str], device: str, dtype: str, options: dict[str, Any]) -> LoadedModel:
        """Load the checkpoint ``files`` (relative to ``model_dir``) as an ASE calculator on ``device``."""

    def checkpoint_facts(self, path: Path) -> dict[str, Any]:
        """What is known about the checkpoint at ``path`` before it is registered, e.g. its ``energy_scale``.

        Raises ``ValueError`` for a checkpoint this framework would refuse to run, so that registration refuses it too.
        """
        return {}

    def vet_options(self, options: dict[str, Any], facts: dict[str, Any] | None = None) -> dict[str, Any]:
        """Check the model's ``options`` against the checkpoint's ``facts`` at registration (ValueError if
        unusable); returns facts to record."""
        return {}

    def classify_error(self, exception: BaseException) -> tuple[Status, str] | None:
        """Map a framework-specific exception to a per-structure status; None leaves it a generic error."""
        return None

    def resolve_dtype(self, requested: str | None) -> str:
        """``highest``: float64 where the framework supports it (Matbench Discovery's choice), else its default."""
        if requested == 'highest':
            return 'float64' if 'float64' in self.dtypes else self.default_dtype
        dtype = requested or self.default_dtype
        if dtype not in self.dtypes:
            raise ValueError(f'{self.name} supports dtype {list(self.dtypes)}, not {dtype}')
        return dtype
