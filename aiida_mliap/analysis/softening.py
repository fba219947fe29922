"""The softening measurement as tables: the compared values (force, stress and energy pairs) and the scale per
model, from the nodes a ``MliapSofteningWorkChain`` stored."""

from __future__ import annotations

import pandas as pd
from aiida import orm
from aiida.common.links import LinkType

from ..calculations.dataset import group_datasets, union_of_datasets
from ..calculations.softening import compared_values
from ..contract.labels import link_label
from ..science.softening import MAX_ATOMS, pairs_frame, select_parents


def comparison_of(node: orm.Node) -> orm.CalcFunctionNode:
    """The ``compare_forces`` run behind a softening work chain or its ``softening`` output."""
    if isinstance(node, orm.WorkflowNode):
        if 'softening' not in node.outputs:
            raise ValueError(f'{node.process_label}<{node.pk}> has no softening (exit status {node.exit_status})')
        node = node.outputs.softening
    creator = node.creator
    if creator is None or creator.process_label != 'compare_forces':
        raise ValueError(f'node {node.pk} is not a softening measurement')
    return creator


def load_force_pairs(node: orm.Node) -> pd.DataFrame:
    """Every compared value, rebuilt from the DFT and model nodes the comparison read: ``model``, ``parent``,
    ``configuration``, ``chemsys``, ``quantity`` (``forces`` eV/Å, ``stress`` GPa, ``energy`` eV/atom),
    ``component``, ``dft``, ``mliap``."""
    comparison = comparison_of(node)
    incoming = comparison.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all()
    inputs = {link.link_label: link.node for link in incoming}
    layout = inputs.pop('layout').get_dict()
    inputs.pop('failures')
    dft, _, mliap = compared_values(inputs)
    return pairs_frame(dft, mliap, layout)


def softening_frame(node: orm.Node, by_chemsys: bool = False) -> pd.DataFrame:
    """The stored softening scale per model and quantity (and chemical system)."""
    record = comparison_of(node).outputs.result
    return pd.DataFrame(record['softening_by_chemsys' if by_chemsys else 'softening'])


def candidate_dof(datasets: list, rows: pd.DataFrame, max_atoms: int, max_e_above_hull: float) -> pd.Series:
    """Symmetry DOF (``science.symmetry`` at its default tolerance) of the entries a selection could pick: small
    cells near the hull, so this costs milliseconds each; NaN for the rest."""
    from ..science.symmetry import SYMPRECS, analyse_atoms, symprec_key

    pool = rows[rows['n_atoms'].between(2, max_atoms) & (rows['e_above_hull'] <= max_e_above_hull)]
    if pool.empty:
        return pd.Series(float('nan'), index=rows.index)
    structures = union_of_datasets(datasets, 'structures', labels=list(pool['label']))
    dof = {label: analyse_atoms(node.get_ase(), SYMPRECS[:1])[symprec_key(SYMPRECS[0])]['dof']
           for label, node in structures.items()}  # fmt: skip
    return rows['label'].map(dof)


def softening_builder(
    group: orm.Group,
    models: dict,
    codes: dict,
    pw_code: orm.AbstractCode,
    pseudo_family: str,
    labels: tuple[str, ...] = (),
    max_parents: int = 10,
    max_atoms: int = MAX_ATOMS,
    max_e_above_hull: float = 0.0,
    protocol: str = 'fast',
    options: dict | None = None,
):
    """A ``MliapSofteningWorkChain`` builder for the parents ``science.softening.select_parents`` picks from the
    reference entries of a dataset group (``labels`` as MP ids or link labels: ``mp-1960`` or ``mp_1960``)."""
    from ..workchains.softening import MliapSofteningWorkChain  # needs the `dft` extra

    datasets = group_datasets(group)
    if not datasets:
        raise ValueError(f'group `{group.label}` holds no dataset (`aiida-mliap dataset import`)')
    keys = ('label', 'chemsys', 'n_atoms', 'e_above_hull')
    references = union_of_datasets(datasets, 'references', project=keys)
    rows = pd.DataFrame(list(references.values()), columns=list(keys))
    rows['e_above_hull'] = pd.to_numeric(rows['e_above_hull']).fillna(float('inf'))
    rows['dof'] = candidate_dof(datasets, rows, max_atoms, max_e_above_hull)
    chosen = select_parents(rows, tuple(map(link_label, labels)), max_atoms, max_parents, max_e_above_hull)
    if not chosen:
        raise ValueError(f'no entry of `{group.label}` of 2 to {max_atoms} atoms within {max_e_above_hull} eV/atom '
                         'of the hull: give --label or raise --max-atoms')  # fmt: skip
    structures = union_of_datasets(datasets, 'structures', labels=chosen)
    parents = {label: structures[label] for label in chosen}
    return MliapSofteningWorkChain.get_builder_from_protocol(
        pw_code, parents, models, codes, pseudo_family, protocol, options
    )
