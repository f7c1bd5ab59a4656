"""Files: what is written gets the usual permissions, what is read names the file when it cannot be read, and
output folders are checked before the long work starts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from melinterp.testing import tiny_pipeline
from melinterp.utils import atomic_path

UMASK = 0o027  # a umask that differs from the common 022, so a hard-coded 0644 would show


@pytest.fixture
def known_umask():
    previous = os.umask(UMASK)
    yield 0o666 & ~UMASK
    os.umask(previous)


def file_modes(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): stat.S_IMODE(path.stat().st_mode)
            for path in sorted(folder.rglob("*")) if path.is_file()}


# ---------------------------------------------------------------------------------------------------------------
# Modes of written files (safetensors >= 0.8 writes 0600 files through a temporary file of its own)
# ---------------------------------------------------------------------------------------------------------------

def test_atomic_path_gives_a_safetensors_file_the_usual_mode(tmp_path, known_umask):
    with atomic_path(tmp_path / "weights.safetensors") as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp))
    with atomic_path(tmp_path / "notes.txt") as tmp:
        tmp.write_text("hello")
    assert file_modes(tmp_path) == {"notes.txt": known_umask, "weights.safetensors": known_umask}


def test_atomic_path_keeps_the_mode_of_the_file_it_replaces(tmp_path, known_umask):
    """As ``open(path, "w")`` would: a file keeps the mode its owner gave it (here wider than the umask's)."""
    path = tmp_path / "weights.safetensors"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    with atomic_path(path) as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp))
    assert file_modes(tmp_path) == {"weights.safetensors": 0o644}
    assert path.read_bytes() != b"old"


def test_save_pretrained_gives_every_file_the_usual_mode(tmp_path, known_umask):
    tiny_pipeline().save_pretrained(tmp_path / "model")
    modes = file_modes(tmp_path / "model")
    assert any(name.endswith(".safetensors") for name in modes)
    assert modes == dict.fromkeys(modes, known_umask)


def test_training_checkpoints_give_every_file_the_usual_mode(tmp_path, known_umask):
    from melinterp.training.checkpoint import save_checkpoint

    model = torch.nn.Linear(2, 2)
    path = save_checkpoint(tmp_path, models={"m": model}, ema={}, optimizer=torch.optim.SGD(model.parameters(), 0.1),
                           state={"step": 1})
    modes = file_modes(path)
    assert "models.safetensors" in modes and "state.json" in modes
    assert modes == dict.fromkeys(modes, known_umask)
