"""Speaker similarity by an independent judge: resemblyzer's VoiceEncoder (GE2E d-vectors, weights in its wheel).

Never melinterp's own StyleEncoder: a model graded by its own encoder is a circular judge. resemblyzer (and its
webrtcvad, librosa) is imported on first use, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np

ENCODER_SAMPLE_RATE = 16000  # what resemblyzer's encoder expects, Hz
EMBEDDING_SIZE = 256


class SpeakerSimilarity:
    """Cosine similarity of speaker embeddings; the encoder is loaded once, on the first `embed`.

    >>> judge = SpeakerSimilarity()
    >>> judge.similarity(audio_a, audio_b)  # both (N,) float32 at 22050 Hz -> float in [-1, 1]
    """

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._encoder = None

    @property
    def encoder(self):
        if self._encoder is None:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")  # pkg_resources / scipy deprecations from resemblyzer's imports
                try:
                    from resemblyzer import VoiceEncoder
                except ImportError:
                    raise RuntimeError("speaker similarity needs the resemblyzer package: "
                                       "pip install 'melinterp[eval]'") from None

                self._encoder = VoiceEncoder(self.device, verbose=False)
        return self._encoder

    def embed(self, audio, sample_rate: int = 22050) -> np.ndarray:
        """Speaker embedding of a mono waveform (N,) at ``sample_rate`` Hz: float32 (256,), unit L2 norm."""
        waveform = np.asarray(audio, dtype=np.float32)
        if waveform.ndim != 1:
            raise ValueError(f"expected a mono waveform of shape (N,), got {waveform.shape}")
        if waveform.size < sample_rate // 10:
            raise ValueError(f"audio has {waveform.size} samples; expected at least 0.1 s "
                             f"({sample_rate // 10} samples at {sample_rate} Hz) to embed a speaker")
        if not np.all(np.isfinite(waveform)) or np.max(np.abs(waveform)) < 1e-4:
            raise ValueError("audio is silent or not finite (peak below 1e-4): no speaker to embed")
        encoder = self.encoder
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from resemblyzer import preprocess_wav

            # Resamples to 16 kHz, normalises the level and shortens pauses, as the encoder was trained.
            wav = preprocess_wav(waveform, source_sr=sample_rate)
        if wav.size < ENCODER_SAMPLE_RATE // 10:
            raise ValueError(f"only {wav.size / ENCODER_SAMPLE_RATE:.2f} s of voice left after resemblyzer's "
                             "silence trimming; expected at least 0.1 s of speech")
        return np.asarray(encoder.embed_utterance(wav), dtype=np.float32)

    def similarity(self, audio_a, audio_b, sample_rate: int = 22050) -> float:
        """Cosine similarity of the two waveforms' speaker embeddings (1 = same voice)."""
        embedding_a, embedding_b = self.embed(audio_a, sample_rate), self.embed(audio_b, sample_rate)
        norm = float(np.linalg.norm(embedding_a) * np.linalg.norm(embedding_b))
        return float(np.dot(embedding_a, embedding_b) / max(norm, 1e-12))
