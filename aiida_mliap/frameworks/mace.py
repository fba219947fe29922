"""MACE (mace-torch). A ``.model`` file is a pickled torch module, loaded by MACE's own calculator."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase import Atoms

from ..contract.schema import Outputs
from .base import LoadedModel, MliapFramework

if TYPE_CHECKING:  # torch is imported where a model runs, not by the aiida side that lists frameworks
    from ..contract.system import System, TensorOutputs


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
        single = calculator.num_models == 1
        batch = partial(_evaluate_batch, calculator) if single else None
        system = partial(_evaluate_system, calculator) if single else None
        return LoadedModel(calculator, numbers, dtype, device, evaluate_batch=batch, evaluate_system=system)


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


def _evaluate_system(calculator, system: System) -> TensorOutputs:
    """One MACE call on a batch whose graph is built on the device (``frameworks.neighbours``): the inputs MACE's own
    data pipeline makes, without a host round trip or a per-structure neighbour list."""
    import torch

    from .neighbours import neighbour_pairs

    dtype, device = getattr(torch, calculator.default_dtype), system.positions.device
    sender, receiver, unit_shifts = neighbour_pairs(system, float(calculator.r_max))
    zs = torch.as_tensor(calculator.z_table.zs, device=device)
    lookup = torch.full((int(zs.max()) + 1,), -1, dtype=torch.long, device=device)
    lookup[zs] = torch.arange(len(zs), device=device)
    numbers = system.numbers.clamp(max=len(lookup) - 1)
    node_attrs = torch.nn.functional.one_hot(lookup[numbers], num_classes=len(zs)).to(dtype)
    batch, b = system.batch, len(system)
    cells = system.cells.to(dtype)
    unit = unit_shifts.to(dtype)
    head = calculator.available_heads.index(calculator.head) if calculator.head in calculator.available_heads else 0
    data = {
        'positions': system.positions.to(dtype, copy=True), 'node_attrs': node_attrs,
        'edge_index': torch.stack([sender, receiver]), 'unit_shifts': unit,
        'shifts': torch.einsum('ek,ekl->el', unit, cells[batch[sender]]), 'cell': cells.reshape(-1, 3),
        'batch': batch, 'ptr': system.ptr, 'pbc': system.pbc,
        'head': torch.full((b,), head, dtype=torch.long, device=device),
        'charges': torch.zeros(len(batch), dtype=dtype, device=device),
        'total_charge': torch.zeros(b, dtype=dtype, device=device),
        'total_spin': torch.ones(b, dtype=dtype, device=device),
        'weight': torch.ones(b, dtype=dtype, device=device),
    }  # fmt: skip
    out = calculator.models[0](data, compute_stress=True, training=False)
    energy_unit, length_unit = calculator.energy_units_to_eV, calculator.length_units_to_A
    as64 = torch.float64
    return (
        out['energy'].detach().to(as64) * energy_unit,
        out['forces'].detach().to(as64) * energy_unit / length_unit,
        out['stress'].detach().to(as64).reshape(-1, 3, 3) * energy_unit / length_unit**3,
    )
