"""The softening measurement of one set of models on one set of perturbed configurations."""

from .identity import IdentityDict


class MliapSofteningData(IdentityDict):
    """``models`` (per key its name and sha256); ``softening``: per model and quantity (``forces``, ``stress``,
    ``energy``) ``n``, ``n_parents``, ``slope`` (model on DFT, through the origin; < 1: softer than DFT) with
    ``slope_ci95`` (bootstrap over parent structures), ``mae`` and ``rmse``; ``softening_by_chemsys`` the same per
    chemical system with enough parents; ``numerical_error``: per check (``kpoints``: a denser mesh; ``smearing``:
    half the smearing; ``cutoff``: higher cutoffs) how much the DFT forces (eV/Å), stresses (GPa) and energies
    (eV/atom) of one configuration per parent change; ``failures``: what has no DFT or no
    model value, and why. Made by
    ``compare_forces`` from the DFT and model nodes themselves (``analysis.softening.load_force_pairs`` rebuilds
    the compared values from them)."""
