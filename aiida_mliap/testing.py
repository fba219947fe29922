"""Tiny real models built in code (seeded, untrained): for tests, examples and benchmarks, offline."""

from __future__ import annotations

from pathlib import Path

from aiida import orm
from aiida.engine import calcfunction

from .calculations.dataset import imported_nodes
from .calculations.tables import tabulate
from .data.model import MliapModelData
from .data.result import MliapResultData
from .provenance.links import attach_outputs, outputs_of
from .tiny_models import build_mace, build_tiny_m3gnet, build_tiny_mace

__all__ = ('build_mace', 'build_tiny_m3gnet', 'build_tiny_mace', 'dft_as_model', 'oracle_model', 'oracle_tables')


def oracle_model(directory: Path, variant: int = 0) -> MliapModelData:
    """A model node standing for 'the DFT code itself' on the raw scale, so that MP2020 is applied afresh.

    ``variant`` > 0 gives distinct model nodes (another sha256), e.g. to fill a profile with many models' results."""
    path = Path(directory) / f'dft-as-a-model-{variant}.txt'
    path.write_text('placeholder checkpoint: the oracle feeds DFT energies through the pipeline' + ' ' * variant)
    name = 'dft-oracle' + (f'-{variant}' if variant else '')
    # Never loaded by a framework, so made directly: registration (get_or_create) would refuse a placeholder.
    node = MliapModelData(path, 'mace', name=name, energy_scale='raw_dft')
    return MliapModelData.find(node.sha256) or node.store()


@calcfunction
def dft_as_model(dataset, parameters=None):
    """What a perfect raw-scale model would return for ``dataset``: its raw DFT energies as result nodes (the oracle
    of the thermodynamics tests and benchmark), plus a ``summary`` to hand to ``compute_thermodynamics``.

    ``parameters`` (runner parameters) make it look like a calculation to ``load_results``; ``{'noise': sigma}``
    adds seeded Gaussian noise (eV/atom) to the energies."""
    import numpy as np

    from .calculations.dataset import read_records

    references = {record.label: record.attributes for record in read_records(dataset)}  # the input itself
    sigma = parameters.get('noise', 0.0) if parameters is not None else 0.0
    noise = np.random.default_rng(int(parameters.get('seed', 0)) if parameters is not None else 0)
    results = {}
    for label, attributes in sorted(references.items()):  # sorted: the same noise for the same label every time
        energy = attributes['energy'] + (sigma * noise.normal() * attributes['n_atoms'] if sigma else 0.0)
        record = {'label': label, 'status': 'ok', 'task': 'static', 'energy': energy}
        results[label] = MliapResultData({**record, 'energy_per_atom': energy / attributes['n_atoms']})
    attach_outputs({'results': results})
    return {'summary': orm.Dict({'n_structures': len(results)})}


def oracle_tables(dataset, parameters: dict | None = None, batch_size: int = 100) -> list:
    """``dft_as_model`` over ``dataset``, tabulated in batches as a benchmark would: the ``tables`` to hand to
    ``compute_thermodynamics`` (``thermodynamics_inputs(model, tables, [dataset])``)."""
    node = orm.Dict(parameters or {'task': 'static'}).store()
    _, call = dft_as_model.run_get_node(dataset, node)
    results = outputs_of([call.pk], 'results')[call.pk]
    references = imported_nodes([dataset], 'references')[dataset.sha256]
    return tabulate(node, references, results, batch_size=batch_size)
