"""``MliapSofteningWorkChain``: DFT and model forces on perturbed copies of reference crystals, and the slope.

Per parent structure: ``perturb_structure`` makes its configurations (seeded rattles, volume and shear strains);
pw.x computes energy, forces and stress of the parent and of each configuration, all on the parent's k-point mesh
with the DFT check's settings (``dft_settings``), and of the parent's largest rattle three times more, each with one
setting tightened (a denser mesh, half the smearing, higher cutoffs): those changes are the numerical error of the
DFT values, stored beside the slopes. Each model evaluates the same structures statically with every force kept;
``compare_forces`` reads all of it and gives each model's softening scale. An SCF that fails leaves its
configuration out, with the reason; so does a structure a model cannot evaluate.
"""

from __future__ import annotations

from collections import Counter

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, while_
from aiida_quantumespresso.calculations.functions.create_kpoints_from_distance import create_kpoints_from_distance

from ..calculations.mliap import structure_link_label
from ..calculations.perturb import perturb_structure
from ..calculations.softening import DFT, MLIAP, MODEL, compare_forces
from ..data.model import MliapModelData
from ..data.softening import MliapSofteningData
from ..science.dft_check import DFT_DEFAULTS
from ..science.softening import (
    CUTOFF_CHECK,
    KPOINTS_DISTANCE,
    MAX_ATOMS,
    NUMERICAL_CHECKS,
    PERTURBATIONS,
    perturbation_problem,
)
from .base import MliapBaseWorkChain
from .dft_pair import failure_reason
from .dft_scf import MliapPwBaseWorkChain
from .dft_settings import scf_template, structure_settings

SCF_EXCLUDED = ('pw.structure', 'pw.pseudos', 'kpoints', 'kpoints_distance', 'kpoints_force_parity', 'metal')
# The k-point check: one configuration per parent again at this factor on the spacing (the DFT check's refinement).
SAMPLING_CHECK = DFT_DEFAULTS['refinement']


CHECK_COST = {'smearing': 2, 'cutoff': 3, 'kpoints': 4}  # about 1, 1.5 and 2.4 times a rattle's SCF


def tightened(parameters: dict, check: str) -> dict:
    """pw.x parameters with one setting tightened for a numerical check (the k-point check changes the mesh)."""
    system = dict(parameters['SYSTEM'])
    if check == 'smearing' and 'degauss' in system:
        system['degauss'] = system['degauss'] / 2
    elif check == 'cutoff':
        system['ecutwfc'], system['ecutrho'] = CUTOFF_CHECK * system['ecutwfc'], CUTOFF_CHECK * system['ecutrho']
    return {**parameters, 'SYSTEM': system}


def validate_inputs(inputs: dict, _) -> str | None:
    parents = inputs.get('parents', {})
    if not parents:
        return 'give at least one parent structure'
    too_large = {label: len(node.sites) for label, node in parents.items() if len(node.sites) > inputs['max_atoms']}
    if too_large:
        return f'structures larger than the DFT budget of {inputs["max_atoms"].value} atoms: {too_large}'
    names = Counter(structure_link_label(node) for node in parents.values())
    if max(names.values()) > 1:
        return f'parents share a label (their configurations would too): {sorted(n for n, c in names.items() if c > 1)}'
    problem = perturbation_problem(inputs['perturbations'].get_dict())
    if problem:
        return problem
    models, codes = set(inputs.get('models', {})), set(inputs.get('codes', {}))
    if not models or models != codes:
        return f'give one runner code per model (same keys): models {sorted(models)}, codes {sorted(codes)}'
    return lacking_elements(inputs['models'], parents)


def lacking_elements(models: dict, parents: dict) -> str | None:
    """Which model lacks an element of which parent (the softening compares every model on every structure), or
    None; models that do not say which elements they cover are left to the runner."""
    lacking = {}
    for _, model in sorted(models.items()):
        if model.elements is None:
            continue
        for label, parent in sorted(parents.items()):
            missing = sorted(set(parent.get_symbols_set()) - model.elements)
            if missing:
                lacking.setdefault(model.name, {})[label] = missing
    if lacking:
        return f'models lack elements of these parents (leave them out or choose other parents): {lacking}'
    return None


class MliapSofteningWorkChain(WorkChain):
    """Each model's softening scale against DFT on perturbed configurations."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MliapPwBaseWorkChain, namespace='scf', exclude=SCF_EXCLUDED)
        spec.input_namespace('parents', valid_type=orm.StructureData, dynamic=True,
                             help='Reference structures (e.g. MP ground states) by label.')  # fmt: skip
        spec.input_namespace('models', valid_type=MliapModelData, dynamic=True, help='The models, by key.')
        spec.input_namespace('codes', valid_type=orm.AbstractCode, dynamic=True,
                             help='The aiida-mliap runner code of each model, same keys.')  # fmt: skip
        spec.input('mliap_options', valid_type=orm.Dict, required=False,
                   help="Options of the models' jobs (resources, queue).")  # fmt: skip
        spec.input('device', valid_type=orm.Str, default=lambda: orm.Str('auto'))
        spec.input('perturbations', valid_type=orm.Dict,
                   default=lambda: orm.Dict({**PERTURBATIONS, 'seed': 0}),
                   help='`rattle` (Å), `volume`, `shear` lists and `seed` (science.softening).')  # fmt: skip
        spec.input('pseudo_family', valid_type=orm.Str, help='Label of an aiida-pseudo family with cutoffs.')
        spec.input('kpoints_distance', valid_type=orm.Float, default=lambda: orm.Float(KPOINTS_DISTANCE),
                   help="k-point spacing (Å⁻¹) of each parent's mesh, used for all its configurations.")  # fmt: skip
        spec.input('mp_settings', valid_type=orm.Bool, default=lambda: orm.Bool(True),
                   help="MP's initial moments and U; False: no spin, no U.")  # fmt: skip
        spec.input('spin', valid_type=orm.Bool, default=lambda: orm.Bool(True),
                   help='False: unpolarised SCFs, U kept (parents MP found non-magnetic: half the cost).')  # fmt: skip
        spec.input('conv_thr_per_atom', valid_type=orm.Float, default=lambda: orm.Float(2e-10))
        spec.input('max_atoms', valid_type=orm.Int, default=lambda: orm.Int(MAX_ATOMS),
                   help='The DFT budget: a larger parent is refused before anything runs.')  # fmt: skip
        spec.input('max_concurrent', valid_type=orm.Int, default=lambda: orm.Int(2), help='SCFs in flight at once.')
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.perturb,
            while_(cls.has_scf)(cls.run_scf, cls.inspect_scf),
            cls.run_models,
            cls.compare,
        )
        spec.output('softening', valid_type=MliapSofteningData)
        spec.exit_code(720, 'ERROR_NO_DFT', message='No structure got DFT forces: every SCF failed.')
        spec.exit_code(721, 'ERROR_NO_MODEL', message='No model evaluated any structure: {reasons}')

    @classmethod
    def get_builder_from_protocol(
        cls,
        pw_code: orm.AbstractCode,
        parents: dict[str, orm.StructureData],
        models: dict[str, MliapModelData],
        codes: dict[str, orm.AbstractCode],
        pseudo_family: str,
        protocol: str = 'fast',
        options: dict | None = None,
    ):
        """A builder with the DFT check's SCF template (``dft_settings.scf_template``) for ``parents``."""
        builder = cls.get_builder()
        builder.scf = scf_template(pw_code, next(iter(parents.values())), pseudo_family, protocol, options)
        builder.parents, builder.models, builder.codes = parents, models, codes
        builder.pseudo_family = orm.Str(pseudo_family)
        return builder

    def perturb(self):
        """Each parent's configurations (a calcfunction per parent), and what each structure is."""
        self.ctx.structures, self.ctx.layout, self.ctx.checks = {}, {}, {}
        # Per parent and check (`compared`: the SCFs compared with the models): pseudopotentials, parameters, mesh.
        self.ctx.settings = {}
        denser_distance = orm.Float(self.inputs.kpoints_distance.value * SAMPLING_CHECK)
        for key, parent in sorted(self.inputs.parents.items()):
            label = structure_link_label(parent)
            chemsys = '-'.join(sorted(parent.get_composition()))
            configurations = perturb_structure(parent, self.inputs.perturbations,
                                               metadata={'call_link_label': f'perturb_{key}'})  # fmt: skip
            mesh = create_kpoints_from_distance(
                parent, self.inputs.kpoints_distance, orm.Bool(False), metadata={'call_link_label': f'kpoints_{key}'}
            )
            denser = create_kpoints_from_distance(
                parent, denser_distance, orm.Bool(False), metadata={'call_link_label': f'kpoints_denser_{key}'}
            )
            pseudos, parameters = structure_settings(
                parent, self.inputs.pseudo_family.value, self.inputs.scf.pw.parameters.get_dict(),
                self.inputs.conv_thr_per_atom.value, self.inputs.mp_settings.value, self.inputs.spin.value,
            )  # fmt: skip
            values = parameters.get_dict()
            values.setdefault('CONTROL', {}).update(tprnfor=True, tstress=True)
            compared = orm.Dict(values).store()  # one node, the input of all its compared SCFs
            self.ctx.settings[f'{label}/compared'] = (pseudos, compared, mesh)
            self.ctx.settings[f'{label}/kpoints'] = (pseudos, compared, denser)
            for check in ('smearing', 'cutoff'):
                self.ctx.settings[f'{label}/{check}'] = (pseudos, orm.Dict(tightened(values, check)).store(), mesh)
            self.ctx.structures[label] = parent
            self.ctx.layout[label] = {'parent': label, 'configuration': 'parent', 'chemsys': chemsys}
            children = {}
            for name, structure in sorted(configurations.items()):
                children[name] = structure_link_label(structure)
                self.ctx.structures[children[name]] = structure
                self.ctx.layout[children[name]] = {'parent': label, 'configuration': name, 'chemsys': chemsys}
            # The numerical error of the DFT values: the largest rattle (else the last configuration) again, once per
            # check with that setting tightened.
            sigmas = self.inputs.perturbations.get_dict().get('rattle', [])
            largest = f'rattle_{max(range(len(sigmas)), key=sigmas.__getitem__)}' if sigmas else sorted(children)[-1]
            checked = children[largest]
            for check in NUMERICAL_CHECKS:
                self.ctx.checks[f'{checked}_{check}'] = (checked, check)
        self.ctx.queue = sorted([*self.ctx.structures, *self.ctx.checks], key=self.cost_order)
        self.ctx.scf, self.ctx.check_scf, self.ctx.failures = {}, {}, {'dft': {}, 'models': {}}
        self.report(f'{len(self.inputs.parents)} parents, {len(self.ctx.structures)} structures for pw.x and '
                    f'{len(self.inputs.models)} models')  # fmt: skip

    def cost_order(self, label: str) -> tuple:
        """Queue order: each parent's SCFs of like cost side by side (a step waits for its slowest SCF): the parent
        and its strains keep symmetry, rattles lose it, the checks of a rattle cost more again."""
        structure, check = self.ctx.checks.get(label, (label, None))
        place = self.ctx.layout[structure]
        rank = CHECK_COST[check] if check else int(place['configuration'].startswith('rattle_'))
        return place['parent'], rank, label

    def has_scf(self) -> bool:
        return bool(self.ctx.queue)

    def run_scf(self):
        step, self.ctx.queue = (
            self.ctx.queue[: self.inputs.max_concurrent.value],
            self.ctx.queue[self.inputs.max_concurrent.value :],
        )
        futures = {}
        for label in step:
            structure_label, check = self.ctx.checks.get(label, (label, None))
            parent = self.ctx.layout[structure_label]['parent']
            pseudos, parameters, kpoints = self.ctx.settings[f'{parent}/{check or "compared"}']
            inputs = AttributeDict(self.exposed_inputs(MliapPwBaseWorkChain, 'scf'))
            inputs.pw = AttributeDict(inputs.pw)
            inputs.pw.update(structure=self.ctx.structures[structure_label], pseudos=pseudos, parameters=parameters)
            inputs.kpoints = kpoints
            inputs.metadata = {'call_link_label': f'scf_{label}', 'label': label}
            futures[f'scf_{label}'] = self.submit(MliapPwBaseWorkChain, **inputs)
        self.ctx.step = step
        return ToContext(**futures)

    def inspect_scf(self):
        for label in self.ctx.step:
            node = self.ctx[f'scf_{label}']
            if node.is_finished_ok and 'output_trajectory' in node.outputs:
                if label in self.ctx.checks:
                    self.ctx.check_scf[label] = node
                else:
                    self.ctx.scf[label] = node
            else:
                self.ctx.failures['dft'][label] = failure_reason(node)
                self.report(f'{label}: no DFT forces: {self.ctx.failures["dft"][label]}')
        total = len(self.ctx.structures) + len(self.ctx.checks)
        self.report(f'pw.x: {total - len(self.ctx.queue)}/{total} SCFs, {len(self.ctx.failures["dft"])} failed')

    def run_models(self):
        if not self.ctx.scf:
            return self.exit_codes.ERROR_NO_DFT
        structures = [self.ctx.structures[label] for label in sorted(self.ctx.scf)]
        futures = {}
        for key, model in sorted(self.inputs.models.items()):
            builder = MliapBaseWorkChain.get_builder_from_protocol(
                self.inputs.codes[key], model, structures, task='static',
                overrides={'parameters': {'keep_forces': True, 'device': self.inputs.device.value}},
                options=self.inputs.mliap_options.get_dict() if 'mliap_options' in self.inputs else None,
            )  # fmt: skip
            builder.metadata.call_link_label = f'mliap_{key}'
            builder.metadata.label = f'{model.name} on perturbed structures'
            futures[f'mliap_{key}'] = self.submit(builder)
        return ToContext(**futures)

    def compare(self):
        nodes = {f'{MODEL}__{key}': model for key, model in self.inputs.models.items()}
        for label, node in self.ctx.scf.items():
            nodes[f'{DFT}__trajectory__{label}'] = node.outputs.output_trajectory
            nodes[f'{DFT}__parameters__{label}'] = node.outputs.output_parameters
        for label, node in self.ctx.check_scf.items():
            checked, check = self.ctx.checks[label]
            nodes[f'{check}__trajectory__{checked}'] = node.outputs.output_trajectory
            nodes[f'{check}__parameters__{checked}'] = node.outputs.output_parameters
        reasons = {}
        for key in self.inputs.models:
            node = self.ctx[f'mliap_{key}']
            forces = dict(node.outputs.forces.items()) if 'forces' in node.outputs else {}
            results = dict(node.outputs.results.items()) if 'results' in node.outputs else {}
            missing = {label: (results[label]['status'] if label in results else 'no result')
                       for label in self.ctx.scf if label not in forces}  # fmt: skip
            if missing:
                self.ctx.failures['models'][key] = missing
                self.report(f'{key}: no forces for {len(missing)} structures: {missing}')
            if not forces:
                reasons[key] = f'{node.process_label}<{node.pk}> exit status {node.exit_status}'
            for label, array in forces.items():
                nodes[f'{MLIAP}__{key}__forces__{label}'] = array
                nodes[f'{MLIAP}__{key}__results__{label}'] = results[label]
        if len(reasons) == len(self.inputs.models):
            return self.exit_codes.ERROR_NO_MODEL.format(reasons=reasons)
        record = compare_forces(orm.Dict(self.ctx.layout), orm.Dict(self.ctx.failures), **nodes,
                                metadata={'call_link_label': 'compare'})  # fmt: skip
        self.out('softening', record)
        for row in record['softening']:
            if row['quantity'] == 'forces' and row['slope'] is not None:
                interval = row['slope_ci95']
                spread = f' [{interval[0]:.3f}, {interval[1]:.3f}]' if interval else ' (no interval: too few parents)'
                self.report(f"{row['model']}: force softening scale {row['slope']:.3f}{spread}, "
                            f"MAE {row['mae']:.3f} eV/Å over {row['n']} components")  # fmt: skip
        return None
