"""MliapBenchmarkWorkChain end to end on a real MP subsystem with CHGNet: three tasks, batches, lanes, caching."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node
from aiida.manage.caching import enable_caching
from click.testing import CliRunner

from aiida_mliap.analysis.benchmark import error_summary, progress
from aiida_mliap.analysis.results import load_results
from aiida_mliap.calculations.plan import balanced_batches, batch_atoms, unit_coordinates
from aiida_mliap.cli import cmd_root
from aiida_mliap.engine.runner import available_cores
from aiida_mliap.workchains.benchmark import MliapBenchmarkWorkChain, results_group_label

TASKS = ['static', 'relax', 'relax_fixsym']


def builder_for(runner_code, chgnet_model, group):
    return MliapBenchmarkWorkChain.get_builder_from_protocol(
        runner_code,
        {'chgnet': chgnet_model},
        group,
        protocol='fast',
        tasks=TASKS,
        overrides={'parameters': {'max_steps': 30, 'device': 'cpu'}, 'batch_size': 8, 'max_concurrent': 2},
    )


def test_lanes_share_the_units_once_each():
    models, tasks = ['a', 'b'], TASKS
    for batches in (1, 3, 7):
        units = len(models) * len(tasks) * batches
        for lanes in (1, 2, 5, units):
            taken = [
                unit_coordinates(u, models, tasks, batches) for lane in range(lanes) for u in range(lane, units, lanes)
            ]
            assert sorted(taken) == sorted((m, t, b) for m in models for t in tasks for b in range(batches))


def test_batches_have_near_equal_counts_and_a_mix_of_sizes():
    sizes = {f'mp-{i}': i % 50 + 1 for i in range(557)}
    batches = balanced_batches(sizes, 100)
    assert sorted(len(batch) for batch in batches) == [92] + [93] * 5
    assert sorted(label for batch in batches for label in batch) == sorted(sizes)
    atoms = [sum(sizes[label] for label in batch) for batch in batches]
    assert max(atoms) - min(atoms) <= 50  # consecutive labels would give 5 x 100 and one batch of 57
    assert balanced_batches({'a': 1, 'b': 2}, 100) == [['a', 'b']]


def test_benchmark_three_tasks_then_cached_rerun(runner_code, chgnet_model, li_o_group, tmp_path):
    group, count = li_o_group(max_atoms=3)
    _, node = run_get_node(builder_for(runner_code, chgnet_model, group))
    assert node.is_finished_ok, node.exit_message

    bases = [base for _, base in base_work_chains(node)]
    assert len(bases) == 3 * 3  # 19 structures in batches of at most 8 (7, 6, 6), three tasks
    # Two lanes (max_concurrent) take every other unit: 5 and 4 batches, each lane one after the other.
    lanes = sorted((c for c in node.called if c.process_label == 'MliapLaneWorkChain'), key=lambda lane: lane.label)
    assert [lane.inputs.lane.value for lane in lanes] == [0, 1] and all(lane.is_finished_ok for lane in lanes)
    assert [len([c for c in lane.called if c.process_label == 'MliapBaseWorkChain']) for lane in lanes] == [5, 4]
    # Each lane tabulated its own batches as they ended, with the batch's nodes as inputs (bulk-linked).
    tables = [c for lane in lanes for c in lane.called if c.process_label == 'tabulate_batch']
    assert len(tables) == 9 and all(table.is_finished_ok for table in tables)
    assert sum(len(table.inputs.references) for table in tables) == 3 * count
    plan = node.base.links.get_outgoing(link_label_filter='plan').one().node.outputs.result
    assert plan.base.attributes.get('n_batches') == 3 and sorted(plan.get_array('offsets')) == [0, 7, 13, 19]
    structures = [n for n in group.nodes if isinstance(n, orm.StructureData)]
    assert sum(batch_atoms(plan)) == sum(len(s.sites) for s in structures) and len(structures) == count
    for base in bases:
        # Every structure has a result or a recorded reason.
        assert base.outputs.summary['n_structures'] == len(base.inputs.mliap.structures)
    # Two jobs in flight on this machine (direct scheduler): each runner used its share of the cores.
    share = max(1, available_cores() // 2)
    for calc in (c for base in bases for c in base.called if isinstance(c, orm.CalcJobNode)):
        assert calc.get_option('resources')['num_cores_per_mpiproc'] == share
        assert calc.outputs.summary['environment']['torch_threads'] == share

    results = orm.load_group(results_group_label(group.label, chgnet_model))
    by_type = {}
    for member in results.nodes:
        by_type.setdefault(member.__class__.__name__, []).append(member)
    assert len(by_type['MliapResultData']) >= 3 * count
    assert len(by_type['MliapThermoData']) == 3 * count
    assert len(by_type['MliapSymmetryData']) == 3 * count  # the DFT structures, relax, relax_fixsym
    fixsym = [s for s in by_type['MliapSymmetryData'] if s.get('fix_symmetry')]
    assert fixsym and all(s['fixsym_energy_gap_per_atom'] is not None for s in fixsym if s['status'] == 'ok')
    thermo_static = [t for t in by_type['MliapThermoData'] if t['task'] == 'static']
    assert sum(t['status'] == 'ok' for t in thermo_static) >= count - 2  # CHGNet may refuse molecular O phases

    table = {(row['task'], row['quantity']): row for row in error_summary(node)}
    assert table[('static', 'total energy')]['n'] >= count - 2
    assert all(row['done'] + row['failed'] == count and row['pending'] == 0 for row in progress(node))
    check_results_table(node, group, chgnet_model, count)
    check_closed_provenance(node, group)
    summary = {(entry['model'], entry['task']): entry for entry in node.outputs.summary['entries']}
    assert set(summary) == {('chgnet-0.3.0', task) for task in TASKS}
    assert sum(summary[('chgnet-0.3.0', 'static')]['result_counts'].values()) == count
    assert set(summary[('chgnet-0.3.0', 'static')]['classification']['dftref_hull']) >= {'tp', 'fp', 'fn', 'tn', 'n'}
    headline = {(row['task'], row['quantity']): row for row in node.outputs.headline['rows']}
    expected = {(row['task'], row['quantity']): row for row in error_summary(node)}
    assert headline.keys() == expected.keys() and ('static', 'Ehull (DFT-ref hull)') in headline
    for key, row in headline.items():  # the work chain's own output agrees with the table rebuilt from provenance
        assert row['n'] == expected[key]['n'] and abs(row['MAE meV/atom'] - expected[key]['MAE meV/atom']) < 1e-9
    assert len(node.inputs.datasets) == 1  # the datasets it ran on, for a relaunch
    check_report_and_archive_round_trip(group, tmp_path)

    # With caching on, the same launch (from the CLI this time) reuses every finished calculation.
    with enable_caching(identifier='aiida.calculations:mliap.calc'):
        args = ['benchmark', 'launch', '--group', group.label, '--model', chgnet_model.sha256, '--protocol', 'fast',
                '--max-steps', '30', '--device', 'cpu', '--batch-size', '8', '--max-concurrent', '2', '--code',
                runner_code.full_label, '--progress-every', '0.5',
                '--hull-chunk-size', '8'] + [f'--task={task}' for task in TASKS]  # fmt: skip
        result = CliRunner().invoke(cmd_root, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert 'Ehull (DFT-ref hull)' in result.output and 'MliapBenchmarkWorkChain' in result.output
    assert 'structures/min' in result.output, 'a foreground run prints its progress'
    again = (
        orm.QueryBuilder()
        .append(MliapBenchmarkWorkChain, project='*')
        .order_by({MliapBenchmarkWorkChain: {'id': 'desc'}})
        .first(flat=True)
    )
    assert again.pk != node.pk and again.is_finished_ok
    status = CliRunner().invoke(cmd_root, ['benchmark', 'status', str(again.pk)], catch_exceptions=False)
    assert status.exit_code == 0 and 'relax_fixsym' in status.output, status.output
    calcs = [calc for _, base in base_work_chains(again) for calc in base.called if isinstance(calc, orm.CalcJobNode)]
    assert calcs and all(calc.base.caching.is_created_from_cache for calc in calcs)
    # The relaunch computed its hulls in chunks of one batch each (`--hull-chunk-size 8`): the same values.
    chunked = [call for call in again.called if call.process_label == 'merge_thermodynamics']
    assert len(chunked) == len(TASKS) and {call.outputs.summary['n_chunks'] for call in chunked} == {3}
    columns = ['mp_id', 'task', 'thermo_status', 'e_form_model', 'e_above_hull_model', 'e_above_hull_model_dftref',
               'e_above_hull_dft', 'e_form_dft']  # fmt: skip
    whole, parts = (
        load_results(n)[columns].sort_values(['mp_id', 'task']).reset_index(drop=True) for n in (node, again)
    )
    numbers = columns[3:]
    assert whole[columns[:3]].equals(parts[columns[:3]])
    assert ((whole[numbers] - parts[numbers]).abs().fillna(0) < 1e-9).all().all()
    for before, after in zip(node.outputs.summary['entries'], again.outputs.summary['entries'], strict=True):
        keys = ('task', 'result_counts', 'thermo_counts', 'classification')
        assert [after[key] for key in keys] == [before[key] for key in keys]


# The contract of docs/reference/results-table.md.
DESIGN_COLUMNS = (
    'mp_id formula chemsys n_atoms model model_sha256 task status converged n_steps energy_per_atom_dft '
    'energy_per_atom_model e_form_dft e_form_model e_above_hull_dft e_above_hull_model e_above_hull_model_dftref '
    'spacegroup_initial spacegroup_final crystal_system dof symmetry_change'
).split()


def check_results_table(node, group, model, count):
    """load_results from the benchmark, its results group and its dataset group: the same rows, all columns."""
    table = load_results(node)
    assert set(DESIGN_COLUMNS) <= set(table.columns)
    assert len(table) == 3 * count and set(table['task']) == set(TASKS)
    assert set(table['model_sha256']) == {model.sha256} and set(table['model']) == {model.name}
    assert not table.duplicated(['mp_id', 'task']).any()
    static, relaxed = table[table['task'] == 'static'], table[table['task'] != 'static']
    assert static['symmetry_change'].isna().all() and static['crystal_system'].notna().all()
    done = relaxed[relaxed['status'].isin(['ok', 'unconverged'])]
    assert done['spacegroup_final'].notna().all() and done['symmetry_change'].notna().all()
    assert (static['spacegroup_final'] == static['spacegroup_initial']).all()
    # Status and steps are the final result of each structure as its base work chain saw it (restarts included).
    final = {
        (label, task): tuple(map(result.base.attributes.get, ('status', 'n_steps')))
        for task, base in base_work_chains(node)
        for label, result in base.outputs.results.items()
    }
    assert {(row.label, row.task): (row.status, row.n_steps) for row in table.itertuples()} == final
    fixsym = table[(table['task'] == 'relax_fixsym') & (table['status'] == 'ok')]
    assert fixsym['fixsym_energy_gap_per_atom'].notna().all()
    # Geometry after relaxation, from the symmetry nodes; the relax - static drop from the same model's rows.
    assert done['volume_change'].notna().all() and done['matches_dft'].notna().all()
    assert (done.loc[done['matches_dft'].astype(bool), 'rmsd_to_dft'] >= 0).all()
    assert static['rmsd_to_dft'].isna().all() and static['relax_drop_per_atom'].isna().all()
    both = done.merge(static[['label', 'energy_per_atom_model']], on='label', suffixes=('', '_static'))
    assert (
        both['relax_drop_per_atom'] - (both['energy_per_atom_model'] - both['energy_per_atom_model_static'])
    ).abs().max() < 1e-12
    assert table['suspected_unphysical_minimum'].dtype == bool
    columns = ['mp_id', 'task', 'energy_per_atom_model', 'status', 'spacegroup_final']
    expected = table[columns].sort_values(['mp_id', 'task']).reset_index(drop=True)
    for source in (results_group_label(group.label, model), group.label, str(node.pk)):
        again = load_results(source)[columns].sort_values(['mp_id', 'task']).reset_index(drop=True)
        assert again.equals(expected), source


def base_work_chains(node) -> list[tuple[str, orm.WorkflowNode]]:
    """(task, base work chain) of a benchmark of the model `chgnet`, from the call link labels of its lanes."""
    lanes = [link.node for link in node.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()]
    links = [link for lane in lanes for link in lane.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()]
    return [(link.link_label.removeprefix('batch_chgnet_').rsplit('_', 1)[0], link.node) for link in links]


def provenance_ancestors(node) -> set[int]:
    """Every node reachable backwards from ``node`` through create and input links only."""
    seen, frontier = set(), [node]
    while frontier:
        current = frontier.pop()
        for link in current.base.links.get_incoming(link_type=(LinkType.CREATE, LinkType.INPUT_CALC)).all():
            if link.node.pk not in seen:
                seen.add(link.node.pk)
                frontier.append(link.node)
    return seen


def check_closed_provenance(node, group):
    """From thermo and symmetry nodes back to the result and reference nodes they were computed from."""
    from aiida_mliap.calculations.dataset import union_of_datasets

    references = union_of_datasets([node.inputs.datasets[k] for k in node.inputs.datasets], 'references')
    results = {(task, label): result for task, base in base_work_chains(node) for label, result in
               base.outputs.results.items()}  # fmt: skip
    thermo_calls = [c for c in node.called if c.process_label == 'compute_thermodynamics']
    assert len(thermo_calls) == len(TASKS)
    for call in thermo_calls:
        thermo = next(link.node for link in call.base.links.get_outgoing(link_type=LinkType.CREATE).all()
                      if link.link_label.startswith('thermo__'))  # fmt: skip
        ancestors = provenance_ancestors(thermo)
        assert references[thermo['label']].pk in ancestors
        assert results[(thermo['task'], thermo['label'])].pk in ancestors
    symmetry_calls = [c for c in node.called if c.process_label == 'analyse_symmetry' and 'table' in c.inputs]
    assert symmetry_calls
    for call in symmetry_calls:
        record = next(link.node for link in call.base.links.get_outgoing(link_type=LinkType.CREATE).all()
                      if link.link_label.startswith('symmetry__'))  # fmt: skip
        ancestors = provenance_ancestors(record)
        assert results[(call.inputs.table.task, record['label'])].pk in ancestors
        relaxed = next(b for t, b in base_work_chains(node) if t == call.inputs.table.task
                       and record['label'] in b.outputs.results)  # fmt: skip
        assert relaxed.outputs.relaxed_structures[record['label']].pk in ancestors


def check_report_and_archive_round_trip(group, tmp_path):
    """report writes its three files; a profile that only imported the exported archive reports the same metrics."""
    result = CliRunner().invoke(cmd_root, ['report', group.label, '-o', str(tmp_path / 'here')], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert 'Ehull (DFT-ref hull)' in result.output
    html = (tmp_path / 'here' / 'report.html').read_text()
    assert html.count('<img') >= 4 and 'sha256' in html and 'Materials Project' in html
    assert "The study's claims, tested" in html and 'Rival explanations' in html
    results = pd.read_csv(tmp_path / 'here' / 'results.csv')
    document = json.loads((tmp_path / 'here' / 'metrics.json').read_text())
    for row in document['claims']:  # the contract: model - DFT over the rows where both are defined
        model, dft = {'e_above_hull_model': ('e_above_hull_model', 'e_above_hull_dft'),
                      'e_above_hull_dftref': ('e_above_hull_model_dftref', 'e_above_hull_dft'),
                      'e_form': ('e_form_model', 'e_form_dft'),
                      'energy': ('energy_per_atom_model', 'energy_per_atom_dft')}[row['quantity']]  # fmt: skip
        rows = results[(results['model'] == row['model']) & (results['task'] == row['task'])]
        errors = (rows[model] - rows[dft]).dropna()
        assert row['n'] == len(errors) > 0 and abs(row['mean_signed'] - errors.mean()) < 1e-8
    assert {row['task'] for row in document['softening']} == set(TASKS)
    archive = tmp_path / 'benchmark.aiida'
    result = CliRunner().invoke(cmd_root, ['export', group.label, '-o', str(archive)], catch_exceptions=False)
    assert result.exit_code == 0 and archive.stat().st_size > 0, result.output

    environment = {**os.environ, 'AIIDA_PATH': str(tmp_path / 'elsewhere')}
    bin_dir = Path(sys.executable).parent
    for command in (
        [bin_dir / 'verdi', 'presto', '--profile-name', 'imported', '--no-broker'],
        [bin_dir / 'verdi', '-p', 'imported', 'archive', 'import', archive],
        [bin_dir / 'aiida-mliap', '-p', 'imported', 'report', group.label, '-o', tmp_path / 'there'],
    ):
        done = subprocess.run([str(part) for part in command], env=environment, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    here = json.loads((tmp_path / 'here' / 'metrics.json').read_text())
    there = json.loads((tmp_path / 'there' / 'metrics.json').read_text())
    assert here == there and here['n_rows'] > 0


def test_matbench_protocol_and_elemental_references(runner_code, chgnet_model, shared_data):
    """`matbench`: no continuation of unconverged relaxations, MP's 2023-02-07 elemental references, which are
    refused for datasets of another release (the 2021 file's Fe differs)."""
    import pytest

    from aiida_mliap.calculations.dataset import import_elemental_references, import_reference_file

    refs, _ = import_elemental_references(shared_data / 'elemental_refs' / 'mp_elemental_refs_2023-02-07.json.gz')
    current, _, _ = import_reference_file(shared_data / 'mp' / 'Li-Fe-P-O.json.gz', 'matbench/now', chemsys='Fe-O')
    builder = MliapBenchmarkWorkChain.get_builder_from_protocol(
        runner_code, {'chgnet': chgnet_model}, current, protocol='matbench', tasks=['relax']
    )
    assert builder.base.unconverged_restarts.value == 0 and builder.elemental_references.pk == refs.pk
    assert builder.parameters['fmax'] == 0.05 and builder.parameters['max_steps'] == 500
    old, _, _ = import_reference_file(shared_data / 'mp' / 'Li-Fe-O_2021.json.gz', 'matbench/2021', chemsys='Fe-O')
    with pytest.raises(ValueError, match=r'disagree with the datasets of `matbench/2021`.*mp-13 \(Fe\)'):
        MliapBenchmarkWorkChain.get_builder_from_protocol(
            runner_code, {'chgnet': chgnet_model}, old, protocol='matbench'
        )


def test_max_atoms_evaluates_small_structures_and_the_elemental_ground_states(runner_code, chgnet_model, li_o_group):
    """A relaxation subset (max_atoms) keeps every entry in the DFT hull; the elemental ground states are evaluated
    whatever their size, so the model hull has its corners; the others have no model result, and say so."""
    from aiida_mliap.calculations.dataset import group_datasets, union_of_datasets
    from aiida_mliap.data.reference import to_entry
    from aiida_mliap.science.hull import elemental_ground_states

    group, count = li_o_group(max_atoms=8)
    attributes = union_of_datasets(group_datasets(group), 'references', project='attributes')
    corners = set(elemental_ground_states({label: to_entry(a) for label, a in attributes.items()}).values())
    builder = builder_for(runner_code, chgnet_model, group)
    builder.tasks = orm.List(['static'])
    builder.max_atoms = orm.Int(3)
    _, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message

    table = load_results(node).set_index('label')
    assert len(table) == count  # every entry has a row: the DFT hull is the whole file's
    evaluated = set(table[table.status != 'not_run'].index)
    assert evaluated == set(table[table.n_atoms <= 3].index) | corners
    assert any(table.n_atoms[label] > 3 for label in corners)  # a corner larger than the limit (O2) was evaluated
    left_out = table[table.status == 'not_run']
    assert len(left_out) and (left_out.n_atoms > 3).all()
    assert (left_out.thermo_status == 'not_evaluated').all()
    assert left_out.e_above_hull_dft.notna().all()  # the DFT quantities stand on the whole file
    row = progress(node)[0]
    assert row['left out (max_atoms)'] == len(left_out) and row['pending'] == 0
