"""The runner on its own (no AiiDA): hashing, parameters, structure checks, failure isolation, fatal errors."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from aiida_mliap.contract import files
from aiida_mliap.contract.hashing import sha256_of_file, sha256_of_model
from aiida_mliap.contract.parameters import DEFAULTS, validate_parameters
from aiida_mliap.contract.status import Status
from aiida_mliap.engine.checks import check_structure
from aiida_mliap.engine.runner import main


def test_single_file_hash_is_the_file_sha256(tmp_path):
    path = tmp_path / 'model.pt'
    path.write_bytes(b'weights')
    assert sha256_of_model(path) == sha256_of_file(path) == hashlib.sha256(b'weights').hexdigest()


def test_folder_hash_covers_names_and_contents(tmp_path):
    folder = tmp_path / 'm'
    folder.mkdir()
    (folder / 'a.json').write_text('{}')
    (folder / 'b.pt').write_bytes(b'1')
    first = sha256_of_model(folder)
    (folder / 'b.pt').write_bytes(b'2')
    assert sha256_of_model(folder) != first
    (folder / 'b.pt').write_bytes(b'1')
    (folder / 'b.pt').rename(folder / 'c.pt')
    assert sha256_of_model(folder) != first


@pytest.mark.parametrize(
    ('parameters', 'fragment'),
    [
        ({'fmax': -0.1}, '`fmax` must be a positive number'),
        ({'fmax': 'small'}, '`fmax` must be a positive number'),
        ({'max_steps': 0}, '`max_steps` must be a positive integer'),
        ({'max_steps': True}, '`max_steps` must be a positive integer'),
        ({'optimizer': 'SGD'}, '`optimizer` must be one of'),
        ({'task': 'md'}, '`task` must be one of'),
        ({'relax_cel': True}, 'unknown parameter `relax_cel`'),
        ({'dtype': 'float16'}, '`dtype` must be null'),
        ({'trajectory': True}, '`trajectory` must be null, "steps" or "frames"'),
        ({'keep_forces': 'yes'}, '`keep_forces` must be true or false'),
    ],
)
def test_parameter_validation_names_the_problem(parameters, fragment):
    assert fragment in validate_parameters(parameters)


def test_defaults_are_valid():
    assert validate_parameters(DEFAULTS) is None


def test_applicable_parameters_are_those_of_the_task():
    from aiida_mliap.contract.parameters import applicable

    static = applicable({'task': 'static', 'fmax': 0.01})
    assert 'fmax' not in static and 'optimizer' not in static and static['engine'] == 'vectorized'
    relax = applicable({'task': 'relax'})
    assert relax['fmax'] == DEFAULTS['fmax'] and 'symprec' not in relax
    assert 'symprec' in applicable({'task': 'relax', 'fix_symmetry': True})


def test_structure_checks():
    nacl = bulk('NaCl', 'rocksalt', a=5.64)
    assert check_structure(nacl, frozenset({11, 17})) is None
    assert check_structure(Atoms(), None)[0] is Status.INVALID_STRUCTURE
    status, message = check_structure(nacl, frozenset({11}))
    assert status is Status.UNSUPPORTED_ELEMENT and 'Cl' in message
    overlapping = Atoms('Li2', positions=[[0, 0, 0], [0.3, 0, 0]], cell=[5, 5, 5], pbc=True)
    status, message = check_structure(overlapping, None)
    assert status is Status.INVALID_STRUCTURE and 'overlap' in message and '0.300' in message
    # Overlap through the periodic boundary counts too.
    across = Atoms('Li2', positions=[[0.1, 0, 0], [4.8, 0, 0]], cell=[5, 5, 5], pbc=True)
    assert check_structure(across, None)[0] is Status.INVALID_STRUCTURE
    broken = nacl.copy()
    broken.positions[0, 0] = np.nan
    assert 'non-finite' in check_structure(broken, None)[1]


def write_inputs(directory: Path, frames: list[Atoms], model_path: Path, framework: str, **parameters) -> None:
    """An input folder exactly as the CalcJob writes it."""
    (directory / files.MODEL_DIR).mkdir(parents=True)
    shutil.copy(model_path, directory / files.MODEL_DIR / model_path.name)
    model = {'framework': framework, 'name': 'x', 'sha256': sha256_of_file(model_path), 'files': [model_path.name]}
    (directory / files.PARAMETERS).write_text(json.dumps({**parameters, 'model': model}))
    ase.io.write(directory / files.STRUCTURES, frames, format='extxyz')


def labelled(atoms: Atoms, label: str) -> Atoms:
    atoms = atoms.copy()
    atoms.info = {'label': label}
    return atoms


def test_runner_isolates_failures(tmp_path, tiny_mace_file, capsys):
    """Valid structures keep their results when neighbours are bad; each failure is named."""
    good = labelled(bulk('Li', 'bcc', a=3.44), 'li')
    sodium = labelled(bulk('Na', 'bcc', a=4.23), 'sodium')
    overlap = labelled(Atoms('Li2', positions=[[0, 0, 0], [0.2, 0, 0]], cell=[6, 6, 6], pbc=True), 'overlap')
    write_inputs(tmp_path, [good, sodium, overlap], tiny_mace_file, 'mace', task='static')
    assert main([str(tmp_path), '--threads', '1']) == 0
    results = {r['label']: r for r in json.loads((tmp_path / files.RESULTS).read_text())['results']}
    assert results['li']['status'] == 'ok' and np.isfinite(results['li']['energy'])
    assert results['sodium']['status'] == 'unsupported_element' and 'Na' in results['sodium']['message']
    assert results['overlap']['status'] == 'invalid_structure'
    assert set(results['li']) == set(results['sodium']), 'every record has the same keys'
    partial = [json.loads(line) for line in (tmp_path / files.RESULTS_PARTIAL).read_text().splitlines()]
    assert [r['label'] for r in partial] == ['li', 'sodium', 'overlap']
    out = capsys.readouterr().out
    assert '[3/3] overlap invalid_structure' in out and 'structures/s' in out


def test_runner_refuses_swapped_model(tmp_path, tiny_mace_file):
    write_inputs(tmp_path, [labelled(bulk('Li', 'bcc', a=3.44), 'li')], tiny_mace_file, 'mace', task='static')
    (tmp_path / files.MODEL_DIR / tiny_mace_file.name).write_bytes(b'not the model')
    assert main([str(tmp_path)]) == 2
    fatal = json.loads((tmp_path / files.RESULTS).read_text())['fatal_error']
    assert fatal['kind'] == 'model_hash_mismatch'


def test_runner_reports_corrupt_model(tmp_path):
    corrupt = tmp_path / 'corrupt.model'
    corrupt.write_bytes(b'\x80\x04garbage')
    work = tmp_path / 'work'
    write_inputs(work, [labelled(bulk('Li', 'bcc', a=3.44), 'li')], corrupt, 'mace', task='static')
    assert main([str(work)]) == 2
    fatal = json.loads((work / files.RESULTS).read_text())['fatal_error']
    assert fatal['kind'] == 'model_load_failed' and 'mace could not load' in fatal['message']


def test_runner_refuses_bad_parameters(tmp_path, tiny_mace_file):
    write_inputs(tmp_path, [labelled(bulk('Li', 'bcc', a=3.44), 'li')], tiny_mace_file, 'mace', fmax=-1)
    assert main([str(tmp_path)]) == 2
    fatal = json.loads((tmp_path / files.RESULTS).read_text())['fatal_error']
    assert fatal['kind'] == 'invalid_input' and 'fmax' in fatal['message']
