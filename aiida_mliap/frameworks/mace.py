"""MACE (mace-torch). A ``.model`` file is a pickled torch module, loaded by MACE's own calculator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import LoadedModel, MliapFramework


class MaceFramework(MliapFramework):
    name = 'mace'
    distribution = 'mace-torch'
    dtypes = ('float32', 'float64')
    default_dtype = 'float64'

    def load(self, model_dir: Path, files: list[str], device: str, dtype: str, options: dict[str, Any]) -> LoadedModel:
        from mace.calculators import MACECalculator

        calculator = MACECalculator(model_paths=str(model_dir / files[0]), device=device, default_dtype=dtype)
        numbers = frozenset(int(z) for z in calculator.models[0].atomic_numbers)
        return LoadedModel(calculator, numbers, dtype, device)
