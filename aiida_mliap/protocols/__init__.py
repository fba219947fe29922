"""Protocols (``fast``, ``balanced``, ``matbench``, ``stringent`` in ``base.yaml``) as a mixin of the work chains,
in aiida-quantumespresso's manner: each work chain reads its own section, and a work chain that wraps another takes
that one's inputs from its ``get_builder_from_protocol``."""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping
from importlib.resources import files
from typing import Any

import yaml


def load_protocols() -> dict[str, Any]:
    return yaml.safe_load(files(__package__).joinpath('base.yaml').read_text())


def protocol_names() -> list[str]:
    return list(load_protocols()['protocols'])


def recursive_merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    for key, value in right.items():
        if isinstance(value, dict) and isinstance(left.get(key), dict):
            recursive_merge(left[key], value)
        else:
            left[key] = value
    return left


def assign_inputs(namespace: MutableMapping, inputs: Mapping) -> None:
    """Set ``inputs`` (another builder's, or a dict) on a builder namespace leaf by leaf: assigning a whole namespace
    validates it as complete, and a wrapped work chain's namespace is not (``metadata.options.resources`` comes
    later, from the scheduler)."""
    for key, value in inputs.items():
        if isinstance(value, Mapping) and isinstance(namespace.get(key), MutableMapping):
            assign_inputs(namespace[key], value)
        else:
            namespace[key] = value


class ProtocolMixin:
    """``get_protocol_inputs``: a protocol's settings for this work chain, updated by the user's overrides."""

    @classmethod
    def get_default_protocol(cls) -> str:
        return load_protocols()['default_protocol']

    @classmethod
    def get_available_protocols(cls) -> dict[str, dict[str, str]]:
        return {name: {'description': p['description']} for name, p in load_protocols()['protocols'].items()}

    @classmethod
    def get_protocol(cls, protocol: str | None = None) -> dict[str, Any]:
        """Everything ``protocol`` (default: ``get_default_protocol``) sets: parameters, base, references."""
        protocols = load_protocols()['protocols']
        name = protocol or cls.get_default_protocol()
        if name not in protocols:
            raise ValueError(f'unknown protocol `{name}`: choose one of {sorted(protocols)}')
        return copy.deepcopy(protocols[name])

    @classmethod
    def protocol_section(cls, content: dict[str, Any]) -> dict[str, Any]:
        """The part of a protocol that is this work chain's inputs (overridden where a work chain reads less)."""
        return {key: value for key, value in content.items() if key != 'description'}

    @classmethod
    def get_protocol_inputs(
        cls, protocol: str | None = None, overrides: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return recursive_merge(cls.protocol_section(cls.get_protocol(protocol)), dict(overrides or {}))
