"""Share a benchmark: the dataset group, its results groups and the benchmark work chains in one AiiDA archive."""

from __future__ import annotations

from pathlib import Path

from aiida import orm


def benchmark_entities(group_label: str) -> tuple[list[orm.Group], list[orm.WorkflowNode]]:
    """The dataset group and its ``<label>/results/...`` groups, and the benchmark work chains run on it."""
    from ..workchains.benchmark import MliapBenchmarkWorkChain

    try:
        dataset_group = orm.load_group(group_label)
    except Exception as exception:
        raise ValueError(f'no group `{group_label}`: {exception}') from None
    results = orm.QueryBuilder().append(orm.Group, filters={'label': {'like': f'{group_label}/results/%'}})
    query = orm.QueryBuilder().append(orm.Str, filters={'attributes.value': group_label}, tag='label')
    query.append(MliapBenchmarkWorkChain, with_incoming='label', edge_filters={'label': 'group'}, project='*')
    return [dataset_group, *results.all(flat=True)], query.all(flat=True)


def export_benchmark(group_label: str, filename: Path, overwrite: bool = False) -> dict[str, int]:
    """Write the archive (aiida's ``create_archive``, as ``verdi archive create``) with the default traversal
    rules: everything the benchmarks created and every input, models and structures included."""
    from aiida.tools.archive import create_archive

    groups, benchmarks = benchmark_entities(group_label)
    if Path(filename).exists() and not overwrite:
        raise FileExistsError(f'{filename} exists: pass --force to overwrite it')
    # A benchmark still running is not sealed: its nodes may still change, so it waits for a later export.
    sealed = [benchmark for benchmark in benchmarks if benchmark.is_sealed]
    create_archive([*groups, *sealed], filename=filename, overwrite=overwrite)
    return {
        'groups': len(groups),
        'benchmark work chains': len(sealed),
        'benchmark work chains still running (left out)': len(benchmarks) - len(sealed),
    }
