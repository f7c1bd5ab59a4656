"""Inference pipelines (glue only): text + reference recordings -> interpolated speech."""

from .pipeline_mel_style_interpolation import MelStyleInterpolationPipeline
from .pipeline_output import MelStyleInterpolationPipelineOutput
from .references import ReferenceEncoding

__all__ = ["MelStyleInterpolationPipeline", "MelStyleInterpolationPipelineOutput", "ReferenceEncoding"]
