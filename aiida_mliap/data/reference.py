"""A reference (DFT) entry as a node: energies, corrections and everything MP2020 needs to correct a model."""

from __future__ import annotations

from .identity import IdentityDict


class MliapReferenceData(IdentityDict):
    """Raw DFT energy (eV), MP2020 correction and adjustments (eV), run type, Hubbard U, oxidation states, MP ids,
    and the source's own ``e_above_hull`` / ``e_form_per_atom`` (eV/atom) when it has them."""


def to_entry(attributes: dict, energy: float | None = None, corrected: bool = True):
    """A pymatgen ComputedEntry from a reference node's attributes (read once: node attribute access is a query).

    ``energy`` replaces the raw DFT energy (a model's energy, eV); ``corrected`` keeps the DFT correction,
    otherwise the entry carries what MP2020 needs to correct it afresh (run type, U values, POTCARs,
    oxide type, oxidation states).
    """
    from pymatgen.entries.computed_entries import ComputedEntry

    return ComputedEntry(
        attributes['composition'],
        attributes['energy'] if energy is None else energy,
        correction=attributes['correction'] if corrected else 0.0,
        parameters={
            'run_type': attributes['run_type'],
            'is_hubbard': attributes['is_hubbard'],
            'hubbards': attributes['hubbards'],
            'potcar_spec': attributes['potcar_spec'],
        },
        data={'oxide_type': attributes['oxide_type'], 'oxidation_states': attributes['oxidation_states']},
        entry_id=attributes['label'],
    )
