"""YAML protocols (``fast``, ``balanced``, ``stringent``) and their merge with user overrides."""

from __future__ import annotations

import copy
from importlib.resources import files
from typing import Any

import yaml


def load_protocols(name: str = 'base') -> dict[str, Any]:
    return yaml.safe_load(files(__package__).joinpath(f'{name}.yaml').read_text())


def protocol_parameters(protocol: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The runner parameters of ``protocol`` (default: the file's ``default_protocol``) updated by ``overrides``."""
    content = load_protocols()
    name = protocol or content['default_protocol']
    if name not in content['protocols']:
        raise ValueError(f'unknown protocol `{name}`: choose one of {sorted(content["protocols"])}')
    return recursive_merge(copy.deepcopy(content['protocols'][name]['parameters']), overrides or {})


def recursive_merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    for key, value in right.items():
        if isinstance(value, dict) and isinstance(left.get(key), dict):
            recursive_merge(left[key], value)
        else:
            left[key] = value
    return left
