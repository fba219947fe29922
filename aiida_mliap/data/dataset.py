"""A reference dataset file as a node: the file itself, its sha256, entry count, release and credit."""

from __future__ import annotations

from pathlib import Path

from aiida.orm import SinglefileData

from ..contract.hashing import sha256_of_file
from .lookup import FindBySha256

MP_CREDIT = (
    'Materials Project: A. Jain et al., APL Materials 1, 011002 (2013), doi:10.1063/1.4812323. Licence CC BY 4.0.'
)
KINDS = ('entries', 'elemental_references')


class MliapDatasetData(FindBySha256, SinglefileData):
    """The exact bytes that were imported, so that every reference node traces back to its source file."""

    def __init__(self, path: str | Path, kind: str, credit: str = MP_CREDIT, sha256: str | None = None, **kwargs):
        """``sha256`` saves hashing the file twice when the caller has just computed it."""
        if kind not in KINDS:
            raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')
        # SinglefileData accepts only absolute paths; a user types relative ones.
        super().__init__(file=str(Path(path).resolve()), **kwargs)
        self.base.attributes.set('sha256', sha256 or sha256_of_file(path))
        self.base.attributes.set('kind', kind)
        self.base.attributes.set('source', Path(path).name)
        self.base.attributes.set('credit', credit)

    @property
    def kind(self) -> str:
        return self.base.attributes.get('kind')

    @property
    def source(self) -> str:
        return self.base.attributes.get('source')

    @property
    def credit(self) -> str:
        return self.base.attributes.get('credit')
