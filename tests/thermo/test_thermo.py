"""Dataset import and compute_thermodynamics on real MP data: the oracle, bad input, real CHGNet energies."""

from __future__ import annotations

import gzip
import json

import pytest
from aiida import orm

from aiida_mliap import testing
from aiida_mliap.calculations.dataset import (
    ImportRefusedError,
    import_elemental_references,
    import_reference_file,
    imported_nodes,
)
from aiida_mliap.calculations.thermo import compute_thermodynamics, thermo_records, thermodynamics_inputs
from aiida_mliap.data import MliapDatasetData, MliapReferenceData
from aiida_mliap.parsers.entries import DatasetError
from aiida_mliap.testing import dft_as_model

STARRED = ['Li-Fe-P-O', 'Li-Co-Ni-O', 'Na-Fe-P-O']


@pytest.fixture(scope='session')
def oracle_model(tmp_path_factory):
    return testing.oracle_model(tmp_path_factory.mktemp('oracle'))


def import_file(shared_data, name: str, group: str):
    return import_reference_file(shared_data / 'mp' / f'{name}.json.gz', group)


def references_of(dataset) -> dict[str, MliapReferenceData]:
    return imported_nodes([dataset], 'references')[dataset.sha256]


def oracle_inputs(oracle_model, dataset, **kwargs):
    return thermodynamics_inputs(oracle_model, dataset, [dft_as_model(dataset)['summary']], **kwargs)


@pytest.mark.parametrize('name', STARRED)
def test_oracle_reproduces_mp_hull_and_formation_energies(shared_data, oracle_model, name):
    """DFT energies fed as a raw-scale model's output reproduce MP's e_above_hull and e_form_per_atom (< 1e-6)."""
    # The file may have been imported by an earlier test of the session (same sha256: the same dataset node).
    _, dataset, _ = import_file(shared_data, name, f'oracle/{name}')
    references = references_of(dataset)
    assert len(references) == dataset.base.attributes.get('n_entries')
    outputs, node = compute_thermodynamics.run_get_node(**oracle_inputs(oracle_model, dataset))
    assert outputs['summary']['counts'] == {'ok': len(references)}
    records = thermo_records(node)
    assert records.keys() == references.keys()

    worst = {}
    for label, thermo in records.items():
        reference = references[label]
        expected = {'e_above_hull': reference['e_above_hull'], 'e_form': reference['e_form_per_atom']}
        deviations = {
            'e_above_hull_dft': thermo['e_above_hull_dft'] - expected['e_above_hull'],
            'e_above_hull_model': thermo['e_above_hull_model'] - expected['e_above_hull'],
            'e_above_hull_model_dftref': thermo['e_above_hull_model_dftref'] - expected['e_above_hull'],
            'e_form_dft': thermo['e_form_dft'] - expected['e_form'],
            'e_form_model': thermo['e_form_model'] - expected['e_form'],
            # MP2020 applied afresh to the raw energy gives MP's own correction.
            'correction': thermo['model_correction_per_atom'] - reference['correction'] / reference['n_atoms'],
        }
        for key, value in deviations.items():
            worst[key] = max(worst.get(key, 0.0), abs(value))
    assert all(value < 1e-6 for value in worst.values()), worst


def test_gga_and_gga_u_entries_corrected_by_run_type(shared_data):
    _, dataset, _ = import_file(shared_data, 'Li-Fe-P-O', 'oracle/Li-Fe-P-O')
    references = references_of(dataset)
    run_types = {reference['run_type'] for reference in references.values()}
    assert run_types == {'GGA', 'GGA+U'}
    fe2o3 = next(r for r in references.values() if r['mp_id'] == 'mp-19770')
    li2o = next(r for r in references.values() if r['mp_id'] == 'mp-1960')
    assert fe2o3['run_type'] == 'GGA+U' and fe2o3['hubbards']['Fe'] > 0
    assert li2o['run_type'] == 'GGA' and li2o['hubbards'] == {}


def test_second_import_creates_nothing(shared_data):
    import_file(shared_data, 'Na-Fe-P-O', 'twice')
    before = orm.QueryBuilder().append(orm.Node).count()
    group, dataset, created = import_file(shared_data, 'Na-Fe-P-O', 'twice-again')
    assert not created
    assert orm.QueryBuilder().append(orm.Node).count() == before
    assert len(group.nodes) == 1 + 2 * dataset.base.attributes.get('n_entries')


def test_mixed_releases_refused_unless_forced(shared_data):
    import_file(shared_data, 'Li-Fe-P-O', 'releases')
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(ImportRefusedError, match='must not mix MP releases'):
        import_file(shared_data, 'Li-Fe-O_2021', 'releases')
    assert orm.QueryBuilder().append(orm.Node).count() == before, 'nothing half-imported'
    _, dataset, created = import_reference_file(shared_data / 'mp' / 'Li-Fe-O_2021.json.gz', 'releases', force=True)
    assert created and dataset.base.attributes.get('release').startswith('20')


def test_results_from_another_dataset_refused(shared_data, oracle_model):
    """One dataset is one hull: results of entries that are not in it are an error, not silently mixed in."""
    _, lifepo, _ = import_file(shared_data, 'Li-Fe-P-O', 'oracle/Li-Fe-P-O')
    _, nafepo, _ = import_file(shared_data, 'Na-Fe-P-O', 'twice')
    summary = dft_as_model(nafepo)['summary']
    with pytest.raises(ValueError, match=r'have no entry in Li-Fe-P-O\.json\.gz'):
        compute_thermodynamics(**thermodynamics_inputs(oracle_model, lifepo, [summary]))


def write_entries(tmp_path, entries, name='entries.json.gz'):
    path = tmp_path / name
    with gzip.open(path, 'wt') as handle:
        json.dump(entries, handle)
    return path


@pytest.fixture(scope='session')
def raw_entries(shared_data):
    with gzip.open(shared_data / 'mp' / 'Li-Fe-P-O.json.gz', 'rt') as handle:
        return json.load(handle)


@pytest.mark.parametrize(
    ('mutate', 'message'),
    [
        (lambda entries: {'entries': entries}, 'expected a JSON list'),
        (lambda entries: [*entries[:3], {**entries[3], 'structure': None}], r'entry 3 \(mp-\d+\): no structure'),
        (lambda entries: [*entries[:2], entries[1]], 'duplicate id'),
        (
            lambda entries: [
                *entries[:1],
                {**entries[1], 'parameters': {**entries[1]['parameters'], 'run_type': 'r2SCAN'}},
            ],
            "unknown run type 'r2SCAN'",
        ),
    ],
)
def test_bad_files_name_the_entry_and_import_nothing(tmp_path, raw_entries, mutate, message):
    path = write_entries(tmp_path, mutate(raw_entries[:5]))
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(DatasetError, match=message):
        import_reference_file(path, 'bad')
    assert orm.QueryBuilder().append(orm.Node).count() == before


def test_elements_without_reference_get_a_reason(tmp_path, raw_entries, oracle_model):
    """A dataset without elemental entries: Ef and Ehull undefined for every entry, each with its reason."""
    compounds = [e for e in raw_entries if len(e['composition']) > 1][:6]
    _, dataset, _ = import_reference_file(write_entries(tmp_path, compounds), 'no-elements')
    outputs, node = compute_thermodynamics.run_get_node(**oracle_inputs(oracle_model, dataset))
    assert outputs['summary']['counts'] == {'no_dft_elemental_reference': 6}
    some = next(iter(thermo_records(node).values()))
    assert some['e_above_hull_dft'] is None and 'no evaluated elemental entry for' in some['reason']


def test_extxyz_import(li_extxyz):
    _, dataset, _ = import_reference_file(li_extxyz('li.extxyz', 'x'), 'xyz')
    references = references_of(dataset)
    assert sorted(r['mp_id'] for r in references.values()) == ['x-1', 'x-2']
    assert references['x_1']['energy'] == pytest.approx(-1.9) and references['x_1']['run_type'] == 'GGA'
    assert isinstance(dataset, MliapDatasetData) and dataset.kind == 'entries'


def test_fixed_elemental_references(shared_data, oracle_model):
    """MP's elemental reference file instead of the dataset's own elemental entries: Ef moves, Ehull does not."""
    from aiida_mliap.calculations.hull import formation_energy
    from aiida_mliap.calculations.thermo import read_elemental_references
    from aiida_mliap.data.reference import to_entry

    _, dataset, _ = import_file(shared_data, 'Na-Fe-P-O', 'twice')
    path = shared_data / 'elemental_refs' / 'mp_elemental_refs_2023-02-07.json.gz'
    refs, _ = import_elemental_references(path)
    outputs, node = compute_thermodynamics.run_get_node(
        **oracle_inputs(oracle_model, dataset, elemental_references=refs)
    )
    assert outputs['summary']['elemental_references'] == path.name
    fixed = read_elemental_references(refs)
    references = imported_nodes([dataset], 'references', project='attributes')[dataset.sha256]
    records = thermo_records(node)
    for label, record in records.items():
        # By hand: corrected DFT energy minus the fixed elemental energies, per atom; the oracle model agrees.
        expected = formation_energy(to_entry(references[label]), fixed)
        assert record['e_form_dft'] == pytest.approx(expected, abs=1e-9)
        assert record['e_form_model'] == pytest.approx(expected, abs=1e-6)
        assert record['e_above_hull_dft'] == pytest.approx(references[label]['e_above_hull'], abs=1e-6)
    # MP's reference entries of Na, Fe, P, O are not this file's lowest elemental entries everywhere: Ef differs.
    shifts = [abs(r['e_form_dft'] - references[label]['e_form_per_atom']) for label, r in records.items()]
    assert max(shifts) > 1e-3


def test_subsystem_import_is_complete_and_traceable(shared_data, oracle_model):
    """The Li-Fe-P entries of the Li-Fe-P-O file: their own hull reproduces MP's Ehull (a complete subsystem), and the
    selection is a calcfunction output of the whole file's node."""
    path = shared_data / 'mp' / 'Li-Fe-P-O.json.gz'
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(DatasetError, match='not a chemical system'):
        import_reference_file(path, 'subsystem', chemsys='Li-Xx')
    with pytest.raises(DatasetError, match='holds no entry within Cl-Na'):
        import_reference_file(path, 'subsystem', chemsys='Na-Cl')
    assert orm.QueryBuilder().append(orm.Node).count() == before, 'a refused selection stores nothing'

    group, dataset, created = import_reference_file(path, 'subsystem', chemsys='P-Li-Fe')
    assert created and dataset.source == 'Fe-Li-P_from_Li-Fe-P-O.json.gz'
    assert dataset.creator.process_label == 'select_subsystem'
    assert dataset.creator.inputs.dataset.sha256 == '6094d28065e18965b38ba99ba141b632a4010da2551002b40bf58b66fcfc07b3'
    references = references_of(dataset)
    assert len(references) == dataset.base.attributes.get('n_entries') == 56
    assert all(set(reference['composition']) <= {'Li', 'Fe', 'P'} for reference in references.values())
    assert dataset.base.attributes.get('chemsys') == ['Fe', 'Li', 'P']

    outputs, node = compute_thermodynamics.run_get_node(**oracle_inputs(oracle_model, dataset))
    assert outputs['summary']['counts'] == {'ok': 56}
    for label, thermo in thermo_records(node).items():
        assert thermo['e_above_hull_dft'] == pytest.approx(references[label]['e_above_hull'], abs=1e-6)
        assert thermo['e_form_dft'] == pytest.approx(references[label]['e_form_per_atom'], abs=1e-6)

    again_group, again, created = import_reference_file(path, 'subsystem-again', chemsys='Li-Fe-P')
    assert not created and again.pk == dataset.pk and len(again_group.nodes) == len(group.nodes)
