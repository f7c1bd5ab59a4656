"""Exponential moving average of model weights, kept as a flat dict of float32 tensors (saved as safetensors)."""

from __future__ import annotations

import torch


class EMAWeights:
    """Shadow copies of every floating-point parameter and buffer of several named modules.

    The decay warms up as ``min(decay, (1 + step) / (10 + step))`` so early averages are not dominated by the random
    initialisation.
    """

    def __init__(self, modules: dict[str, torch.nn.Module], decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = {key: value.detach().float().clone() for key, value in self._named_tensors(modules)}

    @staticmethod
    def _named_tensors(modules: dict[str, torch.nn.Module]):
        for name, module in modules.items():
            for key, value in module.state_dict().items():
                if value.is_floating_point():
                    yield f"{name}.{key}", value

    @torch.no_grad()
    def update(self, modules: dict[str, torch.nn.Module], step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for key, value in self._named_tensors(modules):
            self.shadow[key].lerp_(value.detach().float(), 1.0 - decay)

    def load(self, shadow: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(shadow)
        if missing:
            raise ValueError(f"EMA state lacks {len(missing)} tensors, e.g. {sorted(missing)[:3]}")
        self.shadow = {key: shadow[key].to(self.shadow[key].device).float() for key in self.shadow}

    @torch.no_grad()
    def copy_to(self, modules: dict[str, torch.nn.Module]) -> None:
        """Write the averaged weights into ``modules`` (e.g. fresh copies used for export or validation)."""
        for name, module in modules.items():
            state = module.state_dict()
            for key, value in state.items():
                if value.is_floating_point():
                    value.copy_(self.shadow[f"{name}.{key}"].to(value.dtype))
