"""Parser of MliapCalculation on stored output folders: one folder per exit code."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.plugins import CalculationFactory, ParserFactory
from ase.build import bulk

FIXTURES = Path(__file__).parent / 'fixtures'

pytestmark = pytest.mark.storage


@pytest.fixture
def parse(aiida_localhost):
    """Run the parser on a CalcJobNode whose retrieved folder is ``FIXTURES/<case>``; inputs li and na."""

    def factory(case: str, task: str = 'static'):
        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:mliap.calc')
        node.set_option('resources', {'num_machines': 1})
        node.set_option('scheduler_stderr', '_scheduler-stderr.txt')
        inputs = {
            'structures__li': orm.StructureData(ase=bulk('Li', 'bcc', a=3.44, cubic=True)),
            'structures__na': orm.StructureData(ase=bulk('Na', 'bcc', a=4.23, cubic=True)),
            'parameters': orm.Dict({'task': task}),
        }
        for label, data in inputs.items():
            data.store()
            node.base.links.add_incoming(data, link_type=LinkType.INPUT_CALC, link_label=label)
        node.store()
        retrieved = orm.FolderData()
        folder = FIXTURES / case
        if folder.is_dir():
            retrieved.base.repository.put_object_from_tree(str(folder))
        retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
        retrieved.store()
        results, calcfunction = ParserFactory('mliap.calc').parse_from_node(node, store_provenance=False)
        return results, calcfunction

    return factory


def exit_status(name: str) -> int:
    return CalculationFactory('mliap.calc').exit_codes[name].status


def test_static_ok(parse):
    results, calc = parse('static_ok')
    assert calc.is_finished_ok
    assert set(results['results']) == {'li', 'na'}
    li = results['results']['li']
    assert li['energy_per_atom'] == pytest.approx(-3.9) and li['status'] == 'ok' and li['model_sha256'] == 'a' * 64
    assert 'relaxed_structures' not in results, 'a static task produces no new structures'
    summary = results['summary'].get_dict()
    assert summary['counts'] == {'ok': 2} and summary['complete'] and summary['environment']['framework'] == 'mace'


def test_relax_ok_outputs_relaxed_structures(parse):
    results, calc = parse('relax_ok', task='relax')
    assert calc.is_finished_ok
    relaxed = results['relaxed_structures']
    assert set(relaxed) == {'li', 'na'}
    assert relaxed['na'].get_ase().get_chemical_formula() == 'Na2'
    assert relaxed['li'].cell[0][0] == pytest.approx(3.43)


@pytest.mark.parametrize(
    ('case', 'task', 'exit_code'),
    [
        ('missing_results', 'static', 'ERROR_INCOMPLETE_RESULTS'),
        ('unreadable_results', 'static', 'ERROR_UNREADABLE_RESULTS'),
        ('unreadable_structures', 'relax', 'ERROR_UNREADABLE_STRUCTURES'),
        ('incomplete', 'relax', 'ERROR_INCOMPLETE_RESULTS'),
        ('refused_input', 'static', 'ERROR_RUNNER_REFUSED_INPUT'),
        ('some_failed', 'relax', 'ERROR_SOME_STRUCTURES_FAILED'),
        ('all_failed', 'static', 'ERROR_ALL_STRUCTURES_FAILED'),
        ('hash_mismatch', 'static', 'ERROR_MODEL_HASH_MISMATCH'),
        ('out_of_memory', 'static', 'ERROR_OUT_OF_MEMORY'),
        ('unsupported_element', 'static', 'ERROR_UNSUPPORTED_ELEMENT'),
        ('model_load_failed', 'static', 'ERROR_MODEL_LOAD_FAILED'),
        ('device_unavailable', 'static', 'ERROR_DEVICE_UNAVAILABLE'),
        ('unconverged', 'relax', 'ERROR_UNCONVERGED'),
    ],
)
def test_exit_codes(parse, case, task, exit_code):
    _, calc = parse(case, task=task)
    assert calc.exit_status == exit_status(exit_code), calc.exit_message


def test_failed_structures_keep_their_neighbours_results(parse):
    results, _ = parse('some_failed', task='relax')
    assert results['results']['li']['status'] == 'ok'
    assert set(results['relaxed_structures']) == {'li'}
    na = results['results']['na']
    assert na['status'] == 'invalid_structure' and 'overlap' in na['message'] and na['energy'] is None
    assert results['summary']['labels'] == {'ok': ['li'], 'invalid_structure': ['na']}


def test_incomplete_run_keeps_finished_structures(parse):
    """A run killed mid-batch (walltime, node failure): finished structures survive, the rest is not_run."""
    results, _ = parse('incomplete', task='relax')
    assert set(results['results']) == {'li'}
    assert set(results['relaxed_structures']) == {'li'}
    summary = results['summary'].get_dict()
    assert summary['labels']['not_run'] == ['na'] and summary['complete'] is False


def test_runner_killed_before_its_first_result_is_stopped_early(parse):
    """No results file at all (killed while the model loaded, walltime, preemption): every structure is not_run and
    the exit is 304, which the base work chain resubmits; 301 lost the batch (issue 28, case 1)."""
    results, calc = parse('missing_results', task='static')
    assert calc.exit_status == exit_status('ERROR_INCOMPLETE_RESULTS')
    summary = results['summary'].get_dict()
    assert summary['counts'] == {'not_run': 2} and summary['complete'] is False
    assert 'results' not in results


def test_unconverged_structures_keep_their_last_geometry(parse):
    results, _ = parse('unconverged', task='relax')
    assert results['results']['na']['status'] == 'unconverged' and results['results']['na']['n_steps'] == 500
    assert 'na' in results['relaxed_structures']


def test_unreadable_final_structures_keep_the_results(parse):
    """303: the results stand on their own; only the relaxed geometries are missing."""
    results, calc = parse('unreadable_structures', task='relax')
    assert calc.exit_status == exit_status('ERROR_UNREADABLE_STRUCTURES')
    assert set(results['results']) == {'li', 'na'} and 'relaxed_structures' not in results
    assert 'summary' in results


def test_a_full_disk_is_named_in_the_unreadable_structures_message(parse):
    """303 after a full disk: the message names it, from the OS error in the scheduler's stderr (issue 28, case 4:
    before, only "Frame has 11 atoms, expected 42")."""
    _, calc = parse('disk_full', task='relax')
    assert calc.exit_status == exit_status('ERROR_UNREADABLE_STRUCTURES')
    assert 'disk full' in calc.exit_message and 'No space left on device' in calc.exit_message
    _, calc = parse('unreadable_structures', task='relax')
    assert 'disk full' not in calc.exit_message


def test_fatal_errors_name_the_reason(parse):
    _, calc = parse('hash_mismatch')
    assert 'refusing to run' in calc.exit_message
