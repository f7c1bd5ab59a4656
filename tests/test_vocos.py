"""Vocos vocoder: the inverse STFT undoes the front end's framing, output shapes, bounds and dtypes, a tiny model
learns to reproduce a tone's log-mel, bad inputs and configs are refused, save/load, and the pipeline's vocoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SAMPLE_RATE, harmonic_tone

from melinterp import tiny_pipeline
from melinterp.audio import FeatureConfig, MelSpectrogram, mel_spectrogram
from melinterp.models.vocoder import inverse_stft
from melinterp.models.vocos import VocosVocoder

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"dim": 16, "intermediate_dim": 32, "num_layers": 2, "kernel_size": 3}
LOUD_RANGE = math.log(1000.0)  # cells within 60 dB of the peak: below that the log clamp rules


def tiny_vocos(seed: int = 0, **kwargs) -> VocosVocoder:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VocosVocoder(**{**TINY, **kwargs}).eval()


@pytest.fixture(scope="module")
def vocos():
    return tiny_vocos()


@pytest.fixture
def mel():
    return torch.randn(3, 80, 21, generator=torch.Generator().manual_seed(1)) - 4.0  # (B, n_mels, T)


# ---------------------------------------------------------------------------------------------------------------
# Framing: inverse_stft undoes the front end's STFT
# ---------------------------------------------------------------------------------------------------------------


def front_end_stft(signal: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """The front end's complex STFT of (B, N): reflect pad (n_fft - hop) / 2 both sides, center=False, periodic
    Hann of win_length samples -> (B, n_freq, N // hop)."""
    n_fft, hop, win = config.n_fft, config.hop_length, config.win_length
    pad_left = (n_fft - hop) // 2
    padded = F.pad(signal[:, None], (pad_left, n_fft - hop - pad_left), mode="reflect")[:, 0]
    front_end = MelSpectrogram(config)
    assert torch.equal(front_end.window, torch.hann_window(win, periodic=True))
    spectrum = torch.stft(padded, n_fft, hop_length=hop, win_length=win, window=front_end.window, center=False,
                          return_complex=True)
    torch.testing.assert_close(spectrum.abs(), front_end.magnitude(signal), atol=1e-4, rtol=1e-4)
    return spectrum


def random_signal(num_samples: int) -> torch.Tensor:
    return torch.rand(2, num_samples, generator=torch.Generator().manual_seed(0)) * 2 - 1  # (B, N) in [-1, 1)


@pytest.mark.parametrize("n_fft, hop, win", [(1024, 256, 1024), (1024, 256, 800), (512, 160, 400)],
                         ids=["default", "short-window", "hop-not-dividing-n_fft"])
def test_inverse_stft_gives_back_the_signal_the_front_end_framed(n_fft, hop, win):
    num_frames = 20
    signal = random_signal(num_frames * hop + 37)  # the front end drops the samples past the last whole hop
    spectrum = front_end_stft(signal, FeatureConfig(n_fft=n_fft, hop_length=hop, win_length=win))
    assert spectrum.shape[-1] == num_frames
    left = (n_fft - win) // 2  # torch.stft centres the window in the frame
    rebuilt = inverse_stft(spectrum, F.pad(torch.hann_window(win), (left, n_fft - win - left)), hop)
    assert rebuilt.shape == (2, num_frames * hop)
    assert float((rebuilt - signal[:, : num_frames * hop]).abs().max()) < 1e-5


@pytest.mark.parametrize("win", [1024, 800])
def test_vocos_synthesises_with_the_front_ends_framing(monkeypatch, win):
    """Given the front end's STFT of a signal for its spectrum, Vocos's waveform is that signal."""
    config = FeatureConfig(win_length=win)
    signal = random_signal(20 * 256)
    vocos = tiny_vocos(win_length=win)
    monkeypatch.setattr(vocos, "spectrum", lambda mel: front_end_stft(signal, config))
    waveform = vocos(torch.zeros(2, 80, 20))
    assert float((waveform - signal).abs().max()) < 1e-5


# ---------------------------------------------------------------------------------------------------------------
# Output: shapes, batching, determinism, bounds, dtypes
# ---------------------------------------------------------------------------------------------------------------


def test_output_has_hop_samples_per_frame_and_batch_equals_per_item(vocos, mel):
    waveform = vocos(mel)
    assert waveform.shape == (3, 21 * 256)
    assert float(waveform.std()) > 0  # not silence
    for index in range(3):
        single = vocos(mel[index])
        assert single.shape == (21 * 256,)
        torch.testing.assert_close(single, waveform[index], atol=1e-6, rtol=1e-5)
    assert torch.equal(vocos(mel), waveform)  # deterministic


def test_output_is_clamped_to_full_scale_whatever_the_mel(mel):
    loud = tiny_vocos()
    n_freq = loud.config.n_fft // 2 + 1
    with torch.no_grad():  # the largest magnitude in every bin, random phases: noise of ~3x full scale unclamped
        loud.head.bias[:n_freq] = 10.0
        loud.head.bias[n_freq:] = torch.rand(n_freq, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
    for value in (mel, torch.full_like(mel, 1e4)):  # 1e4 nats: the input clamp at max_log_mel keeps it finite
        waveform = loud(value)
        assert torch.isfinite(waveform).all()
        assert float(waveform.abs().max()) == 1.0


def test_output_dtype_follows_the_mel_and_float16_mels_work(vocos, mel):
    assert vocos(mel.double()).dtype == torch.float64
    half = mel.half()
    waveform = vocos(half)
    assert waveform.dtype == torch.float16 and waveform.shape == (3, 21 * 256)
    assert torch.isfinite(waveform).all()
    # the stack runs in the module's float32: the same as the float32 mel, rounded to float16
    torch.testing.assert_close(waveform, vocos(half.float()).half(), atol=1e-3, rtol=1e-2)


# ---------------------------------------------------------------------------------------------------------------
# Learning: gradients flow through `waveform` and the framing lines up with the front end's
# ---------------------------------------------------------------------------------------------------------------


def test_a_tiny_vocos_learns_to_reproduce_a_tones_log_mel():
    target = mel_spectrogram(torch.from_numpy(harmonic_tone(150.0, seconds=0.5)))[None]  # (1, 80, 43)
    loud = target > target.max() - LOUD_RANGE
    vocos = tiny_vocos(num_layers=1)
    front_end = MelSpectrogram(FeatureConfig())

    def errors() -> tuple[float, float]:
        """Mean |log-mel(output) - target| in nats over all cells and over the loud ones."""
        rebuilt = front_end(vocos(target))
        assert rebuilt.shape == target.shape  # T frames in, T * hop samples out, T frames on re-analysis
        error = (rebuilt - target).abs()
        return float(error.mean()), float(error[loud].mean())

    before = errors()
    optimizer = torch.optim.Adam(vocos.parameters(), lr=3e-3)
    vocos.train()
    for _ in range(150):
        loss = F.l1_loss(front_end(vocos.waveform(target)), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    vocos.eval()
    after = errors()
    # measured 4.3 -> 2.2 nats overall, 3.8 -> 1.25 on the loud cells (the harmonics), in 150 steps
    assert after[0] < 0.7 * before[0], (before, after)
    assert after[1] < 0.5 * before[1], (before, after)


# ---------------------------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 40, 5), r"expected a log-mel of shape \(B, 80, T\) or \(80, T\), got \(2, 40, 5\)"),
    (torch.zeros(80), r"expected a log-mel of shape \(B, 80, T\) or \(80, T\), got \(80,\)"),
    (torch.zeros(1, 80, 5, dtype=torch.long), "expected a floating-point log-mel, got dtype torch.int64"),
    (torch.full((1, 80, 5), float("nan")), "NaN or infinite"),
    (torch.zeros(1, 80, 1), "at least 2 frames, got T = 1"),
    (torch.zeros(0, 80, 5), r"at least one log-mel in the batch, got shape \(0, 80, 5\)"),
], ids=["n_mels", "1-d", "integer", "nan", "too-few-frames", "empty-batch"])
def test_bad_mels_are_refused(vocos, bad, message):
    with pytest.raises(ValueError, match=message):
        vocos(bad)


def test_min_frames_is_what_the_front_end_needs_to_reanalyse_the_output(vocos):
    assert vocos.min_frames == 2  # (1024 - 256) / 2 = 384 samples of reflect padding need 2 hops of signal
    waveform = vocos(torch.zeros(80, vocos.min_frames) - 4.0)
    assert mel_spectrogram(waveform).shape == (80, vocos.min_frames)


@pytest.mark.parametrize("kwargs, message", [
    ({"kernel_size": 4}, "kernel_size must be odd"),
    ({"hop_length": 512, "win_length": 256}, "hop_length <= win_length <= n_fft, got 512, 256, 1024"),
    ({"win_length": 2048}, "hop_length <= win_length <= n_fft"),
    ({"dim": 0}, "VocosVocoder.dim must be a positive integer, got 0"),
    ({"n_mels": 80.5}, "VocosVocoder.n_mels must be a positive integer"),
])
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VocosVocoder(**{**TINY, **kwargs})


# ---------------------------------------------------------------------------------------------------------------
# Serialisation and the pipeline
# ---------------------------------------------------------------------------------------------------------------


def test_save_and_load_give_the_same_output(tmp_path, vocos, mel):
    vocos.save_pretrained(tmp_path / "vocos")
    loaded = VocosVocoder.from_pretrained(tmp_path / "vocos").eval()
    assert loaded.config.dim == TINY["dim"] and loaded.config.num_layers == TINY["num_layers"]
    assert torch.equal(loaded(mel), vocos(mel))


def test_the_pipeline_speaks_through_vocos():
    pipe = tiny_pipeline()
    features = pipe.feature_config
    assert (features.n_mels, features.n_fft, features.hop_length) == (80, 1024, 256)
    pipe.vocoder = tiny_vocos(n_mels=features.n_mels, sample_rate=features.sample_rate, n_fft=features.n_fft,
                              hop_length=features.hop_length, win_length=features.win_length)
    reference = (harmonic_tone(150.0, 0.5), SAMPLE_RATE)
    out = pipe("Hello there.", reference, None, mode="none", num_inference_steps=2,
               generator=torch.Generator().manual_seed(0))
    (num_frames,) = out.lengths
    assert out.audios.shape == (1, num_frames * features.hop_length)
    assert np.isfinite(out.audios).all() and np.abs(out.audios).max() > 0


def test_load_vocoder_folder_takes_the_class_its_config_names_and_refuses_others(tmp_path):
    import json

    from melinterp.models.vocoder import load_vocoder_folder

    folder = tmp_path / "vocos"
    VocosVocoder(dim=16, intermediate_dim=32, num_layers=1).save_pretrained(folder)
    assert isinstance(load_vocoder_folder(folder), VocosVocoder)
    (folder / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(ValueError, match="names class 'UNet2DModel', which is not a melinterp vocoder"):
        load_vocoder_folder(folder)
    (folder / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match=r"vocoder config .*config.json is not valid JSON"):
        load_vocoder_folder(folder)
    with pytest.raises(ValueError, match="not a vocoder folder"):
        load_vocoder_folder(tmp_path)
    # weights that cannot be read (a truncated download) are named, not a diffusers traceback
    VocosVocoder(dim=16, intermediate_dim=32, num_layers=1).save_pretrained(folder)
    weights = folder / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"vocos: could not load the VocosVocoder weights .*write the folder again"):
        load_vocoder_folder(folder)
    weights.unlink()
    with pytest.raises(ValueError, match="could not load the VocosVocoder weights"):
        load_vocoder_folder(folder)
