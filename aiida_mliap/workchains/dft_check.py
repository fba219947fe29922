"""``MliapDftCheckWorkChain``: Quantum ESPRESSO at a model's relaxed geometry and at the reference geometry.

Per structure one ``MliapDftPairWorkChain``: SCFs at both geometries, each on its own k-point mesh, refined until
ΔE_geom = E(model geometry) - E(reference geometry) per atom changes by less than ``tolerance`` (the last change is
stored as its uncertainty); PBE pseudopotentials of one family at its recommended cutoffs, spin polarised with MP's
initial moments and MP's Hubbard U (``dft/mp_settings.py``), enough bands from the start, forces and stress. A
structure whose SCF fails gets status ``failed`` and the reason; the others go on.
"""

from __future__ import annotations

from collections import Counter

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, while_

from ..calculations.dft_check import compare_geometries
from ..data.dft_check import MliapDftCheckData
from ..data.model import MliapModelData
from .dft_pair import MliapDftPairWorkChain, failure_reason
from .dft_settings import scf_template, structure_settings


def validate_inputs(inputs: dict, _) -> str | None:
    model, reference = inputs.get('model_structures', {}), inputs.get('reference_structures', {})
    if not model:
        return 'give at least one structure (`aiida_mliap.analysis.dft_check.dft_check_builder` picks them)'
    if set(model) != set(reference):
        return f'model and reference structures name different labels: {sorted(set(model) ^ set(reference))[:5]}'
    for label in sorted(model):
        if model[label].get_formula() != reference[label].get_formula():
            return f'{label}: the model geometry {model[label].get_formula()} is not the reference composition'
    return None


class MliapDftCheckWorkChain(WorkChain):
    """DFT energies of model-relaxed and reference geometries, and ΔE_geom per structure."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(
            MliapDftPairWorkChain, exclude=('model_structure', 'reference_structure', 'model', 'label', 'task',
                                            'scf.pw.pseudos'),
            namespace_options={'help': 'The refinement series and the SCF template; `scf.pw.parameters` gets the '
                               'cutoffs, convergence threshold, bands, spin and Hubbard U of each structure.'},
        )  # fmt: skip
        spec.input_namespace('model_structures', valid_type=orm.StructureData, dynamic=True,
                             help='The geometries the model relaxed to, by label.')  # fmt: skip
        spec.input_namespace('reference_structures', valid_type=orm.StructureData, dynamic=True,
                             help='The reference (MP) geometries, same labels.')  # fmt: skip
        spec.input('model', valid_type=MliapModelData, help='The model whose relaxation made the model geometries.')
        spec.input('task', valid_type=orm.Str, default=lambda: orm.Str('relax'))
        spec.input('pseudo_family', valid_type=orm.Str, help='Label of an aiida-pseudo family with cutoffs.')
        spec.input('mp_settings', valid_type=orm.Bool, default=lambda: orm.Bool(True),
                   help="MP's initial moments and U (pymatgen's MPRelaxSet); False: no spin, no U.")  # fmt: skip
        spec.input('conv_thr_per_atom', valid_type=orm.Float, default=lambda: orm.Float(2e-10),
                   help='SCF threshold (Ry) per atom.')  # fmt: skip
        spec.input('selection', valid_type=orm.Dict, required=False,
                   help='Why each structure was chosen (the rules and their values): a record, not read.')  # fmt: skip
        spec.input('max_concurrent', valid_type=orm.Int, default=lambda: orm.Int(1),
                   help='Structures in flight at once (two SCFs each).')  # fmt: skip
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, while_(cls.has_next)(cls.run_next, cls.inspect_next), cls.finalize)
        spec.output_namespace('checks', valid_type=MliapDftCheckData, dynamic=True, help='Per structure, by label.')
        spec.exit_code(710, 'ERROR_ALL_FAILED', message='No structure got a ΔE_geom: every SCF series failed.')

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        model: MliapModelData,
        model_structures: dict[str, orm.StructureData],
        reference_structures: dict[str, orm.StructureData],
        pseudo_family: str,
        protocol: str = 'fast',
        options: dict | None = None,
        selection: dict | None = None,
    ):
        """A builder whose ``scf`` template is aiida-quantumespresso's ``protocol`` for ``PwBaseWorkChain`` (its
        smearing, mixing, restarts) with the structure-specific keys left to each structure; the k-point spacing
        and the refinement series keep the work chain's defaults (``DFT_DEFAULTS``), one set for every caller."""
        builder = cls.get_builder()
        builder.scf = scf_template(code, next(iter(reference_structures.values())), pseudo_family, protocol, options)
        builder.model = model
        builder.model_structures = model_structures
        builder.reference_structures = reference_structures
        builder.pseudo_family = orm.Str(pseudo_family)
        if selection is not None:
            builder.selection = orm.Dict(selection)
        return builder

    def setup(self):
        self.ctx.labels = sorted(self.inputs.model_structures)
        self.ctx.cursor = 0

    def has_next(self) -> bool:
        return self.ctx.cursor < len(self.ctx.labels)

    def run_next(self):
        step = self.ctx.labels[self.ctx.cursor : self.ctx.cursor + self.inputs.max_concurrent.value]
        self.ctx.step = step
        self.ctx.cursor += len(step)
        futures = {}
        for label in step:
            reference = self.inputs.reference_structures[label]
            pseudos, parameters = self._settings(reference)
            inputs = AttributeDict(self.exposed_inputs(MliapDftPairWorkChain))
            inputs.scf = AttributeDict(inputs.scf)
            inputs.scf.pw = AttributeDict(inputs.scf.pw)
            inputs.scf.pw.update(pseudos=pseudos, parameters=parameters)
            inputs.update(
                model_structure=self.inputs.model_structures[label], reference_structure=reference,
                model=self.inputs.model, label=orm.Str(label), task=self.inputs.task,
                metadata={'call_link_label': f'pair_{label}', 'label': label},
            )  # fmt: skip
            futures[label] = self.submit(MliapDftPairWorkChain, **inputs)
        self.report(f'ΔE_geom series of {", ".join(step)} ({self.ctx.cursor}/{len(self.ctx.labels)})')
        return ToContext(**futures)

    def inspect_next(self):
        for label in self.ctx.step:
            node = self.ctx[label]
            if 'check' in node.outputs:
                self.out(f'checks.{label}', node.outputs.check)
                continue
            check = orm.Dict({'label': label, 'task': self.inputs.task.value,
                              'failures': {'both': failure_reason(node)}})  # fmt: skip
            result = compare_geometries(self.inputs.model, check, metadata={'call_link_label': f'check_{label}'})
            self.out(f'checks.{label}', result)
            self.report(f'{label}: {result["reason"]}')

    def finalize(self):
        """Counts by status; [0] when at least one structure got a ΔE_geom (converged or not: its status says)."""
        statuses = Counter(self.outputs['checks'][label]['status'] for label in self.ctx.labels)
        self.report(f'{len(self.ctx.labels)} structures: {dict(sorted(statuses.items()))}')
        return self.exit_codes.ERROR_ALL_FAILED if set(statuses) == {'failed'} else None

    def _settings(self, structure: orm.StructureData) -> tuple[dict, orm.Dict]:
        """Pseudopotentials and the one parameters node both geometries of ``structure`` run with."""
        return structure_settings(
            structure, self.inputs.pseudo_family.value, self.inputs.scf.pw.parameters.get_dict(),
            self.inputs.conv_thr_per_atom.value, self.inputs.mp_settings.value,
        )  # fmt: skip
