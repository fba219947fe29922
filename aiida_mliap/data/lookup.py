"""Finding a stored node by the sha256 of its content: models and datasets are identified by what they hold."""

from __future__ import annotations

from aiida.orm import QueryBuilder


class FindBySha256:
    """Mixin for Data classes that record the sha256 of their content in ``attributes.sha256``."""

    @classmethod
    def find(cls, sha256: str):
        """The first stored node of this class with that sha256, or None."""
        query = QueryBuilder().append(cls, filters={'attributes.sha256': sha256}).order_by({cls: {'id': 'asc'}})
        return query.first(flat=True)

    @property
    def sha256(self) -> str:
        return self.base.attributes.get('sha256')
