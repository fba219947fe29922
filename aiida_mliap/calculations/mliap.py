"""``MliapCalculation``: one MLIAP model on many structures, static or relaxation, in one job."""

from __future__ import annotations

import io
import json

import numpy as np
from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.common.folders import Folder
from aiida.engine import CalcJobProcessSpec

from ..contract import files
from ..contract.labels import link_label
from ..contract.parameters import validate_parameters
from ..data.model import MliapModelData
from ..data.result import MliapResultData
from .base import MliapBaseCalculation


def validate_parameters_port(value: orm.Dict | None, _) -> str | None:
    if value is not None:
        return validate_parameters(value.get_dict())
    return None


def validate_structures(value: dict, _) -> str | None:
    if not value:
        return 'give at least one structure in the `structures` namespace'
    from ase.io.extxyz import key_val_str_to_dict

    problems = []
    for label, structure in value.items():
        if key_val_str_to_dict(f'label={label}')['label'] != label:
            problems.append(f'`{label}` would not survive extxyz (it reads back as a number or boolean): rename it')
        elif not structure.sites:
            problems.append(f'`{label}` has no atoms')
        elif not np.all(np.isfinite([site.position for site in structure.sites])):
            problems.append(f'`{label}` has non-finite coordinates')
    return '; '.join(problems) or None


class MliapCalculation(MliapBaseCalculation):
    """Run ``aiida-mliap-run`` on a batch of structures; every structure gets its own result node."""

    CACHE_VERSION = 2  # 2: environment failures invalidate the cache; dtype recorded

    @classmethod
    def define(cls, spec: CalcJobProcessSpec) -> None:
        super().define(spec)
        spec.input('model', valid_type=MliapModelData, help='The MLIAP checkpoint (with its sha256).')
        spec.input(
            'remote_checkpoint',
            valid_type=orm.RemoteData,
            required=False,
            help='The same checkpoint pre-installed on the computer: linked instead of copied; the runner '
            "still refuses it unless its sha256 equals the model node's.",
        )
        spec.input_namespace(
            'structures',
            valid_type=orm.StructureData,
            dynamic=True,
            validator=validate_structures,
            help='Structures to evaluate, keyed by a label that the outputs repeat.',
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_parameters_port,
            help='task, relax_cell, fmax, max_steps, optimizer, fix_symmetry, symprec, dtype, device, engine, '
            'batch_budget, trajectory, keep_forces (contract.parameters).',
        )
        spec.inputs['metadata']['options']['parser_name'].default = 'mliap.calc'
        spec.inputs['metadata']['options']['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        spec.inputs['metadata']['options']['withmpi'].default = False

        spec.output_namespace('results', valid_type=MliapResultData, dynamic=True, help='One result per structure.')
        spec.output_namespace(
            'relaxed_structures', valid_type=orm.StructureData, dynamic=True, help='Final structures of relaxations.'
        )
        spec.output_namespace(
            'trajectories',
            valid_type=orm.ArrayData,
            dynamic=True,
            help='Relaxation steps per structure (energy per atom, largest force, volume; frames if asked): only with '
            'the `trajectory` parameter.',
        )
        spec.output_namespace(
            'forces',
            valid_type=orm.ArrayData,
            dynamic=True,
            help="Every atom's force (eV/Å) per structure, array `forces`: only with the `keep_forces` parameter.",
        )
        spec.output('summary', valid_type=orm.Dict, help='Counts and labels by status, environment, timing.')
        spec.default_output_node = 'summary'

        add = cls.add_exit_code
        add(
            spec,
            301,
            'ERROR_MISSING_RESULTS',
            'The runner wrote no results file (no longer returned: such a job is one that stopped early, 304).',
        )
        add(spec, 302, 'ERROR_UNREADABLE_RESULTS', 'The results file could not be read: {message}')
        add(spec, 303, 'ERROR_UNREADABLE_STRUCTURES', 'The final structures could not be read: {message}')
        add(spec, 304, 'ERROR_INCOMPLETE_RESULTS', 'The runner stopped early: {missing} structures have no result.')
        add(spec, 305, 'ERROR_RUNNER_REFUSED_INPUT', 'The runner refused its input: {message}')
        add(spec, 400, 'ERROR_SOME_STRUCTURES_FAILED', 'Some structures failed: {counts}')
        add(spec, 401, 'ERROR_ALL_STRUCTURES_FAILED', 'Every structure failed: {counts}')
        add(
            spec,
            402,
            'ERROR_MODEL_HASH_MISMATCH',
            'The model files do not match the model node: {message}',
            environment=True,
        )
        add(spec, 403, 'ERROR_OUT_OF_MEMORY', 'Out of memory for some structures: {counts}', environment=True)
        add(spec, 404, 'ERROR_UNSUPPORTED_ELEMENT', "The model does not cover some structures' elements: {counts}")
        add(spec, 405, 'ERROR_MODEL_LOAD_FAILED', 'The model could not be loaded: {message}', environment=True)
        add(spec, 406, 'ERROR_DEVICE_UNAVAILABLE', 'The requested device is not available: {message}', environment=True)
        add(spec, 410, 'ERROR_UNCONVERGED', 'Some relaxations did not converge: {counts}')

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        parameters = self.inputs.parameters.get_dict() if 'parameters' in self.inputs else {}
        model: MliapModelData = self.inputs.model
        payload = {**parameters, 'model': model.runner_spec()}
        with folder.open(files.PARAMETERS, 'w') as handle:
            json.dump(payload, handle, indent=1)

        with folder.open(files.STRUCTURES, 'w') as handle:
            handle.write(structures_to_extxyz(self.inputs.structures))

        calcinfo = CalcInfo()
        if 'remote_checkpoint' in self.inputs:
            remote = self.inputs.remote_checkpoint
            calcinfo.remote_symlink_list = [(remote.computer.uuid, remote.get_remote_path(), files.MODEL_DIR)]
            calcinfo.local_copy_list = []
        else:
            calcinfo.local_copy_list = [(model.uuid, name, f'{files.MODEL_DIR}/{name}') for name in model.filenames]
        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        # The cores this job was given (AiiDA's resources): the runner's torch threads, so that jobs sharing a machine
        # do not oversubscribe it.
        cores = self.node.get_option('resources').get('num_cores_per_mpiproc')
        codeinfo.cmdline_params = ['.', *(['--threads', str(cores)] if cores else [])]
        codeinfo.stdout_name = files.LOG
        calcinfo.codes_info = [codeinfo]
        calcinfo.retrieve_list = [files.RESULTS, files.RESULTS_PARTIAL, files.FINAL_STRUCTURES, files.LOG]
        return calcinfo


def structures_to_extxyz(structures: dict[str, orm.StructureData]) -> str:
    """All structures in one extxyz text, each tagged with its namespace label."""
    import ase.io

    frames = []
    for label, structure in structures.items():
        atoms = structure.get_ase()
        atoms.info = {'label': label}
        atoms.set_tags(0)
        frames.append(atoms)
    buffer = io.StringIO()
    ase.io.write(buffer, frames, format='extxyz')
    return buffer.getvalue()


def structure_link_label(structure: orm.StructureData) -> str:
    """The namespace label of a structure: its node label made link-safe (``mp-19017`` -> ``mp_19017``),
    else its uuid; stable across archives so that queries can join on it."""
    try:
        return link_label(structure.label)
    except ValueError:
        return f'structure_{structure.uuid.split("-")[0]}'


def get_builder_for(
    code: orm.AbstractCode,
    model: MliapModelData,
    structures: list[orm.StructureData],
    parameters: dict | None = None,
    options: dict | None = None,
):
    """A builder for ``structures`` (labelled by :func:`structure_link_label`), refusing duplicate labels."""
    labelled: dict[str, orm.StructureData] = {}
    for structure in structures:
        label = structure_link_label(structure)
        if label in labelled:
            raise ValueError(f'two structures share the label `{label}`: give them distinct node labels')
        labelled[label] = structure
    builder = MliapCalculation.get_builder()
    builder.code = code
    builder.model = model
    builder.structures = labelled
    if parameters:
        builder.parameters = orm.Dict(parameters)
    if options:
        builder.metadata.options = options
    return builder
