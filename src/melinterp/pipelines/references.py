"""The references of a synthesis: recordings loaded, their style encoded and their waveforms analysed.

A reference is a file path, an ``(array, sample_rate)`` pair, a 1-D waveform tensor at the feature sample rate or
a `ReferenceEncoding` (`MelStyleInterpolationPipeline.encode_reference`: analysed once, reused in many calls), or
a list of those, one per text. `ANALYSES` names what can be taken of a reference's waveform: a guidance strategy
declares the ones it reads (`GuidanceStrategy.reference_analyses`), and the pitch condition of the text encoder
reads "f0". A new analysis is one more entry, ``ANALYSES["name"] = function(waveform, feature_config)``.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from melinterp.audio import AudioError, FeatureConfig, load_audio, mel_spectrogram, pitch_features
from melinterp.models.style_encoder import StyleEncoder, StyleEncoderOutput, stack_styles

REFERENCE_F0_METHOD = "dio"  # fast, and what `melinterp preprocess --f0-method dio` caches for training


def _f0(waveform: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """(T_ref,) f0 contour in Hz (0 = unvoiced), by WORLD's DIO + StoneMask (the estimator the training cache uses)."""
    from melinterp.audio import extract_f0

    return extract_f0(waveform, config, method=REFERENCE_F0_METHOD)


#: name -> function(waveform (N,) at the feature sample rate, feature config) -> array
ANALYSES: dict[str, Callable[[np.ndarray, FeatureConfig], np.ndarray]] = {"f0": _f0}


@dataclass
class ReferenceEncoding:
    """A reference recording analysed once, to pass as ref1 or ref2 in any number of calls (as diffusers pipelines
    take ``prompt_embeds``): loading, resampling, the style encoder and the f0 analysis then run once instead of in
    every call.

    Args:
        style_tokens: (1, S, C) the style encoder's tokens.
        token_mask: (1, S) True on real tokens.
        style_vector: (1, style_dim) the global style.
        waveform: (N,) the recording at the feature sample rate, for analyses asked for later.
        analyses: the `ANALYSES` taken so far, by name; "f0" always.
    """

    style_tokens: torch.Tensor
    token_mask: torch.Tensor
    style_vector: torch.Tensor
    waveform: np.ndarray
    analyses: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def f0(self) -> np.ndarray:
        """(T_ref,) the recording's f0 contour in Hz (0 = unvoiced), by the pipeline's reference estimator."""
        return self.analyses["f0"]

    def analysis(self, name: str, config: FeatureConfig) -> np.ndarray:
        """``ANALYSES[name]`` of the waveform, taken on first use."""
        if name not in self.analyses:
            self.analyses[name] = ANALYSES[name](self.waveform, config)
        return self.analyses[name]


@dataclass
class References:
    """One reference per item of a batch.

    Args:
        style: style tokens (B, S, C), token mask (B, S), style vector (B, style_dim).
        analyses: name -> B arrays, the `ANALYSES` asked for.
        pitch: (B, pitch_dim) the text encoder's pitch condition (`melinterp.audio.pitch_features`), or None when
            it takes none.
    """

    style: StyleEncoderOutput
    analyses: dict[str, list[np.ndarray]]
    pitch: torch.Tensor | None

    def select(self, items: list[int]) -> References:
        """These items' references, in this order (an item may come several times)."""
        index = torch.tensor(items, device=self.style.style_tokens.device)
        return References(self.style.select(index),
                          {name: [values[b] for b in items] for name, values in self.analyses.items()},
                          None if self.pitch is None else self.pitch[index])


def encode_reference(ref, style_encoder: StyleEncoder, config: FeatureConfig, device) -> ReferenceEncoding:
    """One reference (see the module docstring) as a `ReferenceEncoding` on `device` (one given passes through)."""
    (item,) = load_references(ref, "ref", 1, config)
    return item if isinstance(item, ReferenceEncoding) else _encoding_of(item, style_encoder, config, device)


def encode_references(refs, name: str, num_texts: int, analyses: set[str], style_encoder: StyleEncoder,
                      config: FeatureConfig, device, pitch_dtype: torch.dtype | None) -> References:
    """The reference of each of `num_texts` texts (a single one serves every text) on `device`, with the
    `analyses` asked for and, with a `pitch_dtype`, the pitch condition (which takes "f0").

    Recordings are loaded and encoded in one batch of the style encoder (mels padded to the longest, masked);
    when a `ReferenceEncoding` is among them, each recording is encoded on its own and the tokens padded alike.
    """
    items = load_references(refs, name, num_texts, config)  # a waveform or a ReferenceEncoding per text
    analyses = analyses | ({"f0"} if pitch_dtype is not None else set())
    if not any(isinstance(item, ReferenceEncoding) for item in items):
        style = _encode_waves(items, style_encoder, config, device)
        taken = {key: _analyse(items, ANALYSES[key], config) for key in sorted(analyses)}
    else:
        encodings, cache = [], {}
        for item in items:
            if id(item) not in cache:
                cache[id(item)] = item if isinstance(item, ReferenceEncoding) else _encoding_of(
                    item, style_encoder, config, device)
            encodings.append(cache[id(item)])
        dtype = style_encoder.dtype
        style = stack_styles([StyleEncoderOutput(style_tokens=e.style_tokens.to(device, dtype),
                                                 token_mask=e.token_mask.to(device),
                                                 style_vector=e.style_vector.to(device, dtype)) for e in encodings])
        taken = {key: [e.analysis(key, config) for e in encodings] for key in sorted(analyses)}
    pitch = None if pitch_dtype is None else pitch_condition(taken["f0"], name).to(device, pitch_dtype)
    return References(style, taken, pitch)


def pitch_condition(f0s: list[np.ndarray], name: str) -> torch.Tensor:
    """(B, 2) `pitch_features` of each reference; an AudioError when a reference has no voiced frame."""
    for b, f0 in enumerate(f0s):
        if not np.any(f0 > 0):
            where = f"{name}[{b}]" if len(f0s) > 1 else name
            raise AudioError(f"{where}: no voiced frame found, so its pitch cannot be taken: give a recording "
                             f"of voiced speech (not whispered, not noise)")
    return torch.from_numpy(np.stack([pitch_features(f0) for f0 in f0s]))


def load_references(refs, name: str, batch_size: int, config: FeatureConfig) -> list:
    """Waveforms (N,) at the feature sample rate, one per item (a single reference serves every item);
    `ReferenceEncoding`s pass through."""
    one_per_text = isinstance(refs, list)
    if one_per_text:
        if len(refs) != batch_size:
            raise ValueError(f"{name} is a list of {len(refs)} references but there are {batch_size} texts: give "
                             f"one reference per text, or a single one for all")
    else:
        refs = [refs] * batch_size
    waves, loaded = [], {}
    for b, ref in enumerate(refs):
        if id(ref) in loaded:  # the same object for several items: load it once
            waves.append(loaded[id(ref)])
            continue
        if isinstance(ref, ReferenceEncoding):
            waves.append(ref)
            continue
        where = f"{name}[{b}]" if one_per_text and batch_size > 1 else name
        if isinstance(ref, (str, os.PathLike)):
            array, sr = ref, None
        elif isinstance(ref, tuple):
            if len(ref) != 2 or isinstance(ref[0], (str, os.PathLike)) or not isinstance(ref[1], numbers.Real):
                raise ValueError(f"{where} as a tuple must be an (array, sample_rate) pair, got a tuple of "
                                 f"({', '.join(type(r).__name__ for r in ref)}); to give several references, "
                                 f"one per text, pass them in a list")
            array, sr = ref
        elif isinstance(ref, torch.Tensor):
            if ref.ndim != 1:
                raise ValueError(f"{where} as a tensor must be a 1-D waveform (N,) at {config.sample_rate} Hz, got "
                                 f"shape {tuple(ref.shape)}")
            array, sr = ref, config.sample_rate
        else:
            raise ValueError(f"{where} must be a file path, an (array, sample_rate) pair, a 1-D waveform tensor "
                             f"at {config.sample_rate} Hz or a ReferenceEncoding (pipe.encode_reference), got "
                             f"{type(ref).__name__}")
        try:
            wave = load_audio(array, sr, target_sr=config.sample_rate, min_duration=config.min_duration,
                              silence_db=config.silence_db)
        except AudioError as error:
            raise AudioError(f"{where}: {error}") from error
        loaded[id(ref)] = wave
        waves.append(wave)
    return waves


def _encoding_of(wave: np.ndarray, style_encoder: StyleEncoder, config: FeatureConfig, device) -> ReferenceEncoding:
    style = _encode_waves([wave], style_encoder, config, device)
    return ReferenceEncoding(style.style_tokens, style.token_mask, style.style_vector, wave,
                             {"f0": ANALYSES["f0"](wave, config)})


def _encode_waves(waves: list[np.ndarray], style_encoder: StyleEncoder, config: FeatureConfig,
                  device) -> StyleEncoderOutput:
    """Style of each waveform; mels padded to the longest with masks (the encoder ignores padding)."""
    dtype = style_encoder.dtype
    mels = [mel_spectrogram(torch.from_numpy(w), config) for w in waves]  # (n_mels, T_ref) each
    num_frames = max(m.shape[-1] for m in mels)
    ref_mel = torch.stack([F.pad(m, (0, num_frames - m.shape[-1])) for m in mels]).to(device, dtype)
    ref_mask = torch.stack([
        (torch.arange(num_frames) < m.shape[-1]).float().unsqueeze(0) for m in mels
    ]).to(device, dtype)  # (B, 1, T_ref)
    return style_encoder(ref_mel, ref_mask)


def _analyse(waves: list[np.ndarray], analysis, config: FeatureConfig) -> list[np.ndarray]:
    """`analysis` of each waveform, each distinct one once."""
    cache = {}
    for wave in waves:
        if id(wave) not in cache:
            cache[id(wave)] = analysis(wave, config)
    return [cache[id(wave)] for wave in waves]


def blend_conditions(weight: float, first: torch.Tensor, second: torch.Tensor | None) -> torch.Tensor:
    """``w * first + (1 - w) * second`` for (B, D) conditions; with no second reference, the first as it is."""
    if second is None or weight == 1.0:
        return first
    if weight == 0.0:
        return second
    return weight * first + (1.0 - weight) * second
