"""The original M3GNet (matgl <= 2.x weights) under matgl 4.x: detected, run with its own aggregation, or refused."""

from __future__ import annotations

import json
import shutil

import matgl
import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from click.testing import CliRunner

from aiida_mliap.calculations.dataset import import_reference_file, imported_nodes
from aiida_mliap.calculations.mliap import get_builder_for
from aiida_mliap.calculations.tables import tabulate
from aiida_mliap.calculations.thermo import compute_thermodynamics, thermo_records, thermodynamics_inputs
from aiida_mliap.cli import cmd_root
from aiida_mliap.contract.hashing import sha256_of_model
from aiida_mliap.data.model import MliapModelData
from aiida_mliap.frameworks import get_framework
from aiida_mliap.frameworks.matgl import MatglFramework
from aiida_mliap.frameworks.matgl_legacy import UnestablishedConventionError

MOS_REFERENCE = -10.824362  # CsCl-type MoS, a = 4.0 Å: matgl's own test value for this checkpoint (shared README)
FILES = ['README.md', 'model.json', 'model.pt', 'state.pt']


@pytest.fixture(scope='module')
def m3gnet_dir(shared_data):
    return shared_data / 'models' / 'matgl' / 'M3GNet-MP-2021.2.8-PES'


def mos_energy(calculator) -> float:
    atoms = Atoms('MoS', scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[4.0] * 3, pbc=True)
    atoms.calc = calculator
    return atoms.get_potential_energy()


def test_mos_reference_value(m3gnet_dir):
    loaded = get_framework('matgl').load(m3gnet_dir, FILES, 'cpu', 'float32', {})
    assert mos_energy(loaded.calculator) == pytest.approx(MOS_REFERENCE, abs=1e-5)
    assert 'destination-atom node update in 3 M3GNet layers' in loaded.adaptations['aggregation']
    # What matgl 4.x makes of the same folder by itself, and that nothing global was changed by the adapter:
    from matgl.ext.ase import PESCalculator

    as_shipped = mos_energy(PESCalculator(matgl.load_model(m3gnet_dir), stress_unit='eV/A3'))
    assert as_shipped == pytest.approx(-7.4539, abs=1e-3)


def legacy_copy(tiny_matgl_dir, tmp_path, metadata=None):
    """The tiny model's folder as an older matgl would have written it (no `dropout` argument): unknown weights."""
    folder = tmp_path / 'legacy-m3gnet'
    shutil.copytree(tiny_matgl_dir, folder)
    config = json.loads((folder / 'model.json').read_text())
    del config['kwargs']['model']['init_args']['dropout']
    config['metadata'] = metadata
    (folder / 'model.json').write_text(json.dumps(config))
    return folder


def test_unestablished_convention_is_refused_everywhere(tiny_matgl_dir, tmp_path):
    folder = legacy_copy(tiny_matgl_dir, tmp_path)
    framework = get_framework('matgl')
    with pytest.raises(UnestablishedConventionError, match=r'lacks M3GNet.dropout.*"matgl_version"'):
        framework.load(folder, ['model.json', 'model.pt', 'state.pt'], 'cpu', 'float32', {})
    with pytest.raises(ValueError, match='cannot be trusted'):
        MliapModelData.get_or_create(folder, framework='matgl', name='legacy', energy_scale='raw_dft')
    result = CliRunner().invoke(cmd_root, ['setup', 'model', str(folder), '--framework', 'matgl', '--energy-scale',
                                           'raw_dft'])  # fmt: skip
    assert result.exit_code != 0 and 'refusing' in result.output and 'matgl_version' in result.output
    assert not orm.QueryBuilder().append(MliapModelData, filters={'attributes.name': 'legacy-m3gnet'}).count()


def test_declared_convention_is_used(tiny_matgl_dir, tmp_path, small_lifepo_atoms):
    atoms = small_lifepo_atoms[0].copy()
    framework = get_framework('matgl')
    current = framework.load(tiny_matgl_dir, ['model.json', 'model.pt', 'state.pt'], 'cpu', 'float32', {})
    assert current.adaptations == {}
    atoms.calc = current.calculator
    energy_as_saved = atoms.get_potential_energy()

    old = legacy_copy(tiny_matgl_dir, tmp_path, metadata={'matgl_version': '2.1.0'})
    assert framework.checkpoint_facts(old)['aggregation'] == 'destination'
    legacy = framework.load(old, ['model.json', 'model.pt', 'state.pt'], 'cpu', 'float32', {})
    assert 'in 1 M3GNet layers (declared in model.json metadata)' in legacy.adaptations['aggregation']
    atoms.calc = legacy.calculator
    # Same weights, the other aggregation (an untrained model's energies barely depend on it: 2e-5 eV here).
    assert atoms.get_potential_energy() != pytest.approx(energy_as_saved, abs=1e-6)
    newer = legacy_copy(tiny_matgl_dir, tmp_path / 'newer', metadata={'matgl_version': '3.0.0'})
    assert framework.checkpoint_facts(newer)['aggregation'] == 'source'
    # A legacy checkpoint of another architecture: no known remedy, refused before anything loads.
    other = legacy_copy(tiny_matgl_dir, tmp_path / 'other', metadata={'matgl_version': '2.1.0'})
    config = json.loads((other / 'model.json').read_text())
    config['kwargs']['model']['@class'] = 'TensorNet'
    (other / 'model.json').write_text(json.dumps(config))
    with pytest.raises(UnestablishedConventionError, match='no legacy support for TensorNet'):
        framework.checkpoint_facts(other)


def test_unverified_matgl_fails_loudly_for_legacy_checkpoints_only(m3gnet_dir, tiny_matgl_dir, monkeypatch):
    monkeypatch.setattr(MatglFramework, 'version', lambda self: '4.2.0')
    framework = get_framework('matgl')
    with pytest.raises(RuntimeError, match=r'matgl 4.2.0 is not verified .*verified: 4.1.2'):
        framework.load(m3gnet_dir, FILES, 'cpu', 'float32', {})
    with pytest.raises(ValueError, match=r'matgl 4\.2\.0 is not verified'):
        MliapModelData.get_or_create(m3gnet_dir, framework='matgl', name='m3gnet-unverified')
    framework.load(tiny_matgl_dir, ['model.json', 'model.pt', 'state.pt'], 'cpu', 'float32', {})  # current: runs


def test_registration_knows_the_energy_scale(m3gnet_dir):
    result = CliRunner().invoke(cmd_root, ['setup', 'model', str(m3gnet_dir), '--framework', 'matgl'])
    assert result.exit_code == 0, result.output
    node = MliapModelData.find(sha256_of_model(m3gnet_dir))
    assert node.name == 'M3GNet-MP-2021.2.8-PES' and node.energy_scale == 'raw_dft'
    assert sorted(node.filenames) == FILES
    assert node.checkpoint_facts['aggregation'] == 'destination'
    assert 'energy_scale: raw_dft' in result.output and 'aggregation: destination' in result.output
    wrong = CliRunner().invoke(
        cmd_root, ['setup', 'model', str(m3gnet_dir), '--framework', 'matgl', '--energy-scale', 'mp2020_corrected']
    )
    # Same sha256, contradicting scale: refused, never silently kept (issue 29).
    assert wrong.exit_code == 1 and 'energy_scale raw_dft, not mp2020_corrected' in wrong.output


def test_calcjob_equals_adapter_and_mp2020_path(shared_data, m3gnet_dir, runner_code):
    """20 Li-Fe-P-O compounds: single points through the CalcJob equal the adapter called here, and M3GNet's raw
    energies, MP2020-corrected by compute_thermodynamics, are within 60 meV/atom MAE of MP's corrected energies.

    The compounds are the first 20 (by MP id) with oxygen, at least three elements and at most 24 atoms: where the
    corrections (oxide, Fe with U) apply. Elemental oxygen cells far from equilibrium (MP also holds 1-atom O2 cells
    3 eV/atom above the ground state) are outside what M3GNet was trained for and would test the model, not the path.
    """
    model, _ = MliapModelData.get_or_create(m3gnet_dir, framework='matgl', name='M3GNet-MP-2021.2.8-PES')
    _, dataset, _ = import_reference_file(shared_data / 'mp' / 'Li-Fe-P-O.json.gz', 'matgl-legacy/LiFePO')
    structures = imported_nodes([dataset], 'structures')[dataset.sha256]
    labels = [
        label
        for label, structure in sorted(structures.items())
        if len(structure.sites) <= 24 and 'O' in structure.get_symbols_set() and len(structure.get_symbols_set()) >= 3
    ][:20]
    chosen = [structures[label] for label in labels]
    assert len(chosen) == 20 and {'Li', 'Fe', 'P'} <= {k for s in chosen for k in s.get_symbols_set()}

    results, node = run_get_node(get_builder_for(runner_code, model, chosen, {'task': 'static', 'device': 'cpu'}))
    assert node.is_finished_ok, node.exit_message
    assert 'destination' in results['summary']['environment']['model_adaptations']['aggregation']

    calculator = get_framework('matgl').load(m3gnet_dir, FILES, 'cpu', 'float32', {}).calculator
    for label, structure in zip(labels, chosen, strict=True):
        atoms = structure.get_ase()
        atoms.calc = calculator
        result = results['results'][label]
        assert result['energy_per_atom'] == pytest.approx(atoms.get_potential_energy() / len(atoms), abs=1e-5)

    references = imported_nodes([dataset], 'references')[dataset.sha256]
    tables = tabulate(node.inputs.parameters, references, dict(results['results']), batch_size=200)
    _, thermo = compute_thermodynamics.run_get_node(**thermodynamics_inputs(model, tables, [dataset]))
    records = thermo_records(thermo)
    corrected = np.array([records[label]['energy_per_atom_model'] for label in labels])
    raw = np.array([records[label]['energy_per_atom_model_raw'] for label in labels])
    dft = np.array([records[label]['energy_per_atom_dft'] for label in labels])
    assert np.abs(corrected - dft).mean() < 0.060
    assert np.abs(raw - dft).mean() > 0.3  # the corrections were needed: this is the raw-scale model
