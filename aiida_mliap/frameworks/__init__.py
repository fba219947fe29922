"""MLIAP framework adapters, discovered through the ``mliap.frameworks`` entry point group.

A new framework is one module subclassing :class:`~aiida_mliap.frameworks.base.MliapFramework` plus one entry point.
"""

from __future__ import annotations

import importlib.metadata

from .base import LoadedModel, MliapFramework

ENTRY_POINT_GROUP = 'mliap.frameworks'

__all__ = ('ENTRY_POINT_GROUP', 'LoadedModel', 'MliapFramework', 'available_frameworks', 'get_framework')


def available_frameworks() -> list[str]:
    return sorted(ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def get_framework(name: str) -> MliapFramework:
    matches = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not matches:
        raise ValueError(f'unknown framework `{name}`; registered frameworks: {available_frameworks()}')
    return next(iter(matches)).load()()
