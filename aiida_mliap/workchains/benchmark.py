"""``MliapBenchmarkWorkChain``: every structure of a set of datasets, several models, several tasks, one launch.

Fans out ``MliapBaseWorkChain`` over models x tasks x batches (at most ``max_concurrent`` in flight), then per batch
a table (``tabulate_batch``), per model and task one ``compute_thermodynamics`` over the union of the datasets (both
hulls) and per relaxation batch an ``analyse_symmetry``; gathers everything into one results group per model,
``<group>/results/<model name>-<sha256[:8]>``, and ends with a ``summary`` and a ``headline`` error table.

Children are found by their call link labels (``batch_<model>_<task>_<index>``), never by extras, and the datasets
are inputs: a relaunch (``get_builder_restart``) computes exactly the same thing.
"""

from __future__ import annotations

from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.common.links import LinkType
from aiida.engine import WorkChain, calcfunction, while_

from ..calculations.dataset import group_datasets, union_of_datasets
from ..calculations.hull import elemental_ground_states
from ..calculations.outputs import outputs_of
from ..calculations.symmetry_analysis import analyse_symmetry, symmetry_inputs
from ..calculations.tables import tabulate_batch
from ..calculations.thermo import compute_thermodynamics, elemental_reference_conflicts, thermodynamics_inputs
from ..data.dataset import MliapDatasetData
from ..data.model import MliapModelData
from ..data.reference import to_entry
from ..engine.parameters import TASKS
from .base import MliapBaseWorkChain

# What a benchmark exposes of the base work chain; structures, model and parameters are its own business.
EXCLUDED = ('mliap.structures', 'mliap.model', 'mliap.parameters', 'mliap.remote_checkpoint')


def results_group_label(dataset_group: str, model: MliapModelData) -> str:
    return f'{dataset_group}/results/{model.name}-{model.sha256[:8]}'


def validate_tasks(value: orm.List, _) -> str | None:
    unknown = sorted(set(value.get_list()) - set(TASKS))
    return f'unknown tasks {unknown}: choose from {sorted(TASKS)}' if unknown else None


def validate_datasets(value: dict, _) -> str | None:
    if not value:
        return 'give at least one dataset (`aiida-mliap dataset import FILE --group LABEL`)'
    wrong = sorted(key for key, dataset in value.items() if dataset.kind != 'entries')
    return f'datasets {wrong} hold elemental references, not entries' if wrong else None


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


@calcfunction
def summarize_benchmark(**summaries):
    """One summary over the thermodynamics of every model and task (``<model>__<task>`` -> its summary): counts of
    model results and thermo statuses, error and classification metrics (a list of entries, one per model and task:
    model names hold dots, which attribute keys cannot), and the headline error table."""
    from ..analysis.metrics import headline_table

    entries = []
    for key in sorted(summaries):
        content = summaries[key].get_dict()
        name, task = content['model_name'], content['task']
        entries.append(
            {
                'model': name,
                'model_sha256': content['model_sha256'],
                'task': task,
                'n_entries': content['n_entries'],
                'result_counts': content['result_counts'],
                'thermo_counts': content['counts'],
                'errors': content['errors'],
                'classification': content['classification'],
            }
        )
    headline = headline_table(None, dict(enumerate(entries))).to_dict('records')
    return {'summary': orm.Dict({'entries': entries}), 'headline': orm.Dict({'rows': headline})}


class MliapBenchmarkWorkChain(WorkChain):
    """Benchmark models against the reference energies of a set of datasets; survives per-structure failures."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'group',
            valid_type=orm.Str,
            help='Label of the dataset group: names the results groups (`<group>/results/<model>-<sha>`).',
        )
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
        spec.input(
            'elemental_references', valid_type=MliapDatasetData, required=False,
            help='Fixed elemental references for formation energies (MP\'s, as Matbench Discovery); refused when '
            'they disagree with the datasets (another MP release).',
        )  # fmt: skip
        spec.input(
            'max_atoms', valid_type=orm.Int, required=False,
            help='Evaluate only the structures of at most this many atoms (relaxations on a small machine) and the '
            'elemental ground states; the others stay in the DFT hull, without a model result.',
        )  # fmt: skip
        spec.input('batch_size', valid_type=orm.Int, default=lambda: orm.Int(100))
        spec.input('max_concurrent', valid_type=orm.Int, default=lambda: orm.Int(4), help='Base work chains in flight.')
        spec.outline(
            cls.setup,
            while_(cls.has_batches)(cls.submit_batches, cls.inspect_batches),
            cls.tabulate,
            cls.run_thermodynamics,
            cls.run_symmetry,
            cls.gather,
        )
        spec.output('summary', valid_type=orm.Dict, help='Counts, errors and classification per model and task.')
        spec.output('headline', valid_type=orm.Dict, help='The headline error table (meV/atom), one row per '
                    'model, task and quantity.')  # fmt: skip
        spec.exit_code(401, 'ERROR_RELEASE_MISMATCH', message='The elemental references disagree with the datasets: '
                       '{problems}')  # fmt: skip
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
        """A builder over the datasets ``group`` holds now, with the protocol's parameters and elemental references.

        ``overrides={'parameters': {...}, 'batch_size': n, 'max_concurrent': n, 'base': {'max_iterations': n, ...},
        'codes': {model: code}, 'elemental_references': node}``."""
        from ..protocols import load_protocol, protocol_parameters

        overrides = dict(overrides or {})
        group = group if isinstance(group, orm.Group) else orm.load_group(group)
        datasets = group_datasets(group)
        if not datasets:
            raise ValueError(f'group `{group.label}` holds no dataset: `aiida-mliap dataset import FILE -G LABEL`')
        builder = cls.get_builder()
        builder.group = orm.Str(group.label)
        builder.datasets = {f'dataset_{index}': dataset for index, dataset in enumerate(datasets)}
        builder.models = dict(models)
        builder.base.mliap.code = code
        if options:
            builder.base.mliap.metadata.options = options
        builder.tasks = orm.List(list(tasks))
        builder.parameters = orm.Dict(protocol_parameters(protocol, overrides.pop('parameters', None)))
        references = overrides.pop('elemental_references', load_protocol(protocol).get('elemental_references'))
        if references is not None:
            builder.elemental_references = elemental_references_node(references)
            problems = elemental_reference_conflicts(
                builder.elemental_references, union_of_datasets(datasets, 'references', project='attributes')
            )
            if problems:
                raise ValueError(
                    f'the elemental references {builder.elemental_references.source} disagree with the datasets of '
                    f'`{group.label}` on {len(problems)} entries (another MP release): {"; ".join(problems[:5])}'
                )
        for key, value in {**load_protocol(protocol).get('base', {}), **overrides.pop('base', {})}.items():
            builder.base[key] = orm.to_aiida_type(value) if not isinstance(value, orm.Data) else value
        for key, value in overrides.items():
            builder[key] = value if isinstance(value, (orm.Data, dict)) else orm.to_aiida_type(value)
        return builder

    # -- steps ----------------------------------------------------------------------------------------------------

    def setup(self):
        datasets = self._datasets()
        structures = union_of_datasets(datasets, 'structures', project='id')
        if 'elemental_references' in self.inputs:
            problems = elemental_reference_conflicts(
                self.inputs.elemental_references, union_of_datasets(datasets, 'references', project='attributes')
            )
            if problems:
                return self.exit_codes.ERROR_RELEASE_MISMATCH.format(problems='; '.join(problems[:10]))
        sizes, skipped = self._sizes(structures)
        size = self.inputs.batch_size.value
        batches = balanced_batches(sizes, size)
        if skipped:
            self.report(
                f'{len(skipped)} structures of more than {self.inputs.max_atoms.value} atoms not evaluated (the '
                'elemental ground states are, whatever their size)'
            )
        self.ctx.pending = [
            {'model': name, 'task': task, 'index': index, 'structures': {label: structures[label] for label in batch}}
            for name in sorted(self.inputs.models)
            for task in self.inputs.tasks.get_list()
            for index, batch in enumerate(batches)
        ]
        self.report(
            f'{len(sizes)} unique structures of {len(datasets)} datasets x {len(self.inputs.models)} models x '
            f'{len(self.inputs.tasks)} tasks: {len(self.ctx.pending)} batches of at most {size}'
        )
        return None

    def has_batches(self) -> bool:
        return bool(self.ctx.pending)

    def submit_batches(self):
        """Submit the next ``max_concurrent`` batches; the next wave starts when all of them are done."""
        concurrent = self.inputs.max_concurrent.value
        wave, self.ctx.pending = self.ctx.pending[:concurrent], self.ctx.pending[concurrent:]
        futures = {}
        for batch in wave:
            name, task = batch['model'], batch['task']
            inputs = AttributeDict(self.exposed_inputs(MliapBaseWorkChain, 'base'))
            inputs.mliap = AttributeDict(inputs.mliap)
            inputs.mliap.update(
                model=self.inputs.models[name],
                structures={label: orm.load_node(pk) for label, pk in batch['structures'].items()},
                parameters=orm.Dict({**self.inputs.parameters.get_dict(), **TASKS[task]}),
            )
            if name in self.inputs.get('codes', {}):
                inputs.mliap.code = self.inputs.codes[name]
            if name in self.inputs.get('remote_checkpoints', {}):
                inputs.mliap.remote_checkpoint = self.inputs.remote_checkpoints[name]
            options = dict(inputs.mliap.get('metadata', {}).get('options', {}))
            resources = dict(options.get('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1}))
            cores = cores_per_job(inputs.mliap.code, concurrent)
            if cores and 'num_cores_per_mpiproc' not in resources:
                options['resources'] = {**resources, 'num_cores_per_mpiproc': cores}
                inputs.mliap.metadata = {**inputs.mliap.get('metadata', {}), 'options': options}
            inputs.metadata = {'call_link_label': batch_link_label(name, task, batch['index']),
                               'label': f'{self.inputs.models[name].name}/{task}/{batch["index"]}'}  # fmt: skip
            futures[batch_link_label(name, task, batch['index'])] = self.submit(MliapBaseWorkChain, **inputs)
        left = len(self.ctx.pending)
        self.report(f'submitted {len(wave)} batches' + (f', {left} waiting' if left else ''))
        return self.to_context(**futures)

    def inspect_batches(self):
        for child in self._children().values():
            if child.is_terminated and not child.is_finished_ok and child.pk not in self.ctx.get('reported', []):
                self.report(
                    f'{child.process_label}<{child.pk}> ({child.label}) ended with {child.exit_status}: recorded'
                )
                self.ctx.reported = [*self.ctx.get('reported', []), child.pk]

    def tabulate(self):
        """One table per batch: every structure's reference entry and the model's final result, if any."""
        references = union_of_datasets(self._datasets(), 'references')
        for link, child in sorted(self._children().items()):
            results = dict(child.outputs.results) if 'results' in child.outputs else {}
            inputs = {'parameters': child.inputs.mliap.parameters}
            inputs.update({f'references__{label}': references[label] for label in child.inputs.mliap.structures})
            inputs.update({f'results__{label}': node for label, node in results.items()})
            tabulate_batch(**inputs, metadata={'call_link_label': link.replace('batch_', 'table_', 1)})
        _, skipped = self._sizes(union_of_datasets(self._datasets(), 'structures', project='id'))
        if not skipped:
            return
        # Not evaluated (max_atoms): tables without results, indexed after the batches, so that both hulls keep them.
        for name in sorted(self.inputs.models):
            for task in self.inputs.tasks.get_list():
                first = len(self._children(name, task))
                parameters = orm.Dict({**self.inputs.parameters.get_dict(), **TASKS[task]})
                labels = sorted(skipped)
                size = self.inputs.batch_size.value
                for index, start in enumerate(range(0, len(labels), size), start=first):
                    chunk = {f'references__{label}': references[label] for label in labels[start : start + size]}
                    link = f'table_{name}_{task}_{index}'
                    tabulate_batch(parameters=parameters, **chunk, metadata={'call_link_label': link})

    def run_thermodynamics(self):
        datasets = self._datasets()
        references = self.inputs.get('elemental_references')
        for name, model in sorted(self.inputs.models.items()):
            for task in self.inputs.tasks.get_list():
                tables = self._tables(name, task)
                inputs = thermodynamics_inputs(model, list(tables.values()), datasets, references)
                inputs['metadata'] = {'call_link_label': f'thermo_{name}_{task}'}
                outputs = compute_thermodynamics(**inputs)
                self.report(f'thermodynamics {model.name}/{task}: {outputs["summary"]["counts"]}')

    def run_symmetry(self):
        for index, dataset in enumerate(self._datasets()):
            analyse_symmetry(**symmetry_inputs(dataset=dataset), metadata={'call_link_label': f'symmetry_dft_{index}'})
        for name in sorted(self.inputs.models):
            for task in ('relax', 'relax_fixsym'):
                if task not in self.inputs.tasks.get_list():
                    continue
                free = self._tables(name, 'relax') if task == 'relax_fixsym' else {}
                children = self._children(name, task)
                for index, table in self._tables(name, task).items():
                    child = children.get(batch_link_label(name, task, index))
                    if child is None:
                        continue  # a table of structures left out by max_atoms: nothing was relaxed
                    relaxed = dict(child.outputs.relaxed_structures) if 'relaxed_structures' in child.outputs else {}
                    inputs = symmetry_inputs(
                        initial=dict(child.inputs.mliap.structures), final=relaxed, table=table, free=free.get(index)
                    )
                    analyse_symmetry(**inputs, metadata={'call_link_label': f'symmetry_{name}_{task}_{index}'})

    def gather(self):
        """Every result, relaxed structure, table, thermo and symmetry node of a model into its results group."""
        calls = self.node.base.links.get_outgoing(link_type=LinkType.CALL_CALC).all()
        analyses = {link.link_label: link.node for link in calls}
        summaries = {}
        for name, model in sorted(self.inputs.models.items()):
            group, _ = orm.Group.collection.get_or_create(results_group_label(self.inputs.group.value, model))
            mine = [child.pk for child in self._children(name).values()]
            nodes = [n for namespace in ('results', 'relaxed_structures')
                     for by_label in outputs_of(mine, namespace).values() for n in by_label.values()]  # fmt: skip
            own = [call.pk for index, call in indexed_calls(self.node, LinkType.CALL_CALC, 'symmetry_dft_').items()]
            for task in ('relax', 'relax_fixsym'):
                own += [c.pk for c in indexed_calls(self.node, LinkType.CALL_CALC, f'symmetry_{name}_{task}_').values()]
            nodes.extend(n for by_label in outputs_of(own, 'symmetry').values() for n in by_label.values())
            for task in self.inputs.tasks.get_list():
                nodes.extend(self._tables(name, task).values())
                thermo = analyses[f'thermo_{name}_{task}']
                nodes.extend(n for by_label in outputs_of([thermo.pk], 'thermo').values() for n in by_label.values())
                summaries[f'{name}__{task}'] = thermo.outputs.summary
            group.add_nodes(nodes)
            self.report(f'{model.name}: {len(nodes)} nodes in group `{group.label}`')
        outputs = summarize_benchmark(**summaries, metadata={'call_link_label': 'summarize'})
        self.out('summary', outputs['summary'])
        self.out('headline', outputs['headline'])
        done = sum(
            count
            for entry in outputs['summary']['entries']
            for status, count in entry['result_counts'].items()
            if status in ('ok', 'unconverged')
        )
        return None if done else self.exit_codes.ERROR_NOTHING_DONE

    # -- helpers --------------------------------------------------------------------------------------------------

    def _datasets(self) -> list[MliapDatasetData]:
        return [self.inputs.datasets[key] for key in sorted(self.inputs.datasets)]

    def _children(self, name: str | None = None, task: str | None = None) -> dict[str, orm.WorkflowNode]:
        """The base work chains by call link label (of one model and task, if given)."""
        found = {}
        for model in [name] if name else self.inputs.models:
            for each in [task] if task else self.inputs.tasks.get_list():
                for index, node in indexed_calls(self.node, LinkType.CALL_WORK, f'batch_{model}_{each}_').items():
                    found[batch_link_label(model, each, index)] = node
        return found

    def _sizes(self, structures: dict[str, int]) -> tuple[dict[str, int], set[str]]:
        max_atoms = self.inputs.max_atoms.value if 'max_atoms' in self.inputs else None
        return evaluated_structures(self._datasets(), structures, max_atoms)

    def _tables(self, name: str, task: str) -> dict[int, orm.Node]:
        """The tables of one model and task by batch index."""
        calls = indexed_calls(self.node, LinkType.CALL_CALC, f'table_{name}_{task}_')
        return {index: call.outputs.result for index, call in calls.items()}


def evaluated_structures(
    datasets: list[MliapDatasetData], structures: dict[str, int], max_atoms: int | None
) -> tuple[dict[str, int], set[str]]:
    """Atoms per label of the ``structures`` (label -> pk) a benchmark evaluates, and the labels ``max_atoms`` leaves
    out. The elemental DFT ground states are always evaluated, whatever their size: both hulls stand on them."""
    query = orm.QueryBuilder().append(
        orm.StructureData, filters={'id': {'in': list(structures.values())}}, project=['id', 'attributes.sites']
    )
    atoms = {pk: len(sites) for pk, sites in query.all()}
    if max_atoms is None:
        return {label: atoms[pk] for label, pk in structures.items()}, set()
    references = union_of_datasets(datasets, 'references', project='attributes')
    corners = set(elemental_ground_states({label: to_entry(a) for label, a in references.items()}).values())
    sizes = {label: atoms[pk] for label, pk in structures.items() if atoms[pk] <= max_atoms or label in corners}
    return sizes, set(structures) - set(sizes)


def indexed_calls(node: orm.ProcessNode, link_type: LinkType, prefix: str) -> dict[int, orm.ProcessNode]:
    """The processes ``node`` called with link labels ``<prefix><index>``, by index (model names may be prefixes of
    each other, hence the exact form)."""
    found = {}
    for link in node.base.links.get_outgoing(link_type=link_type).all():
        suffix = link.link_label[len(prefix) :]
        if link.link_label.startswith(prefix) and suffix.isdigit():
            found[int(suffix)] = link.node
    return dict(sorted(found.items()))


def batch_link_label(name: str, task: str, index: int) -> str:
    return f'batch_{name}_{task}_{index}'


def elemental_references_node(value: MliapDatasetData | str | int) -> MliapDatasetData:
    """Elemental references by node, pk or source file name (as imported with `dataset import-refs`)."""
    if isinstance(value, MliapDatasetData):
        return value
    query = orm.QueryBuilder().append(
        MliapDatasetData, filters={'attributes.kind': 'elemental_references', 'attributes.source': str(value)}
    )
    found = query.all(flat=True)
    if found:
        return found[-1]
    try:
        node = orm.load_node(value)
    except Exception:
        node = None
    if isinstance(node, MliapDatasetData) and node.kind == 'elemental_references':
        return node
    raise ValueError(
        f'no elemental references `{value}`: import them first with `aiida-mliap dataset import-refs FILE`'
    )
