"""Grad-TTS text encoder: phoneme ids -> prior mean ``mu_x`` in mel space and log-durations, given a style vector.

Follows Popov et al. (2021), "Grad-TTS", whose encoder is the Glow-TTS one: a convolutional pre-net, a
transformer encoder with windowed relative-position self-attention (window 4) and convolutional feed-forward
layers, post-LayerNorm over channels, a 1x1 projection to ``n_mels`` and a duration predictor on detached
features. Multi-speaker Grad-TTS feeds the speaker embedding into the encoder; here the global style vector of
the reference recording plays that role (projected to the hidden width and added after the pre-net), so both
``mu_x`` and the durations depend on the voice. The duration predictor also gets its own projection of the style
vector, not detached, so the duration loss can teach the style encoder the speaking rate.

**Pitch is a condition of its own** (``pitch_dim > 0``): `melinterp.audio.pitch_features` of a voice (median
log-f0 and its spread, in octaves) is projected and added beside the style vector. Trained with style references
of the same voice at *other* pitches, the model learns to take the pitch from this condition and the timbre from
the reference, and the prior mean ``mu_x`` -- which is what sets the pitch of the output -- can then be asked for
one voice's timbre at another's pitch.

Every layer multiplies by ``x_mask`` before mixing positions (convolutions) and attention ignores padded keys,
so padded phoneme ids never change the outputs on real phonemes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from melinterp.models.saving import UsualFileModesMixin

from .length_regulator import sequence_mask


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a (B, C, L) sequence, independently at every position."""

    def __init__(self, channels: int, eps: float = 1e-4):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, 2), (x.shape[1],), self.weight, self.bias, self.eps)
        return x.transpose(1, 2)  # (B, C, L)


class ConvReluNormPrenet(nn.Module):
    """Residual stack of (conv -> LayerNorm -> ReLU -> dropout); the last projection starts at zero (identity)."""

    def __init__(self, channels: int, kernel_size: int = 5, n_layers: int = 3, p_dropout: float = 0.5):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2) for _ in range(n_layers)
        )
        self.norms = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))
        self.dropout = nn.Dropout(p_dropout)
        self.proj = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        residual = x
        for conv, norm in zip(self.convs, self.norms):
            x = self.dropout(F.relu(norm(conv(x * x_mask))))
        return (residual + self.proj(x)) * x_mask  # (B, C, L)


class RelativePositionMultiHeadAttention(nn.Module):
    """Multi-head self-attention with learned relative-position embeddings for keys and values.

    Offsets ``j - i`` within ``[-window_size, window_size]`` get an embedding (shared across heads, as in
    Grad-TTS); offsets outside the window get none. The embeddings are gathered with a one-hot (L, L, 2w+1)
    offset table, which reads more plainly than the pad-and-reshape trick and costs the same order of memory as
    the (L, L) attention scores.
    """

    def __init__(self, channels: int, n_heads: int, window_size: int = 4, p_dropout: float = 0.0):
        super().__init__()
        if channels % n_heads != 0:
            raise ValueError(f"hidden_channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        self.dropout = nn.Dropout(p_dropout)
        std = self.head_dim**-0.5
        self.emb_rel_k = nn.Parameter(torch.randn(2 * window_size + 1, self.head_dim) * std)
        self.emb_rel_v = nn.Parameter(torch.randn(2 * window_size + 1, self.head_dim) * std)
        for conv in (self.conv_q, self.conv_k, self.conv_v):
            nn.init.xavier_uniform_(conv.weight)

    def _offset_one_hot(self, length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(L, L, 2w+1): entry [i, j, r] is 1 when key j sits at offset r - w from query i, within the window."""
        positions = torch.arange(length, device=device)
        offsets = positions.unsqueeze(0) - positions.unsqueeze(1)  # (L, L), key - query
        in_window = offsets.abs() <= self.window_size
        one_hot = F.one_hot(offsets.clamp(-self.window_size, self.window_size) + self.window_size,
                            2 * self.window_size + 1)
        return (one_hot * in_window.unsqueeze(-1)).to(dtype)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """x: (B, C, L); attn_mask: (B, 1, L, L) with 1 where query i may attend to key j."""
        batch, channels, length = x.shape

        def split_heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, self.n_heads, self.head_dim, length).transpose(2, 3)  # (B, H, L, D)

        query, key, value = split_heads(self.conv_q(x)), split_heads(self.conv_k(x)), split_heads(self.conv_v(x))
        one_hot = self._offset_one_hot(length, x.device, x.dtype)  # (L, L, R)

        scores = query @ key.transpose(-2, -1)  # (B, H, L, L)
        query_rel = query @ self.emb_rel_k.t()  # (B, H, L, R)
        scores = scores + torch.einsum("bhir,ijr->bhij", query_rel, one_hot)
        scores = scores / math.sqrt(self.head_dim)
        scores = scores.masked_fill(attn_mask == 0, -1e4)
        weights = self.dropout(torch.softmax(scores, dim=-1))  # (B, H, L, L)

        output = weights @ value  # (B, H, L, D)
        weights_rel = torch.einsum("bhij,ijr->bhir", weights, one_hot)  # (B, H, L, R)
        output = output + weights_rel @ self.emb_rel_v
        output = output.transpose(2, 3).reshape(batch, channels, length)
        return self.conv_o(output)  # (B, C, L)


class ConvFeedForward(nn.Module):
    """conv -> ReLU -> dropout -> conv, masked before each convolution."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int, p_dropout: float = 0.0):
        super().__init__()
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size, padding=kernel_size // 2)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size, padding=kernel_size // 2)
        self.dropout = nn.Dropout(p_dropout)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = self.dropout(F.relu(self.conv_1(x * x_mask)))
        return self.conv_2(x * x_mask) * x_mask  # (B, C, L)


class RelativePositionTransformer(nn.Module):
    """Post-norm transformer encoder: x = LN(x + attn(x)); x = LN(x + ffn(x)), masked throughout."""

    def __init__(self, channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int,
                 p_dropout: float, window_size: int):
        super().__init__()
        self.attentions = nn.ModuleList(
            RelativePositionMultiHeadAttention(channels, n_heads, window_size, p_dropout) for _ in range(n_layers)
        )
        self.norms_1 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))
        self.feed_forwards = nn.ModuleList(
            ConvFeedForward(channels, filter_channels, kernel_size, p_dropout) for _ in range(n_layers)
        )
        self.norms_2 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))
        self.dropout = nn.Dropout(p_dropout)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)  # (B, 1, L, L)
        for attention, norm_1, feed_forward, norm_2 in zip(
            self.attentions, self.norms_1, self.feed_forwards, self.norms_2
        ):
            x = x * x_mask
            x = norm_1(x + self.dropout(attention(x, attn_mask)))
            x = norm_2(x + self.dropout(feed_forward(x, x_mask)))
        return x * x_mask  # (B, C, L)


class DurationPredictor(nn.Module):
    """Two (conv -> ReLU -> LayerNorm -> dropout) layers and a 1x1 projection to one log-duration per phoneme."""

    def __init__(self, in_channels: int, filter_channels: int, kernel_size: int, p_dropout: float):
        super().__init__()
        self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size, padding=kernel_size // 2)
        self.norm_1 = ChannelLayerNorm(filter_channels)
        self.conv_2 = nn.Conv1d(filter_channels, filter_channels, kernel_size, padding=kernel_size // 2)
        self.norm_2 = ChannelLayerNorm(filter_channels)
        self.proj = nn.Conv1d(filter_channels, 1, 1)
        self.dropout = nn.Dropout(p_dropout)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.norm_1(F.relu(self.conv_1(x * x_mask))))
        x = self.dropout(self.norm_2(F.relu(self.conv_2(x * x_mask))))
        return self.proj(x * x_mask) * x_mask  # (B, 1, L)


class TextEncoder(UsualFileModesMixin, ModelMixin, ConfigMixin):
    """Phoneme ids + global style vector -> prior mean ``mu_x`` (B, n_mels, L) and ``log_durations`` (B, 1, L).

    Args:
        n_vocab: number of phoneme ids (embedding rows).
        n_mels: mel bins of ``mu_x`` (the decoder's frequency axis).
        hidden_channels: width of the pre-net and transformer.
        filter_channels: inner width of the transformer's convolutional feed-forward layers.
        n_heads: attention heads (``hidden_channels`` must divide by it).
        n_layers: transformer layers.
        kernel_size: feed-forward convolution kernel, in phonemes.
        p_dropout: dropout in the transformer.
        window_size: relative-position window (phonemes each side).
        style_dim: size of the global style vector (the StyleEncoder's ``style_vector``).
        duration_predictor_channels: width of the duration predictor.
        duration_predictor_kernel_size: its convolution kernel.
        prenet_kernel_size, prenet_layers, prenet_dropout: the convolutional pre-net.
        pitch_dim: size of the pitch condition (`melinterp.audio.PITCH_FEATURES`), 0 for none.
    """

    @register_to_config
    def __init__(
        self,
        n_vocab: int = 128,
        n_mels: int = 80,
        hidden_channels: int = 192,
        filter_channels: int = 768,
        n_heads: int = 2,
        n_layers: int = 6,
        kernel_size: int = 3,
        p_dropout: float = 0.1,
        window_size: int = 4,
        style_dim: int = 128,
        duration_predictor_channels: int = 256,
        duration_predictor_kernel_size: int = 3,
        prenet_kernel_size: int = 5,
        prenet_layers: int = 3,
        prenet_dropout: float = 0.5,
        pitch_dim: int = 0,
    ):
        super().__init__()
        self.embedding = nn.Embedding(n_vocab, hidden_channels)
        nn.init.normal_(self.embedding.weight, 0.0, hidden_channels**-0.5)
        self.prenet = ConvReluNormPrenet(hidden_channels, prenet_kernel_size, prenet_layers, prenet_dropout)
        self.style_proj = nn.Linear(style_dim, hidden_channels)
        self.pitch_proj = nn.Linear(pitch_dim, hidden_channels) if pitch_dim else None
        self.encoder = RelativePositionTransformer(
            hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout, window_size
        )
        self.proj_mu = nn.Conv1d(hidden_channels, n_mels, 1)
        self.duration_style_proj = nn.Linear(style_dim, hidden_channels)
        self.duration_predictor = DurationPredictor(
            hidden_channels, duration_predictor_channels, duration_predictor_kernel_size, p_dropout
        )

    def forward(
        self, phoneme_ids: torch.Tensor, phoneme_lengths: torch.Tensor, style_vector: torch.Tensor,
        pitch: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode a batch of phoneme sequences.

        Args:
            phoneme_ids: (B, L) long ids in ``[0, n_vocab)``; values past each length are ignored.
            phoneme_lengths: (B,) number of real phonemes per item (1..L).
            style_vector: (B, style_dim) global style of the reference voice.
            pitch: (B, pitch_dim) pitch condition (`melinterp.audio.pitch_features`); required when
                ``pitch_dim > 0``, refused otherwise.

        Returns:
            mu_x: (B, n_mels, L) prior mean per phoneme (zero on padding).
            log_durations: (B, 1, L) predicted log frames per phoneme (zero on padding); the predictor sees
                detached text features (its loss does not train the text encoder, as in Grad-TTS) plus the style
                vector (its loss does reach the style encoder).
            x_mask: (B, 1, L) float, 1 on real phonemes.
        """
        self._check_inputs(phoneme_ids, phoneme_lengths, style_vector, pitch)
        length = phoneme_ids.shape[1]
        hidden_channels = self.config.hidden_channels
        x_mask = sequence_mask(phoneme_lengths, length).unsqueeze(1).to(self.embedding.weight.dtype)  # (B, 1, L)

        x = self.embedding(phoneme_ids) * math.sqrt(hidden_channels)  # (B, L, C)
        x = x.transpose(1, 2) * x_mask  # (B, C, L)
        x = self.prenet(x, x_mask)
        condition = self.style_proj(style_vector).unsqueeze(-1)  # (B, C, 1)
        if self.pitch_proj is not None:
            condition = condition + self.pitch_proj(pitch).unsqueeze(-1)
        x = (x + condition) * x_mask
        x = self.encoder(x, x_mask)  # (B, C, L)

        mu_x = self.proj_mu(x) * x_mask  # (B, n_mels, L)
        # Grad-TTS: the duration loss must not shape the text features, but it may shape the style (speaking rate)
        duration_input = (x.detach() + self.duration_style_proj(style_vector).unsqueeze(-1)) * x_mask
        log_durations = self.duration_predictor(duration_input, x_mask)  # (B, 1, L)
        return mu_x, log_durations, x_mask

    def _check_inputs(self, phoneme_ids: torch.Tensor, phoneme_lengths: torch.Tensor,
                      style_vector: torch.Tensor, pitch: torch.Tensor | None) -> None:
        if phoneme_ids.ndim != 2:
            raise ValueError(f"phoneme_ids must be (B, L), got shape {tuple(phoneme_ids.shape)}")
        if phoneme_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"phoneme_ids must be integer ids, got dtype {phoneme_ids.dtype}")
        batch, length = phoneme_ids.shape
        if phoneme_lengths.shape != (batch,):
            raise ValueError(f"phoneme_lengths must be ({batch},), got shape {tuple(phoneme_lengths.shape)}")
        if phoneme_lengths.min() < 1 or phoneme_lengths.max() > length:
            raise ValueError(f"phoneme_lengths must lie in [1, {length}], got {phoneme_lengths.tolist()}")
        n_vocab = self.config.n_vocab
        if phoneme_ids.min() < 0 or phoneme_ids.max() >= n_vocab:
            raise ValueError(
                f"phoneme ids must lie in [0, {n_vocab}), got min {int(phoneme_ids.min())} "
                f"and max {int(phoneme_ids.max())}"
            )
        _check_condition("style_vector", style_vector, batch, self.config.style_dim)
        pitch_dim = self.config.pitch_dim
        if pitch_dim and pitch is None:
            raise ValueError(f"this text encoder is conditioned on pitch: pass pitch ({batch}, {pitch_dim}) "
                             f"(melinterp.audio.pitch_features of the voice)")
        if not pitch_dim and pitch is not None:
            raise ValueError("this text encoder has no pitch condition (pitch_dim 0): leave pitch out")
        if pitch is not None:
            _check_condition("pitch", pitch, batch, pitch_dim)


def _check_condition(name: str, value: torch.Tensor, batch: int, dim: int) -> None:
    if tuple(value.shape) != (batch, dim):
        raise ValueError(f"{name} must be ({batch}, {dim}), got shape {tuple(value.shape)}")
