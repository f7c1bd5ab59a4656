"""What `MelStyleInterpolationPipeline` returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diffusers.utils import BaseOutput


@dataclass
class MelStyleInterpolationPipelineOutput(BaseOutput):
    """What the pipeline returns. Items of a batch are padded to the longest; ``lengths`` gives each one's frames.

    Args:
        audios: (B, N_max) waveforms (np.ndarray for output_type "np", torch for "pt", None for "mel"); item b
            has ``lengths[b] * hop_length`` samples, zeros after.
        mels: (B, n_mels, T_max) natural-log mels, padded with ln(log_clamp) (silence) after ``lengths[b]``.
        lengths: (B,) frames per item.
        sample_rate: Hz of `audios`.
        routing_map: (B, n_mels, T_max) weight of ref1 per cell (temporal, freq, dual_noise), else None.
        pitch_mask: (B, n_mels, T_max) ref1's pitch mask (freq, dual_noise with the frequency map), else None.
        ref1_mass: (B, n_mels, T_max) share of attention each cell gave to ref1's tokens, averaged over the
            cross-attention layers, heads and steps (``return_attention=True`` in modes whose keys are
            [ref1 ; ref2]: temporal and freq), else None.
    """

    audios: Any = None
    mels: Any = None
    lengths: Any = None
    sample_rate: int | None = None
    routing_map: Any = None
    pitch_mask: Any = None
    ref1_mass: Any = None
