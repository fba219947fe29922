"""One sha256 for a model, whether it is a single checkpoint file or a folder of files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

CHUNK = 1 << 20


def sha256_of_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def combine_file_hashes(named_hashes: Iterable[tuple[str, str]]) -> str:
    """Hash of a set of files: a single file keeps its own sha256, so a checkpoint's hash is the familiar one."""
    items = sorted(named_hashes)
    if len(items) == 1:
        return items[0][1]
    digest = hashlib.sha256()
    for name, file_hash in items:
        digest.update(f'{name}\0{file_hash}\n'.encode())
    return digest.hexdigest()


def model_files(path: Path | str) -> list[Path]:
    """The files that make up a model at ``path`` (a file, or every file below a folder), sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob('*') if p.is_file() and '__pycache__' not in p.parts)
        if files:
            return files
        raise ValueError(f'model folder {path} contains no files')
    raise FileNotFoundError(f'model path {path} does not exist')


def model_layout(path: Path | str) -> tuple[Path, list[str]]:
    """The folder a model's files are relative to, and their relative names: how the node stores them and the
    runner finds them again (``framework.load(root, names, ...)``)."""
    path = Path(path)
    root = path if path.is_dir() else path.parent
    return root, [f.relative_to(root).as_posix() for f in model_files(path)]


def sha256_of_model(path: Path | str) -> str:
    root, names = model_layout(path)
    return combine_file_hashes((name, sha256_of_file(root / name)) for name in names)
