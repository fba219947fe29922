"""The DFT check's verdicts only beyond the numerical uncertainty plus the QE-vs-VASP allowance; the band gap that
decides whether smearing may leave a -TS."""

import numpy as np
import pytest

from aiida_mliap.science.dft_check import CODE_ALLOWANCE, GAP_MIN, band_gap, dft_verdict


@pytest.mark.parametrize(
    'delta, uncertainty, verdict',
    [
        (-0.080, 0.004, 'confirmed'),
        (0.020, 0.004, 'contradicted'),
        (0.00104, 0.0, 'cannot tell'),  # mp-736's 1.04 meV/atom: "contradicted" under the old fixed 1 meV threshold
        (0.006, 0.003, 'cannot tell'),  # beyond the allowance, not beyond allowance + uncertainty
        (-(CODE_ALLOWANCE + 0.0021), 0.002, 'confirmed'),
        (None, None, None),
        (float('nan'), 0.001, None),
    ],
)
def test_verdict_beyond_uncertainty_and_allowance(delta, uncertainty, verdict):
    assert dft_verdict(delta, uncertainty) == verdict


def test_band_gap_per_spin_channel():
    eigenvalues = np.array([[[-5.0, -1.0, 2.0, 3.0]], [[-4.8, -1.2, 2.1, 3.3]]])  # (spin, k, band)
    occupations = np.array([[[1.0, 0.98, 0.02, 0.0]], [[1.0, 1.0, 0.0, 0.0]]])
    gap = band_gap(eigenvalues, occupations)
    assert gap == pytest.approx(2.0 - (-1.0)) and gap > GAP_MIN
    # A metal on a coarse mesh: a band crosses the Fermi level between two k-points, which hold 2 and 1 occupied
    # bands (1.5 bands filled in all); the sampled levels are 0.4 eV apart, yet it is no gap.
    metal = np.array([[[-2.0, -0.2, 1.0], [-2.1, 0.2, 1.2]]]), np.array([[[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]])
    assert band_gap(*metal) == 0.0
    assert band_gap(np.array([[-5.0, 1.0], [-4.0, 2.0]]), np.array([[2.0, 0.0], [2.0, 0.0]])) == pytest.approx(5.0)


def test_band_gap_from_the_electron_count_not_from_the_smearing():
    """A 0.7 eV gap under cold smearing 0.37 eV wide: the smearing occupies conduction states at one k-point and not
    at the other (the old rule, by occupied states per k-point, called it a metal), yet every spin channel holds a
    whole number of bands and the bands do not overlap: gapped."""
    eigenvalues = np.array([[-3.0, -0.1, 0.6, 2.0], [-2.5, -0.4, 1.1, 2.5]])  # (k, band), no spin: 2 per band
    occupations = np.array([[2.0, 1.7, 0.3, 0.0], [2.0, 2.0, 0.0, 0.0]])  # 4 electrons at each k-point
    assert band_gap(eigenvalues, occupations) == pytest.approx(0.6 - (-0.1))
    assert band_gap(eigenvalues, occupations, weights=[1, 3]) == pytest.approx(0.7)  # 4 electrons either way
    # A partly filled band: 3 electrons per cell without spin, one and a half bands.
    assert band_gap(eigenvalues, np.array([[2.0, 1.0, 0.0, 0.0], [2.0, 1.0, 0.0, 0.0]])) == 0.0
    # Two bands that overlap across the zone (band 2 at k1 above band 3 at k2): a compensated metal.
    overlap = np.array([[-3.0, 0.5, 1.5, 2.0], [-2.5, -0.4, 0.2, 2.5]])
    assert band_gap(overlap, np.array([[2.0, 2.0, 0.0, 0.0], [2.0, 2.0, 0.0, 0.0]])) == 0.0
    # Weights decide the count: 2 bands filled at a k-point of weight 3, 1.5 at one of weight 1, is 1.875 bands.
    partial = np.array([[2.0, 1.0, 0.0, 0.0], [2.0, 2.0, 0.0, 0.0]])
    assert band_gap(eigenvalues, partial, weights=[1, 3]) == 0.0


def level(delta, step, gap_model, gap_reference=3.0, smearing='mv', degauss=0.37):
    return {'delta_e_geom': delta, 'step': step, 'gap_model': gap_model, 'gap_reference': gap_reference,
            'smearing_model': smearing, 'degauss_model': degauss, 'smearing_reference': 'gaussian',
            'degauss_reference': 0.1}  # fmt: skip


def test_changes_only_between_levels_that_treat_each_geometry_alike():
    from aiida_mliap.science.dft_check import level_changes, series_uncertainty

    # The model geometry gapped on the coarse mesh, metallic on the next two: the first change crosses the switch.
    levels = [level(-0.440, 'start', 1.37), level(-0.382, 'kpoints', 0.0), level(-0.388, 'kpoints', 0.0)]
    assert level_changes(levels) == [None, pytest.approx(0.006)]
    assert series_uncertainty(levels) == pytest.approx(0.006)
    assert series_uncertainty(levels[:2]) is None  # a switch at the last level: unknown, not zero
    # Gapped at both levels: a change of the (repaired) smearing width does not matter.
    gapped = [level(-0.40, 'start', 0.9, smearing='gaussian', degauss=0.17),
              level(-0.41, 'kpoints', 0.7, smearing='gaussian', degauss=0.09)]  # fmt: skip
    assert level_changes(gapped) == [pytest.approx(0.01)]
    # A metal's smearing: halved by a smearing step, comparable; changed by anything else, not.
    metal = [level(-0.090, 'start', 0.0), level(-0.092, 'kpoints', 0.0), level(-0.095, 'smearing', 0.0, degauss=0.18)]
    assert series_uncertainty(metal) == pytest.approx(0.003)  # the larger of the sampling and smearing changes
    metal[2]['step'] = 'kpoints'
    assert level_changes(metal)[-1] is None
    # Metallic once, metallic after: a gap a later mesh shows does not make the level 'gapped' again.
    sticky = [level(-0.38, 'kpoints', 0.0), level(-0.39, 'kpoints', 0.73)]
    sticky[0]['metal_model'], sticky[1]['metal_model'] = True, True
    assert level_changes(sticky) == [pytest.approx(0.01)]


def test_no_verdict_without_an_uncertainty():
    assert dft_verdict(-0.4, None) == 'cannot tell'
