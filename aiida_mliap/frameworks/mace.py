"""MACE (mace-torch). A ``.model`` file is a pickled torch module, loaded by MACE's own calculator."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from ase import Atoms

from .base import LoadedModel, MliapFramework, Outputs


class MaceFramework(MliapFramework):
    name = 'mace'
    distribution = 'mace-torch'
    module = 'mace'
    dtypes = ('float32', 'float64')
    default_dtype = 'float64'

    def load(self, model_dir: Path, files: list[str], device: str, dtype: str, options: dict[str, Any]) -> LoadedModel:
        from mace.calculators import MACECalculator

        calculator = MACECalculator(model_paths=str(model_dir / files[0]), device=device, default_dtype=dtype)
        numbers = frozenset(int(z) for z in calculator.models[0].atomic_numbers)
        batch = partial(_evaluate_batch, calculator) if calculator.num_models == 1 else None
        return LoadedModel(calculator, numbers, dtype, device, evaluate_batch=batch)


def _evaluate_batch(calculator, frames: list[Atoms]) -> list[Outputs]:
    """One MACE call on a batch of graphs built as MACECalculator builds one, with its unit conversions."""
    from ase.stress import full_3x3_to_voigt_6_stress
    from mace import data
    from mace.tools import torch_geometric, torch_tools

    calculator.arrays_keys.update({calculator.charges_key: 'charges'})
    keys = data.KeySpecification(info_keys=calculator.info_keys, arrays_keys=calculator.arrays_keys)
    with torch_tools.default_dtype(calculator.default_dtype):
        graphs = [
            data.AtomicData.from_config(
                data.config_from_atoms(atoms, key_specification=keys, head_name=calculator.head),
                z_table=calculator.z_table,
                cutoff=calculator.r_max,
                heads=calculator.available_heads,
            )
            for atoms in frames
        ]
    batch = torch_geometric.Batch.from_data_list(graphs).to(calculator.device)
    out = calculator.models[0](batch.to_dict(), compute_stress=True, training=False)
    energy_unit, length_unit = calculator.energy_units_to_eV, calculator.length_units_to_A
    energies = out['energy'].detach().cpu().numpy() * energy_unit
    forces = out['forces'].detach().cpu().numpy() * energy_unit / length_unit
    stresses = out['stress'].detach().cpu().numpy() * energy_unit / length_unit**3
    bounds = batch['ptr'].cpu().numpy()
    return [
        (float(energies[i]), forces[bounds[i] : bounds[i + 1]], full_3x3_to_voigt_6_stress(stresses[i]))
        for i in range(len(frames))
    ]
