"""The DFT check with real pw.x (Quantum ESPRESSO 6.7): Si, LiF, Li and a P polymorph, and CHGNet relaxations."""

from __future__ import annotations

import itertools
import shutil

import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk
from click.testing import CliRunner
from pymatgen.core import Lattice, Structure

from aiida_mliap.dft.mp_settings import mp_hubbard_and_moments, qe_spin_and_hubbard

pytestmark = pytest.mark.skipif(shutil.which('pw.x') is None, reason='no pw.x: `make test` installs it as root')
ECONV_PER_ATOM = 2e-10  # Ry: the SCF threshold per atom these tests run with
RY = 13.605693122994  # eV


def test_mp_settings_come_from_pymatgen():
    feo = Structure(Lattice.cubic(4.3), ['Fe', 'O'], [[0, 0, 0], [0.5, 0.5, 0.5]])
    hubbard, moments = mp_hubbard_and_moments(feo)
    assert hubbard == {'Fe': 5.3} and moments == {'Fe': 5.0, 'O': 0.6}
    fep = Structure(Lattice.cubic(4.3), ['Fe', 'P'], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert mp_hubbard_and_moments(fep)[0] == {}  # MP's U only in oxides and fluorides
    system = qe_spin_and_hubbard({'Fe': 'Fe', 'O': 'O'}, {'Fe': 16.0, 'O': 6.0}, hubbard, moments)
    assert system == {'nspin': 2, 'starting_magnetization': {'Fe': 5.0 / 16, 'O': 0.6 / 6}, 'lda_plus_u': True,
                      'lda_plus_u_kind': 0, 'hubbard_u': {'Fe': 5.3}}  # fmt: skip


def structure(atoms, label: str) -> orm.StructureData:
    node = orm.StructureData(ase=atoms)
    node.label = label
    return node.store()


def relax(runner_code, chgnet_model, structures, parameters):
    from aiida_mliap.calculations.mliap import get_builder_for

    outputs, node = run_get_node(get_builder_for(runner_code, chgnet_model, structures, parameters))
    assert node.is_finished_ok, node.exit_message
    return outputs


def test_dft_check_of_chgnet_relaxations(dft_setup, runner_code, chgnet_model):
    from aiida_mliap.workchains.dft_check import MliapDftCheckWorkChain

    code, family = dft_setup
    si = structure(bulk('Si', 'diamond', a=5.468), 'si')
    lif = structure(bulk('LiF', 'rocksalt', a=4.06), 'lif')
    # Si with a threshold no force reaches: the relaxation takes 0 steps, its geometry is the reference one.
    unmoved = relax(runner_code, chgnet_model, [si], {'task': 'relax', 'fmax': 50.0})
    assert unmoved['results']['si']['n_steps'] == 0
    relaxed = relax(runner_code, chgnet_model, [lif], {'task': 'relax', 'fmax': 0.01})
    broken = bulk('LiF', 'rocksalt', a=4.06)
    broken.positions[1] = broken.positions[0]  # two atoms on one site: pw.x stops, this structure only
    model_structures = {'si': unmoved['relaxed_structures']['si'], 'lif': relaxed['relaxed_structures']['lif'],
                        'broken': structure(broken, 'broken')}  # fmt: skip
    builder = MliapDftCheckWorkChain.get_builder_from_protocol(
        code, chgnet_model, model_structures, {'si': si, 'lif': lif, 'broken': lif}, family, protocol='fast',
        options={'max_wallclock_seconds': 600},
    )  # fmt: skip
    builder.conv_thr_per_atom = orm.Float(ECONV_PER_ATOM)
    builder.max_refinements = orm.Int(0)  # one level: the plumbing, not a measurement
    builder.scf.max_iterations = orm.Int(3)  # room for a smearing repair (Si: cold smearing leaves -TS)
    builder.max_concurrent = orm.Int(3)
    outputs, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    checks = outputs['checks']
    # One level, no refinement: a value without an uncertainty is never `ok`.
    assert checks['si']['status'] == 'unconverged' and checks['lif']['status'] == 'unconverged'
    assert checks['si']['delta_e_geom_uncertainty'] is None and 'no refinement' in checks['si']['reason']
    # Equal geometry, same settings: the same energy to the SCF threshold.
    assert abs(checks['si']['delta_e_geom']) < 2 * ECONV_PER_ATOM * RY
    assert checks['lif']['delta_e_geom'] != 0.0
    assert (
        checks['broken']['status'] == 'failed' and 'model geometry: MliapPwBaseWorkChain' in checks['broken']['reason']
    )
    assert 'PwCalculation' in checks['broken']['reason']  # what pw.x itself said
    assert checks['broken']['delta_e_geom'] is None
    # Both SCFs of a structure ran with the same parameters (bands set from the start, forces and stress on).
    pair = {link.link_label: link.node for link in node.base.links.get_outgoing().all()}['pair_lif']
    calls = {link.link_label: link.node for link in pair.base.links.get_outgoing().all()}
    model_scf, reference_scf = calls['scf_model_0'], calls['scf_reference_0']
    assert model_scf.inputs.pw.parameters.get_dict() == reference_scf.inputs.pw.parameters.get_dict()
    system, control = model_scf.inputs.pw.parameters['SYSTEM'], model_scf.inputs.pw.parameters['CONTROL']
    assert system['nspin'] == 2 and system['nbnd'] >= 8 and control['tprnfor'] and control['tstress']
    assert checks['lif']['max_force_reference_geometry'] is not None
    # Provenance: the check -> both SCFs -> both geometries -> the model's relaxation and its model node.
    check = checks['lif']
    creator = check.creator
    parameters = {link.link_label: link.node for link in creator.base.links.get_incoming().all()}
    assert parameters['model'].pk == chgnet_model.pk
    model_geometry = parameters['parameters__model_0'].creator.inputs.structure
    assert model_geometry.pk == relaxed['relaxed_structures']['lif'].pk
    assert model_geometry.creator.inputs.model.pk == chgnet_model.pk
    assert parameters['parameters__reference_0'].creator.inputs.structure.pk == lif.pk


def test_dft_check_of_a_benchmark_from_the_command_line(dft_setup, runner_code, chgnet_model, li_o_group):
    """`aiida-mliap benchmark dft-check PK`: the chosen structure's geometries come from the benchmark's relaxation
    and its dataset, and `load_results` and the report carry the check."""
    from aiida_mliap.analysis.report import metrics_document
    from aiida_mliap.analysis.results import load_results
    from aiida_mliap.cli import cmd_root
    from aiida_mliap.data.dft_check import MliapDftCheckData
    from aiida_mliap.workchains.benchmark import MliapBenchmarkWorkChain

    group, _ = li_o_group(max_atoms=2, prefix='dft')
    builder = MliapBenchmarkWorkChain.get_builder_from_protocol(
        runner_code, {'chgnet': chgnet_model}, group, protocol='fast', tasks=['relax'],
        overrides={'parameters': {'max_steps': 30, 'device': 'cpu'}, 'batch_size': 20},
    )  # fmt: skip
    _, benchmark = run_get_node(builder)
    assert benchmark.is_finished_ok, benchmark.exit_message
    arguments = ['benchmark', 'dft-check', str(benchmark.pk), '--label', 'mp-135', '--max-structures', '1',
                 '--max-refinements', '1', '--tolerance', '50']  # fmt: skip
    result = CliRunner().invoke(cmd_root, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert 'DFT check of 1 structures: mp_135' in result.output and 'finished [0]' in result.output
    checks = orm.QueryBuilder().append(MliapDftCheckData, filters={'attributes.label': 'mp_135'}).all(flat=True)
    assert [node['label'] for node in checks] == ['mp_135']
    relaxed = checks[0].creator.inputs.parameters.model_0.creator.inputs.structure
    assert relaxed.creator.process_label == 'MliapCalculation'  # the benchmark's relaxation made it
    assert relaxed.creator.caller.caller.caller.pk == benchmark.pk  # its base work chain, lane, benchmark
    table = load_results(benchmark).set_index('label')
    assert table.loc['mp_135', 'dft_check_status'] == checks[0]['status']
    assert table.loc['mp_135', 'dft_check_delta_e_geom'] == pytest.approx(checks[0]['delta_e_geom'])
    assert table.loc['mp_135', 'dft_check_uncertainty'] == pytest.approx(checks[0]['delta_e_geom_uncertainty'])
    assert table.drop(index='mp_135')['dft_check_status'].isna().all()
    split = metrics_document(table.reset_index())['dft_checks']['symmetry_change']
    assert [row['n'] for row in split] == [1]


def pair_builder(code, family, model, reference, label, **inputs):
    """One structure's series through the check work chain, on the given geometries."""
    from aiida_mliap.workchains.dft_check import MliapDftCheckWorkChain

    builder = MliapDftCheckWorkChain.get_builder_from_protocol(
        code, inputs.pop('chgnet_model'), {label: model}, {label: reference}, family, protocol='fast',
        options={'max_wallclock_seconds': 900},
    )  # fmt: skip
    builder.conv_thr_per_atom = orm.Float(ECONV_PER_ATOM)
    for key, value in inputs.items():
        builder[key] = value
    return builder


def scf_calls(check_node, label):
    pair = check_node.base.links.get_outgoing(link_label_filter=f'pair_{label}').one().node
    return {
        link.link_label: link.node for link in pair.base.links.get_outgoing().all() if link.link_label[:4] == 'scf_'
    }


def test_each_geometry_gets_its_own_mesh_and_the_series_stops_at_its_cap(dft_setup, chgnet_model):
    """(a) Two cells of one composition, 26 % apart in volume, each on its own mesh at the same spacing (asserted on
    every SCF's k-points node); (c) a tolerance no refinement meets: the loop stops at its cap, the status says
    `unconverged`, and the last change is stored as the uncertainty."""
    code, family = dft_setup
    compressed, reference = (
        structure(bulk('Si', 'diamond', a=5.0), 'si'),
        structure(bulk('Si', 'diamond', a=5.468), 'si'),
    )
    builder = pair_builder(
        code, family, compressed, reference, 'si', chgnet_model=chgnet_model, max_refinements=orm.Int(1),
        tolerance=orm.Float(1e-9), mp_settings=orm.Bool(False),
    )  # fmt: skip
    outputs, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    check = outputs['checks']['si']
    scfs = scf_calls(node, 'si')
    assert sorted(scfs) == ['scf_model_0', 'scf_model_1', 'scf_reference_0', 'scf_reference_1']  # cap: 1 refinement
    meshes = {name: scf.inputs.kpoints.get_kpoints_mesh()[0] for name, scf in scfs.items()}
    assert meshes['scf_model_0'] != meshes['scf_reference_0']  # the smaller cell has the larger reciprocal cell
    assert meshes['scf_model_0'] == [5, 5, 5] and meshes['scf_reference_0'] == [4, 4, 4]  # 0.5 1/Å
    assert all(a > b for a, b in zip(meshes['scf_model_1'], meshes['scf_model_0'], strict=True))  # denser
    assert [level['mesh_model'] for level in check['levels']] == [meshes['scf_model_0'], meshes['scf_model_1']]
    assert check['status'] == 'unconverged' and 'within 1 refinements' in check['reason']
    levels = check['levels']
    assert check['delta_e_geom'] == levels[-1]['delta_e_geom']
    assert check['delta_e_geom_uncertainty'] == pytest.approx(
        abs(levels[1]['delta_e_geom'] - levels[0]['delta_e_geom'])
    )
    # Every SCF of the series is an input of the record.
    inputs = {link.link_label for link in check.creator.base.links.get_incoming().all()}
    assert {
        'parameters__model_0',
        'parameters__model_1',
        'parameters__reference_0',
        'parameters__reference_1',
    } <= inputs
    assert check['max_force_reference_geometry'] < 0.01  # diamond Si: forces vanish by symmetry
    assert check['pressure_model_geometry'] > check['pressure_reference_geometry']  # the compressed cell pushes


def test_smearing_artefact_in_a_gapped_cell_is_repaired(dft_setup, chgnet_model, lifepo_entries):
    """(b) A P polymorph of MP (2 atoms, a gap of about 3 eV): the protocol's cold smearing leaves a -TS beyond
    tolerance at its MP geometry; the SCF reruns with Gaussian smearing and the record shows none left. (d) The same
    geometry on both sides: |ΔE_geom| within its uncertainty and the allowance reads "cannot tell"."""
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    from aiida_mliap.science.dft_check import dft_verdict

    entry = next(e for e in lifepo_entries if e['entry_id'].startswith('mp-1179990'))
    cell = orm.StructureData(pymatgen=ComputedStructureEntry.from_dict(entry).structure)
    cell.label = 'p'
    cell.store()
    code, family = dft_setup
    builder = pair_builder(code, family, cell, cell, 'p', chgnet_model=chgnet_model, max_refinements=orm.Int(1),
                           tolerance=orm.Float(0.005))  # fmt: skip
    outputs, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    check = outputs['checks']['p']
    first = scf_calls(node, 'p')['scf_reference_0']
    calculations = sorted(first.called, key=lambda c: c.ctime)
    artefact = calculations[0].outputs.output_parameters
    assert abs(artefact['energy_smearing']) / 2 > 0.0005  # cold smearing: -TS beyond tolerance
    assert len(calculations) >= 2 and calculations[-1].inputs.parameters['SYSTEM']['smearing'] == 'gaussian'
    assert check['gap_reference_geometry'] > 1.0
    assert check['levels'][0]['smearing_energy_per_atom_reference'] <= 0.0005
    assert check['status'] in ('ok', 'unconverged') and check['status'] != 'smearing_artefact'
    assert abs(check['delta_e_geom']) < 1e-6
    assert dft_verdict(check['delta_e_geom'], check['delta_e_geom_uncertainty']) == 'cannot tell'


def test_a_metal_checks_its_smearing_once_the_sampling_has_converged(dft_setup, chgnet_model):
    """Metallic Li at two lattice constants: a tolerance the first refinement meets sends the series to a smearing
    step (same meshes, each metal's smearing halved); that one met too, the check is `ok`, and the uncertainty is
    the larger of the two settings' last changes."""
    code, family = dft_setup
    model, reference = structure(bulk('Li', 'bcc', a=3.30), 'li'), structure(bulk('Li', 'bcc', a=3.44), 'li')
    builder = pair_builder(
        code, family, model, reference, 'li', chgnet_model=chgnet_model, max_refinements=orm.Int(3),
        tolerance=orm.Float(0.1), mp_settings=orm.Bool(False),
    )  # fmt: skip
    outputs, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    check = outputs['checks']['li']
    levels = check['levels']
    assert [level['step'] for level in levels] == ['start', 'kpoints', 'smearing'], levels
    for geometry in ('model', 'reference'):
        assert levels[2][f'mesh_{geometry}'] == levels[1][f'mesh_{geometry}']  # one setting changed at a time
        assert levels[1][f'mesh_{geometry}'] != levels[0][f'mesh_{geometry}']
        assert levels[2][f'degauss_{geometry}'] == pytest.approx(levels[1][f'degauss_{geometry}'] / 2)
        assert check[f'gap_{geometry}_geometry'] < 0.1
    changes = [abs(b['delta_e_geom'] - a['delta_e_geom']) for a, b in itertools.pairwise(levels)]
    assert check['status'] == 'ok' and check['delta_e_geom_uncertainty'] == pytest.approx(max(changes))
