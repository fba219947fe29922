"""StructureData from pymatgen without aiida's per-atom bookkeeping.

``StructureData(pymatgen=...)`` appends atoms one by one and rebuilds the kind list for each (~10 ms for a 30-atom
cell): a 1,000-entry import spent 10 s there. For ordered structures without spin (MP's entries) the node is built
from aiida's own ``Kind``/``Site`` serialisation in one go and is attribute-for-attribute the same (tested); any
other structure goes through aiida's constructor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiida import orm
from aiida.orm.nodes.data.structure import Kind, Site

if TYPE_CHECKING:
    from pymatgen.core import Structure


def structure_data(structure: Structure) -> orm.StructureData:
    """An unstored ``StructureData`` equal to ``StructureData(pymatgen=structure)``."""
    if not _plain(structure):
        return orm.StructureData(pymatgen=structure)
    node = orm.StructureData(cell=structure.lattice.matrix.tolist(), pbc=(True, True, True))
    symbols = [site.specie.symbol for site in structure]
    for symbol in dict.fromkeys(symbols):
        node.append_kind(Kind(symbols=symbol, weights=1.0))
    positions = structure.cart_coords.tolist()
    sites = [Site(kind_name=symbol, position=position) for symbol, position in zip(symbols, positions, strict=True)]
    node.base.attributes.set('sites', [site.get_raw() for site in sites])
    return node


def _plain(structure: Structure) -> bool:
    """Ordered, no spin, no explicit kind names: the case the fast path reproduces exactly."""
    if not structure.is_ordered or 'kind_name' in structure.site_properties:
        return False
    return not any(getattr(site.specie, 'spin', None) for site in structure)
