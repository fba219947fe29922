"""``load_results``: the results table (one row per structure, model and task) from provenance alone.

Rows are the ``thermo.<label>`` outputs of ``compute_thermodynamics`` calls; the task and the per-structure result
(status, convergence, steps) come from each call's ``tables__*`` inputs (``MliapBatchTable``), the symmetry from the
``analyse_symmetry`` calls on those tables and on the ``datasets__*``. Every step is a query with projections over
all calls at once: no node is loaded one by one.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from aiida import orm
from aiida.common.links import LinkType

from ..calculations.outputs import outputs_of
from ..calculations.tables import latest_by_label
from ..data.dataset import MliapDatasetData
from ..data.model import MliapModelData
from ..data.table import MliapBatchTable
from ..data.thermo import MliapThermoData
from .metrics import add_errors
from .pathologies import add_relaxation_checks

THERMO_LABEL, SYMMETRY_LABEL = 'compute_thermodynamics', 'analyse_symmetry'
# The contract of ../shared/DESIGN.md ("The results table"), then extra columns.
COLUMNS = [
    'mp_id', 'formula', 'chemsys', 'n_atoms', 'model', 'model_sha256', 'task', 'status', 'converged', 'n_steps',
    'energy_per_atom_dft', 'energy_per_atom_model', 'e_form_dft', 'e_form_model', 'e_above_hull_dft',
    'e_above_hull_model', 'e_above_hull_model_dftref', 'spacegroup_initial', 'spacegroup_final', 'crystal_system',
    'dof', 'symmetry_change',
    'label', 'thermo_status', 'reason', 'energy_scale', 'energy_per_atom_model_raw', 'model_correction_per_atom',
    'lattice_system', 'spacegroup_symbol_initial', 'spacegroup_symbol_final', 'dof_final',
    'fixsym_energy_gap_per_atom', 'matches_dft', 'rmsd_to_dft', 'max_distance_to_dft', 'volume_change',
    'relax_drop_per_atom', 'suspected_unphysical_minimum', 'forces_max', 'wall_time_s', 'thermo_pk',
]  # fmt: skip
RESULT_COLUMNS = ('status', 'converged', 'n_steps', 'forces_max', 'wall_time_s')  # from the model's result
SYMMETRY_INITIAL = ('spacegroup_initial', 'spacegroup_symbol_initial', 'crystal_system', 'lattice_system', 'dof')
SYMMETRY_FINAL = ('spacegroup_final', 'spacegroup_symbol_final', 'dof_final', 'symmetry_change')
GEOMETRY = ('matches_dft', 'rmsd_to_dft', 'max_distance_to_dft', 'volume_change', 'fixsym_energy_gap_per_atom')
# What a row takes from its thermo node (not the decompositions): projected key by key, never whole attribute dicts.
THERMO_KEYS = (
    'label', 'mp_id', 'formula', 'chemsys', 'n_atoms', 'model_name', 'model_sha256', 'energy_scale', 'task',
    'energy_per_atom_dft', 'energy_per_atom_model_raw', 'energy_per_atom_model', 'model_correction_per_atom',
    'e_form_dft', 'e_form_model', 'e_above_hull_dft', 'e_above_hull_model', 'e_above_hull_model_dftref', 'status',
    'reason',
)  # fmt: skip


def load_results(source: orm.Group | orm.ProcessNode | str | int) -> pd.DataFrame:
    """The results table of a dataset group (every model's results for its structures), a results group, or a
    benchmark work chain (node, pk or group label); see ``COLUMNS``, plus signed and absolute errors.

    One row per structure, model and task: when several benchmarks evaluated the same (a relaunch), the latest counts.
    """
    thermo_calls, members = thermo_calls_of(resolve_source(source))
    rows = _thermo_rows(thermo_calls, members)
    if not rows:
        return add_errors(pd.DataFrame(columns=COLUMNS))
    tables = _tables(thermo_calls)
    _add_results(rows, tables)
    _add_symmetry(rows, tables, thermo_calls)
    # A structure evaluated by the same model and task in several benchmarks (a relaunch) counts once: the latest.
    # Creation times, not pks, order everything: an archive import renumbers the nodes.
    table = pd.DataFrame.from_records(rows).sort_values('thermo_ctime', kind='stable')
    table = table.drop_duplicates(['label', 'model_sha256', 'task'], keep='last')
    for column in COLUMNS:
        if column not in table:
            table[column] = None
    ordered = table[COLUMNS + [c for c in table.columns if c not in COLUMNS]]
    result = add_errors(ordered.sort_values(['model', 'task', 'mp_id'], kind='stable').reset_index(drop=True))
    result = add_relaxation_checks(result)
    result.attrs.update(provenance(thermo_calls, tables))
    return result


def provenance(calls: list[int], tables: pd.DataFrame) -> dict[str, Any]:
    """What a report must state beside the numbers: models, datasets and the exact parameters of every task."""
    found: dict[str, Any] = {}
    for key, node_class, label, keys in (
        ('models', MliapModelData, 'model', ('name', 'sha256', 'framework', 'framework_version', 'energy_scale')),
        ('datasets', MliapDatasetData, 'datasets__%', ('source', 'sha256', 'release', 'n_entries', 'credit')),
        ('elemental_references', MliapDatasetData, 'elemental_references', ('source', 'sha256', 'credit')),
    ):
        query = orm.QueryBuilder().append(orm.CalcFunctionNode, filters={'id': {'in': calls}}, tag='call')
        query.append(node_class, with_outgoing='call', edge_filters={'label': {'like': label}}, project='attributes')
        unique = {attributes['sha256']: {k: attributes.get(k) for k in keys} for attributes in query.all(flat=True)}
        found[key] = [unique[sha256] for sha256 in sorted(unique)]
    parameters: dict[str, list[dict[str, Any]]] = {}
    for task, parameter_set in zip(tables['task'], tables['parameters'], strict=True):
        if parameter_set not in parameters.setdefault(task, []):
            parameters[task].append(parameter_set)
    found['parameters'] = {
        task: sorted(sets, key=lambda p: json.dumps(p, sort_keys=True)) for task, sets in sorted(parameters.items())
    }
    found['environments'] = environments(sorted(set(tables['table'])))
    return found


ENVIRONMENT_KEYS = ('framework', 'framework_version', 'torch_version', 'device', 'device_name', 'dtype',
                    'torch_threads', 'engine')  # fmt: skip


def environments(tables: list[int]) -> list[dict[str, Any]]:
    """What actually ran each task, from the runner's record of its environment in every calculation behind the
    tables: framework and torch versions, device, dtype, threads, engine (one row per distinct combination)."""
    if not tables:
        return []
    # Plain queries: the tables' task and model once per table, the jobs behind their results (ids only: a table's
    # attributes hold every row, and extracting a key from them once per result took seconds per thousand), then
    # the jobs' environments.
    described = orm.QueryBuilder().append(
        MliapBatchTable, filters={'id': {'in': tables}}, project=['id', 'attributes.task', 'attributes.model_sha256']
    )
    about = {table: (task, sha256) for table, task, sha256 in described.iterall()}
    query = orm.QueryBuilder().append(MliapBatchTable, filters={'id': {'in': tables}}, project='id', tag='t')
    query.append(orm.CalcFunctionNode, with_outgoing='t', tag='tabulate')
    query.append(orm.Data, with_outgoing='tabulate', edge_filters={'label': {'like': 'results__%'}}, tag='result')
    query.append(orm.CalcJobNode, with_outgoing='result', project='id', tag='job')
    jobs = {(*about[table], job) for table, job in query.iterall()}
    if not jobs:
        return []
    summaries = orm.QueryBuilder().append(
        orm.CalcJobNode, filters={'id': {'in': sorted({job for *_, job in jobs})}}, project='id', tag='job'
    )
    summaries.append(orm.Dict, with_incoming='job', edge_filters={'label': 'summary'}, project='attributes.environment')
    by_job = dict(summaries.iterall())
    found = set()
    for task, sha256, job in jobs:
        environment = by_job.get(job)
        if environment:
            found.add((task, sha256, *(environment.get(key) for key in ENVIRONMENT_KEYS)))
    rows = [dict(zip(('task', 'model_sha256', *ENVIRONMENT_KEYS), values, strict=True)) for values in found]
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True))


def resolve_source(source: orm.Group | orm.ProcessNode | str | int) -> orm.Group | orm.ProcessNode:
    """A group or process from itself, a group label, or a pk (a process first, then a group)."""
    if isinstance(source, (orm.Group, orm.ProcessNode)):
        return source
    if isinstance(source, str) and not source.isdigit():
        try:
            return orm.load_group(source)
        except Exception as exception:
            raise ValueError(f'no group `{source}`: {exception}') from None
    pk = int(source)
    try:
        node = orm.load_node(pk)
    except Exception:
        node = None
    if isinstance(node, orm.ProcessNode):
        return node
    try:
        return orm.load_group(pk)
    except Exception:
        raise ValueError(f'{source} is neither a benchmark work chain nor a group') from None


def thermo_calls_of(source: orm.Group | orm.ProcessNode) -> tuple[list[int], set[int] | None]:
    """The ``compute_thermodynamics`` calls behind ``source``, and (for a results group) the thermo nodes it holds."""
    thermo = {'attributes.process_label': THERMO_LABEL, 'attributes.process_state': 'finished'}
    query = orm.QueryBuilder()
    if isinstance(source, orm.ProcessNode):
        query.append(orm.ProcessNode, filters={'id': source.pk}, tag='source')
        query.append(orm.CalcFunctionNode, with_incoming='source', filters=thermo, project='id')
        return sorted(set(query.all(flat=True))), None
    query.append(orm.Group, filters={'id': source.pk}, tag='group')
    members = orm.QueryBuilder().append(orm.Group, filters={'id': source.pk}, tag='group')
    members.append(MliapThermoData, with_group='group', project='id', tag='thermo')
    members.append(orm.CalcFunctionNode, with_outgoing='thermo', project='id')
    held = members.all()
    if held:  # a results group: exactly the thermo nodes it holds
        return sorted({call for _, call in held}), {thermo_pk for thermo_pk, _ in held}
    query.append(MliapDatasetData, with_group='group', tag='dataset')
    query.append(orm.CalcFunctionNode, with_incoming='dataset', filters=thermo, project='id')
    return sorted(set(query.all(flat=True))), None


def _thermo_rows(calls: list[int], members: set[int] | None) -> list[dict[str, Any]]:
    if not calls:
        return []
    query = orm.QueryBuilder().append(
        orm.CalcFunctionNode, filters={'id': {'in': calls}}, project=['id', 'ctime'], tag='call'
    )
    query.append(
        MliapThermoData,
        with_incoming='call',
        edge_filters={'type': LinkType.CREATE.value, 'label': {'like': 'thermo__%'}},
        project=['id', *(f'attributes.{key}' for key in THERMO_KEYS)],
    )
    rows = []
    for call, ctime, pk, *values in query.iterall():
        if members is not None and pk not in members:
            continue
        attributes = dict(zip(THERMO_KEYS, values, strict=True))
        row = dict(attributes)
        row.update(
            thermo_pk=pk,
            thermo_call=call,
            thermo_ctime=ctime,
            model=attributes.get('model_name'),
            thermo_status=attributes.get('status'),
            status=None,
        )
        rows.append(row)
    return rows


def _tables(calls: list[int]) -> pd.DataFrame:
    """Per thermo call: its batch tables (task, runner parameters), in creation order. Not their ``rows`` (every
    reference and result dict again, ~10 kB per structure): the results' own columns come from ``_table_results``."""
    query = orm.QueryBuilder().append(orm.CalcFunctionNode, filters={'id': {'in': calls}}, project='id', tag='call')
    query.append(
        MliapBatchTable,
        with_outgoing='call',
        edge_filters={'label': {'like': 'tables__%'}},
        project=['id', 'ctime', 'attributes.task', 'attributes.parameters'],
    )
    frame = pd.DataFrame(query.all(), columns=['call', 'table', 'ctime', 'task', 'parameters'])
    return frame.sort_values(['call', 'ctime'], kind='stable')


def _table_results(tables: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
    """Per table, the ``RESULT_COLUMNS`` of the result nodes its ``tabulate_batch`` read, by label (one query,
    scalars only)."""
    found: dict[int, dict[str, dict[str, Any]]] = {table: {} for table in tables}
    if not tables:
        return found
    query = orm.QueryBuilder().append(MliapBatchTable, filters={'id': {'in': tables}}, project='id', tag='table')
    query.append(orm.CalcFunctionNode, with_outgoing='table', tag='tabulate')
    query.append(
        orm.Data,
        with_outgoing='tabulate',
        edge_filters={'label': {'like': 'results__%'}},
        edge_project='label',
        project=[f'attributes.{key}' for key in RESULT_COLUMNS],
        tag='result',
    )
    for row in query.iterdict():
        label = row['tabulate--result']['label'].removeprefix('results__')
        found[row['table']['id']][label] = {key: row['result'][f'attributes.{key}'] for key in RESULT_COLUMNS}
    return found


def _add_results(rows: list[dict[str, Any]], tables: pd.DataFrame) -> None:
    """Task and each structure's result from the tables its thermo call read (a relaunch: the latest wins)."""
    by_table = _table_results(sorted(set(tables['table'])))
    latest: dict[int, dict[str, dict[str, Any]]] = {}
    tasks: dict[int, str] = {}
    for call, group in tables.groupby('call', sort=False):
        latest[call] = latest_by_label(by_table[table] for table in group['table'])
        tasks[call] = group['task'].iloc[-1]
    for row in rows:
        row['task'] = tasks.get(row['thermo_call'], row.get('task'))
        result = latest.get(row['thermo_call'], {}).get(row['label'])
        if result is not None:
            row.update(result)
        else:
            row['status'] = 'not_run'


def _add_symmetry(rows: list[dict[str, Any]], tables: pd.DataFrame, calls: list[int]) -> None:
    """Initial symmetry from the DFT structures' analysis, final symmetry from the analysis of the same batches."""
    by_table = _symmetry_calls_of(sorted(set(tables['table'])), 'table')
    final_calls: dict[int, list[int]] = {}
    for call, table in zip(tables['call'], tables['table'], strict=True):
        if table in by_table:
            final_calls.setdefault(call, []).append(by_table[table])
    dft_calls = _dft_symmetry_calls(calls)
    wanted = {pk for pks in (*final_calls.values(), *dft_calls.values()) for pk in pks}
    records = outputs_of(sorted(wanted), 'symmetry', project=SYMMETRY_INITIAL + SYMMETRY_FINAL + GEOMETRY)
    merged = lambda pks: latest_by_label(records.get(pk, {}) for pk in sorted(pks))  # noqa: E731
    final_by_call = {call: merged(pks) for call, pks in final_calls.items()}
    dft_by_call = {call: merged(pks) for call, pks in dft_calls.items()}
    for row in rows:
        initial = dft_by_call.get(row['thermo_call'], {}).get(row['label'], {})
        final = final_by_call.get(row['thermo_call'], {}).get(row['label'], {})
        row.update({key: (final or initial).get(key) for key in SYMMETRY_INITIAL})
        if row['task'] == 'static':  # nothing moved: the final structure is the DFT structure
            row.update(
                spacegroup_final=initial.get('spacegroup_initial'),
                spacegroup_symbol_final=initial.get('spacegroup_symbol_initial'),
                dof_final=initial.get('dof'),
                symmetry_change=None,
            )
        else:
            row.update({key: final.get(key) for key in SYMMETRY_FINAL + GEOMETRY})


def _symmetry_calls_of(pks: list[int], label: str) -> dict[int, int]:
    """The latest ``analyse_symmetry`` call that took each node (a table or a dataset) as input ``label``."""
    if not pks:
        return {}
    query = orm.QueryBuilder().append(orm.Data, filters={'id': {'in': pks}}, project='id', tag='input')
    query.append(
        orm.CalcFunctionNode,
        with_incoming='input',
        edge_filters={'label': label},
        filters={'attributes.process_label': SYMMETRY_LABEL, 'attributes.process_state': 'finished'},
        project=['ctime', 'id'],
    )
    found: dict[int, tuple[Any, int]] = {}
    for pk, ctime, call in query.all():
        found[pk] = max(found.get(pk, (ctime, call)), (ctime, call))
    return {pk: call for pk, (_, call) in found.items()}


def _dft_symmetry_calls(calls: list[int]) -> dict[int, list[int]]:
    """Per thermo call, the latest ``analyse_symmetry`` call on the DFT structures of each of its datasets."""
    query = orm.QueryBuilder().append(orm.CalcFunctionNode, filters={'id': {'in': calls}}, project='id', tag='call')
    query.append(MliapDatasetData, with_outgoing='call', edge_filters={'label': {'like': 'datasets__%'}}, project='id')
    pairs = query.all()
    by_dataset = _symmetry_calls_of(sorted({dataset for _, dataset in pairs}), 'dataset')
    found: dict[int, list[int]] = {}
    for call, dataset in pairs:
        if dataset in by_dataset:
            found.setdefault(call, []).append(by_dataset[dataset])
    return found
