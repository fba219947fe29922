"""``MliapBenchmarkWorkChain``: every structure of a dataset group, several models, several tasks, one launch.

Fans out ``MliapBaseWorkChain`` over models x tasks x batches (at most ``max_concurrent`` in flight), then per model
and task runs ``compute_thermodynamics`` (both hulls) and ``analyse_symmetry``, and gathers everything into one
results group per model: ``<dataset group>/results/<model name>-<sha256[:8]>``.
"""

from __future__ import annotations

from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.common.links import LinkType
from aiida.engine import WorkChain, append_, while_

from ..calculations.dataset import group_datasets, imported_nodes
from ..calculations.outputs import outputs_of
from ..calculations.symmetry_analysis import analyse_symmetry, symmetry_inputs
from ..calculations.thermo import compute_thermodynamics, thermodynamics_inputs
from ..data.model import MliapModelData
from ..engine.status import WITH_RESULT
from ..labels import link_label
from .base import TASKS, MliapBaseWorkChain


def results_group_label(dataset_group: str, model: MliapModelData) -> str:
    return f'{dataset_group}/results/{model.name}-{model.sha256[:8]}'


def validate_group(value: orm.Str, _) -> str | None:
    if not orm.QueryBuilder().append(orm.Group, filters={'label': value.value}).count():
        return f'no group `{value.value}`: import a dataset with `aiida-mliap dataset import FILE --group LABEL`'
    return None


def validate_tasks(value: orm.List, _) -> str | None:
    unknown = sorted(set(value.get_list()) - set(TASKS))
    return f'unknown tasks {unknown}: choose from {sorted(TASKS)}' if unknown else None


def balanced_batches(sizes: dict[str, int], batch_size: int) -> list[list[str]]:
    """Split labels into ``ceil(n / batch_size)`` batches of near-equal count and a similar mix of sizes.

    Batches of a wave run side by side and the next wave waits for the slowest, so batches are dealt round-robin from
    the largest structure down: 557 structures in batches of at most 100 become 6 of 92-93, not 5 x 100 and one of 57.
    """
    count = -(-len(sizes) // batch_size)
    batches: list[list[str]] = [[] for _ in range(count)]
    for i, label in enumerate(sorted(sizes, key=lambda label: (-sizes[label], label))):
        batches[i % count].append(label)
    return [sorted(batch) for batch in batches]


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


class MliapBenchmarkWorkChain(WorkChain):
    """Benchmark models against the reference energies of a dataset group; survives per-structure failures."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'group',
            valid_type=orm.Str,
            validator=validate_group,
            help='Label of a dataset group from `aiida-mliap dataset import` (groups are not nodes, hence the label).',
        )
        spec.input_namespace('models', valid_type=MliapModelData, dynamic=True, help='Models by a name of your choice.')
        spec.input('code', valid_type=orm.AbstractCode, help='The runner code (default for every model).')
        spec.input_namespace(
            'codes', valid_type=orm.AbstractCode, dynamic=True, required=False, help='Per-model codes, same names.'
        )
        spec.input('tasks', valid_type=orm.List, default=lambda: orm.List(['static']), validator=validate_tasks)
        spec.input('parameters', valid_type=orm.Dict, help="The protocol's relaxation parameters.")
        spec.input('batch_size', valid_type=orm.Int, default=lambda: orm.Int(100))
        spec.input('max_concurrent', valid_type=orm.Int, default=lambda: orm.Int(4), help='Base work chains in flight.')
        spec.input('options', valid_type=orm.Dict, required=False, help='CalcJob metadata options.')
        spec.input('clean_workdir', valid_type=orm.Bool, default=lambda: orm.Bool(False))
        spec.outline(
            cls.setup,
            while_(cls.has_batches)(cls.submit_batches, cls.inspect_batches),
            cls.run_thermodynamics,
            cls.run_symmetry,
            cls.gather,
        )
        spec.output('summary', valid_type=orm.Dict, required=False)
        spec.exit_code(400, 'ERROR_NO_DATASET', message='The group holds no imported dataset.')
        spec.exit_code(410, 'ERROR_NOTHING_DONE', message='No structure got a result with any model.')

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        models: dict[str, MliapModelData],
        group: orm.Group | str,
        protocol: str | None = None,
        tasks: list[str] = ('static',),
        overrides: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ):
        """A builder with the protocol's parameters; ``overrides={'parameters': {...}, 'batch_size': n, ...}``."""
        from ..protocols import protocol_parameters

        overrides = dict(overrides or {})
        builder = cls.get_builder()
        builder.group = orm.Str(group.label if isinstance(group, orm.Group) else group)
        builder.models = dict(models)
        builder.code = code
        builder.tasks = orm.List(list(tasks))
        builder.parameters = orm.Dict(protocol_parameters(protocol, overrides.pop('parameters', None)))
        if options:
            builder.options = orm.Dict(options)
        for key, value in overrides.items():
            builder[key] = orm.to_aiida_type(value) if not isinstance(value, orm.Data) else value
        return builder

    def setup(self):
        datasets = group_datasets(orm.load_group(self.inputs.group.value))
        if not datasets:
            return self.exit_codes.ERROR_NO_DATASET
        structures = {}
        for by_label in imported_nodes(datasets, 'structures', project='id').values():
            structures.update(by_label)
        self.ctx.datasets = [dataset.pk for dataset in datasets]
        query = orm.QueryBuilder().append(
            orm.StructureData, filters={'id': {'in': list(structures.values())}}, project=['id', 'attributes.sites']
        )
        sizes = dict(query.all())
        size = self.inputs.batch_size.value
        batches = balanced_batches({label: len(sizes[pk]) for label, pk in structures.items()}, size)
        self.ctx.pending = [
            {'model': name, 'task': task, 'structures': {label: structures[label] for label in batch}}
            for name in sorted(self.inputs.models)
            for task in self.inputs.tasks.get_list()
            for batch in batches
        ]
        self.ctx.children = []
        self.report(
            f'{len(structures)} structures x {len(self.inputs.models)} models x {len(self.inputs.tasks)} tasks: '
            f'{len(self.ctx.pending)} batches of at most {size}'
        )
        return None

    def has_batches(self) -> bool:
        return bool(self.ctx.pending)

    def submit_batches(self):
        """Submit the next ``max_concurrent`` batches; the next wave starts when all of them are done."""
        wave, self.ctx.pending = (
            self.ctx.pending[: self.inputs.max_concurrent.value],
            self.ctx.pending[self.inputs.max_concurrent.value :],
        )
        for batch in wave:
            model = self.inputs.models[batch['model']]
            code = self.inputs.codes[batch['model']] if batch['model'] in self.inputs.get('codes', {}) else None
            inputs = AttributeDict(
                {
                    'mliap': {
                        'code': code or self.inputs.code,
                        'model': model,
                        'structures': {label: orm.load_node(pk) for label, pk in batch['structures'].items()},
                        'parameters': orm.Dict({**self.inputs.parameters.get_dict(), **TASKS[batch['task']]}),
                    },
                    'clean_workdir': self.inputs.clean_workdir,
                    'metadata': {
                        'call_link_label': f'{link_label(batch["model"])}_{batch["task"]}',
                        'label': f'{batch["model"]}/{batch["task"]}',
                    },
                }
            )
            options = self.inputs.options.get_dict() if 'options' in self.inputs else {}
            cores = cores_per_job(inputs.mliap['code'], self.inputs.max_concurrent.value)
            if cores and 'resources' not in options:
                options['resources'] = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
                options['resources']['num_cores_per_mpiproc'] = cores
            if options:
                inputs.mliap['metadata'] = {'options': options}
            node = self.submit(MliapBaseWorkChain, **inputs)
            node.base.extras.set_many({'mliap_model': batch['model'], 'mliap_task': batch['task']})
            self.to_context(children=append_(node))
        left = len(self.ctx.pending)
        self.report(f'submitted {len(wave)} batches' + (f', {left} waiting' if left else ''))

    def inspect_batches(self):
        failed = [child for child in self.ctx.children if not child.is_finished_ok]
        for child in failed:
            self.report(f'{child.process_label}<{child.pk}> ({child.label}) ended with {child.exit_status}: recorded')

    def _calculations(self, model: str, task: str) -> list[orm.CalcJobNode]:
        """The MliapCalculations of one model and task, in creation order."""
        calcs = []
        for child in self.ctx.children:
            if child.base.extras.get('mliap_model') == model and child.base.extras.get('mliap_task') == task:
                calcs.extend(c for c in child.called if isinstance(c, orm.CalcJobNode) and 'summary' in c.outputs)
        return sorted(calcs, key=lambda node: node.pk)

    def run_thermodynamics(self):
        for name, model in sorted(self.inputs.models.items()):
            for task in self.inputs.tasks.get_list():
                summaries = [calc.outputs.summary for calc in self._calculations(name, task)]
                if not summaries:
                    continue
                for pk in self.ctx.datasets:
                    inputs = thermodynamics_inputs(model, orm.load_node(pk), summaries)
                    inputs['metadata'] = {'call_link_label': f'thermo_{link_label(name)}_{task}'}
                    outputs = compute_thermodynamics(**inputs)
                    self.report(f'thermodynamics {name}/{task}: {outputs["summary"]["counts"]}')

    def run_symmetry(self):
        for pk in self.ctx.datasets:
            analyse_symmetry(**symmetry_inputs(dataset=orm.load_node(pk)), metadata={'call_link_label': 'symmetry_dft'})
        tasks = self.inputs.tasks.get_list()
        for name in sorted(self.inputs.models):
            free = [calc.outputs.summary for calc in self._calculations(name, 'relax')]
            for task in ('relax', 'relax_fixsym'):
                summaries = [calc.outputs.summary for calc in self._calculations(name, task)]
                if task not in tasks or not summaries:
                    continue
                compare = free if task == 'relax_fixsym' else []
                outputs = analyse_symmetry(
                    **symmetry_inputs(summaries, free_relaxations=compare),
                    metadata={'call_link_label': f'symmetry_{link_label(name)}_{task}'},
                )
                self.report(f'symmetry {name}/{task}: {outputs["summary"]["symmetry_changes"]}')

    def gather(self):
        """Every result, relaxed structure, thermo and symmetry node of a model into its results group."""
        with_result = {status.value for status in WITH_RESULT}
        analyses = {
            link.link_label: link.node.pk
            for link in self.node.base.links.get_outgoing(link_type=LinkType.CALL_CALC).all()
        }
        done = 0
        for name, model in sorted(self.inputs.models.items()):
            group, _ = orm.Group.collection.get_or_create(results_group_label(self.inputs.group.value, model))
            calcs = [calc.pk for task in self.inputs.tasks.get_list() for calc in self._calculations(name, task)]
            results = [n for by_label in outputs_of(calcs, 'results').values() for n in by_label.values()]
            done += sum(1 for result in results if result.base.attributes.get('status') in with_result)
            nodes = [*results, *(n for v in outputs_of(calcs, 'relaxed_structures').values() for n in v.values())]
            prefixes = (f'thermo_{link_label(name)}_', f'symmetry_{link_label(name)}_')
            mine = [pk for label, pk in analyses.items() if label.startswith(prefixes)]
            mine += [pk for label, pk in analyses.items() if label == 'symmetry_dft']
            for namespace in ('thermo', 'symmetry'):
                nodes.extend(n for by_label in outputs_of(mine, namespace).values() for n in by_label.values())
            group.add_nodes(nodes)
            self.report(f'{model.name}: {len(nodes)} nodes in group `{group.label}`')
        if not done:
            return self.exit_codes.ERROR_NOTHING_DONE
        return None
