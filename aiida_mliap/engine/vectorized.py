"""The vectorized engine: a batch's relaxations live in one state on the model's device and advance together.

Per step: one model call on the concatenated geometry, the filter's forces, the convergence test and a FIRE step
as batched torch operations (``fire.py``); Python runs per step, not per structure and step. A structure leaves when
it converges or runs out of steps and a waiting one takes its place; the batch is capped by the same memory budget
as the batched engine and halves on out-of-memory; a structure the model fails on (exception, NaN, exploded forces
or cell) leaves with its reason while the others go on. Records and trajectories are the ASE engine's.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress

from ..contract.status import Status
from ..contract.system import System, TensorOutputs, atom_index, ptr_of
from .batched import Finished, graph_size
from .checks import check_outputs
from .fire import FireState, filter_forces, fire_step, largest_row
from .tasks import outputs_record, relaxed_record

Evaluate = Callable[[System], TensorOutputs]
# A cell whose volume leaves [V0 / 8, 8 V0] during a relaxation has exploded or collapsed, whatever the model says.
VOLUME_RATIO_LIMIT = 8.0


class Trajectories:
    """Per structure, what the ASE engine's TrajectoryRecorder keeps: one host transfer per step for the batch."""

    def __init__(self, frames: bool):
        self.frames = frames
        self.steps: dict[int, dict[str, list]] = {}

    def record(self, state: FireState, energy, forces, positions, cells) -> None:
        counts = state.counts.to(energy.dtype)
        force_norms = torch.linalg.vector_norm(forces, dim=1)
        largest = torch.zeros_like(energy).scatter_reduce(0, state.batch, force_norms, 'amax', include_self=False)
        volume = torch.linalg.det(cells).abs()
        host = [t.detach().cpu().numpy() for t in (state.index, energy / counts, largest, volume, state.pbc.all(1))]
        if self.frames:
            ptr = state.ptr.cpu().numpy()
            positions, cells = positions.detach().cpu().numpy(), cells.detach().cpu().numpy()
        for k, (index, per_atom, fmax, vol, periodic) in enumerate(zip(*host, strict=True)):
            steps = self.steps.setdefault(int(index), self._empty())
            steps['energy_per_atom'].append(float(per_atom))
            steps['forces_max'].append(float(fmax))
            steps['volume'].append(float(vol) if periodic else None)
            if self.frames:
                steps['positions'].append(positions[ptr[k] : ptr[k + 1]].tolist())
                steps['cell'].append(cells[k].tolist())

    def _empty(self) -> dict[str, list]:
        steps: dict[str, list] = {'energy_per_atom': [], 'forces_max': [], 'volume': []}
        if self.frames:
            steps.update(positions=[], cell=[])
        return steps

    def pop(self, index: int) -> dict[str, list] | None:
        return self.steps.pop(index, None)


def relax_vectorized(
    structures: list[Atoms],
    evaluate: Evaluate,
    parameters: dict[str, Any],
    budget: int,
    fail: Callable[[BaseException], dict[str, Any]],
    is_out_of_memory: Callable[[BaseException], bool],
    device: str = 'cpu',
) -> Iterator[Finished]:
    """Relax ``structures`` in place, yielding (input index, record, seconds) as each finishes."""
    sizes = [graph_size(atoms) for atoms in structures]
    waiting = deque(range(len(structures)))
    paused: deque[FireState] = deque()  # set aside by an out-of-memory split, optimizer state kept
    trajectories = Trajectories(parameters['trajectory'] == 'frames') if parameters.get('trajectory') else None
    seconds = np.zeros(len(structures))
    active: FireState | None = None

    def load(indices: list[int]) -> FireState:
        system = System.from_atoms([structures[i] for i in indices], device)
        index = torch.as_tensor(indices, dtype=torch.long, device=device)
        return FireState.start(
            index, system.numbers, system.positions, system.cells, system.pbc, system.counts, parameters['relax_cell']
        )

    while waiting or paused or active is not None:
        active = _fill(active, paused, waiting, sizes, budget, load)
        tick = time.perf_counter()
        positions, cells = active.geometry()
        system = System(active.numbers, positions, cells, active.pbc, active.counts)
        try:
            energy, forces, stress = evaluate(system)
        except Exception as exception:
            if len(active) > 1 and is_out_of_memory(exception):
                keep = len(active) // 2
                budget = sum(sizes[i] for i in active.index[:keep].tolist())
                every = torch.arange(len(active), device=active.counts.device)
                paused.appendleft(active.take(every[keep:]))
                active = active.take(every[:keep])
                continue
            outputs, failed = _one_by_one(system, evaluate, fail)
            for k, record in failed.items():
                index = int(active.index[k])
                seconds[index] += time.perf_counter() - tick
                yield index, record, float(seconds[index])
            if len(failed) == len(active):
                active = None
                continue
            kept = torch.as_tensor(sorted(set(range(len(active))) - set(failed)), device=active.counts.device)
            active, system = active.take(kept), system.select(kept)
            energy, forces, stress = outputs
        done = _advance(active, system, energy, forces, stress, parameters, trajectories, structures)
        share = (time.perf_counter() - tick) / len(active)
        seconds[active.index.cpu().numpy()] += share
        for k, record in done:
            index = int(active.index[k])
            yield index, record, float(seconds[index])
        if done:
            remaining = sorted(set(range(len(active))) - {k for k, _ in done})
            active = active.take(torch.as_tensor(remaining, dtype=torch.long, device=active.counts.device))
        if active is not None and len(active) == 0:
            active = None


def _fill(active, paused, waiting, sizes, budget, load) -> FireState:
    """The active batch with paused batches, then waiting structures, brought in while the budget allows (one always
    comes in when nothing is active)."""
    if active is not None and not (paused or waiting):
        return active  # nothing to bring in: no per-step size bookkeeping
    joining = [] if active is None else [active]
    used = 0 if active is None else sum(sizes[i] for i in active.index.tolist())
    while paused:
        size = sum(sizes[i] for i in paused[0].index.tolist())
        if joining and used + size > budget:
            return FireState.join(joining) if len(joining) > 1 else joining[0]
        joining.append(paused.popleft())
        used += size
    new = []
    while waiting and not ((joining or new) and used + sizes[waiting[0]] > budget):
        used += sizes[waiting[0]]
        new.append(waiting.popleft())
    if new:
        joining.append(load(new))
    return FireState.join(joining) if len(joining) > 1 else joining[0]


def _one_by_one(system: System, evaluate: Evaluate, fail) -> tuple[TensorOutputs, dict[int, dict]]:
    """After a failed batched call: each structure alone, so that only the culprits leave."""
    outputs, failed = [], {}
    for k in range(len(system)):
        try:
            outputs.append(evaluate(system.select(torch.tensor([k], device=system.counts.device))))
        except Exception as exception:
            failed[k] = fail(exception)
    if not outputs:
        return (None, None, None), failed
    energy, forces, stress = (torch.cat(parts) for parts in zip(*outputs, strict=True))
    return (energy, forces, stress), failed


def _advance(state, system, energy, forces, stress, parameters, trajectories, structures) -> list[tuple[int, dict]]:
    """Check the outputs, test convergence, hand finished structures back, step the rest; returns [(k, record)]."""
    atom_rows, cell_rows = filter_forces(state, forces, stress, system.cells)
    largest = largest_row(state, atom_rows, cell_rows)
    if trajectories is not None:
        trajectories.record(state, energy, forces, system.positions, system.cells)
    broken, volume_ratio = _screen(state, energy, forces, stress, system.cells)
    converged = largest < parameters['fmax']
    out_of_steps = state.nsteps >= parameters['max_steps']
    finished = broken | converged | out_of_steps
    leaving = finished.nonzero().flatten().tolist()
    done = []
    if leaving:
        for k, (positions, cell, e, f, s, ratio) in zip(
            leaving, _to_host(system, energy, forces, stress, volume_ratio, leaving), strict=True
        ):
            index = int(state.index[k])
            atoms = structures[index]
            atoms.positions, atoms.cell = positions, cell
            trajectory = trajectories.pop(index) if trajectories else None
            done.append((k, _record(e, f, s, ratio, atoms, bool(converged[k]), int(state.nsteps[k]), parameters,
                                    trajectory)))  # fmt: skip
    if not bool(finished.all()):
        fire_step(state, atom_rows, cell_rows)
        state.nsteps = state.nsteps + (~finished).long()
    return done


def _screen(state: FireState, energy, forces, stress, cells) -> tuple[torch.Tensor, torch.Tensor]:
    """Structures whose outputs or cell are unusable (a cheap vectorised screen; the message comes from
    ``check_outputs``, the rule every engine applies, or the volume test), and each cell's volume ratio."""
    bad_atoms = ~torch.isfinite(forces).all(dim=1) | (forces.abs().amax(dim=1) > 1e3)
    bad = torch.zeros(len(state), dtype=torch.long, device=energy.device).index_add_(0, state.batch, bad_atoms.long())
    bad = (bad > 0) | ~torch.isfinite(energy) | ~torch.isfinite(stress).all(dim=(1, 2))
    ratio = torch.linalg.det(cells).abs() / torch.linalg.det(state.cell0).abs()
    ratio = torch.where(state.pbc.all(dim=1), ratio, 1.0)
    bad |= ~((ratio > 1 / VOLUME_RATIO_LIMIT) & (ratio < VOLUME_RATIO_LIMIT))
    return bad, ratio


def _to_host(system: System, energy, forces, stress, volume_ratio, leaving: list[int]) -> list[tuple]:
    """Geometry and outputs of the structures ``leaving`` (indices into the batch), in one transfer each."""
    chosen = torch.as_tensor(leaving, dtype=torch.long, device=energy.device)
    atoms = atom_index(system.ptr, system.counts, chosen)
    ptr = ptr_of(system.counts[chosen]).tolist()
    positions, forces = system.positions[atoms].cpu().numpy(), forces[atoms].detach().cpu().numpy()
    cells, energy = system.cells[chosen].cpu().numpy(), energy[chosen].detach().cpu().numpy()
    stress, ratio = stress[chosen].detach().cpu().numpy(), volume_ratio[chosen].cpu().numpy()
    return [
        (
            positions[ptr[i] : ptr[i + 1]],
            cells[i],
            float(energy[i]),
            forces[ptr[i] : ptr[i + 1]],
            stress[i],
            float(ratio[i]),
        )
        for i in range(len(leaving))
    ]


def _record(energy, forces, stress, volume_ratio, atoms: Atoms, converged, steps, parameters, trajectory) -> dict:
    stress_voigt = full_3x3_to_voigt_6_stress(stress) if atoms.pbc.all() else None
    problem = check_outputs(energy, forces, stress_voigt)
    if problem is None and not 1 / VOLUME_RATIO_LIMIT < volume_ratio < VOLUME_RATIO_LIMIT:
        problem = f'the cell exploded or collapsed (volume {volume_ratio:.3g} times the initial one)'
    if problem:
        return {'status': Status.EXPLODED.value, 'message': problem}
    return relaxed_record(outputs_record(energy, forces, stress_voigt), converged, steps, parameters['fmax'],
                          trajectory)  # fmt: skip
