"""Equality by identity for the plugin's Dict nodes.

``orm.Dict`` compares by content, reading both nodes' attributes from the database. A calcfunction checks each new
input against the links it already holds with ``==``, so n Dict inputs cost n² attribute loads: 200 result nodes took
41 s to link. Our nodes are records of distinct things (two structures may have equal results), so they compare as
every other node does, by uuid (an immutable column, no reload); compare contents with ``get_dict()``.
"""

from aiida.orm import Dict, Node


class IdentityDict(Dict):
    __eq__ = Node.__eq__
    __hash__ = Node.__hash__
