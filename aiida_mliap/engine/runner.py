"""``aiida-mliap-run``: evaluate one model on a batch of structures, each structure failing alone.

Reads ``parameters.json``, ``structures.extxyz`` and the ``model/`` folder from the input directory; writes
``results.json`` (plus ``results.partial.jsonl`` as it goes, so a killed run loses nothing finished) and
``final_structures.extxyz``. Exit status 0 whenever the batch was attempted, 2 when the run could not start
(wrong model hash, model that does not load, bad parameters).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any

import ase
import ase.io
import numpy as np
from ase import Atoms

from ..contract import files
from ..contract.hashing import sha256_of_model
from ..contract.parameters import validate_parameters, with_defaults
from ..contract.schema import empty_result
from ..contract.status import WITH_RESULT, Status
from ..contract.system import batch_via_system, via_atoms
from .batched import default_budget, graph_size, relax_batched
from .checks import check_structure
from .tasks import ExplodedError, outputs_record, run_task, static_record
from .vectorized import relax_vectorized

EXIT_FATAL = 2
# Structures per batched model call: small enough that progress and partial results keep flowing.
STATIC_BATCH = 16


class FatalError(Exception):
    """The batch cannot be attempted at all; ``kind`` is recorded for the parser."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def default_threads() -> int:
    """Cores this job may use: OMP_NUM_THREADS if set, else the scheduler's count, else the CPU affinity mask."""
    for variable in ('OMP_NUM_THREADS', 'SLURM_CPUS_PER_TASK', 'PBS_NUM_PPN', 'NSLOTS'):
        value = os.environ.get(variable, '')
        if value.isdigit() and int(value) > 0:
            return int(value)
    return available_cores()


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity mask)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)


def resolve_device(requested: str) -> str:
    import torch

    if requested == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if requested == 'cuda' and not torch.cuda.is_available():
        raise FatalError('device_unavailable', 'device `cuda` was requested but torch sees no CUDA device')
    return requested


def describe_environment(framework: Any, loaded: Any, threads: int) -> dict[str, Any]:
    import torch

    on_gpu = loaded.device == 'cuda' and torch.cuda.is_available()
    return {
        'framework': framework.name,
        'framework_version': framework.version(),
        'torch_version': torch.__version__,
        'cuda_version': torch.version.cuda,
        'device': loaded.device,
        'device_name': torch.cuda.get_device_name(0) if on_gpu else platform.processor() or 'cpu',
        'torch_threads': threads,
        'ase_version': ase.__version__,
        'python_version': platform.python_version(),
        'hostname': socket.gethostname(),
        'model_adaptations': loaded.adaptations,
        'dtype': str(loaded.dtype),
    }


def budget_chunks(structures: list[Atoms], budget: int, most: int = STATIC_BATCH) -> list[list[Atoms]]:
    """Consecutive chunks of at most ``most`` structures whose graph sizes fit ``budget`` (a structure larger than the
    budget goes alone): single points keep to the memory budget of the batched relaxations."""
    chunks: list[list[Atoms]] = []
    size = 0
    for atoms in structures:
        cost = graph_size(atoms)
        if not chunks or len(chunks[-1]) >= most or size + cost > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(atoms)
        size += cost
    return chunks


def peak_memory_mb() -> float:
    """This process's peak resident memory (MB), as the kernel counts it."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def is_out_of_memory(exception: BaseException) -> bool:
    return isinstance(exception, MemoryError) or 'out of memory' in str(exception).lower()


def engine_used(loaded: Any, parameters: dict[str, Any]) -> tuple[str, str | None]:
    """The engine that runs these parameters, and why it is not the one asked for (None when it is).

    ``vectorized`` covers FIRE, with or without the cell filter; the symmetry constraint and the other optimizers
    keep their per-structure ASE optimizers in the ``batched`` engine. Single points are batched regardless: on the
    device (``vectorized``) where the framework has a tensor path, else through its batched call.
    """
    asked = parameters['engine']
    if loaded.evaluate_batch is None and loaded.evaluate_system is None:
        reason = None if asked == 'ase' else 'the framework has no batched model call'
        return 'ase', reason
    if parameters['task'] == 'static':
        return ('vectorized' if loaded.evaluate_system is not None else 'batched'), None
    if asked != 'vectorized':
        return asked, None
    if parameters['fix_symmetry']:
        return 'batched', 'the vectorized engine has no symmetry constraint: ASE FixSymmetry per structure'
    if parameters['optimizer'] != 'FIRE':
        return 'batched', f'the vectorized engine implements FIRE only, not {parameters["optimizer"]}'
    return 'vectorized', None


def system_evaluator(loaded: Any):
    """The model as a tensor call: its own device path where it has one, else its batched call through the host."""
    return loaded.evaluate_system or via_atoms(loaded.evaluate_batch)


def failure_record(framework: Any, exception: BaseException) -> dict[str, Any]:
    """The status and reason of a structure the model failed on; the others of its batch go on."""
    if isinstance(exception, ExplodedError):
        return {'status': Status.EXPLODED.value, 'message': str(exception)}
    if is_out_of_memory(exception):
        _release_memory()
        return {'status': Status.OUT_OF_MEMORY.value, 'message': str(exception).splitlines()[0]}
    known = framework.classify_error(exception)
    if known:
        return {'status': known[0].value, 'message': known[1]}
    last = traceback.format_exception_only(type(exception), exception)[-1].strip()
    return {'status': Status.ERROR.value, 'message': last}


def clean_copy(atoms: Atoms, label: str) -> Atoms:
    """The structure alone (no calculator, constraint or results), ready for extxyz."""
    copy = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    copy.info['label'] = label
    return copy


class Runner:
    def __init__(self, directory: Path, device: str | None, threads: int | None):
        self.directory = directory
        self.requested_device = device
        self.threads = threads or default_threads()

    def read_inputs(self) -> tuple[dict[str, Any], list[Atoms]]:
        try:
            raw = json.loads((self.directory / files.PARAMETERS).read_text())
            model = raw.pop('model')
        except (OSError, ValueError, KeyError) as exception:
            raise FatalError('invalid_input', f'cannot read {files.PARAMETERS}: {exception}') from exception
        problem = validate_parameters(raw)
        if problem:
            raise FatalError('invalid_input', problem)
        try:
            structures = ase.io.read(self.directory / files.STRUCTURES, index=':', format='extxyz')
        except Exception as exception:
            raise FatalError('invalid_input', f'cannot read {files.STRUCTURES}: {exception}') from exception
        labels = [atoms.info.get('label') for atoms in structures]
        if not all(isinstance(label, str) for label in labels) or len(set(labels)) != len(labels):
            raise FatalError('invalid_input', 'every structure needs a unique string `label` in its extxyz info')
        return {**with_defaults(raw), 'model': model}, structures

    def check_model(self, model: dict[str, Any]) -> None:
        model_dir = self.directory / files.MODEL_DIR
        try:
            actual = sha256_of_model(model_dir)
        except (OSError, ValueError) as exception:
            raise FatalError('model_missing', f'cannot read the model in {model_dir}: {exception}') from exception
        if actual != model['sha256']:
            raise FatalError(
                'model_hash_mismatch',
                f'the model files hash to {actual}, but the model node says {model["sha256"]}: refusing to run',
            )

    def load_model(self, parameters: dict[str, Any]):
        from ..frameworks import get_framework

        model = parameters['model']
        try:
            framework = get_framework(model['framework'])
            dtype = framework.resolve_dtype(parameters['dtype'] or model.get('default_dtype'))
        except ValueError as exception:
            raise FatalError('invalid_input', str(exception)) from exception
        device = resolve_device(self.requested_device or parameters['device'])
        try:
            loaded = framework.load(
                self.directory / files.MODEL_DIR, model['files'], device, dtype, model.get('options', {})
            )
        except Exception as exception:
            raise FatalError(
                'model_load_failed', f'{model["framework"]} could not load the model: {exception}'
            ) from exception
        return framework, loaded

    def run_one(self, atoms: Atoms, framework, loaded, parameters: dict[str, Any]) -> dict[str, Any]:
        problem = check_structure(atoms, loaded.supported_numbers)
        if problem:
            return {'status': problem[0].value, 'message': problem[1]}
        try:
            return run_task(atoms, loaded.calculator, parameters)
        except Exception as exception:
            return failure_record(framework, exception)

    def records(self, structures: list[Atoms], framework, loaded, parameters: dict[str, Any]):
        """Yield ``(atoms, record, seconds)`` per structure, batching model calls where the framework can."""
        engine, _ = engine_used(loaded, parameters)
        if engine != 'ase' and parameters['task'] == 'static':
            budget = parameters['batch_budget'] or default_budget(loaded.device)
            evaluate = loaded.evaluate_batch
            if engine == 'vectorized':
                evaluate = batch_via_system(loaded.evaluate_system, loaded.device)
            for chunk in budget_chunks(structures, budget):
                yield from self.static_batch(chunk, framework, loaded, parameters, evaluate)
            return
        if engine != 'ase':
            yield from self.relax_batch(structures, framework, loaded, parameters, engine)
            return
        for atoms in structures:
            tick = time.perf_counter()
            record = self.run_one(atoms, framework, loaded, parameters)
            yield atoms, record, time.perf_counter() - tick

    def relax_batch(self, structures: list[Atoms], framework, loaded, parameters: dict[str, Any], engine: str):
        """A batched engine over the structures that pass the checks (the others fail at once, alone)."""
        valid = []
        for atoms in structures:
            problem = check_structure(atoms, loaded.supported_numbers)
            if problem:
                yield atoms, {'status': problem[0].value, 'message': problem[1]}, 0.0
            else:
                valid.append(atoms)
        budget = parameters['batch_budget'] or default_budget(loaded.device)
        fail = partial(failure_record, framework)
        if engine == 'vectorized':
            evaluate = system_evaluator(loaded)
            finished = relax_vectorized(valid, evaluate, parameters, budget, fail, is_out_of_memory, loaded.device)
        else:
            finished = relax_batched(valid, loaded.evaluate_batch, parameters, budget, fail, is_out_of_memory)
        for index, record, seconds in finished:
            yield valid[index], record, seconds

    def static_batch(self, chunk: list[Atoms], framework, loaded, parameters: dict[str, Any], evaluate):
        """One batched call for the valid structures; if it fails, one by one so the culprit fails alone."""
        tick = time.perf_counter()
        problems = [check_structure(atoms, loaded.supported_numbers) for atoms in chunk]
        valid = [atoms for atoms, problem in zip(chunk, problems, strict=True) if problem is None]
        try:
            outputs = iter(evaluate(valid) if valid else [])
        except Exception:
            for atoms in chunk:
                single = time.perf_counter()
                yield atoms, self.run_one(atoms, framework, loaded, parameters), time.perf_counter() - single
            return
        seconds = (time.perf_counter() - tick) / len(chunk)
        for atoms, problem in zip(chunk, problems, strict=True):
            if problem:
                record = {'status': problem[0].value, 'message': problem[1]}
            else:
                try:
                    record = static_record(outputs_record(*next(outputs)))
                except ExplodedError as exception:
                    record = {'status': Status.EXPLODED.value, 'message': str(exception)}
                except Exception:
                    # Batched outputs unusable for this structure: the calculator path classifies it alone.
                    record = self.run_one(atoms, framework, loaded, parameters)
            yield atoms, record, seconds

    def run(self) -> int:
        started = time.perf_counter()
        # At once, before the model loads: a job killed from here on reads as stopped early, its structures not run.
        (self.directory / files.RESULTS_PARTIAL).touch()
        try:
            parameters, structures = self.read_inputs()
            self.check_model(parameters['model'])
            set_threads(self.threads)
            framework, loaded = self.load_model(parameters)
        except FatalError as error:
            self.write_results({'fatal_error': {'kind': error.kind, 'message': str(error)}, 'results': []})
            print(f'FATAL [{error.kind}] {error}', flush=True)
            return EXIT_FATAL

        environment = describe_environment(framework, loaded, self.threads)
        environment['engine'], fallback = engine_used(loaded, parameters)
        if fallback:
            environment['engine_fallback'] = fallback
        print(
            f'aiida-mliap-run: {len(structures)} structures, task {parameters["task"]}, '
            f'{framework.name} {environment["framework_version"]} on {loaded.device} ({loaded.dtype}, '
            f'{self.threads} threads, {environment["engine"]} engine)',
            flush=True,
        )
        results = []
        partial_file = (self.directory / files.RESULTS_PARTIAL).open('w')
        final_path = self.directory / files.FINAL_STRUCTURES
        final_path.write_text('')
        progress = self.records(structures, framework, loaded, parameters)
        for index, (atoms, record, seconds) in enumerate(progress, start=1):
            label = atoms.info['label']
            record = {
                'label': label,
                'n_atoms': len(atoms),
                'formula': atoms.get_chemical_formula(mode='metal'),
                'task': parameters['task'],
                'model_sha256': parameters['model']['sha256'],
                'wall_time_s': seconds,
                **empty_result(),
                **record,
            }
            forces = record.pop('forces', None)
            if parameters['keep_forces'] and forces is not None:
                record['forces'] = np.asarray(forces, dtype=float).tolist()
            if parameters['task'] == 'relax' and Status(record['status']) in WITH_RESULT:
                ase.io.write(final_path, clean_copy(atoms, label), format='extxyz', append=True)
            results.append(record)
            partial_file.write(json.dumps(record) + '\n')
            partial_file.flush()
            elapsed = time.perf_counter() - started
            print(
                f'[{index}/{len(structures)}] {label} {record["status"]} '
                f'{record["wall_time_s"]:.2f} s ({index / elapsed:.2f} structures/s)',
                flush=True,
            )
        partial_file.close()
        wall = time.perf_counter() - started
        environment['peak_memory_mb'] = peak_memory_mb()
        self.write_results({'environment': environment, 'wall_time_s': wall, 'results': results})
        print(
            f'done: {len(structures)} in {wall:.1f} s, peak memory {environment["peak_memory_mb"]:.0f} MB', flush=True
        )
        return 0

    def write_results(self, content: dict[str, Any]) -> None:
        target = self.directory / files.RESULTS
        temporary = target.with_suffix('.tmp')
        temporary.write_text(json.dumps(content, indent=1))
        temporary.replace(target)


def set_threads(threads: int) -> None:
    """Torch gets the job's cores; BLAS (numpy/scipy) gets one thread.

    The runner's BLAS work is 3x3 algebra (FrechetCellFilter's matrix logarithm and exponential derivatives, every
    step), where extra OpenBLAS threads only spin: measured on a loaded 2-core machine, expm_frechet + logm of a 3x3
    took 26.8 ms with OpenBLAS's default 2 threads and 2.7 ms with one, 60 % of an ASE CHGNet relaxation's time.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=1, user_api='blas')


def _release_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def environment_facts() -> dict[str, Any]:
    """This environment as the aiida side needs to know it: Python, torch and each framework's version."""
    import importlib.metadata

    from ..frameworks import available_frameworks, get_framework

    def version(distribution: str) -> str | None:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    frameworks = {}
    for name in available_frameworks():
        framework = get_framework(name)
        frameworks[name] = version(framework.distribution) if framework.is_installed() else None
    return {'python': platform.python_version(), 'executable': sys.executable, 'torch': version('torch'),
            'frameworks': frameworks}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='aiida-mliap-run', description=__doc__.splitlines()[0])
    parser.add_argument('directory', nargs='?', default='.', type=Path, help='input folder (default: current)')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), help='overrides the parameters file')
    parser.add_argument('--threads', type=int, help='torch intra-op threads (default: cores given by the scheduler)')
    parser.add_argument('--environment', action='store_true', help="print this environment's frameworks (JSON)")
    parser.add_argument('--describe', metavar='SOURCE', help='print what the framework knows of a checkpoint (a '
                        'bundled name or a path) as JSON, for registering it from another environment')  # fmt: skip
    parser.add_argument('--framework', help="with --describe: the checkpoint's framework")
    parser.add_argument('--options', default='{}', help="with --describe: the model's options (JSON)")
    arguments = parser.parse_args(argv)
    if arguments.environment:
        print(json.dumps(environment_facts()))
        return 0
    if arguments.describe:
        from ..frameworks import describe

        try:
            facts = describe(arguments.describe, arguments.framework, json.loads(arguments.options))
        except (ValueError, OSError, ImportError) as exception:
            print(f'refused: {exception}', file=sys.stderr)
            return 2
        print(json.dumps(facts))
        return 0
    return Runner(arguments.directory, arguments.device, arguments.threads).run()


if __name__ == '__main__':
    sys.exit(main())
