"""Mode "temporal": speech that starts in ref1's voice and ends in ref2's.

A routing map over time sends the cross-attention of every cell before the boundary to ref1's tokens and after
it to ref2's (a soft additive log-weight bias, see `melinterp.models.attention_processors`), with a raised-cosine
crossfade centred on the boundary.

Boundary units (one value, three spellings):

- a float in [0, 1]: a fraction of the utterance's frames (0.5 = the middle);
- an int k: a phoneme index, the boundary is the first frame of symbol k of the phoneme string
  (``pipe.text_processor.phonemize(text)``; spaces and punctuation count; 0 .. number of symbols);
- a str with a unit, "0.8s": seconds from the start of the utterance.

The crossfade width is in seconds.
"""

from __future__ import annotations

import numbers

import torch

from melinterp.models.attention_processors import RoutingSpec, temporal_routing_map
from melinterp.utils import check_number

from .base import (
    Conditioning,
    Guidance,
    GuidanceState,
    GuidanceStrategy,
    ModeOptions,
    PhonemeTiming,
    VoiceWeights,
    check_routing_strength,
    register_strategy,
)


def parse_boundary(boundary) -> tuple[str, float]:
    """("fraction", f) | ("phoneme", k) | ("seconds", s) from a boundary value; ValueError naming `boundary`."""
    if isinstance(boundary, str):
        text = boundary.strip()
        try:
            seconds = float(text[:-1]) if text.endswith("s") else None
        except ValueError:
            seconds = None
        if seconds is None or seconds < 0:
            raise ValueError(f"boundary as a str must be seconds with the unit, e.g. '0.8s', got {boundary!r}")
        return "seconds", seconds
    if isinstance(boundary, bool) or not isinstance(boundary, numbers.Real):
        raise ValueError(
            f"boundary must be a fraction of the utterance (float in [0, 1]), a phoneme index (int) or seconds "
            f"('0.8s'), got {boundary!r}"
        )
    if isinstance(boundary, numbers.Integral):
        if boundary < 0:
            raise ValueError(f"boundary as a phoneme index must be >= 0, got {boundary}")
        return "phoneme", int(boundary)
    if not 0.0 <= boundary <= 1.0:
        raise ValueError(
            f"boundary {boundary!r} is outside the utterance: a float is a fraction in [0, 1]; for seconds pass "
            f"'{boundary}s', for a phoneme index an int"
        )
    return "fraction", float(boundary)


def boundary_frame(boundary, durations: torch.Tensor, num_frames: int, frames_per_second: float,
                   num_symbols: int, add_blank: bool) -> float:
    """The boundary of one utterance as a (fractional) frame index in [0, T].

    Args:
        boundary: see the module docstring.
        durations: (L,) frames per phoneme id.
        num_frames: T.
        frames_per_second: sample_rate / hop_length.
        num_symbols: symbols in the phoneme string.
        add_blank: ids interleave blanks, so symbol k is id 2k + 1.
    """
    unit, value = parse_boundary(boundary)
    if unit == "fraction":
        return value * num_frames
    if unit == "seconds":
        duration = num_frames / frames_per_second
        if value > duration:
            raise ValueError(f"boundary {boundary!r} is outside the utterance, which lasts {duration:.3f} s")
        return value * frames_per_second
    if value > num_symbols:
        raise ValueError(
            f"boundary {boundary!r} is outside the utterance: its phoneme string has {num_symbols} symbols "
            f"(valid indices 0 .. {num_symbols})"
        )
    first_id = 2 * int(value) + 1 if add_blank else int(value)
    return float(durations[:first_id].sum()) if value < num_symbols else float(num_frames)


def frame_weights(boundary, crossfade: float, timing: PhonemeTiming) -> list[torch.Tensor]:
    """Per item, (T_b,) weight of ref1 per frame: the temporal routing map's profile over time."""
    weights = []
    for b, num_symbols in enumerate(timing.phoneme_counts):
        num_frames = int(timing.lengths[b])
        frame = boundary_frame(boundary, timing.durations[b], num_frames, timing.frames_per_second, num_symbols,
                               timing.add_blank)
        profile = temporal_routing_map(num_frames, frame, crossfade=crossfade * timing.frames_per_second, n_mels=1)
        weights.append(profile[0, 0].to(timing.durations.device))  # (T_b,)
    return weights


def temporal_map(state: GuidanceState, boundary, crossfade: float) -> torch.Tensor:
    """(B, n_mels, T) routing map: 1 (ref1) before each item's boundary, 0 (ref2) after, crossfade in seconds."""
    profiles = torch.stack(frame_weights(boundary, crossfade, state.timing))  # (B, T), the same in every mel bin
    return profiles.unsqueeze(1).expand(-1, state.mu_y.shape[1], -1).contiguous().to(state.mu_y)


def check_crossfade(crossfade) -> None:
    check_number("crossfade", crossfade, lambda c: c >= 0, "a width >= 0 in seconds")


@register_strategy("temporal")
class TemporalRouting(GuidanceStrategy):
    """Keys = [ref1 ; ref2]; routing bias from a map over time.

    Each phoneme's prior mean is that of its side of the boundary: the text encoder's outputs under ref1 alone
    and under ref2 alone, weighted per phoneme by the routing map's mean over the phoneme's frames, so each part
    has its own reference's pitch and envelope. Durations stay those of the equal blend ``(v1 + v2) / 2``
    (they decide where the boundary falls); the U-Net's global vector is that blend too.

    Args:
        boundary: see the module docstring.
        crossfade: width of the crossfade, seconds (>= 0).
        strength: multiplies the log-weight bias (1 = plain log-weights; larger = harder routing).
    """

    num_references = 2
    captures_ref1_mass = True

    def __init__(self, boundary=0.5, crossfade: float = 0.1, strength: float = 1.0):
        parse_boundary(boundary)
        check_crossfade(crossfade)
        check_routing_strength(strength)
        self.boundary, self.crossfade, self.strength = boundary, float(crossfade), float(strength)

    @classmethod
    def from_options(cls, options: ModeOptions) -> TemporalRouting:
        return cls(options.boundary, options.crossfade, options.routing_strength)

    def voice_weights(self) -> VoiceWeights:
        return VoiceWeights(0.5, 0.5)  # the durations, which decide where the boundary falls, are the equal blend's

    def phoneme_weights(self, timing: PhonemeTiming) -> torch.Tensor:
        return timing.per_phoneme(frame_weights(self.boundary, self.crossfade, timing))  # (B, L)

    def prepare(self, state: GuidanceState) -> Guidance:
        routing_map = temporal_map(state, self.boundary, self.crossfade)  # (B, n_mels, T)
        routing = RoutingSpec(state.pad_map(routing_map), num_ref1_tokens=state.ref1.style_tokens.shape[1],
                              strength=self.strength)
        vector = 0.5 * (state.ref1.style_vector + state.ref2.style_vector)
        conditioning = Conditioning.two_references(state.ref1, state.ref2, vector, {"routing": routing})
        return Guidance(conditioning, routing_map=routing_map)
