"""Outputs stored in bulk are the provenance aiida's own output path writes, hashes included."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import calcfunction
from pymatgen.entries.computed_entries import ComputedStructureEntry

from aiida_mliap.calculations.dataset import import_entries, imported_nodes
from aiida_mliap.calculations.tables import make_table
from aiida_mliap.contract.schema import TABLE_REFERENCE_KEYS, TABLE_RESULT_KEYS
from aiida_mliap.data.structure import structure_data
from aiida_mliap.provenance.links import attach_inputs, attach_outputs, inputs_of, outputs_of

# Bulk inserts go through the storage backend: repeated on PostgreSQL.
pytestmark = pytest.mark.storage


@calcfunction
def make_outputs(count):
    attach_outputs({'numbers': {f'n{i}': orm.Int(i) for i in range(count.value)}})
    return {'summary': orm.Dict({'count': count.value})}


@calcfunction
def duplicate_outputs():
    attach_outputs({'numbers': {'a': orm.Int(1)}})
    attach_outputs({'numbers': {'a': orm.Int(2)}})


def test_bulk_outputs_are_ordinary_create_links():
    _, node = make_outputs.run_get_node(orm.Int(3))
    assert node.is_finished_ok
    assert sorted(node.outputs.numbers) == ['n0', 'n1', 'n2']
    assert node.outputs.numbers.n2.value == 2
    links = node.base.links.get_outgoing(link_type=LinkType.CREATE).all()
    assert sorted(link.link_label for link in links) == ['numbers__n0', 'numbers__n1', 'numbers__n2', 'summary']
    for link in links:
        output = link.node
        assert output.creator.pk == node.pk
        # The hash extra is what aiida's caching reads for inputs of later processes: it must be the true hash.
        assert output.base.caching.get_hash() == output.base.caching.compute_hash()
    assert outputs_of([node.pk], 'numbers', project='attributes')[node.pk]['n1'] == {'value': 1}


def test_bulk_outputs_refuse_misuse():
    with pytest.raises(RuntimeError, match='from inside a running calcfunction'):
        attach_outputs({'numbers': {'a': orm.Int(1)}})
    with pytest.raises(ValueError, match='already has an output `numbers__a`'):
        duplicate_outputs()


@calcfunction
def link_inputs(members):
    attach_inputs(members.get_dict())


@calcfunction
def link_twice(members):
    attach_inputs(members.get_dict())
    attach_inputs(members.get_dict())


def test_bulk_inputs_are_ordinary_input_links(lifepo_entries):
    """A table's reference and result nodes are its inputs, as the engine links a calcfunction's inputs: the same
    link type and labels, found by aiida's own ``inputs`` manager and by provenance queries; its rows are theirs."""
    from aiida_mliap.data.result import MliapResultData

    _, dataset, _ = import_entries(
        [ComputedStructureEntry.from_dict(data) for data in lifepo_entries[:4]], 'Li-Fe-P-O.json.gz', 'fetched'
    )
    references = imported_nodes([dataset], 'references')[dataset.sha256]
    labels = sorted(references)
    results = {label: MliapResultData({'status': 'ok', 'energy_per_atom': -1.0 - i}).store()
               for i, label in enumerate(labels[:3])}  # fmt: skip
    table = make_table(orm.Dict({'task': 'static'}), references, results, call_link_label='table_x')
    call = table.creator
    assert call.is_finished_ok
    inputs = call.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all()
    assert sorted(link.link_label for link in inputs) == sorted(
        ['members', 'parameters', *(f'references__{label}' for label in labels),
         *(f'results__{label}' for label in labels[:3])]
    )  # fmt: skip
    assert call.inputs.results[labels[1]].pk == results[labels[1]].pk
    linked = inputs_of([call.pk], 'references', 'uuid')[call.pk]
    assert linked == {label: node.uuid for label, node in references.items()}
    # Its rows copy what thermodynamics and symmetry read of each node, and no more.
    result, reference = results[labels[2]].base.attributes.all, references[labels[0]].base.attributes.all
    assert table.rows[labels[2]]['result'] == {key: result.get(key) for key in TABLE_RESULT_KEYS}
    assert table.rows[labels[3]]['result'] is None
    assert table.rows[labels[0]]['reference'] == {key: reference[key] for key in TABLE_REFERENCE_KEYS}
    assert set(reference) - set(TABLE_REFERENCE_KEYS) >= {'last_updated', 'e_above_hull', 'dataset_sha256'}
    # Never a cache source: a cached copy would lack the bulk-linked inputs.
    assert not call.base.caching.is_valid_cache
    from aiida.manage.caching import enable_caching

    with enable_caching(identifier='aiida.calculations:mliap.tabulate_batch'):
        again = make_table(orm.Dict({'task': 'static'}), references, results)
    assert 'cached_from' not in again.creator.base.extras.keys()
    assert len(again.creator.inputs.references) == len(references)  # ran, and linked its inputs itself
    # Its hash is made from inputs that name every linked node: another batch is another hash.
    other = make_table(orm.Dict({'task': 'static'}), references, dict(list(results.items())[:2]))
    assert other.creator.base.caching.get_hash() != call.base.caching.get_hash()


def test_bulk_inputs_refuse_misuse():
    with pytest.raises(RuntimeError, match='from inside a running calcfunction'):
        attach_inputs({'numbers': {'a': orm.Int(1).store().uuid}})
    with pytest.raises(ValueError, match='are not stored nodes'):
        link_inputs(orm.Dict({'numbers': {'a': '00000000-0000-4000-8000-000000000000'}}))
    calc = link_inputs.run_get_node(orm.Dict({}))[1]
    with pytest.raises(ValueError, match='must be Data nodes'):
        link_inputs(orm.Dict({'numbers': {'a': calc.uuid}}))
    with pytest.raises(ValueError, match='already has an input `numbers__a`'):
        link_twice(orm.Dict({'numbers': {'a': orm.Int(1).store().uuid}}))


def test_structure_data_equals_aiida_constructor(lifepo_entries):
    """Attribute for attribute, on every 7th Li-Fe-P-O entry (ordered MP structures, all sizes)."""
    for data in lifepo_entries[::7]:
        structure = ComputedStructureEntry.from_dict(data).structure
        assert (
            structure_data(structure).base.attributes.all == orm.StructureData(pymatgen=structure).base.attributes.all
        )


def test_structure_data_falls_back_for_disordered(lifepo_entries):
    structure = ComputedStructureEntry.from_dict(lifepo_entries[0]).structure.copy()
    structure.replace_species({structure[0].specie: {structure[0].specie.symbol: 0.5, 'Na': 0.5}})
    assert structure_data(structure).base.attributes.all == orm.StructureData(pymatgen=structure).base.attributes.all


def test_import_entries_as_fetched(lifepo_entries):
    """What `dataset fetch-mp` does with the entries mp-api returns, on real MP entries; twice creates nothing."""
    entries = [ComputedStructureEntry.from_dict(data) for data in lifepo_entries[:25]]
    _, dataset, created = import_entries(entries, 'Li-Fe-P-O.json.gz', 'fetched')
    assert created and dataset.base.attributes.get('n_entries') == 25
    structures = imported_nodes([dataset], 'structures')[dataset.sha256]
    assert {s.label for s in structures.values()} == {e.data['material_id'] for e in entries}
    by_id = {s.label: s for s in structures.values()}
    for entry in entries:
        stored = by_id[entry.data['material_id']].get_pymatgen()
        assert stored.composition == entry.structure.composition
        assert abs(stored.lattice.matrix - entry.structure.lattice.matrix).max() < 1e-12
        assert abs(stored.cart_coords - entry.structure.cart_coords).max() < 1e-12
    again = import_entries(entries, 'Li-Fe-P-O.json.gz', 'fetched')
    assert again[1].pk == dataset.pk and not again[2]
