"""A model checkpoint as a node: files in the repository, identity and energy scale as queryable attributes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiida.orm import Data

from ..contract.hashing import model_layout, sha256_of_model
from ..contract.schema import ENERGY_SCALES
from .lookup import FindBySha256

# The entry points of `mliap.frameworks` (a test checks they agree).
FRAMEWORKS = ('ase', 'chgnet', 'mace', 'matgl', 'sevenn')
# Whether the model's energies already contain the MP2020 compatibility corrections (``mp2020_corrected``)
# or are raw DFT-like energies that need them before any comparison with MP (``raw_dft``).


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
        framework_version: str | None = None,
        **kwargs,
    ):
        """``sha256`` saves hashing a large checkpoint twice when the caller has just computed it; ``facts`` are the
        framework's ``checkpoint_facts`` (how it will run the checkpoint), kept as a queryable attribute, and
        ``framework_version`` the version installed where it was described."""
        super().__init__(**kwargs)
        if framework not in FRAMEWORKS:
            raise ValueError(f'framework must be one of {FRAMEWORKS}, got {framework!r}')
        if energy_scale not in ENERGY_SCALES:
            raise ValueError(f'energy_scale must be one of {ENERGY_SCALES}, got {energy_scale!r}')
        root, names = model_layout(path)
        for relative in names:
            self.base.repository.put_object_from_file(str(root / relative), relative)
        attributes = self.base.attributes
        attributes.set('framework', framework)
        attributes.set('name', name)
        attributes.set('sha256', sha256 or sha256_of_model(path))
        attributes.set('framework_version', framework_version)
        attributes.set('energy_scale', energy_scale)
        attributes.set('default_dtype', default_dtype)
        attributes.set('options', options or {})
        attributes.set('filenames', names)
        attributes.set('checkpoint_facts', facts or {})

    @classmethod
    def get_or_create(
        cls,
        source: str | Path,
        framework: str | None = None,
        energy_scale: str | None = None,
        name: str | None = None,
        options: dict[str, Any] | None = None,
        default_dtype: str | None = None,
    ) -> tuple[MliapModelData, bool]:
        """Return the stored node with the same sha256 as ``source`` (created=False), else store a new one.

        ``source`` is a checkpoint path, or a name a framework ships in its wheel (``chgnet-0.3.0``, ``sevennet-0``;
        offline). The framework vets the checkpoint first, in its own environment when it is not installed here (a
        checkpoint it would refuse to run is refused here, ``ValueError``); ``energy_scale`` may be left out only
        for a checkpoint whose scale the framework knows.
        """
        from ..environments import describe_checkpoint

        digest = None
        if not isinstance(source, str) or Path(source).exists():
            digest = sha256_of_model(source)
            existing = cls.find(digest)
            if existing is not None:
                return existing._check_same(framework, energy_scale, options), False
        description = describe_checkpoint(str(source), framework, options)
        path = Path(description['path'])
        if digest is None:  # a bundled name: hashed once its path is known
            digest = sha256_of_model(path)
            existing = cls.find(digest)
            if existing is not None:
                return existing._check_same(framework, energy_scale, options), False
        facts, known = description['facts'], description['energy_scale']
        if energy_scale is None and known is None:
            raise ValueError(
                'give the energy scale (`energy_scale`, --energy-scale: raw_dft or mp2020_corrected): it decides '
                'whether MP2020 corrections are applied, so it is never guessed'
            )
        if energy_scale is not None and known is not None and energy_scale != known:
            because = facts.get('energy_scale_established_by') or f'as {description["framework"]} ships it'
            raise ValueError(
                f'{facts.get("checkpoint", description["name"] or "this checkpoint")} predicts {known} energies '
                f'({because}), not {energy_scale}: leave --energy-scale out or give {known}'
            )
        node = cls(
            path,
            description['framework'],
            name=name or description['name'] or path.name,
            energy_scale=energy_scale or known,
            default_dtype=default_dtype,
            options=description['options'],
            sha256=digest,
            facts=facts,
            framework_version=description['framework_version'],
        )
        return node.store(), True

    def _check_same(
        self, framework: str | None, energy_scale: str | None, options: dict[str, Any] | None
    ) -> MliapModelData:
        """The stored node, unless the caller describes the same checkpoint differently (never silently kept)."""
        for key, given in (('framework', framework), ('energy_scale', energy_scale)):
            if given is not None and given != getattr(self, key):
                raise ValueError(
                    f'this checkpoint is registered as {self.name} (pk {self.pk}) with {key} {getattr(self, key)}, '
                    f'not {given}: one checkpoint is one model'
                )
        if options and {**self.options, **options} != self.options:
            raise ValueError(
                f'this checkpoint is registered as {self.name} (pk {self.pk}) with options {self.options}, not '
                f'{options}: one checkpoint is one model'
            )
        return self

    @classmethod
    def from_bundled(cls, name: str) -> tuple[MliapModelData, bool]:
        """Register a checkpoint shipped with a framework's wheel (works offline), e.g. ``chgnet-0.3.0``."""
        return cls.get_or_create(name)

    @classmethod
    def resolve(cls, identifier: str) -> MliapModelData:
        """A model by name, sha256, pk or uuid; a bundled name (``chgnet-0.3.0``) is registered on first use.
        ValueError, naming the choices, when none or several match."""
        from aiida.orm import QueryBuilder, load_node

        from ..frameworks import bundled_models

        for key in ('name', 'sha256'):
            found = QueryBuilder().append(cls, filters={f'attributes.{key}': identifier}).all(flat=True)
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                choices = ', '.join(f'{m.pk} ({m.sha256[:12]})' for m in found)
                raise ValueError(f'several models are called `{identifier}`: {choices}; give a pk or sha256')
        if identifier in bundled_models():
            return cls.from_bundled(identifier)[0]
        try:
            node = load_node(identifier)
        except Exception:
            node = None
        if isinstance(node, cls):
            return node
        raise ValueError(f'no model `{identifier}`: register it with `aiida-mliap setup model`')

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
    def elements(self) -> set[str] | None:
        """The elements the model covers, as its framework read them at registration (None: registered before
        this was recorded, or a framework that does not say; the runner still refuses per structure)."""
        elements = self.checkpoint_facts.get('elements')
        return None if elements is None else set(elements)

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
