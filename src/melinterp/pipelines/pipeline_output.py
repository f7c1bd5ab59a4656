"""What `MelStyleInterpolationPipeline` returns, and the check of its mels against the range of real speech."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.utils import BaseOutput

# frames denoised in one U-Net batch at most, unless one item is longer: about 18 s of speech, the length of the longest
# piece `melinterp.text.split_sentences` makes (MAX_CHUNK_CHARS), so a batch costs about what that piece does alone
MAX_BATCH_FRAMES = 1536
MEL_CEILING = 2.5  # nats: above any log-mel of real audio (speech peaks near 1.8, a full-scale sine at 2.1)
MEL_FLOOR_MARGIN = 8.0  # nats below ln(log_clamp): a model's silence dips below the floor, never this far
# of the cells, beyond which the output is noise rather than speech: settings that make noise leave 5.6-47 % of them
# (guidance_scale 50, dpm at 2 steps, temperature 0.5), healthy outputs of the voices decoder up to 0.06 %
MAX_OFF_RANGE_SHARE = 1e-2


class OffRangeWarning(UserWarning):
    """The generated mel left the range of the speech the model was trained on: the audio is likely noise."""


class RangeCheck:
    """Counts the cells of generated log-mels (B, n_mels, T) that lie outside [ln(log_clamp) - `MEL_FLOOR_MARGIN`,
    `MEL_CEILING`], group after group, and warns once (`OffRangeWarning`) when more than `MAX_OFF_RANGE_SHARE` of
    them do.

    Measured on the bundled model (one sentence, ref `examples/refs/mid_awb.wav`, seed 0): 0 % at the
    defaults, at temperature 1 and 3, guidance scale 10 and DPM-Solver with 4 steps; 0.17-0.24 % at temperature
    0.75, guidance scale 20 and DPM-Solver with 3 steps; 47 % at temperature 0.5, 5.6 % at guidance
    scale 50 and 6.0 % at DPM-Solver with 2 steps, settings whose waveforms were once 96-99 % clipped noise.
    """

    def __init__(self, feature_config):
        self.floor = math.log(feature_config.log_clamp) - MEL_FLOOR_MARGIN
        self.outside, self.cells = 0, 0

    def add(self, mels: torch.Tensor) -> None:
        self.outside += int(((mels > MEL_CEILING) | (mels < self.floor)).sum())
        self.cells += mels.numel()

    @property
    def share(self) -> float:
        return self.outside / max(1, self.cells)

    def warn(self) -> float:
        """Warn if too many cells were outside; returns their share."""
        share = self.share
        if share > MAX_OFF_RANGE_SHARE:
            warnings.warn(f"{share:.2%} of the generated mel's cells lie outside [{self.floor:.1f}, {MEL_CEILING}] "
                          f"nats, the range of real speech the model was trained on: the audio is likely noise. "
                          f"Sampler settings that do this to the bundled model: temperature 0.5, guidance_scale 50, "
                          f"the dpm scheduler with 2 steps", OffRangeWarning, stacklevel=2)
        return share


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
