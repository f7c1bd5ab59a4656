"""Mode "freq": ref1's pitch, everything else from ref2.

A **pitch mask** P (B, n_mels, T) marks the mel cells that carry f0 and its first harmonics; the routing map is
R = P, so cells inside the mask listen to ref1's tokens and all others to ref2's.

- ``pitch_mask="band"``: the bins spanning ref1's voiced f0 range (5th-95th percentile) and its harmonics, the
  same in every frame.
- ``pitch_mask="harmonic"``: per frame, triangles at k * f0. The generated utterance's f0 is unknown before
  sampling, so the contour is **ref1's voiced f0 contour (unvoiced frames dropped) stretched to T** (nearest
  frame): every generated frame gets harmonics that follow ref1's intonation in time.

The text encoder gets ref1's pitch condition and ref2's style vector (rhythm and spectral envelope belong to
"everything else"), so the prior mean mu_y -- which sets the pitch of the output -- is ref2's voice at ref1's
pitch; the U-Net's global vector is ref2's. ``freq_guidance`` says how the mask acts: ``"mask"`` routes attention
by it (`FrequencyRouting`), ``"none"`` keeps the keys [ref1 ; ref2] and the mask but adds no bias (the ablation
baseline), ``"noise_tuning"`` steers the sample instead (`melinterp.guidance.noise_tuning.NoiseTuning`).
"""

from __future__ import annotations

import torch

from melinterp.audio import check_pitch_mask_kind
from melinterp.models.attention_processors import RoutingSpec, frequency_routing_map

from .base import (
    Conditioning,
    Guidance,
    GuidanceState,
    GuidanceStrategy,
    ModeOptions,
    VoiceWeights,
    check_routing_strength,
    register_strategy,
)

FREQ_GUIDANCE = ("mask", "noise_tuning", "none")


def ref1_pitch_mask(state: GuidanceState, kind: str) -> torch.Tensor:
    """(B, n_mels, T) pitch mask in [0, 1] from each item's ref1 f0 (see the module docstring)."""
    from melinterp.audio import pitch_mask

    masks = []
    for f0 in state.ref1_analyses["f0"]:
        if kind == "band":
            mask = pitch_mask(f0, state.feature_config, kind="band", num_frames=state.num_frames)
        else:
            mask = pitch_mask(f0[f0 > 0], state.feature_config, kind="harmonic", num_frames=state.num_frames)
        masks.append(mask)  # (n_mels, T)
    return torch.stack(masks).to(state.mu_y)  # (B, n_mels, T)


@register_strategy("freq")
class FrequencyRouting(GuidanceStrategy):
    """Keys = [ref1 ; ref2]; routing bias R = pitch mask (``route=False``: no bias, the ablation baseline).

    Args:
        pitch_mask: "band" or "harmonic".
        strength: multiplies the log-weight bias.
        route: add the routing bias (``freq_guidance="mask"``) or not (``"none"``).
    """

    num_references = 2
    reference_analyses = ("f0",)
    captures_ref1_mass = True

    def __init__(self, pitch_mask: str = "band", strength: float = 1.0, route: bool = True):
        check_pitch_mask_kind(pitch_mask)
        check_routing_strength(strength)
        self.pitch_mask, self.strength, self.route = pitch_mask, float(strength), route

    @classmethod
    def from_options(cls, options: ModeOptions) -> FrequencyRouting:
        """``freq_guidance`` picks the variant (module docstring)."""
        if options.freq_guidance not in FREQ_GUIDANCE:
            raise ValueError(f"freq_guidance must be one of {', '.join(map(repr, FREQ_GUIDANCE))}, got "
                             f"{options.freq_guidance!r}")
        if options.freq_guidance == "noise_tuning":
            from .noise_tuning import NoiseTuning  # a subclass of this one, in its own module

            return NoiseTuning(options.pitch_mask, options.tuning)
        return cls(options.pitch_mask, options.routing_strength, route=options.freq_guidance == "mask")

    def voice_weights(self) -> VoiceWeights:
        return VoiceWeights(style=0.0, pitch=1.0)

    def prepare(self, state: GuidanceState) -> Guidance:
        pitch_mask = ref1_pitch_mask(state, self.pitch_mask)  # (B, n_mels, T)
        routing_map = frequency_routing_map(pitch_mask)  # R = P
        routing = None
        if self.route:
            routing = {"routing": RoutingSpec(state.pad_map(routing_map),
                                              num_ref1_tokens=state.ref1.style_tokens.shape[1],
                                              strength=self.strength)}
        conditioning = Conditioning.two_references(state.ref1, state.ref2, state.ref2.style_vector, routing)
        return Guidance(conditioning, routing_map, pitch_mask)
