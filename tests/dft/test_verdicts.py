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


def test_band_gap_from_occupations():
    eigenvalues = np.array([[[-5.0, -1.0, 2.0, 3.0]], [[-4.8, -1.2, 2.1, 3.3]]])  # (spin, k, band)
    occupations = np.array([[[1.0, 0.98, 0.02, 0.0]], [[1.0, 1.0, 0.0, 0.0]]])
    gap = band_gap(eigenvalues, occupations)
    assert gap == pytest.approx(2.0 - (-1.0)) and gap > GAP_MIN
    # A metal on a coarse mesh: a band crosses the Fermi level between two k-points, which hold 2 and 1 occupied
    # bands; the sampled levels are 0.4 eV apart, yet it is no gap.
    metal = np.array([[[-2.0, -0.2, 1.0], [-2.1, 0.2, 1.2]]]), np.array([[[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]])
    assert band_gap(*metal) == 0.0
    assert band_gap(np.array([[-5.0, 1.0], [-4.0, 2.0]]), np.array([[2.0, 0.0], [2.0, 0.0]])) == pytest.approx(5.0)
