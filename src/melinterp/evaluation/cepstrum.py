"""Mel-cepstra from the WORLD envelope, DTW alignment, and mel-cepstral distortion (MCD).

Mel-cepstra here follow SPTK's definition without SPTK: the log *amplitude* envelope is expanded in cosines of the
all-pass-warped frequency, ``ln|H(w)| = sum_m c_m cos(m * beta(w))`` with
``beta(w) = w + 2 atan(alpha sin w / (1 - alpha cos w))``. We sample the envelope on an even grid of beta (by
un-warping each grid point with -alpha) and take a real cepstrum of it, which is what SPTK's ``freqt`` computes up
to truncation. Frames sit on the mel frame grid of `melinterp.audio` (T = N // hop_length), so f0 and energy from
that module line up frame for frame with these cepstra.

pyworld is imported inside the functions: training machines import the package without it.
"""

from __future__ import annotations

import warnings

import numpy as np

from melinterp.audio import FeatureConfig, _resolve_config, _waveform_1d, _world_to_mel_frames

# All-pass constants that approximate the mel scale, by sample rate (SPTK / Tokuda et al.).
MEL_ALPHAS = {8000: 0.31, 16000: 0.42, 22050: 0.455, 24000: 0.466, 44100: 0.544, 48000: 0.554}
MCD_SCALE = 10.0 / np.log(10.0) * np.sqrt(2.0)  # dB per unit of cepstral Euclidean distance
_SILENCE_PEAK = 1e-4  # a waveform whose peak is below this (-80 dBFS) has nothing to measure


def default_alpha(sample_rate: int) -> float:
    """The mel all-pass constant for ``sample_rate`` Hz (0.455 at 22050 Hz)."""
    if sample_rate not in MEL_ALPHAS:
        raise ValueError(f"no default all-pass constant for {sample_rate} Hz; pass alpha explicitly "
                         f"(known rates: {', '.join(str(rate) for rate in MEL_ALPHAS)})")
    return MEL_ALPHAS[sample_rate]


def check_speech(audio, config: FeatureConfig, name: str = "audio") -> np.ndarray:
    """The waveform as float64 (N,), or a ValueError if it is empty, shorter than one frame or silent."""
    waveform = _waveform_1d(audio)
    if waveform.size < config.hop_length:
        raise ValueError(f"{name} has {waveform.size} samples; expected at least one frame of "
                         f"{config.hop_length} samples")
    peak = float(np.max(np.abs(waveform)))
    if peak < _SILENCE_PEAK:
        raise ValueError(f"{name} is silent (peak {peak:.2g}, expected above {_SILENCE_PEAK:g}): nothing to measure")
    return waveform


def _warp(omega: np.ndarray, alpha: float) -> np.ndarray:
    """Phase response of the first-order all-pass: frequency omega (rad, 0..pi) on the warped axis."""
    return omega + 2.0 * np.arctan(alpha * np.sin(omega) / (1.0 - alpha * np.cos(omega)))


def envelope_to_mel_cepstrum(envelope: np.ndarray, order: int, alpha: float) -> np.ndarray:
    """Power envelope (T, n_bins) on 0..pi -> mel-cepstra (T, order + 1) of the log amplitude."""
    n_bins = envelope.shape[-1]
    omega = np.linspace(0.0, np.pi, n_bins)
    warped_grid = np.linspace(0.0, np.pi, n_bins)
    omega_at_grid = _warp(warped_grid, -alpha)  # the inverse all-pass is the all-pass with -alpha
    log_amplitude = 0.5 * np.log(np.maximum(envelope, 1e-20))  # (T, n_bins)
    on_grid = np.stack([np.interp(omega_at_grid, omega, frame) for frame in log_amplitude])
    cepstrum = np.fft.irfft(on_grid, axis=-1)[:, : order + 1]  # c_0 and halves of c_m, m >= 1
    cepstrum[:, 1:] *= 2.0
    return cepstrum


def world_features(audio, order: int = 24, alpha: float | None = None,
                   config: FeatureConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One WORLD analysis: (f0 (T,) Hz with 0 = unvoiced, mel-cepstra (T, order + 1)) on the mel frame grid.

    f0 is exactly `melinterp.audio.extract_f0(audio, method="harvest")`; the envelope is CheapTrick's on that f0.
    """
    config = _resolve_config(config)
    if not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"mel-cepstrum order must be a positive integer, got {order!r}")
    sr = int(config.sample_rate)
    alpha = default_alpha(sr) if alpha is None else float(alpha)
    if not -1.0 < alpha < 1.0:
        raise ValueError(f"all-pass constant alpha must lie in (-1, 1), got {alpha}")
    waveform = check_speech(audio, config)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import pyworld

    num_frames = config.num_frames(waveform.size)
    frame_period_ms = 1000.0 * config.hop_length / sr
    f0_world, times = pyworld.harvest(waveform, sr, f0_floor=config.f0_min, f0_ceil=config.f0_max,
                                      frame_period=frame_period_ms)
    envelope = pyworld.cheaptrick(waveform, f0_world, times, sr)  # (T_world, fft_size // 2 + 1), power
    mcep_world = envelope_to_mel_cepstrum(envelope, order, alpha)  # (T_world, order + 1)
    # Mel frame i is centred halfway between WORLD frames i and i + 1 (see audio._world_to_mel_frames).
    last = len(mcep_world) - 1
    frames = np.arange(num_frames)
    mcep = 0.5 * (mcep_world[np.minimum(frames, last)] + mcep_world[np.minimum(frames + 1, last)])
    return _world_to_mel_frames(f0_world, num_frames), mcep


def mel_cepstrum(audio, order: int = 24, alpha: float | None = None,
                 config: FeatureConfig | None = None) -> np.ndarray:
    """Mel-cepstra of a waveform (N,) at config.sample_rate: float64 (T, order + 1), T = N // hop_length.

    Column 0 is the log gain (natural log amplitude), columns 1.. the warped cepstral coefficients.
    ``alpha`` defaults to the mel constant of the sample rate (0.455 at 22050 Hz); 0 gives a plain real cepstrum.
    """
    return world_features(audio, order, alpha, config)[1]


def dtw_path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Optimal monotone alignment of two feature sequences a (Ta, D) and b (Tb, D) by Euclidean frame distance.

    Steps are (1, 0), (0, 1) and (1, 1) with unit weight. Returns index arrays (ia, ib) of equal length, starting
    at (0, 0), ending at (Ta - 1, Tb - 1), each non-decreasing. Memory is Ta * Tb floats.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"dtw_path expects (Ta, D) and (Tb, D) with the same D, got {a.shape} and {b.shape}")
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"dtw_path needs at least one frame on each side, got {len(a)} and {len(b)}")
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    cost = np.sqrt(np.maximum(squared, 0.0))  # (Ta, Tb)

    total = np.empty_like(cost)
    total[0] = np.cumsum(cost[0])
    for i in range(1, len(a)):
        # Arriving from the row above (down or diagonal), then any run of rightward steps along row i:
        # total[i, j] = min_k (from_above[k] + cost[i, k..j]) = run[j] + min_k (from_above[k] - run[k - 1]).
        from_above = total[i - 1].copy()
        from_above[1:] = np.minimum(from_above[1:], total[i - 1, :-1])
        run = np.cumsum(cost[i])
        run_before = np.concatenate(([0.0], run[:-1]))
        total[i] = run + np.minimum.accumulate(from_above - run_before)

    i, j = len(a) - 1, len(b) - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))  # diagonal first on ties
            i, j = min(steps, key=lambda step: total[step])
        path.append((i, j))
    ia, ib = np.asarray(path[::-1]).T
    return ia, ib


def align(audio, reference, order: int = 24, config: FeatureConfig | None = None):
    """WORLD features of both waveforms and their DTW path on mel-cepstra without c0 (loudness-blind).

    Returns ``(f0_a, mcep_a, f0_b, mcep_b, ia, ib)``; frame ia[k] of ``audio`` aligns with ib[k] of ``reference``.
    """
    f0_a, mcep_a = world_features(audio, order, config=config)
    f0_b, mcep_b = world_features(reference, order, config=config)
    ia, ib = dtw_path(mcep_a[:, 1:], mcep_b[:, 1:])
    return f0_a, mcep_a, f0_b, mcep_b, ia, ib


def mcd(audio_a, audio_b, order: int = 24, config: FeatureConfig | None = None, *, alignment=None) -> float:
    """Mel-cepstral distortion in dB between two waveforms, after DTW on their mel-cepstra.

    ``(10 / ln 10) * sqrt(2 * sum_{d>=1} (c_a,d - c_b,d)^2)`` averaged over the aligned frame pairs; c0 (loudness)
    is excluded. 0 for a signal against itself. ``alignment``: the result of `align` for the same two waveforms,
    to share one WORLD analysis and DTW with `f0_metrics`.
    """
    _, mcep_a, _, mcep_b, ia, ib = alignment if alignment is not None else align(audio_a, audio_b, order, config)
    difference = mcep_a[ia, 1:] - mcep_b[ib, 1:]  # (K, order)
    return float(np.mean(MCD_SCALE * np.sqrt((difference ** 2).sum(axis=1))))
