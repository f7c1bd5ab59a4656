"""Inference pipelines (glue only): text + reference recordings -> interpolated speech."""

from .pipeline_mel_style_interpolation import (
    MODES,
    MelStyleInterpolationPipeline,
    MelStyleInterpolationPipelineOutput,
    ReferenceEncoding,
)

__all__ = ["MODES", "MelStyleInterpolationPipeline", "MelStyleInterpolationPipelineOutput", "ReferenceEncoding"]
