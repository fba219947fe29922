"""What the DFT tests share: pw.x from Debian's quantum-espresso, the pslibrary family as `setup dft` installs it."""

from __future__ import annotations

import pytest
from aiida import orm
from click.testing import CliRunner


@pytest.fixture(scope='session')
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
