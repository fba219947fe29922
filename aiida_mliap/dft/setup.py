"""What ``aiida-mliap setup dft`` installs: a pseudopotential family with cutoffs (aiida-pseudo) and a pw.x Code."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from aiida import orm

DEFAULT_FAMILY = 'pslibrary-1.0.0-PBE'
DEFAULT_PW_LABEL = 'pw'
STRINGENCY = 'normal'


def install_family(folder: Path, label: str, cutoffs: Path | None = None) -> tuple[orm.Group, bool]:
    """The family ``label`` made from the UPF files of ``folder`` (other files and folders beside them are left
    out), with the cutoffs (Ry) of ``cutoffs`` (default ``folder/suggested_cutoffs_Ry.json``: ``{element:
    {cutoff_wfc, cutoff_rho}}``, the format of ``aiida-pseudo family cutoffs set``). Kept if it exists."""
    from aiida_pseudo.data.pseudo import UpfData
    from aiida_pseudo.groups.family import CutoffsPseudoPotentialFamily

    existing = orm.QueryBuilder().append(CutoffsPseudoPotentialFamily, filters={'label': label}).first(flat=True)
    if existing is not None:
        return existing, False
    files = sorted(path for path in Path(folder).iterdir() if path.suffix.lower() == '.upf')
    if not files:
        raise ValueError(f'no .upf files in {folder}')
    cutoffs = Path(cutoffs) if cutoffs else Path(folder) / 'suggested_cutoffs_Ry.json'
    if not cutoffs.is_file():
        raise ValueError(f'no cutoffs file {cutoffs}: give one ({{element: {{cutoff_wfc, cutoff_rho}}}} in Ry)')
    values = json.loads(cutoffs.read_text())
    with tempfile.TemporaryDirectory() as directory:
        for path in files:
            shutil.copy(path, directory)
        family = CutoffsPseudoPotentialFamily.create_from_folder(
            Path(directory), label, description=f'PBE pseudopotentials from {folder}', pseudo_type=UpfData
        )
    missing = sorted(set(family.elements) - set(values))
    if missing:
        orm.Group.collection.delete(family.pk)
        raise ValueError(f'{cutoffs} has no cutoffs for {missing}')
    family.set_cutoffs({element: values[element] for element in family.elements}, STRINGENCY, unit='Ry')
    return family, True


def register_pw_code(computer: orm.Computer, label: str, executable: str | None = None) -> tuple[orm.Code, bool]:
    """The InstalledCode ``label@computer`` running pw.x (``executable``, default the one on this PATH)."""
    from aiida.common.exceptions import NotExistent

    try:
        return orm.load_code(f'{label}@{computer.label}'), False
    except NotExistent:
        pass
    executable = executable or shutil.which('pw.x')
    if executable is None:
        raise ValueError(
            'no pw.x on the PATH: install Quantum ESPRESSO (Debian/Ubuntu: `apt-get install quantum-espresso`; without '
            'root: `conda install -c conda-forge qe`) or give --executable'
        )
    code = orm.InstalledCode(computer=computer, filepath_executable=executable,
                             default_calc_job_plugin='quantumespresso.pw')  # fmt: skip
    code.label = label
    code.description = 'Quantum ESPRESSO pw.x, for the DFT check of model-relaxed structures'
    # One pw.x process per SCF, one OpenMP thread: the small cells of a DFT check gain nothing from more here.
    code.prepend_text = 'export OMP_NUM_THREADS=1'
    return code.store(), True
