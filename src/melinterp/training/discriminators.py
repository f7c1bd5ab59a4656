"""GAN discriminators for vocoder training: multi-period (HiFi-GAN) and multi-resolution (UnivNet), and their losses.

Training-only modules: nothing at inference imports them. Both take waveforms (B, N) and return, per
sub-discriminator, its logits and the feature maps that the feature-matching loss compares.

- `MultiPeriodDiscriminator` (Kong et al. 2020): the waveform folded into (N / p, p) for periods p = 2, 3, 5, 7,
  11, each seen by 2-D convolutions that stride over time only, so each looks at samples p apart (periodic
  structure: the harmonics of voiced speech).
- `MultiResolutionDiscriminator` (Jang et al. 2021): log-magnitude spectrograms at three STFT resolutions, each seen
  by 2-D convolutions (the spectral envelope and its detail at several time-frequency trade-offs).

Losses are least-squares GAN (as HiFi-GAN), feature matching (L1 between real and fake feature maps), and the L1
distance of log-mels that carries most of the reconstruction signal.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

LEAKY_SLOPE = 0.1

DiscriminatorOutput = tuple[list[torch.Tensor], list[list[torch.Tensor]]]  # logits per sub-discriminator, features


class SubDiscriminator(nn.Module):
    """``convs`` (each followed by a leaky ReLU) then ``post``: logits (B, *) and every layer's output."""

    convs: nn.ModuleList
    post: nn.Module

    def conv_stack(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_SLOPE)
            features.append(x)
        x = self.post(x)
        features.append(x)
        return x.flatten(1), features


class Ensemble(nn.Module):
    """Several sub-discriminators on the same audio: their logits, and their feature maps."""

    discriminators: nn.ModuleList

    def forward(self, audio: torch.Tensor) -> DiscriminatorOutput:
        outputs = [d(audio) for d in self.discriminators]
        return [logits for logits, _ in outputs], [features for _, features in outputs]


class PeriodDiscriminator(SubDiscriminator):
    def __init__(self, period: int, channels: tuple[int, ...], kernel_size: int = 5, stride: int = 3):
        super().__init__()
        self.period = period
        sizes = (1, *channels)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (kernel_size, 1), (stride if i < len(channels) - 1 else 1, 1),
                                  padding=(kernel_size // 2, 0)))
            for i, (c_in, c_out) in enumerate(zip(sizes[:-1], sizes[1:])))
        self.post = weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, length = audio.shape
        pad = (-length) % self.period
        x = F.pad(audio, (0, pad), mode="reflect") if pad else audio
        x = x.view(batch, 1, -1, self.period)  # (B, 1, N / p, p)
        return self.conv_stack(x)


class MultiPeriodDiscriminator(Ensemble):
    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), channels: tuple[int, ...] = (32, 128, 512, 1024)):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, tuple(channels)) for p in periods)


class ResolutionDiscriminator(SubDiscriminator):
    def __init__(self, n_fft: int, hop_length: int, channels: int = 32):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, channels, (7, 5), (2, 2), padding=(3, 2))),
            weight_norm(nn.Conv2d(channels, channels, (5, 3), (2, 1), padding=(2, 1))),
            weight_norm(nn.Conv2d(channels, channels, (5, 3), (2, 1), padding=(2, 1))),
            weight_norm(nn.Conv2d(channels, channels, 3, (2, 1), padding=1)),
            weight_norm(nn.Conv2d(channels, channels, 3, (2, 2), padding=1)),
        ])
        self.post = weight_norm(nn.Conv2d(channels, 1, 3, padding=1))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        with torch.autocast(audio.device.type, enabled=False):
            spectrum = torch.stft(audio.float(), self.n_fft, self.hop_length, window=self.window, center=True,
                                  return_complex=True)
            x = torch.log(spectrum.abs().clamp(min=1e-5))[:, None]  # (B, 1, n_freq, frames)
        return self.conv_stack(x)


class MultiResolutionDiscriminator(Ensemble):
    def __init__(self, resolutions: tuple[tuple[int, int], ...] = ((1024, 256), (2048, 512), (512, 128)),
                 channels: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList(ResolutionDiscriminator(n_fft, hop, channels) for n_fft, hop in resolutions)


# --------------------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------------------

def discriminator_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """Least-squares GAN: real towards 1, fake towards 0, summed over sub-discriminators."""
    return sum(torch.mean((1 - real.float()) ** 2) + torch.mean(fake.float() ** 2)
               for real, fake in zip(real_logits, fake_logits))


def generator_adversarial_loss(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """Least-squares GAN for the generator: fake towards 1."""
    return sum(torch.mean((1 - fake.float()) ** 2) for fake in fake_logits)


def feature_matching_loss(real_features: list[list[torch.Tensor]],
                          fake_features: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 between real (detached) and fake feature maps, summed over every layer of every sub-discriminator."""
    return sum(torch.mean(torch.abs(real.detach().float() - fake.float()))
               for reals, fakes in zip(real_features, fake_features) for real, fake in zip(reals, fakes))
