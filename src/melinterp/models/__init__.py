"""Neural components: each a diffusers ``ModelMixin, ConfigMixin`` saved as safetensors."""

from melinterp.models.attention_processors import (
    AttentionRecord,
    AttentionStore,
    MelAttnProcessor,
    RoutingSpec,
    frequency_routing_map,
    install_processors,
    query_grid,
    resize_routing_map,
    temporal_routing_map,
)
from melinterp.models.hifigan import HIFIGAN_PRESETS, HiFiGANGenerator
from melinterp.models.length_regulator import durations_from_log, expand, generate_path, sequence_mask
from melinterp.models.style_encoder import StyleEncoder, StyleEncoderOutput
from melinterp.models.text_encoder import TextEncoder
from melinterp.models.unet_mel import MelUNet2DConditionModel
from melinterp.models.vocoder import GriffinLimVocoder
from melinterp.models.vocos import VocosVocoder

__all__ = [
    "AttentionRecord",
    "AttentionStore",
    "GriffinLimVocoder",
    "HIFIGAN_PRESETS",
    "HiFiGANGenerator",
    "MelAttnProcessor",
    "MelUNet2DConditionModel",
    "RoutingSpec",
    "StyleEncoder",
    "StyleEncoderOutput",
    "TextEncoder",
    "VocosVocoder",
    "durations_from_log",
    "expand",
    "frequency_routing_map",
    "generate_path",
    "install_processors",
    "query_grid",
    "resize_routing_map",
    "sequence_mask",
    "temporal_routing_map",
]
