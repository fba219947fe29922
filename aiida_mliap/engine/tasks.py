"""Static and relaxation tasks on one structure with ASE: the reference path every engine must match."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE, LBFGS
from ase.optimize.optimize import Optimizer

from ..contract.status import Status
from .checks import check_outputs

OPTIMIZER_CLASSES = {'FIRE': FIRE, 'BFGS': BFGS, 'LBFGS': LBFGS}


class ExplodedError(RuntimeError):
    """The model returned NaN/inf or absurd forces."""


def evaluate(atoms: Atoms) -> dict[str, Any]:
    """Energy, largest force and stress of ``atoms`` with its attached calculator."""
    stress = atoms.get_stress(voigt=True) if atoms.pbc.all() else None
    return outputs_record(float(atoms.get_potential_energy()), atoms.get_forces(), stress)


def outputs_record(energy: float, forces: np.ndarray, stress: np.ndarray | None) -> dict[str, Any]:
    """The schema's energy fields from raw model outputs; raises ExplodedError on NaN/inf or absurd forces."""
    problem = check_outputs(energy, forces, stress)
    if problem:
        raise ExplodedError(problem)
    return {
        'energy': energy,
        'energy_per_atom': energy / len(forces),
        'forces_max': float(np.linalg.norm(forces, axis=1).max()),
        'stress': None if stress is None else [float(s) for s in stress],
        'forces': forces,  # the runner keeps them only when asked (``keep_forces``)
    }


def make_optimizer(atoms: Atoms, parameters: dict[str, Any]) -> Optimizer:
    """The ASE optimizer (with FrechetCellFilter and FixSymmetry as asked) that relaxes ``atoms`` in place.

    Both engines build it here, so the steps, the convergence test (largest force row of the filter, stress
    included, below ``fmax``) and the step limit are the same whether evaluations are batched or not.
    """
    if parameters['fix_symmetry']:
        from ase.constraints import FixSymmetry

        atoms.set_constraint(FixSymmetry(atoms, symprec=parameters['symprec']))
    system = FrechetCellFilter(atoms) if parameters['relax_cell'] and atoms.pbc.all() else atoms
    optimizer = OPTIMIZER_CLASSES[parameters['optimizer']](system, logfile=None)
    optimizer.fmax = parameters['fmax']
    optimizer.recorder = None
    if parameters.get('trajectory'):
        optimizer.recorder = TrajectoryRecorder(atoms, frames=parameters['trajectory'] == 'frames')
        optimizer.attach(optimizer.recorder)  # ASE calls observers on the first evaluation and after every step
    return optimizer


class TrajectoryRecorder:
    """Per evaluated step of a relaxation: energy per atom, largest atomic force, volume; positions and cell only
    when frames are asked for. Compact enough to keep for every structure of a study that asks for it."""

    def __init__(self, atoms: Atoms, frames: bool = False):
        self.atoms, self.frames = atoms, frames
        self.steps: dict[str, list] = {'energy_per_atom': [], 'forces_max': [], 'volume': []}
        if frames:
            self.steps.update(positions=[], cell=[])

    def __call__(self) -> None:
        atoms = self.atoms
        self.steps['energy_per_atom'].append(float(atoms.get_potential_energy()) / len(atoms))
        self.steps['forces_max'].append(float(np.linalg.norm(atoms.get_forces(), axis=1).max()))
        self.steps['volume'].append(float(atoms.get_volume()) if atoms.pbc.all() else None)
        if self.frames:
            self.steps['positions'].append(atoms.get_positions().tolist())
            self.steps['cell'].append(atoms.cell[:].tolist())


def trajectory_of(optimizer: Optimizer) -> dict[str, list] | None:
    return optimizer.recorder.steps if getattr(optimizer, 'recorder', None) is not None else None


def relax(atoms: Atoms, parameters: dict[str, Any]) -> tuple[bool, int, dict[str, list] | None]:
    """Relax ``atoms`` in place; return (converged, steps taken, trajectory if asked for)."""
    optimizer = make_optimizer(atoms, parameters)
    converged = bool(optimizer.run(fmax=parameters['fmax'], steps=parameters['max_steps']))
    return converged, int(optimizer.nsteps), trajectory_of(optimizer)


def run_task(atoms: Atoms, calculator: Calculator, parameters: dict[str, Any]) -> dict[str, Any]:
    """Run the requested task; the returned record follows the shared result schema (minus bookkeeping)."""
    atoms.calc = calculator
    if parameters['task'] == 'static':
        return static_record(evaluate(atoms))
    converged, steps, trajectory = relax(atoms, parameters)
    return relaxed_record(evaluate(atoms), converged, steps, parameters['fmax'], trajectory)


def relaxed_record(
    outputs: dict[str, Any], converged: bool, steps: int, fmax: float, trajectory: dict[str, list] | None = None
) -> dict[str, Any]:
    status = Status.OK if converged else Status.UNCONVERGED
    message = '' if converged else f'not converged to fmax {fmax} eV/Å in {steps} steps'
    record = {**outputs, 'converged': converged, 'n_steps': steps, 'status': status.value, 'message': message}
    if trajectory is not None:
        record['trajectory'] = trajectory
    return record


def static_record(outputs: dict[str, Any]) -> dict[str, Any]:
    return {**outputs, 'converged': True, 'n_steps': 0, 'status': Status.OK.value, 'message': ''}
