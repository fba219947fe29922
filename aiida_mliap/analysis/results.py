"""``load_results``: the results table (one row per structure, model and task) from provenance alone.

Rows are the ``thermo.<label>`` outputs of ``compute_thermodynamics`` calls; the task and the per-structure result
(status, convergence, steps) come from each call's ``tables__*`` inputs (``MliapBatchTable``), the symmetry from the
``analyse_symmetry`` calls on those tables and on the ``datasets__*``. Every step is a query with projections over
all calls at once, read into a frame (``query_frame``: COPY on PostgreSQL) and joined with pandas: no node is loaded
one by one and no row is a Python dict, so 10^6 rows take about a minute and a few GB.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from aiida import orm
from aiida.common.links import LinkType

from ..calculations.tables import latest_rows
from ..contract.schema import ROW_RESULT_KEYS
from ..contract.status import WITH_RESULT
from ..data.dataset import MliapDatasetData
from ..data.dft_check import MliapDftCheckData
from ..data.model import MliapModelData
from ..data.table import MliapBatchTable
from ..data.thermo import MliapThermoData
from ..provenance.frames import query_frame
from ..provenance.links import linked_query
from ..science.metrics import add_errors
from ..science.pathologies import add_relaxation_checks

THERMO_LABEL, SYMMETRY_LABEL = 'compute_thermodynamics', 'analyse_symmetry'
# The contract of docs/reference/results-table.md, then extra columns.
COLUMNS = [
    'mp_id', 'formula', 'chemsys', 'n_atoms', 'model', 'model_sha256', 'task', 'status', 'converged', 'n_steps',
    'energy_per_atom_dft', 'energy_per_atom_model', 'e_form_dft', 'e_form_model', 'e_above_hull_dft',
    'e_above_hull_model', 'e_above_hull_model_dftref', 'spacegroup_initial', 'spacegroup_final', 'crystal_system',
    'dof', 'symmetry_change',
    'label', 'thermo_status', 'reason', 'energy_scale', 'energy_per_atom_model_raw', 'model_correction_per_atom',
    'lattice_system', 'spacegroup_symbol_initial', 'spacegroup_symbol_final', 'dof_final',
    'fixsym_energy_gap_per_atom', 'matches_dft', 'rmsd_to_dft', 'max_distance_to_dft', 'volume_change',
    'relax_drop_per_atom', 'suspected_unphysical_minimum', 'forces_max', 'wall_time_s', 'thermo_pk',
    'dft_check_status', 'dft_check_delta_e_geom', 'dft_check_uncertainty', 'dft_check_mp_max_force',
    'dft_check_mp_pressure', 'newer_failed_attempts',
]  # fmt: skip
SYMMETRY_INITIAL = ('spacegroup_initial', 'spacegroup_symbol_initial', 'crystal_system', 'lattice_system', 'dof')
SYMMETRY_FINAL = ('spacegroup_final', 'spacegroup_symbol_final', 'dof_final', 'symmetry_change')
INTEGERS = ('n_steps', 'spacegroup_initial', 'spacegroup_final', 'dof', 'dof_final')
GEOMETRY = ('matches_dft', 'rmsd_to_dft', 'max_distance_to_dft', 'volume_change', 'fixsym_energy_gap_per_atom')
# What a row takes from its thermo node (not the decompositions): projected key by key, never whole attribute dicts.
THERMO_KEYS = (
    'label', 'mp_id', 'formula', 'chemsys', 'n_atoms', 'model_name', 'model_sha256', 'energy_scale', 'task',
    'energy_per_atom_dft', 'energy_per_atom_model_raw', 'energy_per_atom_model', 'model_correction_per_atom',
    'e_form_dft', 'e_form_model', 'e_above_hull_dft', 'e_above_hull_model', 'e_above_hull_model_dftref', 'status',
    'reason', 'result_status', *ROW_RESULT_KEYS[1:],
)  # fmt: skip


def load_results(source: orm.Group | orm.ProcessNode | str | int) -> pd.DataFrame:
    """The results table of a dataset group (every model's results for its structures), a results group, or a
    benchmark work chain (node, pk or group label); see ``COLUMNS``, plus signed and absolute errors.

    One row per structure, model and task: when several benchmarks evaluated the same (a relaunch), the latest with a
    result counts; ``newer_failed_attempts`` counts the attempts without a result made after it.
    """
    thermo_calls, members = thermo_calls_of(resolve_source(source))
    table = _thermo_frame(thermo_calls, members)
    if table.empty:
        return add_errors(pd.DataFrame(columns=COLUMNS))
    tables = _tables(thermo_calls)
    table = _with_symmetry(table, tables, thermo_calls)
    # A structure evaluated by the same model and task in several benchmarks (a relaunch) counts once: the latest
    # that has a result (a failed rerun never hides a good row; ``newer_failed_attempts`` says where one exists).
    # Creation times, not pks, order everything: an archive import renumbers the nodes.
    table['has_result'] = table['status'].isin([status.value for status in WITH_RESULT])
    table = latest_rows(table, ['label', 'model_sha256', 'task'], ['thermo_ctime'], usable='has_result')
    table = table.drop(columns='has_result')
    jobs = table_jobs(sorted(set(tables['table'])))  # the calculations behind the rows: environments, DFT checks
    table = _with_dft_checks(table, set(jobs['job'].astype('int64')))
    for column in COLUMNS:
        if column not in table:
            table[column] = None
    ordered = table[COLUMNS + [c for c in table.columns if c not in COLUMNS]]
    result = add_errors(ordered.sort_values(['model', 'task', 'mp_id'], kind='stable').reset_index(drop=True))
    result = add_relaxation_checks(result)
    result.attrs.update(provenance(thermo_calls, tables, jobs))
    return result


DFT_CHECK_KEYS = ('label', 'model_sha256', 'task', 'status', 'delta_e_geom', 'delta_e_geom_uncertainty',
                  'max_force_reference_geometry', 'pressure_reference_geometry')  # fmt: skip
# The check's keys as the table's columns (eV/atom; QE's largest force at MP's geometry in eV/Å, pressure in kbar).
DFT_CHECK_COLUMNS = {'status': 'dft_check_status', 'delta_e_geom': 'dft_check_delta_e_geom',
                     'delta_e_geom_uncertainty': 'dft_check_uncertainty',
                     'max_force_reference_geometry': 'dft_check_mp_max_force',
                     'pressure_reference_geometry': 'dft_check_mp_pressure'}  # fmt: skip


def _with_dft_checks(table: pd.DataFrame, jobs: set[int]) -> pd.DataFrame:
    """The ``DFT_CHECK_COLUMNS`` of the latest DFT check of each structure, model
    and task whose model geometry one of ``jobs`` (the relaxations behind these rows) made; None where there is none.
    A check of another benchmark's relaxation of the same structure is another geometry, and is not taken."""
    query = orm.QueryBuilder().append(
        MliapDftCheckData,
        filters={'attributes.model_sha256': {'in': sorted(table['model_sha256'].dropna().unique().tolist())}},
        project=[*(f'attributes.{key}' for key in DFT_CHECK_KEYS), 'ctime'],
        tag='check',
    )
    query.append(orm.WorkflowNode, with_outgoing='check', edge_project='label', tag='chain')
    query.append(orm.StructureData, with_outgoing='chain', edge_project='label', tag='geometry',
                 edge_filters={'label': {'like': 'model_structures__%'}})  # fmt: skip
    query.append(orm.CalcJobNode, with_outgoing='geometry', project='id', tag='job')
    columns = [*DFT_CHECK_KEYS, 'check_ctime', 'job', 'check_link', 'geometry_link']  # vertices, then edges
    found = query_frame(query, columns, attributes=DFT_CHECK_KEYS, times=['check_ctime'])
    own = found['check_link'].str.removeprefix('checks__') == found['geometry_link'].str.removeprefix(
        'model_structures__'
    )
    checks = found[own & found['job'].astype('int64').isin(jobs)]
    checks = latest_rows(checks, ['label', 'model_sha256', 'task'], ['check_ctime'])[list(DFT_CHECK_KEYS)]
    checks = checks.rename(columns=DFT_CHECK_COLUMNS)
    table = table.drop(columns=list(DFT_CHECK_COLUMNS.values()), errors='ignore')
    merged = table.merge(checks, on=['label', 'model_sha256', 'task'], how='left')
    for column in list(DFT_CHECK_COLUMNS.values())[1:]:
        merged[column] = pd.to_numeric(merged[column], errors='coerce')
    return merged


def provenance(calls: list[int], tables: pd.DataFrame, jobs: pd.DataFrame) -> dict[str, Any]:
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
    found['environments'] = environments(jobs)
    return found


def table_jobs(tables: list[int]) -> pd.DataFrame:
    """(table, job): the calculations whose results each table read, one query."""
    if not tables:
        return pd.DataFrame(columns=['table', 'job'])
    query = orm.QueryBuilder().append(MliapBatchTable, filters={'id': {'in': tables}}, project='id', tag='t')
    query.append(orm.CalcFunctionNode, with_outgoing='t', tag='tabulate')
    query.append(orm.Data, with_outgoing='tabulate', edge_filters={'label': {'like': 'results__%'}}, tag='result')
    query.append(orm.CalcJobNode, with_outgoing='result', project='id', tag='job')
    return query_frame(query, ['table', 'job']).drop_duplicates()


ENVIRONMENT_KEYS = ('framework', 'framework_version', 'torch_version', 'device', 'device_name', 'dtype',
                    'torch_threads', 'engine')  # fmt: skip


def environments(pairs: pd.DataFrame) -> list[dict[str, Any]]:
    """What actually ran each task, from the runner's record of its environment in every calculation behind the
    tables (``pairs``: ``table_jobs``): framework and torch versions, device, dtype, threads, engine (one row per
    distinct combination)."""
    if pairs.empty:
        return []
    tables = sorted({int(table) for table in pairs['table']})
    # Plain queries: the tables' task and model once per table, the jobs' environments (ids only: a table's
    # attributes hold every row, and extracting a key from them once per result took seconds per thousand).
    described = orm.QueryBuilder().append(
        MliapBatchTable, filters={'id': {'in': tables}}, project=['id', 'attributes.task', 'attributes.model_sha256']
    )
    about = {table: (task, sha256) for table, task, sha256 in described.iterall()}
    jobs = {(*about[int(table)], int(job)) for table, job in zip(pairs['table'], pairs['job'], strict=True)}
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
        group = orm.load_group(pk)
    except Exception:
        group = None
    if node is not None:  # node and group pks are counted apart: a pk of another node is a mistake, not a group
        also = f'; group pk {pk} is `{group.label}`: give its label' if group is not None else ''
        raise ValueError(f'pk {pk} is a {type(node).__name__}, not a benchmark work chain or a group{also}')
    if group is None:
        raise ValueError(f'{source} is neither a benchmark work chain nor a group')
    return group


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


def _thermo_frame(calls: list[int], members: set[int] | None) -> pd.DataFrame:
    """One row per thermo node of the calls: ``THERMO_KEYS`` (its status as ``thermo_status``), call and time."""
    columns = ['thermo_call', 'thermo_ctime', 'thermo_pk', *THERMO_KEYS]
    if not calls:
        return pd.DataFrame(columns=columns)
    query = orm.QueryBuilder().append(
        orm.CalcFunctionNode, filters={'id': {'in': calls}}, project=['id', 'ctime'], tag='call'
    )
    query.append(
        MliapThermoData,
        with_incoming='call',
        edge_filters={'type': LinkType.CREATE.value, 'label': {'like': 'thermo__%'}},
        project=['id', *(f'attributes.{key}' for key in THERMO_KEYS)],
    )
    frame = query_frame(query, columns, attributes=THERMO_KEYS, times=['thermo_ctime'])
    if members is not None:
        frame = frame[frame['thermo_pk'].isin(members)]
    frame = frame.rename(columns={'status': 'thermo_status', 'result_status': 'status'})
    frame['model'] = frame['model_name']
    return _inferred(frame.reset_index(drop=True), ROW_RESULT_KEYS)


def _tables(calls: list[int]) -> pd.DataFrame:
    """Per thermo call: its batch tables (task, runner parameters), in creation order, for the symmetry of the same
    batches and the parameters and environments of the report. Not their ``rows`` (every reference and result dict
    again): what a row takes from its result, the thermo record carries."""
    query = orm.QueryBuilder().append(orm.CalcFunctionNode, filters={'id': {'in': calls}}, project='id', tag='call')
    query.append(
        MliapBatchTable,
        with_outgoing='call',
        edge_filters={'label': {'like': 'tables__%'}},
        project=['id', 'ctime', 'attributes.task', 'attributes.parameters'],
    )
    frame = pd.DataFrame(query.all(), columns=['call', 'table', 'ctime', 'task', 'parameters'])
    return frame.sort_values(['call', 'ctime'], kind='stable')


def _with_symmetry(table: pd.DataFrame, tables: pd.DataFrame, calls: list[int]) -> pd.DataFrame:
    """Initial symmetry from the DFT structures' analysis, final symmetry from the analysis of the same batches."""
    by_table = _symmetry_calls_of(sorted(set(tables['table'])), 'table')
    pairs = zip(tables['call'], tables['table'], strict=True)
    final_calls = [(call, by_table[table]) for call, table in pairs if table in by_table]
    dft_calls = [(call, pk) for call, pks in _dft_symmetry_calls(calls).items() for pk in pks]
    keys = SYMMETRY_INITIAL + SYMMETRY_FINAL + GEOMETRY
    records = _symmetry_records(sorted({pk for _, pk in final_calls + dft_calls}), keys)
    final = _merged_symmetry(final_calls, records)
    initial = _merged_symmetry(dft_calls, records)
    on = ['thermo_call', 'label']
    table = table.merge(initial.add_suffix('__i').rename(columns={f'{k}__i': k for k in on}), on=on, how='left')
    table = table.merge(final.add_suffix('__f').rename(columns={f'{k}__f': k for k in on}), on=on, how='left')
    has_final = table.pop('found__f').notna()
    table.pop('found__i')
    for key in SYMMETRY_INITIAL:  # the record of the final structure carries the initial symmetry too, if any
        table[key] = table[f'{key}__f'].where(has_final, table[f'{key}__i'])
    static = table['task'] == 'static'  # nothing moved: the final structure is the DFT structure
    for key, initial_key in (
        ('spacegroup_final', 'spacegroup_initial'),
        ('spacegroup_symbol_final', 'spacegroup_symbol_initial'),
        ('dof_final', 'dof'),
        ('symmetry_change', None),
    ):
        table[key] = table[f'{key}__f'].where(~static, table[f'{initial_key}__i'] if initial_key else None)
    for key in GEOMETRY:
        table[key] = table[f'{key}__f'].where(~static, None)
    table = table.drop(columns=[c for c in table.columns if c.endswith(('__i', '__f'))])
    return _inferred(table, SYMMETRY_INITIAL + SYMMETRY_FINAL + GEOMETRY)


def _inferred(table: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Merged-in columns typed as if built from the rows' values: missing is None (NaN in numbers), and the integer
    quantities are ints wherever none is missing (a merge or a null elsewhere in a query made them floats)."""
    for column in columns:
        values = table[column].astype(object)
        table[column] = pd.Series(values.where(values.notna(), None).tolist(), index=table.index)
        if column in INTEGERS and table[column].dtype == float and table[column].notna().all():
            table[column] = table[column].astype('int64')
    return table


def _symmetry_records(calls: list[int], keys: tuple[str, ...]) -> pd.DataFrame:
    """The ``symmetry.<label>`` outputs of ``analyse_symmetry`` calls: one row per call and label."""
    if not calls:
        return pd.DataFrame(columns=['symmetry_call', *keys, 'label'])
    records = query_frame(linked_query(calls, 'symmetry', keys), ['symmetry_call', *keys, 'label'], attributes=keys)
    records['label'] = records['label'].str.removeprefix('symmetry__')
    return records


def _merged_symmetry(pairs: list[tuple[int, int]], records: pd.DataFrame) -> pd.DataFrame:
    """Per thermo call and label, the record of the latest of its symmetry calls (``pairs``: thermo call, symmetry
    call) that analysed the label; ``found`` marks that one exists."""
    calls = pd.DataFrame(pairs, columns=['thermo_call', 'symmetry_call'])
    merged = latest_rows(calls.merge(records, on='symmetry_call'), ['thermo_call', 'label'], ['symmetry_call'])
    merged = merged.drop(columns='symmetry_call').assign(found=True)
    return merged.astype({key: object for key in merged.columns if key not in ('thermo_call', 'label')})


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
