"""Guidance strategies: one file each, called by the pipeline at fixed points of its denoising loop.

| mode / option                         | strategy           |
| ------------------------------------- | ------------------ |
| ``"none"``                            | `SingleReference`  |
| ``"mix"``                             | `MixGuidance`      |
| ``"temporal"``                        | `TemporalRouting`  |
| ``"freq"``, ``freq_guidance="mask"``  | `FrequencyRouting` |
| ``"freq"``, ``freq_guidance="none"``  | `FrequencyRouting(route=False)` |
| ``"freq"``, ``"noise_tuning"``        | `NoiseTuning`      |
| ``"dual_noise"``                      | `DualNoise`        |
"""

from .base import Conditioning, GuidanceState, GuidanceStrategy, PhonemeTiming, VoiceWeights, unet_score
from .dual_noise import DUAL_NOISE_MAPS, DualNoise
from .frequency import PITCH_MASK_KINDS, FrequencyRouting, ref1_pitch_mask
from .mix import MixGuidance
from .noise_tuning import NoiseTuning, NoiseTuningConfig, noise_tuning_loss
from .single import SingleReference
from .temporal import TemporalRouting, boundary_frame, frame_weights, parse_boundary, temporal_map

__all__ = [
    "DUAL_NOISE_MAPS",
    "PITCH_MASK_KINDS",
    "Conditioning",
    "DualNoise",
    "FrequencyRouting",
    "GuidanceState",
    "GuidanceStrategy",
    "MixGuidance",
    "NoiseTuning",
    "NoiseTuningConfig",
    "PhonemeTiming",
    "SingleReference",
    "TemporalRouting",
    "VoiceWeights",
    "boundary_frame",
    "frame_weights",
    "noise_tuning_loss",
    "parse_boundary",
    "ref1_pitch_mask",
    "temporal_map",
    "unet_score",
]
