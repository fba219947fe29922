"""``MliapBenchmarkWorkChain``: every structure of a set of datasets, several models, several tasks, one launch.

Plans the batches once (``plan_batches``: one stored node), runs models x tasks x batches of ``MliapBaseWorkChain``
through ``max_concurrent`` lanes (``MliapLaneWorkChain``: a new batch as soon as one ends, and a work-chain state that
does not grow with the number of structures; each batch tabulated by its lane as it ends, ``tabulate_batch``), per model
and task one
``compute_thermodynamics`` over the union of the datasets (both hulls) and per relaxation batch an
``analyse_symmetry``; gathers everything into one results group per model,
``<group>/results/<model name>-<sha256[:8]>``, and ends with a ``summary`` and a ``headline`` error table.

Base work chains are found by their call link labels (``batch_<model>_<task>_<index>``), never by extras, and the
datasets are inputs: a relaunch (``get_builder_restart``) computes exactly the same thing.
"""

from __future__ import annotations

from typing import Any

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import ToContext, WorkChain, calcfunction

from ..calculations.dataset import group_datasets, union_of_datasets
from ..calculations.plan import batch_labels, plan_batches, skipped_labels
from ..calculations.symmetry_analysis import analyse_symmetry, symmetry_inputs
from ..calculations.tables import make_table
from ..calculations.thermo import elemental_reference_conflicts, run_thermodynamics
from ..contract.parameters import task_parameters
from ..data.dataset import MliapDatasetData
from ..data.model import MliapModelData
from ..protocols import ProtocolMixin, assign_inputs
from ..provenance.calls import batch_calls, batch_link_label, call, indexed_calls, lane_calls, table_link_label
from ..provenance.links import outputs_of
from .accounting import batch_outcomes, count, headline
from .base import MliapBaseWorkChain
from .lane import MliapLaneWorkChain, tabulate_unit

__all__ = ('MliapBenchmarkWorkChain',)


def results_group_label(dataset_group: str, model: MliapModelData) -> str:
    return f'{dataset_group}/results/{model.name}-{model.sha256[:8]}'


@calcfunction
def summarize_benchmark(accounting=None, **summaries):
    """One summary over the thermodynamics of every model and task (``<model>__<task>`` -> its summary): counts of
    model results and thermo statuses, error and classification metrics (a list of entries, one per model and task:
    model names hold dots, which attribute keys cannot), the account of every planned structure (``accounting``,
    same keys: ``workchains.accounting.count``), and the headline error table with those counts."""
    from ..science.metrics import headline_table

    entries = []
    accounts = accounting.get_dict() if accounting is not None else {}
    for key in sorted(summaries):
        content = summaries[key].get_dict()
        account = accounts.get(key)
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
                'accounting': {**account, 'headline': headline(account)} if account else None,
            }
        )
    rows = headline_table(None, dict(enumerate(entries))).to_dict('records')
    counts = [{'model': entry['model'], 'task': entry['task'], **(entry['accounting'] or {})} for entry in entries]
    return {'summary': orm.Dict({'entries': entries}), 'headline': orm.Dict({'rows': rows, 'accounting': counts})}


class MliapBenchmarkWorkChain(ProtocolMixin, WorkChain):
    """Benchmark models against the reference energies of a set of datasets; survives per-structure failures."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'group',
            valid_type=orm.Str,
            help='Label of the dataset group: names the results groups (`<group>/results/<model>-<sha>`).',
        )
        spec.expose_inputs(MliapLaneWorkChain, exclude=('plan', 'lane', 'lanes'))
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
        spec.input(
            'hull_chunk_size', valid_type=orm.Int, default=lambda: orm.Int(20000),
            help='Structures per thermodynamics call: above it, both hulls are computed in chunks of whole batches '
            'against the hull of them all (same values, bounded inputs; MP-scale sets).',
        )  # fmt: skip
        spec.input(
            'max_concurrent', valid_type=orm.Int, default=lambda: orm.Int(4),
            help='Base work chains in flight: one lane each, which submits its next batch as soon as its last ends.',
        )  # fmt: skip
        spec.outline(
            cls.setup,
            cls.run_lanes,
            cls.tabulate,
            cls.run_thermodynamics,
            cls.run_symmetry,
            cls.gather,
        )
        spec.output('summary', valid_type=orm.Dict, help='Counts, errors and classification per model and task.')
        spec.output('headline', valid_type=orm.Dict, help='The headline error table (meV/atom), one row per '
                    'model, task and quantity.')  # fmt: skip
        # The benchmark's own band (5xx): never a number MliapCalculation or MliapBaseWorkChain uses.
        spec.exit_code(501, 'ERROR_RELEASE_MISMATCH', message='The elemental references disagree with the datasets: '
                       '{problems}')  # fmt: skip
        spec.exit_code(510, 'ERROR_NOTHING_DONE', message='No structure got a result with any model.')
        spec.exit_code(520, 'ERROR_STRUCTURES_NOT_EVALUATED', message='Finished with structures not evaluated for a '
                       'reason other than the model (results and tables kept): {accounting}')  # fmt: skip
        spec.exit_code(530, 'ERROR_MISSING_STEP', message='No finished process for steps the results need: {labels}')

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
        inputs = cls.get_protocol_inputs(protocol, overrides)
        group = group if isinstance(group, orm.Group) else orm.load_group(group)
        datasets = group_datasets(group)
        if not datasets:
            raise ValueError(f'group `{group.label}` holds no dataset: `aiida-mliap dataset import FILE -G LABEL`')
        builder = cls.get_builder()
        builder.group = orm.Str(group.label)
        builder.datasets = {f'dataset_{index}': dataset for index, dataset in enumerate(datasets)}
        builder.models = dict(models)
        base = MliapBaseWorkChain.get_builder_from_protocol(code, protocol=protocol, overrides=inputs.pop('base', {}),
                                                           options=options)  # fmt: skip
        assign_inputs(builder.base, base)  # its runner parameters stay the benchmark's own, set per task
        builder.tasks = orm.List(list(tasks))
        builder.parameters = orm.Dict(inputs.pop('parameters'))
        references = inputs.pop('elemental_references', None)
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
        for key, value in inputs.items():
            builder[key] = value if isinstance(value, (orm.Data, dict)) else orm.to_aiida_type(value)
        return builder

    # -- steps ----------------------------------------------------------------------------------------------------

    def setup(self):
        if 'elemental_references' in self.inputs:
            problems = elemental_reference_conflicts(
                self.inputs.elemental_references,
                union_of_datasets(self._datasets(), 'references', project='attributes'),
            )
            if problems:
                return self.exit_codes.ERROR_RELEASE_MISMATCH.format(problems='; '.join(problems[:10]))
        bounds = {'max_atoms': self.inputs.max_atoms} if 'max_atoms' in self.inputs else {}
        plan = plan_batches(
            batch_size=self.inputs.batch_size, **bounds, **self.inputs.datasets, metadata={'call_link_label': 'plan'}
        )
        self.ctx.plan = plan
        skipped = len(skipped_labels(plan))
        if skipped:
            self.report(
                f'{skipped} structures of more than {self.inputs.max_atoms.value} atoms not evaluated (the '
                'elemental ground states are, whatever their size)'
            )
        batches = plan.base.attributes.get('n_batches')
        self.report(
            f'{plan.base.attributes.get("n_evaluated")} unique structures of {len(self.inputs.datasets)} datasets x '
            f'{len(self.inputs.models)} models x {len(self.inputs.tasks)} tasks: '
            f'{batches * len(self.inputs.models) * len(self.inputs.tasks)} batches of at most '
            f'{self.inputs.batch_size.value}'
        )
        return None

    def run_lanes(self):
        """At most ``max_concurrent`` lanes, each running its share of the batches one after the other."""
        units = self.ctx.plan.base.attributes.get('n_batches') * len(self.inputs.models) * len(self.inputs.tasks)
        lanes = min(self.inputs.max_concurrent.value, units)
        inputs = {k: v for k, v in self.exposed_inputs(MliapLaneWorkChain).items() if k != 'metadata'}
        futures = {}
        for lane in range(lanes):
            futures[f'lane_{lane}'] = self.submit(
                MliapLaneWorkChain, **inputs, plan=self.ctx.plan, lane=orm.Int(lane), lanes=orm.Int(lanes),
                metadata={'call_link_label': f'lane_{lane}', 'label': f'lane {lane + 1}/{lanes}'},
            )  # fmt: skip
        self.report(f'{lanes} lanes for {units} batches')
        return ToContext(**futures)

    def tabulate(self):
        """The table of any batch its lane did not tabulate (a lane that ended early), then tables of the structures
        not evaluated (``max_atoms``)."""
        datasets = self._datasets()
        for name in sorted(self.inputs.models):
            for task in self.inputs.tasks.get_list():
                tables = self._tables(name, task)
                batches = batch_calls(self.node, name, task, finished=False)  # an excepted batch keeps its entries
                for index in range(self.ctx.plan.base.attributes.get('n_batches')):
                    if index in tables:
                        continue
                    labels, link = batch_labels(self.ctx.plan, index), table_link_label(name, task, index)
                    if index in batches:
                        tabulate_unit(batches[index], datasets, labels, link)
                    else:  # never ran: its references still belong in both hulls
                        references = union_of_datasets(datasets, 'references', project='uuid', labels=labels)
                        make_table(self._task_parameters(task), references, {}, link)
        skipped = skipped_labels(self.ctx.plan)
        if not skipped:
            return
        # Not evaluated (max_atoms): tables without results, indexed after the batches, so that both hulls keep them.
        references = union_of_datasets(datasets, 'references', project='uuid', labels=skipped)
        size = self.inputs.batch_size.value
        for name in sorted(self.inputs.models):
            for task in self.inputs.tasks.get_list():
                first = self.ctx.plan.base.attributes.get('n_batches')
                parameters = self._task_parameters(task)
                made = self._tables(name, task)
                for index, start in enumerate(range(0, len(skipped), size), start=first):
                    if index in made:
                        continue  # a daemon restart repeated this step
                    chunk = {label: references[label] for label in skipped[start : start + size]}
                    make_table(parameters, chunk, {}, table_link_label(name, task, index))

    def run_thermodynamics(self):
        """Per model and task both hulls over every table; over more than ``hull_chunk_size`` structures in chunks of
        tables against the hull of all of them (``run_thermodynamics``: bounded inputs, the same values)."""
        datasets = self._datasets()
        references = self.inputs.get('elemental_references')
        chunk = max(1, self.inputs.hull_chunk_size.value // self.inputs.batch_size.value)
        for name, model in sorted(self.inputs.models.items()):
            for task in self.inputs.tasks.get_list():
                tables = list(self._tables(name, task).values())
                link = f'thermo_{name}_{task}'
                summary = run_thermodynamics(model, tables, datasets, references, chunk=chunk, link=link)
                chunks = f' ({-(-len(tables) // chunk)} chunks)' if len(tables) > chunk else ''
                self.report(f'thermodynamics {model.name}/{task}{chunks}: {summary["counts"]}')

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
        """The account of every planned structure (``accounting``: evaluated, failed by the model, or not evaluated)
        per model and task; then every result, relaxed structure, table, thermo and symmetry node of the tasks that
        evaluated anything into the model's results group. A task whose every structure was lost to the environment
        (no GPU, a broken checkpoint) adds nothing there: a failed rerun must not crowd the results users share."""
        missing = self._missing_steps()
        if missing:
            return self.exit_codes.ERROR_MISSING_STEP.format(labels=', '.join(missing[:10]))
        summaries, outcomes = {}, {}
        for name, model in sorted(self.inputs.models.items()):
            nodes, kept = [], []
            for task in self.inputs.tasks.get_list():
                link = f'thermo_{name}_{task}'
                merged = call(self.node, LinkType.CALL_CALC, link)
                summaries[f'{name}__{task}'] = merged.outputs.summary
                account = count(self._outcomes(name, task), merged.outputs.summary.get('elemental_ground_states'))
                outcomes[f'{name}__{task}'] = account
                if not account['evaluated'] and not account['failed_by_model']:
                    continue
                kept.append(task)
                children = [child.pk for child in self._children(name, task).values()]
                nodes += output_nodes(children, 'results', 'relaxed_structures')
                nodes.extend(self._tables(name, task).values())
                # One call, or per chunk `<link>_<k>` (the merge call under `link` has no thermo outputs).
                chunks = indexed_calls(self.node, LinkType.CALL_CALC, f'{link}_').values()
                thermo = [merged.pk, *(c.pk for c in chunks)]
                nodes += output_nodes(thermo, 'thermo')
            label = results_group_label(self.inputs.group.value, model)
            if not kept:
                self.report(f'{model.name}: nothing evaluated, results group `{label}` left as it was')
                continue
            analyses = [*indexed_calls(self.node, LinkType.CALL_CALC, 'symmetry_dft_').values()]
            for task in sorted(set(kept) & {'relax', 'relax_fixsym'}):
                analyses += indexed_calls(self.node, LinkType.CALL_CALC, f'symmetry_{name}_{task}_').values()
            nodes += output_nodes([analysis.pk for analysis in analyses], 'symmetry')
            group, _ = orm.Group.collection.get_or_create(label)
            group.add_nodes(nodes)
            self.report(f'{model.name}: {len(nodes)} nodes in group `{group.label}`')
        outputs = summarize_benchmark(
            accounting=orm.Dict(outcomes), **summaries, metadata={'call_link_label': 'summarize'}
        )
        self.out('summary', outputs['summary'])
        self.out('headline', outputs['headline'])
        entries = outputs['summary']['entries']
        if not any(entry['accounting']['evaluated'] for entry in entries):
            return self.exit_codes.ERROR_NOTHING_DONE
        lost = [f'{entry["model"]}/{entry["task"]}: {entry["accounting"]["headline"]}'
                for entry in entries if entry['accounting']['not_evaluated']]  # fmt: skip
        for entry in entries:
            if entry['accounting']['headline']:
                self.report(f'{entry["model"]}/{entry["task"]}: {entry["accounting"]["headline"]}')
        if lost:
            return self.exit_codes.ERROR_STRUCTURES_NOT_EVALUATED.format(accounting=' | '.join(lost))
        return None

    def _task_parameters(self, task: str) -> orm.Dict:
        return orm.Dict(task_parameters(self.inputs.parameters.get_dict(), task))

    def _outcomes(self, name: str, task: str) -> dict[str, tuple[str, str]]:
        """``batch_outcomes`` of every planned batch of one model and task (one that excepted or never ran too)."""
        batches = batch_calls(self.node, name, task, finished=False)
        outcomes = {}
        for index in range(self.ctx.plan.base.attributes.get('n_batches')):
            outcomes.update(batch_outcomes(batches.get(index), batch_labels(self.ctx.plan, index)))
        return outcomes

    def _missing_steps(self) -> list[str]:
        """The call link labels the results need that have no finished process (never run, or only orphans)."""
        needed = [f'symmetry_dft_{index}' for index in range(len(self.inputs.datasets))]
        for name in sorted(self.inputs.models):
            for task in self.inputs.tasks.get_list():
                needed.append(f'thermo_{name}_{task}')
                if task in ('relax', 'relax_fixsym'):
                    relaxed = set(self._children(name, task))
                    needed += [f'symmetry_{name}_{task}_{index}' for index in self._tables(name, task)
                               if batch_link_label(name, task, index) in relaxed]  # fmt: skip
        missing = [label for label in needed if call(self.node, LinkType.CALL_CALC, label) is None]
        if missing:
            self.report(f'no finished process for {len(missing)} steps the results need: {missing[:10]}')
        return missing

    # -- helpers --------------------------------------------------------------------------------------------------

    def _datasets(self) -> list[MliapDatasetData]:
        return [self.inputs.datasets[key] for key in sorted(self.inputs.datasets)]

    def _children(self, name: str | None = None, task: str | None = None) -> dict[str, orm.WorkflowNode]:
        """The base work chains by call link label (of one model and task, if given)."""
        found = {}
        for model in [name] if name else self.inputs.models:
            for each in [task] if task else self.inputs.tasks.get_list():
                for index, node in batch_calls(self.node, model, each).items():
                    found[batch_link_label(model, each, index)] = node
        return found

    def _tables(self, name: str, task: str) -> dict[int, orm.Node]:
        """The tables of one model and task by batch index (made by the lanes or by the benchmark)."""
        calls = lane_calls(self.node, LinkType.CALL_CALC, table_link_label(name, task, ''))
        return {index: call.outputs.result for index, call in calls.items()}


def output_nodes(process_ids: list[int], *namespaces: str) -> list[orm.Data]:
    """Every output node of the given processes in the given namespaces (``results``, ``thermo``, ...)."""
    return [node for namespace in namespaces for by_label in outputs_of(process_ids, namespace).values()
            for node in by_label.values()]  # fmt: skip


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
