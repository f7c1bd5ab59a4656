"""Vocos: a neural vocoder that predicts STFT frames at the mel's frame rate (Siuzdak 2023).

A log-mel (B, n_mels, T) goes through a stack of ConvNeXt blocks at the frame rate (no upsampling: every layer
works on T frames, not T * hop samples), and a linear head predicts, per frame, a log-magnitude and a phase for each
of the n_fft / 2 + 1 frequency bins. The inverse STFT (`melinterp.models.vocoder.inverse_stft`, the front end's
framing exactly) turns those frames into T * hop samples. Because the expensive part runs at 86 frames a second
instead of 22,050 samples, it is several times faster on a CPU than HiFi-GAN at a similar quality.

Phase is predicted as an angle p and used through (cos p, sin p), which keeps the head's output unconstrained; the
magnitude is exp(log-magnitude) clipped at ``max_magnitude``, as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from melinterp.models.saving import UsualFileModesMixin
from melinterp.models.vocoder import check_log_mel, inverse_stft, window_envelope


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> pointwise MLP (GELU) -> layer scale, with a residual. (B, C, T) -> (B, C, T)."""

    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # (B, T, C)
        h = self.pwconv2(F.gelu(self.pwconv1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


class VocosVocoder(UsualFileModesMixin, ModelMixin, ConfigMixin):
    """Log-mel (B, n_mels, T) -> waveform (B, T * hop_length), in [-1, 1].

    Args:
        n_mels, sample_rate, n_fft, hop_length, win_length: the feature config the mels come from (Hz, samples).
            The output STFT uses the same framing, so re-analysing the waveform gives T frames aligned with the
            input.
        dim: channels of the ConvNeXt stack.
        intermediate_dim: hidden width of each block's MLP.
        num_layers: ConvNeXt blocks.
        kernel_size: depthwise convolution width, frames.
        max_magnitude: the predicted linear magnitude is clipped here (keeps an early or diverging model finite).
        max_log_mel: input log-mel values above this (nats) are clamped to it; full-scale audio stays below ~2.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, n_mels: int = 80, sample_rate: int = 22050, n_fft: int = 1024, hop_length: int = 256,
                 win_length: int = 1024, dim: int = 320, intermediate_dim: int = 960, num_layers: int = 8,
                 kernel_size: int = 7, max_magnitude: float = 100.0, max_log_mel: float = 5.0):
        super().__init__()
        for name, value in (("n_mels", n_mels), ("dim", dim), ("intermediate_dim", intermediate_dim),
                            ("num_layers", num_layers), ("n_fft", n_fft), ("hop_length", hop_length)):
            if int(value) != value or value <= 0:
                raise ValueError(f"VocosVocoder.{name} must be a positive integer, got {value!r}")
        if not hop_length <= win_length <= n_fft:
            raise ValueError(f"VocosVocoder needs hop_length <= win_length <= n_fft, got {hop_length}, {win_length}, "
                             f"{n_fft}")
        if kernel_size % 2 != 1:
            raise ValueError(f"VocosVocoder.kernel_size must be odd (same-length convolutions), got {kernel_size}")
        self.embed = nn.Conv1d(n_mels, dim, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim, intermediate_dim, kernel_size, layer_scale=1.0 / num_layers) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, n_fft + 2)  # per frame: n_fft / 2 + 1 log-magnitudes, as many phases
        window = torch.hann_window(win_length)
        left = (n_fft - win_length) // 2
        self.register_buffer("window", F.pad(window, (left, n_fft - win_length - left)), persistent=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    @property
    def min_frames(self) -> int:
        """Fewest mel frames the vocoder takes (as Griffin-Lim: the front end's framing needs them)."""
        pad_right = self.config.n_fft - self.config.hop_length - (self.config.n_fft - self.config.hop_length) // 2
        return max(1, pad_right // self.config.hop_length + 1)

    def spectrum(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, n_mels, T) -> complex STFT frames (B, n_fft / 2 + 1, T), float32."""
        x = self.embed(mel.clamp(max=self.config.max_log_mel))
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)  # (B, dim, T)
        for block in self.blocks:
            x = block(x)
        x = self.head(self.final_norm(x.transpose(1, 2))).transpose(1, 2).float()  # (B, n_fft + 2, T)
        log_magnitude, phase = x.chunk(2, dim=1)  # (B, n_freq, T) each
        magnitude = torch.exp(log_magnitude).clamp(max=self.config.max_magnitude)
        return torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))

    def waveform(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, T * hop), with gradients (training); `forward` checks its input and runs without.

        The ConvNeXt stack runs in the module's dtype (or an enclosing autocast's); the head's output and the
        inverse STFT are float32.
        """
        return self.from_spectrum(self.spectrum(mel.to(self.embed.weight.dtype)))

    def from_spectrum(self, spectrum: torch.Tensor) -> torch.Tensor:
        """Complex STFT frames (B, n_fft / 2 + 1, T) -> waveform (B, T * hop) in [-1, 1]: the inverse STFT of
        `waveform`, float32, with gradients. Also takes frames that did not come from `spectrum` (the evaluation's
        phase / magnitude split combines them with a recording's)."""
        with torch.autocast(spectrum.device.type, enabled=False):
            window = self.window.float()
            envelope = window_envelope(window, self.config.hop_length, spectrum.shape[-1])
            return inverse_stft(spectrum, window, self.config.hop_length, envelope).clamp(-1.0, 1.0)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, n_mels, T) or (n_mels, T) -> waveform (B, T * hop_length) or (T * hop_length,).

        Runs on the module's device in its dtype for the ConvNeXt stack, float32 for the inverse STFT; returns the
        mel's floating dtype.
        """
        check_log_mel(mel, self.config.n_mels, self.min_frames)
        batch = mel if mel.dim() == 3 else mel[None]
        with torch.no_grad():
            waveform = self.waveform(batch.to(self.embed.weight.device))
        waveform = waveform.to(device=mel.device, dtype=mel.dtype)
        return waveform if mel.dim() == 3 else waveform[0]
