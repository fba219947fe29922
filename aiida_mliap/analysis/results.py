"""``load_results``: the results table (one row per structure, model and task) from provenance alone.

Rows are the ``thermo.<label>`` outputs of ``compute_thermodynamics`` calls; the task, the per-structure result
(status, convergence, steps) and the symmetry are reached from each call's ``summaries__*`` inputs. Every step is
a query with projections over all calls at once: no node is loaded one by one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pandas as pd
from aiida import orm
from aiida.common.links import LinkType

from ..calculations.outputs import outputs_of
from ..data.dataset import MliapDatasetData
from ..data.model import MliapModelData
from ..data.thermo import MliapThermoData
from .metrics import add_errors

THERMO_LABEL, SYMMETRY_LABEL = 'compute_thermodynamics', 'analyse_symmetry'
# The contract of ../shared/DESIGN.md ("The results table"), then extra columns.
COLUMNS = [
    'mp_id', 'formula', 'chemsys', 'n_atoms', 'model', 'model_sha256', 'task', 'status', 'converged', 'n_steps',
    'energy_per_atom_dft', 'energy_per_atom_model', 'e_form_dft', 'e_form_model', 'e_above_hull_dft',
    'e_above_hull_model', 'e_above_hull_model_dftref', 'spacegroup_initial', 'spacegroup_final', 'crystal_system',
    'dof', 'symmetry_change',
    'label', 'thermo_status', 'reason', 'energy_scale', 'energy_per_atom_model_raw', 'model_correction_per_atom',
    'lattice_system', 'spacegroup_symbol_initial', 'spacegroup_symbol_final', 'dof_final',
    'fixsym_energy_gap_per_atom', 'forces_max', 'wall_time_s', 'thermo_pk',
]  # fmt: skip
RESULT_KEYS = ('status', 'converged', 'n_steps', 'forces_max', 'wall_time_s')
SYMMETRY_INITIAL = ('spacegroup_initial', 'spacegroup_symbol_initial', 'crystal_system', 'lattice_system', 'dof')
SYMMETRY_FINAL = ('spacegroup_final', 'spacegroup_symbol_final', 'dof_final', 'symmetry_change')


def load_results(source: orm.Group | orm.ProcessNode | str | int) -> pd.DataFrame:
    """The results table of a dataset group (every model's results for its structures), a results group, or a
    benchmark work chain (node, pk or group label); see ``COLUMNS``, plus signed and absolute errors.

    One row per structure, model and task: when several benchmarks evaluated the same (a relaunch), the latest counts.
    """
    thermo_calls, members = thermo_calls_of(resolve_source(source))
    rows = _thermo_rows(thermo_calls, members)
    if not rows:
        return add_errors(pd.DataFrame(columns=COLUMNS))
    summaries = _summaries(thermo_calls)
    _add_results(rows, summaries)
    _add_symmetry(rows, summaries, thermo_calls)
    # A structure evaluated by the same model and task in several benchmarks (a relaunch) counts once: the latest.
    # Creation times, not pks, order everything: an archive import renumbers the nodes.
    table = pd.DataFrame.from_records(rows).sort_values('thermo_ctime', kind='stable')
    table = table.drop_duplicates(['label', 'model_sha256', 'task'], keep='last')
    for column in COLUMNS:
        if column not in table:
            table[column] = None
    ordered = table[COLUMNS + [c for c in table.columns if c not in COLUMNS]]
    result = add_errors(ordered.sort_values(['model', 'task', 'mp_id'], kind='stable').reset_index(drop=True))
    result.attrs.update(provenance(thermo_calls, summaries))
    return result


def provenance(calls: list[int], summaries: pd.DataFrame) -> dict[str, Any]:
    """What a report must state beside the numbers: models, datasets and the exact parameters of every task."""
    found: dict[str, Any] = {}
    for key, node_class, label, keys in (
        ('models', MliapModelData, 'model', ('name', 'sha256', 'framework', 'framework_version', 'energy_scale')),
        ('datasets', MliapDatasetData, 'dataset', ('source', 'sha256', 'release', 'n_entries', 'credit')),
    ):
        query = orm.QueryBuilder().append(orm.CalcFunctionNode, filters={'id': {'in': calls}}, tag='call')
        query.append(node_class, with_outgoing='call', edge_filters={'label': label}, project='attributes')
        unique = {attributes['sha256']: {k: attributes.get(k) for k in keys} for attributes in query.all(flat=True)}
        found[key] = [unique[sha256] for sha256 in sorted(unique)]
    parameters: dict[str, list[dict[str, Any]]] = {}
    for task, parameter_set in zip(summaries['task'], summaries['parameters'], strict=True):
        if parameter_set not in parameters.setdefault(task, []):
            parameters[task].append(parameter_set)
    found['parameters'] = {
        task: sorted(sets, key=lambda p: json.dumps(p, sort_keys=True)) for task, sets in sorted(parameters.items())
    }
    return found


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
        project=['id', 'attributes'],
    )
    rows = []
    for call, ctime, pk, attributes in query.all():
        if members is not None and pk not in members:
            continue
        row = {key: value for key, value in attributes.items() if not key.startswith('decomposition')}
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


def _summaries(calls: list[int]) -> pd.DataFrame:
    """Per thermo call: its summary inputs, the calculation behind each, and that calculation's parameters."""
    query = orm.QueryBuilder().append(orm.CalcFunctionNode, filters={'id': {'in': calls}}, project='id', tag='call')
    query.append(orm.Dict, with_outgoing='call', edge_filters={'label': {'like': 'summaries__%'}}, project='id',
                 tag='summary')  # fmt: skip
    # Any process with a `parameters` input counts as the calculation behind a summary (MliapCalculation, or a
    # stand-in such as aiida_mliap.testing.dft_as_model).
    query.append(orm.ProcessNode, with_outgoing='summary', project=['id', 'ctime'], tag='calc')
    query.append(orm.Dict, with_outgoing='calc', edge_filters={'label': 'parameters'}, project='attributes')
    frame = pd.DataFrame(query.all(), columns=['call', 'summary', 'calc', 'calc_ctime', 'parameters'])
    frame = frame.sort_values(['call', 'calc_ctime'], kind='stable')
    frame['task'] = [task_name(parameters) for parameters in frame['parameters']]
    return frame


def task_name(parameters: dict[str, Any]) -> str:
    """The benchmark's task (``static``, ``relax``, ``relax_fixsym``) from a calculation's runner parameters."""
    if parameters.get('task', 'relax') == 'static':
        return 'static'
    return 'relax_fixsym' if parameters.get('fix_symmetry') else 'relax'


def _add_results(rows: list[dict[str, Any]], summaries: pd.DataFrame) -> None:
    """Task and the latest calculation's result (a restart's result replaces the earlier one) of every row."""
    results = outputs_of(sorted(set(summaries['calc'])), 'results', project='attributes')
    latest: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    tasks: dict[int, str] = {}
    for call, calc, task in zip(summaries['call'], summaries['calc'], summaries['task'], strict=True):  # by ctime
        latest[call].update(results[calc])
        tasks[call] = task
    for row in rows:
        row['task'] = tasks.get(row['thermo_call'], row.get('task'))
        result = latest[row['thermo_call']].get(row['label'])
        if result is not None:
            row.update({key: result.get(key) for key in RESULT_KEYS})
        else:
            row['status'] = 'not_run'


def _add_symmetry(rows: list[dict[str, Any]], summaries: pd.DataFrame, calls: list[int]) -> None:
    """Initial symmetry from the DFT structures' analysis, final symmetry from the analysis of the same calculations."""
    by_summary = _symmetry_calls_by_summary(sorted(set(summaries['summary'])))
    symmetry_call: dict[int, tuple[Any, int]] = {}
    for call, summary in zip(summaries['call'], summaries['summary'], strict=True):
        if summary in by_summary:
            symmetry_call[call] = max(symmetry_call.get(call, by_summary[summary]), by_summary[summary])
    dft_call = _dft_symmetry_calls(calls)
    symmetry_call = {call: pk for call, (_, pk) in symmetry_call.items()}
    records = outputs_of(sorted({*symmetry_call.values(), *dft_call.values()}), 'symmetry', project='attributes')
    for row in rows:
        initial = records.get(dft_call.get(row['thermo_call']), {}).get(row['label'], {})
        final = records.get(symmetry_call.get(row['thermo_call']), {}).get(row['label'], {})
        row.update({key: (final or initial).get(key) for key in SYMMETRY_INITIAL})
        if row['task'] == 'static':  # nothing moved: the final structure is the DFT structure
            row.update(
                spacegroup_final=initial.get('spacegroup_initial'),
                spacegroup_symbol_final=initial.get('spacegroup_symbol_initial'),
                dof_final=initial.get('dof'),
                symmetry_change=None,
            )
        else:
            row.update({key: final.get(key) for key in SYMMETRY_FINAL})
            row['fixsym_energy_gap_per_atom'] = final.get('fixsym_energy_gap_per_atom')


def _symmetry_calls_by_summary(summaries: list[int]) -> dict[int, tuple[Any, int]]:
    """The latest ``analyse_symmetry`` call (ctime, pk) that analysed each summary's calculation."""
    if not summaries:
        return {}
    query = orm.QueryBuilder().append(orm.Dict, filters={'id': {'in': summaries}}, project='id', tag='summary')
    query.append(
        orm.CalcFunctionNode,
        with_incoming='summary',
        edge_filters={'label': {'like': 'summaries__%'}},
        filters={'attributes.process_label': SYMMETRY_LABEL, 'attributes.process_state': 'finished'},
        project=['ctime', 'id'],
    )
    found: dict[int, tuple[Any, int]] = {}
    for summary, ctime, call in query.all():
        found[summary] = max(found.get(summary, (ctime, call)), (ctime, call))
    return found


def _dft_symmetry_calls(calls: list[int]) -> dict[int, int]:
    """Per thermo call, the latest ``analyse_symmetry`` call on the DFT structures of its dataset."""
    query = orm.QueryBuilder().append(orm.CalcFunctionNode, filters={'id': {'in': calls}}, project='id', tag='call')
    query.append(MliapDatasetData, with_outgoing='call', edge_filters={'label': 'dataset'}, tag='dataset')
    query.append(
        orm.CalcFunctionNode,
        with_incoming='dataset',
        edge_filters={'label': 'dataset'},
        filters={'attributes.process_label': SYMMETRY_LABEL, 'attributes.process_state': 'finished'},
        project=['ctime', 'id'],
    )
    latest: dict[int, tuple[Any, int]] = {}
    for call, ctime, symmetry in query.all():
        latest[call] = max(latest.get(call, (ctime, symmetry)), (ctime, symmetry))
    return {call: pk for call, (_, pk) in latest.items()}
