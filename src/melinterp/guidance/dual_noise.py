"""Mode "dual_noise": temporal or frequency interpolation composed in mel space instead of attention space.

Each step evaluates the score under ref1 alone and under ref2 alone (one U-Net call of 2B, each branch with its
own reference's tokens and style vector) and composes them with the routing map R of the temporal or frequency
mode: ``s = R * s1 + (1 - R) * s2``.

With ``merge_step = k > 0`` the run starts from two prior samples per item, carried as one batch of 2B: x (ref1's)
follows s1 alone and x2 follows s2 alone for the first k steps; at step k they are merged,
``x = R * x + (1 - R) * x2``, and the composed score takes over. From then on the second block of rows rides along
unused (the scheduler keeps per-row state, so the batch keeps its size).

What the text encoder hears follows the map: ref1's pitch with ref2's style vector for ``map="freq"`` (as in
mode "freq"), each phoneme its own side's voice for ``map="temporal"`` (as in mode "temporal").
"""

from __future__ import annotations

import torch

from melinterp.audio import check_pitch_mask_kind

from .base import (
    Conditioning,
    Guidance,
    GuidanceState,
    GuidanceStrategy,
    ModeOptions,
    PhonemeTiming,
    ScoreFunction,
    VoiceWeights,
    register_strategy,
)
from .frequency import ref1_pitch_mask
from .temporal import check_crossfade, frame_weights, parse_boundary, temporal_map

DUAL_NOISE_MAPS = ("freq", "temporal")


@register_strategy("dual_noise")
class DualNoise(GuidanceStrategy):
    """Two single-reference scores a step, composed by a routing map in mel space.

    Args:
        routing: "freq" (R = ref1's pitch mask) or "temporal" (R = the temporal map).
        pitch_mask: "band" or "harmonic" (routing="freq").
        boundary, crossfade: as in mode "temporal" (routing="temporal").
        merge_step: k >= 0; with k > 0, two initial noises merged at step k.
    """

    num_references = 2

    def __init__(self, routing: str = "freq", pitch_mask: str = "band", boundary=0.5, crossfade: float = 0.1,
                 merge_step: int = 0):
        if routing not in DUAL_NOISE_MAPS:
            raise ValueError(f"dual_noise_map must be one of {', '.join(map(repr, DUAL_NOISE_MAPS))}, got {routing!r}")
        check_pitch_mask_kind(pitch_mask)
        if isinstance(merge_step, bool) or int(merge_step) != merge_step or merge_step < 0:
            raise ValueError(f"dual_noise_merge_step must be an integer >= 0, got {merge_step!r}")
        if routing == "temporal":
            parse_boundary(boundary)
            check_crossfade(crossfade)
        self.routing, self.pitch_mask, self.boundary, self.crossfade = routing, pitch_mask, boundary, crossfade
        self.merge_step = int(merge_step)
        self.reference_analyses = ("f0",) if routing == "freq" else ()
        self.num_trajectories = 2 if self.merge_step else 1

    @classmethod
    def from_options(cls, options: ModeOptions) -> DualNoise:
        return cls(options.dual_noise_map, options.pitch_mask, options.boundary, options.crossfade,
                   options.dual_noise_merge_step)

    def voice_weights(self) -> VoiceWeights:
        return VoiceWeights(style=0.0, pitch=1.0) if self.routing == "freq" else VoiceWeights(0.5, 0.5)

    def phoneme_weights(self, timing: PhonemeTiming) -> torch.Tensor | None:
        if self.routing == "freq":
            return None
        return timing.per_phoneme(frame_weights(self.boundary, self.crossfade, timing))  # (B, L)

    def prepare(self, state: GuidanceState) -> Guidance:
        conditioning = Conditioning.stack(Conditioning.of(state.ref1), Conditioning.of(state.ref2))  # (2B, ...)
        if self.routing == "temporal":
            return Guidance(conditioning, routing_map=temporal_map(state, self.boundary, self.crossfade))
        pitch_mask = ref1_pitch_mask(state, self.pitch_mask)  # (B, n_mels, T)
        return Guidance(conditioning, routing_map=pitch_mask.clone(), pitch_mask=pitch_mask)  # R = P

    def _apart(self, i: int) -> bool:
        """Whether step i still follows the two trajectories apart."""
        return i < self.merge_step

    def adjust_latents(self, state: GuidanceState, guidance: Guidance, latents: torch.Tensor, t: torch.Tensor,
                       i: int, score: ScoreFunction) -> torch.Tensor:
        if self.merge_step and i == self.merge_step:  # latents = [x ; x2] (2B, n_mels, T)
            x, x2 = latents.chunk(2)
            merged = guidance.routing_map * x + (1.0 - guidance.routing_map) * x2
            return torch.cat([merged, merged])
        return latents

    def model_input(self, guidance: Guidance, latents: torch.Tensor, i: int) -> torch.Tensor:
        if self._apart(i):
            return latents  # [x ; x2]: each trajectory under its own reference
        x = latents[: latents.shape[0] // self.num_trajectories]
        return torch.cat([x, x])  # the one sample under both references

    def combine_scores(self, guidance: Guidance, scores: torch.Tensor, i: int) -> torch.Tensor:
        if self._apart(i):
            return scores  # x follows s1, x2 follows s2
        score_ref1, score_ref2 = scores.chunk(2)
        score = guidance.routing_map * score_ref1 + (1.0 - guidance.routing_map) * score_ref2
        return score if self.num_trajectories == 1 else torch.cat([score, score])
