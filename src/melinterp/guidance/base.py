"""What every guidance strategy shares: the state of one sampling run, the conditioning of one U-Net call, and
the three points where the pipeline's loop calls a strategy.

The pipeline's loop, with the calls in plain sight::

    weights = strategy.voice_weights(timing)               # what the text encoder hears of each voice
    strategy.prepare(state)                               # routing map, pitch mask, keys (once)
    for i, t in enumerate(timesteps):
        x = strategy.adjust_sample(state, x, t, i)        # noise tuning acts here
        score = strategy.score(state, x, t, i)            # mix and dual noise act here
        if guidance_scale != 1: score = s_uncond + w (score - s_uncond)
        x = scheduler.step(score, t, x, mu_y).prev_sample

A new strategy is a new file with a subclass; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from melinterp.models.style_encoder import StyleEncoderOutput


@dataclass
class Conditioning:
    """The keys and global style of one U-Net call.

    Args:
        style_tokens: (B, S, C) keys/values of cross-attention.
        token_mask: (B, S) bool, True on real tokens.
        style_vector: (B, style_dim) global style (the U-Net's ``class_labels``).
        cross_attention_kwargs: routing / capture for `MelAttnProcessor`, or None.
    """

    style_tokens: torch.Tensor
    token_mask: torch.Tensor
    style_vector: torch.Tensor
    cross_attention_kwargs: dict[str, Any] | None = None
    _all_real: bool | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def attention_mask(self) -> torch.Tensor | None:
        """The token mask the U-Net gets: None when every token is real, so attention runs with no key bias."""
        if self._all_real is None:
            self._all_real = bool(self.token_mask.all())  # checked once per conditioning, not per step
        return None if self._all_real else self.token_mask

    def with_kwargs(self, cross_attention_kwargs: dict[str, Any] | None) -> Conditioning:
        """The same keys and style with other processor kwargs (routing, capture). The copy inherits the
        all-real check, so a copy made every step does not repeat it (on a GPU it would wait for queued work)."""
        copy = Conditioning(self.style_tokens, self.token_mask, self.style_vector, cross_attention_kwargs)
        copy._all_real = self.attention_mask is None
        return copy

    @classmethod
    def of(cls, style: StyleEncoderOutput, style_vector: torch.Tensor | None = None) -> Conditioning:
        """One reference's tokens, with its own style vector unless another is given."""
        vector = style.style_vector if style_vector is None else style_vector
        return cls(style.style_tokens, style.token_mask, vector)

    @classmethod
    def two_references(cls, ref1: StyleEncoderOutput, ref2: StyleEncoderOutput,
                       style_vector: torch.Tensor) -> Conditioning:
        """Keys = [ref1 tokens ; ref2 tokens] (B, S1 + S2, C): key index < S1 belongs to ref1."""
        return cls(
            torch.cat([ref1.style_tokens, ref2.style_tokens], dim=1),
            torch.cat([ref1.token_mask, ref2.token_mask], dim=1),
            style_vector,
        )

    @staticmethod
    def stack(first: Conditioning, second: Conditioning) -> Conditioning:
        """Both conditionings as one batch of 2B (tokens padded to the longer S, padding masked)."""
        num_tokens = max(first.style_tokens.shape[1], second.style_tokens.shape[1])

        def pad(c: Conditioning) -> tuple[torch.Tensor, torch.Tensor]:
            extra = num_tokens - c.style_tokens.shape[1]
            tokens = torch.nn.functional.pad(c.style_tokens, (0, 0, 0, extra))  # (B, S, C)
            return tokens, torch.nn.functional.pad(c.token_mask, (0, extra), value=False)  # (B, S)

        (tokens1, mask1), (tokens2, mask2) = pad(first), pad(second)
        return Conditioning(torch.cat([tokens1, tokens2]), torch.cat([mask1, mask2]),
                            torch.cat([first.style_vector, second.style_vector]))


@dataclass
class VoiceWeights:
    """The weight of ref1 (ref2 gets the rest) in what the text encoder hears of the voice: its style vector
    (rhythm, the prior's spectral envelope) and its pitch condition, each a float for the whole utterance. A
    strategy whose voice changes along the utterance gives one (B, L) weight per phoneme id as both: the pipeline
    then blends the encoder's outputs under ref1 alone and under ref2 alone, phoneme by phoneme."""

    style: float | torch.Tensor = 1.0
    pitch: float | torch.Tensor = 1.0


@dataclass
class PhonemeTiming:
    """Where each phoneme falls in time, for strategies whose voice changes along the utterance.

    Args:
        durations: (B, L) frames per phoneme id.
        lengths: (B,) frames per item.
        phoneme_counts: symbols in each item's phoneme string.
        add_blank: ids interleave blanks (symbol k is id 2k + 1).
        frames_per_second: sample_rate / hop_length.
    """

    durations: torch.Tensor
    lengths: torch.Tensor
    phoneme_counts: list[int]
    add_blank: bool
    frames_per_second: float

    def per_phoneme(self, frame_weights: list[torch.Tensor]) -> torch.Tensor:
        """Average per-item frame weights ((T_b,) each) over each phoneme's frames -> (B, L).

        A phoneme id with no frames (a blank the duration predictor skipped) takes the weight of its first frame
        position, so it never leaves the range of its neighbours.
        """
        rows = []
        for b, weights in enumerate(frame_weights):
            durations = self.durations[b].long()  # (L,)
            ends = durations.cumsum(0)
            starts = ends - durations
            cumulative = torch.cat([weights.new_zeros(1), weights.cumsum(0)])  # (T_b + 1,)
            sums = cumulative[ends] - cumulative[starts]
            first = weights[starts.clamp(max=weights.numel() - 1)]
            rows.append(torch.where(durations > 0, sums / durations.clamp(min=1), first))
        return torch.stack(rows)  # (B, L)


@dataclass
class GuidanceState:
    """Everything one sampling run knows; items share T (the pipeline denoises equal-length items together).

    Args:
        unet: the mel U-Net (with `MelAttnProcessor`s installed).
        scheduler: the pipeline's scheduler (dual noise copies it for a second trajectory).
        mu_y: (B, n_mels, T) prior mean.
        y_mask: (B, 1, T) 1 on real frames.
        ref1, ref2: style-encoder outputs of the references (ref2 None for one-reference modes).
        null_style: the learned unconditional style (B, 1 token), for classifier-free guidance.
        durations: (B, L) frames per phoneme id; phoneme_counts: (B,) symbols in each phoneme string.
        add_blank: whether ids interleave blanks (symbol k is then id 2k + 1).
        frames_per_second: sample_rate / hop_length.
        ref1_f0: per item, ref1's f0 contour in Hz (0 = unvoiced), when the strategy asked for it.
        capture: an `AttentionStore` recording the ref1 mass of the conditional call, or None.
        second_noise: (B, n_mels, T) a second prior sample, when the strategy asked for one.

    Set by `prepare`: `conditioning`, and where they apply `routing_map` (B, n_mels, T) and `pitch_mask`.
    """

    unet: Any
    scheduler: Any
    mu_y: torch.Tensor
    y_mask: torch.Tensor
    ref1: StyleEncoderOutput
    ref2: StyleEncoderOutput | None
    null_style: StyleEncoderOutput
    feature_config: Any
    durations: torch.Tensor | None = None
    phoneme_counts: list[int] | None = None
    add_blank: bool = True
    ref1_f0: list | None = None
    capture: Any = None
    second_noise: torch.Tensor | None = None
    conditioning: Conditioning | None = None
    routing_map: torch.Tensor | None = None
    pitch_mask: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.mu_y.shape[0]

    @property
    def num_frames(self) -> int:
        return self.mu_y.shape[-1]

    @property
    def frames_per_second(self) -> float:
        return self.feature_config.sample_rate / self.feature_config.hop_length

    @property
    def padded_size(self) -> tuple[int, int]:
        """(n_mels, T_pad): the image the U-Net attends over (T rounded up to its downsampling factor)."""
        return self.mu_y.shape[1], self.unet.padded_num_frames(self.num_frames)

    def pad_map(self, routing_map: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, n_mels, T_pad), replicating the last frame, as routing maps must be."""
        extra = self.padded_size[1] - self.num_frames
        return torch.nn.functional.pad(routing_map, (0, extra), mode="replicate") if extra else routing_map


class GuidanceStrategy:
    """Base strategy: one U-Net call per step on ref1's tokens; subclasses override the points where they act."""

    #: references the strategy reads (the pipeline checks ref2 against it)
    num_references: int = 1
    #: whether `prepare` needs ref1's f0 contour (the pipeline extracts it only then)
    needs_f0: bool = False
    #: whether `prepare` needs a second prior sample (`state.second_noise`)
    needs_second_noise: bool = False
    #: whether the conditional call's keys are [ref1 ; ref2], so the ref1 mass means something
    captures_ref1_mass: bool = False

    #: whether `voice_weights` reads the phoneme timing (the pipeline then blends the text encoder's outputs under
    #: each reference alone by the per-phoneme weights that timing gives, keeping the first run's durations)
    weights_follow_time: bool = False

    def voice_weights(self, timing: PhonemeTiming | None = None) -> VoiceWeights:
        """Weight of ref1 in the text encoder's style vector and pitch condition. Default: ref1 alone."""
        return VoiceWeights(1.0, 1.0)

    def prepare(self, state: GuidanceState) -> None:
        """Build `state.conditioning` (and routing map / pitch mask where the strategy has them)."""
        state.conditioning = Conditioning.of(state.ref1)

    def adjust_sample(self, state: GuidanceState, x: torch.Tensor, t: torch.Tensor, i: int) -> torch.Tensor:
        """Return the sample to denoise at step i (default: unchanged). x: (B, n_mels, T)."""
        return x

    def score(self, state: GuidanceState, x: torch.Tensor, t: torch.Tensor, i: int) -> torch.Tensor:
        """The conditional score (B, n_mels, T) at step i (default: one U-Net call on `state.conditioning`)."""
        return unet_score(state, x, t, self._with_capture(state, state.conditioning))

    def unconditional_score(self, state: GuidanceState, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The score under the learned null style (classifier-free guidance), without routing or capture."""
        return unet_score(state, x, t, Conditioning.of(state.null_style))

    @staticmethod
    def _with_capture(state: GuidanceState, conditioning: Conditioning) -> Conditioning:
        if state.capture is None:
            return conditioning
        # keys are [ref1 ; ref2]: ref1's block is its own (padded) token count; the image is the padded one
        state.capture.num_ref1_tokens = state.ref1.style_tokens.shape[1]
        state.capture.sample_size = state.padded_size
        kwargs = dict(conditioning.cross_attention_kwargs or {}, capture=state.capture)
        return conditioning.with_kwargs(kwargs)


def unet_score(state: GuidanceState, x: torch.Tensor, t: torch.Tensor, conditioning: Conditioning) -> torch.Tensor:
    """The U-Net's score for x (k*B, n_mels, T), k = 1 or 2 (two conditionings stacked), at time t in (0, 1].

    Returns:
        (k*B, n_mels, T).
    """
    repeats = x.shape[0] // state.batch_size
    mu_y = state.mu_y.repeat(repeats, 1, 1)  # (k*B, n_mels, T)
    y_mask = state.y_mask.repeat(repeats, 1, 1)  # (k*B, 1, T)
    timestep = (t * 1000).to(x.dtype).expand(x.shape[0])  # diffusers' scale: t * 1000
    sample = torch.stack([x, mu_y], dim=1)  # (k*B, 2, n_mels, T)
    return state.unet(
        sample, timestep, encoder_hidden_states=conditioning.style_tokens,
        encoder_attention_mask=conditioning.attention_mask, class_labels=conditioning.style_vector, mask=y_mask,
        cross_attention_kwargs=conditioning.cross_attention_kwargs,
    ).sample[:, 0]
