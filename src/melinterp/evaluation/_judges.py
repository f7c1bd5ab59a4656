"""What the model-based judges (recogniser, DNSMOS) share: their optional packages and their input checks."""

from __future__ import annotations

import importlib
import threading

import numpy as np


class LazyJudge:
    """A judge whose model `_build` makes once, on first use; ``_lock`` guards the building (and may guard more)."""

    def __init__(self):
        self._built = None
        self._lock = threading.Lock()

    def _build(self):
        raise NotImplementedError

    def _model(self):
        with self._lock:
            if self._built is None:
                self._built = self._build()
        return self._built


def require(module: str, purpose: str):
    """``import module``, or a RuntimeError that says which extra installs it (``purpose`` names the judge)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing = (error.name or module).split(".")[0]  # the package, also when a submodule was asked for
        raise RuntimeError(f"{purpose} needs the {missing} package: "
                           "pip install 'melinterp[eval]'") from None


def mono_waveform(audio, sample_rate: int, purpose: str) -> np.ndarray:
    """``audio`` as float32 (N,), or a ValueError unless it is mono, finite and at least 0.1 s at ``sample_rate``."""
    waveform = np.asarray(audio, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape (N,), got {waveform.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
    if waveform.size < sample_rate // 10:
        raise ValueError(f"audio has {waveform.size} samples; expected at least 0.1 s "
                         f"({sample_rate // 10} samples at {sample_rate} Hz) to {purpose}")
    if not np.all(np.isfinite(waveform)):
        raise ValueError(f"audio contains NaN or infinite samples: nothing to {purpose}")
    return waveform
