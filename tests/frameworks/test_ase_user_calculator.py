"""Any user's ASE calculator through `--framework ase`: a checkpoint file plus an importable factory, no adapter."""

from __future__ import annotations

import json
import os
import sys

import pytest
from aiida.engine import run_get_node
from click.testing import CliRunner

from aiida_mliap.calculations.mliap import get_builder_for, structure_link_label
from aiida_mliap.cli import cmd_root
from aiida_mliap.data.model import MliapModelData

# The user's own code: a Lennard-Jones "potential" whose parameters are its checkpoint.
FACTORY = """
import json

from ase.calculators.lj import LennardJones


def make_calculator(checkpoint, device):
    with open(checkpoint) as handle:
        parameters = json.load(handle)
    return LennardJones(**parameters)
"""
PARAMETERS = {'sigma': 2.2, 'epsilon': 0.05, 'rc': 6.0, 'smooth': True}


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """A module `user_lj` importable here and by the runner (PYTHONPATH is inherited by the job)."""
    (tmp_path / 'user_lj.py').write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv('PYTHONPATH', f'{tmp_path}:{os.environ.get("PYTHONPATH", "")}')
    checkpoint = tmp_path / 'lj-2.2-0.05.json'
    checkpoint.write_text(json.dumps(PARAMETERS))
    yield checkpoint
    sys.modules.pop('user_lj', None)


def test_user_calculator_registered_and_run_through_the_calcjob(user_package, runner_code, make_structures):
    from ase.calculators.lj import LennardJones

    args = ['setup', 'model', str(user_package), '--framework', 'ase', '--factory', 'user_lj:make_calculator',
            '--energy-scale', 'raw_dft', '--name', 'my-lj']  # fmt: skip
    result = CliRunner().invoke(cmd_root, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    model, created = MliapModelData.get_or_create(user_package, framework='ase', energy_scale='raw_dft')
    assert not created and model.name == 'my-lj'
    assert model.framework == 'ase' and model.options == {'factory': 'user_lj:make_calculator'}
    assert model.checkpoint_facts['factory'] == 'user_lj:make_calculator' and len(model.sha256) == 64

    structures = make_structures(3)
    outputs, node = run_get_node(get_builder_for(runner_code, model, structures, {'task': 'static', 'device': 'cpu'}))
    assert node.is_finished_ok, node.exit_message
    assert node.outputs.summary['environment']['model_adaptations']['factory'] == 'user_lj:make_calculator'
    for structure in structures:
        atoms = structure.get_ase()
        atoms.calc = LennardJones(**PARAMETERS)
        result = outputs['results'][structure_link_label(structure)]
        assert result['energy'] == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
        assert result['model_sha256'] == model.sha256


def test_unimportable_factory_refused_at_registration(user_package):
    """A factory that cannot be imported is refused, and so is the same checkpoint under another factory."""
    other = user_package.with_name('lj-other.json')
    other.write_text(json.dumps({**PARAMETERS, 'sigma': 2.3}))
    before = MliapModelData.collection.count()
    for factory, message in (('user_lj:nothing', 'cannot import the factory'), ('user_lj', 'package.module:function')):
        args = ['setup', 'model', str(other), '--framework', 'ase', '--factory', factory,
                '--energy-scale', 'raw_dft']  # fmt: skip
        result = CliRunner().invoke(cmd_root, args)
        assert result.exit_code != 0 and message in result.output, result.output
    assert MliapModelData.collection.count() == before
