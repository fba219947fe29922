"""Per-entry thermodynamics of one model: formation energy and Ehull on both hulls, with the DFT values."""

from .identity import IdentityDict


class MliapThermoData(IdentityDict):
    """Energies per atom on the MP2020-corrected scale (eV/atom): ``e_form_dft``, ``e_form_model``,
    ``e_above_hull_dft``, ``e_above_hull_model`` (model hull), ``e_above_hull_model_dftref`` (DFT-reference
    hull), decompositions, ``status`` and ``reason`` when a quantity is undefined."""
