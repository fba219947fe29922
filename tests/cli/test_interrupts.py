"""Issue 29: Ctrl-C on a foreground launch ends everything it started, the runner included, and marks the processes
killed (before: a KilledError traceback, lane/base/calc left 'Waiting', the runner computing on for 11+ minutes).

The model is a user's ASE calculator that sleeps in every call (`--framework ase`), so the job is surely running
when the interrupt comes; the runner is found by its working directory in /proc.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiida import orm
from aiida.manage.configuration import get_config

from aiida_mliap.data.model import MliapModelData

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='finds the runner through /proc')

SLOW_FACTORY = """
import time

from ase.calculators.lj import LennardJones


class SlowLennardJones(LennardJones):
    def calculate(self, *args, **kwargs):
        time.sleep(1.0)
        super().calculate(*args, **kwargs)


def make_calculator(checkpoint, device):
    return SlowLennardJones(sigma=2.2, epsilon=0.05, rc=6.0, smooth=True)
"""


@pytest.fixture
def slow_model(tmp_path, monkeypatch):
    (tmp_path / 'slow_lj.py').write_text(SLOW_FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv('PYTHONPATH', f'{tmp_path}:{os.environ.get("PYTHONPATH", "")}')
    checkpoint = tmp_path / 'slow-lj.json'
    checkpoint.write_text(json.dumps({'seconds_per_call': 1.0}))
    model, _ = MliapModelData.get_or_create(
        checkpoint, 'ase', 'raw_dft', name='slow-lj', options={'factory': 'slow_lj:make_calculator'}
    )
    yield model
    sys.modules.pop('slow_lj', None)


@pytest.mark.parametrize('command', ['launch relax', 'benchmark launch'])
def test_ctrl_c_ends_the_runner_and_marks_the_tree_killed(
    command, slow_model, runner_code, make_structures, li_extxyz, job_helpers
):
    from click.testing import CliRunner

    from aiida_mliap.cli import cmd_root

    label = f'interrupted-{command.split()[0]}'
    if command == 'launch relax':
        group = orm.Group(label=label).store()
        group.add_nodes(make_structures(2))
        arguments = ['launch', 'relax', '--group', label, '--max-steps', '500']
    else:  # a benchmark: benchmark -> lane -> base work chain -> calculation, as in the issue
        CliRunner().invoke(cmd_root, ['dataset', 'import', str(li_extxyz(f'{label}.extxyz', label)), '-G', label])
        arguments = ['benchmark', 'launch', '--group', label, '--task', 'relax', '--batch-size', '1',
                     '--max-concurrent', '1', '--progress-every', '600']  # fmt: skip
    before = set(orm.QueryBuilder().append(orm.CalcJobNode, project='id').all(flat=True))
    executable = Path(sys.executable).parent / 'aiida-mliap'
    launch = subprocess.Popen(
        [str(executable), *arguments, '--model', slow_model.sha256, '--code', runner_code.full_label],
        env={**os.environ, 'AIIDA_PATH': get_config().dirpath}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        calc = job_helpers.wait_for(lambda: job_helpers.running_job_after(before), 180, 'the runner to start')
        workdir = calc.get_remote_workdir()
        time.sleep(2)  # well inside the relaxation: each model call sleeps 1 s
        launch.send_signal(signal.SIGINT)
        output, _ = launch.communicate(timeout=120)
    finally:
        if launch.poll() is None:
            launch.kill()
    assert launch.returncode == 1, f'exit {launch.returncode}\n{output}'  # EXIT_FAILED: killed
    assert 'Traceback' not in output and 'killed' in output, output
    # The runner is gone within seconds, not computing on unseen.
    job_helpers.wait_for(lambda: not job_helpers.processes_in(workdir), 30, f'the runner in {workdir} to end')
    # Every process of the tree ended, killed: none left 'Waiting' for a runner that will never come back.
    tree = job_helpers.process_tree(orm.load_node(calc.pk))
    root = tree[0]
    expected = 1 if command == 'launch relax' else 5  # the benchmark, its plan, a lane, a base work chain, a job
    assert len(tree) == expected, tree
    unfinished = [(node.pk, node.process_label, node.process_state) for node in tree if not node.is_terminated]
    assert not unfinished and all(node.is_sealed for node in tree), unfinished
    assert orm.load_node(calc.pk).is_killed and root.is_killed, output
