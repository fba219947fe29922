"""``compare_geometries``: one structure's DFT check from every SCF of its refinement series."""

from __future__ import annotations

from typing import Any

import numpy as np
from aiida.engine import calcfunction

from ..data.dft_check import MliapDftCheckData
from ..science.dft_check import GEOMETRIES, band_gap, is_metal, series_uncertainty

GPA_TO_KBAR = 10.0


@calcfunction
def compare_geometries(model, check, **nodes):
    """``model``: the MLIAP whose relaxation made the model geometry; ``check``: ``{'label', 'task', 'failures':
    {geometry: reason}, 'tolerance', 'max_refinements', 'smearing_tolerance', 'steps'}`` (per level what it
    changed: 'start', 'kpoints' or 'smearing'); ``nodes``: per level ``i`` and geometry ``g`` the SCF's
    ``parameters__g_i`` (output parameters), ``kpoints__g_i`` and ``bands__g_i``, and for the last level
    ``trajectory__g``.

    ΔE_geom = (E(model geometry) - E(reference geometry)) / n_atoms at the last level; its uncertainty is
    ``science.dft_check.series_uncertainty``: the change from the level before, where both levels treat each
    geometry alike (metal or gapped, a metal's smearing). ``ok`` when that is below ``tolerance``; ``unconverged``
    (values kept) when the series ended without;
    ``smearing_artefact`` when a gapped geometry keeps a smearing energy beyond tolerance; ``failed`` (with the
    reason) when an SCF failed.
    """
    info = check.get_dict()
    levels = levels_of(nodes, info.get('steps', []))
    record: dict[str, Any] = {
        'label': info['label'],
        'task': info['task'],
        'model_name': model.name,
        'model_sha256': model.sha256,
        'status': 'ok',
        'reason': None,
        'n_atoms': None,
        'delta_e_geom': None,
        'delta_e_geom_uncertainty': None,
        'tolerance': info.get('tolerance'),
        'levels': levels,
    }
    if levels:
        last = levels[-1]
        record['n_atoms'] = last['n_atoms']
        record['delta_e_geom'] = last['delta_e_geom']
        for geometry in GEOMETRIES:
            record[f'energy_{geometry}_geometry'] = last[f'energy_{geometry}']
            record[f'magnetization_{geometry}_geometry'] = last[f'magnetization_{geometry}']
            record.update(_stationarity(nodes.get(f'trajectory__{geometry}'), geometry))
            record[f'gap_{geometry}_geometry'] = last[f'gap_{geometry}']
        record['delta_e_geom_uncertainty'] = series_uncertainty(levels)
    record['status'], record['reason'] = _status(info, record, levels)
    return MliapDftCheckData(record)


def levels_of(nodes: dict[str, Any], steps: list[str]) -> list[dict[str, Any]]:
    """Per level with both SCFs: what it changed (``steps``), meshes, smearing, gaps, energies and ΔE_geom."""
    levels = []
    for level in range(len(nodes)):
        keys = {geometry: f'parameters__{geometry}_{level}' for geometry in GEOMETRIES}
        if not all(key in nodes for key in keys.values()):
            break
        parameters = {geometry: nodes[key].get_dict() for geometry, key in keys.items()}
        counts = {p['number_of_atoms'] for p in parameters.values()}
        if len(counts) != 1:
            raise ValueError(f'the two geometries hold different numbers of atoms: {counts}')
        n_atoms = counts.pop()
        entry: dict[str, Any] = {'level': level, 'step': steps[level] if level < len(steps) else None,
                                 'n_atoms': n_atoms}  # fmt: skip
        for geometry, values in parameters.items():
            mesh, _ = nodes[f'kpoints__{geometry}_{level}'].get_kpoints_mesh()
            smearing = values.get('energy_smearing')
            entry.update({
                f'mesh_{geometry}': list(mesh), f'energy_{geometry}': values['energy'],
                f'smearing_{geometry}': values.get('smearing_type'), f'degauss_{geometry}': values.get('degauss'),
                f'smearing_energy_per_atom_{geometry}': None if smearing is None else abs(smearing) / n_atoms,
                f'magnetization_{geometry}': values.get('total_magnetization'),
                f'gap_{geometry}': bands_gap(nodes[key]) if (key := f'bands__{geometry}_{level}') in nodes else None,
            })  # fmt: skip
        entry['delta_e_geom'] = (entry['energy_model'] - entry['energy_reference']) / n_atoms
        for geometry in GEOMETRIES:  # a sampled gap bounds the true one from above: a metal once, a metal after
            before = levels[-1][f'metal_{geometry}'] if levels else False
            entry[f'metal_{geometry}'] = before or is_metal(entry[f'gap_{geometry}'])
        levels.append(entry)
    return levels


def bands_gap(bands) -> float:
    """The band gap (eV) of pw.x's output bands, by their k-point weights (``science.dft_check.band_gap``)."""
    eigenvalues, occupations = bands.get_bands(also_occupations=True)
    _, weights = bands.get_kpoints(also_weights=True)
    return band_gap(eigenvalues, occupations, weights)


def _stationarity(trajectory, geometry: str) -> dict[str, float | None]:
    """Largest atomic force (eV/Å) and pressure (kbar) of the last SCF at a geometry: is it a stationary point in QE?"""
    keys = (f'max_force_{geometry}_geometry', f'pressure_{geometry}_geometry')
    if trajectory is None:
        return dict.fromkeys(keys)
    names = trajectory.get_arraynames()
    force = float(np.linalg.norm(trajectory.get_array('forces')[-1], axis=1).max()) if 'forces' in names else None
    stress = trajectory.get_array('stress')[-1] if 'stress' in names else None
    pressure = None if stress is None else float(np.trace(stress) / 3 * GPA_TO_KBAR)
    return dict(zip(keys, (force, pressure), strict=True))


def _status(info: dict[str, Any], record: dict[str, Any], levels: list[dict[str, Any]]) -> tuple[str, str | None]:
    failures = dict(info.get('failures', {}))
    if failures or not levels:
        failures = failures or {'both': 'no SCF finished'}
        return 'failed', '; '.join(f'{geometry} geometry: {failures[geometry]}' for geometry in sorted(failures))
    last, tolerance = levels[-1], info.get('smearing_tolerance')
    for geometry in GEOMETRIES:
        gap, smearing = record.get(f'gap_{geometry}_geometry'), last[f'smearing_energy_per_atom_{geometry}']
        if tolerance is not None and not last[f'metal_{geometry}'] and smearing is not None and smearing > tolerance:
            return 'smearing_artefact', (f'{geometry} geometry: |-TS| = {1000 * smearing:.2f} meV/atom with a '
                                         f'{gap:.2f} eV gap after every repair')  # fmt: skip
    uncertainty = record['delta_e_geom_uncertainty']
    if uncertainty is None and len(levels) < 2:
        return 'unconverged', 'no refinement ran (max_refinements 0): the uncertainty of ΔE_geom is unknown'
    if uncertainty is None:
        return 'unconverged', ('the last level treats a geometry differently from the one before (metal or gapped, '
                               "a metal's smearing): the uncertainty of ΔE_geom is unknown")  # fmt: skip
    if uncertainty >= info['tolerance']:
        return 'unconverged', (f'ΔE_geom not converged to {1000 * info["tolerance"]:.1f} meV/atom within '
                               f'{info["max_refinements"]} refinements: the last changed it by '
                               f'{1000 * uncertainty:.2f} meV/atom')  # fmt: skip
    return 'ok', None
