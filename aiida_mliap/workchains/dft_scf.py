"""``MliapPwBaseWorkChain``: aiida-quantumespresso's ``PwBaseWorkChain`` with one more handler, for the DFT check.

Cold (Marzari-Vanderbilt) smearing is right for metals but, in a gapped system, can put the Fermi level on the
valence-band top and leave a smearing energy -TS of tens of meV/atom in the total energy (measured on two P
polymorphs with a 3 eV gap: 60 meV/atom at the protocol's 0.0275 Ry). After every SCF that finished, the handler
checks |-TS| per atom against ``smearing_tolerance``: in a gapped system (gap from the output bands against the
electron count) it reruns with Gaussian smearing no wider than an eighth of the gap (Si, 0.7 eV gap: Gaussian at the
protocol's width made -TS worse, 5.3 meV/atom), then with a quarter of that, and flags what is left; in a metal -TS
belongs to the smeared energy and the DFT check's convergence loop reduces the smearing instead. A coarse mesh can
hide where a metal's bands overlap and show a gap: the DFT check marks a cell metallic (``metal``) once any mesh
showed the overlap, and this handler then leaves it alone.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ProcessHandlerReport, process_handler
from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

from ..calculations.dft_check import bands_gap
from ..science.dft_check import DFT_DEFAULTS, GAP_MIN

SMALLEST_DEGAUSS = 0.0005  # Ry: below this a gapped system's -TS is not a smearing problem
RY_TO_EV = 13.605693122994


def smearing_per_atom(node: orm.CalcJobNode) -> float | None:
    """|-TS| per atom (eV) of a finished pw.x calculation, or None where pw.x printed none (fixed occupations)."""
    parameters = node.outputs.output_parameters
    value = parameters.get('energy_smearing')
    return None if value is None else abs(value) / parameters['number_of_atoms']


def gap_of(node: orm.CalcJobNode) -> float | None:
    """The band gap (eV) of a finished pw.x calculation's output bands, or None without them."""
    return bands_gap(node.outputs.output_band) if 'output_band' in node.outputs else None


class MliapPwBaseWorkChain(PwBaseWorkChain):
    """``PwBaseWorkChain`` that repairs or flags a smearing artefact in a gapped system."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('smearing_tolerance', valid_type=orm.Float,
                   default=lambda: orm.Float(DFT_DEFAULTS['smearing_tolerance']),
                   help='|-TS| per atom (eV) above which smearing in a gapped system is an artefact.')  # fmt: skip
        spec.input('metal', valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help='Known metallic (bands overlapped on a mesh of the same cell): its -TS belongs to the smeared '
                        'energy, whatever gap this mesh shows; no repair.')  # fmt: skip

    @process_handler(priority=5)
    def handle_smearing_artefact(self, node) -> ProcessHandlerReport | None:
        """A finished SCF of a gapped system with -TS beyond tolerance: Gaussian smearing no wider than an eighth of
        the gap, then a quarter of that; once neither is left, the SCF stands and its record says so (the DFT check
        flags it)."""
        if not node.is_finished_ok or self.inputs.metal.value:
            return None
        smearing, gap = smearing_per_atom(node), gap_of(node)
        if smearing is None or gap is None or gap < GAP_MIN or smearing <= self.inputs.smearing_tolerance.value:
            return None
        system = self.ctx.inputs.parameters['SYSTEM']
        if system.get('occupations') != 'smearing':
            return None
        # Gaussian tails fall as exp(-x^2): a width of an eighth of the gap leaves nothing at mid-gap.
        width = min(system.get('degauss', 0.0), gap / 8 / RY_TO_EV)
        if system.get('smearing') != 'gaussian' or width < system.get('degauss', 0.0):
            system.update(smearing='gaussian', degauss=width)
        elif width / 4 >= SMALLEST_DEGAUSS:
            system['degauss'] = width / 4
        else:
            self.report(f'smearing artefact left: |-TS| = {1000 * smearing:.2f} meV/atom with a {gap:.2f} eV gap')
            return None
        action = f'Gaussian smearing of {system["degauss"]:.5f} Ry'
        self.report(f'|-TS| = {1000 * smearing:.2f} meV/atom in a system with a {gap:.2f} eV gap: rerun with {action}')
        self.ctx.inputs.parameters['CONTROL']['restart_mode'] = 'from_scratch'
        self.ctx.inputs.pop('parent_folder', None)
        return ProcessHandlerReport(do_break=True)
