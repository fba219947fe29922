"""MliapModelData: content in the repository, identity by sha256, declared energy scale, no local paths."""

from __future__ import annotations

import json
import os

import pytest
from aiida import orm

from aiida_mliap.contract.hashing import sha256_of_file
from aiida_mliap.data import MliapModelData

pytestmark = pytest.mark.storage


def test_profile_uses_the_requested_storage(aiida_profile):
    """Guards the test passes themselves: each pass really runs on the storage it names."""
    expected = {'sqlite': 'core.sqlite_dos', 'pgtest': 'core.psql_dos', 'production': 'core.psql_dos'}
    storage = os.environ.get('MLIAP_TEST_STORAGE', 'sqlite')
    assert aiida_profile.storage_backend == expected[storage]
    broker = {'sqlite': 'core.zeromq', 'pgtest': 'core.zeromq', 'production': 'core.rabbitmq'}
    assert aiida_profile.process_control_backend == broker[storage]


def test_bundled_chgnet_registers_offline_once():
    node, _ = MliapModelData.from_bundled('chgnet-0.3.0')
    again, created_again = MliapModelData.from_bundled('chgnet-0.3.0')
    assert again.pk == node.pk and not created_again
    assert node.framework == 'chgnet' and node.name == 'chgnet-0.3.0'
    assert node.energy_scale == 'mp2020_corrected'
    assert node.framework_version and node.filenames == ['chgnet_0.3.0_e29f68s314m37.pth.tar']
    with node.base.repository.open(node.filenames[0], 'rb') as handle:
        content = handle.read()
    import hashlib

    assert hashlib.sha256(content).hexdigest() == node.sha256


def test_bundled_chgnet_020_keeps_its_load_options():
    node, _ = MliapModelData.from_bundled('chgnet-0.2.0')
    assert node.options == {'mlp_out_bias': True}


def test_get_or_create_deduplicates_by_content(tiny_mace_file, tmp_path):
    first, _ = MliapModelData.get_or_create(tiny_mace_file, framework='mace', name='a', energy_scale='raw_dft')
    copy = tmp_path / 'renamed.model'
    copy.write_bytes(tiny_mace_file.read_bytes())
    second, created = MliapModelData.get_or_create(copy, framework='mace', name='b', energy_scale='raw_dft')
    assert second.pk == first.pk and not created
    assert first.sha256 == sha256_of_file(tiny_mace_file)


def test_folder_model_stores_every_file(tiny_matgl_dir):
    node, _ = MliapModelData.get_or_create(tiny_matgl_dir, framework='matgl', name='m', energy_scale='raw_dft')
    assert sorted(node.filenames) == ['model.json', 'model.pt', 'state.pt']
    assert sorted(node.base.repository.list_object_names()) == sorted(node.filenames)
    assert str(tiny_matgl_dir) not in json.dumps(node.base.attributes.all)


def test_models_are_queryable_by_attributes(tiny_mace_file):
    MliapModelData.get_or_create(tiny_mace_file, framework='mace', name='q', energy_scale='raw_dft')
    query = orm.QueryBuilder().append(
        MliapModelData, filters={'attributes.framework': 'mace', 'attributes.energy_scale': 'raw_dft'}
    )
    assert query.count() >= 1


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'framework': 'nequip', 'energy_scale': 'raw_dft'}, 'framework must be one of'),
        ({'framework': 'mace', 'energy_scale': 'corrected'}, 'energy_scale must be one of'),
    ],
)
def test_invalid_declarations_refused(tiny_mace_file, kwargs, message):
    with pytest.raises(ValueError, match=message):
        MliapModelData(tiny_mace_file, name='x', **kwargs)


def test_missing_path_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        MliapModelData(tmp_path / 'absent.model', framework='mace', name='x', energy_scale='raw_dft')


def test_framework_names_are_the_entry_points():
    from aiida_mliap.data.model import FRAMEWORKS
    from aiida_mliap.frameworks import available_frameworks

    assert sorted(FRAMEWORKS) == available_frameworks()
