"""The documentation builds without a warning (links within it checked), the README stays a short guide whose Python
runs as written, and no file takes a contract from outside the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
README = REPOSITORY / 'README.md'


def test_docs_build_without_warnings(tmp_path):
    command = [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b', 'html', 'docs', str(tmp_path)]
    built = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr


def test_readme_is_a_short_guide():
    assert len(README.read_text().splitlines()) <= 200


def test_no_contract_lives_outside_the_repository():
    """Data paths under ../shared/data are fine (examples and tests read MP files there); its DESIGN.md is not."""
    tracked = subprocess.run(['git', 'ls-files'], cwd=REPOSITORY, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip('not a git checkout')
    offending = [
        name for name in tracked
        if (REPOSITORY / name).is_file() and name != 'tests/test_docs.py'
        and re.search(r'shared/DESIGN', (REPOSITORY / name).read_text(errors='ignore'))
    ]  # fmt: skip
    assert not offending


def test_readme_python_runs_as_written(runner_code, shared_data):
    """The README's Python blocks, in order and unchanged, on the dataset its text tells the reader to import."""
    from aiida_mliap.calculations.dataset import import_reference_file

    import_reference_file(shared_data / 'mp' / 'Li-Fe-P-O.json.gz', 'mp/Li', chemsys='Li')
    blocks = re.findall(r'```python\n(.*?)```', README.read_text(), flags=re.S)
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), 'exec'), namespace)
    assert namespace['node'].is_finished_ok, namespace['node'].exit_message
    table = namespace['table']
    assert set(table['task']) == {'static', 'relax'} and table['energy_per_atom_model'].notna().all()
    assert len(table) == 2 * 9 and namespace['verdicts']
