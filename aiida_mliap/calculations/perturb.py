"""``perturb_structure``: a reference structure's perturbed copies, for the softening measurement.

A calcfunction, so that each configuration is an output linked to the structure it came from and to the parameters
(what was done, with the seed) that made it.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from ..science.softening import perturbations


@calcfunction
def perturb_structure(structure: orm.StructureData, parameters: orm.Dict) -> dict[str, orm.StructureData]:
    """``parameters``: ``{'rattle': [sigma, ...] (Å), 'volume': [v, ...], 'shear': [s, ...], 'seed': int}``
    (``science.softening.perturbations``); one output per configuration, named by kind and index."""
    spec = parameters.get_dict()
    configurations = {}
    for name, atoms in perturbations(structure.get_ase(), spec, spec['seed']).items():
        node = orm.StructureData(ase=atoms)
        node.label = f'{structure.label} {name}'
        configurations[name] = node
    return configurations
