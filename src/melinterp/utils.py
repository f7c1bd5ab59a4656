"""Small helpers shared across the package."""

from __future__ import annotations

import contextlib
import json
import numbers
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block finishes.

    Readers never see a half-written file: an exception or an interrupt leaves the old file (or none).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new empty folder beside ``path``; put it in place of ``path`` only if the block finishes.

    Readers never see a half-written folder: an exception or an interrupt leaves the old ``path`` (or none) and no
    temporary folder. An existing ``path`` is replaced; whether that is allowed is the caller's decision.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders; give the usual permissions
    try:
        yield tmp
        if not path.exists():
            os.replace(tmp, path)
            return
        # a folder cannot be renamed over a non-empty one: move the old one aside first, drop it once replaced
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.replace(path, old / path.name)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(old / path.name, path)  # put the old folder back (if even that fails, it stays in `old`)
            os.rmdir(old)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write a matplotlib figure as a PNG, atomically, and close it (also when saving fails)."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)


def write_json(path: str | os.PathLike, value) -> None:
    """Write ``value`` as indented, key-sorted UTF-8 JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def is_real(value) -> bool:
    """Whether ``value`` is a finite real number (a bool is not one)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and bool(np.isfinite(value))


def check_number(name: str, value, valid: Callable[[float], bool], expected: str) -> None:
    """A ValueError "``name`` must be ``expected``, got ``value``" unless ``value`` is a finite real that is
    ``valid``."""
    if not is_real(value) or not valid(value):
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
