"""SevenNet (sevenn package). Lives in its own Python environment: sevenn needs e3nn >= 0.5, mace-torch pins 0.4.4.

The four checkpoints the sevenn 0.13.0 wheel ships are known here by sha256: all predict raw (uncorrected) MP
energies, established by single points on a shared MP file (``benchmarks/energy_scale.py``, docs/model-zoo.md).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase import Atoms

from ..contract.hashing import sha256_of_model
from ..contract.schema import Outputs
from ..contract.status import Status
from .base import Bundled, LoadedModel, MliapFramework

if TYPE_CHECKING:  # torch is imported where a model runs, not by the aiida side that lists frameworks
    from ..contract.system import System, TensorOutputs

_MEASURED = (
    "trained on MPtrj's uncorrected energies; single points on 150 shared Li-Fe-P-O MP entries (sevenn 0.13.0, "
    '../shared/data/README.md): mean signed error {} meV/atom against the raw MP energies, about +680 against the '
    'MP2020-corrected ones; repeated on the union benchmark by benchmarks/energy_scale.py (docs/model-zoo.md)'
)
# sha256 -> (name, how its energy scale was established)
KNOWN = {
    '7052cb42b7b3be42b40b97fa0d21077a48c54b5548948fc4dcf346629f813c36': ('sevennet-0', _MEASURED.format('+4.6')),
    '5d389fafd512e6ae2830d74d0b66ffc49a55d3832653ff8e7bf7f1343013c1d1': (
        'sevennet-0-22may2024',
        "trained on MPtrj's uncorrected energies, as SevenNet-0 (11Jul2024); measured on the union benchmark by "
        'benchmarks/energy_scale.py (docs/model-zoo.md)',
    ),
    'a7ff190d41efe5b8317a03d20a468e4036a1a3e64e0b14fdbab64ac3f4bfc09d': ('sevennet-l3i5', _MEASURED.format('+9.8')),
    '81791329b37d445f46b531578c182c41792d98c7814222c9e5dde276402225fd': (
        'sevennet-mf-0',
        _MEASURED.format('+3.7 (modal PBE)'),
    ),
}


class SevennetFramework(MliapFramework):
    name = 'sevenn'
    distribution = 'sevenn'
    module = 'sevenn'
    bundled = {
        'sevennet-0': Bundled('pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth', {}, 'raw_dft'),
        'sevennet-0-22may2024': Bundled(
            'pretrained_potentials/SevenNet_0__22May2024/checkpoint_sevennet_0.pth', {}, 'raw_dft'
        ),
        'sevennet-l3i5': Bundled('pretrained_potentials/SevenNet_l3i5/checkpoint_l3i5.pth', {}, 'raw_dft'),
        # Multi-fidelity: the PBE head is the one trained on MP's functional (R2SCAN is the other).
        'sevennet-mf-0': Bundled(
            'pretrained_potentials/SevenNet_MF_0/checkpoint_sevennet_mf_0.pth', {'modal': 'PBE'}, 'raw_dft'
        ),
    }

    def load(self, model_dir: Path, files: list[str], device: str, dtype: str, options: dict[str, Any]) -> LoadedModel:
        from sevenn.calculator import SevenNetCalculator

        calculator = SevenNetCalculator(str(model_dir / files[0]), device=device, modal=options.get('modal'))
        numbers = frozenset(int(z) for z in calculator.type_map)
        batch = partial(_evaluate_batch, calculator)
        system = partial(_evaluate_system, calculator)
        adaptations = {'modal': calculator.modal} if calculator.modal else {}
        return LoadedModel(
            calculator, numbers, dtype, device, evaluate_batch=batch, evaluate_system=system, adaptations=adaptations
        )

    def checkpoint_facts(self, path: Path) -> dict[str, Any]:
        if not path.is_file():
            raise ValueError(f'{path} is not a file: a SevenNet checkpoint is one .pth file')
        facts: dict[str, Any] = {}
        known = KNOWN.get(sha256_of_model(path))
        if known is not None:
            facts['checkpoint'], facts['energy_scale_established_by'] = known
            facts['energy_scale'] = 'raw_dft'
        from sevenn.util import load_checkpoint

        config = load_checkpoint(str(path)).config
        modal_map = config.get('_modal_map') or {}
        facts['cutoff'] = float(config['cutoff'])
        if modal_map:
            facts['modals'] = sorted(modal_map)
        return facts

    def vet_options(self, options: dict[str, Any], facts: dict[str, Any] | None = None) -> dict[str, Any]:
        modals = (facts or {}).get('modals')
        modal = options.get('modal')
        if modals and modal not in modals:
            raise ValueError(f'this multi-fidelity checkpoint needs options modal= one of {modals} (case-sensitive)')
        if facts is not None and not modals and modal:
            raise ValueError(f'modal={modal!r} given, but this checkpoint has a single fidelity')
        return {'modal': modal} if modal else {}

    def classify_error(self, exception: BaseException) -> tuple[Status, str] | None:
        if isinstance(exception, ValueError) and 'do not know atomic number' in str(exception):
            return Status.UNSUPPORTED_ELEMENT, f'SevenNet: {exception}'
        return None


def _evaluate_batch(calculator, frames: list[Atoms]) -> list[Outputs]:
    """One forward over a PyG Batch of the graphs SevenNetCalculator builds one at a time, converted as it converts.

    The calculator's own model is switched to batch mode for the call and back, so both engines share one model.
    Forces and stress come from autograd inside the model, hence no ``torch.no_grad()``.
    """
    import sevenn._keys as key
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.train.dataload import unlabeled_atoms_to_graph
    from torch_geometric.data import Batch

    graphs = []
    for atoms in frames:
        calculator.set_atoms(atoms)  # raises on an element the model does not know, as the ASE path does
        graph = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, calculator.cutoff, with_shift=False))
        if calculator.modal:
            graph[key.DATA_MODALITY] = calculator.modal
        graphs.append(graph)
    batch = Batch.from_data_list(graphs).to(calculator.device)
    model = calculator.model
    model.set_is_batch_data(True)
    try:
        output = model(batch)
    finally:
        model.set_is_batch_data(False)
    energies = output[key.PRED_TOTAL_ENERGY].detach().cpu().numpy().reshape(-1)
    forces = output[key.PRED_FORCE].detach().cpu().numpy()
    stresses = -output[key.PRED_STRESS].detach().cpu().numpy()[:, [0, 1, 2, 4, 5, 3]]
    offsets = batch.ptr.cpu().numpy()
    return [(float(energies[i]), forces[offsets[i] : offsets[i + 1]], stresses[i].copy()) for i in range(len(frames))]


def _evaluate_system(calculator, system: System) -> TensorOutputs:
    """SevenNet on a batch whose graph is built on the device (``frameworks.neighbours``): the inputs its data pipeline
    makes (edge vectors from float64 positions, as ``unlabeled_atoms_to_graph``), without a host round trip."""
    import sevenn._keys as key
    import torch
    from sevenn.atom_graph_data import AtomGraphData

    from ..contract.system import VOIGT_TO_FULL
    from .neighbours import neighbour_pairs

    model = calculator.model
    dtype = next(model.parameters()).dtype
    src, dst, shifts = neighbour_pairs(system, float(calculator.cutoff))
    batch = system.batch
    vectors = system.positions[dst] - system.positions[src]
    vectors = vectors + torch.einsum('ek,ekl->el', shifts.to(torch.float64), system.cells[batch[src]])
    fields = {
        key.NODE_FEATURE: system.numbers, key.ATOMIC_NUMBERS: system.numbers,
        key.POS: system.positions.to(dtype, copy=True),
        key.EDGE_IDX: torch.stack([src, dst]), key.EDGE_VEC: vectors.to(dtype, copy=True),
        key.CELL_VOLUME: torch.linalg.det(system.cells).abs().to(dtype), key.NUM_ATOMS: system.counts,
        key.BATCH: batch, 'ptr': system.ptr,
    }  # fmt: skip
    data = AtomGraphData(**fields)
    if calculator.modal:
        data[key.DATA_MODALITY] = [calculator.modal] * len(system)
    model.set_is_batch_data(True)
    try:
        output = model(data)
    finally:
        model.set_is_batch_data(False)
    as64 = torch.float64
    voigt = -output[key.PRED_STRESS].detach().to(as64)[:, [0, 1, 2, 4, 5, 3]]  # SevenNet's xx yy zz xy yz zx -> ASE's
    stress = voigt[:, VOIGT_TO_FULL]
    return output[key.PRED_TOTAL_ENERGY].detach().to(as64).reshape(-1), output[key.PRED_FORCE].detach().to(as64), stress
