"""Length regulation: phoneme durations -> monotonic alignment path -> frame-level prior mean mu_y.

Grad-TTS expands the encoder output ``mu_x`` (one vector per phoneme) to ``mu_y`` (one vector per mel frame) by
repeating each phoneme's vector for as many frames as its duration. The hard alignment is a 0/1 path
(B, L, T) with exactly one phoneme per real frame, so the expansion is a single batched matrix product.
Everything here is plain torch (no numba), differentiable in ``mu_x``.
"""

from __future__ import annotations

import torch


def sequence_mask(lengths: torch.Tensor, max_length: int | None = None) -> torch.Tensor:
    """Boolean mask of real positions from lengths.

    Args:
        lengths: (B,) integer lengths.
        max_length: width of the mask; defaults to ``lengths.max()``.

    Returns:
        (B, max_length) bool, True where ``position < length``.
    """
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be 1-D (B,), got shape {tuple(lengths.shape)}")
    if max_length is None:
        max_length = int(lengths.max()) if lengths.numel() > 0 else 0
    positions = torch.arange(max_length, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


def durations_from_log(
    log_durations: torch.Tensor, x_mask: torch.Tensor, length_scale: float = 1.0
) -> torch.Tensor:
    """Integer frame counts from predicted log-durations.

    ``ceil(exp(log_durations) * x_mask * length_scale)``, raised to at least one frame for every real phoneme
    (a phoneme that gets no frame would vanish from the speech) and zero for padded phonemes.

    Args:
        log_durations: (B, 1, L) natural log of frames per phoneme.
        x_mask: (B, 1, L) 1 for real phonemes, 0 for padding.
        length_scale: > 1 slows speech down, < 1 speeds it up.

    Returns:
        (B, L) long frame counts.
    """
    if log_durations.shape != x_mask.shape or log_durations.ndim != 3 or log_durations.shape[1] != 1:
        raise ValueError(
            f"log_durations and x_mask must both be (B, 1, L); got {tuple(log_durations.shape)} "
            f"and {tuple(x_mask.shape)}"
        )
    if length_scale <= 0:
        raise ValueError(f"length_scale must be > 0, got {length_scale}")
    real = x_mask > 0
    frames = torch.ceil(torch.exp(log_durations) * x_mask * length_scale)
    frames = torch.where(real, frames.clamp(min=1), torch.zeros_like(frames))
    return frames.squeeze(1).long()


def generate_path(durations: torch.Tensor, y_mask: torch.Tensor) -> torch.Tensor:
    """Hard monotonic alignment: phoneme l owns frames [start_l, start_l + durations_l).

    Args:
        durations: (B, L) integer frames per phoneme (0 for padded phonemes).
        y_mask: (B, 1, T) 1 for real frames; each item's real frames must equal the sum of its durations.

    Returns:
        (B, L, T) float path, 1 where frame t belongs to phoneme l, else 0.
    """
    if durations.ndim != 2 or y_mask.ndim != 3 or y_mask.shape[1] != 1 or durations.shape[0] != y_mask.shape[0]:
        raise ValueError(
            f"expected durations (B, L) and y_mask (B, 1, T) with the same B; got {tuple(durations.shape)} "
            f"and {tuple(y_mask.shape)}"
        )
    durations = durations.long()
    if (durations < 0).any():
        raise ValueError("durations must be >= 0 frames")
    total_frames = durations.sum(dim=1)  # (B,)
    real_frames = (y_mask[:, 0] > 0).sum(dim=1)  # (B,)
    if not torch.equal(total_frames, real_frames):
        raise ValueError(
            f"durations cover {total_frames.tolist()} frames but y_mask has {real_frames.tolist()} real frames; "
            "build y_mask from y_lengths = durations.sum(1)"
        )
    ends = torch.cumsum(durations, dim=1)  # (B, L)
    starts = ends - durations
    frames = torch.arange(y_mask.shape[-1], device=durations.device)  # (T,)
    path = (frames >= starts.unsqueeze(-1)) & (frames < ends.unsqueeze(-1))  # (B, L, T)
    return path.to(y_mask.dtype) * y_mask


def expand(mu_x: torch.Tensor, path: torch.Tensor) -> torch.Tensor:
    """Repeat each phoneme's vector over its frames.

    Args:
        mu_x: (B, C, L) phoneme-level features (e.g. the prior mean in mel space, C = n_mels).
        path: (B, L, T) alignment from :func:`generate_path`.

    Returns:
        (B, C, T) frame-level features ``mu_y``; zero on frames no phoneme owns (padding).
    """
    if mu_x.ndim != 3 or path.ndim != 3 or mu_x.shape[0] != path.shape[0] or mu_x.shape[2] != path.shape[1]:
        raise ValueError(
            f"expected mu_x (B, C, L) and path (B, L, T) with matching B and L; got {tuple(mu_x.shape)} "
            f"and {tuple(path.shape)}"
        )
    return torch.bmm(mu_x, path.to(mu_x.dtype))  # (B, C, T)


def expand_durations(mu_x: torch.Tensor, durations: torch.Tensor, y_mask: torch.Tensor) -> torch.Tensor:
    """What ``expand(mu_x, generate_path(durations, y_mask))`` gives, bit for bit, without the (B, L, T) path: each
    frame gathers its phoneme's vector, so memory is O(B C T) rather than O(B L T) (a long text's many sentences
    would otherwise hold a path of sentences x phonemes x frames).

    Args:
        mu_x: (B, C, L) phoneme-level features.
        durations: (B, L) integer frames per phoneme (0 for padded phonemes).
        y_mask: (B, 1, T) 1 for real frames (T at least the longest item's frames).

    Returns:
        (B, C, T) frame-level features, zero on padded frames.
    """
    ends = torch.cumsum(durations.long(), dim=1)  # (B, L)
    frames = torch.arange(y_mask.shape[-1], device=durations.device).expand(durations.shape[0], -1)  # (B, T)
    owner = torch.searchsorted(ends, frames.contiguous(), right=True).clamp(max=durations.shape[1] - 1)  # (B, T)
    gathered = mu_x.gather(2, owner.unsqueeze(1).expand(-1, mu_x.shape[1], -1))  # (B, C, T)
    return gathered.masked_fill(y_mask == 0, 0.0)
