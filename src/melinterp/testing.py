"""Test helpers: a tiny, randomly initialised pipeline that builds and runs in well under a second.

The model configuration is `TINY_MODEL_CONFIG`, a copy of ``examples/configs/models/tiny.json`` embedded here so
that the package reads no file outside itself (tests check the two agree). Untrained: the speech is noise, but
every shape, mask, routing and capture path is real.
"""

from __future__ import annotations

import copy

import torch

TINY_MODEL_CONFIG = {
    "text_encoder": {
        "n_mels": 80, "hidden_channels": 16, "filter_channels": 32, "n_heads": 2, "n_layers": 1, "kernel_size": 3,
        "p_dropout": 0.1, "window_size": 4, "style_dim": 16, "duration_predictor_channels": 16,
        "duration_predictor_kernel_size": 3, "prenet_kernel_size": 5, "prenet_layers": 3, "prenet_dropout": 0.5,
        "pitch_dim": 2,
    },
    "style_encoder": {
        "n_mels": 80, "hidden_channels": 16, "style_dim": 16, "n_conv_layers": 1, "conv_kernel_size": 5,
        "n_transformer_layers": 1, "n_heads": 2, "ffn_channels": 32, "p_dropout": 0.1,
    },
    "unet": {
        "in_channels": 2, "out_channels": 1, "block_out_channels": [8, 16], "layers_per_block": 1,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"], "mid_block_type": "UNetMidBlock2D",
        "only_cross_attention": True, "cross_attention_dim": 16, "attention_head_dim": 2, "norm_num_groups": 4,
        "class_embed_type": "projection", "projection_class_embeddings_input_dim": 16, "time_embedding_dim": 32,
        "resnet_time_scale_shift": "scale_shift",
    },
}


def tiny_pipeline(seed: int = 0, *, vocoder_iterations: int = 4):
    """A `MelStyleInterpolationPipeline` with tiny random models (channels 8-16), in eval mode, on the CPU.

    Args:
        seed: seeds the weights (torch's global generator is left as it was).
        vocoder_iterations: Griffin-Lim iterations (few: tests want speed, not sound).
    """
    from melinterp.audio import FeatureConfig
    from melinterp.models import MelUNet2DConditionModel, StyleEncoder, TextEncoder
    from melinterp.models.vocoder import GriffinLimVocoder
    from melinterp.pipelines import MelStyleInterpolationPipeline
    from melinterp.schedulers import GradTTSScheduler
    from melinterp.text import TextProcessor

    config = copy.deepcopy(TINY_MODEL_CONFIG)
    text_processor = TextProcessor()
    feature_config = FeatureConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = TextEncoder(n_vocab=text_processor.vocab_size, **config["text_encoder"])
        style_encoder = StyleEncoder(**config["style_encoder"])
        unet = MelUNet2DConditionModel(**config["unet"])
    vocoder = GriffinLimVocoder.from_feature_config(feature_config, n_iter=vocoder_iterations, nnls_iter=2)
    pipe = MelStyleInterpolationPipeline(
        text_encoder=text_encoder.eval(), style_encoder=style_encoder.eval(), unet=unet.eval(),
        scheduler=GradTTSScheduler(), vocoder=vocoder.eval(), text_processor=text_processor,
        feature_config=feature_config,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
