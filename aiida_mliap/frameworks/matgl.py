"""matgl (M3GNet, TensorNet, ...). A model is a folder (model.json, model.pt, state.pt) read by matgl.load_model."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ..contract.schema import Outputs
from .base import LoadedModel, MliapFramework
from .matgl_legacy import DESTINATION, establish_convention, restore_destination_aggregation


class MatglFramework(MliapFramework):
    name = 'matgl'
    distribution = 'matgl'
    module = 'matgl'

    def load(self, model_dir: Path, files: list[str], device: str, dtype: str, options: dict[str, Any]) -> LoadedModel:
        import matgl
        from ase.data import atomic_numbers
        from matgl.ext.ase import PESCalculator

        folder = _model_folder(model_dir, files)
        convention = establish_convention(folder, self.version())
        potential = matgl.load_model(folder)
        adaptations = {}
        if convention.aggregation == DESTINATION:
            layers = restore_destination_aggregation(potential)
            adaptations['aggregation'] = f'destination-atom node update in {layers} M3GNet layers ({convention.why})'
        potential = potential.to(device)
        # matgl defaults to GPa, which would make every ASE cell filter wrong by a factor of 160.
        calculator = PESCalculator(potential, stress_unit='eV/A3')
        numbers = frozenset(atomic_numbers[symbol] for symbol in potential.model.element_types)
        batch = partial(_evaluate_batch, calculator)
        return LoadedModel(calculator, numbers, dtype, device, evaluate_batch=batch, adaptations=adaptations)

    def checkpoint_facts(self, path: Path) -> dict[str, Any]:
        if not path.is_dir():
            raise ValueError(f'{path} is not a folder: a matgl model is a folder with model.json, model.pt, state.pt')
        folder = _model_folder(path, [p.relative_to(path).as_posix() for p in path.rglob('model.json')])
        convention = establish_convention(folder, self.version())
        facts = {'aggregation': convention.aggregation, 'aggregation_established_by': convention.why}
        if convention.known is not None:
            facts['checkpoint'] = convention.known.name
            facts['energy_scale'] = convention.known.energy_scale
            facts['energy_scale_established_by'] = convention.known.energy_scale_measured
        return facts


def _evaluate_batch(calculator, frames: list[Atoms]) -> list[Outputs]:
    """One matgl call on the batched graphs PESCalculator builds one at a time, converted as it converts them."""
    import torch
    from ase.stress import full_3x3_to_voigt_6_stress
    from torch_geometric.data import Batch

    graphs, lattices, states = [], [], []
    for atoms in frames:
        graph, lattice, state = calculator._atoms2graph.get_graph(atoms)
        graphs.append(graph)
        lattices.append(torch.as_tensor(lattice, dtype=torch.float32).reshape(1, 3, 3))
        states.append(torch.as_tensor(calculator.state_attr if calculator.state_attr is not None else state))
    energies, forces, stresses, *_ = calculator.potential(
        Batch.from_data_list(graphs), torch.cat(lattices), torch.stack(states)
    )
    energies = energies.detach().cpu().numpy().reshape(-1)
    forces = forces.detach().cpu().numpy()
    stresses = stresses.detach().cpu().numpy().reshape(-1, 3, 3)
    bounds = np.cumsum([0] + [len(atoms) for atoms in frames])
    return [
        (
            float(energies[i]),
            forces[bounds[i] : bounds[i + 1]],
            full_3x3_to_voigt_6_stress(stresses[i]) * calculator.conversion_factor,
        )
        for i in range(len(frames))
    ]


def _model_folder(model_dir: Path, files: list[str]) -> Path:
    """The folder holding model.json: the model may sit in a subfolder of what was registered."""
    candidates = [model_dir / name for name in files if Path(name).name == 'model.json']
    if not candidates:
        raise ValueError('a matgl model folder must contain model.json (plus model.pt and state.pt)')
    return candidates[0].parent
