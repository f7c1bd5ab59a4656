"""Pitch judges: median f0 of an utterance, semitone distances, and f0 tracking against a parallel reference.

f0 comes from pyworld Harvest on the mel frame grid (`melinterp.audio.extract_f0`), 0 Hz = unvoiced. Semitones are
``12 * log2(f / 440 Hz)``: 0 is A4, -12 is A3 (220 Hz).
"""

from __future__ import annotations

import numpy as np

from melinterp.audio import FeatureConfig, _resolve_config
from melinterp.evaluation.cepstrum import align, check_speech

A4_HZ = 440.0


def hz_to_semitones(f_hz) -> np.ndarray:
    """Frequency (Hz, > 0) -> semitones relative to 440 Hz."""
    return 12.0 * np.log2(np.asarray(f_hz, dtype=np.float64) / A4_HZ)


def semitone_distance(f_a_hz: float, f_b_hz: float) -> float:
    """``|12 log2(f_a / f_b)|``: how many semitones apart two frequencies are (both in Hz, positive)."""
    if not (np.isfinite(f_a_hz) and np.isfinite(f_b_hz) and f_a_hz > 0 and f_b_hz > 0):
        raise ValueError(f"semitone_distance needs two positive finite frequencies in Hz, got {f_a_hz} and {f_b_hz}")
    return float(abs(12.0 * np.log2(f_a_hz / f_b_hz)))


def voiced_f0(audio, config: FeatureConfig | None = None, name: str = "audio") -> np.ndarray:
    """The voiced frames' f0 (Hz, (V,)) of a waveform; ValueError when none is voiced."""
    from melinterp.audio import extract_f0

    config = _resolve_config(config)
    f0 = extract_f0(check_speech(audio, config, name), config, method="harvest")
    voiced = f0[f0 > 0]
    if voiced.size == 0:
        raise ValueError(f"no voiced frames in {name} ({len(f0)} frames, harvest found no f0 between "
                         f"{config.f0_min:g} and {config.f0_max:g} Hz): its pitch is undefined")
    return voiced.astype(np.float64)


def f0_median_hz(audio, config: FeatureConfig | None = None) -> float:
    """Median f0 over the voiced frames of a waveform (N,), in Hz."""
    return float(np.median(voiced_f0(audio, config)))


def f0_median_semitones(audio, config: FeatureConfig | None = None) -> float:
    """Median voiced f0 of a waveform (N,) in semitones relative to 440 Hz (the median of the semitone values)."""
    return float(np.median(hz_to_semitones(voiced_f0(audio, config))))


def pearson(x, y) -> float:
    """Pearson correlation of two equal-length sequences; 0.0 when either is constant (correlation undefined)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"pearson expects two 1-D sequences of one length, got {x.shape} and {y.shape}")
    if x.size < 2:
        return 0.0
    x, y = x - x.mean(), y - y.mean()
    norm = np.sqrt((x * x).sum() * (y * y).sum())
    if norm <= 1e-12 * max(1.0, np.abs(x).max() * np.abs(y).max()) or not np.isfinite(norm):
        return 0.0
    return float(np.clip((x * y).sum() / norm, -1.0, 1.0))


def f0_metrics(audio, reference, config: FeatureConfig | None = None, *, alignment=None) -> dict[str, float]:
    """How well ``audio`` follows the pitch of a parallel ``reference`` (same text), after DTW on mel-cepstra.

    Args:
        alignment: the result of `align` for the same two waveforms, to share one WORLD analysis and DTW with
            `mcd`.

    Returns:
        log_f0_rmse: RMS difference of f0 in **semitones** (100 cents each) over aligned frames voiced in both.
        f0_correlation: Pearson correlation of log f0 over the same frames (0.0 if either contour is flat).
        vuv_error: share (0..1) of aligned frame pairs whose voicing disagrees.
        voiced_pairs: how many aligned frame pairs are voiced in both (what the first two rest on).

    Raises:
        ValueError: no aligned pair is voiced in both.
    """
    check_speech(audio, _resolve_config(config), "audio")
    check_speech(reference, _resolve_config(config), "reference")
    f0_a, _, f0_b, _, ia, ib = alignment if alignment is not None else align(audio, reference, config=config)
    pitch_a, pitch_b = f0_a[ia], f0_b[ib]  # (K,) Hz along the path
    voiced_a, voiced_b = pitch_a > 0, pitch_b > 0
    both = voiced_a & voiced_b
    if not both.any():
        raise ValueError(f"no voiced frames in common: audio has {int(voiced_a.sum())} voiced of {len(ia)} aligned "
                         f"frames, reference {int(voiced_b.sum())}; f0 cannot be compared")
    semitones_a, semitones_b = hz_to_semitones(pitch_a[both]), hz_to_semitones(pitch_b[both])
    return {
        "log_f0_rmse": float(np.sqrt(np.mean((semitones_a - semitones_b) ** 2))),
        "f0_correlation": pearson(semitones_a, semitones_b),
        "vuv_error": float(np.mean(voiced_a != voiced_b)),
        "voiced_pairs": int(both.sum()),
    }
