"""A model checkpoint as a node: files in the repository, identity and energy scale as queryable attributes."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from aiida.orm import Data

from ..engine.hashing import model_files, sha256_of_model
from .lookup import FindBySha256

FRAMEWORKS = ('ase', 'chgnet', 'mace', 'matgl')  # the entry points of `mliap.frameworks` (a test checks they agree)
# Whether the model's energies already contain the MP2020 compatibility corrections (``mp2020_corrected``)
# or are raw DFT-like energies that need them before any comparison with MP (``raw_dft``).
ENERGY_SCALES = ('mp2020_corrected', 'raw_dft')


class MliapModelData(FindBySha256, Data):
    """An MLIAP checkpoint (a file or a folder of files) with its sha256; never a local path."""

    def __init__(
        self,
        path: str | Path,
        framework: str,
        name: str,
        energy_scale: str,
        default_dtype: str | None = None,
        options: dict[str, Any] | None = None,
        sha256: str | None = None,
        facts: dict[str, Any] | None = None,
        **kwargs,
    ):
        """``sha256`` saves hashing a large checkpoint twice when the caller has just computed it; ``facts`` are the
        framework's ``checkpoint_facts`` (how it will run the checkpoint), kept as a queryable attribute."""
        super().__init__(**kwargs)
        if framework not in FRAMEWORKS:
            raise ValueError(f'framework must be one of {FRAMEWORKS}, got {framework!r}')
        if energy_scale not in ENERGY_SCALES:
            raise ValueError(f'energy_scale must be one of {ENERGY_SCALES}, got {energy_scale!r}')
        path = Path(path)
        root = path if path.is_dir() else path.parent
        names = []
        for file in model_files(path):
            relative = file.relative_to(root).as_posix()
            self.base.repository.put_object_from_file(str(file), relative)
            names.append(relative)
        attributes = self.base.attributes
        attributes.set('framework', framework)
        attributes.set('name', name)
        attributes.set('sha256', sha256 or sha256_of_model(path))
        attributes.set('framework_version', _installed_version(framework))
        attributes.set('energy_scale', energy_scale)
        attributes.set('default_dtype', default_dtype)
        attributes.set('options', options or {})
        attributes.set('filenames', names)
        attributes.set('checkpoint_facts', facts or {})

    @classmethod
    def get_or_create(
        cls, path: str | Path, framework: str, energy_scale: str | None = None, **kwargs
    ) -> tuple[MliapModelData, bool]:
        """Return the stored node with the same sha256 as ``path`` (created=False), else store a new one.

        The framework vets the checkpoint first (a checkpoint it would refuse to run is refused here, ``ValueError``);
        ``energy_scale`` may be left out only for a checkpoint whose scale the framework knows.
        """
        digest = sha256_of_model(path)
        existing = cls.find(digest)
        if existing is not None:
            options = kwargs.get('options')
            if options and options != existing.options:
                raise ValueError(
                    f'this checkpoint is registered as {existing.name} (pk {existing.pk}) with options '
                    f'{existing.options}, not {options}: one checkpoint is one model'
                )
            return existing, False
        facts = _checkpoint_facts(framework, Path(path), kwargs.get('options') or {})
        known = facts.get('energy_scale')
        if energy_scale is None and known is None:
            raise ValueError(
                'give the energy scale (`energy_scale`, --energy-scale: raw_dft or mp2020_corrected): it decides '
                'whether MP2020 corrections are applied, so it is never guessed'
            )
        if energy_scale is not None and known is not None and energy_scale != known:
            raise ValueError(
                f'{facts.get("checkpoint", "this checkpoint")} predicts {known} energies '
                f'({facts.get("energy_scale_established_by")}), not {energy_scale}'
            )
        node = cls(path, framework, energy_scale=energy_scale or known, sha256=digest, facts=facts, **kwargs)
        return node.store(), True

    @classmethod
    def from_bundled(cls, name: str) -> tuple[MliapModelData, bool]:
        """Register a checkpoint shipped with a framework's wheel (works offline), e.g. ``chgnet-0.3.0``."""
        from ..frameworks.chgnet import bundled_checkpoint

        path, options, energy_scale = bundled_checkpoint(name)
        return cls.get_or_create(path, framework='chgnet', name=name, energy_scale=energy_scale, options=options)

    @property
    def framework(self) -> str:
        return self.base.attributes.get('framework')

    @property
    def name(self) -> str:
        return self.base.attributes.get('name')

    @property
    def energy_scale(self) -> str:
        return self.base.attributes.get('energy_scale')

    @property
    def framework_version(self) -> str | None:
        """The framework version installed where the model was registered; each run records its own."""
        return self.base.attributes.get('framework_version')

    @property
    def default_dtype(self) -> str | None:
        return self.base.attributes.get('default_dtype')

    @property
    def options(self) -> dict[str, Any]:
        return self.base.attributes.get('options', {})

    @property
    def checkpoint_facts(self) -> dict[str, Any]:
        return self.base.attributes.get('checkpoint_facts', {})

    @property
    def filenames(self) -> list[str]:
        return self.base.attributes.get('filenames')

    def runner_spec(self) -> dict[str, Any]:
        """What the runner needs to know about the model (written into its parameters file)."""
        return {
            'framework': self.framework,
            'name': self.name,
            'sha256': self.sha256,
            'files': self.filenames,
            'default_dtype': self.default_dtype,
            'options': self.options,
        }


def _checkpoint_facts(framework: str, path: Path, options: dict[str, Any]) -> dict[str, Any]:
    from ..frameworks import get_framework

    if framework not in FRAMEWORKS:
        raise ValueError(f'framework must be one of {FRAMEWORKS}, got {framework!r}')
    try:
        adapter = get_framework(framework)
        return {**adapter.checkpoint_facts(path), **adapter.vet_options(options)}
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return {}  # registered on a machine without the framework: the runner vets it where it runs
    except RuntimeError as exception:
        raise ValueError(str(exception)) from exception


def _installed_version(framework: str) -> str | None:
    from ..frameworks import get_framework

    try:
        return get_framework(framework).version()
    except (ValueError, importlib.metadata.PackageNotFoundError):
        return None
