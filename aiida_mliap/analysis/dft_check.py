"""Which structures of a finished relaxation benchmark to check with DFT: chosen from its results table, which is
why this sits with the analysis and not with the work chain (that takes explicit structures)."""

from __future__ import annotations

from aiida import orm

from ..calculations.dataset import union_of_datasets
from ..provenance.calls import batch_calls
from ..provenance.links import outputs_of
from ..science.dft_check import RULES, select_structures
from ..science.metrics import json_safe
from .results import load_results


def dft_check_builder(
    benchmark: orm.WorkflowNode,
    code: orm.AbstractCode,
    pseudo_family: str,
    model: str | None = None,
    rules: tuple[str, ...] = RULES,
    labels: tuple[str, ...] = (),
    max_structures: int = 10,
    max_atoms: int | None = None,
    protocol: str = 'fast',
    options: dict | None = None,
):
    """A ``MliapDftCheckWorkChain`` builder for the structures ``select_structures`` picks (``model``: a name or
    sha256, needed if the benchmark ran several), each with the geometry the model relaxed it to and its reference."""
    from ..workchains.dft_check import MliapDftCheckWorkChain  # needs the `dft` extra

    chosen = select_structures(load_results(benchmark), model, rules, labels, max_structures, max_atoms)
    if chosen.empty:
        raise ValueError(f'no structure matches the rules {list(rules)} and labels {list(labels)}')
    sha256 = chosen['model_sha256'].iloc[0]
    keys = [key for key, node in benchmark.inputs.models.items() if node.sha256 == sha256]
    node = benchmark.inputs.models[keys[0]]
    wanted = chosen['label'].tolist()
    children = [child.pk for child in batch_calls(benchmark, keys[0], 'relax').values()]
    relaxed = {}
    for structures in outputs_of(children, 'relaxed_structures', labels=wanted).values():  # a label: one batch
        relaxed.update(structures)
    datasets = [benchmark.inputs.datasets[key] for key in sorted(benchmark.inputs.datasets)]
    references = union_of_datasets(datasets, 'structures', labels=wanted)
    missing = sorted(set(wanted) - set(relaxed))
    if missing:
        raise ValueError(f'no relaxed structure for {missing} in benchmark {benchmark.pk}')
    selection = {
        'benchmark_uuid': benchmark.uuid,
        'rules': list(rules),
        'reasons': {row.label: list(row.reasons) for row in chosen.itertuples()},
        'abs_error_e_above_hull_dftref': {row.label: row.abs_error_e_above_hull_dftref for row in chosen.itertuples()},
    }
    return MliapDftCheckWorkChain.get_builder_from_protocol(
        code, node, {label: relaxed[label] for label in wanted}, {label: references[label] for label in wanted},
        pseudo_family, protocol, options, json_safe(selection),
    )  # fmt: skip
