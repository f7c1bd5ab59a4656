"""Grad-TTS training losses, segment cropping, and style dropout for classifier-free guidance.

Every loss takes the mask of its tensor and normalises by the number of real cells, as Grad-TTS does, so padding
changes nothing.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


def _masked_mean(values: torch.Tensor, mask: torch.Tensor, name: str) -> torch.Tensor:
    """sum(values * mask) / (number of real cells of `values`), `mask` broadcast over the mel (or other) axes."""
    try:
        mask = mask.to(values.dtype).expand_as(values)
    except RuntimeError:
        raise ValueError(
            f"{name}: mask of shape {tuple(mask.shape)} does not broadcast to the tensor's shape {tuple(values.shape)}."
        ) from None
    return (values * mask).sum() / mask.sum().clamp(min=1)


def _check_same_shape(first: torch.Tensor, second: torch.Tensor, names: str) -> None:
    if first.shape != second.shape:
        raise ValueError(f"{names} must have the same shape, got {tuple(first.shape)} and {tuple(second.shape)}.")


def duration_loss(
    log_durations_pred: torch.Tensor, log_durations_target: torch.Tensor, x_mask: torch.Tensor
) -> torch.Tensor:
    """Squared error of log-durations over real tokens: sum((pred - target)^2 * mask) / sum(mask).

    Args:
        log_durations_pred: `(B, 1, L)` (or `(B, L)`) predicted log(frames).
        log_durations_target: same shape, log(frames) from the alignment (Grad-TTS: log(1e-8 + durations)).
        x_mask: `(B, 1, L)` (or `(B, L)`), 1 for real tokens.
    """
    _check_same_shape(log_durations_pred, log_durations_target, "log_durations_pred and log_durations_target")
    return _masked_mean((log_durations_pred - log_durations_target) ** 2, x_mask, "duration_loss")


def prior_loss(y: torch.Tensor, mu_y: torch.Tensor, y_mask: torch.Tensor) -> torch.Tensor:
    """Gaussian NLL of the mel under the prior N(mu_y, I), per real (mel bin, frame) cell, in nats.

    sum(0.5 ((y - mu_y)^2 + log 2 pi) * mask) / (sum(mask) * n_mels). Equals 0.5 log(2 pi) when y == mu_y.

    Args:
        y: `(B, n_mels, T)` target mel-spectrogram.
        mu_y: `(B, n_mels, T)` frame-level prior mean (the aligned text encoder output).
        y_mask: `(B, 1, T)`, 1 for real frames.
    """
    _check_same_shape(y, mu_y, "y and mu_y")
    return _masked_mean(0.5 * ((y - mu_y) ** 2 + math.log(2 * math.pi)), y_mask, "prior_loss")


def score_matching_loss(
    score: torch.Tensor, noise: torch.Tensor, std: torch.Tensor | float, mask: torch.Tensor
) -> torch.Tensor:
    """Grad-TTS denoising score matching: sum((score * sigma_t + noise)^2 * mask) / (sum(mask) * n_mels).

    With X_t = a_t X_0 + (1 - a_t) mu + sigma_t noise, the target score is -noise / sigma_t; weighting the error by
    sigma_t^2 gives the expression above, zero for a perfect model.

    Args:
        score: `(B, n_mels, T)` or `(B, 1, n_mels, T)` model output.
        noise: the standard normal noise used to make X_t, same shape.
        std: sigma_t, a float or `(B,)` tensor (one per item).
        mask: `(B, 1, T)` (or `(B, 1, 1, T)` for 4-D scores), 1 for real frames.
    """
    _check_same_shape(score, noise, "score and noise")
    if isinstance(std, torch.Tensor) and std.ndim == 1:
        if std.shape[0] != score.shape[0]:
            raise ValueError(f"std must be a float or a (B,) tensor with B = {score.shape[0]}, got {tuple(std.shape)}.")
        std = std.view(-1, *([1] * (score.ndim - 1)))  # (B, 1, ..., 1)
    return _masked_mean((score * std + noise) ** 2, mask, "score_matching_loss")


class MelSegments(NamedTuple):
    """Aligned random crops (Grad-TTS `out_size`); unpacks as `mel, mu_y, mask`."""

    mel: torch.Tensor  # (B, n_mels, segment_frames)
    mu_y: torch.Tensor  # (B, n_mels, segment_frames)
    mask: torch.Tensor  # (B, 1, segment_frames)


def random_segment_starts(
    mask: torch.Tensor, segment_frames: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """First frame of a random window of `segment_frames` frames per item: `(B, 1, T)` mask -> `(B,)` long.

    Uniform over every window that fits in the item's real frames; 0 for items shorter than the window.
    """
    if isinstance(segment_frames, bool) or not isinstance(segment_frames, int) or segment_frames < 1:
        raise ValueError(f"segment_frames must be a positive integer, got {segment_frames!r}.")
    if mask.ndim != 3 or mask.shape[1] != 1:
        raise ValueError(f"mask must be (B, 1, T), got shape {tuple(mask.shape)}.")
    lengths = mask.sum(dim=(1, 2)).long()  # (B,) real frames
    max_start = (lengths - segment_frames).clamp(min=0)  # (B,)
    uniform = torch.rand(len(lengths), generator=generator, device=_random_device(generator, mask.device))
    return torch.minimum((uniform.to(mask.device) * (max_start + 1)).long(), max_start)  # uniform over 0..max_start


def crop_frames(values: torch.Tensor, start_frames: torch.Tensor, segment_frames: int) -> torch.Tensor:
    """Frames `start .. start + segment_frames - 1` of each item: `(B, C, T)` -> `(B, C, segment_frames)`.

    Frames past the end of `values` come out as zeros.
    """
    if values.ndim != 3 or start_frames.shape != (values.shape[0],):
        raise ValueError(
            f"crop_frames expects values (B, C, T) and start_frames (B,), got {tuple(values.shape)} and "
            f"{tuple(start_frames.shape)}."
        )
    num_frames = values.shape[2]
    frame_index = start_frames[:, None] + torch.arange(segment_frames, device=values.device)[None, :]  # (B, S)
    inside = (frame_index < num_frames)[:, None, :]  # (B, 1, S)
    index = frame_index.clamp(max=num_frames - 1)[:, None, :].expand(-1, values.shape[1], -1)  # (B, C, S)
    return torch.gather(values, 2, index) * inside.to(values.dtype)


def random_segments(
    mel: torch.Tensor,
    mu_y: torch.Tensor,
    mask: torch.Tensor,
    segment_frames: int,
    generator: torch.Generator | None = None,
) -> MelSegments:
    """Crop the same random window of `segment_frames` frames from `mel`, `mu_y` and `mask` of each item.

    The start is uniform over every window that fits in the item's real frames. Items shorter than the segment are
    kept whole (start 0) and zero-padded, their mask zero beyond their length, so the output is always
    `segment_frames` wide (what a U-Net with fixed downsampling wants). To crop more tensors alike, call
    `random_segment_starts` and `crop_frames` directly.

    Args:
        mel: `(B, n_mels, T)` target mel-spectrograms.
        mu_y: `(B, n_mels, T)` aligned prior means.
        mask: `(B, 1, T)`, 1 for real frames (padding at the end).
        segment_frames: window length in frames, >= 1.
        generator: torch generator (CPU or the tensors' device) for reproducible starts.
    """
    _check_same_shape(mel, mu_y, "mel and mu_y")
    if mel.ndim != 3 or mask.shape != (mel.shape[0], 1, mel.shape[2]):
        raise ValueError(
            f"random_segments expects mel (B, n_mels, T) and mask (B, 1, T), got {tuple(mel.shape)} and "
            f"{tuple(mask.shape)}."
        )
    start_frames = random_segment_starts(mask, segment_frames, generator)
    segment_mask = crop_frames(mask, start_frames, segment_frames)  # (B, 1, S)
    return MelSegments(
        crop_frames(mel, start_frames, segment_frames) * segment_mask,
        crop_frames(mu_y, start_frames, segment_frames) * segment_mask,
        segment_mask,
    )


def style_dropout(
    mask_prob: float,
    batch_size: int,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Which items train with the null style (classifier-free guidance): a `(B,)` bool tensor, True w.p. mask_prob.

    Drawn on the generator's device (CPU without one), then moved to `device` if given.
    """
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must lie in [0, 1], got mask_prob={mask_prob}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ValueError(f"batch_size must be a non-negative integer, got {batch_size!r}.")
    uniform = torch.rand(batch_size, generator=generator, device=_random_device(generator, "cpu"))
    drop = uniform < mask_prob
    return drop if device is None else drop.to(device)


def _random_device(generator: torch.Generator | None, device: str | torch.device) -> torch.device:
    """Draw on the generator's device (a CPU generator cannot fill a CUDA tensor)."""
    return generator.device if generator is not None else torch.device(device)


__all__ = [
    "MelSegments",
    "crop_frames",
    "duration_loss",
    "prior_loss",
    "random_segment_starts",
    "random_segments",
    "score_matching_loss",
    "style_dropout",
]
