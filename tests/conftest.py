"""Test configuration: an AiiDA profile per storage kind, real models, real MP structures.

``MLIAP_TEST_STORAGE`` picks the profile the whole session runs on:
- ``sqlite`` (default): SQLite storage and the built-in ZeroMQ broker, no services needed;
- ``pgtest``: a throw-away PostgreSQL cluster made by pgtest (must run as an unprivileged user);
- ``production``: the running PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) services.
"""

from __future__ import annotations

import gzip
import json
import os
import uuid
from pathlib import Path

import pytest

pytest_plugins = ['aiida.tools.pytest_fixtures']

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get('MLIAP_SHARED_DATA', REPO.parent / 'shared' / 'data'))
STORAGE = os.environ.get('MLIAP_TEST_STORAGE', 'sqlite')


def _create_database(dsn: dict) -> dict:
    """A fresh database and owner on the server ``dsn``, in the server's own locale.

    aiida-core's ``Postgres.create_db`` insists on the en_US.UTF-8 locale, which minimal machines lack.
    """
    import psycopg
    from psycopg import sql

    user, password = 'aiida_mliap_test', 'aiida_mliap_test'
    name = f'aiida_mliap_test_{uuid.uuid4().hex[:12]}'
    connect = {key: dsn[key] for key in ('host', 'port', 'user') if key in dsn}
    with psycopg.connect(dbname='postgres', autocommit=True, **connect) as connection:
        if not connection.execute('SELECT 1 FROM pg_roles WHERE rolname = %s', (user,)).fetchone():
            connection.execute(
                sql.SQL('CREATE ROLE {} LOGIN CREATEDB PASSWORD {}').format(sql.Identifier(user), sql.Literal(password))
            )
        connection.execute(
            sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                sql.Identifier(name), sql.Identifier(user)
            )
        )
    return {
        'database_engine': 'postgresql_psycopg',
        'database_hostname': dsn.get('host', 'localhost'),
        'database_port': dsn['port'],
        'database_name': name,
        'database_username': user,
        'database_password': password,
    }


def _drop_database(dsn: dict, name: str) -> None:
    import psycopg
    from psycopg import sql

    connect = {key: dsn[key] for key in ('host', 'port', 'user') if key in dsn}
    with psycopg.connect(dbname='postgres', autocommit=True, **connect) as connection:
        connection.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(name)))


DAEMON_TIMEOUT_S = 120
PRODUCTION_DSN = {'host': os.environ.get('MLIAP_PG_HOST', '127.0.0.1'), 'port': 5432, 'user': 'postgres'}


@pytest.fixture(scope='session', autouse=True)
def aiida_profile(aiida_config, aiida_profile_factory, tmp_path_factory):
    """The session's profile, on the storage that ``MLIAP_TEST_STORAGE`` names."""
    cluster = None
    if STORAGE == 'sqlite':
        kwargs = {'broker_backend': 'core.zeromq'}
    elif STORAGE in ('pgtest', 'production'):
        if STORAGE == 'pgtest':
            from pgtest.pgtest import PGTest

            cluster = PGTest()
            dsn, broker = cluster.dsn, 'core.zeromq'
        else:
            dsn, broker = PRODUCTION_DSN, 'core.rabbitmq'
        storage = {**_create_database(dsn), 'repository_uri': tmp_path_factory.mktemp('repository').as_uri()}
        kwargs = {'storage_backend': 'core.psql_dos', 'storage_config': storage, 'broker_backend': broker}
    else:
        raise ValueError(f'unknown MLIAP_TEST_STORAGE={STORAGE!r}')
    with aiida_profile_factory(aiida_config, **kwargs) as profile:
        # aiida's default daemon timeout (2 s) fails start/stop on a machine that is busy with other work.
        aiida_config.set_option('daemon.timeout', DAEMON_TIMEOUT_S, scope=profile.name)
        aiida_config.store()
        yield profile
    if STORAGE == 'production':
        from aiida.manage import get_manager

        get_manager().reset_profile()
        _drop_database(PRODUCTION_DSN, kwargs['storage_config']['database_name'])
    if cluster is not None:
        cluster.close()


@pytest.fixture(scope='session')
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f'the shared reference data are missing: expected them in {SHARED_DATA} (set MLIAP_SHARED_DATA)')
    return SHARED_DATA


@pytest.fixture(scope='session')
def lifepo_entries(shared_data) -> list[dict]:
    """The Li-Fe-P-O entries of the Materials Project, as dicts, in file order."""
    with gzip.open(shared_data / 'mp' / 'Li-Fe-P-O.json.gz', 'rt') as handle:
        return json.load(handle)


@pytest.fixture(scope='session')
def small_lifepo_atoms(lifepo_entries):
    """ASE Atoms of the first Li-Fe-P-O entries with at most 8 atoms, labelled by MP id (deterministic)."""
    from pymatgen.entries.computed_entries import ComputedStructureEntry
    from pymatgen.io.ase import AseAtomsAdaptor

    chosen = []
    for entry in map(ComputedStructureEntry.from_dict, lifepo_entries):
        if len(entry.structure) <= 8:
            atoms = AseAtomsAdaptor.get_atoms(entry.structure)
            atoms.info = {'mp_id': entry.data['material_id'], 'energy_per_atom_dft': entry.energy_per_atom}
            chosen.append(atoms)
    return chosen


def to_structure(atoms, label: str):
    from aiida import orm

    structure = orm.StructureData(ase=atoms)
    structure.label = label
    return structure.store()


@pytest.fixture
def make_structures(small_lifepo_atoms):
    """Stored StructureData of the first ``n`` small Li-Fe-P-O entries with MP ids as labels."""

    def factory(n: int, start: int = 0):
        return [to_structure(a, a.info['mp_id']) for a in small_lifepo_atoms[start : start + n]]

    return factory


@pytest.fixture
def li_o_group(lifepo_entries, tmp_path):
    """Factory: a dataset group of the Li-O entries of MP's Li-Fe-P-O file with at most ``max_atoms`` atoms
    (elemental Li and O included, so formation energies and hulls are defined); returns (group, entry count).
    Results groups are per (dataset group, model) and accumulate across benchmarks: a test that counts them
    passes its own ``prefix``."""
    from aiida_mliap.calculations.dataset import import_reference_file

    def factory(max_atoms: int, prefix: str = 'benchmark'):
        entries = [
            entry
            for entry in lifepo_entries
            if set(entry['composition']) <= {'Li', 'O'} and len(entry['structure']['sites']) <= max_atoms
        ]
        path = tmp_path / f'Li-O-max{max_atoms}.json.gz'
        with gzip.open(path, 'wt') as handle:
            json.dump(entries, handle)
        group, _, _ = import_reference_file(path, f'{prefix}/Li-O-max{max_atoms}')
        return group, len(entries)

    return factory


@pytest.fixture
def li_extxyz(tmp_path):
    """An extxyz reference file of two Li polymorphs with raw DFT-like energies, ids ``{prefix}-1``/``-2``."""

    def factory(name: str, prefix: str) -> Path:
        import ase.io
        from ase.build import bulk

        frames = []
        for index, atoms, energy in ((1, bulk('Li', 'bcc', a=3.44), -1.9), (2, bulk('Li', 'fcc', a=4.33), -1.8)):
            atoms.info = {'mp_id': f'{prefix}-{index}', 'energy': energy}
            frames.append(atoms)
        path = tmp_path / name
        ase.io.write(path, frames, format='extxyz')
        return path

    return factory


@pytest.fixture(scope='session')
def tiny_mace_file(tmp_path_factory) -> Path:
    """A real (untrained, seeded) ScaleShiftMACE over H, Li, O, P, Fe saved with torch.save."""
    from aiida_mliap.testing import build_tiny_mace

    return build_tiny_mace(tmp_path_factory.mktemp('mace') / 'tiny.model', [1, 3, 8, 15, 26])


@pytest.fixture(scope='session')
def tiny_matgl_dir(tmp_path_factory) -> Path:
    """A real (untrained, seeded) M3GNet potential over Li, Fe, P, O saved with matgl's Potential.save."""
    from aiida_mliap.testing import build_tiny_m3gnet

    return build_tiny_m3gnet(tmp_path_factory.mktemp('matgl') / 'tiny-m3gnet', ['Li', 'Fe', 'P', 'O'])


@pytest.fixture
def chgnet_model():
    from aiida_mliap.data.model import MliapModelData

    return MliapModelData.from_bundled('chgnet-0.3.0')[0]


@pytest.fixture
def mace_model(tiny_mace_file):
    from aiida_mliap.data.model import MliapModelData

    return MliapModelData.get_or_create(tiny_mace_file, framework='mace', name='tiny-mace', energy_scale='raw_dft')[0]


@pytest.fixture
def matgl_model(tiny_matgl_dir):
    from aiida_mliap.data.model import MliapModelData

    return MliapModelData.get_or_create(tiny_matgl_dir, framework='matgl', name='tiny-m3gnet', energy_scale='raw_dft')[
        0
    ]


@pytest.fixture
def runner_code(aiida_localhost):
    """The real runner of this environment as an InstalledCode."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        return orm.load_code(f'aiida-mliap-run@{aiida_localhost.label}')
    except NotExistent:
        from aiida_mliap.cli.setup import runner_executable

        code = orm.InstalledCode(
            computer=aiida_localhost, filepath_executable=runner_executable(), label='aiida-mliap-run'
        )
        return code.store()


# The real runner, made slow on purpose (SECONDS per structure, through run_task: the `ase` engine), for walltime
# kills and interrupts that must find a job running.
SLEEPY_RUNNER = """#!{python}
import sys
import time

from aiida_mliap.engine import runner

run_task = runner.run_task


def sleepy(atoms, calculator, parameters):
    time.sleep({seconds})
    return run_task(atoms, calculator, parameters)


runner.run_task = sleepy
sys.exit(runner.main())
"""


@pytest.fixture
def sleepy_runner(tmp_path):
    """``factory(computer, seconds)``: an InstalledCode of the real runner that sleeps ``seconds`` per structure."""
    import stat
    import sys

    from aiida import orm

    def factory(computer, seconds: float):
        script = tmp_path / f'sleepy-runner-{computer.label}-{seconds:g}'
        script.write_text(SLEEPY_RUNNER.format(python=sys.executable, seconds=seconds))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        code = orm.InstalledCode(computer=computer, filepath_executable=str(script), label=script.name)
        return code.store()

    return factory


def processes_in(directory: str) -> list[int]:
    """PIDs whose working directory is ``directory``: a calculation's runner, found through /proc (Linux)."""
    found = []
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / 'cwd') == directory:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_for(condition, timeout: float, what: str):
    """The first truthy ``condition()`` within ``timeout`` seconds, polled every half second."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f'timed out after {timeout} s waiting for {what}')


def running_job_after(before: set[int]):
    """A calculation created after ``before`` (pks) whose runner is running now, else None."""
    from aiida import orm

    for pk in set(orm.QueryBuilder().append(orm.CalcJobNode, project='id').all(flat=True)) - before:
        calc = orm.load_node(pk)
        workdir = calc.get_remote_workdir()
        if calc.get_job_id() and workdir and processes_in(workdir):
            return calc
    return None


def process_tree(node) -> list:
    """``node``'s topmost caller and everything it called, recursively."""
    while node.caller is not None:
        node = node.caller
    tree, todo = [], [node]
    while todo:
        node = todo.pop()
        tree.append(node)
        todo.extend(node.called)
    return tree


def kill_running_benchmark(code, model, group, aiida_profile, options: dict | None = None):
    """Submit a benchmark whose runner sleeps, `verdi process kill` it once a job runs, then check that the runner
    ended and every process of the tree is killed (issue 29); returns the job that ran. For core.direct and Slurm."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from aiida import orm
    from aiida.engine import submit
    from aiida.manage.configuration import get_config

    from aiida_mliap.workchains.benchmark import MliapBenchmarkWorkChain

    builder = MliapBenchmarkWorkChain.get_builder_from_protocol(
        code, {'model': model}, group, protocol='fast', tasks=['relax'],
        overrides={'parameters': {'device': 'cpu', 'engine': 'ase'}, 'batch_size': 1, 'max_concurrent': 1},
        **({'options': options} if options else {}),
    )  # fmt: skip
    before = set(orm.QueryBuilder().append(orm.CalcJobNode, project='id').all(flat=True))
    node = submit(builder)
    calc = wait_for(lambda: running_job_after(before), 300, 'a job of the benchmark to run')
    workdir = calc.get_remote_workdir()
    verdi = Path(sys.executable).parent / 'verdi'
    done = subprocess.run(
        [str(verdi), '-p', aiida_profile.name, 'process', 'kill', str(node.pk), '--timeout', '120'],
        env={**os.environ, 'AIIDA_PATH': get_config().dirpath}, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(lambda: not processes_in(workdir), 60, f'the runner in {workdir} to end')

    # The parent is marked killed once it has sent its children the kill; each child (the calculation after its
    # scheduler job is cancelled) follows on its own, seconds later under load: wait for the whole tree, bounded.
    def unfinished():
        return [(n.pk, n.process_label, n.process_state) for n in process_tree(orm.load_node(node.pk))
                if not n.is_terminated]  # fmt: skip

    try:
        wait_for(lambda: not unfinished(), 120, 'every process of the killed benchmark to end')
    except AssertionError:
        tree = process_tree(orm.load_node(node.pk))
        logs = [f'{n.process_label}<{n.pk}> {log.levelname}: {log.message}' for n in tree
                for log in orm.Log.collection.get_logs_for(n)]  # fmt: skip
        raise AssertionError((unfinished(), logs)) from None
    assert orm.load_node(node.pk).is_killed and orm.load_node(calc.pk).is_killed
    return orm.load_node(calc.pk)


@pytest.fixture
def job_helpers():
    """The helpers above, for tests that interrupt or kill running jobs."""
    from types import SimpleNamespace

    return SimpleNamespace(
        processes_in=processes_in,
        wait_for=wait_for,
        running_job_after=running_job_after,
        process_tree=process_tree,
        kill_running_benchmark=kill_running_benchmark,
    )
