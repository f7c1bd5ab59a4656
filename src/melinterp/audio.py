"""Audio front end: loading, log-mel features, f0, energy and pitch masks, all on one frame grid.

Conventions shared by every function here, so that each feature lines up with every other:

- Framing follows HiFi-GAN / Grad-TTS. The waveform is reflect-padded by (n_fft - hop_length) / 2 samples on both
  sides and cut with ``torch.stft(center=False)`` and a periodic Hann window of ``win_length`` samples. A clip of
  N samples gives T = N // hop_length frames, and frame i is centred at sample (i + 0.5) * hop_length.
  f0 and energy come back on exactly these T frames.
- Magnitudes are ``sqrt(re^2 + im^2 + 1e-9)``; the log-mel is ``ln(max(mel, log_clamp))``: natural log.
- The mel scale is Slaney's (linear, 3 mels per 200 Hz, below 1 kHz; logarithmic above) and every triangular
  filter is Slaney-normalised to unit area in Hz, as in librosa's default. Mel bin k peaks at the (k + 1)-th of
  n_mels + 2 points evenly spaced on that scale from f_min to f_max. `hz_to_mel_bin` places any frequency on the
  same axis, so a pitch mask lands on the bins where the features put the harmonics.
- f0 is in Hz, 0 in unvoiced frames. Levels are in dBFS (0 dB = full scale, 1.0).

librosa, pyworld and soundfile are imported inside the functions that use them: training machines import this
module for `MelSpectrogram` alone and do not have them.
"""

from __future__ import annotations

import functools
import numbers
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config

F0_METHODS = ("harvest", "dio")
PITCH_MASK_KINDS = ("band", "harmonic")

# Slaney's mel scale: linear below 1 kHz, logarithmic above, continuous at 1 kHz = 15 mel.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_LOG_HZ = 1000.0
_SLANEY_LOG_MEL = _SLANEY_LOG_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = np.log(6.4) / 27.0  # natural-log frequency ratio per mel above 1 kHz


MIN_SAMPLE_RATE = 8000  # Hz: below telephone bandwidth a recording no longer carries a usable voice


class AudioError(ValueError):
    """Audio, f0 or mask input that the front end cannot use; the message says what was expected."""


def check_pitch_mask_kind(kind) -> str:
    """``kind`` if it names a pitch mask of `pitch_mask` (`PITCH_MASK_KINDS`), else an AudioError saying which do."""
    if kind not in PITCH_MASK_KINDS:
        raise AudioError(f"pitch_mask must be one of {', '.join(map(repr, PITCH_MASK_KINDS))}, got {kind!r}")
    return kind


class FeatureConfig(ConfigMixin):
    """Settings shared by the mel, f0, energy and pitch-mask front ends.

    Args:
        sample_rate: Hz of every waveform the features see.
        n_fft: FFT size in samples.
        hop_length: samples between frames.
        win_length: Hann window length in samples; hop_length <= win_length <= n_fft.
        n_mels: number of mel bins.
        f_min: lowest frequency of the mel filterbank, Hz.
        f_max: highest frequency of the mel filterbank, Hz (at most sample_rate / 2).
        log_clamp: floor applied to the mel magnitude before the natural log.
        f0_min: lowest f0 the pitch tracker searches, Hz.
        f0_max: highest f0 the pitch tracker searches, Hz.
        min_duration: shortest clip `load_audio` accepts, seconds.
        silence_db: `load_audio` rejects a clip whose peak is below this level, dBFS.

    Values read as ``config.hop_length`` or ``config.config.hop_length``. A config is frozen: to change a value,
    build a new one, ``FeatureConfig(**{**config.config, "n_mels": 100})``.
    """

    config_name = "feature_config.json"

    @register_to_config
    def __init__(self, sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, f_min=0.0,
                 f_max=8000.0, log_clamp=1e-5, f0_min=60.0, f0_max=800.0, min_duration=0.3, silence_db=-50.0):
        for name, value in (("n_fft", n_fft), ("hop_length", hop_length), ("win_length", win_length),
                            ("n_mels", n_mels)):
            if not _is_integer(value) or value <= 0:
                raise ValueError(f"FeatureConfig.{name} must be a positive integer, got {value!r}")
        if not hop_length <= win_length <= n_fft:
            raise ValueError(f"FeatureConfig needs hop_length <= win_length <= n_fft, got hop_length={hop_length}, "
                             f"win_length={win_length}, n_fft={n_fft}")
        checks = (
            ("sample_rate", sample_rate, sample_rate > 0, "a positive number of Hz"),
            ("f_max", f_max, f_max <= sample_rate / 2, f"at most sample_rate / 2 = {sample_rate / 2} Hz"),
            ("f_min", f_min, 0 <= f_min < f_max, f"in [0, f_max={f_max}) Hz"),
            ("log_clamp", log_clamp, log_clamp > 0, "positive"),
            ("f0_max", f0_max, f0_max <= sample_rate / 2, f"at most sample_rate / 2 = {sample_rate / 2} Hz"),
            ("f0_min", f0_min, 0 < f0_min < f0_max, f"in (0, f0_max={f0_max}) Hz"),
            ("min_duration", min_duration, min_duration >= 0, "a duration >= 0 s"),
            ("silence_db", silence_db, silence_db <= 0, "a level <= 0 dBFS"),
        )
        for name, value, ok, expected in checks:
            if not ok:
                raise ValueError(f"FeatureConfig.{name} must be {expected}, got {value!r}")

    def num_frames(self, num_samples: int) -> int:
        """Number of feature frames T for a clip of ``num_samples`` samples (see the module docstring)."""
        if not _is_integer(num_samples) or num_samples < 0:
            raise ValueError(f"num_samples must be a non-negative integer, got {num_samples!r}")
        return int(num_samples) // self.config.hop_length

    def __getattr__(self, name):
        # A feature config is plain data: read registered values as attributes without diffusers' deprecation.
        registered = self.__dict__.get("_internal_dict")
        if registered is not None and name in registered:
            return registered[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name, value):
        if name in self.__dict__.get("_internal_dict", {}):
            raise AttributeError(f"FeatureConfig is frozen; build a new one to change {name}: "
                                 f"FeatureConfig(**{{**config.config, {name!r}: {value!r}}})")
        super().__setattr__(name, value)


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@functools.lru_cache(maxsize=1)
def _default_config() -> FeatureConfig:
    return FeatureConfig()


def _resolve_config(config: FeatureConfig | None) -> FeatureConfig:
    if config is None:
        return _default_config()
    if not isinstance(config, FeatureConfig):
        raise TypeError(f"config must be a FeatureConfig or None, got {type(config).__name__}")
    return config


# ---------------------------------------------------------------------------------------------------------------
# Mel scale and filterbank
# ---------------------------------------------------------------------------------------------------------------

def _hz_to_slaney_mel(f_hz) -> np.ndarray:
    f_hz = np.asarray(f_hz, dtype=np.float64)
    linear = f_hz / _SLANEY_HZ_PER_MEL
    logarithmic = _SLANEY_LOG_MEL + np.log(np.maximum(f_hz, _SLANEY_LOG_HZ) / _SLANEY_LOG_HZ) / _SLANEY_LOG_STEP
    return np.where(f_hz >= _SLANEY_LOG_HZ, logarithmic, linear)


def _slaney_mel_to_hz(mel) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _SLANEY_HZ_PER_MEL
    logarithmic = _SLANEY_LOG_HZ * np.exp(_SLANEY_LOG_STEP * (np.maximum(mel, _SLANEY_LOG_MEL) - _SLANEY_LOG_MEL))
    return np.where(mel >= _SLANEY_LOG_MEL, logarithmic, linear)


def _mel_axis(config: FeatureConfig) -> tuple[float, float]:
    """Slaney mel of the left edge of bin 0 (= f_min) and the spacing between neighbouring bin centres."""
    mel_min, mel_max = _hz_to_slaney_mel([config.f_min, config.f_max])
    return float(mel_min), float(mel_max - mel_min) / (config.n_mels + 1)


def hz_to_mel_bin(f_hz, config: FeatureConfig | None = None) -> np.ndarray:
    """Fractional mel-bin index of frequencies ``f_hz`` (Hz), consistent with `mel_filterbank`.

    Linear on the Slaney mel axis: the centre frequency of bin k maps to exactly k, f_min to -1, f_max to n_mels.
    """
    mel_min, mel_step = _mel_axis(_resolve_config(config))
    return (_hz_to_slaney_mel(f_hz) - mel_min) / mel_step - 1.0


def mel_bin_to_hz(mel_bin, config: FeatureConfig | None = None) -> np.ndarray:
    """Frequency in Hz of fractional mel-bin indices; the inverse of `hz_to_mel_bin`."""
    mel_min, mel_step = _mel_axis(_resolve_config(config))
    return _slaney_mel_to_hz(mel_min + (np.asarray(mel_bin, dtype=np.float64) + 1.0) * mel_step)


def mel_filterbank(config: FeatureConfig | None = None) -> torch.Tensor:
    """Slaney-scale, Slaney-normalised triangular filters, float32 ``(n_mels, n_fft // 2 + 1)``.

    Equal to ``librosa.filters.mel(sr, n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max)``, computed without librosa.
    """
    config = _resolve_config(config)
    fft_hz = np.linspace(0.0, config.sample_rate / 2, config.n_fft // 2 + 1)  # (n_freq,)
    # Filter k rises from point k to its peak at point k + 1 and falls to point k + 2.
    points_hz = mel_bin_to_hz(np.arange(-1, config.n_mels + 1), config)  # (n_mels + 2,)
    left, centre, right = points_hz[:-2, None], points_hz[1:-1, None], points_hz[2:, None]  # (n_mels, 1) each
    rising = (fft_hz - left) / (centre - left)
    falling = (right - fft_hz) / (right - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))  # (n_mels, n_freq)
    triangles *= 2.0 / (right - left)  # unit area in Hz
    return torch.from_numpy(triangles).float()


# ---------------------------------------------------------------------------------------------------------------
# Mel spectrogram and energy
# ---------------------------------------------------------------------------------------------------------------

class MelSpectrogram(torch.nn.Module):
    """Natural-log mel spectrogram with HiFi-GAN / Grad-TTS framing (see the module docstring).

    The filterbank and window are non-persistent buffers: they follow ``.to(device)`` but stay out of state dicts.
    """

    def __init__(self, config: FeatureConfig | None = None):
        super().__init__()
        self.config = _resolve_config(config)
        self.register_buffer("mel_basis", mel_filterbank(self.config), persistent=False)  # (n_mels, n_freq)
        self.register_buffer("window", torch.hann_window(self.config.win_length), persistent=False)  # (win,)

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        """Complex STFT of ``audio`` (B, N) or (N,) in [-1, 1] -> (B, n_fft // 2 + 1, T) or (n_fft // 2 + 1, T), with
        the front end's framing: frame i is centred at sample (i + 0.5) * hop_length, T = N // hop_length."""
        config = self.config
        if audio.dim() not in (1, 2):
            raise AudioError(f"expected audio of shape (N,) or (B, N), got {tuple(audio.shape)}")
        if not audio.is_floating_point():
            raise AudioError(f"expected a floating-point waveform in [-1, 1], got dtype {audio.dtype}; "
                             "load integer PCM with load_audio")
        pad_left = (config.n_fft - config.hop_length) // 2
        pad_right = config.n_fft - config.hop_length - pad_left
        min_samples = max(config.hop_length, pad_right + 1)  # one frame, and enough signal to reflect
        if audio.shape[-1] < min_samples:
            raise AudioError(f"audio of {audio.shape[-1]} samples is too short for a mel frame: need at least "
                             f"{min_samples} samples ({1000 * min_samples / config.sample_rate:.1f} ms)")
        batch = audio.reshape(-1, 1, audio.shape[-1]).to(self.window.dtype)  # (B, 1, N)
        padded = F.pad(batch, (pad_left, pad_right), mode="reflect").squeeze(1)  # (B, N + n_fft - hop)
        spectrum = torch.stft(padded, config.n_fft, hop_length=config.hop_length, win_length=config.win_length,
                              window=self.window, center=False, return_complex=True)  # (B, n_freq, T)
        return spectrum if audio.dim() == 2 else spectrum[0]

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """STFT magnitude of ``audio`` (B, N) or (N,) in [-1, 1] -> (B, n_fft // 2 + 1, T) or (n_fft // 2 + 1, T)."""
        return _stft_magnitude(self.stft(audio))

    def log_mel(self, spectrum: torch.Tensor) -> torch.Tensor:
        """Log-mel of complex STFT frames from `stft` (B, n_fft // 2 + 1, T) or (n_fft // 2 + 1, T) -> (B, n_mels, T) or
        (n_mels, T): what `forward` gives of the audio, for a caller that also needs the frames themselves.

        Raises:
            AudioError: the frames are not complex, or have another number of bins than this front end's STFT.
        """
        n_freq = self.config.n_fft // 2 + 1
        if not spectrum.is_complex() or spectrum.dim() not in (2, 3) or spectrum.shape[-2] != n_freq:
            raise AudioError(f"log_mel takes complex STFT frames ({n_freq}, T) or (B, {n_freq}, T) from stft, got "
                             f"{spectrum.dtype} {tuple(spectrum.shape)}")
        mel = torch.matmul(self.mel_basis, _stft_magnitude(spectrum))
        return torch.log(torch.clamp(mel, min=self.config.log_clamp))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Log-mel of ``audio`` (B, N) or (N,) -> (B, n_mels, T) or (n_mels, T), T = N // hop_length."""
        return self.log_mel(self.stft(audio))


def _stft_magnitude(spectrum: torch.Tensor) -> torch.Tensor:
    """|X| of complex STFT frames, kept off zero (its square root has a finite gradient everywhere)."""
    return torch.sqrt(spectrum.real ** 2 + spectrum.imag ** 2 + 1e-9)


@functools.lru_cache(maxsize=8)
def _cached_mel_module(config_items: tuple) -> MelSpectrogram:
    return MelSpectrogram(FeatureConfig(**dict(config_items)))


def _mel_module(config: FeatureConfig | None) -> MelSpectrogram:
    config = _resolve_config(config)
    return _cached_mel_module(tuple(sorted((k, v) for k, v in config.config.items() if not k.startswith("_"))))


def mel_spectrogram(audio, config: FeatureConfig | None = None) -> torch.Tensor:
    """Log-mel of a waveform (numpy or torch, (N,) or (B, N), at config.sample_rate) -> torch (…, n_mels, T).

    Uses one cached `MelSpectrogram` per config.
    """
    audio = torch.as_tensor(audio)
    return _mel_module(config).to(audio.device)(audio)


def stft(audio, config: FeatureConfig | None = None) -> torch.Tensor:
    """Complex STFT of a waveform (numpy or torch, (N,) or (B, N)) -> torch (…, n_fft // 2 + 1, T), the framing of
    `mel_spectrogram` (`MelSpectrogram.stft`), by the same cached module."""
    audio = torch.as_tensor(audio)
    return _mel_module(config).to(audio.device).stft(audio)


def frame_energy(audio, config: FeatureConfig | None = None) -> np.ndarray:
    """Per-frame energy of a waveform (N,): L2 norm of the STFT magnitude over frequency (FastSpeech 2).

    Returns float32 (T,) on the mel frame grid, T = N // hop_length.
    """
    waveform = torch.from_numpy(_waveform_1d(audio))
    magnitude = _mel_module(config).magnitude(waveform)  # (n_freq, T)
    return torch.linalg.vector_norm(magnitude, dim=0).numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------

def load_audio(path_or_array, sr=None, *, target_sr=22050, min_duration=0.3, silence_db=-50.0) -> np.ndarray:
    """Load a recording as float32 mono samples at ``target_sr`` Hz.

    Args:
        path_or_array: a file path (str or Path; read with soundfile, or librosa for formats soundfile lacks), or
            samples as a numpy array or torch tensor: (N,), (channels, N) or (N, channels), the smaller axis being
            the channels. Integer PCM is scaled to [-1, 1]. Channels are averaged.
        sr: sample rate of an array in Hz; required for arrays. For a file it may be left out; if given it must
            match the file's.
        target_sr: sample rate of the result in Hz; other rates are resampled (soxr_hq).
        min_duration: shortest accepted clip, seconds.
        silence_db: a clip whose peak is below this level (dBFS) is rejected as silent.

    Raises:
        AudioError: missing or unreadable file, missing or bad ``sr``, a rate below `MIN_SAMPLE_RATE` (8000 Hz),
            empty, too short, silent or non-finite audio.
    """
    _check_sample_rate(target_sr, "target_sr")
    if sr is not None:
        _check_sample_rate(sr, "sr")
    if isinstance(path_or_array, (str, os.PathLike)):
        source = str(path_or_array)
        samples, file_sr = _read_audio_file(Path(path_or_array))
        if sr is not None and sr != file_sr:
            raise AudioError(f"sr={sr} was given but {source} is sampled at {file_sr} Hz; leave sr out for files")
        sr = file_sr
    else:
        if sr is None:
            raise AudioError("sr is required when audio is given as an array: pass the sample rate of the samples "
                             "in Hz")
        source = "audio array"
        samples = _to_mono(_as_float_samples(path_or_array))

    if sr < MIN_SAMPLE_RATE:
        raise AudioError(f"{source} is sampled at {sr:g} Hz: audio must be sampled at at least {MIN_SAMPLE_RATE} Hz "
                         f"(telephone quality); lower rates lose the formants a voice is recognised by")
    if samples.size == 0:
        raise AudioError(f"{source} is empty (0 samples)")
    num_bad = int(np.sum(~np.isfinite(samples)))
    if num_bad:
        raise AudioError(f"{source} contains {num_bad} NaN or infinite samples")
    duration = samples.size / sr
    if duration < min_duration:
        raise AudioError(f"{source} is too short: {duration:.3f} s, the minimum is {min_duration} s")
    peak = float(np.max(np.abs(samples)))
    peak_db = 20.0 * np.log10(peak) if peak > 0 else -np.inf
    if peak_db < silence_db:
        raise AudioError(f"{source} is silent: peak level {peak_db:.1f} dBFS is below silence_db={silence_db} dBFS")

    if sr != target_sr:
        import librosa

        samples = librosa.resample(samples, orig_sr=sr, target_sr=target_sr, res_type="soxr_hq")
    return np.ascontiguousarray(samples, dtype=np.float32)


def _check_sample_rate(value, name: str) -> None:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value) or value <= 0:
        raise AudioError(f"{name} must be a positive number of Hz, got {value!r}")


def _read_audio_file(path: Path) -> tuple[np.ndarray, int]:
    """Mono float samples and sample rate (Hz) of an audio file."""
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    import soundfile

    try:
        samples, sr = soundfile.read(path, dtype="float32", always_2d=True)  # (N, channels)
        return samples.mean(axis=1), sr
    except soundfile.SoundFileError as error:
        soundfile_error = error  # not a format libsndfile knows: let librosa try its other decoders
    import librosa

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns that soundfile failed; we report the final failure
            samples, sr = librosa.load(path, sr=None, mono=True)
    except Exception as error:  # the decoders librosa falls back to raise many unrelated exception types
        raise AudioError(f"could not read audio file {path}: soundfile says {soundfile_error}; librosa says "
                         f"{type(error).__name__} {error}".rstrip()) from error
    return samples, sr


def _as_float_samples(array) -> np.ndarray:
    """Samples as float64, integer PCM scaled to [-1, 1]."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        array = (array.double() if array.is_floating_point() else array).numpy()
    array = np.asarray(array)
    if array.dtype.kind == "f":
        return array.astype(np.float64)
    if array.dtype.kind in "iu":
        full_scale = float(2 ** (8 * array.dtype.itemsize - 1))
        offset = full_scale if array.dtype.kind == "u" else 0.0  # unsigned PCM (8-bit WAV) centres on half range
        return (array.astype(np.float64) - offset) / full_scale
    raise AudioError(f"expected audio samples as floats or integer PCM, got dtype {array.dtype}")


def _to_mono(samples: np.ndarray) -> np.ndarray:
    if samples.ndim == 1:
        return samples
    if samples.ndim == 2:
        return samples.mean(axis=int(np.argmin(samples.shape)))  # fewer channels than samples
    raise AudioError(f"expected audio of shape (N,), (channels, N) or (N, channels), got {samples.shape}")


def _waveform_1d(audio) -> np.ndarray:
    """A finite mono waveform as contiguous float64 (what pyworld needs)."""
    samples = _as_float_samples(audio)
    if samples.ndim != 1:
        raise AudioError(f"expected a mono waveform of shape (N,), got {samples.shape}; mix it with load_audio")
    if not np.all(np.isfinite(samples)):
        raise AudioError("waveform contains NaN or infinite samples")
    return np.ascontiguousarray(samples)


# ---------------------------------------------------------------------------------------------------------------
# f0
# ---------------------------------------------------------------------------------------------------------------

def extract_f0(audio, config: FeatureConfig | None = None, method: str = "harvest") -> np.ndarray:
    """f0 of a waveform (N,) at config.sample_rate, float32 Hz (0 = unvoiced), shape (T,) on the mel frame grid.

    ``method``: ``"harvest"`` (pyworld Harvest, robust) or ``"dio"`` (DIO refined by StoneMask, fast).
    """
    config = _resolve_config(config)
    if method not in F0_METHODS:
        raise AudioError(f"unknown f0 method {method!r}: expected one of {', '.join(F0_METHODS)}")
    waveform = _waveform_1d(audio)
    num_frames = config.num_frames(waveform.size)
    if num_frames == 0:
        raise AudioError(f"waveform of {waveform.size} samples is too short for one frame of "
                         f"{config.hop_length} samples")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # raised by pyworld's import
        import pyworld

    sr = int(config.sample_rate)
    frame_period_ms = 1000.0 * config.hop_length / sr  # WORLD frame k sits at sample k * hop_length
    if method == "harvest":
        f0_world, times = pyworld.harvest(waveform, sr, f0_floor=config.f0_min, f0_ceil=config.f0_max,
                                          frame_period=frame_period_ms)
    else:
        f0_world, times = pyworld.dio(waveform, sr, f0_floor=config.f0_min, f0_ceil=config.f0_max,
                                      frame_period=frame_period_ms)
        f0_world = pyworld.stonemask(waveform, f0_world, times, sr)
    return _world_to_mel_frames(f0_world, num_frames)


PITCH_FEATURES = 2  # length of `pitch_features`
PITCH_REFERENCE_HZ = 150.0  # 0 octaves in `pitch_features`


def pitch_features(f0) -> np.ndarray:
    """A voice's pitch as two numbers: the median of its voiced f0 and the spread of its intonation.

    Returns float32 ``[log2(median f0 / 150 Hz), std of log2 f0]`` over the voiced frames, both in octaves: the
    text encoder's pitch condition (a model trained on voices at several pitches takes its pitch from here and
    its timbre from the style reference). ``[0, 0]`` (150 Hz, flat) when nothing is voiced; callers that need a
    real pitch check `voiced` themselves.

    Args:
        f0: (T,) Hz, 0 in unvoiced frames (a numpy array or tensor).
    """
    f0 = np.asarray(f0.detach().cpu() if isinstance(f0, torch.Tensor) else f0, dtype=np.float64).reshape(-1)
    voiced = f0[np.isfinite(f0) & (f0 > 0)]
    if voiced.size == 0:
        return np.zeros(PITCH_FEATURES, np.float32)
    octaves = np.log2(voiced / PITCH_REFERENCE_HZ)
    return np.array([np.median(octaves), octaves.std()], np.float32)


def _world_to_mel_frames(f0_world: np.ndarray, num_frames: int) -> np.ndarray:
    """Resample f0 from WORLD frames (at k * hop) to the T mel frame centres ((i + 0.5) * hop).

    Each mel centre lies halfway between WORLD frames i and i + 1: their mean when both are voiced, else unvoiced.
    WORLD frames beyond the last one repeat it, so the result has exactly ``num_frames`` frames.
    """
    last = len(f0_world) - 1
    frames = np.arange(num_frames)
    before = f0_world[np.minimum(frames, last)]
    after = f0_world[np.minimum(frames + 1, last)]
    voiced = (before > 0) & (after > 0)
    return np.where(voiced, 0.5 * (before + after), 0.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Pitch mask
# ---------------------------------------------------------------------------------------------------------------

def pitch_mask(f0, config: FeatureConfig | None = None, *, kind: str = "band", num_frames: int | None = None,
               n_harmonics: int = 3, width: float = 1.0, smooth: float = 0.0) -> torch.Tensor:
    """Which mel bins carry the pitch: a float32 map (n_mels, T) in [0, 1].

    Args:
        f0: f0 contour in Hz (0 = unvoiced), numpy or torch (T_f0,).
        kind: ``"band"``: the bins spanning the voiced f0 range (5th to 95th percentile) and the same range of each
            harmonic k = 1..n_harmonics (k * f_lo to k * f_hi), widened by ``width`` bins each side, identical in
            every frame; ``f0`` may have any length and ``num_frames`` (T) is required.
            ``"harmonic"``: per frame, triangles of half-width ``width`` bins at k * f0[t], k = 1..n_harmonics;
            unvoiced frames are 0. When ``num_frames`` differs from len(f0), the contour is resampled (nearest).
        n_harmonics: number of harmonics, the fundamental included.
        width: bins; band widening, or triangle half-width (> 0) for ``"harmonic"``.
        smooth: if > 0, Gaussian smoothing along frequency with this sigma in bins.
    """
    config = _resolve_config(config)
    check_pitch_mask_kind(kind)
    f0 = _as_float_samples(f0)
    if f0.ndim != 1 or not np.all(np.isfinite(f0)) or np.any(f0 < 0):
        raise AudioError(f"expected f0 as a finite, non-negative contour of shape (T,) in Hz, got shape {f0.shape}")
    if not np.any(f0 > 0):
        raise AudioError(f"no voiced frames in the pitch reference: f0 is 0 in all {f0.size} frames")
    if not _is_integer(n_harmonics) or n_harmonics < 1:
        raise AudioError(f"n_harmonics must be a positive integer, got {n_harmonics!r}")
    if num_frames is not None and (not _is_integer(num_frames) or num_frames < 1):
        raise AudioError(f"num_frames must be a positive integer, got {num_frames!r}")
    if smooth < 0:
        raise AudioError(f"smooth must be a Gaussian sigma >= 0 in bins, got {smooth!r}")

    if kind == "band":
        if num_frames is None:
            raise AudioError("num_frames is required for kind='band': pass T, the frame count of the mel to mask")
        if width < 0:
            raise AudioError(f"width must be >= 0 bins for kind='band', got {width!r}")
        column = _band_column(f0[f0 > 0], config, n_harmonics, width)  # (n_mels,)
        mask = np.repeat(column[:, None], num_frames, axis=1)  # (n_mels, T)
    else:
        if width <= 0:
            raise AudioError(f"width must be > 0 bins for kind='harmonic' (triangle half-width), got {width!r}")
        if num_frames is not None and num_frames != f0.size:
            nearest = np.floor((np.arange(num_frames) + 0.5) * f0.size / num_frames).astype(int)
            f0 = f0[nearest]
        mask = _harmonic_mask(f0, config, n_harmonics, width)  # (n_mels, T)
    if smooth > 0:
        mask = _smooth_over_frequency(mask, smooth)
    return torch.from_numpy(np.clip(mask, 0.0, 1.0).astype(np.float32))


def _band_column(voiced_f0: np.ndarray, config: FeatureConfig, n_harmonics: int, width: float) -> np.ndarray:
    """(n_mels,) 0/1: bins whose cell [k - 0.5, k + 0.5] overlaps a widened harmonic band of the f0 range."""
    f_lo, f_hi = np.percentile(voiced_f0, [5, 95])
    bins = np.arange(config.n_mels)
    column = np.zeros(config.n_mels)
    for k in range(1, n_harmonics + 1):
        low = hz_to_mel_bin(k * f_lo, config) - width
        high = hz_to_mel_bin(k * f_hi, config) + width
        column[(bins + 0.5 >= low) & (bins - 0.5 <= high)] = 1.0
    return column


def _harmonic_mask(f0: np.ndarray, config: FeatureConfig, n_harmonics: int, width: float) -> np.ndarray:
    """(n_mels, T): per frame, the max over harmonics of triangles of half-width ``width`` bins at k * f0."""
    bins = np.arange(config.n_mels)[:, None]  # (n_mels, 1)
    voiced = f0 > 0  # (T,)
    mask = np.zeros((config.n_mels, f0.size))
    for k in range(1, n_harmonics + 1):
        centre = hz_to_mel_bin(k * f0, config)[None, :]  # (1, T)
        triangle = np.clip(1.0 - np.abs(bins - centre) / width, 0.0, 1.0)  # (n_mels, T)
        mask = np.maximum(mask, np.where(voiced, triangle, 0.0))
    return mask


def _smooth_over_frequency(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of (n_mels, T) along mel bins; each output bin is a weighted mean, so stays in [0, 1]."""
    bins = np.arange(mask.shape[0])
    kernel = np.exp(-0.5 * ((bins[:, None] - bins[None, :]) / sigma) ** 2)  # (n_mels, n_mels)
    kernel /= kernel.sum(axis=1, keepdims=True)
    return kernel @ mask
