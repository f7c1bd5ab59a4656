"""Small helpers shared across the package."""

from __future__ import annotations

import contextlib
import json
import numbers
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block finishes.

    Readers never see a half-written file: an exception or an interrupt leaves the old file (or none).
    The file gets the permissions ``open(path, "w")`` would give it (see `usual_mode`), also when the block
    replaces the temporary file by a new one rather than writing into it (safetensors >= 0.8 does: its own
    temporary file is 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, usual_mode(path))  # mkstemp made a 0600 file, and the block may have replaced it
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


def check_writable_file(option: str, path: str | os.PathLike, kind: str = "a") -> None:
    """Refuse, before any long work, an output file that could not be written: ``path`` is a folder, lies under a
    file, or its folder (or the nearest existing one, as `atomic_path` makes the rest) takes no new files.

    ``option`` ("--out") starts each message; ``kind`` (".wav") says what file was expected.

    Raises:
        ValueError: saying which of those it is.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder, expected {kind} file to write")
    _check_can_write_in(option, path, path.absolute().parent)


def check_writable_folder(option: str, folder: str | os.PathLike) -> None:
    """Refuse, before any long work, an output folder that could not be made or written: ``folder`` is a file,
    lies under a file, or its nearest existing folder takes no new files. ``option`` ("--out") starts each message.

    Raises:
        ValueError: saying which of those it is.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {folder} is a file, expected a folder")
    _check_can_write_in(option, folder, folder.absolute())


def _check_can_write_in(option: str, path: Path, folder: Path) -> None:
    """``folder``, or the nearest of its parents that exists, is a folder in which ``path`` can be made."""
    while not folder.exists() and not folder.is_symlink():
        folder = folder.parent  # the missing folders are made on writing; the nearest existing one must allow it
    if not folder.is_dir():
        raise ValueError(f"{option} {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: cannot write in the folder {folder} (permission denied)")
    try:  # os.access can be wrong (root, read-only mounts, ACLs): make and drop a file to be sure
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ValueError(f"{option} {path}: cannot write in the folder {folder} ({error.strerror})") from error


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


def read_text_file(path: str | os.PathLike, what: str) -> str:
    """The text of ``path`` decoded as UTF-8 (a leading byte-order mark dropped); ``what`` names the file in errors
    ("--text-file", "training config").

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: ``path`` is not UTF-8 text: the message gives the line and the first byte that is not.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path}: no such file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        line = error.object[:error.start].count(b"\n") + 1
        raise ValueError(f"{what} {path} is not UTF-8 text: line {line} holds byte 0x{error.object[error.start]:02x} "
                         f"({error.reason}); save the file as UTF-8") from None


_JSON_TYPES = {dict: "object", list: "array"}


def read_json_file(path: str | os.PathLike, what: str, kind: type = dict):
    """The JSON value in ``path``, which must be a ``kind`` (dict: an object, list: an array); errors as
    `read_text_file`, and a ValueError naming ``what`` and the file when it is not JSON or holds another type."""
    text = read_text_file(path, what)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{what} {path} is not valid JSON: {error}") from None
    if not isinstance(value, kind):
        raise ValueError(f"{what} {path} must hold a JSON {_JSON_TYPES[kind]}, got {type(value).__name__}")
    return value


def save_safetensors(tensors: dict, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` (name -> contiguous CPU tensor) as a safetensors file, atomically, with the usual mode."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def usual_mode(path: str | os.PathLike) -> int:
    """The permission bits ``open(path, "w")`` gives: an existing file's own, else `new_file_mode`."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return new_file_mode()


def new_file_mode() -> int:
    """The permission bits of a new file: 0o666 less the process umask."""
    return 0o666 & ~_umask()


def is_real(value) -> bool:
    """Whether ``value`` is a finite real number (a bool is not one)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and bool(np.isfinite(value))


def check_number(name: str, value, valid: Callable[[float], bool], expected: str) -> None:
    """A ValueError "``name`` must be ``expected``, got ``value``" unless ``value`` is a finite real that is
    ``valid``."""
    if not is_real(value) or not valid(value):
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _umask() -> int:
    """The process umask, from /proc where there is one: setting and restoring it races with other threads."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_positive_int(name: str, value, expected: str = "a positive integer") -> None:
    """A ValueError "``name`` must be ``expected``, got ``value``" unless ``value`` is an int >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
