"""A batch of structures as concatenated tensors: the form in which the vectorized engine talks to a model."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress

# Energy (B,), forces (N, 3) and full 3x3 stress (B, 3, 3) in eV, eV/Å, eV/Å^3, float64, on the system's device.
TensorOutputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
# ASE's Voigt order (xx, yy, zz, yz, xz, xy) -> the full symmetric tensor
VOIGT_TO_FULL = [[0, 5, 4], [5, 1, 3], [4, 3, 2]]


@dataclass
class System:
    """``B`` structures of ``N`` atoms in all; cells are rows of lattice vectors, as in ASE."""

    numbers: torch.Tensor  # (N,) long
    positions: torch.Tensor  # (N, 3) float64
    cells: torch.Tensor  # (B, 3, 3) float64
    pbc: torch.Tensor  # (B, 3) bool
    counts: torch.Tensor  # (B,) long: atoms per structure

    @cached_property
    def batch(self) -> torch.Tensor:
        return batch_of(self.counts)

    @cached_property
    def ptr(self) -> torch.Tensor:
        return ptr_of(self.counts)

    def __len__(self) -> int:
        return len(self.counts)

    @classmethod
    def from_atoms(cls, frames: list[Atoms], device: str | torch.device = 'cpu') -> System:
        as64 = {'dtype': torch.float64, 'device': device}
        return cls(
            numbers=torch.as_tensor(np.concatenate([a.numbers for a in frames]), dtype=torch.long, device=device),
            positions=torch.as_tensor(np.concatenate([a.positions for a in frames]), **as64),
            cells=torch.as_tensor(np.stack([a.cell.array for a in frames]), **as64),
            pbc=torch.as_tensor(np.stack([a.pbc for a in frames]), dtype=torch.bool, device=device),
            counts=torch.as_tensor([len(a) for a in frames], dtype=torch.long, device=device),
        )

    def to_atoms(self) -> list[Atoms]:
        numbers, positions = self.numbers.cpu().numpy(), self.positions.detach().cpu().numpy()
        cells, pbc, ptr = self.cells.detach().cpu().numpy(), self.pbc.cpu().numpy(), self.ptr.cpu().numpy()
        return [
            Atoms(numbers=numbers[s:e], positions=positions[s:e], cell=cells[b], pbc=pbc[b])
            for b, (s, e) in enumerate(itertools.pairwise(ptr))
        ]

    def select(self, structures: torch.Tensor) -> System:
        """The structures at the given indices (a long tensor), in that order."""
        atoms = atom_index(self.ptr, self.counts, structures)
        return System(
            self.numbers[atoms], self.positions[atoms], self.cells[structures], self.pbc[structures],
            self.counts[structures],
        )  # fmt: skip


def batch_of(counts: torch.Tensor) -> torch.Tensor:
    """The structure each atom belongs to, from the atoms per structure."""
    return torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)


def ptr_of(counts: torch.Tensor) -> torch.Tensor:
    """Offsets of each structure's first atom, and the total at the end (B + 1,)."""
    return torch.nn.functional.pad(torch.cumsum(counts, 0), (1, 0))


def atom_index(ptr: torch.Tensor, counts: torch.Tensor, structures: torch.Tensor) -> torch.Tensor:
    """Indices of the atoms of ``structures`` (in that order) in a concatenation described by ``ptr``/``counts``."""
    chosen = counts[structures]
    starts = torch.repeat_interleave(ptr[structures], chosen)
    first = torch.repeat_interleave(torch.cumsum(chosen, 0) - chosen, chosen)
    return starts + torch.arange(int(chosen.sum()), device=ptr.device) - first


def via_atoms(evaluate_batch: Callable[[list[Atoms]], list]) -> Callable[[System], TensorOutputs]:
    """A framework's list-of-Atoms batched call as a tensor call: the frameworks whose graph builders live on the CPU
    (CHGNet, matgl) cross to the host once per step, in one transfer each way."""

    def evaluate(system: System) -> TensorOutputs:
        outputs = evaluate_batch(system.to_atoms())
        device = system.positions.device
        as64 = {'dtype': torch.float64, 'device': device}
        energy = torch.as_tensor([float(e) for e, _, _ in outputs], **as64)
        forces = torch.as_tensor(np.concatenate([np.asarray(f, dtype=float) for _, f, _ in outputs]), **as64)
        voigt = torch.as_tensor(np.stack([np.asarray(s, dtype=float) for _, _, s in outputs]), **as64)
        return energy, forces.reshape(-1, 3), voigt[:, VOIGT_TO_FULL]

    return evaluate


def batch_via_system(evaluate_system: Callable[[System], TensorOutputs], device: str) -> Callable[[list[Atoms]], list]:
    """A model's tensor call as a list-of-Atoms call (single points): one transfer to the device and back."""

    def evaluate(frames: list[Atoms]) -> list:
        system = System.from_atoms(frames, device)
        energy, forces, stress = (t.detach().cpu().numpy() for t in evaluate_system(system))
        ptr = system.ptr.tolist()
        return [
            (float(energy[b]), forces[ptr[b] : ptr[b + 1]], full_3x3_to_voigt_6_stress(stress[b]))
            for b in range(len(frames))
        ]

    return evaluate
