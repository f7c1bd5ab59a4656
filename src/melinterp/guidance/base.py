"""What every guidance strategy shares: its registry, its inputs, and the points of the pipeline's loop it fills.

A strategy says what the U-Net is conditioned on and how its scores combine; the pipeline runs the loop
(`MelStyleInterpolationPipeline.denoise`), with B items and n = ``strategy.num_trajectories`` samples per item::

    weights = strategy.voice_weights()                        # what the text encoder hears of each voice
    guidance = strategy.prepare(state)                        # conditionings (k per item), routing map, pitch mask
    latents = prior samples                                   # (n B, n_mels, T)
    for i, t in enumerate(timesteps):
        latents = strategy.adjust_latents(state, guidance, latents, t, i, unet_score)   # noise tuning, merging
        scores = unet_score(strategy.model_input(guidance, latents, i), t, guidance.conditioning)  # (k B, ...)
        score = strategy.combine_scores(guidance, scores, i)  # (n B, n_mels, T)
        if guidance_scale != 1: score[:B] = s_uncond + w (score[:B] - s_uncond)
        latents = scheduler.step(score, t, latents, mu_y).prev_sample
    mel = latents[:B]

`STRATEGIES` names every strategy (the pipeline's ``mode``, ``melinterp synthesize --mode``, the benchmarks). A new
strategy is one new module in this folder with a `GuidanceStrategy` subclass that carries
``@register_strategy("name")``; a strategy defined elsewhere registers the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from melinterp.models.style_encoder import StyleEncoderOutput, stack_styles
from melinterp.utils import check_number

#: every strategy class by mode name, filled by `register_strategy`
STRATEGIES: dict[str, type[GuidanceStrategy]] = {}

#: ``score(latents (k B, n_mels, T), t, conditioning, capture=None) -> (k B, n_mels, T)``: the U-Net's score under
#: a conditioning, with an `AttentionStore` recording the ref1 mass when given
ScoreFunction = Callable[..., torch.Tensor]


def register_strategy(name: str):
    """Class decorator: list a `GuidanceStrategy` subclass in `STRATEGIES` under ``name``."""

    def register(strategy_class: type[GuidanceStrategy]) -> type[GuidanceStrategy]:
        strategy_class.name = name
        STRATEGIES[name] = strategy_class
        return strategy_class

    return register


@dataclass(frozen=True)
class ModeOptions:
    """The pipeline's keywords that configure a mode (see `MelStyleInterpolationPipeline.__call__`); each strategy's
    `GuidanceStrategy.from_options` reads those it uses."""

    alpha: float = 0.5
    boundary: float | int | str = 0.5
    crossfade: float = 0.1
    pitch_mask: str = "band"
    freq_guidance: str = "mask"
    routing_strength: float = 1.0
    tuning: Any = None
    dual_noise_map: str = "freq"
    dual_noise_merge_step: int = 0


def make_strategy(mode, options: ModeOptions) -> GuidanceStrategy:
    """The strategy of a pipeline call: ``mode`` itself when it is a `GuidanceStrategy`, else the one
    ``STRATEGIES[mode]`` makes of the call's options.

    Every registered strategy checks the options it reads, whatever the mode, so that a bad value is an error even
    where it would go unused (as a typo should be).
    """
    if isinstance(mode, GuidanceStrategy):
        return mode
    if not isinstance(mode, str) or mode not in STRATEGIES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, STRATEGIES))}, got {mode!r}")
    strategies = {name: strategy_class.from_options(options) for name, strategy_class in STRATEGIES.items()}
    return strategies[mode]


def check_routing_strength(strength) -> None:
    """The routing strengths a `melinterp.models.attention_processors.RoutingSpec` takes: a real >= 0."""
    check_number("routing_strength", strength, lambda s: s >= 0, ">= 0")


@dataclass
class Conditioning:
    """The keys and global style of one U-Net call.

    Args:
        style_tokens: (B, S, C) keys/values of cross-attention.
        token_mask: (B, S) bool, True on real tokens.
        style_vector: (B, style_dim) global style (the U-Net's ``class_labels``).
        cross_attention_kwargs: routing for `MelAttnProcessor`, or None.
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
            # checked once per conditioning, not per step (on a GPU it would wait for the queued work)
            self._all_real = bool(self.token_mask.all())
        return None if self._all_real else self.token_mask

    @classmethod
    def of(cls, style: StyleEncoderOutput) -> Conditioning:
        """One reference's tokens and style vector."""
        return cls(style.style_tokens, style.token_mask, style.style_vector)

    @classmethod
    def two_references(cls, ref1: StyleEncoderOutput, ref2: StyleEncoderOutput, style_vector: torch.Tensor,
                       cross_attention_kwargs: dict[str, Any] | None = None) -> Conditioning:
        """Keys = [ref1 tokens ; ref2 tokens] (B, S1 + S2, C): key index < S1 belongs to ref1."""
        return cls(
            torch.cat([ref1.style_tokens, ref2.style_tokens], dim=1),
            torch.cat([ref1.token_mask, ref2.token_mask], dim=1),
            style_vector,
            cross_attention_kwargs,
        )

    @classmethod
    def stack(cls, first: Conditioning, second: Conditioning) -> Conditioning:
        """Both conditionings as one batch of 2B (tokens padded to the longer S, padding masked)."""
        return cls.of(stack_styles([first, second]))


@dataclass
class VoiceWeights:
    """The weight of ref1 (ref2 gets the rest) in what the text encoder hears of the voice: its style vector
    (rhythm, the prior's spectral envelope) and its pitch condition, for the whole utterance."""

    style: float = 1.0
    pitch: float = 1.0


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

    def select(self, items: list[int]) -> PhonemeTiming:
        """The timing of these items only."""
        index = torch.tensor(items, device=self.durations.device)
        return PhonemeTiming(self.durations[index], self.lengths[index], [self.phoneme_counts[b] for b in items],
                             self.add_blank, self.frames_per_second)

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
    """The inputs of one run of the loop; its items share T (the pipeline denoises equal-length items together).

    Args:
        mu_y: (B, n_mels, T) prior mean.
        y_mask: (B, 1, T) 1 on real frames.
        ref1, ref2: style-encoder outputs of each item's references (ref2 None for one-reference strategies).
        ref1_analyses, ref2_analyses: the strategy's `GuidanceStrategy.reference_analyses` of each item's
            reference, by name: a list of B arrays, e.g. "f0" (T_ref,) in Hz (0 = unvoiced).
        timing: where the items' phonemes fall in time.
        feature_config: the `FeatureConfig` of the mels.
        padded_num_frames: T rounded up to the U-Net's downsampling factor, the width of the image it attends over.
    """

    mu_y: torch.Tensor
    y_mask: torch.Tensor
    ref1: StyleEncoderOutput
    ref2: StyleEncoderOutput | None
    ref1_analyses: dict[str, list]
    ref2_analyses: dict[str, list]
    timing: PhonemeTiming
    feature_config: Any
    padded_num_frames: int

    @property
    def batch_size(self) -> int:
        return self.mu_y.shape[0]

    @property
    def num_frames(self) -> int:
        return self.mu_y.shape[-1]

    @property
    def padded_size(self) -> tuple[int, int]:
        """(n_mels, T_pad): the image the U-Net attends over."""
        return self.mu_y.shape[1], self.padded_num_frames

    def pad_map(self, routing_map: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, n_mels, T_pad), replicating the last frame, as routing maps must be."""
        extra = self.padded_num_frames - self.num_frames
        return torch.nn.functional.pad(routing_map, (0, extra), mode="replicate") if extra else routing_map


@dataclass
class Guidance:
    """What a strategy prepares for one run of the loop.

    Args:
        conditioning: the U-Net's keys and style, k B rows (the k conditionings of every item, one block each).
        routing_map: (B, n_mels, T) weight of ref1 per cell, where the strategy has one (returned to the caller).
        pitch_mask: (B, n_mels, T) ref1's pitch mask, where the strategy has one.
    """

    conditioning: Conditioning
    routing_map: torch.Tensor | None = None
    pitch_mask: torch.Tensor | None = None


class GuidanceStrategy:
    """One U-Net call per step on ref1's tokens and style vector (mode "none"); subclasses override where they act.

    Its class attributes say what it needs; a strategy may also set them per instance.

    Attributes:
        name: its key in `STRATEGIES` (set by `register_strategy`).
        num_references: the references it reads, 1 or 2 (the pipeline checks ref2 against it).
        reference_analyses: what it reads of each reference's waveform besides the style, names of
            `melinterp.pipelines.references.ANALYSES` (e.g. ``("f0",)``); the pipeline provides them in the state.
        captures_ref1_mass: whether its conditional call's keys are [ref1 ; ref2], so the ref1 mass means something.
        num_trajectories: samples per item the loop carries (the rows of the latents, one block each).
    """

    name: str | None = None
    num_references: int = 1
    reference_analyses: tuple[str, ...] = ()
    captures_ref1_mass: bool = False
    num_trajectories: int = 1

    @classmethod
    def from_options(cls, options: ModeOptions) -> GuidanceStrategy:
        """The strategy a pipeline call's mode options ask for (a ValueError naming the first bad one)."""
        return cls()

    def voice_weights(self) -> VoiceWeights:
        """Weight of ref1 in the text encoder's style vector and pitch condition. Default: ref1 alone."""
        return VoiceWeights(1.0, 1.0)

    def phoneme_weights(self, timing: PhonemeTiming) -> torch.Tensor | None:
        """(B, L) weight of ref1 per phoneme id, for a voice that changes along the utterance (default None).

        The pipeline then blends, phoneme by phoneme, the text encoder's outputs under ref1 alone and under ref2
        alone, keeping the durations of the `voice_weights` pass (`timing`).
        """
        return None

    def prepare(self, state: GuidanceState) -> Guidance:
        """The conditioning of the loop, and the routing map / pitch mask where the strategy has them."""
        return Guidance(Conditioning.of(state.ref1))

    def adjust_latents(self, state: GuidanceState, guidance: Guidance, latents: torch.Tensor, t: torch.Tensor,
                       i: int, score: ScoreFunction) -> torch.Tensor:
        """The latents (n B, n_mels, T) to denoise at step i (default: unchanged)."""
        return latents

    def model_input(self, guidance: Guidance, latents: torch.Tensor, i: int) -> torch.Tensor:
        """The U-Net's samples at step i, one block per conditioning (k B, n_mels, T). Default: the latents,
        repeated when there are more conditionings than trajectories."""
        repeats = guidance.conditioning.style_tokens.shape[0] // latents.shape[0]
        return latents if repeats == 1 else latents.repeat(repeats, 1, 1)

    def combine_scores(self, guidance: Guidance, scores: torch.Tensor, i: int) -> torch.Tensor:
        """The score of each trajectory (n B, n_mels, T) from the U-Net's (k B, n_mels, T). Default: as it is."""
        return scores
