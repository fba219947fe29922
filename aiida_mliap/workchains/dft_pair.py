"""``MliapDftPairWorkChain``: one structure's ΔE_geom, refined until it stops changing.

Level 0 runs an SCF at the model's and at the reference geometry, each on its own k-point mesh at
``kpoints_distance`` (a mesh belongs to a cell: the MP cell's mesh on a cell relaxed to half its volume was off by
300 meV/atom). Each further level changes one setting, as a convergence test does: the k-point spacing (times
``refinement``) until ΔE_geom changes by less than ``tolerance``; then, where a geometry is metallic, its smearing
(halved, same meshes); a smearing step that changes ΔE_geom beyond tolerance sends the series back to denser
sampling at the new smearing. Halving the smearing together with each refinement was tried first: on a metallic
CHGNet cell the series swung by 37 and 18 meV/atom, the sampling never catching up with the narrower smearing.
Each level tells metal from gapped by the bands against the electron count. A gap read on a mesh bounds the true
one from above (a coarse mesh can miss where bands overlap, never invent an overlap), so a geometry found metallic
stays metallic for the rest of its series (protocol smearing, no repair); its switch from gapped makes that change
no measure of convergence, and the comparison starts again (``science.dft_check.level_changes``). The series ends
converged or at ``max_refinements``; the last comparable change is the difference's numerical uncertainty.
Every SCF is a ``MliapPwBaseWorkChain`` (smearing artefacts in gapped systems repaired there) with forces and
stress, and ``compare_geometries`` reads all of them.
"""

from __future__ import annotations

import copy

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, while_
from aiida_quantumespresso.calculations.functions.create_kpoints_from_distance import create_kpoints_from_distance

from ..calculations.dft_check import compare_geometries, levels_of
from ..data.dft_check import MliapDftCheckData
from ..data.model import MliapModelData
from ..science.dft_check import DFT_DEFAULTS, GEOMETRIES, level_changes, occupation_state
from .dft_scf import MliapPwBaseWorkChain

# The SCF's own k-points and structure come from this work chain, per geometry and level.
SCF_EXCLUDED = ('pw.structure', 'kpoints', 'kpoints_distance', 'kpoints_force_parity', 'metal')


def failure_reason(node: orm.WorkflowNode) -> str:
    """Why an SCF work chain failed: its exit message and that of its last calculation (what pw.x reported)."""
    message = node.exit_message or node.process_state.value
    reason = f'{node.process_label}<{node.pk}> exit status {node.exit_status}: {message}'
    calculations = sorted(node.called, key=lambda call: call.ctime)
    if calculations:
        last = calculations[-1]
        reason += f'; {last.process_label}<{last.pk}> exit status {last.exit_status}: {last.exit_message}'
    return reason


def last_calculation(node: orm.WorkflowNode) -> orm.CalcJobNode:
    """The last pw.x run of an SCF work chain: after any restart or artefact repair."""
    return max((call for call in node.called if isinstance(call, orm.CalcJobNode)), key=lambda call: call.ctime)


def occupations_of(parameters: orm.Dict) -> dict:
    """Smearing type and width (Ry) of a pw.x parameter set."""
    system = parameters.get_dict().get('SYSTEM', {})
    return {'smearing': system.get('smearing'), 'degauss': system.get('degauss')}


class MliapDftPairWorkChain(WorkChain):
    """ΔE_geom of one structure with its numerical uncertainty."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MliapPwBaseWorkChain, namespace='scf', exclude=SCF_EXCLUDED)
        spec.input('model_structure', valid_type=orm.StructureData, help='The geometry the model relaxed to.')
        spec.input('reference_structure', valid_type=orm.StructureData, help='The reference (MP) geometry.')
        spec.input('model', valid_type=MliapModelData, help='The model whose relaxation made the model geometry.')
        spec.input('label', valid_type=orm.Str)
        spec.input('task', valid_type=orm.Str, default=lambda: orm.Str('relax'))
        spec.input('kpoints_distance', valid_type=orm.Float,
                   default=lambda: orm.Float(DFT_DEFAULTS['kpoints_distance']),
                   help='k-point spacing (Å⁻¹) of the first level; each geometry gets its own mesh.')  # fmt: skip
        spec.input('refinement', valid_type=orm.Float, default=lambda: orm.Float(DFT_DEFAULTS['refinement']),
                   help='Factor on the spacing per sampling level.')  # fmt: skip
        spec.input('max_refinements', valid_type=orm.Int, default=lambda: orm.Int(DFT_DEFAULTS['max_refinements']),
                   help='Levels after the first; a difference not converged by then is `unconverged`.')  # fmt: skip
        spec.input('tolerance', valid_type=orm.Float, default=lambda: orm.Float(DFT_DEFAULTS['tolerance']),
                   help='eV/atom: converged when a refinement changes ΔE_geom by less.')  # fmt: skip
        spec.outline(cls.setup, while_(cls.should_refine)(cls.run_level, cls.inspect_level), cls.results)
        spec.output('check', valid_type=MliapDftCheckData)

    def setup(self):
        occupations = occupations_of(self.inputs.scf.pw.parameters)
        self.ctx.occupations = {geometry: dict(occupations) for geometry in GEOMETRIES}
        self.ctx.first_occupations = occupations
        self.ctx.level, self.ctx.spacing = 0, self.inputs.kpoints_distance.value
        self.ctx.failures, self.ctx.done, self.ctx.steps, self.ctx.metallic = {}, False, ['start'], []

    def should_refine(self) -> bool:
        return not self.ctx.done

    def run_level(self):
        futures = {}
        for geometry in GEOMETRIES:
            structure = self.inputs[f'{geometry}_structure']
            kpoints = create_kpoints_from_distance(
                structure, orm.Float(self.ctx.spacing), orm.Bool(False),
                metadata={'call_link_label': f'kpoints_{geometry}_{self.ctx.level}'},
            )  # fmt: skip
            inputs = AttributeDict(self.exposed_inputs(MliapPwBaseWorkChain, 'scf'))
            inputs.pw = AttributeDict(inputs.pw)
            parameters = copy.deepcopy(inputs.pw.parameters.get_dict())
            parameters.setdefault('CONTROL', {}).update(tprnfor=True, tstress=True)
            system = parameters.setdefault('SYSTEM', {})
            system.update({key: value for key, value in self.ctx.occupations[geometry].items() if value is not None})
            inputs.pw.update(structure=structure, parameters=orm.Dict(parameters))
            inputs.kpoints = kpoints
            inputs.metal = orm.Bool(geometry in self.ctx.metallic)
            inputs.metadata = {'call_link_label': f'scf_{geometry}_{self.ctx.level}',
                               'label': f'{self.inputs.label.value} ({geometry}, level {self.ctx.level})'}  # fmt: skip
            futures[f'{geometry}_{self.ctx.level}'] = self.submit(MliapPwBaseWorkChain, **inputs)
        return ToContext(**futures)

    def inspect_level(self):
        level = self.ctx.level
        nodes = {geometry: self.ctx[f'{geometry}_{level}'] for geometry in GEOMETRIES}
        failed = {geometry: failure_reason(node) for geometry, node in nodes.items() if not node.is_finished_ok}
        if failed:
            self.ctx.failures, self.ctx.done = failed, True
            return
        levels = levels_of(self.series_nodes(), self.ctx.steps)
        change = level_changes(levels)[-1] if level else None
        degauss = {g: o['degauss'] for g, o in self.ctx.occupations.items()}
        if not level:
            comparison = ''
        elif change is None:
            comparison = ', not comparable with the level before (metal/gapped or smearing changed)'
        else:
            comparison = f', changed by {1000 * change:.2f}'
        self.report(f'level {level} ({self.ctx.steps[-1]}; spacing {self.ctx.spacing:.3f} 1/Å, degauss {degauss} Ry): '
                    f'ΔE_geom {1000 * levels[-1]["delta_e_geom"]:.2f} meV/atom{comparison}')  # fmt: skip
        settled = {geometry: occupations_of(last_calculation(node).inputs.parameters)  # what each SCF settled on
                   for geometry, node in nodes.items()}  # fmt: skip
        metals = {  # no gap on this mesh or an earlier one: the smeared energy depends on the smearing
            geometry for geometry in GEOMETRIES
            if occupation_state(levels[-1], geometry)[0] == 'metal' and settled[geometry]['degauss']
        }  # fmt: skip
        self.ctx.metallic = sorted(set(self.ctx.metallic) | metals)
        converged = change is not None and change < self.inputs.tolerance.value
        finished = converged and (self.ctx.steps[-1] == 'smearing' or not metals)  # a metal's smearing checked too
        if finished or level >= self.inputs.max_refinements.value:
            self.ctx.done = True
            return
        step = 'smearing' if converged else 'kpoints'
        for geometry, occupations in settled.items():
            if geometry in metals and occupations['smearing'] != self.ctx.first_occupations['smearing']:
                # The gap a coarse mesh showed, for which the smearing was repaired, closes on this one: a metal
                # again, with the protocol's smearing (a narrow Gaussian on a metal converged slowly, flipping spin).
                self.report(f'{geometry} geometry: metallic on this mesh after a gapped coarser one: back to '
                            f'{self.ctx.first_occupations}')  # fmt: skip
                occupations = dict(self.ctx.first_occupations)
            elif step == 'smearing' and geometry in metals:
                occupations['degauss'] /= 2
            self.ctx.occupations[geometry] = occupations
        self.ctx.steps.append(step)
        self.ctx.level += 1
        if step == 'kpoints':
            self.ctx.spacing *= self.inputs.refinement.value

    def series_nodes(self) -> dict[str, orm.Data]:
        """What ``compare_geometries`` reads, per finished SCF: output parameters, k-points and bands of every level,
        and the trajectory (forces, stress) of the last."""
        nodes = {}
        for level in range(self.ctx.level + 1):
            for geometry in GEOMETRIES:
                node = self.ctx.get(f'{geometry}_{level}')
                if node is None or not node.is_finished_ok:
                    continue
                nodes[f'parameters__{geometry}_{level}'] = node.outputs.output_parameters
                nodes[f'kpoints__{geometry}_{level}'] = node.inputs.kpoints
                if 'output_band' in node.outputs:
                    nodes[f'bands__{geometry}_{level}'] = node.outputs.output_band
                if level == self.ctx.level and 'output_trajectory' in node.outputs:
                    nodes[f'trajectory__{geometry}'] = node.outputs.output_trajectory
        return nodes

    def results(self):
        nodes = self.series_nodes()
        check = orm.Dict({
            'label': self.inputs.label.value, 'task': self.inputs.task.value, 'failures': self.ctx.failures,
            'tolerance': self.inputs.tolerance.value, 'max_refinements': self.inputs.max_refinements.value,
            'smearing_tolerance': self.inputs.scf.smearing_tolerance.value, 'steps': self.ctx.steps,
        })  # fmt: skip
        record = compare_geometries(self.inputs.model, check, **nodes, metadata={'call_link_label': 'compare'})
        self.out('check', record)
        if record['status'] != 'ok':
            self.report(f'{self.inputs.label.value}: {record["status"]}: {record["reason"]}')
