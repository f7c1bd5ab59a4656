"""Mode "mix": a blend of two voices, ``s = (1 - alpha) s1 + alpha s2``, each score under one reference alone."""

from __future__ import annotations

import torch

from melinterp.utils import check_number

from .base import Conditioning, Guidance, GuidanceState, GuidanceStrategy, ModeOptions, VoiceWeights, register_strategy


@register_strategy("mix")
class MixGuidance(GuidanceStrategy):
    """Scores under ref1 and under ref2 (one U-Net call of 2B), combined with weight `alpha` on ref2.

    The text encoder (durations, mu_y) gets the blended style vector ``(1 - alpha) v1 + alpha v2`` and the blended
    pitch condition (log-f0 median and spread, so the pitch moves geometrically from ref1's to ref2's); each U-Net
    branch gets its own reference's vector, so alpha = 0 is exactly mode "none" with ref1 and alpha = 1 with ref2.

    Args:
        alpha: weight of ref2 in [0, 1].
    """

    num_references = 2

    def __init__(self, alpha: float = 0.5):
        check_number("alpha", alpha, lambda a: 0.0 <= a <= 1.0, "a weight of ref2 in [0, 1]")
        self.alpha = float(alpha)

    @classmethod
    def from_options(cls, options: ModeOptions) -> MixGuidance:
        return cls(options.alpha)

    def voice_weights(self) -> VoiceWeights:
        return VoiceWeights(1.0 - self.alpha, 1.0 - self.alpha)

    def prepare(self, state: GuidanceState) -> Guidance:
        return Guidance(Conditioning.stack(Conditioning.of(state.ref1), Conditioning.of(state.ref2)))  # (2B, ...)

    def combine_scores(self, guidance: Guidance, scores: torch.Tensor, i: int) -> torch.Tensor:
        score_ref1, score_ref2 = scores.chunk(2)  # (B, n_mels, T) each
        return (1.0 - self.alpha) * score_ref1 + self.alpha * score_ref2
