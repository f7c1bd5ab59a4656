"""HiFi-GAN generator: a natural-log mel-spectrogram -> a waveform, by learned transposed convolutions.

The architecture of Kong, Kim & Bae, "HiFi-GAN: Generative Adversarial Networks for Efficient and High Fidelity
Speech Synthesis" (NeurIPS 2020), laid out exactly as the authors' code (github.com/jik876/hifi-gan) so that its
checkpoints load by module name:

1. ``conv_pre``: Conv1d(n_mels -> C, kernel 7), C = ``upsample_initial_channel``.
2. For each stage i: leaky ReLU (slope 0.1), ``ups.{i}``: ConvTranspose1d(C / 2^i -> C / 2^(i+1), kernel k_i,
   stride u_i, padding (k_i - u_i) / 2), which multiplies the length by u_i exactly; then the multi-receptive-field
   fusion: the mean of ``len(resblock_kernel_sizes)`` residual blocks ``resblocks.{i * K + j}``, one per kernel size
   and its dilations (`ResBlock1`: pairs of dilated and plain convolutions; `ResBlock2`: single dilated ones).
3. Leaky ReLU (torch's default slope 0.01, as the authors' code has it), ``conv_post``: Conv1d(-> 1, kernel 7),
   tanh.

A mel of T frames gives T * prod(upsample_rates) = T * hop_length samples in [-1, 1]. Our features are the ones
the official models were trained on (22.05 kHz, 80 Slaney mel bins up to 8 kHz, n_fft 1024, hop 256, natural log
of the clamped magnitude), so an official generator vocodes our mels as they are.

The convolutions are plain: weight normalisation is a training-time reparametrisation, folded into the weights when
an official checkpoint is converted (``melinterp convert-hifigan``, `melinterp.convert_hifigan`). The saved
safetensors therefore hold the official module names with one ``weight`` per convolution (``conv_pre.weight``,
``ups.0.weight``, ``resblocks.0.convs1.0.weight``, ...).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from melinterp.models.saving import UsualFileModesMixin
from melinterp.models.vocoder import check_log_mel

LRELU_SLOPE = 0.1  # inside the generator; the last activation keeps torch's default 0.01, as the authors' code does
RESBLOCK_TYPES = ("1", "2")

#: the authors' generator configurations (config_v1.json, config_v2.json, config_v3.json): V1 is the large,
#: best-sounding one (the "universal" checkpoint Grad-TTS ships), V2 a narrow V1, V3 the fastest
HIFIGAN_PRESETS: dict[str, dict] = {
    "v1": {"resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
           "upsample_initial_channel": 512, "resblock_kernel_sizes": [3, 7, 11],
           "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]]},
    "v2": {"resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
           "upsample_initial_channel": 128, "resblock_kernel_sizes": [3, 7, 11],
           "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]]},
    "v3": {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
           "upsample_initial_channel": 256, "resblock_kernel_sizes": [3, 5, 7],
           "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]]},
}


def _dilated_convs(channels: int, kernel_size: int, dilations) -> nn.ModuleList:
    """One length-preserving Conv1d(channels -> channels) per dilation: (B, C, L) -> (B, C, L) each."""
    return nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=(kernel_size * d - d) // 2)
                         for d in dilations)


class ResBlock1(nn.Module):
    """HiFi-GAN's first residual block: for each dilation d, x += conv_1(lrelu(conv_d(lrelu(x)))); (B, C, L) kept."""

    DILATIONS = 3

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs1 = _dilated_convs(channels, kernel_size, dilations)
        self.convs2 = _dilated_convs(channels, kernel_size, [1] * len(dilations))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated, plain in zip(self.convs1, self.convs2):
            x = x + plain(F.leaky_relu(dilated(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """HiFi-GAN's light residual block (V3): for each dilation d, x += conv_d(lrelu(x)); (B, C, L) kept."""

    DILATIONS = 2

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs = _dilated_convs(channels, kernel_size, dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated in self.convs:
            x = x + dilated(F.leaky_relu(x, LRELU_SLOPE))
        return x


class HiFiGANGenerator(UsualFileModesMixin, ModelMixin, ConfigMixin):
    """HiFi-GAN generator (Kong et al. 2020): log-mel (B, n_mels, T) -> waveform (B, T * hop_length) in [-1, 1].

    A drop-in vocoder for the pipeline (``pipe.vocoder = HiFiGANGenerator.from_pretrained(folder)``); build one from
    an official checkpoint with ``melinterp convert-hifigan``. The defaults are the authors' V1
    (`HIFIGAN_PRESETS`; `from_preset` builds any of v1, v2, v3).

    Args:
        resblock: ``"1"`` (`ResBlock1`, V1/V2) or ``"2"`` (`ResBlock2`, V3).
        upsample_rates: stride of each transposed convolution; their product is the hop length.
        upsample_kernel_sizes: kernel of each transposed convolution, >= its rate, (kernel - rate) even.
        upsample_initial_channel: channels after ``conv_pre``, halved by every upsampler.
        resblock_kernel_sizes: the (odd) kernel of each residual block of a stage (the multi-receptive-field fusion).
        resblock_dilation_sizes: the dilations of each of those blocks (3 each for ResBlock1, 2 for ResBlock2).
        n_mels: mel bins of the input.
        sample_rate: Hz of the waveform (recorded for the pipeline and the user; the network does not use it).
        hop_length: samples per mel frame; must equal prod(upsample_rates).

    Random initialisation follows the authors' (normal, std 0.01, for every convolution after ``conv_pre``).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, resblock: str = "1", upsample_rates: tuple[int, ...] = (8, 8, 2, 2),
                 upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4), upsample_initial_channel: int = 512,
                 resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11),
                 resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
                 n_mels: int = 80, sample_rate: int = 22050, hop_length: int = 256):
        super().__init__()
        _check_config(resblock, upsample_rates, upsample_kernel_sizes, upsample_initial_channel,
                      resblock_kernel_sizes, resblock_dilation_sizes, n_mels, hop_length)
        block_class = ResBlock1 if resblock == "1" else ResBlock2
        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(n_mels, upsample_initial_channel, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            in_channels, channels = upsample_initial_channel // 2 ** i, upsample_initial_channel // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(in_channels, channels, kernel, rate, padding=(kernel - rate) // 2))
            self.resblocks.extend(block_class(channels, k, tuple(d))
                                  for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes))
        self.conv_post = nn.Conv1d(channels, 1, 7, padding=3)
        for module in (self.ups, self.resblocks, self.conv_post):
            module.apply(_init_conv)

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "HiFiGANGenerator":
        """A randomly initialised generator of the authors' configuration ``name`` (v1, v2, v3); ``kwargs`` set the
        rest of the config (n_mels, sample_rate, hop_length) or override the preset's own keys."""
        if name not in HIFIGAN_PRESETS:
            raise ValueError(f"unknown HiFi-GAN preset {name!r}: expected one of {', '.join(HIFIGAN_PRESETS)}")
        return cls(**{**copy.deepcopy(HIFIGAN_PRESETS[name]), **kwargs})

    def streams(self, mel: torch.Tensor) -> Iterator[torch.Tensor]:
        """(B, n_mels, T) -> the channel streams one after the other, unchecked: ``conv_pre``'s output (B, C, T),
        then each stage's multi-receptive-field output (B, C / 2^(i+1), T * u_0 * ... * u_i); ``conv_post`` reads
        the last. `waveform` runs through them; `melinterp.training.pruning` ranks their channels."""
        x = self.conv_pre(mel.to(self.conv_pre.weight.dtype))  # (B, C, T)
        yield x
        for i, upsample in enumerate(self.ups):
            x = upsample(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels: (i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels  # multi-receptive-field fusion
            yield x

    def waveform(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, T * hop) in the module's dtype (or an enclosing autocast's), with gradients, no
        input check: the vocoder trainer's call (`forward` is the checked one)."""
        for x in self.streams(mel):  # only the last stream is kept
            pass
        return torch.tanh(self.conv_post(F.leaky_relu(x)))[:, 0]  # (B, T * hop)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, n_mels, T) or (n_mels, T) -> waveform (B, T * hop_length) or (T * hop_length,).

        Runs in the module's dtype on the mel's device and returns the mel's floating dtype. Differentiable (the
        pipeline calls it under ``torch.no_grad``).
        """
        check_log_mel(mel, self.config.n_mels)
        waveform = self.waveform(mel if mel.dim() == 3 else mel[None]).to(mel.dtype)
        return waveform if mel.dim() == 3 else waveform[0]


def _init_conv(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
        nn.init.normal_(module.weight, 0.0, 0.01)


def _check_config(resblock, upsample_rates, upsample_kernel_sizes, upsample_initial_channel, resblock_kernel_sizes,
                  resblock_dilation_sizes, n_mels, hop_length) -> None:
    """Raise a ValueError naming the first config argument that cannot build a generator."""
    if resblock not in RESBLOCK_TYPES:
        raise ValueError(f"resblock must be \"1\" (ResBlock1) or \"2\" (ResBlock2), got {resblock!r}")
    if not upsample_rates or len(upsample_rates) != len(upsample_kernel_sizes):
        raise ValueError(f"upsample_rates and upsample_kernel_sizes need one entry per upsampler, got "
                         f"{list(upsample_rates)} and {list(upsample_kernel_sizes)}")
    for rate, kernel in zip(upsample_rates, upsample_kernel_sizes):
        if rate < 1 or kernel < rate or (kernel - rate) % 2:
            raise ValueError(f"each upsampler needs kernel >= rate >= 1 with (kernel - rate) even, so that it "
                             f"multiplies the length by its rate; got rate {rate}, kernel {kernel}")
    if math.prod(upsample_rates) != hop_length:
        raise ValueError(f"hop_length must equal the product of upsample_rates {list(upsample_rates)} = "
                         f"{math.prod(upsample_rates)} (one mel frame -> hop_length samples), got {hop_length}")
    if upsample_initial_channel // 2 ** len(upsample_rates) < 1:
        raise ValueError(f"upsample_initial_channel {upsample_initial_channel} is halved by each of "
                         f"{len(upsample_rates)} upsamplers: it needs at least {2 ** len(upsample_rates)}")
    if not resblock_kernel_sizes or len(resblock_kernel_sizes) != len(resblock_dilation_sizes):
        raise ValueError(f"resblock_kernel_sizes and resblock_dilation_sizes need one entry per residual block, got "
                         f"{list(resblock_kernel_sizes)} and {[list(d) for d in resblock_dilation_sizes]}")
    dilations = (ResBlock1 if resblock == "1" else ResBlock2).DILATIONS
    for kernel, block_dilations in zip(resblock_kernel_sizes, resblock_dilation_sizes):
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"resblock_kernel_sizes must be odd (length-preserving convolutions), got {kernel}")
        if len(block_dilations) != dilations or min(block_dilations) < 1:
            raise ValueError(f"ResBlock{resblock} takes {dilations} positive dilations per block, got "
                             f"{list(block_dilations)}")
    if n_mels < 1:
        raise ValueError(f"n_mels must be a positive number of mel bins, got {n_mels}")
