"""Attention processors for the mel U-Net: per-cell routing between two references, and attention capture.

Every (mel bin, frame) cell of the U-Net is a query. With the style tokens of two references concatenated on the
token axis, keys = [ref1 tokens ; ref2 tokens], a **routing map** R (B, n_mels, T) in [0, 1] says how much each
cell should listen to ref1 (1 -> ref1 only, 0 -> ref2 only). `MelAttnProcessor` turns R into an additive
log-weight bias on the cross-attention logits,

    logits[q, k] += strength * log(R_q)        for k in ref1's block (k < S1)
    logits[q, k] += strength * log(1 - R_q)    for k in ref2's block,

so that, before normalisation, ref1's weights are multiplied by R_q and ref2's by 1 - R_q (R_q = 0.5 changes
nothing). It can also record, on the layers an `AttentionStore` asks for, the per-query **ref1 mass** (sum of
attention probabilities over ref1's key block), keeping the autograd graph for noise tuning.

Neither needs an (N, S) tensor. The bias is a sum of products of a query term and a key term,

    bias[q, k] = sum_c a[q, c] b[k, c],   a = strength * [log R_q, log(1 - R_q), 1],   b = [k < S1, k >= S1, m_k]

(m_k: the key-padding bias, 0 or -10000), so it rides in extra dot-product dimensions: queries become
[q, a / scale], keys [k, b], and one fused `scaled_dot_product_attention` call with `scale = d^-1/2` computes
softmax(q k^T / sqrt(d) + bias) exactly. The ref1 mass is the attention-weighted mean of the indicator k < S1, so
it rides in an extra value dimension. Head dimensions are padded with zeros to a multiple of 8, which the fused
kernels want. No attention probabilities are ever materialised.

Geometry (verified against diffusers' `Transformer2DModel`, which flattens a (B, C, H, W) feature map with
`permute(0, 2, 3, 1).reshape(B, H * W, C)`): the query index is `h * W + w`, i.e. frequency-major, with
H = mel bins (image height) and W = frames (image width). At U-Net level k the grid is
(ceil(n_mels / 2^k), ceil(T / 2^k)) because diffusers' `Downsample2D` is a stride-2 conv with padding 1.

Masks (verified in diffusers 0.42): `UNet2DConditionModel` turns `encoder_attention_mask` (B, S) (1 = keep) into a
bias (B, 1, S) with 0 = keep and -10000 = discard, which reaches `attn2` as `attention_mask`. With
`only_cross_attention=True`, `attn1` also attends to the style tokens but receives the *self*-attention mask.
`MelUNet2DConditionModel` passes the token mask there too, so nothing more is needed with it; with a stock
`UNet2DConditionModel`, pass the same keep-mask as `key_padding_mask` in `cross_attention_kwargs` and the processor
applies it on every cross-attention layer. On a self-attention layer (a stock U-Net's mid block) the processor is
diffusers' `AttnProcessor2_0`, unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

# diffusers' own value for a discarded key (finite, so a fully masked block cannot produce NaN).
KEY_PADDING_BIAS = -10000.0


# ----------------------------------------------------------------------------------------------------------------
# Geometry: which grid a layer's queries live on, and a routing map resized onto it in diffusers' query order.
# ----------------------------------------------------------------------------------------------------------------


def query_grid(num_queries: int, sample_size: tuple[int, int]) -> tuple[int, int]:
    """The (F, L) grid of a U-Net level whose attention layer sees `num_queries` queries.

    Args:
        num_queries: N, the number of queries of the layer (F * L).
        sample_size: (n_mels, T) of the U-Net input (the full-resolution image, after any padding of T).

    Returns:
        (F, L) = (ceil(n_mels / 2^k), ceil(T / 2^k)) for the level k with F * L == N.
    """
    n_mels, num_frames = (int(s) for s in sample_size)
    height, width, level = n_mels, num_frames, 0
    while True:
        if height * width == num_queries:
            return height, width
        if height * width < num_queries or (height == 1 and width == 1):
            break
        height, width, level = -(-height // 2), -(-width // 2), level + 1
    raise ValueError(
        f"An attention layer has {num_queries} queries, but no U-Net level of a ({n_mels}, {num_frames}) input has "
        f"that many cells (expected ceil({n_mels}/2^k) * ceil({num_frames}/2^k) for some k). The routing map / "
        f"store.sample_size must have the size of the image the U-Net attends over: if the U-Net pads T up to a "
        f"multiple of its downsampling factor, pad the routing map the same way, e.g. "
        f"F.pad(routing_map, (0, pad), mode='replicate')."
    )


def resize_routing_map(routing_map: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Area-average a routing map onto an (height, width) grid and flatten it in diffusers' query order.

    Args:
        routing_map: (B, n_mels, T) weight of ref1 per mel cell, in [0, 1].
        height: F, number of frequency rows of the level.
        width: L, number of time columns of the level.

    Returns:
        (B, height * width); entry h * width + w is the average of R over the cells that cell (h, w) covers.
    """
    if routing_map.ndim != 3:
        raise ValueError(f"routing_map must be (B, n_mels, T), got shape {tuple(routing_map.shape)}")
    n_mels, num_frames = routing_map.shape[-2:]
    if (height, width) == (n_mels, num_frames):
        pooled = routing_map
    elif n_mels % height == 0 and num_frames % width == 0:
        # exact area pooling when the level divides the input, as with a padded T
        kernel = (n_mels // height, num_frames // width)
        pooled = F.avg_pool2d(routing_map.unsqueeze(1), kernel_size=kernel, stride=kernel).squeeze(1)
    else:
        pooled = F.adaptive_avg_pool2d(routing_map.unsqueeze(1), (height, width)).squeeze(1)
    return pooled.reshape(routing_map.shape[0], height * width)  # (B, F*L), index h * L + w


# ----------------------------------------------------------------------------------------------------------------
# Routing maps
# ----------------------------------------------------------------------------------------------------------------


def temporal_routing_map(
    num_frames: int,
    boundary: float,
    crossfade: float = 0.0,
    n_mels: int = 80,
    batch_size: int = 1,
) -> torch.Tensor:
    """A routing map that listens to ref1 before `boundary` and to ref2 after it.

    Args:
        num_frames: T, frames of the generated mel.
        boundary: boundary frame (may be fractional); with no crossfade frames t < boundary get R = 1.
        crossfade: width of the raised-cosine ramp centred on the boundary, in frames (0 = hard switch).
        n_mels: number of mel bins (the map is the same in every bin).
        batch_size: B.

    Returns:
        (B, n_mels, T) in [0, 1].
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if crossfade < 0:
        raise ValueError(f"crossfade must be >= 0 frames, got {crossfade}")
    frames = torch.arange(num_frames, dtype=torch.float32)
    if crossfade == 0:
        ramp = (frames < boundary).float()
    else:
        progress = ((frames - (boundary - crossfade / 2)) / crossfade).clamp(0.0, 1.0)
        ramp = 0.5 * (1.0 + torch.cos(math.pi * progress))  # 1 -> 0, smooth at both ends
    return ramp.expand(batch_size, n_mels, num_frames).clone()


def frequency_routing_map(pitch_mask: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
    """A routing map that sends pitch cells to ref1 and all other cells to ref2.

    Args:
        pitch_mask: in [0, 1]; (n_mels,) or (B, n_mels) for a band fixed over time, or (B, n_mels, T) per frame.
        num_frames: T; required unless `pitch_mask` is already (B, n_mels, T).

    Returns:
        (B, n_mels, T) in [0, 1]: R = pitch_mask.
    """
    if pitch_mask.ndim == 1:
        pitch_mask = pitch_mask.unsqueeze(0)
    if pitch_mask.ndim == 2:
        if num_frames is None:
            raise ValueError("a (B, n_mels) pitch band needs num_frames to become a (B, n_mels, T) routing map")
        pitch_mask = pitch_mask.unsqueeze(-1).expand(-1, -1, num_frames)
    if pitch_mask.ndim != 3:
        raise ValueError(f"pitch_mask must be (n_mels,), (B, n_mels) or (B, n_mels, T), got {tuple(pitch_mask.shape)}")
    if num_frames is not None and pitch_mask.shape[-1] != num_frames:
        raise ValueError(f"pitch_mask has {pitch_mask.shape[-1]} frames but num_frames={num_frames}")
    if pitch_mask.numel() and (pitch_mask.min() < 0 or pitch_mask.max() > 1):
        raise ValueError(
            f"pitch_mask must lie in [0, 1], got values in [{pitch_mask.min():.3g}, {pitch_mask.max():.3g}]"
        )
    return pitch_mask.float().clone()


@dataclass
class RoutingSpec:
    """Which reference each mel cell listens to, passed as `cross_attention_kwargs={"routing": spec}`.

    Args:
        routing_map: (B or 1, n_mels, T) weight of ref1 per cell in [0, 1] (1 = ref1 only, 0 = ref2 only), at the
            size of the image the U-Net attends over.
        num_ref1_tokens: S1; keys are [ref1 tokens ; ref2 tokens], so key index < S1 belongs to ref1.
        eps: R and 1 - R are clamped to [eps, 1] before the log, so the bias is at most strength * log(eps).
        strength: multiplies the bias (1 = plain log-weights; larger = harder routing).
    """

    routing_map: torch.Tensor
    num_ref1_tokens: int
    eps: float = 1e-4
    strength: float = 1.0
    # per-query log-weights of every U-Net level, (height, width) -> (B, N, 2), made once: the map is fixed for a
    # sampling run, so no step resizes it or takes logs again (and a compiled U-Net sees a table that never changes)
    _log_weights: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.routing_map, torch.Tensor) or self.routing_map.ndim != 3:
            is_tensor = isinstance(self.routing_map, torch.Tensor)
            got = tuple(self.routing_map.shape) if is_tensor else type(self.routing_map).__name__
            raise ValueError(f"routing_map must be a (B, n_mels, T) tensor, got {got}")
        if self.routing_map.numel() and (self.routing_map.min() < 0 or self.routing_map.max() > 1):
            raise ValueError(
                f"routing_map must lie in [0, 1] (weight of ref1), got values in "
                f"[{self.routing_map.min():.3g}, {self.routing_map.max():.3g}]"
            )
        if int(self.num_ref1_tokens) < 1:
            raise ValueError(f"num_ref1_tokens must be >= 1, got {self.num_ref1_tokens}")
        if not 0 < self.eps < 0.5:
            raise ValueError(f"eps must be in (0, 0.5), got {self.eps}")
        height, width = self.sample_size
        while True:  # every grid query_grid can name: (ceil(n_mels / 2^k), ceil(T / 2^k))
            self._log_weights[(height, width)] = self._resized_log_weights(height, width)
            if height == 1 and width == 1:
                break
            height, width = -(-height // 2), -(-width // 2)

    @property
    def sample_size(self) -> tuple[int, int]:
        """(n_mels, T) of the full-resolution image."""
        return tuple(self.routing_map.shape[-2:])

    def _resized_log_weights(self, height: int, width: int) -> torch.Tensor:
        weight_ref1 = resize_routing_map(self.routing_map.float(), height, width)  # (B, N)
        log_weights = torch.stack(
            [weight_ref1.clamp(self.eps, 1.0).log(), (1.0 - weight_ref1).clamp(self.eps, 1.0).log()], dim=-1
        )
        return self.strength * log_weights  # (B, N, 2)

    def query_log_weights(self, num_queries: int, batch_size: int) -> torch.Tensor:
        """strength * [log R_q, log(1 - R_q)] for every query of a layer: the query side of the bias.

        Returns:
            (B or 1, N, 2), float32.
        """
        if self.routing_map.shape[0] not in (1, batch_size):
            raise ValueError(
                f"routing_map has batch {self.routing_map.shape[0]} but the U-Net batch is {batch_size}; "
                f"give one map per sample or a single map (batch 1) for all"
            )
        return self._log_weights[query_grid(num_queries, self.sample_size)]

    def key_blocks(self, num_keys: int) -> torch.Tensor:
        """One-hot block of every key, [k < S1, k >= S1]: the key side of the bias.

        Returns:
            (S, 2), float32, on the routing map's device.
        """
        if self.num_ref1_tokens >= num_keys:
            raise ValueError(
                f"routing needs keys = [ref1 tokens ; ref2 tokens], but the layer has {num_keys} keys and "
                f"num_ref1_tokens={self.num_ref1_tokens}: concatenate both references' tokens on the token axis"
            )
        is_ref1 = torch.arange(num_keys, device=self.routing_map.device) < self.num_ref1_tokens
        return torch.stack([is_ref1, ~is_ref1], dim=-1).float()  # (S, 2)


# ----------------------------------------------------------------------------------------------------------------
# Capture
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class AttentionRecord:
    """One recorded cross-attention call.

    Attributes:
        layer: the attention module's name in the U-Net, e.g. "down_blocks.1.attentions.0.transformer_blocks.0.attn2".
        ref1_mass: (B, F, L) attention probability mass on ref1's key block, averaged over heads.
    """

    layer: str
    ref1_mass: torch.Tensor


@dataclass
class AttentionStore:
    """Records the ref1 mass of cross-attention layers; passed as `cross_attention_kwargs={"capture": store}`.

    Args:
        num_ref1_tokens: S1; keys are [ref1 tokens ; ref2 tokens], so key index < S1 belongs to ref1.
        sample_size: (n_mels, T) of the image the U-Net attends over (T after its padding): each layer's queries lie
            on a grid of it, and `ref1_mass` resizes every record back to it.
        layers: layer names or dotted prefixes to record ("down_blocks.1", "up_blocks.2.attentions.0"); None = all
            cross-attention layers. Names are those given by `install_processors`.
        detach: store detached tensors (inference only); False keeps the graph for gradients (noise tuning).
    """

    num_ref1_tokens: int
    sample_size: tuple[int, int]
    layers: Iterable[str] | None = None
    detach: bool = False
    records: list[AttentionRecord] = field(default_factory=list, repr=False)

    def __post_init__(self):
        if self.layers is not None:
            self.layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)

    def should_record(self, layer: str) -> bool:
        """Whether a cross-attention call of `layer` is recorded."""
        return self.layers is None or any(layer == p or layer.startswith(p + ".") for p in self.layers)

    def record(self, layer: str, ref1_mass: torch.Tensor) -> None:
        self.records.append(AttentionRecord(layer, ref1_mass.detach() if self.detach else ref1_mass))

    def ref1_mass(self) -> torch.Tensor:
        """The mass each cell of the image gives to ref1, averaged over the recorded layers, heads and calls, the
        coarse levels upsampled bilinearly.

        Returns:
            (B, n_mels, T) of `sample_size`, in [0, 1]; differentiable unless `detach=True`.
        """
        if not self.records:
            raise ValueError(
                f"nothing recorded for layers={self.layers}: check that MelAttnProcessor is installed "
                f"(install_processors) and that the store was passed as cross_attention_kwargs={{'capture': store}}"
            )
        resized = [
            F.interpolate(r.ref1_mass.unsqueeze(1).float(), size=tuple(self.sample_size), mode="bilinear",
                          align_corners=False).squeeze(1)
            for r in self.records
        ]
        return torch.stack(resized).mean(0)  # (B, n_mels, T)


# ----------------------------------------------------------------------------------------------------------------
# The processor
# ----------------------------------------------------------------------------------------------------------------


class MelAttnProcessor(AttnProcessor2_0):
    """`AttnProcessor2_0` plus routing, key padding and capture on cross-attention layers.

    With `routing=None, capture=None` it computes exactly what `AttnProcessor2_0` does (scaled-dot-product
    attention). Routing, key padding and capture run in the same fused call (`folded_attention`) on the
    cross-attention layers of diffusers' transformer blocks (``attn2``, and ``attn1`` under
    ``only_cross_attention``), whose queries come as (B, N, C) with no group norm and no residual inside the layer.
    A self-attention layer (none in `MelUNet2DConditionModel`; a stock U-Net's mid block) is left to
    `AttnProcessor2_0` itself: routing and capture concern the style tokens only.

    Args:
        name: the attention module's name in the U-Net (set by `install_processors`), used by `AttentionStore`.
    """

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(name={self.name!r})"

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        routing: RoutingSpec | None = None,
        capture: AttentionStore | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            hidden_states: (B, N, C) queries, N = F * L, index h * L + w.
            encoder_hidden_states: (B, S, C_tokens) style tokens; None on a self-attention layer.
            attention_mask: diffusers' additive bias, (B, 1, S) (0 keep, -10000 discard).
            temb: the time embedding diffusers hands a self-attention layer with a spatial norm.
            routing: per-cell routing between [ref1 ; ref2] tokens.
            capture: store recording the ref1 mass (where it asks).
            key_padding_mask: (B, S) 1/True = keep, applied on every cross-attention layer (also `attn1` under
                `only_cross_attention`, which diffusers gives no key mask).

        Returns:
            (B, N, C) attention output.
        """
        if encoder_hidden_states is None:
            return super().__call__(attn, hidden_states, attention_mask=attention_mask, temb=temb)
        batch_size, num_queries, _ = hidden_states.shape
        num_keys = encoder_hidden_states.shape[1]
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, num_keys, batch_size)
            # (B, heads, 1, S) as scaled_dot_product_attention expects
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])

        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)

        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # (B, heads, N, d)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # (B, heads, S, d)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # (B, heads, S, d)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        recording = capture is not None and capture.should_record(self.name)
        if recording and routing is not None and routing.num_ref1_tokens != capture.num_ref1_tokens:
            raise ValueError(f"store.num_ref1_tokens={capture.num_ref1_tokens} disagrees with "
                             f"routing.num_ref1_tokens={routing.num_ref1_tokens}")
        hidden_states, ref1_mass = folded_attention(
            query, key, value, key_bias=_key_bias(attention_mask, key_padding_mask, batch_size, num_keys, query.dtype),
            query_log_weights=None if routing is None else routing.query_log_weights(num_queries, batch_size),
            key_blocks=None if routing is None else routing.key_blocks(num_keys),
            num_ref1_tokens=capture.num_ref1_tokens if recording else None,
        )  # (B, heads, N, d), (B, heads, N)
        if recording:
            grid = query_grid(num_queries, capture.sample_size)
            capture.record(self.name, ref1_mass.float().mean(1).reshape(batch_size, *grid))  # (B, F, L)

        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)  # linear proj
        return attn.to_out[1](hidden_states)  # dropout


def _key_bias(attention_mask, key_padding_mask, batch_size: int, num_keys: int, dtype) -> torch.Tensor | None:
    """diffusers' key mask (B, heads, 1 or N, S) plus our key-padding mask (B, S), as one additive bias or None."""
    bias = attention_mask
    if key_padding_mask is not None:
        if key_padding_mask.shape != (batch_size, num_keys):
            raise ValueError(
                f"key_padding_mask must be (B, S) = ({batch_size}, {num_keys}) with 1 = keep, "
                f"got {tuple(key_padding_mask.shape)}"
            )
        padding_bias = (1.0 - key_padding_mask.to(dtype)) * KEY_PADDING_BIAS
        padding_bias = padding_bias[:, None, None, :]  # (B, 1, 1, S)
        bias = padding_bias if bias is None else bias + padding_bias
    return bias


def folded_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_bias: torch.Tensor | None = None,
    query_log_weights: torch.Tensor | None = None,
    key_blocks: torch.Tensor | None = None,
    num_ref1_tokens: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softmax(q k^T / sqrt(d) + bias) v in one fused SDPA call, the bias riding in extra head dimensions.

    bias[q, k] = query_log_weights[q] . key_blocks[k] + key_bias[k]; queries get [q, log-weights / scale, 1 / scale],
    keys [k, blocks, key_bias], and SDPA runs with scale = d^-1/2, so scale * (q' . k') is exactly the biased logit.
    With `num_ref1_tokens`, values get the indicator k < S1 as an extra dimension, whose output is the ref1 mass.

    Args:
        query: (B, heads, N, d); key, value: (B, heads, S, d).
        key_bias: (B, heads or 1, 1, S) additive bias per key (0 keep, -10000 discard), or None.
        query_log_weights: (B or 1, N, 2) routing log-weights of ref1's and ref2's block per query, or None.
        key_blocks: (S, 2) one-hot block of each key (with `query_log_weights`).
        num_ref1_tokens: S1, to return the ref1 mass too.

    Returns:
        (B, heads, N, d) attention output, and the (B, heads, N) ref1 mass (None without `num_ref1_tokens`).
    """
    batch_size, heads, num_queries, head_dim = query.shape
    num_keys = key.shape[2]
    if query_log_weights is None and key_bias is None and num_ref1_tokens is None:
        return F.scaled_dot_product_attention(query, key, value), None
    scale = head_dim**-0.5
    query_terms, key_terms, value_terms = [query], [key], [value]
    if query_log_weights is not None:
        query_terms.append(query_log_weights.to(query.dtype).unsqueeze(1).expand(batch_size, heads, -1, -1) / scale)
        key_terms.append(key_blocks.to(key.dtype).expand(batch_size, heads, -1, -1))
    if key_bias is not None:
        query_terms.append(query.new_full((1, 1, 1, 1), 1 / scale).expand(batch_size, heads, num_queries, 1))
        key_terms.append(key_bias.to(key.dtype).transpose(-1, -2).expand(batch_size, heads, num_keys, 1))
    if num_ref1_tokens is not None:
        is_ref1 = torch.arange(num_keys, device=value.device) < num_ref1_tokens
        value_terms.append(is_ref1.to(value.dtype).view(1, 1, num_keys, 1).expand(batch_size, heads, -1, -1))
    extra = max(sum(t.shape[-1] for t in terms[1:]) for terms in (query_terms, key_terms, value_terms))
    width = -(-(head_dim + extra) // 8) * 8  # fused kernels want a multiple of 8
    query, key, value = (_cat_padded(terms, width) for terms in (query_terms, key_terms, value_terms))
    output = F.scaled_dot_product_attention(query, key, value, scale=scale)  # (B, heads, N, width)
    ref1_mass = output[..., head_dim] if num_ref1_tokens is not None else None
    return output[..., :head_dim], ref1_mass


def _cat_padded(terms: list[torch.Tensor], width: int) -> torch.Tensor:
    """Concatenate on the last axis and pad with zeros to `width` (zero dimensions add nothing to a dot product)."""
    padding = width - sum(t.shape[-1] for t in terms)
    if padding:
        terms = terms + [terms[0].new_zeros(*terms[0].shape[:-1], padding)]
    return torch.cat(terms, dim=-1)


def install_processors(unet: torch.nn.Module) -> dict[str, MelAttnProcessor]:
    """Put a named `MelAttnProcessor` on every attention layer of `unet`.

    Returns:
        {layer name: processor}, names like "down_blocks.1.attentions.0.transformer_blocks.0.attn2".
    """
    processors = {key.removesuffix(".processor"): MelAttnProcessor(name=key.removesuffix(".processor"))
                  for key in unet.attn_processors}
    unet.set_attn_processor({f"{name}.processor": p for name, p in processors.items()})
    return processors
