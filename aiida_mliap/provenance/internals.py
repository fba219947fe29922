"""Every aiida-core API below its public one that this package touches, in one list, with the releases checked.

Each was chosen for a measured reason (bulk storing and reading at 10^5 nodes, restart handlers that remember what
they considered). ``tests/test_internals.py`` pins the release, checks that each entry still exists, and scans the
package so that a new private access cannot be added without being listed here.
"""

from __future__ import annotations

VERIFIED_AIIDA = ('2.9',)  # major.minor releases these internals were checked against

# Private attributes, by name, with the class that defines them (importable path) and who uses them for what.
PRIVATE_ATTRIBUTES = {
    '_validate_storability': ('aiida.orm.nodes.node.Node', 'provenance/links.py: checks Node.store would run'),
    '_validate': ('aiida.orm.nodes.node.Node', "provenance/links.py: the node type's own validation"),
    '_HASH_EXTRA_KEY': ('aiida.orm.nodes.caching.NodeCaching', 'provenance/links.py: the hash extra of bulk nodes'),
    '_considered_handlers_extra': (
        'aiida.engine.processes.workchains.restart.BaseRestartWorkChain',
        'workchains/base.py: which handlers already saw a calculation (a handler that resubmits part of a batch)',
    ),
}
# Public methods of objects that aiida documents as internal (storage backend, SQL of a query).
INTERNAL_METHODS = {
    'bulk_insert': ('aiida.orm.implementation.storage_backend.StorageBackend', 'provenance/links.py'),
    'transaction': ('aiida.orm.implementation.storage_backend.StorageBackend', 'provenance/links.py'),
    'get_session': ('aiida.storage.psql_dos.backend.PsqlDosBackend', 'provenance/frames.py: COPY ... TO STDOUT'),
    'as_sql': ('aiida.orm.querybuilder.QueryBuilder', 'provenance/frames.py'),
}
# Private attributes of other libraries, listed so that the scan tells them from aiida's.
OTHER_LIBRARIES = {
    '_atoms2graph': 'matgl: the graph converter of its ASE calculator (frameworks/matgl.py)',
    '_check_same': 'our own MliapModelData method, called on another instance',
}
