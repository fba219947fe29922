"""Issue 29: the time left of a running benchmark falls while a slow structure runs, and says so when overdue
(before: a rate diluted by the wait made it rise, 3m03 -> 5m42, without a word)."""

from __future__ import annotations

import datetime

from aiida_mliap.analysis import benchmark
from aiida_mliap.analysis.benchmark import Work

START = datetime.datetime(2026, 12, 5, 12, 0, tzinfo=datetime.timezone.utc)


def at(seconds: float) -> datetime.datetime:
    return START + datetime.timedelta(seconds=seconds)


def test_time_left_falls_while_waiting_and_weighs_atoms(monkeypatch):
    work = Work()
    work.add(structures=4, atoms=100, when=at(60))  # 100 of 300 atoms in the first minute
    seen = []
    for now in (60, 90, 120, 150):  # a slow structure holds the next result back
        monkeypatch.setattr(benchmark.timezone, 'now', lambda now=now: at(now))
        seen.append(work.time_left(START, 300))
    assert seen == ['2m00s', '1m30s', '1m00s', '0m30s']  # never rising while nothing new is known
    monkeypatch.setattr(benchmark.timezone, 'now', lambda: at(260))
    assert work.time_left(START, 300) == 'overdue: no result for 3m20s'
    # The remaining work is weighed by atoms: 100 of 1000 atoms done takes 9 more minutes, not 2 (4 of 12 structures).
    monkeypatch.setattr(benchmark.timezone, 'now', lambda: at(60))
    assert work.time_left(START, 1000) == '9m00s'
    assert work.atom_rate(START) == 100.0 and work.since() == 0  # the basis shown beside it


def test_no_result_yet_no_estimate():
    work = Work()
    assert work.time_left(START, 300) == '-'
    work.add(structures=0, atoms=0, when=None)
    assert work.time_left(START, 300) == '-'
