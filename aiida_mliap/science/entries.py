"""Read reference datasets (MP ComputedStructureEntry JSON, or extxyz with energies) into validated records.

Pure functions, no AiiDA: every problem of a file is collected and reported at once, naming the entry, so that
an import either takes the whole file or nothing.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from ..contract.labels import link_label

RUN_TYPES = ('GGA', 'GGA+U')


class DatasetError(ValueError):
    """A dataset file that cannot be imported; the message lists every offending entry."""


@dataclass
class ReferenceRecord:
    """One reference entry: the DFT structure (pymatgen) and the attributes of its reference node."""

    structure: Any
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.attributes['label']


def decompress(content: bytes, filename: str = 'the file') -> bytes:
    """The content of a gzip file (or ``content`` itself when it is not gzipped); a truncated or corrupt one is a
    ValueError naming the file and the decoder's reason, never a bare EOFError."""
    if content[:2] != b'\x1f\x8b':
        return content
    try:
        return gzip.decompress(content)
    except (EOFError, OSError, zlib.error) as exception:
        raise ValueError(f'{filename} is not a readable gzip file ({type(exception).__name__}: {exception})') from None


def read_dataset(content: bytes, filename: str) -> list[ReferenceRecord]:
    """Records of a JSON(.gz) list of ComputedStructureEntry dicts or of an extxyz file, validated."""
    text = decompress(content, filename).decode()
    if '.xyz' in filename or '.extxyz' in filename:
        records, problems = _read_extxyz(text)
    else:
        records, problems = _read_entries_json(text)
    labels: dict[str, int] = {}
    for index, record in enumerate(records):
        if record.label in labels:
            problems.append(
                f'entry {index} ({record.attributes["mp_id"]}): duplicate id, also entry {labels[record.label]}'
            )
        labels.setdefault(record.label, index)
    if not records and not problems:
        problems.append('the file holds no entries')
    if problems:
        shown = '\n  '.join(problems[:20])
        more = f'\n  ... and {len(problems) - 20} more' if len(problems) > 20 else ''
        raise DatasetError(f'{filename}: {len(problems)} problem(s), nothing imported:\n  {shown}{more}')
    return records


def parse_chemsys(chemsys: str) -> frozenset[str]:
    """``'Li-Fe-P'`` -> its elements; refuses what is not a dash-separated list of element symbols."""
    from pymatgen.core.periodic_table import Element

    parts = [part.strip() for part in chemsys.split('-')]
    unknown = sorted({symbol for symbol in parts if not Element.is_valid_symbol(symbol)})
    if not chemsys.strip() or unknown:
        shown = ', '.join(f'`{symbol}`' for symbol in unknown)
        raise DatasetError(f'`{chemsys}` is not a chemical system such as Li-Fe-P (not an element: {shown})')
    elements = frozenset(parts)
    return elements


def select_chemical_system(content: bytes, filename: str, chemsys: str) -> bytes:
    """The entries of the file whose elements all lie in ``chemsys``, as a file of the same format (gzipped).

    A complete chemical system contains every one of its subsystems complete, so the hull of the selection is exact.
    """
    elements = parse_chemsys(chemsys)
    text = decompress(content, filename).decode()
    if '.xyz' in filename or '.extxyz' in filename:
        import ase.io

        frames = ase.io.read(io.StringIO(text), index=':', format='extxyz')
        kept = [atoms for atoms in frames if set(atoms.get_chemical_symbols()) <= elements]
        buffer = io.StringIO()
        ase.io.write(buffer, kept, format='extxyz')
        selected = buffer.getvalue()
    else:
        from pymatgen.core import Composition

        try:
            entries = json.loads(text)
        except json.JSONDecodeError as exception:
            raise DatasetError(f'{filename}: not JSON: {exception}') from None
        kept = [entry for entry in entries if _entry_elements(entry, Composition) <= elements]
        selected = json.dumps(kept)
    if not kept:
        raise DatasetError(f'{filename} holds no entry within {"-".join(sorted(elements))}')
    # mtime=0: the same selection gives the same bytes, hence the same sha256, and a second import creates nothing.
    return gzip.compress(selected.encode(), mtime=0)


def _entry_elements(entry: Any, composition: type) -> set[str]:
    """Elements of an entry dict; empty for a malformed one, which is kept so that the import names its problem."""
    try:
        return {element.symbol for element in composition(entry['composition']).elements}
    except Exception:
        return set()


def _read_entries_json(text: str) -> tuple[list[ReferenceRecord], list[str]]:
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    try:
        content = json.loads(text)
    except json.JSONDecodeError as exception:
        return [], [f'not JSON: {exception}']
    if not isinstance(content, list):
        return [], [f'expected a JSON list of ComputedStructureEntry dicts, got a {type(content).__name__}']
    records, problems = [], []
    for index, data in enumerate(content):
        name = _entry_name(index, data)
        if not isinstance(data, dict) or not data.get('structure'):
            problems.append(f'{name}: no structure (a ComputedStructureEntry dict is needed)')
            continue
        try:
            entry = ComputedStructureEntry.from_dict(data)
        except Exception as exception:
            problems.append(f'{name}: not a ComputedStructureEntry ({type(exception).__name__}: {exception})')
            continue
        run_type = entry.parameters.get('run_type')
        if run_type not in RUN_TYPES:
            problems.append(f'{name}: unknown run type {run_type!r} (MP2020 corrections know {list(RUN_TYPES)})')
            continue
        records.append(_record(entry, data))
    return records, problems


def _entry_name(index: int, data: Any) -> str:
    if isinstance(data, dict):
        identifier = (data.get('data') or {}).get('material_id') or data.get('entry_id')
        if identifier:
            return f'entry {index} ({identifier})'
    return f'entry {index}'


def _record(entry, data: dict) -> ReferenceRecord:
    extra = entry.data or {}
    mp_id = extra.get('material_id') or str(entry.entry_id)
    composition = entry.composition
    attributes = {
        'mp_id': mp_id,
        'label': link_label(mp_id),
        'entry_id': str(entry.entry_id),
        'formula': composition.reduced_formula,
        'chemsys': composition.chemical_system,
        'n_atoms': len(entry.structure),
        'composition': {str(el): float(amount) for el, amount in composition.items()},
        'energy': float(entry.uncorrected_energy),
        'correction': float(entry.correction),
        'energy_adjustments': [adjustment.as_dict() for adjustment in entry.energy_adjustments],
        'energy_per_atom': float(entry.energy_per_atom),
        'run_type': entry.parameters['run_type'],
        'is_hubbard': bool(entry.parameters.get('is_hubbard', False)),
        'hubbards': entry.parameters.get('hubbards') or {},
        'potcar_spec': entry.parameters.get('potcar_spec') or [],
        'oxide_type': extra.get('oxide_type'),
        'oxidation_states': extra.get('oxidation_states') or {},
        'last_updated': _timestamp(extra.get('last_updated')),
        'e_above_hull': data.get('e_above_hull'),
        'e_form_per_atom': data.get('e_form_per_atom'),
    }
    return ReferenceRecord(entry.structure, attributes)


def _timestamp(value: Any) -> str | None:
    """MP stores ``last_updated`` as a string or as a serialised datetime dict."""
    if isinstance(value, dict):
        value = value.get('string')
    return str(value) if value else None


def _read_extxyz(text: str) -> tuple[list[ReferenceRecord], list[str]]:
    """Frames with ``mp_id`` and ``energy`` (raw DFT, eV) in ``info``; optional ``correction``, ``run_type``."""
    import ase.io
    from pymatgen.io.ase import AseAtomsAdaptor

    try:
        frames = ase.io.read(io.StringIO(text), index=':', format='extxyz')
    except Exception as exception:
        return [], [f'not extxyz: {exception}']
    records, problems = [], []
    for index, atoms in enumerate(frames):
        info = dict(atoms.info)
        if 'energy' not in info and atoms.calc is not None and 'energy' in atoms.calc.results:
            info['energy'] = atoms.calc.results['energy']  # ASE moves a frame's `energy` onto a calculator
        mp_id = str(info.get('mp_id') or info.get('material_id') or '')
        name = f'frame {index}' + (f' ({mp_id})' if mp_id else '')
        if not mp_id or 'energy' not in info:
            problems.append(f'{name}: needs `mp_id` and `energy` (raw DFT total energy, eV) in its info line')
            continue
        if len(atoms) == 0:
            problems.append(f'{name}: no atoms')
            continue
        run_type = info.get('run_type', 'GGA')
        if run_type not in RUN_TYPES:
            problems.append(f'{name}: unknown run type {run_type!r}')
            continue
        from pymatgen.entries.computed_entries import ComputedStructureEntry

        entry = ComputedStructureEntry(
            AseAtomsAdaptor.get_structure(atoms),
            float(info['energy']),
            correction=float(info.get('correction', 0.0)),
            parameters={'run_type': run_type, 'is_hubbard': run_type == 'GGA+U'},
            data={'material_id': mp_id},
            entry_id=mp_id,
        )
        records.append(_record(entry, {k: info.get(k) for k in ('e_above_hull', 'e_form_per_atom')}))
    return records, problems


ENERGY_TOLERANCE = 1e-6  # eV per cell: one release stores the same numbers, bit for bit in practice
POSITION_TOLERANCE = 1e-6  # Å


def entry_disagreements(
    new: dict[str, dict[str, Any]], old: dict[str, dict[str, Any]], what: str = 'the group'
) -> list[str]:
    """Entries present in both (by label) whose raw energy or MP2020 correction differ: the evidence that two files
    come from different MP releases. ``new``/``old`` are reference attributes by label; one message per entry."""
    problems = []
    for label in sorted(set(new) & set(old)):
        a, b = new[label], old[label]
        for key in ('energy', 'correction'):
            if abs(float(a[key]) - float(b[key])) > ENERGY_TOLERANCE:
                problems.append(f'{a["mp_id"]} ({a["formula"]}): {key} {a[key]:.8f} eV here, {b[key]:.8f} eV in {what}')
                break
    return problems


def structure_disagreement(new, old_cell, old_positions, old_symbols) -> str | None:
    """Why a pymatgen structure differs from another given as cell, Cartesian positions and symbols, or None."""
    import numpy as np

    if [site.specie.symbol for site in new] != list(old_symbols):
        return 'different atoms'
    if not np.allclose(new.lattice.matrix, old_cell, atol=POSITION_TOLERANCE):
        return 'different cell'
    if not np.allclose(new.cart_coords, old_positions, atol=POSITION_TOLERANCE):
        return 'different atomic positions'
    return None
