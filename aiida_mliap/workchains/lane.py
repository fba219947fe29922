"""``MliapLaneWorkChain``: one of a benchmark's ``max_concurrent`` lanes of batches.

Lane ``i`` of ``n`` runs work units ``i, i + n, i + 2n, ...`` of the benchmark's plan (units: model x task x batch,
``calculations/plan.py``), one ``MliapBaseWorkChain`` at a time, the next submitted as soon as the last one ends: a
slow batch holds up its own lane only, never a wave. Its state is a cursor and the batch in flight, whatever the
number of structures, so checkpoints stay small; a daemon restart resumes the batch in flight and computes nothing
twice. The base work chains keep the call link labels ``batch_<model>_<task>_<index>``. As each batch ends, the lane
tabulates it (``tabulate_batch``, call link label ``table_<model>_<task>_<index>``): the tables are made beside the
batches still running, on whichever worker runs the lane, instead of one after the other at the end.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.common.links import LinkType
from aiida.engine import ToContext, WorkChain, while_

from ..calculations.dataset import union_of_datasets
from ..calculations.plan import batch_labels, unit_coordinates
from ..calculations.tables import make_table
from ..contract.parameters import TASKS, task_parameters
from ..data.dataset import MliapDatasetData
from ..data.model import MliapModelData
from ..data.table import MliapBatchTable
from ..provenance.calls import batch_link_label, call, table_link_label
from ..provenance.links import outputs_of
from .base import MliapBaseWorkChain

# What a benchmark exposes of the base work chain; structures, model and parameters are its own business.
EXCLUDED = ('mliap.structures', 'mliap.model', 'mliap.parameters', 'mliap.remote_checkpoint')


def validate_tasks(value: orm.List, _) -> str | None:
    unknown = sorted(set(value.get_list()) - set(TASKS))
    return f'unknown tasks {unknown}: choose from {sorted(TASKS)}' if unknown else None


def validate_datasets(value: dict, _) -> str | None:
    if not value:
        return 'give at least one dataset (`aiida-mliap dataset import FILE --group LABEL`)'
    wrong = sorted(key for key, dataset in value.items() if dataset.kind != 'entries')
    return f'datasets {wrong} hold elemental references, not entries' if wrong else None


def tabulate_unit(
    batch: orm.WorkflowNode, datasets: list[MliapDatasetData], labels: list[str], link: str
) -> MliapBatchTable:
    """The table of one finished batch: the reference entries of its structures (``labels``) and its results."""
    references = union_of_datasets(datasets, 'references', project='uuid', labels=labels)
    results = outputs_of([batch.pk], 'results', 'uuid')[batch.pk]
    return make_table(batch.inputs.mliap.parameters, references, results, link)


def cores_per_job(code: orm.AbstractCode, concurrent: int) -> int | None:
    """On this machine with no batch scheduler, the cores each of ``concurrent`` jobs gets (None elsewhere).

    Jobs that each start a thread per core oversubscribe the machine, and torch's threads then spin against each other:
    measured on 2 cores, 2 jobs x 2 threads made CHGNet 10-17x slower per step than 1 thread each.
    """
    from ..engine.runner import available_cores

    computer = getattr(code, 'computer', None)
    if computer is None or computer.scheduler_type != 'core.direct' or computer.transport_type != 'core.local':
        return None
    return max(1, available_cores() // max(1, concurrent))


class MliapLaneWorkChain(WorkChain):
    """Run every ``lanes``-th work unit of a benchmark's plan, starting at unit ``lane``, one batch at a time."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace(
            'datasets', valid_type=MliapDatasetData, dynamic=True, validator=validate_datasets,
            help='The datasets whose union is benchmarked (one hull); `get_builder_from_protocol` takes a group\'s.',
        )  # fmt: skip
        spec.input_namespace('models', valid_type=MliapModelData, dynamic=True, help='Models by a name of your choice.')
        spec.expose_inputs(MliapBaseWorkChain, namespace='base', exclude=EXCLUDED)
        spec.input_namespace(
            'codes', valid_type=orm.AbstractCode, dynamic=True, required=False,
            help='Per-model codes, same names as `models` (e.g. one Python environment per framework); default: '
            '`base.mliap.code`.',
        )  # fmt: skip
        spec.input_namespace(
            'remote_checkpoints', valid_type=orm.RemoteData, dynamic=True, required=False,
            help='Per-model checkpoints pre-installed on the computer, same names as `models`.',
        )  # fmt: skip
        spec.input('tasks', valid_type=orm.List, default=lambda: orm.List(['static']), validator=validate_tasks)
        spec.input('parameters', valid_type=orm.Dict, help="The protocol's runner parameters.")
        spec.input('plan', valid_type=orm.ArrayData, help='The batches (`plan_batches`).')
        spec.input('lane', valid_type=orm.Int, help='This lane: its first work unit.')
        spec.input('lanes', valid_type=orm.Int, help='How many lanes run side by side: the stride between units.')
        spec.outline(cls.setup, while_(cls.has_unit)(cls.submit_unit, cls.inspect_unit))

    def setup(self):
        self.ctx.unit = self.inputs.lane.value

    def has_unit(self) -> bool:
        units = len(self.inputs.models) * len(self.inputs.tasks) * self.inputs.plan.base.attributes.get('n_batches')
        return self.ctx.unit < units

    def submit_unit(self):
        name, task, index = self._coordinates(self.ctx.unit)
        structures = union_of_datasets(self._datasets(), 'structures', labels=batch_labels(self.inputs.plan, index))
        inputs = AttributeDict(self.exposed_inputs(MliapBaseWorkChain, 'base'))
        inputs.mliap = AttributeDict(inputs.mliap)
        inputs.mliap.update(
            model=self.inputs.models[name],
            structures=structures,
            parameters=orm.Dict(task_parameters(self.inputs.parameters.get_dict(), task)),
        )
        if name in self.inputs.get('codes', {}):
            inputs.mliap.code = self.inputs.codes[name]
        if name in self.inputs.get('remote_checkpoints', {}):
            inputs.mliap.remote_checkpoint = self.inputs.remote_checkpoints[name]
        options = dict(inputs.mliap.get('metadata', {}).get('options', {}))
        resources = dict(options.get('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1}))
        cores = cores_per_job(inputs.mliap.code, self.inputs.lanes.value)
        if cores and 'num_cores_per_mpiproc' not in resources:
            options['resources'] = {**resources, 'num_cores_per_mpiproc': cores}
            inputs.mliap.metadata = {**inputs.mliap.get('metadata', {}), 'options': options}
        inputs.metadata = {'call_link_label': batch_link_label(name, task, index),
                           'label': f'{self.inputs.models[name].name}/{task}/{index}'}  # fmt: skip
        self.ctx.current = self.ctx.unit
        self.ctx.unit += self.inputs.lanes.value
        return ToContext(batch=self.submit(MliapBaseWorkChain, **inputs))

    def inspect_unit(self):
        """Tabulate the batch that ended, whatever its exit status (its results so far, and every reference)."""
        batch = self.ctx.batch
        if not batch.is_finished_ok:
            self.report(f'{batch.process_label}<{batch.pk}> ({batch.label}) ended with {batch.exit_status}: recorded')
        name, task, index = self._coordinates(self.ctx.current)
        link = table_link_label(name, task, index)
        if call(self.node, LinkType.CALL_CALC, link) is None:  # else a daemon restart repeated this step
            tabulate_unit(batch, self._datasets(), batch_labels(self.inputs.plan, index), link)

    def _datasets(self) -> list[MliapDatasetData]:
        return [self.inputs.datasets[key] for key in sorted(self.inputs.datasets)]

    def _coordinates(self, unit: int) -> tuple[str, str, int]:
        n_batches = self.inputs.plan.base.attributes.get('n_batches')
        return unit_coordinates(unit, sorted(self.inputs.models), self.inputs.tasks.get_list(), n_batches)
