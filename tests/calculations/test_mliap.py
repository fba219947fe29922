"""MliapCalculation inputs: files written, model transfer, port validation, exit-code bands."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
from aiida import orm
from aiida.common.folders import SandboxFolder
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager
from ase.build import bulk

from aiida_mliap.calculations.mliap import MliapCalculation, get_builder_for, structure_link_label
from aiida_mliap.contract import files


def prepare(builder):
    """Run ``prepare_for_submission`` the way the engine does; return (calcinfo, folder contents)."""
    process = instantiate_process(get_manager().get_runner(), builder)
    with SandboxFolder() as folder:
        calcinfo = process.prepare_for_submission(folder)
        written = {name: folder.get_abs_path(name) for name in folder.get_content_list()}
        contents = {
            name: open(path).read() for name, path in written.items() if name in (files.PARAMETERS, files.STRUCTURES)
        }
    return calcinfo, contents


def test_inputs_written(runner_code, mace_model, make_structures):
    structures = make_structures(2)
    builder = get_builder_for(runner_code, mace_model, structures, {'task': 'relax', 'fmax': 0.02})
    calcinfo, contents = prepare(builder)

    parameters = json.loads(contents[files.PARAMETERS])
    assert parameters['fmax'] == 0.02 and parameters['task'] == 'relax'
    assert parameters['model'] == {
        'framework': 'mace',
        'name': 'tiny-mace',
        'sha256': mace_model.sha256,
        'files': ['tiny.model'],
        'default_dtype': None,
        'options': {},
    }
    import io

    frames = ase.io.read(io.StringIO(contents[files.STRUCTURES]), index=':', format='extxyz')
    labels = [structure_link_label(s) for s in structures]
    assert [a.info['label'] for a in frames] == labels and labels[0].startswith('mp_')
    np.testing.assert_allclose(frames[0].positions, structures[0].get_ase().positions, atol=1e-8)

    # The model travels through local_copy_list from the node's repository, never through the sandbox.
    assert calcinfo.local_copy_list == [(mace_model.uuid, 'tiny.model', 'model/tiny.model')]
    assert files.MODEL_DIR not in contents
    assert set(calcinfo.retrieve_list) == {files.RESULTS, files.RESULTS_PARTIAL, files.FINAL_STRUCTURES, files.LOG}


def test_folder_model_copies_every_file(runner_code, matgl_model, make_structures):
    calcinfo, _ = prepare(get_builder_for(runner_code, matgl_model, make_structures(1)))
    copied = sorted(target for _, _, target in calcinfo.local_copy_list)
    assert copied == ['model/model.json', 'model/model.pt', 'model/state.pt']


def test_model_node_has_no_local_paths(mace_model, tiny_mace_file):
    attributes = json.dumps(mace_model.base.attributes.all)
    assert str(tiny_mace_file.parent) not in attributes


def test_remote_checkpoint_is_linked_not_copied(runner_code, mace_model, make_structures, tmp_path):
    remote = orm.RemoteData(remote_path=str(tmp_path), computer=runner_code.computer).store()
    builder = get_builder_for(runner_code, mace_model, make_structures(1))
    builder.remote_checkpoint = remote
    calcinfo, _ = prepare(builder)
    assert calcinfo.local_copy_list == []
    assert calcinfo.remote_symlink_list == [(runner_code.computer.uuid, str(tmp_path), files.MODEL_DIR)]


@pytest.mark.parametrize(
    ('parameters', 'fragment'),
    [
        ({'fmax': -0.05}, '`fmax` must be a positive number'),
        ({'temperature': 300}, 'unknown parameter `temperature`'),
        ({'optimizer': 'GD'}, '`optimizer` must be one of'),
    ],
)
def test_parameters_validated_at_the_port(runner_code, mace_model, make_structures, parameters, fragment):
    with pytest.raises(ValueError, match=fragment):
        prepare(get_builder_for(runner_code, mace_model, make_structures(1), parameters))


def test_empty_and_nan_structures_rejected_at_the_port(runner_code, mace_model, make_structures):
    builder = get_builder_for(runner_code, mace_model, make_structures(1))
    builder.structures['empty'] = orm.StructureData(cell=np.eye(3) * 5)
    with pytest.raises(ValueError, match='`empty` has no atoms'):
        prepare(builder)
    builder = get_builder_for(runner_code, mace_model, make_structures(1))
    broken = bulk('Li', 'bcc', a=3.44)
    broken.positions[0, 1] = np.nan
    builder.structures['broken'] = orm.StructureData(ase=broken)
    with pytest.raises(ValueError, match='`broken` has non-finite coordinates'):
        prepare(builder)


@pytest.mark.parametrize('label', ['T', 'F', 'nan', 'inf'])
def test_labels_that_extxyz_would_mangle_rejected(runner_code, mace_model, make_structures, label):
    builder = get_builder_for(runner_code, mace_model, make_structures(1))
    builder.structures[label] = orm.StructureData(ase=bulk('Li', 'bcc', a=3.44))
    with pytest.raises(ValueError, match=f'`{label}` would not survive extxyz'):
        prepare(builder)


def test_no_structures_rejected(runner_code, mace_model):
    builder = MliapCalculation.get_builder()
    builder.code, builder.model = runner_code, mace_model
    with pytest.raises(ValueError, match='at least one structure'):
        prepare(builder)


def test_duplicate_labels_refused(runner_code, mace_model, make_structures):
    first = make_structures(1)[0]
    twin = orm.StructureData(ase=first.get_ase())
    twin.label = first.label
    with pytest.raises(ValueError, match='share the label'):
        get_builder_for(runner_code, mace_model, [first, twin.store()])


def test_exit_code_bands():
    """Below 400 (input or output problems) a cached node is invalid; 4xx outcomes are results and may be reused,
    except failures of the machine the job ran on (model files, memory, device)."""
    codes = [code for code in MliapCalculation.exit_codes.values() if code.status >= 300]
    assert {code.status for code in codes} >= {301, 302, 303, 304, 305, 400, 401, 402, 403, 404, 405, 406, 410}
    environment = {402, 403, 405, 406}
    for code in codes:
        assert code.invalidates_cache == (code.status < 400 or code.status in environment), code.label
    assert MliapCalculation.CACHE_VERSION is not None


def test_link_labels():
    structure = orm.StructureData(ase=bulk('Li'))
    structure.label = 'mp-19017'
    assert structure_link_label(structure) == 'mp_19017'
    structure.label = '2021 phase/(a)'
    assert structure_link_label(structure) == 's_2021_phase_a'
    structure.label = ''
    assert structure_link_label(structure).startswith('structure_')
