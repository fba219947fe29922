"""The DFT settings every SCF of this package runs with (the DFT check and the softening measurement): one template
from aiida-quantumespresso's protocol, and per structure the family's cutoffs, enough bands, MP's moments and U."""

from __future__ import annotations

import math

from aiida import orm
from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

from ..dft.mp_settings import mp_hubbard_and_moments, qe_spin_and_hubbard

# One pw.x process per SCF on this kind of machine; on a cluster, pass the scheduler's options.
DEFAULT_OPTIONS = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}, 'withmpi': False,
                   'max_wallclock_seconds': 3600}  # fmt: skip


def enough_bands(electrons: float) -> int:
    """Bands per spin channel for a smeared SCF, set from the start: pw.x's default (1.2 x electrons / 2, at least
    electrons / 2 + 4) was too few for LiP3 and cost a restart per SCF; half as many again as occupied, plus four."""
    return math.ceil(0.75 * electrons) + 4


def scf_template(
    code: orm.AbstractCode, structure: orm.StructureData, pseudo_family: str, protocol: str = 'fast',
    options: dict | None = None,
) -> dict:  # fmt: skip
    """``PwBaseWorkChain``'s ``protocol`` (smearing, mixing, restarts) as an ``scf`` namespace, the keys that belong
    to one structure left out (cutoffs, spin, thresholds: ``structure_settings`` sets them)."""
    template = PwBaseWorkChain.get_builder_from_protocol(
        code, structure, protocol=protocol, overrides={'pseudo_family': pseudo_family}
    )
    parameters = template.pw.parameters.get_dict()
    for key in ('ecutwfc', 'ecutrho', 'starting_magnetization', 'nspin'):
        parameters['SYSTEM'].pop(key, None)
    parameters['CONTROL'].pop('etot_conv_thr', None)  # a relaxation's threshold
    parameters['ELECTRONS'].pop('conv_thr', None)  # from the threshold per atom
    return {
        'pw': {'code': code, 'parameters': orm.Dict(parameters),
               'metadata': {'options': {**DEFAULT_OPTIONS, **(options or {})}}},
        'max_iterations': template.max_iterations,
    }  # fmt: skip


def structure_settings(
    structure: orm.StructureData, pseudo_family: str, parameters: dict, conv_thr_per_atom: float, mp_settings: bool,
    spin: bool = True,
) -> tuple[dict, orm.Dict]:  # fmt: skip
    """Pseudopotentials and the parameters ``structure`` runs with: the family's recommended cutoffs (unless given),
    the SCF threshold scaled to its atoms, enough bands, and MP's initial moments and U when ``mp_settings``.
    ``spin=False`` keeps MP's U but runs unpolarised: for structures MP found non-magnetic, the same answer at about
    half the cost (MP starts every run polarised, and a non-magnetic one relaxes to zero moment)."""
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    family = orm.QueryBuilder().append(PseudoPotentialFamily, filters={'label': pseudo_family}).one()[0]
    pseudos = family.get_pseudos(structure=structure)
    parameters = {namespace: dict(values) for namespace, values in parameters.items()}
    system, electrons = parameters.setdefault('SYSTEM', {}), parameters.setdefault('ELECTRONS', {})
    if 'ecutwfc' not in system:
        system['ecutwfc'], system['ecutrho'] = family.get_recommended_cutoffs(structure=structure, unit='Ry')
    electrons['conv_thr'] = conv_thr_per_atom * len(structure.sites)
    system['nbnd'] = enough_bands(sum(pseudos[site.kind_name].z_valence for site in structure.sites))
    if mp_settings:
        hubbard, moments = mp_hubbard_and_moments(structure.get_pymatgen_structure())
        kinds = {kind.name: kind.symbol for kind in structure.kinds}
        z_valences = {kind: pseudos[kind].z_valence for kind in kinds}
        system.update(qe_spin_and_hubbard(kinds, z_valences, hubbard, moments))
        if not spin:
            system.pop('starting_magnetization')
            system['nspin'] = 1
    return pseudos, orm.Dict(parameters)
