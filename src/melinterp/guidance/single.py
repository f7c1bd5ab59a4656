"""Mode "none": speech in the style of one reference (cross-attention to ref1's tokens, ref1's style vector)."""

from __future__ import annotations

from .base import GuidanceStrategy, register_strategy


@register_strategy("none")
class SingleReference(GuidanceStrategy):
    """Keys = ref1's tokens; the text encoder and the U-Net both get ref1's style vector. The base behaviour."""
