"""matgl (M3GNet, TensorNet, ...). A model is a folder (model.json, model.pt, state.pt) read by matgl.load_model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import LoadedModel, MliapFramework


class MatglFramework(MliapFramework):
    name = 'matgl'
    distribution = 'matgl'

    def load(self, model_dir: Path, files: list[str], device: str, dtype: str, options: dict[str, Any]) -> LoadedModel:
        import matgl
        from ase.data import atomic_numbers
        from matgl.ext.ase import PESCalculator

        folder = _model_folder(model_dir, files)
        potential = matgl.load_model(folder).to(device)
        # matgl defaults to GPa, which would make every ASE cell filter wrong by a factor of 160.
        calculator = PESCalculator(potential, stress_unit='eV/A3')
        numbers = frozenset(atomic_numbers[symbol] for symbol in potential.model.element_types)
        return LoadedModel(calculator, numbers, dtype, device)


def _model_folder(model_dir: Path, files: list[str]) -> Path:
    """The folder holding model.json: the model may sit in a subfolder of what was registered."""
    candidates = [model_dir / name for name in files if Path(name).name == 'model.json']
    if not candidates:
        raise ValueError('a matgl model folder must contain model.json (plus model.pt and state.pt)')
    return candidates[0].parent
