"""``MliapBaseWorkChain``: ``MliapCalculation`` with restarts that rerun only the structures that need it.

A batch meets per-structure trouble, not whole-job trouble: so each child's ``summary`` (labels by status) decides
what happens to each structure. Work is a queue of batches; handlers put the structures that can still be helped
back on it (with more steps, the other optimizer, a smaller batch) and record the others.
"""

from __future__ import annotations

from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, calcfunction, process_handler, while_

from ..calculations.mliap import MliapCalculation
from ..calculations.tables import latest_by_label
from ..contract.parameters import task_name, task_parameters, with_defaults
from ..contract.status import PERMANENT_FAILURES, WITH_RESULT, Status
from ..data.result import MliapResultData
from ..protocols import ProtocolMixin, assign_inputs
from ..provenance.links import outputs_of

SCHEDULER_OUT_OF_MEMORY = 110
RENUMBERED = (
    (601, 'ERROR_SUB_PROCESS_EXCEPTED', 'The sub process excepted.'),
    (602, 'ERROR_SUB_PROCESS_KILLED', 'The sub process was killed.'),
    (611, 'ERROR_MAXIMUM_ITERATIONS_EXCEEDED', 'The maximum number of iterations was exceeded.'),
    (612, 'ERROR_UNHANDLED_FAILURE', 'The process failed with an unhandled failure.'),
)


@calcfunction
def merge_summaries(**summaries):
    """One summary over the iterations: a structure's status is the one its latest calculation gave it.

    Keys sort in iteration order (``iteration_01``, ...)."""
    statuses = latest_by_label(
        {label: status for status, labels in summaries[key]['labels'].items() for label in labels}
        for key in sorted(summaries)
    )
    labels: dict[str, list[str]] = {}
    for label, status in sorted(statuses.items()):
        labels.setdefault(status, []).append(label)
    counts = {status: len(members) for status, members in labels.items()}
    return orm.Dict({'n_structures': len(statuses), 'counts': counts, 'labels': labels})


class MliapBaseWorkChain(ProtocolMixin, BaseRestartWorkChain):
    """Run ``MliapCalculation`` until every structure has a result or a reason why it has none.

    What each exit code of ``MliapCalculation`` leads to:
    - 304 (runner stopped early, also before its first result): ``handle_not_run`` resubmits the structures it
      never reached;
    - 400, 401, 404 (structures failed for good): ``handle_permanent_failures`` records them, never retried;
    - 403 (out of memory): ``handle_out_of_memory`` splits the structures in halves and retries each;
    - 410 (unconverged): ``handle_unconverged`` continues them (``unconverged_restarts`` times; 0: kept as they are);
    - 303 (final structures unreadable, e.g. a full disk): ``handle_unreadable_structures`` reruns the relaxations
      left without a relaxed structure once;
    - 301 (no results file; parsed so only before such jobs counted as 304), 302, 305, 402, 405, 406 (no
      usable output, refused input, model or device problem): unhandled, ``on_unhandled_failure`` decides
      (``restart_once`` runs the same batch again; ``pause`` waits for you).
      An unhandled failure never drops the sub-batches still queued: they run, every result is attached, and the
      work chain then exits with ``ERROR_UNHANDLED_FAILURE`` (612), the failed batch's structures without result.
    Reaching ``max_iterations`` likewise attaches every result so far before exiting 611 (BaseRestartWorkChain alone
    would abort without outputs).
    """

    _process_class = MliapCalculation

    defaults = AttributeDict(
        {
            'step_factor': 2,  # unconverged: first more steps, then the other optimizer
            'other_optimizer': {'FIRE': 'BFGS', 'BFGS': 'FIRE', 'LBFGS': 'FIRE'},
            'resubmissions': 2,  # structures a killed or timed-out job never reached
        }
    )

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MliapCalculation, namespace='mliap')
        spec.inputs['max_iterations'].default = lambda: orm.Int(10)
        spec.input(
            'unconverged_restarts',
            valid_type=orm.Int,
            default=lambda: orm.Int(2),
            help='Continuations of an unconverged relaxation: first with more steps, then the other optimizer; 0 keeps '
            "it as it is (Matbench Discovery's protocol).",
        )
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.prepare_batch, cls.run_process, cls.inspect_process),
            cls.results,
        )
        spec.output_namespace('results', valid_type=MliapResultData, dynamic=True, help='Final result per structure.')
        spec.output_namespace('relaxed_structures', valid_type=orm.StructureData, dynamic=True)
        spec.output_namespace('forces', valid_type=orm.ArrayData, dynamic=True,
                              help="Every atom's force per structure, with the `keep_forces` parameter.")  # fmt: skip
        spec.output('summary', valid_type=orm.Dict, help='Final status of every structure over all iterations.')
        # The base work chain's own band (6xx): BaseRestartWorkChain's 301, 302, 401 and 402 would read as the
        # calculation's codes of the same numbers (402 is also "model hash mismatch" there).
        for status, label, message in RENUMBERED:
            spec.exit_code(status, label, message=message)
        spec.exit_code(
            620, 'ERROR_NO_STRUCTURE_SUCCEEDED', message='No structure got a result: {counts}', invalidates_cache=False
        )

    @classmethod
    def protocol_section(cls, content: dict[str, Any]) -> dict[str, Any]:
        return {'parameters': content['parameters'], **content.get('base', {})}

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        model=None,
        structures: list[orm.StructureData] = (),
        protocol: str | None = None,
        overrides: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        task: str = 'relax',
    ):
        """A builder with the protocol's parameters for ``task`` (``static``, ``relax``, ``relax_fixsym``);
        ``overrides={'parameters': {...}, 'max_iterations': n, 'clean_workdir': bool}``. Without ``model`` and
        ``structures``: the inputs a benchmark's ``base`` namespace takes (it sets those per batch)."""
        from ..calculations.mliap import get_builder_for

        inputs = cls.get_protocol_inputs(protocol, overrides)
        parameters = task_parameters(inputs.pop('parameters'), task)
        builder = cls.get_builder()
        builder.mliap.code = code
        if model is not None:
            calculation = get_builder_for(code, model, structures, parameters)
            assign_inputs(builder.mliap, {key: calculation[key] for key in ('model', 'structures', 'parameters')})
        assign_inputs(builder.mliap.metadata.options, options or {})
        for key, value in inputs.items():
            builder[key] = orm.to_aiida_type(value) if not isinstance(value, orm.Data) else value
        return builder

    def setup(self) -> None:
        super().setup()
        inputs = AttributeDict(self.exposed_inputs(MliapCalculation, 'mliap'))
        structures = inputs.pop('structures')
        parameters = inputs.pop('parameters').get_dict() if 'parameters' in inputs else {}
        self.ctx.base_inputs = inputs
        self.ctx.queue = [
            {'structures': {label: node.pk for label, node in structures.items()}, 'parameters': parameters}
        ]
        self.ctx.original = {label: node.pk for label, node in structures.items()}
        self.ctx.step_restarts, self.ctx.resubmissions, self.ctx.rereads = {}, {}, {}

    def should_run_process(self) -> bool:
        if not self.ctx.queue:
            return False
        exceeded = self.ctx.get('final_exit') == self.exit_codes.ERROR_MAXIMUM_ITERATIONS_EXCEEDED.status
        if exceeded or self.ctx.iteration >= self.inputs.max_iterations.value:
            left = sorted(label for batch in self.ctx.queue for label in batch['structures'])
            self.report(f'maximum iterations reached: {len(left)} structures left without a final result: {left}')
            return False
        return True

    def prepare_batch(self) -> None:
        batch = self.ctx.queue.pop(0)
        self.ctx.is_finished = False
        self.ctx.batch = batch
        self.ctx.inputs = AttributeDict(
            {
                **self.ctx.base_inputs,
                'structures': {label: orm.load_node(pk) for label, pk in batch['structures'].items()},
                'parameters': batch['parameters'],
            }
        )

    def inspect_process(self):
        """BaseRestartWorkChain's inspection, plus: a batch that fails unhandled and is to be run again goes back on
        the queue, and an abort waits until the queued sub-batches have run (their results are never dropped)."""
        node = self.ctx.children[self.ctx.iteration - 1]
        exit_code = super().inspect_process()
        if exit_code is not None and exit_code.status == self.exit_codes.ERROR_MAXIMUM_ITERATIONS_EXCEEDED.status:
            self.ctx.final_exit = exit_code.status  # stop here, but attach what the iterations so far produced
            return None
        if not node.is_failed or self._handled():
            return exit_code
        if exit_code is None:  # restart_once / pause / restart_and_pause: the same batch again
            self.ctx.queue.insert(0, self.ctx.batch)
            return None
        if exit_code.status == self.exit_codes.ERROR_UNHANDLED_FAILURE.status:
            self.ctx.final_exit = exit_code.status
            left = len(self.ctx.queue)
            self.report(
                f'{len(self.ctx.batch["structures"])} structures left without result; {left} queued batches run'
            )
            return None
        return exit_code

    def _handled(self) -> bool:
        """Whether a handler reported on the latest child (BaseRestartWorkChain records every handler's answer)."""
        considered = self.node.base.extras.get(self._considered_handlers_extra, [])
        return bool(considered) and any(answer is not None for _, answer in considered[-1])

    # -- handlers: each takes the structures of one status from the child's summary -------------------------------

    @process_handler(priority=600)
    def handle_out_of_memory(self, node) -> ProcessHandlerReport | None:
        """Structures that ran out of (CUDA or host) memory: split them in halves and retry each half."""
        labels = self._labels(node, Status.OUT_OF_MEMORY)
        if node.exit_status == SCHEDULER_OUT_OF_MEMORY:
            labels += self._labels(node, Status.NOT_RUN)
        if not labels:
            return None
        if len(self.ctx.batch['structures']) == 1:
            self.report(f'{labels[0]} ran out of memory on its own: recorded, not retried')
            return ProcessHandlerReport()
        half = (len(labels) + 1) // 2
        for part in (labels[:half], labels[half:]):
            if part:
                self._queue(part, self.ctx.batch['parameters'], from_node=None)
        self.report(f'{len(labels)} structures out of memory: retrying in batches of {half} and {len(labels) - half}')
        return ProcessHandlerReport()

    @process_handler(priority=500)
    def handle_not_run(self, node) -> ProcessHandlerReport | None:
        """Structures a killed or timed-out job never reached: resubmit them (a limited number of times)."""
        if node.exit_status == SCHEDULER_OUT_OF_MEMORY:
            return None
        labels = self._labels(node, Status.NOT_RUN)
        if not labels:
            return None
        retry = self._count_attempts(labels, self.ctx.resubmissions, self.defaults.resubmissions)
        if retry:
            self._queue(retry, self.ctx.batch['parameters'], from_node=None)
        self.report(f'{len(labels)} structures not reached (walltime or a killed job): {len(retry)} resubmitted')
        return ProcessHandlerReport()

    @process_handler(priority=450, exit_codes=[MliapCalculation.exit_codes.ERROR_UNREADABLE_STRUCTURES])
    def handle_unreadable_structures(self, node) -> ProcessHandlerReport | None:
        """Relaxations whose final geometry could not be read (a full disk cut the file): run once more from their
        input structure, so that no result stays without its relaxed structure; the job's OS error is reported."""
        if task_name(self.ctx.batch['parameters']) == 'static':
            return None
        relaxed = set(node.outputs.relaxed_structures) if 'relaxed_structures' in node.outputs else set()
        queued = self._queued()
        labels = sorted(label for status in WITH_RESULT for label in self._labels(node, status))
        labels = [label for label in labels if label not in relaxed and label not in queued]
        if not labels:
            return None
        retry = self._count_attempts(labels, self.ctx.rereads, 1)
        if retry:
            self._queue(retry, self.ctx.batch['parameters'], from_node=None)
        self.report(
            f'{len(labels)} relaxed structures unreadable ({node.exit_message}): {len(retry)} rerun, '
            f'{len(labels) - len(retry)} kept without a relaxed structure'
        )
        return ProcessHandlerReport()

    @process_handler(priority=400)
    def handle_unconverged(self, node) -> ProcessHandlerReport | None:
        """Unconverged relaxations: continue from their last geometry with more steps, then the other optimizer."""
        queued = self._queued()  # e.g. rerun already, their relaxed structure unreadable
        labels = [label for label in self._labels(node, Status.UNCONVERGED) if label not in queued]
        if not labels:
            return None
        parameters = with_defaults(self.ctx.batch['parameters'])
        limit = self.inputs.unconverged_restarts.value
        retry = self._count_attempts(labels, self.ctx.step_restarts, limit)
        by_attempt: dict[int, list[str]] = {}
        for label in retry:
            by_attempt.setdefault(self.ctx.step_restarts[label], []).append(label)
        for attempt, members in by_attempt.items():
            update = (
                {'max_steps': parameters['max_steps'] * self.defaults.step_factor}
                if attempt == 1
                else {'optimizer': self.defaults.other_optimizer[parameters['optimizer']]}
            )
            self._queue(members, {**self.ctx.batch['parameters'], **update}, from_node=node)
        given_up = len(labels) - len(retry)
        self.report(
            f'{len(labels)} relaxations unconverged: {len(retry)} continued from their last geometry'
            + (f', {given_up} kept as unconverged after {limit} restarts' if given_up else '')
        )
        return ProcessHandlerReport()

    @process_handler(priority=300, exit_codes=[MliapCalculation.exit_codes.ERROR_SOME_STRUCTURES_FAILED,
                                               MliapCalculation.exit_codes.ERROR_ALL_STRUCTURES_FAILED,
                                               MliapCalculation.exit_codes.ERROR_UNSUPPORTED_ELEMENT])  # fmt: skip
    def handle_permanent_failures(self, node) -> ProcessHandlerReport | None:
        """Failures another attempt cannot fix (unsupported element, exploded, refused): recorded, never retried."""
        labels = [label for status in PERMANENT_FAILURES for label in self._labels(node, status)]
        if not labels:
            return None
        self.report(f'{len(labels)} structures failed for good (recorded, not retried): {sorted(labels)}')
        return ProcessHandlerReport()

    # -- helpers ------------------------------------------------------------------------------------------------

    @staticmethod
    def _count_attempts(labels: list[str], attempts: dict[str, int], limit: int) -> list[str]:
        """The labels with attempts left, each counted one more attempt in ``attempts`` (a ctx dict)."""
        allowed = [label for label in labels if attempts.get(label, 0) < limit]
        for label in allowed:
            attempts[label] = attempts.get(label, 0) + 1
        return allowed

    def _queued(self) -> set[str]:
        return {label for batch in self.ctx.queue for label in batch['structures']}

    def _labels(self, node, status: Status) -> list[str]:
        summary = node.outputs.summary.get_dict() if 'summary' in node.outputs else {}
        return list(summary.get('labels', {}).get(status.value, []))

    def _queue(self, labels: list[str], parameters: dict[str, Any], from_node) -> None:
        """Queue ``labels`` as one batch: from the relaxed geometry of ``from_node`` or from the original input."""
        relaxed = outputs_of([from_node.pk], 'relaxed_structures', project='id')[from_node.pk] if from_node else {}
        structures = {label: relaxed.get(label, self.ctx.original[label]) for label in labels}
        self.ctx.queue.append({'structures': structures, 'parameters': parameters})

    def results(self):
        summaries = {
            f'iteration_{index:02d}': child.outputs.summary
            for index, child in enumerate(self.ctx.children, start=1)
            if 'summary' in child.outputs
        }
        if not summaries:
            if self.ctx.get('final_exit'):
                return self.exit_codes(self.ctx.final_exit)
            return self.exit_codes.ERROR_NO_STRUCTURE_SUCCEEDED.format(counts={})
        summary = merge_summaries(**summaries)
        self._attach_final_outputs()
        self.out('summary', summary)
        self.report(f'work chain completed after {self.ctx.iteration} iterations: {summary["counts"]}')
        if self.ctx.get('final_exit'):
            return self.exit_codes(self.ctx.final_exit)
        if not any(summary['counts'].get(status.value) for status in WITH_RESULT):
            return self.exit_codes.ERROR_NO_STRUCTURE_SUCCEEDED.format(counts=summary['counts'])
        return None

    def _attach_final_outputs(self) -> None:
        """Each structure's result (with its relaxed structure and forces) from the latest calculation that holds it."""
        children = [child.pk for child in self.ctx.children if child.is_finished]
        results = outputs_of(children, 'results')
        relaxed, forces = outputs_of(children, 'relaxed_structures'), outputs_of(children, 'forces')
        final = latest_by_label(
            {label: (result, relaxed[pk].get(label), forces[pk].get(label)) for label, result in results[pk].items()}
            for pk in children
        )
        for label, (result, structure, array) in sorted(final.items()):
            self.out(f'results.{label}', result)
            if structure is not None:
                self.out(f'relaxed_structures.{label}', structure)
            if array is not None:
                self.out(f'forces.{label}', array)
