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
from aiida_mliap.science.entries import DatasetError
from aiida_mliap.testing import oracle_tables

STARRED = ['Li-Fe-P-O', 'Li-Co-Ni-O', 'Na-Fe-P-O']


@pytest.fixture(scope='session')
def oracle_model(tmp_path_factory):
    return testing.oracle_model(tmp_path_factory.mktemp('oracle'))


def import_file(shared_data, name: str, group: str, **kwargs):
    """A shared MP file into ``group`` (``chemsys=...`` for a subsystem, as ``dataset import --chemsys``)."""
    return import_reference_file(shared_data / 'mp' / f'{name}.json.gz', group, **kwargs)


def references_of(dataset) -> dict[str, MliapReferenceData]:
    return imported_nodes([dataset], 'references')[dataset.sha256]


def oracle_inputs(oracle_model, dataset, **kwargs):
    return thermodynamics_inputs(oracle_model, oracle_tables(dataset), [dataset], **kwargs)


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


def test_mixed_releases_refused_naming_the_entries_unless_forced(shared_data):
    """The 2021 file disagrees with the 2025 ones on shared entries (e.g. Fe, mp-13): refused before anything is
    stored, with the entries named; files of one release (several shared entries, all equal) join one group."""
    for name in STARRED:
        import_file(shared_data, name, 'releases')
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(ImportRefusedError, match=r'(?s)cannot join group `releases`.*mp-13 \(Fe\): energy') as info:
        import_file(shared_data, 'Li-Fe-O_2021', 'releases')
    assert 'different MP releases' in str(info.value)
    assert orm.QueryBuilder().append(orm.Node).count() == before, 'nothing half-imported'
    _, dataset, created = import_file(shared_data, 'Li-Fe-O_2021', 'releases', force=True)
    assert created and dataset.base.attributes.get('release') is None


def test_explicit_release_labels_must_agree(tmp_path, raw_entries):
    """Two files without shared entries but with different --release labels cannot share a group."""
    first = write_entries(tmp_path, raw_entries[:4], 'first.json.gz')
    second = write_entries(tmp_path, raw_entries[4:8], 'second.json.gz')
    import_reference_file(first, 'labelled', release='2023-02-07')
    with pytest.raises(ImportRefusedError, match=r'release `2022` here, `2023-02-07` in first\.json\.gz'):
        import_reference_file(second, 'labelled', release='2022')
    _, dataset, _ = import_reference_file(second, 'labelled', release='2023-02-07')
    assert dataset.base.attributes.get('release') == '2023-02-07'


def test_union_of_files_is_one_hull(shared_data, oracle_model):
    """The Li-Fe-O part of Li-Fe-P-O and the Na-Fe-O part of Na-Fe-P-O in one group (their Fe-O entries shared): one
    thermo record per unique entry, and the DFT Ehull equals an independent pymatgen PhaseDiagram over the union."""
    from pymatgen.analysis.phase_diagram import PhaseDiagram
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    from aiida_mliap.calculations.dataset import union_of_datasets

    files = {'Li-Fe-P-O': 'Li-Fe-O', 'Na-Fe-P-O': 'Na-Fe-O'}
    datasets = [import_file(shared_data, name, 'union', chemsys=chemsys)[1] for name, chemsys in files.items()]
    references = union_of_datasets(datasets, 'references')
    sizes = [dataset.base.attributes.get('n_entries') for dataset in datasets]
    assert len(references) < sum(sizes)  # shared entries are one
    tables = [table for dataset in datasets for table in oracle_tables(dataset)]
    outputs, node = compute_thermodynamics.run_get_node(**thermodynamics_inputs(oracle_model, tables, datasets))
    records = thermo_records(node)
    assert len(records) == len(references) and outputs['summary']['counts'] == {'ok': len(references)}

    entries = {}
    for name, chemsys in files.items():
        with gzip.open(shared_data / 'mp' / f'{name}.json.gz', 'rt') as handle:
            entries.update(
                {e['data']['material_id']: ComputedStructureEntry.from_dict(e) for e in json.load(handle)
                 if set(e['composition']) <= set(chemsys.split('-'))}
            )  # fmt: skip
    assert len(entries) == len(references)
    diagram = PhaseDiagram(list(entries.values()))
    for record in records.values():
        entry = entries[record['mp_id']]
        assert record['e_above_hull_dft'] == pytest.approx(diagram.get_e_above_hull(entry), abs=1e-6)


def test_tables_that_disagree_on_an_entry_are_refused(shared_data, oracle_model):
    """Forced past the import check, two releases still cannot meet in one hull."""
    _, lifepo, _ = import_file(shared_data, 'Li-Fe-P-O', 'fe-o', chemsys='Fe-O')
    _, old, _ = import_file(shared_data, 'Li-Fe-O_2021', 'old-fe-o', chemsys='Fe-O')
    tables = oracle_tables(lifepo) + oracle_tables(old)
    with pytest.raises(ValueError, match=r'tables disagree on \d+ reference entries: mp-'):
        compute_thermodynamics(**thermodynamics_inputs(oracle_model, tables, [lifepo, old]))


def test_model_hull_stands_on_the_dft_elemental_ground_states(shared_data, oracle_model):
    """The model failed on Fe's DFT ground state (mp-13): every Fe entry gets `no_model_elemental_reference` naming
    it, never a hull on another Fe polymorph; the others are untouched."""
    from aiida_mliap.calculations.tables import tabulate
    from aiida_mliap.data import MliapResultData

    _, dataset, _ = import_file(shared_data, 'Li-Fe-P-O', 'li-fe-o', chemsys='Li-Fe-O')
    tables = oracle_tables(dataset)
    references = references_of(dataset)
    results = {label: row['result'] for table in tables for label, row in table.rows.items()}
    results['mp_13'] = {**results['mp_13'], 'status': 'error', 'energy': None, 'energy_per_atom': None}
    nodes = {label: MliapResultData(result).store() for label, result in results.items()}
    failed = tabulate(orm.Dict({'task': 'static'}).store(), references, nodes, batch_size=200)
    outputs, node = compute_thermodynamics.run_get_node(**thermodynamics_inputs(oracle_model, failed, [dataset]))
    records = thermo_records(node)
    for label, record in records.items():
        has_fe = 'Fe' in references[label]['composition']
        if label == 'mp_13':
            assert record['status'] == 'not_evaluated'
        elif has_fe:
            assert record['status'] == 'no_model_elemental_reference', record
            assert 'Fe (mp_13)' in record['reason'] and record['e_above_hull_model'] is None
        else:
            assert record['status'] == 'ok' and record['e_above_hull_model'] is not None
    assert outputs['summary']['elemental_ground_states']['Fe'] == 'mp-13'


def test_elemental_references_of_another_release_refused(shared_data):
    from aiida_mliap.calculations.dataset import union_of_datasets
    from aiida_mliap.calculations.thermo import elemental_reference_conflicts

    refs, _ = import_elemental_references(shared_data / 'elemental_refs' / 'mp_elemental_refs_2023-02-07.json.gz')
    _, lifepo, _ = import_file(shared_data, 'Li-Fe-P-O', 'oracle/Li-Fe-P-O')
    _, old, _ = import_file(shared_data, 'Li-Fe-O_2021', 'old-release')
    assert elemental_reference_conflicts(refs, union_of_datasets([lifepo], 'references', project='attributes')) == []
    problems = elemental_reference_conflicts(refs, union_of_datasets([old], 'references', project='attributes'))
    assert problems and problems[0].startswith('mp-13 (Fe): energy')


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
    assert some['e_above_hull_dft'] is None and 'no evaluated elemental ground state for' in some['reason']


def test_extxyz_import(li_extxyz):
    _, dataset, _ = import_reference_file(li_extxyz('li.extxyz', 'x'), 'xyz')
    references = references_of(dataset)
    assert sorted(r['mp_id'] for r in references.values()) == ['x-1', 'x-2']
    assert references['x_1']['energy'] == pytest.approx(-1.9) and references['x_1']['run_type'] == 'GGA'
    assert isinstance(dataset, MliapDatasetData) and dataset.kind == 'entries'


def test_fixed_elemental_references(shared_data, oracle_model):
    """MP's elemental reference file instead of the dataset's own elemental entries: Ef moves, Ehull does not."""
    from aiida_mliap.calculations.thermo import read_elemental_references
    from aiida_mliap.data.reference import to_entry
    from aiida_mliap.science.hull import formation_energy

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

    # The whole file after a selection of it: its node exists (the selection's source) and is imported now.
    _, whole, _ = import_reference_file(path, 'subsystem-whole')
    assert whole.pk == dataset.creator.inputs.dataset.pk
    assert len(references_of(whole)) == whole.base.attributes.get('n_entries') == 973


def test_latest_result_of_a_label_wins():
    from aiida_mliap.calculations.tables import latest_by_label

    assert latest_by_label([{'a': 1}, {'a': 2, 'b': 3}]) == {'a': 2, 'b': 3}


def test_a_newer_failed_row_never_displaces_a_result():
    """Issue 29: per key the latest row with a result wins; the latest row only where none has one; newer failed
    attempts are counted on the row kept."""
    import pandas as pd

    from aiida_mliap.calculations.tables import latest_rows

    frame = pd.DataFrame(
        [  # label, time, has a result
            ('a', 1, True), ('a', 2, True), ('a', 3, False), ('a', 4, False),  # good, better, two failed reruns
            ('b', 1, False), ('b', 2, False),  # never a result: the latest
            ('c', 1, False), ('c', 2, True),  # a failure, then a result
        ],
        columns=['label', 'ctime', 'ok'],
    )  # fmt: skip
    kept = latest_rows(frame, ['label'], ['ctime'], usable='ok').set_index('label')
    assert kept.ctime.to_dict() == {'a': 2, 'b': 2, 'c': 2}
    assert kept.newer_failed_attempts.to_dict() == {'a': 2, 'b': 0, 'c': 0}
    assert latest_rows(frame, ['label'], ['ctime']).set_index('label').ctime.to_dict() == {'a': 4, 'b': 2, 'c': 2}


def test_chunked_thermodynamics_equal_one_call(shared_data, oracle_model):
    """Three chemical spaces from the three shared files (Li-P-O, Co-Ni-O, Na-P-O: 320 unique entries, 16 tables; their
    P-O and O entries shared) with a noisy model that failed on one compound: in chunks of 4 tables against the hull of
    all of them (``run_thermodynamics(chunk=4)``) every value equals one ``compute_thermodynamics`` over all the
    tables, and so do the merged summary's counts, hulls and metrics. (The whole union's 1,894 entries are dealt into
    chunks in ``test_hull.py``, without AiiDA.)"""
    from aiida_mliap.calculations.dataset import union_of_datasets
    from aiida_mliap.calculations.tables import tabulate
    from aiida_mliap.calculations.thermo import run_thermodynamics
    from aiida_mliap.data import MliapResultData
    from aiida_mliap.testing import dft_as_model

    spaces = {'Li-Fe-P-O': 'Li-P-O', 'Li-Co-Ni-O': 'Co-Ni-O', 'Na-Fe-P-O': 'Na-P-O'}
    datasets = [import_file(shared_data, name, 'chunks', chemsys=chemsys)[1] for name, chemsys in spaces.items()]
    references = union_of_datasets(datasets, 'references')
    parameters = orm.Dict({'task': 'static', 'noise': 0.03, 'seed': 7}).store()
    results = {}
    for dataset in datasets:
        _, call = dft_as_model.run_get_node(dataset, parameters)
        results.update({label: node.base.attributes.all for label, node in call.outputs.results.items()})
    failed = min(label for label, node in references.items() if len(node['composition']) > 1)
    results[failed] = {**results[failed], 'status': 'error', 'energy': None, 'energy_per_atom': None}
    nodes = {label: MliapResultData(result).store() for label, result in results.items()}
    tables = tabulate(parameters, references, nodes, batch_size=20)
    assert len(references) == 320 and len(tables) == 16

    whole = run_thermodynamics(oracle_model, tables, datasets)
    chunked = run_thermodynamics(oracle_model, tables, datasets, chunk=4)
    merge = chunked.creator
    assert merge.process_label == 'merge_thermodynamics' and whole.creator.process_label == 'compute_thermodynamics'
    calls = [link.node.creator for link in merge.base.links.get_incoming().all() if link.link_label.startswith('summ')]
    assert len(calls) == 4 and all(len(call.inputs.tables) <= 4 for call in calls)
    expected = thermo_records(whole.creator)
    found = {label: record for call in calls for label, record in thermo_records(call).items()}
    assert found.keys() == expected.keys() == set(references)
    assert expected[failed]['status'] == 'not_evaluated'
    keys = ('e_above_hull_dft', 'e_above_hull_model', 'e_above_hull_model_dftref', 'e_form_dft', 'e_form_model')
    for label, record in expected.items():
        assert found[label]['status'] == record['status'], label
        for key in keys:
            assert found[label][key] == pytest.approx(record[key], abs=1e-9, nan_ok=True), (label, key)
    one, merged = whole.get_dict(), chunked.get_dict()
    for key in ('n_entries', 'counts', 'result_counts', 'dft_hull', 'model_hull', 'elemental_ground_states', 'reasons'):
        assert merged[key] == one[key], key
    assert merged['dft_hull'] != merged['model_hull']  # the noise moved the model's hull
    assert merged['classification'] == one['classification']
    for quantity, metrics in one['errors'].items():
        assert merged['errors'][quantity] == pytest.approx(metrics, rel=1e-9), quantity
