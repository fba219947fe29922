"""MliapBaseWorkChain: handlers on fake children (one per situation), and a real restart of unconverged CHGNet runs."""

from __future__ import annotations

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import ProcessState, run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_mliap.calculations.mliap import MliapCalculation, structure_link_label
from aiida_mliap.parsers.results import summarize
from aiida_mliap.workchains.base import MliapBaseWorkChain

UNHANDLED = MliapBaseWorkChain.exit_codes.ERROR_UNHANDLED_FAILURE.status
RELAX = {'task': 'relax', 'fmax': 0.05, 'max_steps': 2, 'optimizer': 'FIRE', 'device': 'cpu'}


def base_inputs(code, model, structures, parameters=RELAX):
    return {
        'mliap': {
            'code': code,
            'model': model,
            'structures': {structure_link_label(s): s for s in structures},
            'parameters': orm.Dict(parameters),
        }
    }


def started(inputs) -> MliapBaseWorkChain:
    """The work chain as it stands after setting up its first batch (no process run)."""
    process = instantiate_process(get_manager().get_runner(), MliapBaseWorkChain, **inputs)
    process.setup()
    process.prepare_batch()
    return process


def fake_child(structures, statuses: dict[str, str] | None, exit_status: int, relaxed: bool = False) -> orm.CalcJobNode:
    """A finished MliapCalculation node with the given per-structure statuses (and relaxed geometries); None: no
    summary at all, as when the runner refused to start (no results)."""
    computer = orm.QueryBuilder().append(orm.Computer).first(flat=True)
    node = orm.CalcJobNode(computer=computer, process_type='aiida.calculations:mliap.calc')
    labelled = {structure_link_label(s): s for s in structures}
    for label, structure in labelled.items():
        node.base.links.add_incoming(structure, LinkType.INPUT_CALC, f'structures__{label}')
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(exit_status)
    node.store()
    if statuses is None:
        return node
    records = [{'label': label, 'status': status} for label, status in statuses.items() if status != 'not_run']
    summary = orm.Dict(summarize(records, list(labelled)))
    summary.base.links.add_incoming(node, LinkType.CREATE, 'summary')
    summary.store()
    if relaxed:
        for label, structure in labelled.items():
            moved = structure.clone()
            moved.base.links.add_incoming(node, LinkType.CREATE, f'relaxed_structures__{label}')
            moved.store()
    return node


def batch_of(n, runner_code, chgnet_model, make_structures):
    """``n`` real structures, their labels, and a work chain set up on them."""
    structures = make_structures(n)
    labels = [structure_link_label(s) for s in structures]
    return structures, labels, started(base_inputs(runner_code, chgnet_model, structures))


def exit_status(name: str) -> int:
    return MliapCalculation.exit_codes[name].status


def test_unconverged_continue_from_last_geometry_with_more_steps(runner_code, chgnet_model, make_structures):
    structures, labels, process = batch_of(3, runner_code, chgnet_model, make_structures)
    child = fake_child(
        structures, {labels[0]: 'ok', labels[1]: 'unconverged', labels[2]: 'unconverged'}, 410, relaxed=True
    )
    assert process.handle_unconverged(child) is not None
    (batch,) = process.ctx.queue
    relaxed = {link.link_label: link.node.pk for link in child.base.links.get_outgoing(link_label_filter='relaxed%')}
    assert batch['structures'] == {label: relaxed[f'relaxed_structures__{label}'] for label in labels[1:]}
    assert batch['parameters']['max_steps'] == 4 and batch['parameters']['optimizer'] == 'FIRE'

    # Second restart of the same structures: the other optimizer; a third: recorded as unconverged.
    process.ctx.batch = process.ctx.queue.pop()
    process.handle_unconverged(child)
    assert process.ctx.queue[-1]['parameters']['optimizer'] == 'BFGS'
    process.ctx.queue.clear()
    process.handle_unconverged(child)
    assert process.ctx.queue == []


def test_out_of_memory_splits_the_batch(runner_code, chgnet_model, make_structures):
    structures, labels, process = batch_of(5, runner_code, chgnet_model, make_structures)
    child = fake_child(structures, {label: 'out_of_memory' for label in labels}, exit_status('ERROR_OUT_OF_MEMORY'))
    assert process.handle_out_of_memory(child) is not None
    assert [sorted(batch['structures']) for batch in process.ctx.queue] == [sorted(labels[:3]), sorted(labels[3:])]
    # Down to one structure: then it is recorded, not retried.
    single = started(base_inputs(runner_code, chgnet_model, structures[:1]))
    alone = fake_child(structures[:1], {labels[0]: 'out_of_memory'}, exit_status('ERROR_OUT_OF_MEMORY'))
    assert single.handle_out_of_memory(alone) is not None and single.ctx.queue == []


def test_host_out_of_memory_splits_what_was_not_reached(runner_code, chgnet_model, make_structures):
    structures, labels, process = batch_of(4, runner_code, chgnet_model, make_structures)
    child = fake_child(structures, {labels[0]: 'ok', **dict.fromkeys(labels[1:], 'not_run')}, 110)
    assert process.handle_not_run(child) is None
    process.handle_out_of_memory(child)
    assert sorted(label for batch in process.ctx.queue for label in batch['structures']) == sorted(labels[1:])
    assert len(process.ctx.queue) == 2


def test_walltime_resubmits_what_was_not_reached(runner_code, chgnet_model, make_structures):
    structures, labels, process = batch_of(3, runner_code, chgnet_model, make_structures)
    child = fake_child(structures, {labels[0]: 'ok', labels[1]: 'not_run', labels[2]: 'not_run'}, 304)
    for _ in range(MliapBaseWorkChain.defaults.resubmissions):
        assert process.handle_not_run(child) is not None
    assert [sorted(b['structures']) for b in process.ctx.queue] == [sorted(labels[1:])] * 2
    # From the original structures, with the same parameters; then no more.
    assert process.ctx.queue[0]['structures'] == {label: process.ctx.original[label] for label in labels[1:]}
    process.ctx.queue.clear()
    process.handle_not_run(child)
    assert process.ctx.queue == []


def test_permanent_failures_are_recorded_not_retried(runner_code, chgnet_model, make_structures):
    structures, labels, process = batch_of(3, runner_code, chgnet_model, make_structures)
    child = fake_child(
        structures,
        {labels[0]: 'ok', labels[1]: 'unsupported_element', labels[2]: 'exploded'},
        exit_status('ERROR_SOME_STRUCTURES_FAILED'),
    )
    assert process.handle_permanent_failures(child) is not None
    for handler in (process.handle_unconverged, process.handle_not_run, process.handle_out_of_memory):
        assert handler(child) is None
    assert process.ctx.queue == []


def test_real_restart_of_unconverged_chgnet_relaxations(runner_code, chgnet_model, make_structures):
    """Two steps are too few: the work chain continues the unconverged structures until they converge or give up."""
    structures = make_structures(2)
    outputs, node = run_get_node(MliapBaseWorkChain, **base_inputs(runner_code, chgnet_model, structures))
    assert node.is_finished_ok, node.exit_message
    children = sorted(node.called, key=lambda child: child.ctime)
    calcs = [child for child in children if child.process_type == 'aiida.calculations:mliap.calc']
    assert len(calcs) >= 2, 'two steps should leave something unconverged'
    first, second = calcs[0], calcs[1]
    unconverged = first.outputs.summary['labels']['unconverged']
    assert sorted(second.inputs.structures) == sorted(unconverged)
    for label in unconverged:
        assert second.inputs.structures[label].pk == first.outputs.relaxed_structures[label].pk
    assert second.inputs.parameters['max_steps'] == 4
    labels = sorted(structure_link_label(s) for s in structures)
    assert sorted(outputs['results']) == labels
    assert outputs['summary']['n_structures'] == 2
    # Each final result is the latest calculation's.
    for label in unconverged:
        holders = [c for c in calcs if label in c.outputs.results]
        assert outputs['results'][label].pk == holders[-1].outputs.results[label].pk


# A real runner on a device that holds at most two structures: larger batches meet CUDA's out-of-memory error inside
# the model call, which the runner classifies (its own error path) and the parser turns into exit code 403.
SCARCE_MEMORY_RUNNER = """#!{python}
import sys

import ase.io
import torch

from aiida_mliap.contract import files
from aiida_mliap.engine import runner

batch = len(ase.io.read(files.STRUCTURES, index=':', format='extxyz'))
run_task = runner.run_task


def scarce_memory(atoms, calculator, parameters):
    if batch > 2:
        raise torch.OutOfMemoryError(f'CUDA out of memory. Tried to allocate 2.00 GiB (a batch of {{batch}})')
    return run_task(atoms, calculator, parameters)


runner.run_task = scarce_memory
sys.exit(runner.main())
"""


def test_out_of_memory_batch_is_split_until_it_completes(aiida_localhost, chgnet_model, make_structures, tmp_path):
    import stat
    import sys

    script = tmp_path / 'scarce-memory-runner'
    script.write_text(SCARCE_MEMORY_RUNNER.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    code = orm.InstalledCode(computer=aiida_localhost, filepath_executable=str(script), label='scarce-memory-runner')
    structures = make_structures(5)
    # The ASE engine evaluates one structure at a time through run_task, where the scarce device strikes (the batched
    # engine's own halving on out-of-memory is tested in tests/test_batched.py).
    parameters = {'task': 'relax', 'fmax': 0.1, 'max_steps': 200, 'device': 'cpu', 'engine': 'ase'}
    outputs, node = run_get_node(MliapBaseWorkChain, **base_inputs(code.store(), chgnet_model, structures, parameters))

    assert node.is_finished_ok, node.exit_message
    calcs = sorted((c for c in node.called if isinstance(c, orm.CalcJobNode)), key=lambda calc: calc.ctime)
    sizes = [len(calc.inputs.structures) for calc in calcs]
    assert sizes == [5, 3, 2, 2, 1]  # halves of 5, then halves of the 3 that still did not fit
    assert [calc.exit_status for calc in calcs[:2]] == [exit_status('ERROR_OUT_OF_MEMORY')] * 2
    assert calcs[0].outputs.summary['counts'] == {'out_of_memory': 5}
    assert all(calc.is_finished_ok for calc in calcs[2:])
    labels = sorted(structure_link_label(s) for s in structures)
    assert sorted(outputs['results']) == labels
    assert outputs['summary']['counts'] == {'ok': 5}
    assert all(result['status'] == 'ok' for result in outputs['results'].values())


def inspected(process, child):
    """What the work chain does after ``child`` finished: BaseRestartWorkChain's inspection with our handlers."""
    process.ctx.children = [child]
    process.ctx.iteration = 1
    process.node.base.extras.set(process._considered_handlers_extra, [[]])
    return process.inspect_process()


def test_restart_once_requeues_the_failed_batch(runner_code, chgnet_model, make_structures):
    structures = make_structures(2)
    inputs = {**base_inputs(runner_code, chgnet_model, structures), 'on_unhandled_failure': orm.Str('restart_once')}
    process = started(inputs)
    batch = process.ctx.batch
    child = fake_child(structures, None, exit_status('ERROR_MODEL_LOAD_FAILED'))
    assert inspected(process, child) is None
    assert process.ctx.queue == [batch], 'the same batch runs again'
    again = fake_child(structures, None, exit_status('ERROR_MODEL_LOAD_FAILED'))
    process.prepare_batch()
    process.ctx.children.append(again)
    process.ctx.iteration = 2
    process.node.base.extras.set(process._considered_handlers_extra, [[], []])
    assert process.inspect_process() is None and process.ctx.final_exit == UNHANDLED and not process.ctx.queue


def test_unhandled_failure_keeps_the_queued_sub_batches(runner_code, chgnet_model, make_structures):
    """After an out-of-memory split, one half fails unhandled: the other half still runs, the exit comes at the end."""
    structures, labels, process = batch_of(4, runner_code, chgnet_model, make_structures)
    waiting = {'structures': {labels[3]: structures[3].pk}, 'parameters': RELAX}
    process.ctx.queue.append(waiting)
    child = fake_child(structures, None, exit_status('ERROR_DEVICE_UNAVAILABLE'))
    assert inspected(process, child) is None
    assert process.ctx.queue == [waiting] and process.ctx.final_exit == UNHANDLED


# Every exit code of MliapCalculation and what the base work chain does with it (its docstring says the same).
OUTCOMES = {
    # unhandled, on_unhandled_failure decides: no usable results
    301: None, 302: None, 305: None, 402: None, 405: None, 406: None,
    303: ('ok', 'handle_unreadable_structures'),  # results without their relaxed structures
    304: ('not_run', 'handle_not_run'),
    400: ('exploded', 'handle_permanent_failures'),
    401: ('model_refused', 'handle_permanent_failures'),
    403: ('out_of_memory', 'handle_out_of_memory'),
    404: ('unsupported_element', 'handle_permanent_failures'),
    410: ('unconverged', 'handle_unconverged'),
}  # fmt: skip


def test_every_exit_code_has_a_handler_or_a_documented_outcome(runner_code, chgnet_model, make_structures):
    codes = {code.status for code in MliapCalculation.exit_codes.values() if code.status >= 300}
    assert codes == set(OUTCOMES), 'a new exit code needs a handler or a documented outcome'
    structures, labels, _ = batch_of(2, runner_code, chgnet_model, make_structures)
    for status, outcome in sorted(OUTCOMES.items()):
        process = started(base_inputs(runner_code, chgnet_model, structures))
        statuses = {labels[0]: 'ok', labels[1]: outcome[0]} if outcome else None
        if status == 303:
            statuses = dict.fromkeys(labels, 'ok')
        inspected(process, fake_child(structures, statuses, status, relaxed=status != 303))
        answers = process.node.base.extras.get(process._considered_handlers_extra)[-1]
        reported = [name for name, answer in answers if answer is not None]
        if outcome is None:
            assert not reported and process.ctx.final_exit == UNHANDLED, status
            assert f'{status}' in MliapBaseWorkChain.__doc__
        else:
            assert outcome[1] in reported, (status, answers)


def test_unreadable_relaxed_structures_are_rerun_once(runner_code, chgnet_model, make_structures):
    """303 (a full disk cut final_structures.extxyz): the relaxations left without a relaxed structure run once
    more from their input; a second 303 keeps them as they are (issue 28, case 4: before, never retried)."""
    structures, labels, process = batch_of(3, runner_code, chgnet_model, make_structures)
    statuses = {labels[0]: 'ok', labels[1]: 'unconverged', labels[2]: 'exploded'}
    child = fake_child(structures, statuses, exit_status('ERROR_UNREADABLE_STRUCTURES'))
    assert not inspected(process, child).status  # handled: the work chain goes on
    queued = [sorted(batch['structures']) for batch in process.ctx.queue]
    assert queued == [sorted(labels[:2])], 'the exploded one has nothing to reread; each label queued once'
    assert process.ctx.queue[0]['structures'][labels[1]] == structures[1].pk, 'from the input geometry'
    process.prepare_batch()
    again = fake_child(structures[:2], {labels[0]: 'ok', labels[1]: 'ok'}, exit_status('ERROR_UNREADABLE_STRUCTURES'))
    process.ctx.children.append(again)
    process.ctx.iteration = 2
    process.node.base.extras.set(process._considered_handlers_extra, [[], []])
    assert not process.inspect_process().status and not process.ctx.queue


def test_maximum_iterations_attach_what_was_done(runner_code, chgnet_model, make_structures):
    """At max_iterations the queue stops, but the results so far are attached (BaseRestartWorkChain alone aborts
    without outputs) and the exit code says why."""
    structures, labels, _ = batch_of(2, runner_code, chgnet_model, make_structures)
    process = started({**base_inputs(runner_code, chgnet_model, structures), 'max_iterations': orm.Int(1)})
    child = fake_child(structures, {labels[0]: 'ok', labels[1]: 'unconverged'}, 410, relaxed=True)
    assert inspected(process, child) is None
    assert process.ctx.queue and not process.should_run_process()
    assert process.ctx.final_exit == MliapBaseWorkChain.exit_codes.ERROR_MAXIMUM_ITERATIONS_EXCEEDED.status


def test_work_chain_exit_codes_never_reuse_a_calculation_code():
    """Issue 29: a status means one thing across the plugin (before: 402 was 'model hash mismatch' for the calculation
    and 'unhandled failure' for the base work chain, so the lane reported 'ended with 402' for a run without CUDA)."""
    from aiida_mliap.workchains.benchmark import MliapBenchmarkWorkChain
    from aiida_mliap.workchains.dft_check import MliapDftCheckWorkChain
    from aiida_mliap.workchains.lane import MliapLaneWorkChain

    meaning = {code.status: label for label, code in MliapCalculation.exit_codes.items()}
    for process in (MliapBaseWorkChain, MliapLaneWorkChain, MliapBenchmarkWorkChain, MliapDftCheckWorkChain):
        for label, code in process.exit_codes.items():
            assert meaning.setdefault(code.status, label) == label, (process.__name__, label, code.status)
