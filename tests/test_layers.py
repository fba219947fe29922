"""The package's layers import only downward (docs/topics/architecture.md): a test, so the rule cannot rot."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import aiida_mliap

PACKAGE = Path(aiida_mliap.__file__).parent

# Lowest first. A module may import its own layer and the layers below it, never one above.
LAYERS = (
    ('contract',),
    ('science',),
    ('frameworks', 'tiny_models'),
    ('engine',),
    ('data', 'environments'),
    ('provenance',),
    ('parsers',),
    ('calculations',),
    ('protocols', 'dft'),
    ('workchains',),
    ('analysis',),
    ('testing', 'cli'),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
# aiida-free layers: importable (and testable) without a profile or aiida-core at all.
AIIDA_FREE = ('contract', 'science', 'frameworks', 'tiny_models', 'engine')


def top_level(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix('.py')


def imported_modules(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """Every module a file imports, at any depth (function-level and TYPE_CHECKING imports count)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    package = parts if parts[-1] == '__init__' else parts[:-1]
    package = tuple(p for p in package if p != '__init__')
    found = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = '.'.join(base + ((node.module,) if node.module else ()))
            else:
                module = node.module or ''
            found.append((node.lineno, module))
    return found


def modules():
    return sorted(p for p in PACKAGE.rglob('*.py') if top_level(p) != '__init__')


def test_every_module_has_a_layer():
    assert {top_level(p) for p in modules()} <= set(RANK)


def upward_imports(path: Path, source: str | None = None) -> list[str]:
    own = top_level(path)
    upward = []
    for line, module in imported_modules(path, source):
        parts = module.split('.')
        if parts[0] != 'aiida_mliap' or len(parts) < 2:
            continue
        target = parts[1]
        if RANK[target] > RANK[own]:
            upward.append(f'line {line}: {module} ({target} sits above {own})')
    return upward


@pytest.mark.parametrize('path', modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_downward(path):
    upward = upward_imports(path)
    assert not upward, '\n'.join(upward)


@pytest.mark.parametrize(
    'path', [p for p in modules() if top_level(p) in AIIDA_FREE], ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_lower_layers_are_aiida_free(path):
    aiida = [f'line {line}: {m}' for line, m in imported_modules(path) if m == 'aiida' or m.startswith('aiida.')]
    assert not aiida, '\n'.join(aiida)


def test_the_check_sees_an_upward_import():
    """The rule can fail: a science module importing analysis, lazily or not, is caught; a downward one is not."""
    probe = PACKAGE / 'science' / 'probe.py'
    source = 'from .metrics import QUANTITIES\n\ndef f():\n    from ..analysis.results import load_results\n'
    assert upward_imports(probe, source) == ['line 4: aiida_mliap.analysis.results (analysis sits above science)']


def test_no_cycle_between_packages():
    """Packages sharing a layer may use each other one way only."""
    uses = {(top_level(p), m.split('.')[1]) for p in modules() for _, m in imported_modules(p)
            if m.startswith('aiida_mliap.') and m.split('.')[1] != top_level(p)}  # fmt: skip
    assert not sorted((a, b) for a, b in uses if (b, a) in uses)
