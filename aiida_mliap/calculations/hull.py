"""Formation energies and energies above the hull with pymatgen, for DFT and for one model (no AiiDA).

Conventions (energies per atom, MP2020-corrected scale):
- ``e_form_*``: against elemental references, by default the lowest-energy elemental entry of the dataset
  evaluated the same way (DFT for DFT, the model for the model); optionally fixed references (MP's elemental
  reference entries, as in Matbench Discovery) for both.
- ``e_above_hull_model``: the model hull, built from model energies alone over every entry the model evaluated.
- ``e_above_hull_model_dftref``: Matbench Discovery's DFT-reference hull, Ehull_DFT + (Ef_model - Ef_DFT) with
  common elemental references, which is Ehull_DFT + (E_model - E_DFT) per atom.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymatgen.analysis.phase_diagram import PatchedPhaseDiagram, PhaseDiagram
from pymatgen.entries.computed_entries import ComputedEntry

from ..data.model import ENERGY_SCALES


def correct_model_entries(
    model_entries: Mapping[str, ComputedEntry], energy_scale: str
) -> tuple[dict[str, ComputedEntry], dict[str, str]]:
    """Bring model entries to the MP2020-corrected scale: corrections only where the model lacks them.

    ``model_entries`` carry the model's energy and the reference's run type, U values, POTCARs and oxidation data.
    Returns the corrected entries and, for entries MP2020 refuses, the reason.
    """
    if energy_scale not in ENERGY_SCALES:
        raise ValueError(f'energy_scale must be one of {ENERGY_SCALES}, got {energy_scale!r}')
    if energy_scale == 'mp2020_corrected':
        return dict(model_entries), {}
    from pymatgen.entries.compatibility import CompatibilityError, MaterialsProject2020Compatibility

    check_potcar = all(entry.parameters.get('potcar_spec') for entry in model_entries.values())
    compatibility = MaterialsProject2020Compatibility(check_potcar=check_potcar)
    corrected, refused = {}, {}
    for label, entry in model_entries.items():
        try:
            processed = compatibility.process_entry(entry, on_error='raise', inplace=False)
        except CompatibilityError as exception:
            refused[label] = f'MP2020 corrections refused the entry: {exception}'
            continue
        if processed is None:
            refused[label] = 'MP2020 corrections refused the entry'
        else:
            corrected[label] = processed
    return corrected, refused


def elemental_ground_states(entries: Mapping[str, ComputedEntry]) -> dict[str, str]:
    """Per element, the label of its lowest-energy elemental entry: the hull's elemental reference."""
    best: dict[str, tuple[float, str]] = {}
    for label, entry in sorted(entries.items()):
        if entry.composition.is_element:
            element = str(entry.composition.elements[0])
            if element not in best or entry.energy_per_atom < best[element][0]:
                best[element] = (entry.energy_per_atom, label)
    return {element: label for element, (_, label) in best.items()}


def hull_quantities(
    entries: Mapping[str, ComputedEntry],
    elemental_references: Mapping[str, float] | None = None,
    ground_states: Mapping[str, str] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, str], list[str]]:
    """Formation energy, Ehull and decomposition of every entry on the hull built from ``entries`` alone.

    ``ground_states`` (element -> label, default: the lowest elemental entry of ``entries``) fix which elemental
    entries are the hull's corners: a model hull takes the model's energies of the *DFT* ground states, so that
    both hulls stand on the same phases. Other elemental entries are placed against that hull. An entry with an
    element whose ground state is not among ``entries`` gets no value and a reason (never another reference).
    Returns (values by label, reasons by label, labels of the stable entries).
    """
    if ground_states is None:
        ground_states = elemental_ground_states(entries)
    corners = set(ground_states.values())
    usable, undefined = {}, {}
    for label, entry in entries.items():
        missing = sorted(
            f'{el} ({ground_states[str(el)]})' if str(el) in ground_states else str(el)
            for el in entry.composition.elements
            if ground_states.get(str(el)) not in entries
        )
        if missing:
            undefined[label] = f'no evaluated elemental ground state for {", ".join(missing)}'
        else:
            usable[label] = entry
    if not usable:
        return {}, undefined, []
    usable = _with_ids(usable)
    on_hull = [e for label, e in usable.items() if not e.composition.is_element or label in corners]
    diagram = phase_diagram(on_hull)
    values = {}
    for label, entry in usable.items():
        decomposition, e_above_hull = diagram.get_decomp_and_e_above_hull(entry, allow_negative=True)
        values[label] = {
            'e_above_hull': float(e_above_hull),
            'e_form': formation_energy(entry, elemental_references)
            if elemental_references
            else float(diagram.get_form_energy_per_atom(entry)),
            'decomposition': {product.entry_id: float(amount) for product, amount in decomposition.items()},
        }
    stable = sorted(entry.entry_id for entry in diagram.stable_entries)
    return values, undefined, stable


def phase_diagram(entries: list[ComputedEntry]) -> PhaseDiagram:
    """The hull of ``entries``: pymatgen's ``PatchedPhaseDiagram`` (one diagram per maximal chemical space) when they
    span several spaces, a plain ``PhaseDiagram`` when they span one.

    Patched is exact (``tests/thermo/test_hull.py``: the union of the shared files agrees with one plain diagram to
    1e-13 eV/atom, and is 35x faster) and feasible over all of MP, where one diagram over ~89 elements is not; over a
    single space it has nothing to patch (and falls back to a numerical search for elemental compositions)."""
    spaces = PatchedPhaseDiagram.remove_redundant_spaces({frozenset(entry.elements) for entry in entries})
    return PatchedPhaseDiagram(entries) if len(spaces) > 1 else PhaseDiagram(entries)


def formation_energy(entry: ComputedEntry, references: Mapping[str, float]) -> float:
    """Formation energy per atom against fixed elemental energies per atom (``references`` by symbol)."""
    composition = entry.composition
    missing = [str(el) for el in composition.elements if str(el) not in references]
    if missing:
        raise KeyError(f'no elemental reference for {", ".join(missing)}')
    elemental = sum(amount * references[str(el)] for el, amount in composition.items())
    return float((entry.energy - elemental) / composition.num_atoms)


def _with_ids(entries: Mapping[str, ComputedEntry]) -> dict[str, ComputedEntry]:
    """Entries whose ``entry_id`` is their label, so that decompositions and stable sets name them."""
    for label, entry in entries.items():
        entry.entry_id = label
    return dict(entries)
