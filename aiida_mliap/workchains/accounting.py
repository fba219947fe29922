"""Every structure of a benchmark accounted for: evaluated, failed by the model, or not evaluated and why.

A batch can end without a result for some of its structures for reasons that have nothing to do with the model (a
job killed before it started, a device that was not there, resubmissions used up): a benchmark that still said
[0] would report errors over fewer structures than the user thinks. So the benchmark counts, per model and task,
what happened to each planned structure, from the base work chains' summaries and exit statuses, and exits with its
own code when any was not evaluated for a reason other than the model.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiida import orm

from ..contract.status import PERMANENT_FAILURES, WITH_RESULT, Status

EVALUATED = 'evaluated'
SHOWN_LABELS = 20  # labels named per reason; the counts are complete


def batch_outcomes(batch: orm.WorkflowNode | None, labels: list[str]) -> dict[str, tuple[str, str]]:
    """Per label of one batch: ``('evaluated', status)``, ``('failed', status)`` (the model's verdict) or
    ``('not_evaluated', reason)``."""
    if batch is None:
        return dict.fromkeys(labels, ('not_evaluated', 'its batch never ran'))
    if not batch.is_finished:
        state = batch.process_state.value if batch.process_state else 'unknown'
        return dict.fromkeys(labels, ('not_evaluated', f'its batch {batch.label} ended {state}'))
    summary = batch.outputs.summary.get_dict() if 'summary' in batch.outputs else {}
    statuses = {label: status for status, members in summary.get('labels', {}).items() for label in members}
    outcomes = {}
    for label in labels:
        status = statuses.get(label)
        if status is None:
            outcomes[label] = ('not_evaluated', _job_failure(batch))
        elif Status(status) in WITH_RESULT:
            outcomes[label] = (EVALUATED, status)
        elif Status(status) in PERMANENT_FAILURES:
            outcomes[label] = ('failed', status)
        elif status == Status.OUT_OF_MEMORY.value:
            outcomes[label] = ('not_evaluated', 'out of memory, alone in its job')
        else:
            outcomes[label] = ('not_evaluated', 'never reached: its jobs stopped early (killed, walltime, '
                               'preemption) until the resubmissions ran out')  # fmt: skip
    return outcomes


def _job_failure(batch: orm.WorkflowNode) -> str:
    """Why a batch's structure has no status at all: the last job that failed without a summary for it."""
    failed = [c for c in batch.called if isinstance(c, orm.CalcJobNode) and not c.is_finished_ok]
    if not failed:
        return f'its batch {batch.label} ended [{batch.exit_status}]: {batch.exit_message or ""}'.strip()
    job = max(failed, key=lambda node: node.ctime)
    if not job.is_finished:
        return f'its job {job.process_label}<{job.pk}> ended {job.process_state.value}'
    message = (job.exit_message or '').splitlines()[0][:160] if job.exit_message else ''
    return f'its job ended [{job.exit_status}] {message}'.strip()


def count(outcomes: dict[str, tuple[str, str]], ground_states: dict[str, str] | None = None) -> dict[str, Any]:
    """Counts of one model and task from ``batch_outcomes`` of all its batches; ``ground_states`` (element -> label)
    names the elemental ground states without a model energy (every formation energy with that element is lost)."""
    from ..contract.labels import link_label

    failed = Counter(status for kind, status in outcomes.values() if kind == 'failed')
    reasons: dict[str, list[str]] = {}
    for label, (kind, reason) in sorted(outcomes.items()):
        if kind == 'not_evaluated':
            reasons.setdefault(reason, []).append(label)
    missing = {
        element: f'{mp_id} ({outcomes[link_label(mp_id)][1]})'
        for element, mp_id in sorted((ground_states or {}).items())
        if outcomes.get(link_label(mp_id), (EVALUATED,))[0] != EVALUATED
    }
    return {
        'planned': len(outcomes),
        EVALUATED: sum(kind == EVALUATED for kind, _ in outcomes.values()),
        'failed_by_model': dict(sorted(failed.items())),
        'not_evaluated': sum(len(labels) for labels in reasons.values()),
        'reasons': {
            reason: {'count': len(labels), 'labels': labels[:SHOWN_LABELS]} for reason, labels in reasons.items()
        },
        'ground_states_without_model_energy': missing,
    }


def headline(entry: dict[str, Any]) -> str | None:
    """One line for a model and task that lost structures, None when every one is accounted for by the model."""
    if not entry['not_evaluated'] and not entry['ground_states_without_model_energy']:
        return None
    parts = [f'{entry["evaluated"]} of {entry["planned"]} structures evaluated']
    if entry['failed_by_model']:
        parts.append(f'{sum(entry["failed_by_model"].values())} failed by the model {entry["failed_by_model"]}')
    for reason, found in entry['reasons'].items():
        parts.append(f'{found["count"]} not evaluated: {reason}')
    for element, why in entry['ground_states_without_model_energy'].items():
        parts.append(f'no model energy for the {element} ground state {why}: no formation energy with {element}')
    return '; '.join(parts)
