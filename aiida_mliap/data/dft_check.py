"""One structure's DFT check: pw.x energies at the model's and at the reference geometry, and their difference."""

from .identity import IdentityDict


class MliapDftCheckData(IdentityDict):
    """``label``, ``model_name``, ``model_sha256``, ``task``, ``status`` (``ok`` or ``failed``) and ``reason``,
    ``n_atoms``, ``energy_model_geometry`` and ``energy_reference_geometry`` (eV, the cell), ``delta_e_geom`` (eV/atom:
    model geometry minus reference; < 0 when the model found a structure DFT also puts lower) and the total
    magnetisations (μB/cell). Made by ``compare_geometries`` from the two SCFs' output parameters."""
