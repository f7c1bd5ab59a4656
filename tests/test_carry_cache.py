"""examples/training/carry_cache.py: a feature cache packed with 8-bit mels, cut into pieces and restored."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import example_script


@pytest.fixture(scope="module")
def carry_cache():
    return example_script("training/carry_cache.py", "carry_cache")


def make_cache(root: Path, entries: int = 6) -> dict[str, dict[str, np.ndarray]]:
    """A corpus folder with filelists and a cache of random entries (the layout `melinterp preprocess` writes)."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    (root / "filelists").mkdir(parents=True)
    (root / "filelists" / "train.txt").write_text("../wavs/a/t00001.wav|a|Hello there.\n", encoding="utf-8")
    cache = root / "cache"
    (cache / "entries").mkdir(parents=True)
    (cache / "feature_config.json").write_text(json.dumps({"log_clamp": 1e-5}), encoding="utf-8")
    tensors, index = {}, {}
    for number in range(entries):
        key = hashlib.sha1(str(number).encode()).hexdigest()
        frames = 40 + number
        tensors[key] = {"mel": rng.uniform(-11.0, 2.0, (80, frames)).astype(np.float32),
                        "f0": rng.uniform(80, 300, frames).astype(np.float32),
                        "phoneme_ids": rng.integers(0, 60, 12).astype(np.int64)}
        path = cache / "entries" / key[:2] / f"{key}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors[key], str(path), {"speaker": f"s{number}"})
        index[key] = {"speaker": f"s{number}", "frames": frames}
    (cache / "index.json").write_text(json.dumps(index), encoding="utf-8")
    return tensors


def test_pack_cut_into_pieces_and_unpack(carry_cache, tmp_path):
    from safetensors.numpy import load_file

    tensors = make_cache(tmp_path / "corpus")
    pieces = carry_cache.pack(tmp_path / "corpus", tmp_path / "pack" / "c.tar.xz", piece_mb=0.01)
    assert len(pieces) >= 3 and all(piece.stat().st_size <= 10_000 for piece in pieces)
    assert not (tmp_path / "pack" / "c.tar.xz").exists()
    sums = (tmp_path / "pack" / "c.tar.xz.sha256").read_text().splitlines()
    assert [line.split()[1] for line in sums] == [piece.name for piece in pieces]
    assert all(hashlib.sha256(piece.read_bytes()).hexdigest() == line.split()[0] for piece, line in zip(pieces, sums))

    carry_cache.unpack(pieces, tmp_path / "restored")
    restored = tmp_path / "restored"
    assert (restored / "filelists" / "train.txt").read_text() == "../wavs/a/t00001.wav|a|Hello there.\n"
    for key, original in tensors.items():
        entry = load_file(str(restored / "cache" / "entries" / key[:2] / f"{key}.safetensors"))
        assert np.array_equal(entry["f0"], original["f0"]) and np.array_equal(entry["phoneme_ids"],
                                                                              original["phoneme_ids"])
        step = (carry_cache.MEL_CEILING - np.log(1e-5)) / carry_cache.LEVELS
        assert np.abs(entry["mel"] - np.clip(original["mel"], None, carry_cache.MEL_CEILING)).max() <= step / 2 + 1e-5
    with pytest.raises(Exception):  # a missing piece breaks the stream
        carry_cache.unpack(pieces[:-1], tmp_path / "partial")
    with pytest.raises(FileNotFoundError, match="no such archive or piece"):
        carry_cache.unpack([tmp_path / "nothing.part000"], tmp_path / "x")
