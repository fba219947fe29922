"""Batched relaxation: many structures advance together, with one batched model evaluation per step.

Each structure keeps its own ASE optimizer and FrechetCellFilter (``tasks.make_optimizer``), so its steps, the
convergence test and the step limit are exactly the ASE engine's; only the model evaluations are batched. A
structure leaves the batch when it converges or runs out of steps, and a waiting one takes its place. The batch is
capped by an estimate of its size (atoms plus neighbours) and halves on out-of-memory; a structure the model fails on
leaves with its reason while the others go on.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from ..contract.schema import Outputs
from .checks import check_outputs
from .tasks import ExplodedError, make_optimizer, outputs_record, relaxed_record, trajectory_of

# Neighbours are estimated within this radius (Å): about the largest cutoff of the supported models' graphs.
NEIGHBOUR_RADIUS = 6.0
# Batch budgets in graph elements (atoms + estimated neighbour pairs). On CPU a batch only amortises per-call overhead,
# and a large one costs memory: 48 MP structures, 1 thread, budget 100,000: CHGNet 1.01x the ASE loop at a 13.4 GB
# peak, M3GNet 1.26x at 6.6 GB; budget 10,000: 1.24x at 2.1 GB and 1.30x at 1.3 GB (benchmarks/relax_throughput.py).
CPU_BUDGET = 10_000
BYTES_PER_ELEMENT_GPU = 20_000  # conservative for CHGNet's bond graph in float32; out-of-memory halves it anyway


def graph_size(atoms: Atoms) -> int:
    """Atoms plus the expected number of neighbour pairs within ``NEIGHBOUR_RADIUS`` (from the density)."""
    volume = abs(atoms.cell.volume) if atoms.pbc.all() else 0.0
    density = len(atoms) / volume if volume > 1e-6 else 0.1
    neighbours = density * 4 / 3 * math.pi * NEIGHBOUR_RADIUS**3
    return int(len(atoms) * (1 + neighbours))


def default_budget(device: str) -> int:
    if device == 'cuda':
        import torch

        free, _ = torch.cuda.mem_get_info()
        return max(1, int(0.8 * free) // BYTES_PER_ELEMENT_GPU)
    return CPU_BUDGET


@dataclass
class Relaxation:
    index: int
    atoms: Atoms
    optimizer: Any
    size: int
    seconds: float = 0.0


# What the engine hands back per structure: (input index, record, seconds spent on it).
Finished = tuple[int, dict[str, Any], float]


def relax_batched(
    structures: list[Atoms],
    evaluate_batch: Callable[[list[Atoms]], list[Outputs]],
    parameters: dict[str, Any],
    budget: int,
    fail: Callable[[BaseException], dict[str, Any]],
    is_out_of_memory: Callable[[BaseException], bool],
) -> Iterator[Finished]:
    """Relax ``structures`` in place, yielding each as it finishes (not in input order).

    ``fail`` turns an exception the model raised on one structure into its failure record.
    """
    waiting = deque(range(len(structures)))
    paused: deque[Relaxation] = deque()  # set aside by an out-of-memory split, optimizer state kept
    active: list[Relaxation] = []
    while waiting or paused or active:
        while paused or waiting:
            size = paused[0].size if paused else graph_size(structures[waiting[0]])
            if active and sum(r.size for r in active) + size > budget:
                break
            if paused:
                active.append(paused.popleft())
            else:
                index = waiting.popleft()
                atoms = structures[index]
                active.append(Relaxation(index, atoms, make_optimizer(atoms, parameters), size))
        tick = time.perf_counter()
        try:
            outputs = evaluate_batch([r.atoms for r in active])
        except Exception as exception:
            if len(active) > 1 and is_out_of_memory(exception):
                keep = len(active) // 2
                budget = sum(r.size for r in active[:keep])
                paused.extendleft(reversed(active[keep:]))
                active = active[:keep]
                continue
            outputs, failed = _one_by_one(active, evaluate_batch, fail)
            for relaxation, record in failed:
                yield relaxation.index, record, relaxation.seconds + time.perf_counter() - tick
            gone = {id(relaxation) for relaxation, _ in failed}
            active = [r for r in active if id(r) not in gone]
        share = (time.perf_counter() - tick) / max(1, len(active))
        still = []
        for relaxation, output in zip(active, outputs, strict=True):
            relaxation.seconds += share
            done = _advance(relaxation, output, parameters, fail)
            if done is None:
                still.append(relaxation)
            else:
                yield relaxation.index, done, relaxation.seconds
        active = still


def _one_by_one(active: list[Relaxation], evaluate_batch, fail) -> tuple[list[Outputs], list]:
    """After a failed batched call: each structure alone, so that only the culprits leave."""
    outputs, failed = [], []
    for relaxation in active:
        try:
            outputs.append(evaluate_batch([relaxation.atoms])[0])
        except Exception as exception:
            failed.append((relaxation, fail(exception)))
    return outputs, failed


def _advance(relaxation: Relaxation, output: Outputs, parameters: dict[str, Any], fail) -> dict[str, Any] | None:
    """Give the structure its evaluation, then one optimizer step; a record when it is finished, else None."""
    atoms, optimizer = relaxation.atoms, relaxation.optimizer
    energy, forces, stress = output
    problem = check_outputs(energy, forces, stress)
    if problem:
        return fail(ExplodedError(problem))
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.asarray(forces), stress=np.asarray(stress))
    optimizer.call_observers()  # as ASE's own loop does after every evaluation (the trajectory recorder)
    converged = bool(optimizer.converged())
    if converged or optimizer.nsteps >= parameters['max_steps']:
        stress_out = atoms.get_stress(voigt=True) if atoms.pbc.all() else None
        record = outputs_record(float(atoms.get_potential_energy()), atoms.get_forces(), stress_out)
        return relaxed_record(record, converged, int(optimizer.nsteps), parameters['fmax'], trajectory_of(optimizer))
    optimizer.step()
    optimizer.nsteps += 1
    return None
