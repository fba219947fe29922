"""Hull and formation energies by hand (unary, binary), MP2020 on GGA/GGA+U, missing references (no AiiDA)."""

from __future__ import annotations

import pytest
from pymatgen.entries.computed_entries import ComputedEntry

from aiida_mliap.science.hull import correct_model_entries, formation_energy, hull_quantities


def test_unary_system_by_hand():
    """Two Li polymorphs: the lower one is the hull and the reference; the other sits 0.1 eV/atom above."""
    entries = {'li_bcc': ComputedEntry('Li2', -4.0), 'li_fcc': ComputedEntry('Li', -1.9)}
    values, undefined, stable = hull_quantities(entries)
    assert not undefined and stable == ['li_bcc']
    assert values['li_bcc'] == {'e_above_hull': 0.0, 'e_form': 0.0, 'decomposition': {'li_bcc': 1.0}}
    assert values['li_fcc']['e_above_hull'] == pytest.approx(0.1)
    assert values['li_fcc']['e_form'] == pytest.approx(0.1)


def test_binary_system_by_hand():
    """Li (-2 eV/atom), O (-5 eV/atom), Li2O at -6 eV/atom: Ef = -6 - (2*-2 + -5)/3 = -3 eV/atom.
    LiO at -4.5 eV/atom lies 1.0 eV/atom above the Li2O-O tie line? Hull at x_O = 1/2 between Li2O (x=1/3, -3)
    and O (x=1, 0): -3 * (1 - 0.5) / (1 - 1/3) = -2.25; Ef(LiO) = -4.5 + 3.5 = -1.0, so Ehull = 1.25."""
    entries = {
        'li': ComputedEntry('Li', -2.0),
        'o': ComputedEntry('O2', -10.0),
        'li2o': ComputedEntry('Li2O', -18.0),
        'lio': ComputedEntry('LiO', -9.0),
    }
    values, undefined, stable = hull_quantities(entries)
    assert not undefined and stable == ['li', 'li2o', 'o']
    assert values['li2o']['e_form'] == pytest.approx(-3.0)
    assert values['lio']['e_form'] == pytest.approx(-1.0)
    assert values['lio']['e_above_hull'] == pytest.approx(1.25)
    assert values['lio']['decomposition'] == pytest.approx({'li2o': 0.75, 'o': 0.25})


def test_missing_elemental_reference_leaves_values_undefined():
    """No evaluated Li entry: entries with Li get a reason, never a hull completed from elsewhere."""
    entries = {'o': ComputedEntry('O2', -10.0), 'li2o': ComputedEntry('Li2O', -18.0)}
    values, undefined, stable = hull_quantities(entries)
    assert set(values) == {'o'} and stable == ['o']
    assert undefined == {'li2o': 'no evaluated elemental ground state for Li'}


def test_fixed_elemental_references():
    entry = ComputedEntry('Li2O', -18.0)
    assert formation_energy(entry, {'Li': -2.0, 'O': -5.0}) == pytest.approx(-3.0)
    with pytest.raises(KeyError, match='no elemental reference for O'):
        formation_energy(entry, {'Li': -2.0})


def gga_u_entry(formula: str, energy: float, run_type: str) -> ComputedEntry:
    hubbard = run_type == 'GGA+U'
    return ComputedEntry(
        formula,
        energy,
        parameters={'run_type': run_type, 'is_hubbard': hubbard, 'hubbards': {'Fe': 5.3, 'O': 0.0} if hubbard else {}},
        data={'oxide_type': 'oxide', 'oxidation_states': {'Fe': 3.0, 'O': -2.0}},
    )


def test_mp2020_corrects_raw_models_only():
    """GGA+U Fe2O3 gets the oxide and Fe U corrections; GGA Fe none; a corrected-scale model is left alone."""
    raw = {'fe2o3': gga_u_entry('Fe2O3', -38.0, 'GGA+U'), 'fe': gga_u_entry('Fe', -8.3, 'GGA')}
    corrected, refused = correct_model_entries(raw, 'raw_dft')
    assert not refused
    assert corrected['fe'].correction == 0.0
    # MP2020: oxide -0.687 eV per O, Fe (U) -2.256 eV per Fe.
    assert corrected['fe2o3'].correction == pytest.approx(3 * -0.687 + 2 * -2.256, abs=1e-9)
    untouched, _ = correct_model_entries(raw, 'mp2020_corrected')
    assert untouched['fe2o3'].correction == 0.0 and untouched['fe2o3'].energy == -38.0


def test_mp2020_refusal_is_recorded():
    """A GGA+U entry without Hubbard values for Fe is not correctable: refused with a reason, not dropped."""
    odd = ComputedEntry('Fe2O3', -38.0, parameters={'run_type': 'GGA+U', 'is_hubbard': True, 'hubbards': {}})
    corrected, refused = correct_model_entries({'odd': odd}, 'raw_dft')
    assert not corrected and 'odd' in refused and 'MP2020' in refused['odd']


def test_unknown_energy_scale():
    with pytest.raises(ValueError, match='energy_scale'):
        correct_model_entries({}, 'corrected')


def union_entries(shared_data) -> dict:
    """The 1,894 unique entries of the three same-release shared files, by MP id."""
    import gzip
    import json

    from pymatgen.entries.computed_entries import ComputedStructureEntry

    entries = {}
    for name in ('Li-Fe-P-O', 'Li-Co-Ni-O', 'Na-Fe-P-O'):
        with gzip.open(shared_data / 'mp' / f'{name}.json.gz', 'rt') as handle:
            for data in json.load(handle):
                entry = ComputedStructureEntry.from_dict(data)
                entries[entry.entry_id] = entry
    return entries


def test_patched_hull_of_several_chemical_spaces_equals_one_plain_diagram(shared_data):
    """The union of the three shared files (7 elements, 3 maximal spaces): pymatgen's patched diagram, which is what
    scales to all of MP, against one plain PhaseDiagram, for every entry."""
    from pymatgen.analysis.phase_diagram import PatchedPhaseDiagram, PhaseDiagram

    from aiida_mliap.science.hull import phase_diagram

    entries = list(union_entries(shared_data).values())
    patched, plain = phase_diagram(entries), PhaseDiagram(entries)
    assert isinstance(patched, PatchedPhaseDiagram) and len(entries) == 1894
    for entry in entries:
        assert patched.get_e_above_hull(entry, allow_negative=True) == pytest.approx(
            plain.get_e_above_hull(entry, allow_negative=True), abs=1e-6
        )
        assert patched.get_form_energy_per_atom(entry) == pytest.approx(plain.get_form_energy_per_atom(entry), abs=1e-6)
    assert {e.entry_id for e in patched.stable_entries} == {e.entry_id for e in plain.stable_entries}
    lithium = [entry for entry in entries if entry.composition.reduced_formula == 'Li']
    assert type(phase_diagram(lithium)) is PhaseDiagram  # one space: nothing to patch


def test_hull_of_chunks_equals_the_hull_of_all(shared_data):
    """The union of the three shared files dealt into 4 chunks: the union of each chunk's ``hull_candidates`` holds
    every vertex of the hull of all entries, ``hull_vertices`` finds exactly them, and every entry placed against
    those vertices alone gets the Ehull and formation energy of the hull of all (both to 1e-9 eV/atom)."""
    from aiida_mliap.science.hull import (
        elemental_ground_states,
        hull_candidates,
        hull_quantities,
        hull_vertices,
    )

    entries = union_entries(shared_data)
    ground_states = elemental_ground_states(entries)
    whole, _, stable = hull_quantities(entries, ground_states=ground_states)

    labels = sorted(entries)
    candidates, ceilings = {}, []
    for chunk in range(4):
        part = {label: entries[label] for label in labels[chunk::4]}
        kept, ceiling = hull_candidates(part)
        candidates.update({label: part[label] for label in kept})
        ceilings.append(ceiling)
        assert {label for label in part if part[label].composition.is_element} <= set(kept)
    assert set(stable) <= set(candidates) and len(candidates) < len(entries) / 2
    vertices = hull_vertices(candidates, ground_states, min(ceilings))
    assert set(vertices) == set(stable)
    chunked, _, _ = hull_quantities(entries, ground_states=ground_states, hull=vertices)
    for label, values in whole.items():
        assert chunked[label]['e_above_hull'] == pytest.approx(values['e_above_hull'], abs=1e-9), label
        assert chunked[label]['e_form'] == pytest.approx(values['e_form'], abs=1e-9), label
        assert (values['e_above_hull'] == 0) == (label in vertices)  # vertices exactly 0: classification is stable
    with pytest.raises(ValueError, match='at or above the stand-in corners'):
        hull_vertices(candidates, ground_states, ceiling=-20.0)
