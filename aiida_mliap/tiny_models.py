"""Real MACE and M3GNet models built in code (seeded, untrained): for tests, examples and benchmarks, offline.

No aiida import here: the benchmarks run these on compute nodes (and GPU machines) where only the runner is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# MACE-MP-0 "small"'s architecture (mace-torch's foundation model card): what a GPU benchmark should time, with random
# weights since the trained ones cannot be downloaded here.
MP_SMALL = {'hidden_irreps': '128x0e', 'max_ell': 3, 'correlation': 3, 'num_interactions': 2, 'r_max': 6.0,
            'num_bessel': 8, 'num_polynomial_cutoff': 5, 'MLP_irreps': '16x0e', 'avg_num_neighbors': 20.0}  # fmt: skip
TINY = {'hidden_irreps': '8x0e', 'max_ell': 1, 'correlation': 2, 'num_interactions': 1, 'r_max': 4.0,
        'num_bessel': 4, 'num_polynomial_cutoff': 3, 'MLP_irreps': '8x0e', 'avg_num_neighbors': 8.0}  # fmt: skip


def build_tiny_mace(path: Path, atomic_numbers: Sequence[int], seed: int = 0) -> Path:
    """A one-interaction ScaleShiftMACE over ``atomic_numbers``, saved whole with ``torch.save`` (a ``.model``)."""
    return build_mace(path, atomic_numbers, seed, TINY)


def build_mace(path: Path, atomic_numbers: Sequence[int], seed: int = 0, shape: dict | None = None) -> Path:
    """A ScaleShiftMACE of the given ``shape`` (``TINY`` or ``MP_SMALL``) over ``atomic_numbers``, saved whole."""
    import numpy as np
    import torch

    # isort: off
    from mace import modules  # first: mace lets e3nn 0.4.4 load its constants under torch >= 2.6
    from e3nn import o3
    # isort: on

    shape = dict(shape or TINY)
    torch.manual_seed(seed)
    block = modules.interaction_classes['RealAgnosticResidualInteractionBlock']
    numbers = list(atomic_numbers)
    model = modules.ScaleShiftMACE(
        r_max=shape['r_max'], num_bessel=shape['num_bessel'], num_polynomial_cutoff=shape['num_polynomial_cutoff'],
        max_ell=shape['max_ell'], interaction_cls=block, interaction_cls_first=block,
        num_interactions=shape['num_interactions'], num_elements=len(numbers),
        hidden_irreps=o3.Irreps(shape['hidden_irreps']), MLP_irreps=o3.Irreps(shape['MLP_irreps']),
        atomic_energies=np.linspace(-3, -1, len(numbers)), avg_num_neighbors=shape['avg_num_neighbors'],
        atomic_numbers=numbers, correlation=shape['correlation'], gate=torch.nn.functional.silu,
        atomic_inter_scale=1.0, atomic_inter_shift=0.0,
    )  # fmt: skip
    torch.save(model, path)
    return path


def build_tiny_m3gnet(path: Path, elements: Sequence[str], seed: int = 0) -> Path:
    """A one-block M3GNet potential over ``elements``, saved with matgl's ``Potential.save`` (a model folder)."""
    import torch
    from matgl.apps.pes import Potential
    from matgl.models import M3GNet

    torch.manual_seed(seed)
    model = M3GNet(
        element_types=tuple(elements), is_intensive=False, nblocks=1, dim_node_embedding=8, dim_edge_embedding=8,
        units=8, max_n=2, max_l=2,
    )  # fmt: skip
    Potential(model=model).save(path)
    return path
