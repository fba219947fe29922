"""matgl checkpoints written before matgl 3.0, run under matgl 4.x with the aggregation they were trained with.

matgl <= 2.x (DGL) summed M3GNet's node-update edge messages onto each edge's *destination* atom; matgl >= 3.0 (PyG)
sums them onto the *source* atom. Parameter names and shapes did not change, so an old checkpoint loads silently and
returns wrong energies (MoS: -7.454 eV instead of -10.824 eV). The remedy here is per model instance: the convolution
layers of the loaded potential get a node update that scatters onto the destination. matgl itself and the weights are
left untouched.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..contract.hashing import sha256_of_file

SOURCE = 'source'  # matgl >= 3.0
DESTINATION = 'destination'  # matgl <= 2.x
# The matgl releases the destination-aggregation layer below was checked against (MoS value, 20 LiFePO structures
# against the CalcJob, MP2020 MAE); the layer overrides a matgl method, so any other release must be verified first.
VERIFIED_MATGL_VERSIONS = ('4.1.2',)


@dataclass(frozen=True)
class KnownCheckpoint:
    name: str
    aggregation: str  # how it was trained: with it, it reproduces matgl's reference MoS energy (-10.824362 eV)
    energy_scale: str
    energy_scale_measured: str  # how the scale was established


# Keyed by the sha256 of state.pt (the weights), so that a renamed folder or an edited README is still recognised.
KNOWN_CHECKPOINTS = {
    'a9aa723705bd1a242ec8749332f137811c4a94e17995a564f8f94a9aca68061b': KnownCheckpoint(
        name='M3GNet-MP-2021.2.8-PES',
        aggregation=DESTINATION,
        energy_scale='raw_dft',
        energy_scale_measured=(
            'trained on MPF.2021.2.8 (uncorrected VASP energies); measured on all 973 MP Li-Fe-P-O entries (single '
            'points on the DFT structures): MAE 42.1, mean signed +2.1 meV/atom against the raw DFT energies, and '
            'as far from the MP2020-corrected ones as the corrections themselves (README, models table)'
        ),
    ),
}


class UnestablishedConventionError(ValueError):
    """The checkpoint predates matgl 3.0 and nothing says which aggregation it was trained with."""


def known_checkpoint(folder: Path) -> KnownCheckpoint | None:
    weights = folder / 'state.pt'
    return KNOWN_CHECKPOINTS.get(sha256_of_file(weights)) if weights.exists() else None


def missing_init_args(config: dict[str, Any]) -> list[str]:
    """Constructor arguments of the installed matgl classes that ``model.json`` lacks.

    matgl's ``save`` writes every constructor argument, defaults included, so a file lacking some was written by an
    older matgl than the one installed.
    """
    missing = []
    for node in _serialized_classes(config):
        cls = getattr(importlib.import_module(node['@module']), node['@class'], None)
        if cls is None:
            continue
        names = set(inspect.signature(cls.__init__).parameters) - {'self', 'args', 'kwargs'}
        missing += [f'{node["@class"]}.{name}' for name in sorted(names - set(node['args']))]
    return missing


def _serialized_classes(config: dict[str, Any]):
    """Each serialized class of a model.json with its arguments: the top level and nested ``init_args``."""
    yield {'@module': config['@module'], '@class': config['@class'], 'args': config.get('kwargs', {})}
    stack = list(config.get('kwargs', {}).values())
    while stack:
        value = stack.pop()
        if isinstance(value, dict) and '@class' in value and 'init_args' in value:
            yield {'@module': value['@module'], '@class': value['@class'], 'args': value['init_args']}
            stack.extend(value['init_args'].values())


def declared_aggregation(metadata: dict[str, Any] | None) -> str | None:
    """What the model.json ``metadata`` says: ``aggregation`` outright, or the ``matgl_version`` that trained it."""
    metadata = metadata or {}
    if metadata.get('aggregation') in (SOURCE, DESTINATION):
        return metadata['aggregation']
    version = str(metadata.get('matgl_version') or '')
    if version[:1].isdigit():
        return DESTINATION if int(version.split('.')[0]) <= 2 else SOURCE
    return None


@dataclass(frozen=True)
class Convention:
    aggregation: str
    why: str  # how it was established
    known: KnownCheckpoint | None


def establish_convention(folder: Path, matgl_version: str) -> Convention:
    """The aggregation the checkpoint in ``folder`` was trained with, and why we believe it; raises when it cannot
    be established or cannot be honoured (a legacy checkpoint that is not M3GNet, or an unverified matgl)."""
    known = known_checkpoint(folder)
    config = json.loads((folder / 'model.json').read_text())
    if known is not None:
        convention = Convention(known.aggregation, f'known checkpoint {known.name} (sha256 of state.pt)', known)
    elif (declared := declared_aggregation(config.get('metadata'))) is not None:
        convention = Convention(declared, 'declared in model.json metadata', None)
    elif not (missing := missing_init_args(config)):
        why = 'written by the installed matgl generation (model.json has every constructor argument)'
        convention = Convention(SOURCE, why, None)
    else:
        raise UnestablishedConventionError(
            f'{folder.name}: model.json was written by a matgl older than the one installed (it lacks '
            f'{", ".join(missing[:4])}{" ..." if len(missing) > 4 else ""}) and its weights are not a known '
            "checkpoint. matgl 3.0 changed the direction of M3GNet's node-update aggregation, so its energies cannot "
            'be trusted until you state how it was trained: add "metadata": {"matgl_version": "<version that trained '
            'it>"} (or {"aggregation": "destination" | "source"}) to model.json and register it again.'
        )
    if convention.aggregation == DESTINATION:
        architecture = config.get('kwargs', {}).get('model', {}).get('@class')
        if architecture != 'M3GNet':
            raise UnestablishedConventionError(
                f'no legacy support for {architecture}: only M3GNet checkpoints from matgl <= 2.x can be run with '
                'their original aggregation'
            )
        check_matgl_version(matgl_version)
    return convention


def check_matgl_version(version: str) -> None:
    if version not in VERIFIED_MATGL_VERSIONS:
        raise RuntimeError(
            f'matgl {version} is not verified for checkpoints written by matgl <= 2.x (verified: '
            f'{", ".join(VERIFIED_MATGL_VERSIONS)}); install one of those, or verify this release against the MoS '
            'reference (tests/frameworks/test_matgl_legacy.py) and add it to VERIFIED_MATGL_VERSIONS'
        )


def restore_destination_aggregation(potential: torch.nn.Module) -> int:
    """Give each M3GNet convolution of ``potential`` the destination-atom node update; returns how many."""
    from matgl.layers._graph_convolution import M3GNetGraphConv

    layers = [module for module in potential.modules() if type(module) is M3GNetGraphConv]
    if not layers:
        raise UnestablishedConventionError('no M3GNet convolution layer found in the loaded potential')
    for layer in layers:
        layer.__class__ = _destination_conv_class()
    return len(layers)


@functools.cache
def _destination_conv_class():
    from matgl.layers._graph_convolution import M3GNetGraphConv

    class DestinationM3GNetGraphConv(M3GNetGraphConv):
        """M3GNet convolution whose node update sums edge messages onto each edge's destination atom (matgl <= 2)."""

        def node_update_(self, edge_index, edge_feat, node_feat, rbf, u_per_edge, num_nodes):
            src, dst = edge_index[0], edge_index[1]
            inputs = [node_feat[src], node_feat[dst], edge_feat] + ([u_per_edge] if self.include_state else [])
            messages = self.node_update_func(torch.hstack(inputs)) * self.node_weight_func(rbf)
            return messages.new_zeros((num_nodes, messages.shape[1])).index_add(0, dst, messages)

    return DestinationM3GNetGraphConv
