"""Guidance strategies: one file each, filling fixed points of the pipeline's denoising loop (`base`).

`STRATEGIES` names them (the pipeline's ``mode``):

| mode / option                         | strategy           |
| ------------------------------------- | ------------------ |
| ``"none"``                            | `SingleReference`  |
| ``"mix"``                             | `MixGuidance`      |
| ``"temporal"``                        | `TemporalRouting`  |
| ``"freq"``, ``freq_guidance="mask"``  | `FrequencyRouting` |
| ``"freq"``, ``freq_guidance="none"``  | `FrequencyRouting(route=False)` |
| ``"freq"``, ``"noise_tuning"``        | `NoiseTuning`      |
| ``"dual_noise"``                      | `DualNoise`        |

Every module of this folder is imported with the package, so a new module's ``@register_strategy("name")`` puts
its strategy in `STRATEGIES` with no other edit.
"""

import importlib
import pkgutil

from .base import (
    STRATEGIES,
    Conditioning,
    Guidance,
    GuidanceState,
    GuidanceStrategy,
    ModeOptions,
    PhonemeTiming,
    VoiceWeights,
    make_strategy,
    register_strategy,
)

# isort: off -- in the order of the modes: registering in it, they keep it in STRATEGIES (and every message)
from .single import SingleReference
from .mix import MixGuidance
from .temporal import TemporalRouting, boundary_frame, frame_weights, parse_boundary, temporal_map
from .frequency import FREQ_GUIDANCE, FrequencyRouting, ref1_pitch_mask
from .noise_tuning import NoiseTuning, NoiseTuningConfig, noise_tuning_loss
from .dual_noise import DUAL_NOISE_MAPS, DualNoise
# isort: on

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "DUAL_NOISE_MAPS",
    "FREQ_GUIDANCE",
    "STRATEGIES",
    "Conditioning",
    "DualNoise",
    "FrequencyRouting",
    "Guidance",
    "GuidanceState",
    "GuidanceStrategy",
    "MixGuidance",
    "ModeOptions",
    "NoiseTuning",
    "NoiseTuningConfig",
    "PhonemeTiming",
    "SingleReference",
    "TemporalRouting",
    "VoiceWeights",
    "boundary_frame",
    "frame_weights",
    "make_strategy",
    "noise_tuning_loss",
    "parse_boundary",
    "ref1_pitch_mask",
    "register_strategy",
    "temporal_map",
]
