"""Progress and headline errors of a benchmark work chain, from its provenance (and, for running jobs, from the
partial results the runner streams into its working directory)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from aiida import orm
from aiida.common import timezone

from ..contract import files
from ..contract.status import WITH_RESULT


def progress(benchmark: orm.WorkflowNode) -> list[dict[str, Any]]:
    """Per model and task: structures done (a result), failed (for good) and pending, with the rate so far and an
    estimate of the time left. Running calculations count what their runner has streamed so far. Once the benchmark
    has ended nothing is pending and no time is left: what never got a result is ``not evaluated``.

    The time left weighs the remaining structures by their atoms (a batch of large cells is slow) at the rate observed
    up to the last result, minus the time since that result: it falls while a slow structure runs, instead of rising
    as a rate diluted by the wait would; when it reaches zero the row says how long no result has come."""
    from ..calculations.plan import batch_atoms, skipped_labels
    from ..parsers.results import read_partial_results
    from ..provenance.calls import batch_calls

    planned = benchmark.base.links.get_outgoing(link_label_filter='plan').all()
    if not planned:  # still planning: nothing to count yet
        return []
    plan = planned[0].node.outputs.result  # the benchmark's own stored plan: no query over every structure
    total, left_out = plan.base.attributes.get('n_evaluated'), skipped_labels(plan)
    atoms_per_batch = batch_atoms(plan)
    with_result = {s.value for s in WITH_RESULT}
    ended = benchmark.is_terminated
    # A finished benchmark's own account (workchains.accounting): a job's `not_run` is not a model failure.
    entries = benchmark.outputs.summary.get('entries', []) if 'summary' in benchmark.outputs else []
    accounts = {(entry['model'], entry['task']): entry['accounting'] for entry in entries if entry.get('accounting')}
    rows = []
    for key, model in sorted(benchmark.inputs.models.items()):
        for task in benchmark.inputs.tasks.get_list():
            done = failed = 0
            work = Work()
            children = batch_calls(benchmark, key, task, finished=ended)
            for index, child in children.items():
                if child.is_terminated and 'summary' in child.outputs:
                    statuses = child.outputs.summary['counts']
                    work.add(sum(statuses.values()), atoms_per_batch[index], child.mtime)
                else:  # still running: what its calculations have finished, the latest result of a structure
                    records, latest = _streamed(child, read_partial_results)
                    statuses = {}
                    for record in records.values():
                        statuses[record['status']] = statuses.get(record['status'], 0) + 1
                    atoms = sum(record.get('n_atoms', 1) for record in records.values())
                    work.add(len(records), atoms, latest)
                done += sum(count for status, count in statuses.items() if status in with_result)
                failed += sum(count for status, count in statuses.items() if status not in with_result)
            account = accounts.get((model.name, task))
            if account:
                done, failed = account['evaluated'], sum(account['failed_by_model'].values())
            missing = max(total - done - failed, 0)
            pending = 0 if ended else missing
            start = min((child.ctime for child in children.values()), default=None)
            rows.append(
                {
                    'model': model.name,
                    'task': task,
                    'done': done,
                    'failed': failed,
                    'pending': pending,
                    **({'not evaluated': missing} if ended else {}),
                    **({'left out (max_atoms)': len(left_out)} if left_out else {}),
                    'structures/min': round(60 * work.structures / _busy_seconds(children.values()), 2),
                    # The basis of the estimate: a time left that grows does so at a new result, with a lower rate.
                    'atoms/min': work.atom_rate(start),
                    'last result': '-' if ended or work.last is None else f'{_duration(work.since())} ago',
                    'time left': '-' if ended or not pending else work.time_left(start, sum(atoms_per_batch)),
                }
            )
    return rows


class Work:
    """What a model and task got through, in structures and atoms, and when the last of it came: the basis of the
    time-left estimate."""

    def __init__(self):
        self.structures, self.atoms, self.last = 0, 0, None

    def add(self, structures: int, atoms: int, when) -> None:
        self.structures += structures
        self.atoms += atoms
        if structures and when is not None:
            self.last = when if self.last is None else max(self.last, when)

    def since(self) -> float:
        return max((timezone.now() - self.last).total_seconds(), 0.0)

    def _rate(self, start) -> float | None:
        """Atoms per second from the first batch's start to the last result."""
        if not self.atoms or start is None or self.last is None or self.last <= start:
            return None  # no result yet: no basis for a rate
        return self.atoms / (self.last - start).total_seconds()

    def atom_rate(self, start) -> float | str:
        rate = self._rate(start)
        return '-' if rate is None else round(60 * rate, 1)

    def time_left(self, start, size: int) -> str:
        """``size``: all atoms of the plan."""
        rate = self._rate(start)
        if rate is None:
            return '-'
        since = self.since()
        left = max(size - self.atoms, 0) / rate - since
        if left > 0:
            return _duration(left)
        return f'overdue: no result for {_duration(since)}'


def _busy_seconds(children) -> float:
    """Seconds from the first batch of a model and task to its last finished one, or to now while one runs: its own
    rate, not diluted by the time other models ran before it."""
    children = list(children)
    if not children:
        return float('inf')
    start = min(child.ctime for child in children)
    running = any(not child.is_terminated for child in children)
    end = timezone.now() if running else max(child.mtime for child in children)
    return max((end - start).total_seconds(), 1e-9)


def _streamed(base: orm.WorkflowNode, read) -> tuple[dict[str, dict[str, Any]], Any]:
    """The records of a base work chain's calculations, finished ones from their outputs and running ones from the
    partial-results file in their remote folder (through the computer's transport); the latest per label. With them,
    when the latest record came (the file's modification time, or a finished calculation's), or None."""
    import datetime

    from ..provenance.links import outputs_of

    calculations = sorted((c for c in base.called if isinstance(c, orm.CalcJobNode)), key=lambda c: c.ctime)
    finished = outputs_of([c.pk for c in calculations if c.is_terminated], 'results', project='attributes')
    records: dict[str, dict[str, Any]] = {}
    latest = None
    for calc in calculations:
        if calc.is_terminated:
            records.update(finished[calc.pk])
            latest = calc.mtime if finished[calc.pk] else latest
            continue
        remote = calc.outputs.remote_folder if 'remote_folder' in calc.outputs else None
        if remote is None:
            continue
        try:
            with remote.computer.get_transport() as transport, tempfile.TemporaryDirectory() as directory:
                target = Path(directory) / files.RESULTS_PARTIAL
                source = f'{remote.get_remote_path()}/{files.RESULTS_PARTIAL}'
                if transport.isfile(source):
                    modified = transport.get_attribute(source).st_mtime
                    transport.getfile(source, str(target))
                    streamed = {r['label']: r for r in read(target.read_text()) if 'label' in r}
                    records.update(streamed)
                    if streamed:
                        latest = datetime.datetime.fromtimestamp(modified, tz=datetime.timezone.utc)
        except Exception:  # an unreachable computer: this calculation's progress is unknown for now
            continue
    return records, latest


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f'{hours}h{minutes:02d}m' if hours else f'{minutes}m{seconds:02d}s'


def error_summary(benchmark: orm.WorkflowNode) -> list[dict[str, Any]]:
    """MAE, mean signed error and RMSE (model - DFT, meV/atom) per model, task and quantity, from provenance."""
    from ..science.metrics import headline_table
    from .results import load_results

    table = headline_table(load_results(benchmark))
    return table.to_dict('records')
