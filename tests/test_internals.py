"""aiida-core internals: one list (``provenance/internals.py``), pinned to the release it was checked against, and a
scan of the package so that a new private access cannot slip in unlisted."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import aiida
import pytest

import aiida_mliap
from aiida_mliap.provenance.internals import INTERNAL_METHODS, OTHER_LIBRARIES, PRIVATE_ATTRIBUTES, VERIFIED_AIIDA

PACKAGE = Path(aiida_mliap.__file__).parent


def test_pinned_to_the_verified_aiida_release():
    """A new aiida-core release must be checked (tests/thermo/test_outputs.py, tests/analysis/test_frames.py, the
    restart handlers' tests) and added to ``VERIFIED_AIIDA`` before it is trusted."""
    assert '.'.join(aiida.__version__.split('.')[:2]) in VERIFIED_AIIDA, aiida.__version__


@pytest.mark.parametrize('name, where', {**PRIVATE_ATTRIBUTES, **INTERNAL_METHODS}.items())
def test_listed_internals_exist(name, where):
    module, _, cls = where[0].rpartition('.')
    assert hasattr(getattr(importlib.import_module(module), cls), name), f'{where[0]}.{name} is gone'


def foreign_private_attributes(source: str, own: set[str]) -> set[str]:
    """``x._name`` accesses in ``source`` where ``x`` is not ``self``/``cls`` and ``_name`` is not defined by us."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith('_') and not node.attr.startswith('__'):
            base = node.value.id if isinstance(node.value, ast.Name) else None
            if base not in ('self', 'cls') and node.attr not in own:
                found.add(node.attr)
    return found


def own_private_names() -> set[str]:
    names = set()
    for path in PACKAGE.rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name.startswith('_'):
                names.add(node.name)
    return names - set(PRIVATE_ATTRIBUTES) - set(OTHER_LIBRARIES)


def test_every_private_access_is_listed():
    own = own_private_names()
    unlisted = {}
    for path in PACKAGE.rglob('*.py'):
        for name in foreign_private_attributes(path.read_text(), own):
            if name not in PRIVATE_ATTRIBUTES and name not in OTHER_LIBRARIES:
                unlisted.setdefault(name, []).append(str(path.relative_to(PACKAGE)))
    assert not unlisted, f'list these in provenance/internals.py (or stop using them): {unlisted}'


def test_the_scan_sees_a_new_private_access():
    source = 'def f(node, process):\n    node._validate()\n    return process._some_new_internal\n'
    assert foreign_private_attributes(source, own_private_names()) == {'_validate', '_some_new_internal'}
