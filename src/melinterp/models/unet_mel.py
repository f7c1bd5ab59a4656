"""The mel decoder: a diffusers ``UNet2DConditionModel`` over mel-spectrogram images that cross-attends to style tokens.

The sample is an image (B, C_in, n_mels, T): frequency is the height, time the width. Its channels are the noisy
mel ``x_t`` and the prior mean ``mu_y`` (``in_channels=2``; more channels can carry extra conditioning, e.g. a
pitch mask, by raising ``in_channels``). The output is the score (B, out_channels=1, n_mels, T).

Conditioning:

- Style tokens (B, S, C) are ``encoder_hidden_states``: every (mel bin, frame) cell of every level is a query
  that cross-attends to them, which is what lets the pipeline route cells to one reference or another.
- The global style vector (B, style_dim) enters the time embedding as ``class_labels``
  (``class_embed_type="projection"``, ``projection_class_embeddings_input_dim=style_dim``).
- The timestep is the diffusion time scaled as diffusers does: ``t * 1000`` for t in (0, 1].

Memory stays linear in T because the model holds no self-attention: every ``BasicTransformerBlock`` is built with
``only_cross_attention=True`` (its ``attn1`` then also attends to the style tokens, through the U-Net's
``attention_mask``, which this class sets to the token mask), and the mid block is ``"UNetMidBlock2D"`` (a ResNet)
because diffusers' ``UNetMidBlock2DCrossAttn`` always starts with self-attention; the lowest resolution gets its
cross-attention from the ``CrossAttn*Block2D`` of that level instead. The constructor refuses any configuration
with a self-attention layer: over 80 * T cells it would take gigabytes.

Query geometry (for routing maps and attention capture): a level-k feature map (B, C, n_mels / 2^k, T_pad / 2^k)
is flattened by ``Transformer2DModel`` to queries in frequency-major order, query index = f * (T_pad / 2^k) + l,
where T_pad is T rounded up to :attr:`MelUNet2DConditionModel.time_padding_factor`.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel, UNet2DConditionOutput

from melinterp.models.saving import UsualFileModesMixin


class MelUNet2DConditionModel(UsualFileModesMixin, UNet2DConditionModel):
    """``UNet2DConditionModel`` for mel-spectrograms of any length, with style-token cross-attention only.

    It takes exactly ``UNet2DConditionModel``'s configuration (so ``save_pretrained`` / ``from_pretrained`` and
    ``set_attn_processor`` work unchanged) and adds:

    - a check at construction that every attention layer is cross-attention (no self-attention anywhere);
    - :meth:`forward` for mels: pads T to the U-Net's factor and crops back, applies the frame mask to input and
      output, and passes the style-token mask to both attention layers of every transformer block.

    The configurations in ``examples/configs/models/*.json`` (key ``"unet"``) are its constructor arguments; the
    default one, real time on 2 CPU cores::

        MelUNet2DConditionModel(
            in_channels=2, out_channels=1, block_out_channels=(8, 16, 32), layers_per_block=(0, 1, 1),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"),
            mid_block_type="UNetMidBlock2D", only_cross_attention=True, cross_attention_dim=128,
            attention_head_dim=1, norm_num_groups=4, class_embed_type="projection",
            projection_class_embeddings_input_dim=128, time_embedding_dim=128, resnet_time_scale_shift="scale_shift",
        )

    (``attention_head_dim`` is diffusers' historical name for the number of heads.)
    """

    # Same signature as the parent, so diffusers' config machinery (which reads __init__'s signature) sees the
    # parent's arguments; the parent's own @register_to_config records them.
    @functools.wraps(UNet2DConditionModel.__init__)
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._check_cross_attention_only()

    def _check_cross_attention_only(self) -> None:
        self_attention = [
            name for name, module in self.named_modules()
            if isinstance(module, Attention) and not module.is_cross_attention
        ]
        if self_attention:
            raise ValueError(
                "MelUNet2DConditionModel allows cross-attention to style tokens only: self-attention over "
                "n_mels * T cells is quadratic in T. Build with only_cross_attention=True and "
                'mid_block_type="UNetMidBlock2D" (or None); diffusers\' UNetMidBlock2DCrossAttn always '
                f"self-attends. Found {len(self_attention)} self-attention layers, e.g. {self_attention[:3]}"
            )

    @property
    def time_padding_factor(self) -> int:
        """Frames are padded to a multiple of this (2 ** number of downsamplings)."""
        return 2**self.num_upsamplers

    def padded_num_frames(self, num_frames: int) -> int:
        """T rounded up to :attr:`time_padding_factor`: the width of the full-resolution query grid."""
        factor = self.time_padding_factor
        return -(-num_frames // factor) * factor

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ) -> UNet2DConditionOutput | tuple[torch.Tensor]:
        """Predict the score for a batch of noisy mels.

        Args:
            sample: (B, in_channels, n_mels, T) stacked [x_t, mu_y, extra conditioning...]; any T >= 1.
            timestep: diffusion time times 1000, a number or a (B,) tensor.
            encoder_hidden_states: (B, S, C) style tokens, C = ``cross_attention_dim``.
            encoder_attention_mask: (B, S), True/1 on real tokens; padded tokens get no attention.
            class_labels: (B, style_dim) global style vector (required when ``class_embed_type`` is set).
            mask: (B, 1, T), 1 on real frames; padded frames of the input are zeroed (their content cannot leak
                into real frames) and the output is zero there.
            cross_attention_kwargs: passed to every attention processor (routing, capture).
            return_dict: return a ``UNet2DConditionOutput`` rather than a tuple.

        Returns:
            sample: (B, out_channels, n_mels, T), in a ``UNet2DConditionOutput`` (or the tuple ``(sample,)``).
        """
        self._check_inputs(sample, encoder_hidden_states, encoder_attention_mask, mask)
        num_frames = sample.shape[-1]
        if mask is not None:
            sample = sample * mask.to(sample.dtype).unsqueeze(2)  # (B, C_in, n_mels, T)
        padding = self.padded_num_frames(num_frames) - num_frames
        if padding:
            sample = F.pad(sample, (0, padding))  # (B, C_in, n_mels, T_pad)

        # In an only-cross-attention block, attn1 attends to the style tokens too but reads `attention_mask`,
        # while attn2 reads `encoder_attention_mask`: both get the token mask.
        score = super().forward(
            sample,
            timestep,
            encoder_hidden_states,
            class_labels=class_labels,
            attention_mask=encoder_attention_mask,
            encoder_attention_mask=encoder_attention_mask,
            cross_attention_kwargs=cross_attention_kwargs,
            return_dict=False,
        )[0]
        score = score[..., :num_frames]  # (B, out_channels, n_mels, T)
        if mask is not None:
            score = score * mask.to(score.dtype).unsqueeze(2)

        if not return_dict:
            return (score,)
        return UNet2DConditionOutput(sample=score)

    def _check_inputs(self, sample: torch.Tensor, encoder_hidden_states: torch.Tensor,
                      encoder_attention_mask: torch.Tensor | None, mask: torch.Tensor | None) -> None:
        in_channels = self.config.in_channels
        if sample.ndim != 4 or sample.shape[1] != in_channels:
            raise ValueError(
                f"sample must be (B, {in_channels}, n_mels, T) = stacked [x_t, mu_y, ...], got {tuple(sample.shape)}"
            )
        batch, _, n_mels, num_frames = sample.shape
        if n_mels % self.time_padding_factor != 0:
            raise ValueError(
                f"n_mels ({n_mels}) must be divisible by 2 ** (number of down blocks - 1) = "
                f"{self.time_padding_factor}, so that every level has whole mel bins"
            )
        cross_attention_dim = self.config.cross_attention_dim
        if encoder_hidden_states.ndim != 3 or encoder_hidden_states.shape[0] != batch:
            raise ValueError(
                f"encoder_hidden_states must be style tokens ({batch}, S, {cross_attention_dim}), "
                f"got {tuple(encoder_hidden_states.shape)}"
            )
        num_tokens = encoder_hidden_states.shape[1]
        if encoder_attention_mask is not None and encoder_attention_mask.shape != (batch, num_tokens):
            raise ValueError(
                f"encoder_attention_mask must be ({batch}, {num_tokens}) like the style tokens, "
                f"got {tuple(encoder_attention_mask.shape)}"
            )
        if mask is not None and mask.shape != (batch, 1, num_frames):
            raise ValueError(f"mask must be ({batch}, 1, {num_frames}), got {tuple(mask.shape)}")
