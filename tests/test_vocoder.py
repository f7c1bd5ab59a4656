"""Griffin-Lim vocoder: mel -> waveform -> mel round trips, pitch, framing, batching, serialisation."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from conftest import SAMPLE_RATE, harmonic_tone, requires_espeak

from melinterp.audio import FeatureConfig, extract_f0, mel_filterbank, mel_spectrogram
from melinterp.models.vocoder import GriffinLimVocoder

LOUD_RANGE = np.log(1000.0)  # cells within 60 dB of the clip's peak: below that the log clamp rules


def log_mel_error(mel: torch.Tensor, waveform: torch.Tensor, config: FeatureConfig | None = None) -> float:
    """Mean |log-mel(waveform) - mel| in nats over the cells of ``mel`` within 60 dB of its peak."""
    rebuilt = mel_spectrogram(waveform, config)
    assert rebuilt.shape == mel.shape  # the vocoder's output re-analyses onto the same frame grid
    loud = mel > mel.max() - LOUD_RANGE
    return float((rebuilt - mel).abs()[loud].mean())


@pytest.fixture(scope="module")
def vocoder():
    return GriffinLimVocoder()


@pytest.fixture(scope="module")
def tone_mel():
    return mel_spectrogram(torch.from_numpy(harmonic_tone(150.0, seconds=0.5)))  # (80, 43)


def test_tone_round_trip_keeps_length_spectrum_and_pitch(vocoder, tone_mel):
    waveform = vocoder(tone_mel)
    assert waveform.shape == (tone_mel.shape[-1] * 256,)
    # Griffin-Lim leaks some energy into the deep nulls between harmonics (5 nats below the peaks); measured 0.32
    # nats (~2.8 dB) on this tone, 0.41 with the clamped pseudo-inverse alone.
    assert log_mel_error(tone_mel, waveform) < 0.45
    f0 = extract_f0(waveform.numpy())
    voiced = f0[f0 > 0]
    assert voiced.size > 0.8 * f0.size
    assert np.median(voiced) == pytest.approx(150.0, rel=0.01)


@pytest.mark.engines
@requires_espeak
def test_speech_round_trip_has_small_log_mel_error(vocoder, tmp_path):
    import soundfile

    path = tmp_path / "utterance.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "Hello there, my friend."], check=True, capture_output=True)
    speech, sr = soundfile.read(path, dtype="float32")
    assert sr == SAMPLE_RATE
    mel = mel_spectrogram(torch.from_numpy(speech[: 256 * (len(speech) // 256)]))
    waveform = vocoder(mel)
    assert waveform.shape == (mel.shape[-1] * 256,)
    # Speech fills the spectrum more evenly than a tone: measured ~0.11 nats (~1 dB) for espeak-ng utterances.
    assert log_mel_error(mel, waveform) < 0.2


def test_nnls_explains_the_mel_better_than_the_clamped_pseudo_inverse(tone_mel):
    basis = mel_filterbank()

    def explained_error(vocoder: GriffinLimVocoder) -> float:
        magnitude = vocoder.mel_to_magnitude(tone_mel[None])[0]  # (513, T)
        assert magnitude.min() >= 0
        return float((torch.log(torch.clamp(basis @ magnitude, min=1e-5)) - tone_mel).abs().mean())

    nnls = explained_error(GriffinLimVocoder(mel_inversion="nnls"))
    pinv = explained_error(GriffinLimVocoder(mel_inversion="pinv"))
    assert nnls < 0.1
    assert nnls < 0.5 * pinv


def test_batch_equals_single_and_is_deterministic(vocoder, tone_mel):
    other = mel_spectrogram(torch.from_numpy(harmonic_tone(220.0, seconds=0.5)))
    batch = vocoder(torch.stack([tone_mel, other]))  # (2, T * hop)
    assert batch.shape == (2, tone_mel.shape[-1] * 256)
    torch.testing.assert_close(batch[0], vocoder(tone_mel), atol=1e-5, rtol=0)
    torch.testing.assert_close(batch[1], vocoder(other), atol=1e-5, rtol=0)
    assert torch.equal(vocoder(tone_mel), vocoder(tone_mel))


def test_dtype_follows_the_mel_and_arithmetic_stays_float32(tone_mel):
    vocoder = GriffinLimVocoder(n_iter=4)
    reference = vocoder(tone_mel)
    as_double = vocoder(tone_mel.double())
    assert as_double.dtype == torch.float64
    torch.testing.assert_close(as_double.float(), reference)
    # A pipeline may move every component to half precision; the vocoder still computes in float32.
    half = GriffinLimVocoder(n_iter=4).half()
    torch.testing.assert_close(half(tone_mel).float(), reference, atol=1e-3, rtol=0)


def test_save_load_round_trip(tmp_path, tone_mel):
    vocoder = GriffinLimVocoder(n_iter=8, momentum=0.9, nnls_iter=4)
    vocoder.save_pretrained(tmp_path)
    loaded = GriffinLimVocoder.from_pretrained(tmp_path)
    assert loaded.config.n_iter == 8 and loaded.config.momentum == 0.9 and loaded.config.nnls_iter == 4
    assert torch.equal(loaded(tone_mel), vocoder(tone_mel))


def test_from_feature_config_matches_other_framings():
    # hop 200 does not divide n_fft 1024: the overlap-add takes its general path
    config = FeatureConfig(sample_rate=16000, n_fft=1024, hop_length=200, win_length=800, n_mels=64, f_max=7600.0)
    vocoder = GriffinLimVocoder.from_feature_config(config, n_iter=16)
    assert (vocoder.config.sample_rate, vocoder.config.hop_length, vocoder.config.n_mels) == (16000, 200, 64)
    assert vocoder.config.n_iter == 16
    tone = harmonic_tone(200.0, seconds=0.4, sr=16000)
    mel = mel_spectrogram(torch.from_numpy(tone), config)  # (64, 32)
    waveform = vocoder(mel)
    assert waveform.shape == (mel.shape[-1] * 200,)
    assert log_mel_error(mel, waveform, config) < 0.5


def test_errors_say_what_was_expected(vocoder):
    with pytest.raises(ValueError, match=r"expected a log-mel of shape \(B, 80, T\).*got \(1, 64, 10\)"):
        vocoder(torch.zeros(1, 64, 10))
    with pytest.raises(ValueError, match="at least 2 frames"):
        vocoder(torch.zeros(80, 1))
    with pytest.raises(ValueError, match="NaN or infinite"):
        vocoder(torch.full((80, 10), float("nan")))
    with pytest.raises(ValueError, match="at least one log-mel in the batch"):
        vocoder(torch.zeros(0, 80, 10))
    with pytest.raises(ValueError, match="mel_inversion must be one of nnls, pinv"):
        GriffinLimVocoder(mel_inversion="lstsq")
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        GriffinLimVocoder(momentum=1.5)
    with pytest.raises(TypeError, match="FeatureConfig"):
        GriffinLimVocoder.from_feature_config({"sample_rate": 22050})


def test_out_of_range_mels_give_finite_audio(vocoder):
    # an untrained model's mels reach +-80 nats; exp(80) overflows float32 unless the vocoder clamps
    mel = torch.linspace(-80.0, 80.0, 80 * 12).reshape(80, 12)
    waveform = vocoder(mel)
    assert torch.isfinite(waveform).all()
    clamped = vocoder(mel.clamp(max=5.0))
    torch.testing.assert_close(waveform, clamped)
