"""examples/training/pack_mels.py: a vocoder-mels file in 8 bits a value and back, keys and frames unchanged."""

import pytest
import torch
from conftest import example_script

from melinterp.training.vocoder_mels import save_model_mels
from melinterp.training.vocoder_trainer import read_model_mels


@pytest.fixture(scope="module")
def pack_mels():
    return example_script("training/pack_mels.py", "pack_mels")


def test_pack_and_unpack_keep_keys_frames_and_half_a_step(pack_mels, tmp_path, capsys):
    generator = torch.Generator().manual_seed(0)
    mels = {"wavs/a/t1": torch.randn(80, 37, generator=generator) * 3 - 5,
            "wavs/b/t2": torch.full((80, 5), -11.5),  # a silent mel: no range at all
            "wavs/b/t3": torch.linspace(-11.5, 2.0, 80 * 90).reshape(80, 90)}
    source = save_model_mels({name: mel.to(torch.float16) for name, mel in mels.items()}, tmp_path / "mels.safetensors")
    assert pack_mels.main(["pack", str(source), "--out", str(tmp_path / "pack" / "mels.npz")]) == 0
    packed, back = tmp_path / "pack" / "mels.npz", tmp_path / "back.safetensors"
    assert pack_mels.main(["unpack", str(packed), "--out", str(back)]) == 0
    assert "unpacked 3 mels" in capsys.readouterr().out
    original, restored = read_model_mels(source), read_model_mels(tmp_path / "back.safetensors")
    assert list(restored) == list(original)  # the recording keys, in order
    for name, mel in original.items():
        back = restored[name]
        assert back.dtype == torch.float16 and back.shape == mel.shape
        half_step = float(mel.float().max() - mel.float().min()) / 510
        # half a quantisation step, and float16's own rounding of the restored value
        assert (back.float() - mel.float()).abs().max() <= half_step + 0.01
    torch.testing.assert_close(restored["wavs/b/t2"].float(), original["wavs/b/t2"].float())


def test_a_file_that_is_not_a_mels_file_is_named(pack_mels, tmp_path, capsys):
    bad = tmp_path / "not_mels.safetensors"
    bad.write_bytes(b"not a safetensors file")
    assert pack_mels.main(["pack", str(bad), "--out", str(tmp_path / "out.npz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"pack_mels.py: error: {bad}") and not (tmp_path / "out.npz").exists()
    assert pack_mels.main(["unpack", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "o.safetensors")]) == 1
    assert "missing.npz" in capsys.readouterr().err


def test_empty_folder_and_foreign_inputs_are_refused_and_nothing_is_half_written(pack_mels, tmp_path, capsys):
    import numpy as np

    empty = save_model_mels({}, tmp_path / "empty.safetensors")
    one = save_model_mels({"wavs/a": torch.zeros(80, 4, dtype=torch.float16)}, tmp_path / "one.safetensors")
    cases = [
        (["pack", str(empty), "--out", str(tmp_path / "e.npz")], "holds no mels: nothing to pack"),
        (["pack", str(one), "--out", str(tmp_path)], f"--out {tmp_path} is a folder"),
        (["unpack", str(one), "--out", str(tmp_path / "u.safetensors")], "not an .npz archive written by"),
    ]
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, steps=np.zeros((80, 4), np.uint8))
    cases.append((["unpack", str(foreign), "--out", str(tmp_path / "f.safetensors")],
                  "without lengths, low, high, names"))
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, message in cases:
        assert pack_mels.main(argv) == 1
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no temporary file left
    # the output takes the name given, whatever its suffix (numpy would add ".npz" to a path)
    assert pack_mels.main(["pack", str(one), "--out", str(tmp_path / "one.bin")]) == 0
    assert (tmp_path / "one.bin").is_file() and not (tmp_path / "one.bin.npz").exists()
