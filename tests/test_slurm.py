"""Through a real Slurm: aiida's ``core.slurm`` scheduler on the one-node cluster that ``scripts/slurm.sh`` starts (as
root; ``make test`` does it before the first pass). Resources, walltime and the GPU ``--gres`` line a cluster needs;
a job killed at its walltime keeps what it finished and the restart handler resubmits the rest; a small benchmark.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mliap.calculations.mliap import get_builder_for, structure_link_label
from aiida_mliap.workchains.base import MliapBaseWorkChain

GRES = '#SBATCH --gres=gpu:1'
RESOURCES = {'num_machines': 1, 'num_mpiprocs_per_machine': 1, 'num_cores_per_mpiproc': 1}


def slurm_ready() -> bool:
    if not shutil.which('sinfo'):
        return False
    done = subprocess.run(['sinfo', '-h', '-o', '%T'], capture_output=True, text=True)
    return done.returncode == 0 and any(state in done.stdout for state in ('idle', 'mix', 'alloc'))


@pytest.fixture(scope='module')
def slurm():
    if not slurm_ready():
        message = 'no Slurm cluster here: `sudo bash scripts/slurm.sh` starts one (make test does, as root)'
        if os.environ.get('CI'):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def slurm_computer(slurm, tmp_path):
    computer = orm.Computer(
        label=f'slurm-{tmp_path.name}',
        hostname='localhost',
        transport_type='core.local',
        scheduler_type='core.slurm',
        workdir=str(tmp_path / 'work'),
    ).store()
    computer.configure(safe_interval=0)
    computer.set_minimum_job_poll_interval(2)
    return computer


def code_on(computer, executable, label='aiida-mliap-run') -> orm.InstalledCode:
    return orm.InstalledCode(computer=computer, filepath_executable=str(executable), label=label).store()


def runner_executable() -> str:
    from aiida_mliap.cli.setup import runner_executable

    return runner_executable()


def test_calculation_through_slurm_with_a_gpu_line(slurm_computer, chgnet_model, make_structures):
    structures = make_structures(3)
    builder = get_builder_for(code_on(slurm_computer, runner_executable()), chgnet_model, structures,
                              {'task': 'static', 'device': 'cpu'})  # fmt: skip
    builder.metadata.options.resources = RESOURCES
    builder.metadata.options.max_wallclock_seconds = 600
    builder.metadata.options.custom_scheduler_commands = GRES
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    assert node.get_job_id()  # a Slurm job id
    script = node.base.repository.get_object_content('_aiidasubmit.sh')
    assert GRES in script and '#SBATCH --time=00:10:00' in script and '#SBATCH --cpus-per-task=1' in script
    assert results['summary']['counts'] == {'ok': 3}
    assert results['summary']['environment']['torch_threads'] == 1


def test_walltime_kill_keeps_partial_results_and_resubmits_the_rest(slurm_computer, chgnet_model, make_structures,
                                                                    sleepy_runner):  # fmt: skip
    structures = make_structures(5)
    inputs = {
        'mliap': {
            'code': sleepy_runner(slurm_computer, 20),  # 20 s per structure: a 1-minute walltime cuts the batch
            'model': chgnet_model,
            'structures': {structure_link_label(s): s for s in structures},
            # Through run_task, which the slow runner slows (single points are always batched): a relaxation that is
            # converged at its first evaluation.
            'parameters': orm.Dict({'task': 'relax', 'fmax': 10.0, 'device': 'cpu', 'engine': 'ase'}),
            'metadata': {'options': {'resources': RESOURCES, 'max_wallclock_seconds': 60}},
        }
    }
    outputs, node = run_get_node(MliapBaseWorkChain, **inputs)

    assert node.is_finished_ok, node.exit_message
    calcs = sorted((c for c in node.called if isinstance(c, orm.CalcJobNode)), key=lambda calc: calc.ctime)
    assert len(calcs) >= 2  # 5 x 20 s does not fit in a minute
    first = calcs[0]
    assert not first.is_finished_ok  # killed at its walltime ...
    kept = first.outputs.summary['counts']
    assert 0 < kept.get('ok', 0) < 5 and kept.get('not_run', 0) == 5 - kept['ok']  # ... with what it finished
    assert 'TIME LIMIT' in (first.get_scheduler_stderr() or '')
    computed = [label for calc in calcs for label in calc.outputs.results.keys()]
    assert sorted(computed) == sorted(outputs['results'])  # nothing computed twice ...
    assert len(computed) == 5 and outputs['summary']['counts'] == {'ok': 5}  # ... and nothing lost


def test_small_benchmark_through_slurm(slurm_computer, chgnet_model, li_o_group):
    from aiida_mliap.workchains.benchmark import MliapBenchmarkWorkChain

    group, count = li_o_group(max_atoms=3, prefix='slurm')
    code = code_on(slurm_computer, runner_executable())
    builder = MliapBenchmarkWorkChain.get_builder_from_protocol(
        code, {'chgnet': chgnet_model}, group, protocol='fast', tasks=['static'],
        options={'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}, 'max_wallclock_seconds': 600,
                 'custom_scheduler_commands': GRES},
    )  # fmt: skip
    _, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    jobs = [d for d in node.called_descendants if isinstance(d, orm.CalcJobNode)]
    assert jobs and all(job.computer.scheduler_type == 'core.slurm' and job.get_job_id() for job in jobs)
    assert all(GRES in job.base.repository.get_object_content('_aiidasubmit.sh') for job in jobs)
    rows = [row for row in node.outputs.headline['rows'] if row['task'] == 'static']
    assert rows and all(row['n'] == count for row in rows if row['quantity'] == 'total energy')


@pytest.mark.daemon
def test_verdi_process_kill_ends_the_slurm_job(
    slurm_computer, started_daemon_client, sleepy_runner, mace_model, li_o_group, job_helpers, aiida_profile
):
    """`verdi process kill` of a benchmark whose job runs under Slurm: scancel, the runner ends (issue 29)."""
    group, _ = li_o_group(max_atoms=2, prefix='slurm-killed')
    options = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}, 'max_wallclock_seconds': 600}
    calc = job_helpers.kill_running_benchmark(
        sleepy_runner(slurm_computer, 30), mace_model, group, aiida_profile, options=options
    )
    queued = subprocess.run(['squeue', '-h', '-o', '%i'], capture_output=True, text=True).stdout.split()
    assert calc.get_job_id() not in queued, queued  # cancelled, not left to run out its walltime
