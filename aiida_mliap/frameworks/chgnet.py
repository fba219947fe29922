"""CHGNet (chgnet package). Its checkpoints are pickles of the whole model configuration plus weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engine.status import Status
from .base import LoadedModel, MliapFramework

# CHGNet's graph covers these elements (its embedding is indexed by atomic number).
CHGNET_NUMBERS = frozenset(range(1, 95))

# Checkpoints shipped inside the chgnet wheel: name -> (relative path in the package, load options,
# energy scale). Both were trained on MPtrj energies that carry the MP2020 corrections.
BUNDLED = {
    'chgnet-0.3.0': ('pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar', {}, 'mp2020_corrected'),
    'chgnet-0.2.0': ('pretrained/0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar', {'mlp_out_bias': True}, 'mp2020_corrected'),
}


class ChgnetFramework(MliapFramework):
    name = 'chgnet'
    distribution = 'chgnet'

    def load(self, model_dir: Path, files: list[str], device: str, dtype: str, options: dict[str, Any]) -> LoadedModel:
        from chgnet.model import CHGNet, CHGNetCalculator

        model = CHGNet.from_file(str(model_dir / files[0]), **options)
        # 'error': CHGNet refuses structures with atoms beyond its graph cutoff instead of guessing.
        calculator = CHGNetCalculator(model=model, use_device=device, on_isolated_atoms='error')
        return LoadedModel(calculator, CHGNET_NUMBERS, dtype, device)

    def classify_error(self, exception: BaseException) -> tuple[Status, str] | None:
        if isinstance(exception, ValueError) and 'isolated atom' in str(exception):
            return Status.MODEL_REFUSED, f'CHGNet refuses the structure: {exception}'
        return None


def bundled_checkpoint(name: str) -> tuple[Path, dict[str, Any], str]:
    """Path, load options and energy scale of a checkpoint bundled with the installed chgnet wheel."""
    import importlib.util

    if name not in BUNDLED:
        raise ValueError(f'unknown bundled CHGNet checkpoint `{name}`; bundled: {sorted(BUNDLED)}')
    spec = importlib.util.find_spec('chgnet')
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError('chgnet is not installed: `pip install chgnet` to register its bundled checkpoints')
    relative, options, energy_scale = BUNDLED[name]
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        raise FileNotFoundError(f'the installed chgnet does not ship {relative}')
    return path, options, energy_scale
