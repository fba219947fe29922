"""YAML protocols (``fast``, ``balanced``, ``matbench``, ``stringent``) and their merge with user overrides."""

from __future__ import annotations

import copy
from importlib.resources import files
from typing import Any

import yaml


def load_protocols(name: str = 'base') -> dict[str, Any]:
    return yaml.safe_load(files(__package__).joinpath(f'{name}.yaml').read_text())


def protocol_names() -> list[str]:
    return list(load_protocols()['protocols'])


def load_protocol(protocol: str | None = None) -> dict[str, Any]:
    """Everything ``protocol`` (default: the file's ``default_protocol``) sets: parameters, base, references."""
    content = load_protocols()
    name = protocol or content['default_protocol']
    if name not in content['protocols']:
        raise ValueError(f'unknown protocol `{name}`: choose one of {sorted(content["protocols"])}')
    return {'name': name, **copy.deepcopy(content['protocols'][name])}


def protocol_parameters(protocol: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The runner parameters of ``protocol`` updated by ``overrides``."""
    return recursive_merge(load_protocol(protocol)['parameters'], overrides or {})


def recursive_merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    for key, value in right.items():
        if isinstance(value, dict) and isinstance(left.get(key), dict):
            recursive_merge(left[key], value)
        else:
            left[key] = value
    return left
