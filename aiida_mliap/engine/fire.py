"""FIRE with ASE's FrechetCellFilter, for a whole batch at once in torch.

The same arithmetic as ``ase.optimize.FIRE`` on ``ase.filters.FrechetCellFilter(atoms)`` (ASE 3.23-3.29), with every
structure's scalars (dt, a, the step counter) in vectors and every sum a segment sum. The filter's degrees of freedom
are kept as ASE defines them: positions in the undeformed cell and ``n_atoms * log(F)`` for the deformation gradient
F. ASE recovers both from the atoms every step (a solve and scipy's ``logm``); here they are the state, so no matrix
logarithm is ever needed, and the cell gradient's Fréchet derivative is one 6x6 matrix exponential per structure.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property

import torch

from ..contract.system import atom_index, batch_of, ptr_of

# ase.optimize.FIRE's defaults
DT, MAXSTEP, DTMAX, NMIN, FINC, FDEC, ASTART, FA = 0.1, 0.2, 1.0, 5, 1.1, 0.5, 0.1, 0.99


@dataclass
class FireState:
    """Everything a batch of relaxations carries from one step to the next (float64 on one device)."""

    index: torch.Tensor  # (B,) the structures' positions in the runner's input
    numbers: torch.Tensor  # (N,)
    counts: torch.Tensor  # (B,)
    pbc: torch.Tensor  # (B, 3)
    cell_free: torch.Tensor  # (B,) whether the cell relaxes (FrechetCellFilter) or stays
    cell0: torch.Tensor  # (B, 3, 3) the cell the filter started from
    undeformed: torch.Tensor  # (N, 3) positions before the deformation gradient is applied
    cell_dof: torch.Tensor  # (B, 3, 3) n_atoms * log(F)
    velocity: torch.Tensor  # (N, 3)
    cell_velocity: torch.Tensor  # (B, 3, 3)
    dt: torch.Tensor  # (B,)
    a: torch.Tensor  # (B,)
    since_negative: torch.Tensor  # (B,) FIRE's Nsteps: steps since P = F.v was last negative
    started: torch.Tensor  # (B,) False until the first step (ASE's `vel is None`)
    nsteps: torch.Tensor  # (B,)

    @classmethod
    def start(cls, index, numbers, positions, cells, pbc, counts, relax_cell: bool) -> FireState:
        b, device = len(counts), positions.device
        return cls(
            index=index, numbers=numbers, counts=counts, pbc=pbc, cell_free=pbc.all(dim=1) & relax_cell,
            cell0=cells.clone(), undeformed=positions.clone(), cell_dof=torch.zeros_like(cells),
            velocity=torch.zeros_like(positions), cell_velocity=torch.zeros_like(cells),
            dt=torch.full((b,), DT, dtype=torch.float64, device=device),
            a=torch.full((b,), 0.1, dtype=torch.float64, device=device),
            since_negative=torch.zeros(b, dtype=torch.long, device=device),
            started=torch.zeros(b, dtype=torch.bool, device=device),
            nsteps=torch.zeros(b, dtype=torch.long, device=device),
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.counts)

    # derived once per batch composition (take/join make new states), read several times per step
    @cached_property
    def batch(self) -> torch.Tensor:
        return batch_of(self.counts)

    @cached_property
    def ptr(self) -> torch.Tensor:
        return ptr_of(self.counts)

    def deformation(self) -> torch.Tensor:
        """F = expm(cell_dof / n_atoms), as FrechetCellFilter.set_positions computes it."""
        return torch.linalg.matrix_exp(self.cell_dof / self.counts.to(torch.float64)[:, None, None])

    def geometry(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Cartesian positions (N, 3) and cells (B, 3, 3): cell = cell0 F^T, r = u F^T."""
        deformation = self.deformation()
        cells = self.cell0 @ deformation.transpose(1, 2)
        positions = torch.einsum('nj,nij->ni', self.undeformed, deformation[self.batch])
        return positions, cells

    def take(self, structures: torch.Tensor) -> FireState:
        """The relaxations at ``structures`` (indices into this batch), in that order."""
        atoms = atom_index(self.ptr, self.counts, structures)
        per_atom = {'numbers', 'undeformed', 'velocity'}
        return FireState(**{
            f.name: getattr(self, f.name)[atoms if f.name in per_atom else structures] for f in fields(self)
        })  # fmt: skip

    @staticmethod
    def join(states: list[FireState]) -> FireState:
        return FireState(**{f.name: torch.cat([getattr(s, f.name) for s in states]) for f in fields(FireState)})


def segment_sum(values: torch.Tensor, batch: torch.Tensor, size: int) -> torch.Tensor:
    return torch.zeros(size, dtype=values.dtype, device=values.device).index_add_(0, batch, values)


def filter_forces(
    state: FireState, forces: torch.Tensor, stress: torch.Tensor, cells: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """FrechetCellFilter.get_forces for every structure: atom rows f F and the cell rows, the gradient with respect
    to log(F) of the (zero-pressure) enthalpy divided by n_atoms. Fixed cells get zero cell rows."""
    deformation = state.deformation()
    atom_rows = torch.einsum('nj,nji->ni', forces, deformation[state.batch])
    volume = torch.linalg.det(cells).abs()
    virial = -volume[:, None, None] * stress
    # ucf_cell_grad = virial inv(F^T)
    gradient = torch.linalg.solve(deformation, virial.transpose(1, 2)).transpose(1, 2)
    log_f = state.cell_dof / state.counts.to(torch.float64)[:, None, None]
    cell_rows = expm_frechet_adjoint(log_f, gradient) / state.counts.to(torch.float64)[:, None, None]
    cell_rows = torch.where(state.cell_free[:, None, None], cell_rows, torch.zeros_like(cell_rows))
    return atom_rows, cell_rows


def expm_frechet_adjoint(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """M with M[mu, nu] = sum(L(x, E_mu_nu) * g), L the Fréchet derivative of expm: that is L(x^T, g), the
    upper-right block of expm([[x^T, g], [0, x^T]]) (ASE sums nine scipy expm_frechet calls instead)."""
    b = x.shape[0]
    block = torch.zeros((b, 6, 6), dtype=x.dtype, device=x.device)
    block[:, :3, :3] = x.transpose(1, 2)
    block[:, 3:, 3:] = x.transpose(1, 2)
    block[:, :3, 3:] = g
    return torch.linalg.matrix_exp(block)[:, :3, 3:]


def largest_row(state: FireState, atom_rows: torch.Tensor, cell_rows: torch.Tensor) -> torch.Tensor:
    """Per structure, the largest norm of a row of the filter's forces (ASE's convergence measure)."""
    atom_norms = torch.linalg.vector_norm(atom_rows, dim=1)
    largest = torch.zeros(len(state), dtype=atom_norms.dtype, device=atom_norms.device)
    largest = largest.scatter_reduce(0, state.batch, atom_norms, reduce='amax', include_self=True)
    return torch.maximum(largest, torch.linalg.vector_norm(cell_rows, dim=2).amax(dim=1))


def fire_step(state: FireState, atom_rows: torch.Tensor, cell_rows: torch.Tensor) -> None:
    """One ase.optimize.FIRE.step for every structure of ``state``, in place."""
    batch, b = state.batch, len(state)

    def dot(x: torch.Tensor, y: torch.Tensor, xc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
        return segment_sum((x * y).sum(dim=1), batch, b) + (xc * yc).sum(dim=(1, 2))

    v, vc = state.velocity, state.cell_velocity
    vf = dot(atom_rows, v, cell_rows, vc)
    grad2 = dot(atom_rows, atom_rows, cell_rows, cell_rows)
    vv = dot(v, v, vc, vc)
    uphill_free = state.started & (vf > 0.0)
    reset = state.started & ~(vf > 0.0)
    # P > 0: mix the velocity toward the force; after Nmin such steps, longer steps and less mixing
    mix = torch.where(uphill_free, state.a / torch.sqrt(torch.where(grad2 > 0, grad2, 1.0)) * torch.sqrt(vv), 0.0)
    keep = torch.where(uphill_free, 1.0 - state.a, 1.0)
    v = keep[batch, None] * v + mix[batch, None] * atom_rows
    vc = keep[:, None, None] * vc + mix[:, None, None] * cell_rows
    grow = uphill_free & (state.since_negative > NMIN)
    state.dt = torch.where(grow, torch.clamp(state.dt * FINC, max=DTMAX), state.dt)
    state.a = torch.where(grow, state.a * FA, state.a)
    state.since_negative = torch.where(uphill_free, state.since_negative + 1, state.since_negative)
    # P <= 0: stop, restart the mixing, halve the step
    v = torch.where(reset[batch, None], 0.0, v)
    vc = torch.where(reset[:, None, None], 0.0, vc)
    state.a = torch.where(reset, ASTART, state.a)
    state.dt = torch.where(reset, state.dt * FDEC, state.dt)
    state.since_negative = torch.where(reset, 0, state.since_negative)
    # Euler step, the whole structure's displacement (atoms and cell rows together) capped at maxstep
    dt = state.dt
    v = v + dt[batch, None] * atom_rows
    vc = vc + dt[:, None, None] * cell_rows
    dr, drc = dt[batch, None] * v, dt[:, None, None] * vc
    norm = torch.sqrt(dot(dr, dr, drc, drc))
    scale = torch.where(norm > MAXSTEP, MAXSTEP / torch.where(norm > 0, norm, 1.0), 1.0)
    state.undeformed = state.undeformed + scale[batch, None] * dr
    state.cell_dof = state.cell_dof + scale[:, None, None] * drc
    state.velocity, state.cell_velocity = v, vc
    state.started = torch.ones_like(state.started)
