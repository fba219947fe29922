"""The DFT check with real pw.x (Quantum ESPRESSO 6.7) on Si and LiF, after real CHGNet relaxations."""

from __future__ import annotations

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


@pytest.fixture(scope='module')
def dft_setup(shared_data):
    """``aiida-mliap setup dft`` as a user runs it, twice: the second run keeps what the first made."""
    from aiida_mliap.cli import cmd_root

    folder = shared_data / 'pseudos' / 'pslibrary-pbe'
    first = CliRunner().invoke(cmd_root, ['setup', 'dft', '--pseudos', str(folder)], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert 'installed family pslibrary-1.0.0-PBE: 15 pseudopotentials' in first.output
    second = CliRunner().invoke(cmd_root, ['setup', 'dft', '--pseudos', str(folder)], catch_exceptions=False)
    assert 'kept family' in second.output and 'kept code pw@localhost' in second.output
    return orm.load_code('pw@localhost'), 'pslibrary-1.0.0-PBE'


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
    builder.scf.kpoints_distance = orm.Float(0.5)  # coarser than the protocol's: a test, not a measurement
    builder.scf.max_iterations = orm.Int(1)
    builder.max_concurrent = orm.Int(3)
    outputs, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    checks = outputs['checks']
    assert checks['si']['status'] == 'ok' and checks['lif']['status'] == 'ok'
    # Equal geometry, same settings: the same energy to the SCF threshold.
    assert abs(checks['si']['delta_e_geom']) < 2 * ECONV_PER_ATOM * RY
    assert checks['lif']['delta_e_geom'] != 0.0
    assert checks['broken']['status'] == 'failed' and 'model geometry: PwBaseWorkChain' in checks['broken']['reason']
    assert 'PwCalculation' in checks['broken']['reason']  # what pw.x itself said
    assert checks['broken']['delta_e_geom'] is None
    # Both SCFs of a structure ran with the same parameters node, pseudos and k-point mesh.
    calls = {link.link_label: link.node for link in node.base.links.get_outgoing().all()}
    model_scf, reference_scf = calls['scf_model_lif'], calls['scf_reference_lif']
    assert model_scf.inputs.pw.parameters.pk == reference_scf.inputs.pw.parameters.pk
    assert model_scf.inputs.kpoints.pk == reference_scf.inputs.kpoints.pk
    assert model_scf.inputs.pw.parameters['SYSTEM']['nspin'] == 2  # MP runs everything spin-polarised
    # Provenance: the check -> both SCFs -> both geometries -> the model's relaxation and its model node.
    check = checks['lif']
    creator = check.creator
    parameters = {link.link_label: link.node for link in creator.base.links.get_incoming().all()}
    assert parameters['model'].pk == chgnet_model.pk
    model_geometry = parameters['model_scf'].creator.inputs.structure
    assert model_geometry.pk == relaxed['relaxed_structures']['lif'].pk
    assert model_geometry.creator.inputs.model.pk == chgnet_model.pk
    assert parameters['reference_scf'].creator.inputs.structure.pk == lif.pk


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
                 '--kpoints-distance', '0.5']  # fmt: skip
    result = CliRunner().invoke(cmd_root, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert 'DFT check of 1 structures: mp_135' in result.output and 'finished [0]' in result.output
    checks = orm.QueryBuilder().append(MliapDftCheckData, filters={'attributes.label': 'mp_135'}).all(flat=True)
    assert [node['label'] for node in checks] == ['mp_135']
    relaxed = checks[0].creator.inputs.model_scf.creator.inputs.structure
    assert relaxed.creator.process_label == 'MliapCalculation'  # the benchmark's relaxation made it
    assert relaxed.creator.caller.caller.caller.pk == benchmark.pk  # its base work chain, lane, benchmark
    table = load_results(benchmark).set_index('label')
    assert table.loc['mp_135', 'dft_check_status'] == 'ok'
    assert table.loc['mp_135', 'dft_check_delta_e_geom'] == pytest.approx(checks[0]['delta_e_geom'])
    assert table.drop(index='mp_135')['dft_check_status'].isna().all()
    split = metrics_document(table.reset_index())['dft_checks']['symmetry_change']
    assert [row['n'] for row in split] == [1]
