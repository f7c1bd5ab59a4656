"""Style encoder: a reference mel-spectrogram -> style tokens for cross-attention and a global style vector.

The reference mel (B, n_mels, T_ref) is read as a sequence of frames with the mel bins as channels. Two
stride-2 convolutions shorten it to S = ceil(T_ref / 4) tokens (one token per ~46 ms at hop 256 / 22.05 kHz),
residual convolutions and pre-norm transformer layers give each token context, and masked attention pooling
followed by an MLP gives the global vector (B, style_dim) that conditions the text encoder and the U-Net's
time embedding. The tokens (B, S, C) are the keys and values of the U-Net's cross-attention.

Padding: every layer zeroes padded positions before it mixes positions, a token is real when the frame at its
centre is real (``ref_mask[..., ::4]``), and attention ignores padded tokens. So appending padded frames leaves
the real tokens and the style vector unchanged.

Classifier-free guidance needs a "no reference" condition: :meth:`StyleEncoder.null_style` returns a learned
token repeated ``num_tokens`` times, and the style vector pooled from it by the same head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from melinterp.models.saving import UsualFileModesMixin

from .text_encoder import ChannelLayerNorm

TIME_REDUCTION = 4  # two stride-2 stages


@dataclass
class StyleEncoderOutput(BaseOutput):
    """What the style encoder gives the decoder.

    Args:
        style_tokens: (B, S, C) keys/values for the U-Net's cross-attention, zero on padded tokens.
        token_mask: (B, S) bool, True on real tokens.
        style_vector: (B, style_dim) global style.
        reference_vector: (B, style_dim) each reference's own global style, also for the items that ``drop``
            replaced by the null style (the text encoder's condition during classifier-free guidance training).
    """

    # defaults of None, as in diffusers' outputs, let BaseOutput be rebuilt from a mapping (accelerate's mixed
    # precision does that to every model output)
    style_tokens: torch.Tensor = None
    token_mask: torch.Tensor = None
    style_vector: torch.Tensor = None
    reference_vector: torch.Tensor = None

    def select(self, items) -> StyleEncoderOutput:
        """The tokens, masks and vectors of these items, in this order (an item may come several times)."""
        index = torch.as_tensor(items, device=self.style_tokens.device)
        return StyleEncoderOutput(style_tokens=self.style_tokens[index], token_mask=self.token_mask[index],
                                  style_vector=self.style_vector[index])


def stack_styles(styles) -> StyleEncoderOutput:
    """Several batches of style (anything with ``style_tokens`` (B_i, S_i, C), ``token_mask`` (B_i, S_i) and
    ``style_vector`` (B_i, style_dim)) as one: tokens (sum B_i, max S_i, C), zero-padded to the longest S with the
    padding masked, and the vectors stacked."""
    num_tokens = max(style.style_tokens.shape[1] for style in styles)
    tokens = torch.cat([F.pad(style.style_tokens, (0, 0, 0, num_tokens - style.style_tokens.shape[1]))
                        for style in styles])  # (B, S, C)
    token_mask = torch.cat([F.pad(style.token_mask, (0, num_tokens - style.token_mask.shape[1]), value=False)
                            for style in styles])  # (B, S)
    return StyleEncoderOutput(style_tokens=tokens, token_mask=token_mask,
                              style_vector=torch.cat([style.style_vector for style in styles]))


class StridedConvStage(nn.Module):
    """Halve the time axis: conv(kernel 3, stride 2, padding 1) -> SiLU -> LayerNorm, masked at token centres."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size=3, stride=2, padding=1)
        self.norm = ChannelLayerNorm(out_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C_in, T), mask: (B, 1, T) -> (B, C_out, ceil(T/2)), (B, 1, ceil(T/2))."""
        # x arrives zeroed on padded frames, which then look exactly like the convolution's own zero padding
        mask = mask[..., ::2]  # output position i is centred on input frame 2i
        x = self.norm(F.silu(self.conv(x)))
        return x * mask, mask


class ResidualConvBlock(nn.Module):
    """x + dropout(SiLU(conv(LayerNorm(x)))), masked."""

    def __init__(self, channels: int, kernel_size: int, p_dropout: float):
        super().__init__()
        self.norm = ChannelLayerNorm(channels)
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.dropout = nn.Dropout(p_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (x + self.dropout(F.silu(self.conv(self.norm(x) * mask)))) * mask  # (B, C, S)


class AttentionPooling(nn.Module):
    """Masked softmax-weighted average of tokens (one learned score per token), then an MLP to style_dim."""

    def __init__(self, channels: int, style_dim: int):
        super().__init__()
        self.score = nn.Linear(channels, 1, bias=False)  # a bias would cancel in the softmax
        self.mlp = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, style_dim))

    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """tokens: (B, S, C), token_mask: (B, S) bool -> (B, style_dim)."""
        scores = self.score(tokens).squeeze(-1).masked_fill(~token_mask, float("-inf"))  # (B, S)
        weights = torch.softmax(scores, dim=-1)
        pooled = torch.einsum("bs,bsc->bc", weights, tokens)  # (B, C)
        return self.mlp(pooled)


class StyleEncoder(UsualFileModesMixin, ModelMixin, ConfigMixin):
    """Reference mel (B, n_mels, T_ref) -> :class:`StyleEncoderOutput` with S = ceil(T_ref / 4) tokens.

    Args:
        n_mels: mel bins of the reference (input channels).
        hidden_channels: token width C (the U-Net's ``cross_attention_dim``).
        style_dim: global style vector size (the text encoder's and U-Net's ``style_dim``).
        n_conv_layers: residual convolution layers after the two strided stages.
        conv_kernel_size: their kernel, in tokens.
        n_transformer_layers: pre-norm transformer layers over the tokens.
        n_heads: their attention heads.
        ffn_channels: their feed-forward width.
        p_dropout: dropout everywhere.
    """

    @register_to_config
    def __init__(
        self,
        n_mels: int = 80,
        hidden_channels: int = 128,
        style_dim: int = 128,
        n_conv_layers: int = 2,
        conv_kernel_size: int = 5,
        n_transformer_layers: int = 2,
        n_heads: int = 2,
        ffn_channels: int = 512,
        p_dropout: float = 0.1,
    ):
        super().__init__()
        self.downsample = nn.ModuleList(
            [StridedConvStage(n_mels, hidden_channels), StridedConvStage(hidden_channels, hidden_channels)]
        )
        self.convs = nn.ModuleList(
            ResidualConvBlock(hidden_channels, conv_kernel_size, p_dropout) for _ in range(n_conv_layers)
        )
        self.transformer_layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                hidden_channels, n_heads, ffn_channels, p_dropout, activation="gelu", batch_first=True,
                norm_first=True,
            )
            for _ in range(n_transformer_layers)
        )
        self.norm_out = nn.LayerNorm(hidden_channels)
        self.pooling = AttentionPooling(hidden_channels, style_dim)
        # classifier-free guidance: the "no reference" token
        self.null_token = nn.Parameter(torch.randn(hidden_channels) * hidden_channels**-0.5)

    def forward(self, ref_mel: torch.Tensor, ref_mask: torch.Tensor | None = None,
                drop: torch.Tensor | None = None) -> StyleEncoderOutput:
        """Encode reference mels.

        Args:
            ref_mel: (B, n_mels, T_ref) log-mel frames, T_ref >= 1.
            ref_mask: (B, 1, T_ref), 1 on real frames (a prefix of each row); None means all frames are real.
            drop: (B,) bool, items whose tokens and style vector become the learned null style (classifier-free
                guidance training). Done here, inside ``forward``, so that data-parallel wrappers see the null
                token used on every step.

        Returns:
            StyleEncoderOutput with style_tokens (B, S, C), token_mask (B, S) and style_vector (B, style_dim),
            S = ceil(T_ref / 4).
        """
        ref_mask = self._check_inputs(ref_mel, ref_mask)
        x, mask = ref_mel * ref_mask, ref_mask  # (B, n_mels, T), (B, 1, T)
        for stage in self.downsample:
            x, mask = stage(x, mask)  # (B, C, S), (B, 1, S)
        for conv in self.convs:
            x = conv(x, mask)

        token_mask = mask[:, 0] > 0  # (B, S)
        tokens = x.transpose(1, 2)  # (B, S, C)
        for layer in self.transformer_layers:
            tokens = layer(tokens, src_key_padding_mask=~token_mask)
        tokens = self.norm_out(tokens) * token_mask.unsqueeze(-1)
        vector = self.pooling(tokens, token_mask)  # (B, style_dim)
        output = StyleEncoderOutput(style_tokens=tokens, token_mask=token_mask, style_vector=vector,
                                    reference_vector=vector)
        if drop is not None:
            null = self.null_style(tokens.shape[0], tokens.shape[1])
            output.style_tokens = torch.where(drop[:, None, None], null.style_tokens.to(tokens.dtype), tokens)
            output.token_mask = torch.where(drop[:, None], null.token_mask, token_mask)
            output.style_vector = torch.where(drop[:, None], null.style_vector.to(vector.dtype), vector)
        return output

    def null_style(self, batch_size: int, num_tokens: int = 1) -> StyleEncoderOutput:
        """The learned unconditional style: ``num_tokens`` copies of one learned token, all real.

        Every copy is identical, so cross-attention to them gives the same result for any ``num_tokens``; pick
        the S of the conditional batch to concatenate the two for classifier-free guidance.
        """
        if batch_size < 1 or num_tokens < 1:
            raise ValueError(f"batch_size and num_tokens must be >= 1, got {batch_size} and {num_tokens}")
        tokens = self.null_token.expand(batch_size, num_tokens, -1)  # (B, S, C)
        token_mask = torch.ones(batch_size, num_tokens, dtype=torch.bool, device=tokens.device)
        return StyleEncoderOutput(
            style_tokens=tokens, token_mask=token_mask, style_vector=self.pooling(tokens, token_mask)
        )

    @staticmethod
    def num_tokens(num_frames: int) -> int:
        """Tokens for a reference of ``num_frames`` frames: ceil(num_frames / 4)."""
        return -(-num_frames // TIME_REDUCTION)

    def _check_inputs(self, ref_mel: torch.Tensor, ref_mask: torch.Tensor | None) -> torch.Tensor:
        n_mels = self.config.n_mels
        if ref_mel.ndim != 3 or ref_mel.shape[1] != n_mels or ref_mel.shape[2] < 1:
            raise ValueError(f"ref_mel must be (B, {n_mels}, T_ref) with T_ref >= 1, got {tuple(ref_mel.shape)}")
        batch, _, num_frames = ref_mel.shape
        if ref_mask is None:
            return ref_mel.new_ones(batch, 1, num_frames)
        if ref_mask.shape != (batch, 1, num_frames):
            raise ValueError(f"ref_mask must be ({batch}, 1, {num_frames}), got {tuple(ref_mask.shape)}")
        empty = (ref_mask[:, 0] <= 0).all(dim=-1)
        if empty.any():
            raise ValueError(f"ref_mask has no real frame for batch items {empty.nonzero().flatten().tolist()}")
        return ref_mask.to(ref_mel.dtype)
