"""A real daemon runs the CalcJob: ZeroMQ broker on SQLite by default, RabbitMQ + PostgreSQL in production mode."""

from __future__ import annotations

import pytest

from aiida_mliap.calculations.mliap import get_builder_for

pytestmark = [pytest.mark.daemon, pytest.mark.storage]


def test_submit_to_daemon(submit_and_await, runner_code, chgnet_model, make_structures, aiida_profile):
    builder = get_builder_for(runner_code, chgnet_model, make_structures(2), {'task': 'static', 'device': 'cpu'})
    node = submit_and_await(builder, timeout=300)
    assert node.is_finished_ok, node.exit_message
    assert {r['status'] for r in node.outputs.results.values()} == {'ok'}
    assert node.outputs.summary['environment']['framework'] == 'chgnet'
