"""Files: what is written gets the usual permissions, what is read names the file when it cannot be read, and
output folders are checked before the long work starts."""

from __future__ import annotations

import json
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


# ---------------------------------------------------------------------------------------------------------------
# Text and config files that are not UTF-8: the error names the file and the line, in one line
# ---------------------------------------------------------------------------------------------------------------

LATIN_1 = "One line.\nUne idée.\n".encode("latin-1")  # line 2 holds 0xe9, which UTF-8 does not start a character with


def write_latin_1_case(tmp_path: Path, command: str) -> tuple[list[str], Path]:
    """(argv, the file that is not UTF-8) for ``command``."""
    bad = tmp_path / "bad.txt"
    bad.write_bytes(LATIN_1)
    if command == "synthesize":
        ref = tmp_path / "ref.wav"
        ref.write_bytes(b"")
        return ["synthesize", "--text-file", str(bad), "--ref1", str(ref), "--out", str(tmp_path / "o.wav")], bad
    if command == "train":
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"data": {"train_filelist": "train.txt", "cache_dir": "cache"},
                                      "models": bad.name}))
        return ["train", "--config", str(config), "--output-dir", str(tmp_path / "run")], bad
    if command == "evaluate":
        corpus = tmp_path / "corpus"
        (corpus / "filelists").mkdir(parents=True)
        (corpus / "filelists" / "heldout.txt").write_text("../a.wav|A|Hello.\n")
        (corpus / "triplets.jsonl").write_bytes(LATIN_1)
        return ["evaluate", "--model", "unused", "--corpus", str(corpus), "--out", str(tmp_path / "out")], \
            corpus / "triplets.jsonl"
    assert command == "preprocess"
    return ["preprocess", "--filelist", str(bad), "--cache-dir", str(tmp_path / "cache")], bad


@pytest.mark.parametrize("command", ["synthesize", "train", "evaluate", "preprocess"])
def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path, capsys, command):
    from melinterp.cli import main

    argv, bad = write_latin_1_case(tmp_path, command)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"melinterp {command}: error: ") and err.count("\n") == 1
    assert f"{bad} is not UTF-8 text: line 2 holds byte 0xe9" in err


def test_a_byte_order_mark_is_not_read_as_text(tmp_path):
    from melinterp.utils import read_json_file, read_text_file

    path = tmp_path / "notepad.txt"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}')
    assert read_text_file(path, "file") == '{"a": 1}' and read_json_file(path, "file") == {"a": 1}


# ---------------------------------------------------------------------------------------------------------------
# Output folders and files are checked before the long work
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture
def no_long_work(monkeypatch):
    """Make the long part of every command an error, so a test sees which checks come before it."""
    import melinterp.analyze
    import melinterp.data.corpus
    import melinterp.data.features
    import melinterp.evaluation.benchmark
    import melinterp.training.trainer

    def started(*args, **kwargs):
        raise RuntimeError("the long work started")

    monkeypatch.setattr(melinterp.analyze, "analyze", started)
    monkeypatch.setattr(melinterp.data.corpus, "build_corpus", started)
    monkeypatch.setattr(melinterp.data.features, "build_cache", started)
    monkeypatch.setattr(melinterp.evaluation.benchmark, "load_model", started)
    monkeypatch.setattr(melinterp.evaluation.benchmark, "load_pairs", started)
    monkeypatch.setattr(melinterp.training.trainer, "Trainer", started)


def output_argv(command: str, tmp_path: Path, out: Path) -> list[str]:
    """A command line of ``command`` whose output is ``out`` and whose inputs are fine up to the long work."""
    if command == "analyze":
        return ["analyze", str(tmp_path / "speech.wav"), "--plot", str(out)]
    if command == "make-corpus":
        return ["make-corpus", "--out", str(out), "--preset", "tiny", "--quiet"]
    if command == "evaluate":
        return ["evaluate", "--model", "unused", "--corpus", str(tmp_path), "--out", str(out)]
    if command == "preprocess":
        return ["preprocess", "--filelist", str(tmp_path / "train.txt"), "--cache-dir", str(out)]
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"data": {"train_filelist": "train.txt", "cache_dir": "cache"},
                                  "models": {"text_encoder": {}, "style_encoder": {}, "unet": {}}}))
    return ["train", "--config", str(config), "--output-dir", str(out)]


OUTPUT_OPTIONS = {"analyze": "--plot", "make-corpus": "--out", "evaluate": "--out", "preprocess": "--cache-dir",
                  "train": "--output-dir"}


@pytest.mark.parametrize("command", OUTPUT_OPTIONS)
@pytest.mark.parametrize("where", ["the wrong kind", "under a file"])
def test_an_output_that_cannot_be_written_is_refused_before_the_long_work(tmp_path, capsys, no_long_work, command,
                                                                          where):
    from melinterp.cli import main

    notes = tmp_path / "notes.txt"
    notes.write_text("a file")
    if where == "under a file":
        out, expected = notes / "inside", f"{notes / 'inside'}: {notes} is a file, not a folder"
    elif command == "analyze":  # its output is a file: a folder is the wrong kind
        out = tmp_path / "plot.png"
        out.mkdir()
        expected = f"{out} is a folder, expected a .png file to write"
    else:
        out, expected = notes, f"{notes} is a file, expected a folder"
    assert main(output_argv(command, tmp_path, out)) == 1
    err = capsys.readouterr().err
    assert err == f"melinterp {command}: error: {OUTPUT_OPTIONS[command]} {expected}\n"
