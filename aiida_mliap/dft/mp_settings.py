"""Materials Project's Hubbard U and initial magnetic moments, read from pymatgen's ``MPRelaxSet``, as pw.x input.

MP runs every calculation spin-polarised, with a per-element initial moment (``MAGMOM``) and, for the transition metals
of oxides and fluorides, Dudarev's U (``LDAUU``). Taking them from pymatgen's input set (never typed in here) keeps the
DFT check on MP's choices as pymatgen records them. What changes in QE: the moment becomes a fraction of the
pseudopotential's valence charge (``starting_magnetization``), and U acts on atomic-orbital projections instead of
VASP's PAW projectors, so U-energies are close to, not equal to, MP's; ΔE_geom is a difference at equal settings.
"""

from __future__ import annotations

import warnings
from typing import Any

from pymatgen.core import Structure


def mp_hubbard_and_moments(structure: Structure) -> tuple[dict[str, float], dict[str, float]]:
    """(U in eV by element where MP applies one, initial moment in μB by element) as ``MPRelaxSet`` sets them."""
    from pymatgen.io.vasp.sets import MPRelaxSet

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # POTCAR availability: irrelevant, only the INCAR is read
        inputs = MPRelaxSet(structure)
        incar = inputs.incar
        symbols = inputs.poscar.site_symbols
        sites = [site.specie.symbol for site in inputs.structure]
    hubbard = {}
    if incar.get('LDAU'):
        hubbard = {symbol: float(u) for symbol, u in zip(symbols, incar['LDAUU'], strict=True) if u}
    moments: dict[str, float] = {}
    for symbol, moment in zip(sites, incar.get('MAGMOM', [0.0] * len(sites)), strict=True):
        if moments.setdefault(symbol, float(moment)) != float(moment):
            raise ValueError(f'MPRelaxSet gives {symbol} several initial moments: not supported')
    return hubbard, moments


def qe_spin_and_hubbard(
    kinds: dict[str, str], z_valences: dict[str, float], hubbard: dict[str, float], moments: dict[str, float]
) -> dict[str, Any]:
    """The ``SYSTEM`` keys of pw.x 6.7 for MP's settings: ``kinds`` maps kind names to elements, ``z_valences`` kind
    names to the pseudopotential's valence charge. QE >= 7.1 takes U in a HUBBARD card instead, which 6.7 rejects."""
    system: dict[str, Any] = {
        'nspin': 2,
        'starting_magnetization': {
            kind: max(-1.0, min(1.0, moments.get(element, 0.0) / z_valences[kind])) for kind, element in kinds.items()
        },
    }
    on = {kind: hubbard[element] for kind, element in kinds.items() if element in hubbard}
    if on:
        system.update({'lda_plus_u': True, 'lda_plus_u_kind': 0, 'hubbard_u': on})
    return system
