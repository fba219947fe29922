"""``compare_geometries``: one structure's DFT check from the output parameters of its two SCFs."""

from __future__ import annotations

from aiida.engine import calcfunction

from ..data.dft_check import MliapDftCheckData

GEOMETRIES = ('model', 'reference')


@calcfunction
def compare_geometries(model, check, model_scf=None, reference_scf=None):
    """``model``: the MLIAP whose relaxation made the model geometry; ``check``: ``{'label', 'task', 'failures':
    {geometry: reason}}``; ``<geometry>_scf``: the ``output_parameters`` of each SCF that finished.

    ΔE_geom = (E(model geometry) - E(reference geometry)) / n_atoms; a failed SCF leaves it undefined, with its reason.
    """
    info = check.get_dict()
    scf = {'model': model_scf, 'reference': reference_scf}
    record = {
        'label': info['label'],
        'task': info['task'],
        'model_name': model.name,
        'model_sha256': model.sha256,
        'status': 'ok',
        'reason': None,
        'n_atoms': None,
        'delta_e_geom': None,
    }
    failures = dict(info.get('failures', {}))
    failures.update({geometry: 'no output parameters' for geometry in GEOMETRIES
                     if scf[geometry] is None and geometry not in failures})  # fmt: skip
    for geometry in GEOMETRIES:
        if scf[geometry] is not None:
            parameters = scf[geometry].get_dict()
            record[f'energy_{geometry}_geometry'] = parameters['energy']
            record[f'magnetization_{geometry}_geometry'] = parameters.get('total_magnetization')
            record['n_atoms'] = parameters['number_of_atoms']
    if failures:
        record['status'] = 'failed'
        record['reason'] = '; '.join(f'{geometry} geometry: {failures[geometry]}' for geometry in sorted(failures))
    else:
        counts = {scf[geometry]['number_of_atoms'] for geometry in GEOMETRIES}
        if len(counts) != 1:
            raise ValueError(f'the two geometries of {info["label"]} hold different numbers of atoms: {counts}')
        record['delta_e_geom'] = (record['energy_model_geometry'] - record['energy_reference_geometry']) / counts.pop()
    return MliapDftCheckData(record)
