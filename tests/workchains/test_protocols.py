"""Protocols as a mixin (aiida-quantumespresso's manner): the benchmark takes its ``base`` inputs from the base work
chain's own builder, and ``task`` is encoded in one place."""

import pytest

from aiida_mliap.contract.parameters import TASKS, task_name, task_parameters
from aiida_mliap.workchains.base import MliapBaseWorkChain
from aiida_mliap.workchains.benchmark import MliapBenchmarkWorkChain


@pytest.mark.parametrize('task', sorted(TASKS))
def test_task_encoding_round_trips(task):
    assert task_name(task_parameters({'fmax': 0.1}, task)) == task


def test_unknown_task_refused():
    with pytest.raises(ValueError, match='unknown task `relaxed`'):
        task_parameters({}, 'relaxed')


def test_protocols_listed_with_descriptions():
    protocols = MliapBenchmarkWorkChain.get_available_protocols()
    assert {'fast', 'balanced', 'matbench', 'stringent'} <= set(protocols)
    assert MliapBenchmarkWorkChain.get_default_protocol() in protocols
    with pytest.raises(ValueError, match='unknown protocol `fastest`'):
        MliapBaseWorkChain.get_protocol_inputs('fastest')


def test_base_builder_from_protocol(runner_code, chgnet_model, make_structures):
    builder = MliapBaseWorkChain.get_builder_from_protocol(
        runner_code, chgnet_model, make_structures(2), protocol='matbench', task='relax_fixsym',
        overrides={'parameters': {'max_steps': 7}, 'max_iterations': 3},
    )  # fmt: skip
    parameters = builder.mliap.parameters.get_dict()
    assert parameters['fmax'] == 0.05 and parameters['max_steps'] == 7 and parameters['fix_symmetry'] is True
    assert builder.unconverged_restarts.value == 0 and builder.max_iterations.value == 3
    assert len(builder.mliap.structures) == 2


def test_benchmark_delegates_its_base_inputs(runner_code, chgnet_model, li_o_group):
    group, _ = li_o_group(4, prefix='protocols')
    overrides = {
        'base': {'max_iterations': 4, 'unconverged_restarts': 1},
        'parameters': {'max_steps': 9},
        'batch_size': 5,
    }
    options = {'max_wallclock_seconds': 600}
    builder = MliapBenchmarkWorkChain.get_builder_from_protocol(
        runner_code, {'chgnet': chgnet_model}, group, protocol='stringent', tasks=['relax'], overrides=overrides,
        options=options,
    )  # fmt: skip
    base = MliapBaseWorkChain.get_builder_from_protocol(
        runner_code, protocol='stringent', overrides=overrides['base'], options=options
    )
    assert builder.base.max_iterations.value == base.max_iterations.value == 4
    assert builder.base.unconverged_restarts.value == base.unconverged_restarts.value == 1
    assert builder.base.mliap.code.pk == runner_code.pk
    assert builder.base.mliap.metadata.options.max_wallclock_seconds == 600
    assert builder.parameters['max_steps'] == 9 and builder.parameters['fmax'] == 0.01
    assert 'task' not in builder.parameters.get_dict() and 'parameters' not in builder.base.mliap
    assert builder.batch_size.value == 5
