"""A model's full forces kept per structure on request (``keep_forces``), the same with every engine."""

import numpy as np
import pytest
from aiida.engine import run_get_node

from aiida_mliap.calculations.mliap import get_builder_for


def test_static_forces_kept_on_request(runner_code, chgnet_model, make_structures):
    structures = make_structures(3)
    forces = {}
    for engine in ('ase', 'vectorized'):
        parameters = {'task': 'static', 'device': 'cpu', 'engine': engine, 'keep_forces': True}
        outputs, node = run_get_node(get_builder_for(runner_code, chgnet_model, structures, parameters))
        assert node.is_finished_ok, node.exit_message
        forces[engine] = {label: array.get_array('forces') for label, array in outputs['forces'].items()}
        for label, result in outputs['results'].items():
            array = forces[engine][label]
            assert array.shape == (result['n_atoms'], 3)
            assert np.linalg.norm(array, axis=1).max() == pytest.approx(
                result['forces_max'], rel=1e-6
            )  # float32 models
            assert np.abs(array.sum(axis=0)).max() < 1e-3  # a gradient: no net force on the cell
    for label, array in forces['ase'].items():
        np.testing.assert_allclose(forces['vectorized'][label], array, atol=1e-4)
    outputs, _ = run_get_node(
        get_builder_for(runner_code, chgnet_model, structures, {'task': 'static', 'device': 'cpu'})
    )
    assert 'forces' not in outputs or not dict(outputs['forces'].items())  # not asked: not kept
