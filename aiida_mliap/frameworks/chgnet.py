"""CHGNet (chgnet package). Its checkpoints are pickles of the whole model configuration plus weights."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ..contract.schema import Outputs
from ..contract.status import Status
from .base import Bundled, LoadedModel, MliapFramework

# CHGNet's graph covers these elements (its embedding is indexed by atomic number).
CHGNET_NUMBERS = frozenset(range(1, 95))


class ChgnetFramework(MliapFramework):
    name = 'chgnet'
    distribution = 'chgnet'
    module = 'chgnet'
    # Both were trained on MPtrj energies that carry the MP2020 corrections.
    bundled = {
        'chgnet-0.3.0': Bundled('pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar', {}, 'mp2020_corrected'),
        'chgnet-0.2.0': Bundled(
            'pretrained/0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar', {'mlp_out_bias': True}, 'mp2020_corrected'
        ),
    }

    def load(self, model_dir: Path, files: list[str], device: str, dtype: str, options: dict[str, Any]) -> LoadedModel:
        from chgnet.model import CHGNet, CHGNetCalculator

        model = CHGNet.from_file(str(model_dir / files[0]), **options)
        # 'error': CHGNet refuses structures with atoms beyond its graph cutoff instead of guessing.
        calculator = CHGNetCalculator(model=model, use_device=device, on_isolated_atoms='error')
        batch = partial(_evaluate_batch, calculator.model, calculator.stress_weight)
        return LoadedModel(calculator, CHGNET_NUMBERS, dtype, device, evaluate_batch=batch)

    def classify_error(self, exception: BaseException) -> tuple[Status, str] | None:
        if isinstance(exception, ValueError) and 'isolated atom' in str(exception):
            return Status.MODEL_REFUSED, f'CHGNet refuses the structure: {exception}'
        return None


def _evaluate_batch(model, stress_weight: float, frames: list[Atoms]) -> list[Outputs]:
    """CHGNet's batched graph prediction, converted exactly as CHGNetCalculator converts one structure."""
    from ase.stress import full_3x3_to_voigt_6_stress
    from pymatgen.io.ase import AseAtomsAdaptor

    structures = [AseAtomsAdaptor.get_structure(atoms) for atoms in frames]
    predictions = model.predict_structure(structures, task='efs', batch_size=len(structures))
    if isinstance(predictions, dict):
        predictions = [predictions]
    outputs = []
    for atoms, prediction in zip(frames, predictions, strict=True):
        energy = float(prediction['e']) * (len(atoms) if model.is_intensive else 1)
        stress = full_3x3_to_voigt_6_stress(np.asarray(prediction['s']) * stress_weight)
        outputs.append((energy, np.asarray(prediction['f']), stress))
    return outputs
