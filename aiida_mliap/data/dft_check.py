"""One structure's DFT check: pw.x energies at the model's and at the reference geometry, and their difference."""

from .identity import IdentityDict


class MliapDftCheckData(IdentityDict):
    """``label``, ``model_name``, ``model_sha256``, ``task``; ``status``: ``ok`` (converged), ``unconverged`` (the
    refinement cap reached first; values kept), ``smearing_artefact`` (a gapped geometry kept a smearing energy) or
    ``failed``, with ``reason``; ``delta_e_geom`` (eV/atom: model geometry minus reference at the last level; < 0
    when the model found a structure DFT also puts lower) and ``delta_e_geom_uncertainty`` (eV/atom: the last
    change between comparable levels, None when unknown); per geometry the energy (eV, the cell), total magnetisation
    (μB/cell), band gap (eV), largest force (eV/Å) and pressure (kbar); ``levels``: meshes, smearing, gaps, metal
    flags and energies of every level. Made by
    ``compare_geometries`` from all SCFs of the series."""
