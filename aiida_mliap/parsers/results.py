"""Pure helpers that read the runner's output files (no AiiDA), so they can be tested and reused alone."""

from __future__ import annotations

import io
import json
from collections import Counter
from typing import Any

from ..contract.status import PERMANENT_FAILURES, WITH_RESULT, Status


def read_results(text: str) -> dict[str, Any]:
    """Parse ``results.json``; raises ValueError when it is not the runner's format."""
    content = json.loads(text)
    if not isinstance(content, dict) or not isinstance(content.get('results'), list):
        raise ValueError('expected an object with a `results` list')
    return content


def read_partial_results(text: str) -> list[dict[str, Any]]:
    """Parse ``results.partial.jsonl``, dropping a last line cut off by a killed run."""
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def read_final_structures(text: str) -> dict[str, Any]:
    """Final structures (ASE Atoms) by label."""
    import ase.io

    if not text.strip():
        return {}
    frames = ase.io.read(io.StringIO(text), index=':', format='extxyz')
    return {atoms.info['label']: atoms for atoms in frames}


def summarize(records: list[dict[str, Any]], expected: list[str]) -> dict[str, Any]:
    """Counts and labels by status; structures without a record are ``not_run``."""
    by_label = {record['label']: record['status'] for record in records}
    statuses = {label: by_label.get(label, Status.NOT_RUN.value) for label in expected}
    labels: dict[str, list[str]] = {}
    for label, status in statuses.items():
        labels.setdefault(status, []).append(label)
    return {
        'n_structures': len(expected),
        'counts': dict(Counter(statuses.values())),
        'labels': labels,
    }


def outcome(counts: dict[str, int]) -> str | None:
    """Name of the exit code for a finished batch with these status counts, None when all succeeded."""
    statuses = {Status(status) for status, count in counts.items() if count}
    if statuses <= {Status.OK}:
        return None
    if Status.OUT_OF_MEMORY in statuses:
        return 'ERROR_OUT_OF_MEMORY'
    if not statuses & WITH_RESULT:
        return 'ERROR_ALL_STRUCTURES_FAILED'
    if Status.UNCONVERGED in statuses:
        return 'ERROR_UNCONVERGED'
    if statuses & PERMANENT_FAILURES == {Status.UNSUPPORTED_ELEMENT}:
        return 'ERROR_UNSUPPORTED_ELEMENT'
    return 'ERROR_SOME_STRUCTURES_FAILED'


FATAL_EXIT_CODES = {
    'model_hash_mismatch': 'ERROR_MODEL_HASH_MISMATCH',
    'model_missing': 'ERROR_MODEL_LOAD_FAILED',
    'model_load_failed': 'ERROR_MODEL_LOAD_FAILED',
    'device_unavailable': 'ERROR_DEVICE_UNAVAILABLE',
    'invalid_input': 'ERROR_RUNNER_REFUSED_INPUT',
}
