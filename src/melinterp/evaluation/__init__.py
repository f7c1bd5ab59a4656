"""Evaluation: independent judges of pitch, spectrum and speaker (see `melinterp.evaluation.metrics`), of
intelligibility (pocketsphinx word error rate) and of naturalness (DNSMOS).

Names are imported on first use, so ``import melinterp.evaluation`` stays cheap and needs none of pyworld,
resemblyzer, pocketsphinx or speechmos until a metric runs.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DNSMOS": "naturalness",
    "Recognizer": "intelligibility",
    "normalize_transcript": "intelligibility",
    "word_error_rate": "intelligibility",
    "SpeakerSimilarity": "speaker",
    "dtw_path": "cepstrum",
    "mcd": "cepstrum",
    "mel_cepstrum": "cepstrum",
    "world_features": "cepstrum",
    "f0_median_hz": "f0",
    "f0_median_semitones": "f0",
    "f0_metrics": "f0",
    "hz_to_semitones": "f0",
    "semitone_distance": "f0",
    "energy_correlation": "metrics",
    "spearman": "metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
