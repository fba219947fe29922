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

from ..contract.schema import ENERGY_SCALES


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
    hull: Mapping[str, ComputedEntry] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, str], list[str]]:
    """Formation energy, Ehull and decomposition of every entry on the hull built from ``entries`` alone.

    ``ground_states`` (element -> label, default: the lowest elemental entry of ``entries``) fix which elemental
    entries are the hull's corners: a model hull takes the model's energies of the *DFT* ground states, so that
    both hulls stand on the same phases. Other elemental entries are placed against that hull. An entry with an
    element whose ground state is not among ``entries`` gets no value and a reason (never another reference).
    ``hull``: the vertices of a larger set's hull (``hull_vertices``), which ``entries``, one chunk of that set, are
    placed against instead of their own: the same values as over the whole set, from bounded inputs.
    Returns (values by label, reasons by label, labels of the stable entries).
    """
    if ground_states is None:
        ground_states = elemental_ground_states(entries)
    usable, undefined = usable_entries(entries, ground_states, entries if hull is None else hull)
    if not usable:
        return {}, undefined, []
    usable = _with_ids(usable)
    corners = set(ground_states.values())
    if hull is None:
        on_hull = [e for label, e in usable.items() if not e.composition.is_element or label in corners]
    else:
        on_hull = list(_with_ids(dict(hull)).values())
    diagram = phase_diagram(on_hull)
    stable = sorted(entry.entry_id for entry in diagram.stable_entries)
    vertices = set(stable)
    values = {}
    for label, entry in usable.items():
        # A vertex is on the hull by definition: exactly 0, as a plain PhaseDiagram says of its own stable entries.
        # Computed instead (a patched diagram, or a chunk's entry against vertices rebuilt from records) it is 0 to
        # ~1e-15 either side, which flips "stable" at the threshold of 0.
        if label in vertices:
            decomposition, e_above_hull = {entry: 1.0}, 0.0
        else:
            decomposition, e_above_hull = diagram.get_decomp_and_e_above_hull(entry, allow_negative=True)
        values[label] = {
            'e_above_hull': float(e_above_hull),
            'e_form': formation_energy(entry, elemental_references)
            if elemental_references
            else float(diagram.get_form_energy_per_atom(entry)),
            'decomposition': {product.entry_id: float(amount) for product, amount in decomposition.items()},
        }
    return values, undefined, stable


def usable_entries(
    entries: Mapping[str, ComputedEntry], ground_states: Mapping[str, str], available: Mapping[str, Any]
) -> tuple[dict[str, ComputedEntry], dict[str, str]]:
    """The entries whose every element has its ground state among ``available``, and why each other one has not."""
    usable, undefined = {}, {}
    for label, entry in entries.items():
        missing = sorted(
            f'{el} ({ground_states[str(el)]})' if str(el) in ground_states else str(el)
            for el in entry.composition.elements
            if ground_states.get(str(el)) not in available
        )
        if missing:
            undefined[label] = f'no evaluated elemental ground state for {", ".join(missing)}'
        else:
            usable[label] = entry
    return usable, undefined


def hull_candidates(entries: Mapping[str, ComputedEntry]) -> tuple[list[str], float]:
    """The labels of one chunk of a large set that can be vertices of the whole set's hull, and the stand-in corner
    energy (eV/atom) that decided it.

    A vertex of a set's lower hull is a vertex of any subset holding it, so a compound that is not on the hull of
    its chunk is on no larger hull. The chunk may lack the elemental ground states, so its compounds are put on a
    hull over stand-in corners above every entry (``hull_vertices`` checks that the real corners are lower); every
    elemental entry is kept, as the ground states are only known over the whole set."""
    compounds = {label: entry for label, entry in entries.items() if not entry.composition.is_element}
    elements = sorted({str(el) for entry in entries.values() for el in entry.composition.elements})
    ceiling = max([0.0, *(float(entry.energy_per_atom) for entry in entries.values())]) + STAND_IN_MARGIN
    kept = sorted(label for label, entry in entries.items() if entry.composition.is_element)
    if compounds:
        stand_ins = [ComputedEntry(el, ceiling, entry_id=f'stand-in {el}') for el in elements]
        diagram = phase_diagram([*_with_ids(compounds).values(), *stand_ins])
        kept += sorted(entry.entry_id for entry in diagram.stable_entries if entry.entry_id in compounds)
    return kept, ceiling


# eV/atom above the highest entry of a chunk: stand-in corners far above any real one.
STAND_IN_MARGIN = 100.0


def hull_vertices(
    candidates: Mapping[str, ComputedEntry], ground_states: Mapping[str, str], ceiling: float
) -> dict[str, ComputedEntry]:
    """The vertices of the hull over ``candidates`` (every chunk's ``hull_candidates``) standing on the
    ``ground_states``: what ``hull_quantities(..., hull=)`` places each chunk against.

    Refuses a ground state at or above ``ceiling`` (the lowest stand-in corner any chunk used): the chunks' candidates
    would then not be a superset of the vertices."""
    corners = {label: candidates[label] for label in ground_states.values() if label in candidates}
    high = {label: float(entry.energy_per_atom) for label, entry in corners.items() if entry.energy_per_atom >= ceiling}
    if high:
        raise ValueError(f'elemental ground states at or above the stand-in corners ({ceiling} eV/atom): {high}')
    usable, _ = usable_entries(candidates, ground_states, candidates)
    on_hull = [e for label, e in _with_ids(usable).items() if not e.composition.is_element or label in corners]
    if not on_hull:
        return {}
    diagram = phase_diagram(on_hull)
    return {entry.entry_id: entry for entry in diagram.stable_entries}


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
