"""Evaluation metrics in one namespace, plus the two that need no model of speech: energy and rank correlation.

Judges are independent of the model: f0 by pyworld Harvest, spectra by WORLD CheapTrick mel-cepstra, speakers by
resemblyzer. Every function takes float32 mono waveforms (N,) at 22050 Hz (the feature config's rate).
"""

from __future__ import annotations

import warnings

import numpy as np

from melinterp.audio import FeatureConfig, _resolve_config
from melinterp.evaluation.f0 import (
    f0_median_hz,
    f0_median_semitones,
    f0_metrics,
    hz_to_semitones,
    pearson,
    semitone_distance,
)
from melinterp.evaluation.cepstrum import align, check_speech, dtw_path, mcd, mel_cepstrum, world_features
from melinterp.evaluation.speaker import SpeakerSimilarity

__all__ = [
    "SpeakerSimilarity", "align", "dtw_path", "energy_correlation", "f0_median_hz", "f0_median_semitones",
    "f0_metrics", "hz_to_semitones", "mcd", "mel_cepstrum", "pearson", "semitone_distance", "spearman",
    "world_features",
]

_ENERGY_FLOOR = 1e-5  # floor of the frame energy before dB, so silent frames stay finite


def energy_correlation(audio, reference, config: FeatureConfig | None = None) -> float:
    """Pearson correlation of frame energy in dB (`melinterp.audio.frame_energy`) after DTW on mel-cepstra.

    1 for a signal against itself; 0.0 if either aligned energy contour is flat.
    """
    from melinterp.audio import frame_energy

    config = _resolve_config(config)
    audio, reference = check_speech(audio, config, "audio"), check_speech(reference, config, "reference")
    *_, ia, ib = align(audio, reference, config=config)
    energy_db_a = 20.0 * np.log10(np.maximum(frame_energy(audio, config), _ENERGY_FLOOR))  # (Ta,)
    energy_db_b = 20.0 * np.log10(np.maximum(frame_energy(reference, config), _ENERGY_FLOOR))  # (Tb,)
    return pearson(energy_db_a[ia], energy_db_b[ib])


def spearman(x, y) -> float:
    """Spearman rank correlation of two equal-length sequences; 0.0 (no warning) when either is constant or
    shorter than 2; NaN entries drop the pair."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman expects two sequences of one length, got {x.size} and {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return 0.0
    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = spearmanr(x, y).statistic
    return float(rho) if np.isfinite(rho) else 0.0
