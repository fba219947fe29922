"""A model that costs (almost) nothing: it measures an engine's own cost per structure-step and tests its bookkeeping.

Energy: a periodic well for every atom in fractional coordinates (minima on a grid of ``grid`` points per cell
vector) plus a volume term pulling each cell toward ``volume_per_atom`` per atom:
``E = k/(2 pi m)^2 sum_i,d (1 - cos(2 pi m s_id)) + K/2 V* (V/V* - 1)^2`` with ``V* = n_atoms * volume_per_atom``.
Forces and stress are analytic (fractional coordinates do not change under a homogeneous strain, so only the
volume term has stress), O(N) elementwise work with no neighbour list.
"""

from __future__ import annotations

import math

import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from ..contract.system import System, TensorOutputs, batch_via_system


class HarmonicModel:
    def __init__(self, k: float = 2.0, bulk: float = 0.05, grid: int = 2, volume_per_atom: float = 12.0):
        self.k, self.bulk, self.grid, self.volume_per_atom = k, bulk, grid, volume_per_atom

    def __call__(self, system: System) -> TensorOutputs:
        cells, batch = system.cells, system.batch
        inverse = torch.linalg.inv(cells)
        fractional = torch.einsum('ni,nij->nj', system.positions, inverse[batch])
        phase = 2 * math.pi * self.grid * fractional
        scale = self.k / (2 * math.pi * self.grid) ** 2
        energy_atoms = scale * (1 - torch.cos(phase)).sum(dim=1)
        # dE/ds = k/(2 pi m) sin(phase); F = -dE/dr = -(dE/ds) inv(cell)^T
        gradient = self.k / (2 * math.pi * self.grid) * torch.sin(phase)
        forces = -torch.einsum('nj,nij->ni', gradient, inverse[batch])
        volume = torch.linalg.det(cells).abs()
        target = self.volume_per_atom * system.counts.to(volume.dtype)
        energy = torch.zeros_like(volume).index_add_(0, batch, energy_atoms)
        energy = energy + 0.5 * self.bulk * target * (volume / target - 1) ** 2
        pressure = self.bulk * (volume / target - 1)
        stress = pressure[:, None, None] * torch.eye(3, dtype=volume.dtype, device=volume.device)
        return energy, forces, stress

    def calculator(self) -> Calculator:
        """The same model as an ASE calculator, for the engines that take one."""
        return _HarmonicCalculator(self)

    def evaluate_batch(self, frames: list[Atoms]) -> list:
        return batch_via_system(self, 'cpu')(frames)


class _HarmonicCalculator(Calculator):
    implemented_properties = ('energy', 'free_energy', 'forces', 'stress')

    def __init__(self, model: HarmonicModel):
        super().__init__()
        self.model = model

    def calculate(self, atoms=None, properties=('energy',), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        ((energy, forces, stress),) = self.model.evaluate_batch([self.atoms])
        self.results = {'energy': energy, 'free_energy': energy, 'forces': forces, 'stress': stress}
