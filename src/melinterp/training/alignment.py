"""Monotonic alignment search (Glow-TTS / Grad-TTS MAS) in plain torch.

Finds, for each item, the monotonic path through the (token, frame) grid that maximises the summed
log-likelihood: the path starts at (token 0, frame 0), ends at (last token, last frame), and from one frame to the
next either stays on the same token or moves to the next one. Every frame gets exactly one token and every token at
least one frame, so the path's row sums are integer durations (frames).

The dynamic programme is vectorised over the batch and the tokens; only the frames are a Python loop, so it runs on
whatever device the inputs live on (no numba, no CPU round trip).
"""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def maximum_path(log_likelihood: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Most likely monotonic alignment of tokens to frames.

    Args:
        log_likelihood: `(B, L, T)` log p(frame t | token l), e.g. from `alignment_log_likelihood`.
        mask: `(B, L, T)`, 1 where both the token and the frame are real (x_mask[:, :, None] * y_mask[:, None, :]).
            Valid cells must form a top-left block per item (padding at the end).

    Returns:
        path: `(B, L, T)` 0/1 tensor of `log_likelihood`'s dtype; zero outside the mask.

    Raises:
        ValueError: on shape mismatch, or if an item has more tokens than frames (no such path exists).
    """
    if log_likelihood.ndim != 3 or mask.shape != log_likelihood.shape:
        raise ValueError(
            "maximum_path expects log_likelihood and mask of the same shape (B, L, T), "
            f"got {tuple(log_likelihood.shape)} and {tuple(mask.shape)}."
        )
    batch, num_tokens, num_frames = log_likelihood.shape
    device = log_likelihood.device
    mask = mask.bool()
    token_lengths = mask.any(dim=2).sum(dim=1)  # (B,)
    frame_lengths = mask.any(dim=1).sum(dim=1)  # (B,)
    too_short = (token_lengths > frame_lengths).nonzero().flatten()
    if too_short.numel() > 0:
        b = int(too_short[0])
        raise ValueError(
            f"every item needs at least as many frames as tokens; item {b} has {int(token_lengths[b])} tokens "
            f"but {int(frame_lengths[b])} frames."
        )

    path_dtype = log_likelihood.dtype
    dtype = torch.float64 if log_likelihood.dtype == torch.float64 else torch.float32  # half sums drift
    # (T, B, L): each frame's slice is contiguous, so every loop iteration is a few whole-tensor kernels
    log_likelihood = log_likelihood.to(dtype).masked_fill(~mask, -math.inf).permute(2, 0, 1).contiguous()

    # Forward pass. best[:, 1 + l] = score of the best path ending at (token l, current frame); column 0 is a
    # sentinel "token -1" that only the first frame may come from (every path starts at token 0).
    # moved_up[t, b, l] = that path came from token l - 1 at frame t - 1 (else it stayed on token l).
    moved_up = torch.zeros(num_frames, batch, num_tokens, dtype=torch.uint8, device=device)  # 0/1, subtractable
    best = torch.full((batch, num_tokens + 1), -math.inf, dtype=dtype, device=device)
    best[:, 0] = 0.0
    larger = torch.empty(batch, num_tokens, dtype=dtype, device=device)
    for t in range(num_frames):
        stay, from_previous_token = best[:, 1:], best[:, :-1]  # (B, L) each
        torch.gt(from_previous_token, stay, out=moved_up[t])
        torch.maximum(stay, from_previous_token, out=larger)
        torch.add(larger, log_likelihood[t], out=best[:, 1:])
        if t == 0:
            best[:, 0] = -math.inf

    # Backtrack from (last token, last frame) of each item; frames past an item's end keep it still.
    frame_is_real = torch.arange(num_frames, device=device)[:, None] < frame_lengths[None, :]  # (T, B)
    moved_up &= frame_is_real[:, :, None]
    token = (token_lengths - 1).clamp(min=0)[:, None]  # (B, 1); an empty item stays at 0 and is masked out
    token_of_frame = torch.empty(num_frames, batch, 1, dtype=torch.long, device=device)
    for t in range(num_frames - 1, -1, -1):
        token_of_frame[t] = token
        token = token - moved_up[t].gather(1, token)  # one token back where the path moved up

    path = torch.zeros(batch, num_tokens, num_frames, dtype=torch.bool, device=device)
    path.scatter_(1, token_of_frame.permute(1, 2, 0), True)  # (B, 1, T) token indices
    return (path & mask).to(path_dtype)


def durations_from_path(path: torch.Tensor) -> torch.Tensor:
    """Frames per token: `(B, L, T)` alignment path -> `(B, L)` durations (0 for padded tokens)."""
    if path.ndim != 3:
        raise ValueError(f"path must be (B, L, T), got shape {tuple(path.shape)}.")
    return path.sum(dim=-1)


def alignment_log_likelihood(mu_x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Grad-TTS's MAS input: log N(y_t; mu_x_l, I) for every token l and frame t.

    Args:
        mu_x: `(B, n_mels, L)` text encoder output (token-level prior means).
        y: `(B, n_mels, T)` target mel-spectrogram.

    Returns:
        `(B, L, T)` log-likelihoods (nats), computed with one batched matmul instead of a (B, n_mels, L, T) tensor.
    """
    if mu_x.ndim != 3 or y.ndim != 3 or mu_x.shape[:2] != y.shape[:2]:
        raise ValueError(
            f"mu_x (B, n_mels, L) and y (B, n_mels, T) must agree in B and n_mels, got {tuple(mu_x.shape)} "
            f"and {tuple(y.shape)}."
        )
    n_mels = mu_x.shape[1]
    # -1/2 |y - mu|^2 = -1/2 |y|^2 + mu . y - 1/2 |mu|^2
    y_sq = (y**2).sum(dim=1, keepdim=True)  # (B, 1, T)
    mu_sq = (mu_x**2).sum(dim=1).unsqueeze(-1)  # (B, L, 1)
    cross = torch.matmul(mu_x.transpose(1, 2), y)  # (B, L, T)
    return -0.5 * (y_sq + mu_sq) + cross - 0.5 * n_mels * math.log(2 * math.pi)


__all__ = ["alignment_log_likelihood", "durations_from_path", "maximum_path"]
