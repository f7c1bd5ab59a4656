"""melinterp.audio: config, mel features, loading, f0, energy, mel-bin mapping and pitch masks."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from conftest import SAMPLE_RATE, harmonic_tone

from melinterp.audio import (
    AudioError,
    FeatureConfig,
    MelSpectrogram,
    extract_f0,
    frame_energy,
    hz_to_mel_bin,
    load_audio,
    mel_bin_to_hz,
    mel_filterbank,
    mel_spectrogram,
    pitch_mask,
    stft,
)

librosa = pytest.importorskip("librosa")
soundfile = pytest.importorskip("soundfile")

CONFIG = FeatureConfig()
SMALL_CONFIG = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=160, win_length=400, n_mels=40, f_min=50.0,
                             f_max=7600.0)


def reference_magnitude(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """HiFi-GAN framing written with numpy and librosa: reflect pad, STFT without centring, eps-magnitude."""
    pad_left = (config.n_fft - config.hop_length) // 2
    padded = np.pad(audio.astype(np.float64), (pad_left, config.n_fft - config.hop_length - pad_left),
                    mode="reflect")
    spectrum = librosa.stft(padded, n_fft=config.n_fft, hop_length=config.hop_length, win_length=config.win_length,
                            window="hann", center=False)
    return np.sqrt(np.abs(spectrum) ** 2 + 1e-9)


# --- FeatureConfig -----------------------------------------------------------------------------------------------

def test_config_round_trip(tmp_path):
    config = FeatureConfig(sample_rate=16000, hop_length=200, win_length=800, f_max=7000.0, f0_min=70.0)
    config.save_config(tmp_path)
    assert (tmp_path / "feature_config.json").is_file()
    loaded = FeatureConfig.from_config(FeatureConfig.load_config(tmp_path))
    assert isinstance(loaded, FeatureConfig)
    for name in ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "f_min", "f_max", "log_clamp",
                 "f0_min", "f0_max", "min_duration", "silence_db"):
        assert loaded.config[name] == config.config[name], name
    assert loaded.hop_length == 200 and loaded.f0_min == 70.0


def test_config_attributes_read_without_warning_and_are_frozen():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert CONFIG.sample_rate == 22050 and CONFIG.n_mels == 80
    with pytest.raises(AttributeError, match="frozen"):
        CONFIG.n_mels = 100
    assert CONFIG.config.n_mels == 80
    with pytest.raises(AttributeError, match="no attribute 'not_a_field'"):
        CONFIG.not_a_field


def test_config_num_frames():
    assert CONFIG.num_frames(22050) == 86
    assert CONFIG.num_frames(255) == 0
    assert CONFIG.num_frames(512) == 2
    with pytest.raises(ValueError, match="num_samples"):
        CONFIG.num_frames(-1)


@pytest.mark.parametrize("kwargs, field", [
    ({"f_max": 12000.0}, "f_max"),
    ({"f_min": 9000.0}, "f_min"),
    ({"hop_length": 2048}, "hop_length"),
    ({"win_length": 2048}, "win_length"),
    ({"n_mels": 0}, "n_mels"),
    ({"n_fft": 1024.5}, "n_fft"),
    ({"sample_rate": -1}, "sample_rate"),
    ({"log_clamp": 0.0}, "log_clamp"),
    ({"f0_min": 900.0}, "f0_min"),
    ({"silence_db": 3.0}, "silence_db"),
    ({"min_duration": -1.0}, "min_duration"),
])
def test_config_rejects_bad_values_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        FeatureConfig(**kwargs)


# --- mel scale and filterbank ------------------------------------------------------------------------------------

@pytest.mark.parametrize("config", [CONFIG, SMALL_CONFIG], ids=["default", "16k"])
def test_mel_filterbank_matches_librosa(config):
    ours = mel_filterbank(config)
    assert ours.shape == (config.n_mels, config.n_fft // 2 + 1) and ours.dtype == torch.float32
    reference = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
                                    fmin=config.f_min, fmax=config.f_max)
    difference = np.abs(ours.numpy() - reference)
    assert difference.max() < 1e-4
    assert difference.max() / reference.max() < 1e-4


@pytest.mark.parametrize("config", [CONFIG, SMALL_CONFIG], ids=["default", "16k"])
def test_mel_bin_centres_match_librosa_mel_frequencies(config):
    points = librosa.mel_frequencies(n_mels=config.n_mels + 2, fmin=config.f_min, fmax=config.f_max)
    np.testing.assert_allclose(mel_bin_to_hz(np.arange(-1, config.n_mels + 1), config), points, rtol=1e-9)
    np.testing.assert_allclose(hz_to_mel_bin(points, config), np.arange(-1, config.n_mels + 1), atol=1e-9)


@pytest.mark.parametrize("config", [CONFIG, SMALL_CONFIG], ids=["default", "16k"])
def test_hz_to_mel_bin_lands_on_filterbank_peaks(config):
    fft_hz = np.linspace(0, config.sample_rate / 2, config.n_fft // 2 + 1)
    peak_hz = fft_hz[mel_filterbank(config).numpy().argmax(axis=1)]  # (n_mels,)
    # The peak FFT bin is the one nearest the filter centre: within half an FFT bin, so within half a mel bin here.
    np.testing.assert_allclose(hz_to_mel_bin(peak_hz, config), np.arange(config.n_mels), atol=0.5)


def test_mel_bin_to_hz_inverts_hz_to_mel_bin():
    f_hz = np.array([0.0, 55.0, 220.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0])
    np.testing.assert_allclose(mel_bin_to_hz(hz_to_mel_bin(f_hz)), f_hz, atol=1e-9)
    assert hz_to_mel_bin(0.0) == pytest.approx(-1.0)
    assert hz_to_mel_bin(8000.0) == pytest.approx(80.0)
    # Slaney: 3 mels per 200 Hz below 1 kHz (15 mel), 27 mels per factor 6.4 above; 81 bin steps span 0..8 kHz.
    mel_8k = 15 + 27 * np.log(8) / np.log(6.4)
    assert hz_to_mel_bin(220.0) == pytest.approx(220.0 * 3 / 200 / (mel_8k / 81) - 1, abs=1e-9)


# --- mel spectrogram and energy ----------------------------------------------------------------------------------

@pytest.mark.parametrize("config", [CONFIG, SMALL_CONFIG], ids=["default", "16k"])
def test_mel_spectrogram_matches_numpy_reference(config):
    audio = harmonic_tone(300.0, seconds=0.25, sr=config.sample_rate)
    mel = mel_spectrogram(audio, config)
    expected_frames = len(audio) // config.hop_length
    assert mel.shape == (config.n_mels, expected_frames) and mel.dtype == torch.float32
    reference_mel = mel_filterbank(config).double().numpy() @ reference_magnitude(audio, config)
    reference = np.log(np.maximum(reference_mel, config.log_clamp))
    np.testing.assert_allclose(mel.numpy(), reference, atol=1e-3)


def test_mel_frames_are_centred_at_half_hops():
    hop = CONFIG.hop_length
    for frame in (3, 10):
        click = np.zeros(20 * hop, dtype=np.float32)
        click[int((frame + 0.5) * hop)] = 1.0
        magnitude = MelSpectrogram(CONFIG).magnitude(torch.from_numpy(click))
        assert int(magnitude.sum(dim=0).argmax()) == frame


@pytest.mark.parametrize("num_samples", [385, 5000, 5120, 5375])
def test_mel_has_num_samples_over_hop_frames(num_samples):
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, num_samples).astype(np.float32)
    assert mel_spectrogram(audio).shape == (80, num_samples // 256)


def test_silence_is_clamped_to_log_floor():
    mel = mel_spectrogram(np.zeros(2048, dtype=np.float32))
    np.testing.assert_allclose(mel.numpy(), np.log(1e-5), rtol=1e-6)


def test_batched_mel_equals_per_item():
    rng = np.random.default_rng(1)
    batch = torch.from_numpy(rng.uniform(-0.5, 0.5, (3, 4000)).astype(np.float32))
    module = MelSpectrogram(CONFIG)
    batched = module(batch)
    assert batched.shape == (3, 80, 15)
    for item in range(3):
        torch.testing.assert_close(batched[item], module(batch[item]), rtol=1e-5, atol=1e-5)


def test_mel_spectrogram_function_matches_module_and_has_no_saved_buffers():
    audio = harmonic_tone(180.0, seconds=0.2)
    expected = MelSpectrogram(CONFIG)(torch.from_numpy(audio))
    torch.testing.assert_close(mel_spectrogram(audio), expected)
    torch.testing.assert_close(mel_spectrogram(torch.from_numpy(audio).double(), CONFIG), expected)
    module = MelSpectrogram(CONFIG)
    assert module.state_dict() == {}
    assert {name for name, _ in module.named_buffers()} == {"mel_basis", "window"}


def test_stft_has_the_mel_front_ends_framing():
    audio = harmonic_tone(180.0, seconds=0.2)
    frames = stft(audio)  # (n_freq, T), complex
    assert frames.is_complex() and frames.shape == (CONFIG.n_fft // 2 + 1, len(audio) // CONFIG.hop_length)
    torch.testing.assert_close(torch.sqrt(frames.abs() ** 2 + 1e-9), MelSpectrogram(CONFIG).magnitude(
        torch.from_numpy(audio)))
    with pytest.raises(AudioError, match="too short for a mel frame"):
        stft(np.zeros(200, np.float32))
    module = MelSpectrogram(CONFIG)
    torch.testing.assert_close(module.log_mel(frames), module(torch.from_numpy(audio)))
    for wrong in (frames.abs(), frames[:-1]):
        with pytest.raises(AudioError, match=r"log_mel takes complex STFT frames \(513, T\)"):
            module.log_mel(wrong)


def test_mel_rejects_bad_audio():
    module = MelSpectrogram(CONFIG)
    with pytest.raises(AudioError, match=r"shape \(N,\) or \(B, N\), got \(1, 2, 3000\)"):
        module(torch.zeros(1, 2, 3000))
    with pytest.raises(AudioError, match="200 samples is too short for a mel frame: need at least 385"):
        module(torch.zeros(200))
    with pytest.raises(AudioError, match="floating-point waveform.*int16"):
        module(torch.zeros(3000, dtype=torch.int16))


def test_frame_energy_matches_reference_and_scales_with_amplitude():
    audio = harmonic_tone(220.0, seconds=0.25)
    energy = frame_energy(audio)
    assert energy.shape == (len(audio) // 256,) and energy.dtype == np.float32
    reference = np.linalg.norm(reference_magnitude(audio, CONFIG), axis=0)
    np.testing.assert_allclose(energy, reference, rtol=1e-4)
    np.testing.assert_allclose(frame_energy(2 * audio), 2 * energy, rtol=1e-4)


def test_frame_energy_shows_where_it_is_louder():
    audio = harmonic_tone(220.0, seconds=0.5, amplitude=0.1)
    audio[len(audio) // 2:] *= 4
    energy = frame_energy(torch.from_numpy(audio))
    half = len(energy) // 2
    quiet, loud = np.median(energy[: half - 2]), np.median(energy[half + 2:])
    assert loud == pytest.approx(4 * quiet, rel=1e-3)


def test_frame_energy_rejects_multichannel():
    with pytest.raises(AudioError, match=r"mono waveform of shape \(N,\), got \(2, 4000\)"):
        frame_energy(np.zeros((2, 4000), dtype=np.float32))


# --- load_audio ------------------------------------------------------------------------------------------------

def test_load_wav_mixes_channels_at_same_rate(tmp_path):
    left = harmonic_tone(220.0, seconds=0.5)
    right = harmonic_tone(330.0, seconds=0.5, amplitude=0.2)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (len(left),)
    np.testing.assert_allclose(audio, (left + right) / 2, atol=1e-7)
    np.testing.assert_allclose(load_audio(str(path), sr=SAMPLE_RATE), audio)


def test_load_resamples_to_target_rate(tmp_path):
    sr = 16000
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(sr) / sr)).astype(np.float32)
    path = tmp_path / "tone16k.flac"
    soundfile.write(path, tone, sr)
    audio = load_audio(path, target_sr=22050)
    assert audio.shape == (22050,)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    assert np.fft.rfftfreq(len(audio), 1 / 22050)[spectrum.argmax()] == pytest.approx(440.0, abs=1.0)
    assert np.max(np.abs(audio)) == pytest.approx(0.5, abs=0.01)


def test_load_falls_back_to_librosa(tmp_path, monkeypatch):
    path = tmp_path / "tone.wav"
    tone = harmonic_tone(220.0, seconds=0.5)
    soundfile.write(path, tone, SAMPLE_RATE, subtype="FLOAT")

    def unreadable(*args, **kwargs):
        raise soundfile.SoundFileRuntimeError("format not recognised")

    monkeypatch.setattr(soundfile, "read", unreadable)
    np.testing.assert_allclose(load_audio(path), tone, atol=1e-7)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_load_array_picks_the_smaller_axis_as_channels(layout):
    left = harmonic_tone(220.0, seconds=0.5)
    right = np.zeros_like(left)
    stereo = np.stack([left, right]) if layout == "channels_first" else np.stack([left, right], axis=1)
    audio = load_audio(stereo, SAMPLE_RATE)
    np.testing.assert_allclose(audio, left / 2, atol=1e-7)


def test_load_torch_and_integer_pcm():
    tone = harmonic_tone(220.0, seconds=0.5)
    np.testing.assert_allclose(load_audio(torch.from_numpy(tone), SAMPLE_RATE), tone, atol=1e-7)
    as_is = dict(sr=8000, target_sr=8000, min_duration=0.0)
    pcm16 = np.array([16384, -32768, 0, 8192] * 100, dtype=np.int16)
    np.testing.assert_allclose(load_audio(pcm16, **as_is)[:4], [0.5, -1.0, 0.0, 0.25])
    pcm8 = np.array([128, 255, 0, 192] * 100, dtype=np.uint8)
    np.testing.assert_allclose(load_audio(pcm8, **as_is)[:4], [0.0, 127 / 128, -1.0, 0.5])


def test_load_reports_missing_and_unreadable_files(tmp_path):
    missing = tmp_path / "nowhere.wav"
    with pytest.raises(AudioError, match="audio file not found: " + re.escape(str(missing))):
        load_audio(missing)
    corrupt = tmp_path / "noise.wav"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioError, match="could not read audio file " + re.escape(str(corrupt))):
        load_audio(corrupt)


def test_load_rejects_sample_rate_problems(tmp_path):
    tone = harmonic_tone(220.0, seconds=0.5)
    with pytest.raises(AudioError, match="sr is required when audio is given as an array"):
        load_audio(tone)
    for bad in (0, -22050, float("nan"), "22050", True):
        with pytest.raises(AudioError, match="sr must be a positive number of Hz"):
            load_audio(tone, bad)
    with pytest.raises(AudioError, match="target_sr must be a positive number of Hz, got 0"):
        load_audio(tone, SAMPLE_RATE, target_sr=0)
    path = tmp_path / "tone.wav"
    soundfile.write(path, tone, SAMPLE_RATE)
    with pytest.raises(AudioError, match="sr=16000 was given but .* is sampled at 22050 Hz"):
        load_audio(path, sr=16000)


def test_load_rejects_bad_content(tmp_path):
    with pytest.raises(AudioError, match=r"audio array is empty \(0 samples\)"):
        load_audio(np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    short = harmonic_tone(220.0, seconds=0.1)
    with pytest.raises(AudioError, match=r"too short: 0\.100 s, the minimum is 0\.3 s"):
        load_audio(short, SAMPLE_RATE)
    assert load_audio(short, SAMPLE_RATE, min_duration=0.05).shape == short.shape
    quiet = harmonic_tone(220.0, seconds=0.5, amplitude=1e-3)
    with pytest.raises(AudioError, match=r"silent: peak level -60\.0 dBFS is below silence_db=-50\.0 dBFS"):
        load_audio(quiet, SAMPLE_RATE)
    with pytest.raises(AudioError, match="silent: peak level -inf dBFS"):
        load_audio(np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    broken = harmonic_tone(220.0, seconds=0.5)
    broken[[10, 20]] = [np.nan, np.inf]
    with pytest.raises(AudioError, match="contains 2 NaN or infinite samples"):
        load_audio(broken, SAMPLE_RATE)
    with pytest.raises(AudioError, match=r"shape \(N,\), \(channels, N\) or \(N, channels\), got \(2, 2, 9000\)"):
        load_audio(np.zeros((2, 2, 9000)), SAMPLE_RATE)
    with pytest.raises(AudioError, match="floats or integer PCM, got dtype complex"):
        load_audio(np.ones(9000, dtype=np.complex64), SAMPLE_RATE)
    path = tmp_path / "short.wav"
    soundfile.write(path, short, SAMPLE_RATE)
    with pytest.raises(AudioError, match=re.escape(str(path)) + " is too short"):
        load_audio(path)


# --- f0 --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["harvest", "dio"])
@pytest.mark.parametrize("f0_hz", [220.0, 150.0])
def test_extract_f0_of_a_harmonic_tone(method, f0_hz):
    audio = harmonic_tone(f0_hz, seconds=0.5)
    f0 = extract_f0(audio, method=method)
    assert f0.dtype == np.float32
    assert f0.shape == mel_spectrogram(audio).shape[-1:]
    voiced = f0[f0 > 0]
    assert voiced.size > 0.8 * f0.size
    assert np.median(voiced) == pytest.approx(f0_hz, rel=0.01)


def test_extract_f0_length_matches_mel_for_odd_lengths():
    audio = harmonic_tone(200.0, seconds=0.3)[:6000]  # 6000 = 23 * 256 + 112
    assert extract_f0(audio, method="dio").shape == (23,) == mel_spectrogram(audio).shape[-1:]
    assert extract_f0(audio, SMALL_CONFIG, method="dio").shape == (6000 // 160,)


def test_extract_f0_leaves_silence_unvoiced():
    tone = harmonic_tone(220.0, seconds=0.3)
    gap = np.zeros(int(0.3 * SAMPLE_RATE), dtype=np.float32)
    f0 = extract_f0(np.concatenate([tone, gap, tone]), method="harvest")
    tone_frames, gap_frames = len(tone) // 256, len(gap) // 256
    margin = 4  # the tracker's analysis window reaches a few frames across each edge
    assert np.all(f0[tone_frames + margin: tone_frames + gap_frames - margin] == 0)
    assert np.all(f0[margin: tone_frames - margin] > 0)
    assert np.all(f0[tone_frames + gap_frames + margin: -margin] > 0)


def test_extract_f0_rejects_bad_input():
    audio = harmonic_tone(220.0, seconds=0.3)
    with pytest.raises(AudioError, match="unknown f0 method 'crepe': expected one of harvest, dio"):
        extract_f0(audio, method="crepe")
    with pytest.raises(ValueError, match="unknown f0 method"):
        extract_f0(audio, method="yin")
    with pytest.raises(AudioError, match=r"mono waveform of shape \(N,\), got \(1, 6615\)"):
        extract_f0(audio[None])
    with pytest.raises(AudioError, match="100 samples is too short for one frame of 256 samples"):
        extract_f0(audio[:100])
    broken = audio.copy()
    broken[5] = np.nan
    with pytest.raises(AudioError, match="NaN or infinite"):
        extract_f0(broken)
    with pytest.raises(TypeError, match="config must be a FeatureConfig or None, got dict"):
        extract_f0(audio, {"sample_rate": 22050})


# --- pitch mask ------------------------------------------------------------------------------------------------

def tone_bins(f0_hz: float, n_harmonics: int = 3) -> list[int]:
    return [int(round(float(hz_to_mel_bin(k * f0_hz)))) for k in range(1, n_harmonics + 1)]


def test_band_mask_of_a_220_hz_tone():
    f0 = extract_f0(harmonic_tone(220.0, seconds=0.5), method="dio")
    mask = pitch_mask(f0, kind="band", num_frames=57)
    assert mask.shape == (80, 57) and mask.dtype == torch.float32
    assert tone_bins(220.0) == [5, 11, 17]
    for bin_index in tone_bins(220.0):
        assert torch.all(mask[bin_index] == 1)
    assert torch.all(mask[60:] == 0)
    assert torch.all(mask == mask[:, :1])  # identical in every frame
    assert set(torch.unique(mask).tolist()) == {0.0, 1.0}


def test_band_mask_spans_the_voiced_range_and_width():
    # Bins of 200 Hz: 4.37, of 400 Hz: 9.74; 300 Hz (7.06) is a lone outlier outside the 5th-95th percentile.
    f0 = np.concatenate([np.zeros(20), np.full(100, 200.0), [300.0]])
    mask = pitch_mask(f0, kind="band", num_frames=4, n_harmonics=2, width=1.0)[:, 0]
    assert torch.nonzero(mask).flatten().tolist() == [3, 4, 5, 9, 10, 11]
    narrow = pitch_mask(f0, kind="band", num_frames=4, n_harmonics=1, width=0.0)[:, 0]
    assert torch.nonzero(narrow).flatten().tolist() == [4]
    # A glide from 200 to 400 Hz covers every bin between them.
    glide = pitch_mask(np.linspace(200.0, 400.0, 101), kind="band", num_frames=1, n_harmonics=1, width=0.0)[:, 0]
    lo, hi = hz_to_mel_bin(np.percentile(np.linspace(200.0, 400.0, 101), [5, 95]))
    assert torch.nonzero(glide).flatten().tolist() == list(range(int(round(lo)), int(round(hi)) + 1))


def test_harmonic_mask_peaks_at_harmonic_bins():
    f0 = extract_f0(harmonic_tone(220.0, seconds=0.5), method="dio")
    mask = pitch_mask(f0, kind="harmonic")
    assert mask.shape == (80, len(f0))
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    for t in np.flatnonzero(f0 > 0):
        column = mask[:, t].numpy()
        peaks = [b for b in range(1, 79) if column[b] > 0 and column[b] >= column[b - 1] and column[b] > column[b + 1]]
        assert peaks == tone_bins(float(f0[t])), t
        assert np.all(column[60:] == 0)
    assert torch.all(mask[:, torch.from_numpy(f0 == 0)] == 0)


def test_harmonic_mask_triangle_values():
    centre = float(hz_to_mel_bin(300.0))  # 7.06
    mask = pitch_mask(np.array([300.0]), kind="harmonic", n_harmonics=1, width=2.0)[:, 0].numpy()
    expected = np.clip(1 - np.abs(np.arange(80) - centre) / 2.0, 0, 1)
    np.testing.assert_allclose(mask, expected, atol=1e-6)


def test_harmonic_mask_resamples_to_num_frames_keeping_voicing():
    f0 = np.array([0.0, 220.0, 220.0, 0.0])
    mask = pitch_mask(f0, kind="harmonic", num_frames=8)
    assert mask.shape == (80, 8)
    voiced_frames = (mask.sum(dim=0) > 0).tolist()
    assert voiced_frames == [False, False, True, True, True, True, False, False]
    torch.testing.assert_close(mask[:, 2], pitch_mask(np.array([220.0]), kind="harmonic")[:, 0])


def test_smoothing_spreads_along_frequency():
    f0 = np.full(10, 300.0)
    sharp = pitch_mask(f0, kind="band", num_frames=3, n_harmonics=1, width=0.0)
    assert torch.nonzero(sharp[:, 0]).flatten().tolist() == [7]
    sigma = 1.0
    smooth = pitch_mask(f0, kind="band", num_frames=3, n_harmonics=1, width=0.0, smooth=sigma)[:, 0].numpy()
    # Far from the edges every kernel row has the same sum, so the profile is the Gaussian itself.
    profile = smooth[7 + np.arange(-3, 4)] / smooth[7]
    np.testing.assert_allclose(profile, np.exp(-0.5 * (np.arange(-3, 4) / sigma) ** 2), rtol=1e-5)
    assert smooth[7] == pytest.approx(1 / (sigma * np.sqrt(2 * np.pi)), rel=1e-3)
    full = pitch_mask(np.linspace(60.0, 800.0, 50), kind="band", num_frames=2, n_harmonics=3, smooth=3.0)
    assert float(full.max()) <= 1.0 and float(full.min()) >= 0.0


def test_pitch_mask_rejects_bad_input():
    f0 = np.full(10, 220.0)
    with pytest.raises(AudioError, match="pitch_mask must be one of 'band', 'harmonic', got 'formant'"):
        pitch_mask(f0, kind="formant", num_frames=10)
    with pytest.raises(AudioError, match="no voiced frames in the pitch reference"):
        pitch_mask(np.zeros(10), kind="band", num_frames=10)
    with pytest.raises(AudioError, match="no voiced frames in the pitch reference"):
        pitch_mask(torch.zeros(10), kind="harmonic")
    with pytest.raises(AudioError, match="num_frames is required for kind='band'"):
        pitch_mask(f0, kind="band")
    with pytest.raises(AudioError, match="num_frames must be a positive integer, got 0"):
        pitch_mask(f0, kind="harmonic", num_frames=0)
    with pytest.raises(AudioError, match=r"finite, non-negative contour of shape \(T,\) in Hz, got shape \(2, 5\)"):
        pitch_mask(f0.reshape(2, 5), num_frames=5)
    with pytest.raises(AudioError, match="finite, non-negative contour"):
        pitch_mask(np.array([220.0, -1.0]), num_frames=5)
    with pytest.raises(AudioError, match="n_harmonics must be a positive integer, got 0"):
        pitch_mask(f0, num_frames=5, n_harmonics=0)
    with pytest.raises(AudioError, match="width must be > 0 bins for kind='harmonic'"):
        pitch_mask(f0, kind="harmonic", width=0.0)
    with pytest.raises(AudioError, match="width must be >= 0 bins for kind='band', got -1"):
        pitch_mask(f0, kind="band", num_frames=5, width=-1.0)
    with pytest.raises(AudioError, match="smooth must be a Gaussian sigma >= 0"):
        pitch_mask(f0, num_frames=5, smooth=-1.0)
