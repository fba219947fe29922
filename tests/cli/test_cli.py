"""The ``aiida-mliap`` CLI: setup is idempotent, models need a stated energy scale, launch runs the CalcJob."""

from __future__ import annotations

import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_mliap.cli import cmd_root
from aiida_mliap.data import MliapDatasetData, MliapModelData


def invoke(*args: str, ok: bool = True):
    result = CliRunner().invoke(cmd_root, [str(a) for a in args], catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def test_help_everywhere():
    for command in ([], ['setup'], ['setup', 'code'], ['setup', 'model'], ['launch', 'relax'], ['model', 'list']):
        assert 'Usage' in invoke(*command, '--help')


def test_setup_code_is_idempotent(aiida_localhost):
    first = invoke('setup', 'code', '--computer', aiida_localhost.label, '--label', 'runner-cli')
    assert 'created code runner-cli@' in first
    second = invoke('setup', 'code', '--computer', aiida_localhost.label, '--label', 'runner-cli')
    assert 'exists' in second
    assert orm.load_code(f'runner-cli@{aiida_localhost.label}').default_calc_job_plugin == 'mliap.calc'


def test_setup_model_bundled_and_from_path(tiny_mace_file, tmp_path):
    output = invoke('setup', 'model', 'chgnet-0.3.0')
    assert 'chgnet-0.3.0 (chgnet, mp2020_corrected)' in output
    assert 'already registered' in invoke('setup', 'model', 'chgnet-0.3.0')

    unregistered = tmp_path / 'unregistered.model'
    unregistered.write_bytes(tiny_mace_file.read_bytes() + b'another checkpoint')
    refused = invoke('setup', 'model', unregistered, '--framework', 'mace', ok=False)
    assert 'give the energy scale' in refused
    assert not MliapModelData.find(MliapModelData(unregistered, 'mace', 'x', 'raw_dft').sha256)
    invoke('setup', 'model', tiny_mace_file, '--framework', 'mace', '--name', 'cli-mace', '--energy-scale', 'raw_dft')
    node = MliapModelData.find(MliapModelData(tiny_mace_file, 'mace', 'x', 'raw_dft').sha256)
    assert node.energy_scale == 'raw_dft' and node.framework == 'mace'
    listing = invoke('model', 'list')
    assert 'chgnet-0.3.0' in listing and node.sha256 in listing


def test_setup_model_rejects_unknown_source():
    assert 'neither a bundled model' in invoke('setup', 'model', 'chgnet-9.9.9', ok=False)


def test_setup_model_vets_the_checkpoint(tiny_mace_file, shared_data, tmp_path):
    """Issue 29: the framework loads the checkpoint at registration (before: random bytes registered as CHGNet, a
    matgl folder as MACE, `chgnet-0.3.0 --energy-scale raw_dft` and a second --framework for a registered file were
    all `Success` with exit 0); a refused one leaves no node."""
    noise = tmp_path / 'noise.pth.tar'
    noise.write_bytes(bytes(range(256)) * 64)
    m3gnet = shared_data / 'models' / 'matgl' / 'M3GNet-MP-2021.2.8-PES'
    cases = {
        (noise, '--framework', 'chgnet', '--energy-scale', 'mp2020_corrected'): 'chgnet cannot load',
        (m3gnet, '--framework', 'mace', '--energy-scale', 'raw_dft'): 'mace cannot load',
        ('chgnet-0.3.0', '--energy-scale', 'raw_dft'): 'not raw_dft',
    }
    for args, message in cases.items():
        before = node_count()
        assert message in invoke('setup', 'model', *args, ok=False), args
        assert node_count() == before, args
    invoke('setup', 'model', tiny_mace_file, '--framework', 'mace', '--energy-scale', 'raw_dft')
    before = node_count()
    for args in (('--framework', 'chgnet'), ('--framework', 'mace', '--energy-scale', 'mp2020_corrected')):
        assert 'one checkpoint is one model' in invoke('setup', 'model', tiny_mace_file, *args, ok=False), args
    assert node_count() == before


@pytest.mark.storage
def test_launch_relax_from_group(runner_code, mace_model, make_structures):
    group = orm.Group(label='cli-launch').store()
    group.add_nodes(make_structures(3))
    output = invoke(
        'launch',
        'relax',
        '--model',
        mace_model.sha256,
        '--code',
        runner_code.full_label,
        '--group',
        group.label,
        '--limit',
        '2',
        '--task',
        'static',
    )
    assert 'finished [0]' in output
    calc = (
        orm.QueryBuilder()
        .append(orm.CalcJobNode, project='*')
        .order_by({orm.CalcJobNode: {'id': 'desc'}})
        .first(flat=True)
    )
    assert len(calc.outputs.results) == 2 and calc.inputs.parameters['task'] == 'static'
    table = invoke('show', calc.pk)
    assert 'energy_per_atom' in table and calc.outputs.results[next(iter(calc.outputs.results))]['formula'] in table


def test_launch_needs_structures(runner_code, mace_model):
    output = invoke('launch', 'relax', '--model', mace_model.sha256, '--code', runner_code.full_label, ok=False)
    assert 'give structures' in output


def test_dataset_import_list_show(li_extxyz):
    path = li_extxyz('li-cli.extxyz', 'cli')
    assert 'imported 2 entries of li-cli.extxyz' in invoke('dataset', 'import', path, '--group', 'cli-li')
    assert 'nothing new created' in invoke('dataset', 'import', path, '--group', 'cli-li')
    assert 'li-cli.extxyz' in invoke('dataset', 'list')
    shown = invoke('dataset', 'show', 'cli-li')
    assert 'li-cli.extxyz: 2 entries' in shown and "{'GGA': 2}" in shown
    selected = invoke('dataset', 'import', path, '--group', 'cli-li-only', '--chemsys', 'Li')
    assert 'imported 2 entries of Li_from_li-cli.extxyz.gz' in selected
    listed = invoke('dataset', 'list')
    assert 'Li_from_li-cli.extxyz.gz' in listed and 'cli-li-only' in listed


def test_dataset_import_names_bad_entries(tmp_path):
    path = tmp_path / 'bad.json'
    path.write_text('{"not": "a list"}')
    assert 'expected a JSON list' in invoke('dataset', 'import', path, '--group', 'bad', ok=False)


def test_import_elemental_references(shared_data, tmp_path):
    path = shared_data / 'elemental_refs' / 'mp_elemental_refs_2023-02-07.json.gz'
    first = invoke('dataset', 'import-refs', path)  # another test may have imported the file already
    assert 'imported 89 elemental references' in first or 'imported before' in first
    assert 'imported before' in invoke('dataset', 'import-refs', path)
    node = MliapDatasetData.find('9fd6ef848a91c88840a0d1709b5856d0edb4af22095237e59db52f2acd6bbf79')
    assert node.kind == 'elemental_references' and node.base.attributes.get('n_entries') == 89
    bad = tmp_path / 'refs.json'
    bad.write_text('{"Li": {"not": "an entry"}}')
    assert 'is not a dict of elemental ComputedEntry dicts' in invoke('dataset', 'import-refs', bad, ok=False)


def test_fetch_mp_without_key_says_so(monkeypatch):
    monkeypatch.delenv('MP_API_KEY', raising=False)
    assert 'set MP_API_KEY in the environment' in invoke('dataset', 'fetch-mp', 'Li-O', '--group', 'mp', ok=False)


def test_fetch_mp_names_what_is_missing(monkeypatch):
    """With a key: a clear message, either the missing mp-api package or the unreachable Materials Project."""
    monkeypatch.setenv('MP_API_KEY', 'x' * 32)
    output = invoke('dataset', 'fetch-mp', 'Li-O', '--group', 'mp', ok=False)
    try:
        import mp_api  # noqa: F401
    except ImportError:
        assert 'needs mp-api: pip install "aiida-mliap[mp]"' in output
    else:
        assert 'could not reach the Materials Project' in output
    assert orm.QueryBuilder().append(orm.Group, filters={'label': 'mp'}).count() == 0


def test_ambiguous_runner_label_lists_the_codes(runner_code, mace_model):
    """Two codes labelled aiida-mliap-run (a second `setup code` on another computer): launching without --code is
    refused with both named and the way out, not a MultipleObjectsError traceback (issue 28)."""
    import click

    from aiida_mliap.cli.utils import DEFAULT_CODE_LABEL, resolve_codes

    other = orm.Computer(label='second-computer', hostname='localhost', transport_type='core.local',
                         scheduler_type='core.direct', workdir='/tmp/aiida-second').store()  # fmt: skip
    twin = orm.InstalledCode(computer=other, filepath_executable='/bin/true', label=DEFAULT_CODE_LABEL).store()
    try:
        with pytest.raises(click.BadParameter) as refused:
            resolve_codes((), {'model': mace_model})
        message = str(refused.value)
        assert runner_code.full_label in message and twin.full_label in message and '--code' in message
        assert resolve_codes((runner_code.full_label,), {'model': mace_model}) == {'model': runner_code}
    finally:
        orm.Node.collection.delete(twin.pk)
        orm.Computer.collection.delete(other.pk)


def node_count() -> int:
    return orm.QueryBuilder().append(orm.Node).count()


def test_refused_options_store_nothing(runner_code, mace_model, make_structures, li_extxyz, shared_data, tmp_path):
    """Issue 29: counts and limits are checked at parse time, a truncated file is named with the decoder's reason,
    and nothing is stored for a refused input (before: --batch-size 0 was a ZeroDivisionError traceback after nodes
    were stored, --max-steps 0 was silently ignored, a truncated .json.gz printed only `Aborted!`)."""
    group = orm.Group(label='cli-refused').store()
    group.add_nodes(make_structures(1))
    invoke('dataset', 'import', li_extxyz('li-refused.extxyz', 'refused'), '--group', 'cli-refused-data')
    truncated = tmp_path / 'truncated.json.gz'
    mp_file = shared_data / 'mp' / 'Li-Fe-P-O.json.gz'
    whole = mp_file.read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])  # a download cut off half way
    launch = ['launch', 'relax', '--model', mace_model.sha256, '--code', runner_code.full_label, '--group', group.label]
    bench = ['benchmark', 'launch', '--group', 'cli-refused-data', '--model', mace_model.sha256,
             '--code', runner_code.full_label]  # fmt: skip
    cases = {
        (*launch, '--max-steps', '0'): '0 is not in the range x>=1',
        (*launch, '--fmax', '0'): 'x>0',
        (*launch, '--limit', '0'): 'x>=1',
        (*bench, '--batch-size', '0'): 'x>=1',
        (*bench, '--max-concurrent', '0'): 'x>=1',
        (*bench, '--max-steps', '0'): 'x>=1',
        (*bench, '--max-atoms', '-3'): 'x>=1',
        (*bench, '--progress-every', '0'): 'x>0',
        ('report', mace_model.pk, '-o', tmp_path / 'r'): f'pk {mace_model.pk} is a MliapModelData, not a benchmark',
        ('dataset', 'import', mp_file, '-G', 'cli-refused-cs', '--chemsys', 'Li-Xx'): 'not an element: `Xx`',
        ('dataset', 'import', mp_file, '-G', 'cli-refused-cs', '--chemsys', 'Li--Fe'): 'not an element: ``',
        ('dataset', 'import', mp_file, '-G', ' '): 'must not be blank',
        ('dataset', 'import', mp_file, '-G', 'cli-refused-r', '--release', ''): 'must not be blank',
        ('setup', 'model', 'chgnet-0.3.0', '--modal', 'PBE'): '--modal is for --framework sevenn models only',
        ('setup', 'model', mp_file, '--framework', 'mace', '--factory', 'x:y'): '--factory is for --framework ase',
        ('setup', 'model', 'chgnet-0.3.0', '--name', ''): 'must not be blank',
        (
            'dataset',
            'import',
            truncated,
            '--group',
            'cli-refused-truncated',
        ): 'truncated.json.gz is not a readable gzip',
    }
    for args, message in cases.items():
        before = node_count()
        output = invoke(*args, ok=False)
        assert message in output, (args, output)
        assert node_count() == before, args


def test_a_failed_process_exits_non_zero(runner_code, make_structures, tmp_path):
    """Issue 29: `launch` of a calculation that fails (a corrupt checkpoint: 405) exits non-zero (before: 0)."""
    corrupt = tmp_path / 'corrupt.model'
    corrupt.write_bytes(b'not a checkpoint at all')
    model = MliapModelData(corrupt, 'mace', name='corrupt', energy_scale='raw_dft').store()  # registration refuses it
    group = orm.Group(label='cli-failing').store()
    group.add_nodes(make_structures(1))
    result = CliRunner().invoke(cmd_root, ['launch', 'relax', '--model', model.sha256, '--code',
                                           runner_code.full_label, '--group', group.label])  # fmt: skip
    assert result.exit_code == 3, result.output
    assert 'finished [405]' in result.output
    failed = orm.QueryBuilder().append(orm.CalcJobNode, filters={'attributes.exit_status': 405}).all(flat=True)[-1]
    shown = CliRunner().invoke(cmd_root, ['show', str(failed.pk)])
    assert shown.exit_code == 3 and 'finished [405]' in shown.output, shown.output  # `show` of a failed one too
