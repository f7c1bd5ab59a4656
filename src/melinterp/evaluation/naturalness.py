"""Naturalness by an independent judge: Microsoft's DNSMOS, a non-intrusive MOS predictor, from speechmos.

DNSMOS predicts, without a reference, the ITU-T P.835 ratings of a clip (SIG: the speech signal, BAK: the
background, OVRL: the whole) and a P.808 overall MOS, each on the 1 (bad) .. 5 (excellent) scale. Its ONNX models
ship inside the speechmos wheel (run by onnxruntime), so nothing is downloaded. speechmos is imported on first use,
so importing this module costs nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from melinterp.evaluation._judges import LazyJudge, mono_waveform, require

DNSMOS_SAMPLE_RATE = 16000  # what the DNSMOS models were trained on, Hz
DNSMOS_KEYS = ("ovrl", "sig", "bak", "p808")
_SILENCE_PEAK = 1e-4  # as the other judges: a clip below -80 dBFS has no speech to rate


class DNSMOS(LazyJudge):
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808 ratings of a waveform; the ONNX sessions load once, on first use.

    >>> judge = DNSMOS()
    >>> judge.score(audio, 22050)  # (N,) float32 in [-1, 1] -> {"ovrl": 2.9, "sig": 3.2, "bak": 3.9, "p808": 3.4}
    """

    @property
    def model(self):
        """speechmos's `DNSMOS` (the P.835 and P.808 ONNX sessions), built once."""
        return self._model()

    def _build(self):
        dnsmos = require("speechmos.dnsmos", "naturalness (DNSMOS)")  # imports onnxruntime and librosa
        models = Path(dnsmos.__file__).parent / "dnsmos_models"
        primary, p808 = models / "sig_bak_ovr.onnx", models / "model_v8.onnx"
        for path in (primary, p808):
            if not path.is_file():
                raise RuntimeError(f"speechmos is installed without its model {path}: reinstall it "
                                   "(pip install --force-reinstall speechmos)")
        return dnsmos.DNSMOS(str(primary), str(p808))

    def score(self, audio, sample_rate: int = 22050) -> dict[str, float]:
        """``{"ovrl", "sig", "bak", "p808"}`` MOS (1..5) of a mono waveform (N,) at ``sample_rate`` Hz.

        The audio is resampled to 16 kHz and clipped to [-1, 1] (as a 16-bit wav would be), but not normalised:
        DNSMOS hears the level too. Clips shorter than 9 s are repeated to 9 s, as speechmos does; longer ones are
        rated in 9 s windows one second apart, and the ratings averaged.

        Raises:
            ValueError: the waveform is not (N,), shorter than 0.1 s, not finite or silent.
        """
        waveform = mono_waveform(audio, sample_rate, "rate")
        peak = float(np.max(np.abs(waveform)))
        if peak < _SILENCE_PEAK:
            raise ValueError(f"audio is silent (peak {peak:.2g}, expected above {_SILENCE_PEAK:g}): nothing to rate")
        model = self.model
        if sample_rate != DNSMOS_SAMPLE_RATE:
            import librosa

            waveform = librosa.resample(waveform, orig_sr=sample_rate, target_sr=DNSMOS_SAMPLE_RATE)
        waveform = np.clip(waveform, -1.0, 1.0).astype(np.float32)
        ratings = model(waveform, DNSMOS_SAMPLE_RATE, False)  # False: the generic models, not personalised
        return {key: float(ratings[f"{key}_mos"]) for key in DNSMOS_KEYS}
