"""HiFi-GAN generator: official checkpoints convert and vocode exactly as the authors' module does, presets match the
paper's sizes, unsafe or ill-fitting files are refused, and the generator serves as the pipeline's vocoder."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import harmonic_tone
from torch import nn

import melinterp
from melinterp import HiFiGANGenerator, MelStyleInterpolationPipeline, tiny_pipeline
from melinterp.cli import main
from melinterp.convert_hifigan import PRESETS, fold_weight_norm
from melinterp.models.hifigan import HIFIGAN_PRESETS

SR = 22050
# hop 256 = 8 * 8 * 4, as the package's features
TINY_V1 = {"resblock": "1", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
           "upsample_initial_channel": 16, "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 3, 5]] * 2}
TINY_V3 = {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
           "upsample_initial_channel": 16, "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 2], [2, 6]]}


# ---------------------------------------------------------------------------------------------------------------
# The authors' generator, as their models.py builds it (weight norm included), to check against
# ---------------------------------------------------------------------------------------------------------------


def weight_normed(conv: nn.Module) -> nn.Module:
    with warnings.catch_warnings():  # torch deprecates the hook-based weight_norm the official checkpoints use
        warnings.simplefilter("ignore", FutureWarning)
        return nn.utils.weight_norm(conv)


def padding(kernel: int, dilation: int) -> int:
    return (kernel * dilation - dilation) // 2


class OfficialResBlock1(nn.Module):
    def __init__(self, channels, kernel, dilations):
        super().__init__()
        self.convs1 = nn.ModuleList(weight_normed(nn.Conv1d(channels, channels, kernel, 1, dilation=d,
                                                            padding=padding(kernel, d))) for d in dilations)
        self.convs2 = nn.ModuleList(weight_normed(nn.Conv1d(channels, channels, kernel, 1, dilation=1,
                                                            padding=padding(kernel, 1))) for _ in dilations)

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c1(F.leaky_relu(x, 0.1))
            xt = c2(F.leaky_relu(xt, 0.1))
            x = xt + x
        return x


class OfficialResBlock2(nn.Module):
    def __init__(self, channels, kernel, dilations):
        super().__init__()
        self.convs = nn.ModuleList(weight_normed(nn.Conv1d(channels, channels, kernel, 1, dilation=d,
                                                           padding=padding(kernel, d))) for d in dilations)

    def forward(self, x):
        for c in self.convs:
            x = c(F.leaky_relu(x, 0.1)) + x
        return x


class OfficialGenerator(nn.Module):
    def __init__(self, h: dict):
        super().__init__()
        self.num_kernels = len(h["resblock_kernel_sizes"])
        self.num_upsamples = len(h["upsample_rates"])
        c = h["upsample_initial_channel"]
        self.conv_pre = weight_normed(nn.Conv1d(80, c, 7, 1, padding=3))
        block = OfficialResBlock1 if h["resblock"] == "1" else OfficialResBlock2
        self.ups = nn.ModuleList(weight_normed(nn.ConvTranspose1d(c // 2 ** i, c // 2 ** (i + 1), k, u,
                                                                  padding=(k - u) // 2))
                                 for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"])))
        self.resblocks = nn.ModuleList()
        for i in range(self.num_upsamples):
            ch = c // 2 ** (i + 1)
            for k, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"]):
                self.resblocks.append(block(ch, k, d))
        self.conv_post = weight_normed(nn.Conv1d(ch, 1, 7, 1, padding=3))

    def forward(self, x):
        x = self.conv_pre(x)
        for i in range(self.num_upsamples):
            x = self.ups[i](F.leaky_relu(x, 0.1))
            xs = None
            for j in range(self.num_kernels):
                y = self.resblocks[i * self.num_kernels + j](x)
                xs = y if xs is None else xs + y
            x = xs / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))  # (B, 1, T * hop)


def official_generator(h: dict, seed: int = 0) -> OfficialGenerator:
    """Random weights with g != ||v|| (at init g * v / ||v|| = v, which would not test the folding), scaled so that
    the waveform is a signal of std ~0.3, neither vanishing nor saturating the tanh."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ref = OfficialGenerator(h).eval()
    with torch.no_grad():
        for name, param in ref.named_parameters():
            if name.endswith("weight_g"):
                param.mul_(torch.linspace(1.5, 3.0, param.numel()).reshape(param.shape))
    return ref


def save_official(path, state) -> None:
    torch.save({"generator": state}, path)


@pytest.fixture
def mel():
    return torch.randn(2, 80, 13, generator=torch.Generator().manual_seed(1)) - 4.0  # (B, n_mels, T)


def leftovers(folder) -> list[str]:
    """Temporary folders (.name.*) a conversion could have left beside its output."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------------------------------------------------------
# Conversion: same waveform as the authors' module
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h", [TINY_V1, TINY_V3], ids=["resblock1", "resblock2"])
def test_converted_checkpoint_vocodes_like_the_official_module(tmp_path, capsys, mel, h):
    ref = official_generator(h)
    assert any(key.endswith("weight_g") for key in ref.state_dict())
    save_official(tmp_path / "g_00000001", ref.state_dict())
    (tmp_path / "config.json").write_text(json.dumps({**h, "num_mels": 80, "sampling_rate": SR, "hop_size": 256,
                                                      "learning_rate": 0.0002, "segment_size": 8192}))

    code = main(["convert-hifigan", str(tmp_path / "g_00000001"), str(tmp_path / "out"),
                 "--config", str(tmp_path / "config.json")])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"wrote {tmp_path / 'out'}" in printed and "HiFiGANGenerator.from_pretrained" in printed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json",
                                                                    "diffusion_pytorch_model.safetensors"]
    assert leftovers(tmp_path) == []

    generator = HiFiGANGenerator.from_pretrained(tmp_path / "out").eval()
    assert all(not key.endswith(("_g", "_v")) for key in generator.state_dict())
    with torch.no_grad():
        expected = ref(mel)[:, 0]  # (B, T * hop)
        waveform = generator(mel)
        single = generator(mel[0])  # unbatched: (T * hop,)
    assert waveform.shape == (2, 13 * 256)
    assert float(expected.std()) > 0.1  # a signal, not numerical noise
    torch.testing.assert_close(waveform, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(single, waveform[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("transposed", [False, True], ids=["Conv1d", "ConvTranspose1d"])
def test_folding_equals_torch_weight_norm(transposed):
    torch.manual_seed(0)
    conv = (nn.ConvTranspose1d(6, 4, 8, 4, padding=2) if transposed else nn.Conv1d(6, 4, 5, padding=2))
    normed = weight_normed(conv)
    with torch.no_grad():
        normed.weight_g.mul_(torch.rand_like(normed.weight_g) + 0.5)
    folded = fold_weight_norm(normed.state_dict())
    assert sorted(folded) == ["bias", "weight"]
    x = torch.randn(1, 6, 11)
    normed(x)  # the hook recomputes .weight from g and v
    torch.testing.assert_close(folded["weight"], normed.weight.detach(), atol=1e-7, rtol=1e-6)


def test_presets_are_inferred_and_converted(tmp_path):
    ref = official_generator({**HIFIGAN_PRESETS["v3"]})
    save_official(tmp_path / "generator_v3", ref.state_dict())
    assert main(["convert-hifigan", str(tmp_path / "generator_v3"), str(tmp_path / "v3")]) == 0
    generator = HiFiGANGenerator.from_pretrained(tmp_path / "v3")
    assert generator.config.upsample_initial_channel == 256 and generator.config.resblock == "2"
    mel = torch.randn(1, 80, 4, generator=torch.Generator().manual_seed(2)) - 4.0
    with torch.no_grad():
        torch.testing.assert_close(generator(mel), ref(mel)[:, 0], atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Presets: the authors' sizes
# ---------------------------------------------------------------------------------------------------------------


# Kong et al. 2020, Table 1: V1 13.92 M, V2 0.92 M, V3 1.46 M parameters
@pytest.mark.parametrize("name, millions", [("v1", 13.92), ("v2", 0.92), ("v3", 1.46)])
def test_preset_parameter_counts_match_the_official_generator(name, millions):
    ours = sum(p.numel() for p in HiFiGANGenerator.from_preset(name).parameters())
    ref = OfficialGenerator(HIFIGAN_PRESETS[name])
    # without weight norm: one weight per convolution, as ours (weight_g adds a scale per output channel)
    official = sum(v.numel() for k, v in fold_weight_norm(ref.state_dict()).items())
    assert ours == official
    assert abs(ours / 1e6 - millions) < 0.01


def test_presets_and_cli_choices_agree():
    assert PRESETS == tuple(HIFIGAN_PRESETS)
    with pytest.raises(ValueError, match="unknown HiFi-GAN preset 'v4': expected one of v1, v2, v3"):
        HiFiGANGenerator.from_preset("v4")


# ---------------------------------------------------------------------------------------------------------------
# Refusals: exit code 1, one line naming the problem, nothing written
# ---------------------------------------------------------------------------------------------------------------


def _make_marker(path):
    """What unpickling a `CodeRunningObject` does: evidence that the file ran code."""
    with open(path, "w") as f:
        f.write("unpickled")
    return path


class CodeRunningObject:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (_make_marker, (str(self.marker),))


def refuse(tmp_path, capsys, checkpoint, *extra) -> str:
    """Run the conversion expecting a refusal; return its one-line message."""
    out = tmp_path / "out"
    code = main(["convert-hifigan", str(checkpoint), str(out), *extra])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("melinterp convert-hifigan: error: ") and err.count("\n") == 1
    assert leftovers(tmp_path) == []
    return err


def test_a_file_with_other_objects_is_refused_without_unpickling(tmp_path, capsys):
    marker = tmp_path / "marker"
    state = official_generator(TINY_V1).state_dict()
    torch.save({"generator": state, "extra": CodeRunningObject(marker)}, tmp_path / "evil.pt")
    assert not marker.exists()
    err = refuse(tmp_path, capsys, tmp_path / "evil.pt")
    assert "holds objects other than tensors" in err and "_make_marker" in err and "will not be unpickled" in err
    assert not marker.exists() and not (tmp_path / "out").exists()
    torch.load(tmp_path / "evil.pt", weights_only=False)  # the trap is real: a full unpickling runs the code
    assert marker.exists()


def test_bad_checkpoints_are_refused_by_name(tmp_path, capsys):
    torch.save([torch.zeros(3)], tmp_path / "list.pt")
    assert "holds a list, not a dict" in refuse(tmp_path, capsys, tmp_path / "list.pt")

    torch.save({"mpd": {}, "msd": {}, "steps": 5}, tmp_path / "do_00000001")
    err = refuse(tmp_path, capsys, tmp_path / "do_00000001")
    assert 'has no "generator" entry' in err and "'mpd'" in err and "discriminators" in err

    torch.save({"generator": {"conv_pre.bias": [1.0, 2.0]}}, tmp_path / "lists.pt")
    assert "'conv_pre.bias' holds a list" in refuse(tmp_path, capsys, tmp_path / "lists.pt")

    (tmp_path / "text.pt").write_text("not a checkpoint")
    assert "is not a readable torch checkpoint" in refuse(tmp_path, capsys, tmp_path / "text.pt")

    assert "no such file" in refuse(tmp_path, capsys, tmp_path / "missing.pt")


def test_a_generator_of_other_shapes_is_refused_naming_the_tensors(tmp_path, capsys):
    h = {**HIFIGAN_PRESETS["v3"]}
    state = official_generator(h).state_dict()
    # a 100-mel generator: conv_pre takes 100 channels
    state["conv_pre.weight_v"] = torch.randn(256, 100, 7)
    save_official(tmp_path / "g_100mels", state)
    err = refuse(tmp_path, capsys, tmp_path / "g_100mels")
    assert "does not fit HiFi-GAN v3" in err and "conv_pre.weight is (256, 100, 7) in the file, (256, 80, 7)" in err

    # V3's tensors named as V1: missing and unexpected keys
    err = refuse(tmp_path, capsys, tmp_path / "g_100mels", "--preset", "v1")
    assert "does not fit HiFi-GAN v1" in err and "missing" in err and "resblocks.0.convs1.0.weight" in err
    assert "unexpected" in err and "resblocks.0.convs.0.weight" in err and "in all" in err

    del state["ups.0.weight_g"]
    save_official(tmp_path / "g_half", state)
    assert "ups.0.weight_v has no ups.0.weight_g" in refuse(tmp_path, capsys, tmp_path / "g_half")

    save_official(tmp_path / "g_tiny", official_generator(TINY_V1).state_dict())
    err = refuse(tmp_path, capsys, tmp_path / "g_tiny")
    assert "(16 channels, 3 upsamplers, ResBlock1) is none of the presets" in err and "--config" in err


def test_an_existing_output_folder_needs_overwrite(tmp_path, capsys):
    save_official(tmp_path / "g", official_generator(TINY_V1).state_dict())
    (tmp_path / "config.json").write_text(json.dumps(TINY_V1))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code = main(["convert-hifigan", str(tmp_path / "g"), str(out), "--config", str(tmp_path / "config.json")])
    err = capsys.readouterr().err
    assert code == 1 and "exists and is not empty: give --overwrite" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"] and leftovers(tmp_path) == []

    assert main(["convert-hifigan", str(tmp_path / "g"), str(out), "--config", str(tmp_path / "config.json"),
                 "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert leftovers(tmp_path) == []


def test_a_failed_write_leaves_no_folder_and_keeps_the_old_one(tmp_path, capsys, monkeypatch):
    save_official(tmp_path / "g", official_generator(TINY_V1).state_dict())
    (tmp_path / "config.json").write_text(json.dumps(TINY_V1))

    def half_write(self, folder, **kwargs):
        (Path(folder) / "config.json").write_text("{")
        raise RuntimeError("disk full")

    monkeypatch.setattr(HiFiGANGenerator, "save_pretrained", half_write)
    args = ["convert-hifigan", str(tmp_path / "g"), str(tmp_path / "out"), "--config", str(tmp_path / "config.json")]
    assert main(args) == 1 and "disk full" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert main([*args, "--overwrite"]) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["keep.txt"] and leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------------
# The generator itself
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_generator():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return HiFiGANGenerator(**TINY_V3).eval()


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 40, 5), r"expected a log-mel of shape \(B, 80, T\) or \(80, T\), got \(2, 40, 5\)"),
    (torch.zeros(80), r"expected a log-mel of shape \(B, 80, T\) or \(80, T\), got \(80,\)"),
    (torch.zeros(1, 80, 5, dtype=torch.long), "expected a floating-point log-mel, got dtype torch.int64"),
    (torch.zeros(1, 80, 0), "at least 1 frame, got T = 0"),
    (torch.zeros(0, 80, 5), r"at least one log-mel in the batch, got shape \(0, 80, 5\)"),
    (torch.full((1, 80, 5), float("nan")), "NaN or infinite"),
])
def test_bad_mels_are_refused(tiny_generator, bad, message):
    with pytest.raises(ValueError, match=message):
        tiny_generator(bad)


@pytest.mark.parametrize("kwargs, message", [
    ({"hop_length": 200}, r"hop_length must equal the product of upsample_rates \[8, 8, 4\] = 256"),
    ({"resblock": 1}, 'resblock must be "1"'),
    ({"upsample_kernel_sizes": [16, 15, 8]}, "got rate 8, kernel 15"),
    ({"resblock_dilation_sizes": [[1, 2, 3], [2, 6]]}, "ResBlock2 takes 2 positive dilations"),
    ({"resblock_kernel_sizes": [3, 4]}, "must be odd"),
])
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HiFiGANGenerator(**{**TINY_V3, **kwargs})


def test_output_is_bounded_and_keeps_the_mel_dtype(tiny_generator, mel):
    with torch.no_grad():
        waveform = tiny_generator(mel.double())
    assert waveform.dtype == torch.float64 and waveform.shape == (2, 13 * 256)
    assert float(waveform.abs().max()) <= 1.0


# ---------------------------------------------------------------------------------------------------------------
# As the pipeline's vocoder
# ---------------------------------------------------------------------------------------------------------------


def test_pipeline_speaks_through_the_generator_and_saves_it(tmp_path, tiny_generator):
    assert melinterp.HiFiGANGenerator is HiFiGANGenerator
    pipe = tiny_pipeline()
    hop = pipe.feature_config.hop_length
    assert tiny_generator.config.hop_length == hop
    pipe.vocoder = tiny_generator
    reference = (harmonic_tone(150.0, 0.5), SR)
    out = pipe("Hello there.", reference, None, mode="none", num_inference_steps=2,
               generator=torch.Generator().manual_seed(0))
    (num_frames,) = out.lengths
    assert out.audios.shape == (1, num_frames * hop) and np.isfinite(out.audios).all()
    assert np.abs(out.audios).max() > 0

    # attribute assignment records ["melinterp", class], as the constructor does
    folder = tmp_path / "pipe"
    pipe.save_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["vocoder"] == ["melinterp", "HiFiGANGenerator"]
    loaded = MelStyleInterpolationPipeline.from_pretrained(folder)
    assert isinstance(loaded.vocoder, HiFiGANGenerator)
    original, restored = tiny_generator.state_dict(), loaded.vocoder.state_dict()
    assert original.keys() == restored.keys() and all(torch.equal(original[k], restored[k]) for k in original)
    mel = torch.from_numpy(out.mels[..., :num_frames])
    with torch.no_grad():
        torch.testing.assert_close(loaded.vocoder(mel), tiny_generator(mel))

    # the README's recipe: a converted folder copied to vocoder/, model_index.json naming ["melinterp", class]
    shutil.rmtree(folder / "vocoder")
    tiny_generator.save_pretrained(folder / "vocoder")
    index["vocoder"] = ["melinterp", "HiFiGANGenerator"]
    (folder / "model_index.json").write_text(json.dumps(index))
    assert isinstance(MelStyleInterpolationPipeline.from_pretrained(folder).vocoder, HiFiGANGenerator)
    # and a pipeline built with the generator records that entry itself
    rebuilt = MelStyleInterpolationPipeline(**{**pipe.components, "vocoder": tiny_generator})
    assert list(rebuilt.config["vocoder"]) == ["melinterp", "HiFiGANGenerator"]
