"""The softening measurement with real pw.x and CHGNet on Si: DFT and model forces on perturbed cells, the slope."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk
from click.testing import CliRunner

pytestmark = pytest.mark.skipif(shutil.which('pw.x') is None, reason='no pw.x: `make test` installs it as root')


def silicon(label: str, coincident: bool = False) -> orm.StructureData:
    atoms = bulk('Si', 'diamond', a=5.43)
    if coincident:  # pw.x refuses it at once: "atoms # 1 and # 2 overlap"
        atoms.positions[1] = atoms.positions[0]
    node = orm.StructureData(ase=atoms)
    node.label = label
    return node.store()


def builder_for(dft_setup, runner_code, chgnet_model, parents, perturbations):
    from aiida_mliap.workchains.softening import MliapSofteningWorkChain

    code, family = dft_setup
    builder = MliapSofteningWorkChain.get_builder_from_protocol(
        code, parents, {'chgnet': chgnet_model}, {'chgnet': runner_code}, family
    )
    builder.perturbations = orm.Dict(perturbations)
    builder.kpoints_distance = orm.Float(0.5)  # a test's budget; the default is denser
    builder.mp_settings = orm.Bool(False)  # no spin for Si: half the cost
    builder.device = orm.Str('cpu')
    return builder


def test_softening_of_rattled_silicon(dft_setup, runner_code, chgnet_model, li_o_group, tmp_path):
    from aiida_mliap.analysis.softening import load_force_pairs, softening_frame

    parent = silicon('mp-149')
    spec = {'rattle': [0.05, 0.1], 'volume': [-0.02], 'seed': 3}
    _, node = run_get_node(builder_for(dft_setup, runner_code, chgnet_model, {'si': parent}, spec))
    assert node.is_finished_ok, node.exit_message
    record = node.outputs.softening
    assert record['failures'] == {'dft': {}, 'models': {}} and record['n_configurations'] == 3

    # The DFT forces of each configuration sum to ~0; the same configurations went to the model, on one k mesh.
    scf = {call.label: call for call in node.called if call.process_label == 'MliapPwBaseWorkChain'}
    # The largest rattle again with one setting tightened at a time: the DFT values' numerical error.
    checks = {check: scf.pop(f'mp_149_rattle_1_{check}') for check in ('kpoints', 'smearing', 'cutoff')}
    assert sorted(scf) == ['mp_149', 'mp_149_rattle_0', 'mp_149_rattle_1', 'mp_149_volume_0']
    assert len({call.inputs.kpoints.uuid for call in scf.values()}) == 1
    meshes = [call.inputs.kpoints.get_kpoints_mesh()[0] for call in (scf['mp_149'], checks['kpoints'])]
    assert all(dense > coarse for coarse, dense in zip(*meshes, strict=True))
    base = scf['mp_149_rattle_1'].inputs.pw.parameters['SYSTEM']
    smearing, cutoff = (checks[check].inputs.pw.parameters['SYSTEM'] for check in ('smearing', 'cutoff'))
    assert smearing['degauss'] == base['degauss'] / 2 and smearing['ecutwfc'] == base['ecutwfc']
    assert cutoff['ecutwfc'] == pytest.approx(1.3 * base['ecutwfc']) and cutoff['degauss'] == base['degauss']
    assert (
        checks['smearing'].inputs.kpoints.uuid
        == checks['cutoff'].inputs.kpoints.uuid
        == scf['mp_149'].inputs.kpoints.uuid
    )
    compared = scf['mp_149_rattle_1'].outputs.output_trajectory.get_array('forces')[-1]
    for check, call in checks.items():
        change = np.abs(call.outputs.output_trajectory.get_array('forces')[-1] - compared).max()
        error = record['numerical_error'][check]
        assert error['per_configuration']['mp_149_rattle_1']['forces'] == pytest.approx(change, abs=1e-12)
        assert error['largest']['forces'] == pytest.approx(change, abs=1e-12) and change < 0.05  # eV/Å
    dft_forces = {label: call.outputs.output_trajectory.get_array('forces')[-1] for label, call in scf.items()}
    for label in ('mp_149_rattle_0', 'mp_149_rattle_1'):
        assert np.abs(dft_forces[label]).max() > 0.05 and np.abs(dft_forces[label].sum(axis=0)).max() < 1e-3
    model = next(call for call in node.called if call.process_label == 'MliapBaseWorkChain')
    model_forces = {label: array.get_array('forces') for label, array in model.outputs.forces.items()}

    # The stored slope against a numpy recomputation from the exported forces (DFT and model arrays as stored).
    configurations = ('mp_149_rattle_0', 'mp_149_rattle_1', 'mp_149_volume_0')
    x = np.concatenate([dft_forces[label].ravel() for label in configurations])
    y = np.concatenate([model_forces[label].ravel() for label in configurations])
    stored = softening_frame(node).set_index('quantity')
    assert stored.loc['forces', 'slope'] == pytest.approx(x @ y / (x @ x), abs=1e-10)
    assert stored.loc['forces', 'n'] == 18 and stored.loc['forces', 'slope_ci95'] is None  # one parent: no interval

    pairs = load_force_pairs(node)
    forces = pairs[pairs['quantity'] == 'forces']
    assert len(forces) == 18 and set(forces['model']) == {chgnet_model.name}
    assert forces['dft'].to_numpy() @ forces['mliap'].to_numpy() == pytest.approx(x @ y, rel=1e-12)
    # Stress in one sign convention: the compressed cell is under compression for DFT and for the model alike.
    squeezed = pairs[(pairs['configuration'] == 'mp_149_volume_0') & (pairs['quantity'] == 'stress')]
    normal = squeezed[squeezed['component'].isin(['xx', 'yy', 'zz'])]
    assert (normal['dft'] < -0.5).all() and (normal['mliap'] < -0.5).all()  # GPa, tension positive
    energy = pairs[pairs['quantity'] == 'energy']
    assert len(energy) == 3 and (energy['dft'] > 0).all()  # every perturbation costs DFT energy
    check_the_report_carries_the_softening(node, x @ y / (x @ x), runner_code, chgnet_model, li_o_group, tmp_path)


def check_the_report_carries_the_softening(node, slope, runner_code, chgnet_model, li_o_group, tmp_path):
    """`report --softening`: the measured slope beside the benchmark's Ehull slope of the same model, in
    metrics.json, the page, two figures and the pairs as CSV; a node that is no softening is refused."""
    from aiida_mliap.analysis.softening import load_force_pairs
    from aiida_mliap.cli import cmd_root
    from aiida_mliap.workchains.benchmark import MliapBenchmarkWorkChain

    group, _ = li_o_group(4, prefix='softening')
    builder = MliapBenchmarkWorkChain.get_builder_from_protocol(
        runner_code, {'chgnet': chgnet_model}, group, protocol='fast', tasks=['static'],
        overrides={'parameters': {'device': 'cpu'}},
    )  # fmt: skip
    _, benchmark = run_get_node(builder)
    assert benchmark.is_finished_ok, benchmark.exit_message
    refused = CliRunner().invoke(cmd_root, ['report', str(benchmark.pk), '-o', str(tmp_path / 'no'),
                                            '--softening', str(benchmark.pk)])  # fmt: skip
    assert refused.exit_code == 2 and 'no softening' in refused.output and not (tmp_path / 'no').exists()
    out = tmp_path / 'report'
    result = CliRunner().invoke(cmd_root, ['report', str(benchmark.pk), '-o', str(out), '--softening', str(node.pk)],
                                catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads((out / 'metrics.json').read_text())
    (row,) = document['softening_forces']['models']
    (compression,) = document['softening']  # the benchmark's Ehull slope, the same model
    assert row['model'] == chgnet_model.name and row['sha256'] == chgnet_model.sha256
    assert row['slope'] == pytest.approx(slope, abs=1e-10) and row['ehull_slope'] == compression['slope']
    assert row['ehull_task'] == 'static' and row['verdict'].endswith('(no interval: 1 parents, fewer than 5)')
    assert document['softening_forces']['association']['words'].startswith('cannot tell: 1 model(s)')
    written = pd.read_csv(out / 'softening_pairs.csv')
    expected = load_force_pairs(node)
    assert len(written) == len(expected) and np.allclose(written['mliap'], expected['mliap'], atol=1e-12)
    assert {'force_parity.png', 'softening_vs_compression.png'} <= {path.name for path in (out / 'figures').iterdir()}
    page = (out / 'report.html').read_text()
    assert 'Softening, measured' in page and 'model forces vs DFT forces (softening measured)' in page


def test_a_failed_scf_leaves_the_other_configurations(dft_setup, runner_code, chgnet_model):
    spec = {'volume': [-0.02], 'shear': [0.04], 'seed': 0}
    parents = {'good': silicon('si-good'), 'broken': silicon('si-broken', coincident=True)}
    _, node = run_get_node(builder_for(dft_setup, runner_code, chgnet_model, parents, spec))
    assert node.is_finished_ok, node.exit_message
    failures = node.outputs.softening['failures']['dft']
    checks = [f'si_broken_volume_0_{check}' for check in ('cutoff', 'kpoints', 'smearing')]
    assert sorted(failures) == ['si_broken', 'si_broken_shear_0', 'si_broken_volume_0', *checks]
    assert all('exit status' in reason for reason in failures.values())
    rows = {row['quantity']: row for row in node.outputs.softening['softening']}
    assert rows['stress']['n'] == 18 and rows['stress']['n_parents'] == 1  # the good parent's three cells
    assert rows['forces']['n'] == 12 and rows['energy']['n'] == 2


def test_bad_input_is_refused_before_anything_is_stored(dft_setup, runner_code, chgnet_model, mace_model):
    from aiida_mliap.workchains.softening import MliapSofteningWorkChain

    assert mace_model.elements == {'H', 'Li', 'O', 'P', 'Fe'} and len(chgnet_model.elements) == 94  # at registration
    large = orm.StructureData(ase=bulk('Si', 'diamond', a=5.43, cubic=True).repeat((2, 1, 1)))
    large.label = 'si-16'
    large.store()
    before = orm.QueryBuilder().append(orm.Node).count()
    builder = builder_for(dft_setup, runner_code, chgnet_model, {'large': large}, {'rattle': [0.05], 'seed': 0})
    with pytest.raises(ValueError, match=r'larger than the DFT budget of 8 atoms: \{.large.: 16\}'):
        run_get_node(builder)
    twins = builder_for(dft_setup, runner_code, chgnet_model, {'a': silicon('si'), 'b': silicon('si')},
                        {'rattle': [0.05], 'seed': 0})  # fmt: skip
    with pytest.raises(ValueError, match=r"parents share a label .*\['si'\]"):
        run_get_node(twins)
    mismatched = builder_for(dft_setup, runner_code, chgnet_model, {'si': silicon('si')}, {'rattle': [0.05], 'seed': 0})
    mismatched.codes = {}
    with pytest.raises(ValueError, match='one runner code per model'):
        run_get_node(mismatched)
    lacking = builder_for(dft_setup, runner_code, chgnet_model, {'si': silicon('si-2')}, {'rattle': [0.05], 'seed': 0})
    lacking.models, lacking.codes = (
        {'chgnet': chgnet_model, 'mace': mace_model},
        {'chgnet': runner_code, 'mace': runner_code},
    )
    with pytest.raises(
        ValueError, match=r"models lack elements of these parents .*\{'tiny-mace': \{'si': \['Si'\]\}\}"
    ):
        run_get_node(lacking)
    assert orm.QueryBuilder().append(orm.Node).count() == before + 4  # the four structures made above
    assert MliapSofteningWorkChain.spec().inputs['max_atoms'].default().value == 8


def test_the_command_refuses_what_it_cannot_do(
    dft_setup, runner_code, chgnet_model, li_o_group, aiida_localhost, tmp_path
):  # fmt: skip
    """`benchmark softening`: a missing pw.x, a parent beyond the DFT budget, an unknown parent, a model that lacks
    an element of a parent: one line each, nothing stored."""
    from click.testing import CliRunner

    from aiida_mliap.cli import cmd_root
    from aiida_mliap.data.model import MliapModelData
    from aiida_mliap.testing import build_tiny_mace

    group, _ = li_o_group(max_atoms=8, prefix='softening')
    no_lithium = build_tiny_mace(tmp_path / 'h-o.model', [1, 8])  # a real MACE over H and O only
    MliapModelData.get_or_create(no_lithium, framework='mace', name='tiny-h-o', energy_scale='raw_dft')
    missing = orm.InstalledCode(computer=aiida_localhost, filepath_executable='/nonexistent/pw.x', label='gone-pw')
    missing.store()
    before = orm.QueryBuilder().append(orm.Node).count()
    common = [
        'benchmark',
        'softening',
        '-G',
        group.label,
        '--model',
        chgnet_model.name,
        '--code',
        runner_code.full_label,
    ]
    cases = {
        ('--pw', 'gone-pw@localhost'): '/nonexistent/pw.x, which does not exist on this computer',
        ('--label', 'mp-1018134', '--max-atoms', '2'): "larger than the DFT budget of 2 atoms: {'mp_1018134': 3}",
        ('--label', 'mp-0', '--max-parents', '1'): "not in the dataset: ['mp_0']",
        ('--model', 'tiny-h-o', '--label', 'mp-1960', '--max-parents', '1'): (
            'models lack elements of these parents (leave them out or choose other parents): '
            "{'tiny-h-o': {'mp_1960': ['Li']}}"
        ),
    }
    for extra, message in cases.items():
        result = CliRunner().invoke(cmd_root, [*common, *extra])
        assert result.exit_code != 0 and message in result.output, result.output
    assert orm.QueryBuilder().append(orm.Node).count() == before


def test_the_dft_check_command_refuses_a_missing_pw(aiida_localhost):
    from click.testing import CliRunner

    from aiida_mliap.calculations.perturb import perturb_structure
    from aiida_mliap.cli import cmd_root

    _, process = perturb_structure.run_get_node(silicon('si-dft-check'), orm.Dict({'rattle': [0.05], 'seed': 0}))
    orm.InstalledCode(computer=aiida_localhost, filepath_executable='/nonexistent/pw.x', label='gone-pw-2').store()
    result = CliRunner().invoke(cmd_root, ['benchmark', 'dft-check', str(process.pk), '--pw', 'gone-pw-2@localhost'])
    assert result.exit_code == 2 and '/nonexistent/pw.x, which does not exist on this computer' in result.output
