"""Mode "dual_noise": temporal or frequency interpolation composed in mel space instead of attention space.

Each step evaluates the score under ref1 alone and under ref2 alone (one U-Net call of 2B, each branch with its
own reference's tokens and style vector) and composes them with the routing map R of the temporal or frequency
mode: ``s = R * s1 + (1 - R) * s2``.

With ``merge_step = k > 0`` the run starts from two prior samples: x (ref1's) follows s1 alone and a second
trajectory x2 follows s2 alone (stepped by a copy of the scheduler) for the first k steps; at step k they are
merged, ``x = R * x + (1 - R) * x2``, and the composed score takes over.

What the text encoder hears follows the map: ref1's pitch with ref2's style vector for ``map="freq"`` (as in
mode "freq"), each phoneme its own side's voice for ``map="temporal"`` (as in mode "temporal").
"""

from __future__ import annotations

import copy

import torch

from .base import Conditioning, GuidanceState, GuidanceStrategy, PhonemeTiming, VoiceWeights, unet_score
from .frequency import PITCH_MASK_KINDS, ref1_pitch_mask
from .temporal import parse_boundary, temporal_map, temporal_voice_weights

DUAL_NOISE_MAPS = ("freq", "temporal")


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
            raise ValueError(f"dual_noise_map must be one of {', '.join(DUAL_NOISE_MAPS)}, got {routing!r}")
        if pitch_mask not in PITCH_MASK_KINDS:
            raise ValueError(f"pitch_mask must be one of {', '.join(PITCH_MASK_KINDS)}, got {pitch_mask!r}")
        if isinstance(merge_step, bool) or int(merge_step) != merge_step or merge_step < 0:
            raise ValueError(f"dual_noise_merge_step must be an integer >= 0, got {merge_step!r}")
        if routing == "temporal":
            parse_boundary(boundary)
        self.routing, self.pitch_mask, self.boundary, self.crossfade = routing, pitch_mask, boundary, crossfade
        self.merge_step = int(merge_step)
        self.needs_f0 = routing == "freq"
        self.needs_second_noise = self.merge_step > 0
        self.weights_follow_time = routing == "temporal"

    def voice_weights(self, timing: PhonemeTiming | None = None) -> VoiceWeights:
        if self.routing == "freq":
            return VoiceWeights(style=0.0, pitch=1.0)
        return temporal_voice_weights(self.boundary, self.crossfade, timing)

    def prepare(self, state: GuidanceState) -> None:
        if self.routing == "freq":
            state.pitch_mask = ref1_pitch_mask(state, self.pitch_mask)
            state.routing_map = state.pitch_mask.clone()  # R = P
        else:
            state.routing_map = temporal_map(state, self.boundary, self.crossfade)
        state.conditioning = Conditioning.stack(Conditioning.of(state.ref1), Conditioning.of(state.ref2))

    def adjust_sample(self, state: GuidanceState, x: torch.Tensor, t: torch.Tensor, i: int) -> torch.Tensor:
        if self.merge_step and i == 0:  # ref2's own trajectory, stepped by a copy of the (set) scheduler
            state.extras["x2"] = state.second_noise
            state.extras["scheduler2"] = copy.deepcopy(state.scheduler)
        if self.merge_step and i == self.merge_step:
            routing_map = state.routing_map
            x = routing_map * x + (1.0 - routing_map) * state.extras.pop("x2")
        return x

    def score(self, state: GuidanceState, x: torch.Tensor, t: torch.Tensor, i: int) -> torch.Tensor:
        if self.merge_step and i < self.merge_step:
            x2 = state.extras["x2"]
            score_ref1, score_ref2 = unet_score(state, torch.cat([x, x2]), t, state.conditioning).chunk(2)
            state.extras["x2"] = state.extras["scheduler2"].step(score_ref2, t, x2, state.mu_y).prev_sample
            return score_ref1
        score_ref1, score_ref2 = unet_score(state, torch.cat([x, x]), t, state.conditioning).chunk(2)
        return state.routing_map * score_ref1 + (1.0 - state.routing_map) * score_ref2
