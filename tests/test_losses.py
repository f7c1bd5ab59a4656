"""Grad-TTS losses, segment cropping and style dropout, against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from melinterp.training.losses import (
    MelSegments,
    crop_frames,
    duration_loss,
    prior_loss,
    random_segment_starts,
    random_segments,
    score_matching_loss,
    style_dropout,
)


def frame_mask(lengths: list[int], num_frames: int) -> torch.Tensor:
    return (torch.arange(num_frames)[None, :] < torch.tensor(lengths)[:, None]).float().unsqueeze(1)  # (B, 1, T)


def test_duration_loss_known_value_and_mask():
    pred = torch.tensor([[[1.0, 2.0, 9.0]], [[0.0, 0.0, 0.0]]])  # (B, 1, L)
    target = torch.tensor([[[0.0, 0.0, 0.0]], [[3.0, 0.0, 0.0]]])
    x_mask = frame_mask([2, 1], 3)
    # real tokens: errors 1, 2 (item 0) and 3 (item 1) -> (1 + 4 + 9) / 3
    assert duration_loss(pred, target, x_mask).item() == pytest.approx(14 / 3)
    pred[0, 0, 2] = -100.0  # a padded token changes nothing
    assert duration_loss(pred, target, x_mask).item() == pytest.approx(14 / 3)


def test_prior_loss_of_the_mean_is_half_log_two_pi():
    mu_y = torch.randn(2, 80, 12, generator=torch.Generator().manual_seed(0))
    y_mask = frame_mask([12, 5], 12)
    assert prior_loss(mu_y.clone(), mu_y, y_mask).item() == pytest.approx(0.5 * math.log(2 * math.pi))


def test_prior_loss_known_value_and_mask():
    mu_y = torch.zeros(2, 4, 6)
    y = torch.full((2, 4, 6), 2.0)
    y_mask = frame_mask([6, 3], 6)
    expected = 0.5 * (4.0 + math.log(2 * math.pi))
    assert prior_loss(y, mu_y, y_mask).item() == pytest.approx(expected)
    y[1, :, 3:] = 1e6  # padded frames change nothing
    assert prior_loss(y, mu_y, y_mask).item() == pytest.approx(expected)
    # normalised per (mel bin, frame): 9 real frames x 4 bins
    y[0, 0, 0] = 4.0  # one cell's squared error goes 4 -> 16
    assert prior_loss(y, mu_y, y_mask).item() == pytest.approx(expected + 0.5 * 12 / 36)


@pytest.mark.parametrize("shape, mask_shape", [((3, 8, 10), (3, 1, 10)), ((3, 1, 8, 10), (3, 1, 1, 10))])
def test_score_matching_loss_zero_for_the_true_score(shape, mask_shape):
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(shape, generator=generator)
    std = torch.tensor([0.1, 0.5, 1.0])
    true_score = -noise / std.view(-1, *([1] * (len(shape) - 1)))
    mask = torch.ones(mask_shape)
    assert score_matching_loss(true_score, noise, std, mask).item() == pytest.approx(0.0, abs=1e-10)


def test_score_matching_loss_known_value_and_mask():
    noise = torch.zeros(2, 4, 5)
    score = torch.ones(2, 4, 5)
    mask = frame_mask([5, 2], 5)
    std = torch.tensor([1.0, 2.0])
    # item 0: (1 * 1)^2 on 20 cells; item 1: (1 * 2)^2 on 8 cells -> (20 + 32) / 28
    assert score_matching_loss(score, noise, std, mask).item() == pytest.approx(52 / 28)
    score[1, :, 2:] = 1e6
    assert score_matching_loss(score, noise, std, mask).item() == pytest.approx(52 / 28)
    assert score_matching_loss(torch.ones(2, 4, 5), noise, 0.5, mask).item() == pytest.approx(0.25)


def test_random_segments_crop_the_same_frames():
    batch, n_mels, num_frames, segment = 3, 4, 20, 6
    frames = torch.arange(num_frames, dtype=torch.float32)
    mel = frames.expand(batch, n_mels, num_frames).clone()  # value = frame index
    mu_y = -mel
    mask = frame_mask([20, 9, 4], num_frames)
    mel, mu_y = mel * mask, mu_y * mask
    segments = random_segments(mel, mu_y, mask, segment, generator=torch.Generator().manual_seed(0))
    assert isinstance(segments, MelSegments)
    mel_segment, mu_y_segment, mask_segment = segments  # unpacks like Grad-TTS's (y_cut, mu_cut, mask_cut)
    assert mel_segment is segments.mel and mu_y_segment is segments.mu_y and mask_segment is segments.mask
    assert segments.mel.shape == segments.mu_y.shape == (batch, n_mels, segment)
    assert segments.mask.shape == (batch, 1, segment)
    start = random_segment_starts(mask, segment, generator=torch.Generator().manual_seed(0))  # same draw
    assert 0 <= start[0] <= 14 and 0 <= start[1] <= 3 and start[2] == 0
    for b in range(2):  # long enough: a full window of consecutive real frames
        expected = start[b] + torch.arange(segment, dtype=torch.float32)
        torch.testing.assert_close(segments.mel[b, 0], expected)
        torch.testing.assert_close(segments.mu_y[b, 0], -expected)
        assert torch.all(segments.mask[b] == 1)
    # shorter than the segment: kept whole, zero-padded, masked
    torch.testing.assert_close(segments.mel[2, 0], torch.tensor([0.0, 1, 2, 3, 0, 0]))
    torch.testing.assert_close(segments.mask[2, 0], torch.tensor([1.0, 1, 1, 1, 0, 0]))


def test_random_segments_starts_cover_every_window_uniformly():
    num_frames, segment = 8, 5  # starts 0..3
    starts = random_segment_starts(torch.ones(4000, 1, num_frames), segment, torch.Generator().manual_seed(1))
    counts = torch.bincount(starts, minlength=4)
    assert counts.shape == (4,)
    assert torch.all((counts > 900) & (counts < 1100))


def test_random_segments_wider_than_every_item_pads():
    mel = torch.ones(2, 3, 5)
    segments = random_segments(mel, mel, frame_mask([5, 3], 5), 8)
    assert segments.mel.shape == (2, 3, 8)
    assert segments.mask.sum(dim=(1, 2)).tolist() == [5.0, 3.0]


def test_random_segments_is_reproducible():
    mel = torch.randn(4, 3, 30, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(4, 1, 30)
    first = random_segments(mel, mel, mask, 10, torch.Generator().manual_seed(5))
    again = random_segments(mel, mel, mask, 10, torch.Generator().manual_seed(5))
    torch.testing.assert_close(first.mel, again.mel, rtol=0, atol=0)


def test_crop_frames_known_windows_and_zero_past_the_end():
    values = torch.arange(10.0).expand(2, 3, 10)  # (B, C, T), value = frame index
    cropped = crop_frames(values, torch.tensor([2, 8]), 4)
    torch.testing.assert_close(cropped[0, 1], torch.tensor([2.0, 3, 4, 5]))
    torch.testing.assert_close(cropped[1, 2], torch.tensor([8.0, 9, 0, 0]))


def test_style_dropout_rate_and_edges():
    drop = style_dropout(0.2, 10000, torch.Generator().manual_seed(0))
    assert drop.dtype == torch.bool and drop.shape == (10000,)
    assert drop.float().mean().item() == pytest.approx(0.2, abs=0.015)
    assert not style_dropout(0.0, 50, torch.Generator().manual_seed(0)).any()
    assert style_dropout(1.0, 50, torch.Generator().manual_seed(0)).all()
    again = style_dropout(0.2, 10000, torch.Generator().manual_seed(0))
    assert torch.equal(drop, again)


def test_bad_arguments_raise():
    x = torch.zeros(2, 4, 5)
    with pytest.raises(ValueError, match="y and mu_y must have the same shape"):
        prior_loss(x, torch.zeros(2, 4, 6), torch.ones(2, 1, 5))
    with pytest.raises(ValueError, match="prior_loss: mask of shape"):
        prior_loss(x, x, torch.ones(2, 1, 6))
    with pytest.raises(ValueError, match="log_durations_pred and log_durations_target"):
        duration_loss(torch.zeros(2, 1, 3), torch.zeros(2, 1, 4), torch.ones(2, 1, 3))
    with pytest.raises(ValueError, match=r"std must be a float or a \(B,\) tensor with B = 2"):
        score_matching_loss(x, x, torch.ones(3), torch.ones(2, 1, 5))
    with pytest.raises(ValueError, match="segment_frames must be a positive integer"):
        random_segments(x, x, torch.ones(2, 1, 5), 0)
    with pytest.raises(ValueError, match=r"mask \(B, 1, T\)"):
        random_segments(x, x, torch.ones(2, 5), 3)
    with pytest.raises(ValueError, match=r"start_frames \(B,\)"):
        crop_frames(x, torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="mask_prob must lie in"):
        style_dropout(1.5, 4)
    with pytest.raises(ValueError, match="batch_size"):
        style_dropout(0.5, -1)
