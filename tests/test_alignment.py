"""Monotonic alignment search against brute force over every monotonic alignment."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from melinterp.training.alignment import alignment_log_likelihood, durations_from_path, maximum_path


def brute_force_best(log_likelihood: torch.Tensor, num_tokens: int, num_frames: int) -> float:
    """Best total log-likelihood over all duration vectors (each >= 1 frame, summing to num_frames)."""
    best = -math.inf
    for cuts in itertools.combinations(range(1, num_frames), num_tokens - 1):
        bounds = (0, *cuts, num_frames)
        total = sum(
            log_likelihood[token, bounds[token] : bounds[token + 1]].sum().item()
            for token in range(num_tokens)
        )
        best = max(best, total)
    return best


def ragged_batch(seed: int, batch: int = 6, max_tokens: int = 4, max_frames: int = 7):
    generator = torch.Generator().manual_seed(seed)
    token_lengths = torch.randint(1, max_tokens + 1, (batch,), generator=generator)
    frame_lengths = torch.stack(
        [torch.randint(int(n), max_frames + 1, (1,), generator=generator)[0] for n in token_lengths]
    )
    log_likelihood = torch.randn(batch, max_tokens, max_frames, generator=generator, dtype=torch.float64) * 3
    x_mask = torch.arange(max_tokens)[None, :] < token_lengths[:, None]  # (B, L)
    y_mask = torch.arange(max_frames)[None, :] < frame_lengths[:, None]  # (B, T)
    mask = (x_mask[:, :, None] & y_mask[:, None, :]).float()  # (B, L, T)
    return log_likelihood, mask, token_lengths, frame_lengths


@pytest.mark.parametrize("seed", range(8))
def test_path_is_optimal_and_valid(seed):
    log_likelihood, mask, token_lengths, frame_lengths = ragged_batch(seed)
    path = maximum_path(log_likelihood, mask)
    assert path.shape == log_likelihood.shape and path.dtype == log_likelihood.dtype
    assert torch.all(path[mask == 0] == 0)
    for b in range(log_likelihood.shape[0]):
        num_tokens, num_frames = int(token_lengths[b]), int(frame_lengths[b])
        item = path[b, :num_tokens, :num_frames]
        assert torch.all(item.sum(dim=0) == 1), "every frame must get exactly one token"
        assert torch.all(item.sum(dim=1) >= 1), "every token must get at least one frame"
        token_of_frame = item.argmax(dim=0)
        steps = torch.diff(token_of_frame)
        assert token_of_frame[0] == 0 and token_of_frame[-1] == num_tokens - 1
        assert torch.all((steps == 0) | (steps == 1)), "the path must be monotonic, one token at a time"
        found = (log_likelihood[b] * path[b]).sum().item()
        assert found == pytest.approx(brute_force_best(log_likelihood[b], num_tokens, num_frames), abs=1e-9)


def test_known_alignment_is_recovered():
    # token 0 likes frames 0-1, token 1 frames 2-4, token 2 frame 5
    durations = torch.tensor([2, 3, 1])
    token_of_frame = torch.repeat_interleave(torch.arange(3), durations)
    log_likelihood = torch.full((1, 3, 6), -5.0)
    log_likelihood[0, token_of_frame, torch.arange(6)] = 0.0
    path = maximum_path(log_likelihood, torch.ones(1, 3, 6))
    assert durations_from_path(path).tolist() == [[2, 3, 1]]


def test_durations_from_ragged_path_sum_to_frame_lengths():
    log_likelihood, mask, token_lengths, frame_lengths = ragged_batch(seed=11)
    durations = durations_from_path(maximum_path(log_likelihood, mask))  # (B, L)
    assert durations.shape == token_lengths.shape + (4,)
    assert durations.sum(dim=1).tolist() == frame_lengths.double().tolist()
    padded_tokens = torch.arange(4)[None, :] >= token_lengths[:, None]
    assert torch.all(durations[padded_tokens] == 0)


def test_half_precision_input_keeps_its_dtype():
    log_likelihood, mask, _, _ = ragged_batch(seed=3)
    path = maximum_path(log_likelihood.half(), mask.half())
    assert path.dtype == torch.float16
    torch.testing.assert_close(path.double(), maximum_path(log_likelihood.float(), mask).double())


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"same shape \(B, L, T\)"):
        maximum_path(torch.zeros(1, 3, 5), torch.ones(1, 3, 4))
    mask = torch.ones(2, 4, 6)
    mask[1, :, 3:] = 0  # item 1: 4 tokens, 3 frames
    with pytest.raises(ValueError, match="item 1 has 4 tokens but 3 frames"):
        maximum_path(torch.zeros(2, 4, 6), mask)
    with pytest.raises(ValueError, match=r"path must be \(B, L, T\)"):
        durations_from_path(torch.zeros(3, 4))


def test_alignment_log_likelihood_matches_the_direct_formula():
    generator = torch.Generator().manual_seed(0)
    mu_x = torch.randn(2, 5, 3, generator=generator, dtype=torch.float64)  # (B, n_mels, L)
    y = torch.randn(2, 5, 7, generator=generator, dtype=torch.float64)  # (B, n_mels, T)
    direct = -0.5 * ((y[:, :, None, :] - mu_x[:, :, :, None]) ** 2 + math.log(2 * math.pi)).sum(dim=1)
    torch.testing.assert_close(alignment_log_likelihood(mu_x, y), direct)
    with pytest.raises(ValueError, match="must agree in B and n_mels"):
        alignment_log_likelihood(mu_x, y[:, :4])


def test_training_sized_batch():
    # (16, 150, 800) takes ~0.1-0.15 s on 2 CPU cores
    generator = torch.Generator().manual_seed(0)
    batch, num_tokens, num_frames = 16, 150, 800
    log_likelihood = torch.randn(batch, num_tokens, num_frames, generator=generator)
    path = maximum_path(log_likelihood, torch.ones(batch, num_tokens, num_frames))
    assert torch.all(path.sum(dim=1) == 1)
    assert torch.all(durations_from_path(path) >= 1)
