"""Progress and headline errors of a benchmark work chain, from its provenance (and, for running jobs, from the
partial results the runner streams into its working directory)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from aiida import orm
from aiida.common import timezone

from ..engine import files
from ..engine.status import WITH_RESULT


def progress(benchmark: orm.WorkflowNode) -> list[dict[str, Any]]:
    """Per model and task: structures done (a result), failed (for good) and pending, with the rate so far and an
    estimate of the time left. Running calculations count what their runner has streamed so far. Once the benchmark
    has ended nothing is pending and no time is left: what never got a result is ``not evaluated``."""
    from ..calculations.dataset import group_datasets, union_of_datasets
    from ..calculations.plan import skipped_labels
    from ..parsers.results import read_partial_results
    from ..workchains.benchmark import batch_calls, evaluated_structures

    planned = benchmark.base.links.get_outgoing(link_label_filter='plan').all()
    if planned:  # the benchmark's own stored plan: no query over every structure at each status call
        plan = planned[0].node.outputs.result
        total, left_out = plan.base.attributes.get('n_evaluated'), skipped_labels(plan)
    else:  # a benchmark from before plans
        if 'datasets' in benchmark.inputs:
            datasets = [benchmark.inputs.datasets[key] for key in sorted(benchmark.inputs.datasets)]
        else:  # ... and before datasets were inputs: the group's datasets now
            datasets = group_datasets(orm.load_group(benchmark.inputs.group.value))
        max_atoms = benchmark.inputs.max_atoms.value if 'max_atoms' in benchmark.inputs else None
        structures = union_of_datasets(datasets, 'structures', project='id')
        evaluated, left_out = evaluated_structures(datasets, structures, max_atoms)
        total = len(evaluated)
    with_result = {s.value for s in WITH_RESULT}
    ended = benchmark.is_terminated
    # A finished benchmark's own account (workchains.accounting): a job's `not_run` is not a model failure.
    entries = benchmark.outputs.summary.get('entries', []) if 'summary' in benchmark.outputs else []
    accounts = {(entry['model'], entry['task']): entry['accounting'] for entry in entries if entry.get('accounting')}
    rows = []
    for key, model in sorted(benchmark.inputs.models.items()):
        for task in benchmark.inputs.tasks.get_list():
            done = failed = 0
            children = list(batch_calls(benchmark, key, task, finished=ended).values())
            for child in children:
                if child.is_terminated and 'summary' in child.outputs:
                    statuses = child.outputs.summary['counts']
                else:  # still running: what its calculations have finished, the latest result of a structure
                    statuses = {}
                    for record in _streamed(child, read_partial_results).values():
                        statuses[record['status']] = statuses.get(record['status'], 0) + 1
                done += sum(count for status, count in statuses.items() if status in with_result)
                failed += sum(count for status, count in statuses.items() if status not in with_result)
            account = accounts.get((model.name, task))
            if account:
                done, failed = account['evaluated'], sum(account['failed_by_model'].values())
            missing = max(total - done - failed, 0)
            pending = 0 if ended else missing
            rate = (done + failed) / _busy_seconds(children)
            rows.append(
                {
                    'model': model.name,
                    'task': task,
                    'done': done,
                    'failed': failed,
                    'pending': pending,
                    **({'not evaluated': missing} if ended else {}),
                    **({'left out (max_atoms)': len(left_out)} if left_out else {}),
                    'structures/min': round(60 * rate, 2),
                    'time left': _duration(pending / rate) if rate and pending else '-',
                }
            )
    return rows


def _busy_seconds(children: list[orm.WorkflowNode]) -> float:
    """Seconds from the first batch of a model and task to its last finished one, or to now while one runs: its own
    rate, not diluted by the time other models ran before it."""
    if not children:
        return float('inf')
    start = min(child.ctime for child in children)
    running = any(not child.is_terminated for child in children)
    end = timezone.now() if running else max(child.mtime for child in children)
    return max((end - start).total_seconds(), 1e-9)


def _streamed(base: orm.WorkflowNode, read) -> dict[str, dict[str, Any]]:
    """The records of a base work chain's calculations, finished ones from their outputs and running ones from the
    partial-results file in their remote folder (through the computer's transport); the latest per label."""
    from ..calculations.outputs import outputs_of

    calculations = sorted((c for c in base.called if isinstance(c, orm.CalcJobNode)), key=lambda c: c.ctime)
    finished = outputs_of([c.pk for c in calculations if c.is_terminated], 'results', project='attributes')
    records: dict[str, dict[str, Any]] = {}
    for calc in calculations:
        if calc.is_terminated:
            records.update(finished[calc.pk])
            continue
        remote = calc.outputs.remote_folder if 'remote_folder' in calc.outputs else None
        if remote is None:
            continue
        try:
            with remote.computer.get_transport() as transport, tempfile.TemporaryDirectory() as directory:
                target = Path(directory) / files.RESULTS_PARTIAL
                source = f'{remote.get_remote_path()}/{files.RESULTS_PARTIAL}'
                if transport.isfile(source):
                    transport.getfile(source, str(target))
                    records.update({r['label']: r for r in read(target.read_text()) if 'label' in r})
        except Exception:  # an unreachable computer: this calculation's progress is unknown for now
            continue
    return records


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f'{hours}h{minutes:02d}m' if hours else f'{minutes}m{seconds:02d}s'


def error_summary(benchmark: orm.WorkflowNode) -> list[dict[str, Any]]:
    """MAE, mean signed error and RMSE (model - DFT, meV/atom) per model, task and quantity, from provenance."""
    from .metrics import headline_table
    from .results import load_results

    table = headline_table(load_results(benchmark))
    return table.to_dict('records')
