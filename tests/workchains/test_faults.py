"""Faults in a real benchmark (CHGNet, Li-O, static): every structure accounted for, or the benchmark says why not.

Issue 28's cases, each through the real work chains: a runner that dies before its first result on every attempt
(case 1: before, the batch was dropped and the benchmark said [0]), and the copies a daemon restart or a broker
redelivery leaves under one call link label (cases 2-3: before, the lookups took any of them, orphans included).
"""

from __future__ import annotations

import stat

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import ProcessState, ToContext, run_get_node

from aiida_mliap.analysis.benchmark import error_summary, progress
from aiida_mliap.provenance.calls import batch_calls, call, indexed_calls
from aiida_mliap.workchains.benchmark import MliapBenchmarkWorkChain, results_group_label

STATIC = {'parameters': {'max_steps': 30, 'device': 'cpu'}, 'batch_size': 4, 'max_concurrent': 2}


def builder(code, model, group, workchain=MliapBenchmarkWorkChain):
    return workchain.get_builder_from_protocol(
        code, {'chgnet': model}, group, protocol='fast', tasks=['static'], overrides=dict(STATIC)
    )


def orphan(parent: orm.WorkflowNode, node_class, label: str, state: ProcessState, process_type: str) -> orm.Node:
    """A process node called by ``parent`` under ``label`` that never finished: what a worker killed mid-step leaves
    (Running for ever), or the copy of a redelivered process that excepted."""
    node = node_class(process_type=process_type)
    node.set_process_state(state)
    link = LinkType.CALL_CALC if issubclass(node_class, orm.CalculationNode) else LinkType.CALL_WORK
    node.base.links.add_incoming(parent, link, label)
    return node.store()


class RedeliveredBenchmark(MliapBenchmarkWorkChain):
    """The benchmark as two workers, a daemon restart and a broker redelivery leave it: a second finished copy of
    batch 0 (its submit step ran twice), and, newest of all under their labels, an excepted copy of batch 0, a thermo
    calcfunction and a symmetry calcfunction left "Running" by a killed worker."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.outline(
            cls.setup, cls.run_lanes, cls.run_again, cls.tabulate, cls.run_thermodynamics, cls.run_symmetry, cls.gather
        )

    def run_again(self):
        first = batch_calls(self.node, 'chgnet', 'static')[0]
        again = first.get_builder_restart()
        again.metadata.call_link_label = 'batch_chgnet_static_0'
        return ToContext(again=self.submit(again))

    def tabulate(self):
        orphan(self.node, orm.WorkChainNode, 'batch_chgnet_static_0', ProcessState.EXCEPTED,
               'aiida.workflows:mliap.base')  # fmt: skip
        return super().tabulate()

    def run_thermodynamics(self):
        super().run_thermodynamics()
        orphan(self.node, orm.CalcFunctionNode, 'thermo_chgnet_static', ProcessState.RUNNING,
               'aiida_mliap.calculations.thermo.compute_thermodynamics')  # fmt: skip

    def run_symmetry(self):
        super().run_symmetry()
        orphan(self.node, orm.CalcFunctionNode, 'symmetry_dft_0', ProcessState.RUNNING,
               'aiida_mliap.calculations.symmetry_analysis.analyse_symmetry')  # fmt: skip


def test_copies_under_one_label_never_displace_the_finished_one(runner_code, chgnet_model, li_o_group):
    group, count = li_o_group(max_atoms=3, prefix='redelivered')
    _, clean = run_get_node(builder(runner_code, chgnet_model, group))
    assert clean.is_finished_ok, clean.exit_message
    _, node = run_get_node(builder(runner_code, chgnet_model, group, RedeliveredBenchmark))
    assert node.is_finished_ok, node.exit_message

    # Three copies of batch 0 (lane's, the redelivered one, the excepted orphan): the latest finished counts.
    copies = node.base.links.get_outgoing(link_label_filter='batch_chgnet_static_0').all_nodes()
    copies += [n for lane in node.called for n in lane.called if n.base.links.get_incoming(
        link_label_filter='batch_chgnet_static_0').all()]  # fmt: skip
    assert len(copies) == 3 and sum(c.is_excepted for c in copies) == 1
    finished = [c for c in copies if c.is_finished_ok]
    assert batch_calls(node, 'chgnet', 'static')[0].pk == max(finished, key=lambda c: c.ctime).pk
    for label in ('thermo_chgnet_static', 'symmetry_dft_0'):
        assert call(node, LinkType.CALL_CALC, label).is_finished_ok
        newest = max(node.base.links.get_outgoing(link_label_filter=label).all_nodes(), key=lambda n: n.ctime)
        assert newest.process_state == ProcessState.RUNNING, 'the orphan is the newest copy'
    assert indexed_calls(node, LinkType.CALL_CALC, 'symmetry_dft_')[0].is_finished_ok

    # The numbers equal the clean run's, and every structure is counted once.
    assert error_summary(node) == error_summary(clean)
    account = node.outputs.summary['entries'][0]['accounting']
    assert account['planned'] == count and account['not_evaluated'] == 0
    assert account['evaluated'] + sum(account['failed_by_model'].values()) == count
    symmetry = call(node, LinkType.CALL_CALC, 'symmetry_dft_0').outputs.symmetry
    results = orm.QueryBuilder().append(orm.Group, filters={'label': {'like': 'redelivered/%/results/%'}}, tag='g')
    results.append(orm.Node, with_group='g', filters={'id': {'in': [n.pk for n in symmetry.values()]}})
    assert results.count() == count, 'the symmetry nodes of the finished analysis are in the results group'


def killing_runner(tmp_path, runner_code, label: str | None) -> orm.InstalledCode:
    """A runner that is killed before its first result whenever its batch holds ``label`` (as kill -9 while the
    model loads, a walltime hit or preemption would), and is the real runner otherwise; ``None``: killed always."""
    script = tmp_path / f'killed-runner-{label}.sh'
    doomed = f'grep -qw {label} structures.extxyz' if label else 'true'
    script.write_text(
        f'#!/bin/sh\nif {doomed}; then echo "Killed" >&2; exit 137; fi\nexec {runner_code.filepath_executable} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    code = orm.InstalledCode(computer=runner_code.computer, filepath_executable=str(script), label=script.stem)
    return code.store()


def test_a_batch_whose_runner_is_always_killed_is_accounted_for(runner_code, chgnet_model, li_o_group, tmp_path):
    """Issue 28, case 1 end to end, after a clean run of the same group: the batch holding the Li ground state dies
    before its first result each time; it is resubmitted (304), then recorded as not evaluated; the benchmark exits
    520 with the counts and names the lost ground state, and its status shows no pending structure and no time left.
    Issue 29: the group's table keeps the clean run's rows where the rerun failed (before, the failed rerun's
    `not_run` rows, newer, replaced them), and a rerun that evaluated nothing adds nothing to the results group."""
    from aiida_mliap.analysis.results import load_results
    from aiida_mliap.calculations.dataset import group_datasets, union_of_datasets
    from aiida_mliap.data.reference import to_entry
    from aiida_mliap.science.hull import elemental_ground_states

    group, count = li_o_group(max_atoms=3, prefix='killed')
    _, clean = run_get_node(builder(runner_code, chgnet_model, group))
    assert clean.is_finished_ok, clean.exit_message
    attributes = union_of_datasets(group_datasets(group), 'references', project='attributes')
    doomed = elemental_ground_states({label: to_entry(a) for label, a in attributes.items()})['Li']
    _, node = run_get_node(builder(killing_runner(tmp_path, runner_code, doomed), chgnet_model, group))

    assert node.exit_status == MliapBenchmarkWorkChain.exit_codes.ERROR_STRUCTURES_NOT_EVALUATED.status
    account = node.outputs.headline['accounting'][0]
    lost = [batch for batch in batch_calls(node, 'chgnet', 'static').values() if not batch.is_finished_ok]
    assert len(lost) == 1
    jobs = [c for c in lost[0].called if isinstance(c, orm.CalcJobNode)]
    assert [job.exit_status for job in jobs] == [304, 304, 304], 'resubmitted twice, never dropped'
    size = len(lost[0].inputs.mliap.structures)
    assert account['not_evaluated'] == size and account['planned'] == count
    assert account['evaluated'] + sum(account['failed_by_model'].values()) == count - size
    (reason,) = account['reasons']
    assert 'never reached' in reason and doomed in account['reasons'][reason]['labels']
    assert 'Li' in account['ground_states_without_model_energy']
    assert f'{size} not evaluated' in node.exit_message and 'Li ground state' in node.exit_message
    row = progress(node)[0]
    assert row['pending'] == 0 and row['time left'] == '-' and row['not evaluated'] == size

    results = orm.load_group(results_group_label(group.label, chgnet_model))
    held = results.count()
    _, dead = run_get_node(builder(killing_runner(tmp_path, runner_code, None), chgnet_model, group))
    assert dead.exit_status == MliapBenchmarkWorkChain.exit_codes.ERROR_NOTHING_DONE.status
    assert results.count() == held, 'a benchmark that evaluated nothing adds nothing to the results group'

    expected = load_results(clean).set_index('label')
    good = set(expected.index[expected.status.isin(['ok', 'unconverged'])])
    for source in (group, results):  # the dataset group sees all three benchmarks, the results group two
        table = load_results(source).set_index('label')
        assert len(table) == count
        assert table.energy_per_atom_model.equals(expected.energy_per_atom_model), source
        newer = set(table.index[table.newer_failed_attempts > 0])
        failed_again = set(lost[0].inputs.mliap.structures) if source is results else set(table.index)
        assert newer == failed_again & good, source
