"""Guidance strategies on their own: boundary units, pitch masks, the noise-tuning loss and its gradient, mix and
dual-noise score composition, classifier-free guidance, against known answers on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from melinterp.audio import FeatureConfig, hz_to_mel_bin
from melinterp.guidance import (
    Conditioning,
    DualNoise,
    FrequencyRouting,
    GuidanceState,
    MixGuidance,
    NoiseTuning,
    NoiseTuningConfig,
    SingleReference,
    TemporalRouting,
    VoiceWeights,
    boundary_frame,
    noise_tuning_loss,
    parse_boundary,
    unet_score,
)
from melinterp.testing import tiny_pipeline

T = 24


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def make_state(pipe, batch_size=1, num_frames=T, f0=(150.0,)) -> GuidanceState:
    """A state with random mu_y and two references of 8 and 6 tokens (f0 contour constant at f0[b] Hz)."""
    generator = torch.Generator().manual_seed(0)
    ref1 = pipe.style_encoder(torch.randn(batch_size, 80, 32, generator=generator))
    ref2 = pipe.style_encoder(torch.randn(batch_size, 80, 24, generator=generator))
    pipe.scheduler.set_timesteps(4)
    return GuidanceState(
        unet=pipe.unet, scheduler=pipe.scheduler, mu_y=torch.randn(batch_size, 80, num_frames, generator=generator),
        y_mask=torch.ones(batch_size, 1, num_frames), ref1=ref1, ref2=ref2,
        null_style=pipe.style_encoder.null_style(batch_size, 1), feature_config=FeatureConfig(),
        durations=torch.tensor([[2, 4, 6, 4, 8]] * batch_size), phoneme_counts=[2] * batch_size, add_blank=True,
        ref1_f0=[np.full(40, f0[b % len(f0)], dtype=np.float32) for b in range(batch_size)],
    )


# ---------------------------------------------------------------------------------------------------------------
# Boundary units
# ---------------------------------------------------------------------------------------------------------------


def test_parse_boundary_units():
    assert parse_boundary(0.25) == ("fraction", 0.25)
    assert parse_boundary(1.0) == ("fraction", 1.0)
    assert parse_boundary(3) == ("phoneme", 3)
    assert parse_boundary("0.8s") == ("seconds", 0.8)


@pytest.mark.parametrize("bad, message", [
    (1.5, "outside the utterance"), (-0.1, "outside the utterance"), (-2, "phoneme index must be >= 0"),
    ("0.8", "seconds with the unit"), ("xs", "seconds with the unit"), (True, "fraction of the utterance"),
    (None, "fraction of the utterance"),
])
def test_parse_boundary_rejects(bad, message):
    with pytest.raises(ValueError, match=message):
        parse_boundary(bad)


def test_boundary_frame_known_answers():
    durations = torch.tensor([2, 4, 6, 4, 8])  # ids: blank, sym0, blank, sym1, blank -> 24 frames
    fps = 22050 / 256
    assert boundary_frame(0.5, durations, 24, fps, 2, True) == 12.0
    assert boundary_frame(0, durations, 24, fps, 2, True) == 2.0  # symbol 0 starts after the leading blank
    assert boundary_frame(1, durations, 24, fps, 2, True) == 12.0  # 2 + 4 + 6
    assert boundary_frame(2, durations, 24, fps, 2, True) == 24.0  # the end
    assert boundary_frame(1, durations, 24, fps, 5, False) == 2.0  # no blanks: symbol k is id k
    assert boundary_frame("0.1s", durations, 24, fps, 2, True) == pytest.approx(0.1 * fps)
    with pytest.raises(ValueError, match="boundary 3 is outside the utterance: its phoneme string has 2 symbols"):
        boundary_frame(3, durations, 24, fps, 2, True)
    with pytest.raises(ValueError, match="boundary '1s' is outside the utterance, which lasts 0.279 s"):
        boundary_frame("1s", durations, 24, fps, 2, True)


def test_temporal_routing_map_switches_at_the_boundary(pipe):
    state = make_state(pipe)
    TemporalRouting(boundary=1, crossfade=0.0).prepare(state)
    expected = (torch.arange(T) < 12).float().expand(1, 80, T)
    assert torch.equal(state.routing_map, expected)
    assert state.conditioning.style_tokens.shape[1] == 8 + 6  # keys [ref1 ; ref2]
    assert state.conditioning.cross_attention_kwargs["routing"].routing_map.shape == (1, 80, 24)


# ---------------------------------------------------------------------------------------------------------------
# Pitch masks
# ---------------------------------------------------------------------------------------------------------------


def test_band_pitch_mask_covers_f0_and_harmonics(pipe):
    state = make_state(pipe, f0=(200.0,))
    FrequencyRouting("band").prepare(state)
    column = state.pitch_mask[0, :, 0]
    for k in (1, 2, 3):
        assert column[int(round(float(hz_to_mel_bin(k * 200.0))))] == 1.0
    assert column[int(round(float(hz_to_mel_bin(4 * 200.0)))) + 3] == 0.0  # above the third harmonic
    assert torch.equal(state.routing_map, state.pitch_mask)  # R = P
    assert torch.equal(state.pitch_mask, state.pitch_mask[..., :1].expand_as(state.pitch_mask))  # same each frame


def test_harmonic_pitch_mask_stretches_ref1_voiced_contour(pipe):
    state = make_state(pipe)
    f0 = np.zeros(40, dtype=np.float32)
    f0[10:20], f0[20:30] = 150.0, 300.0  # unvoiced edges are dropped, so the contour fills T
    state.ref1_f0 = [f0]
    FrequencyRouting("harmonic").prepare(state)
    low, high = int(round(float(hz_to_mel_bin(150.0)))), int(round(float(hz_to_mel_bin(300.0))))
    first, last = state.pitch_mask[0, :, 0], state.pitch_mask[0, :, -1]
    assert first[low] > 0.5 and last[high] > 0.5 and last[low] < 0.5


# ---------------------------------------------------------------------------------------------------------------
# Noise tuning
# ---------------------------------------------------------------------------------------------------------------


def test_noise_tuning_loss_known_values():
    pitch_mask = torch.zeros(1, 80, 4)
    pitch_mask[:, :20] = 1.0
    ref1_mass = torch.full((1, 80, 4), 0.25)
    ref1_mass[:, :20] = 0.75
    y_mask = torch.ones(1, 1, 4)
    # -mean_P A(ref1) - gamma * mean_notP (1 - A(ref1)) = -0.75 - 2 * 0.75
    assert noise_tuning_loss(ref1_mass, pitch_mask, y_mask, gamma=2.0).item() == pytest.approx(-2.25)
    # padded frames do not count
    y_mask[..., 2:] = 0.0
    ref1_mass[..., 2:] = 0.0
    assert noise_tuning_loss(ref1_mass, pitch_mask, y_mask, gamma=2.0).item() == pytest.approx(-2.25)


@pytest.mark.slow
def test_noise_tuning_gradient_is_nonzero_and_a_step_lowers_the_loss(pipe):
    state = make_state(pipe)
    tuning = NoiseTuningConfig(t_start=1.0, t_end=0.0, step_size=0.2, iterations=1)
    strategy = NoiseTuning("band", tuning)
    strategy.prepare(state)
    assert "routing" not in (state.conditioning.cross_attention_kwargs or {})  # keys both refs, no bias
    x, t = state.mu_y + torch.randn(state.mu_y.shape, generator=torch.Generator().manual_seed(1)), torch.tensor(0.8)
    gradient = strategy.loss_gradient(state, x, t)
    assert gradient.abs().max() > 1e-6
    assert torch.isfinite(gradient).all()

    def loss(sample):
        from melinterp.models.attention_processors import AttentionStore

        store = AttentionStore(num_ref1_tokens=8, sample_size=state.padded_size, detach=True)
        c = state.conditioning
        unet_score(state, sample, t, Conditioning(c.style_tokens, c.token_mask, c.style_vector, {"capture": store}))
        mass = store.ref1_mass(size=state.padded_size)[..., :T]
        return noise_tuning_loss(mass, state.pitch_mask, state.y_mask, 1.0).item()

    tuned = strategy.adjust_sample(state, x, t, 0)
    rms = (tuned - x).pow(2).mean().sqrt().item()
    assert rms == pytest.approx(0.2, rel=1e-4)  # step_size is the RMS change per iteration
    assert loss(tuned) < loss(x)
    # outside [t_end, t_start] nothing changes
    late = NoiseTuning("band", NoiseTuningConfig(t_start=0.5, t_end=0.2))
    late.prepare(state)
    assert late.adjust_sample(state, x, torch.tensor(0.8), 0) is x


def test_whole_row_mass_has_zero_gradient(pipe):
    """Summing a query's whole row (both references) is a constant 1: the design's warning, checked."""
    state = make_state(pipe)
    FrequencyRouting("band", route=False).prepare(state)
    probs_store = __import__("melinterp.models.attention_processors", fromlist=["AttentionStore"]).AttentionStore(
        num_ref1_tokens=8 + 6, sample_size=state.padded_size, detach=False)  # "ref1 block" = every key
    c = state.conditioning
    with torch.enable_grad():
        x = state.mu_y.clone().requires_grad_(True)
        unet_score(state, x, torch.tensor(0.8),
                   Conditioning(c.style_tokens, c.token_mask, c.style_vector, {"capture": probs_store}))
        whole = probs_store.ref1_mass(size=state.padded_size)
        (gradient,) = torch.autograd.grad(whole.sum(), x)
    assert torch.allclose(whole, torch.ones_like(whole), atol=1e-5)
    assert gradient.abs().max() < 1e-4


def test_noise_tuning_config_rejects_bad_values():
    with pytest.raises(ValueError, match="0 <= t_end <= t_start <= 1"):
        NoiseTuningConfig(t_start=0.3, t_end=0.6)
    with pytest.raises(ValueError, match="iterations"):
        NoiseTuningConfig(iterations=-1)


# ---------------------------------------------------------------------------------------------------------------
# Score composition
# ---------------------------------------------------------------------------------------------------------------


def single_scores(state, x, t):
    s1 = unet_score(state, x, t, Conditioning.of(state.ref1))
    s2 = unet_score(state, x, t, Conditioning.of(state.ref2))
    return s1, s2


def test_mix_is_the_weighted_sum_of_single_reference_scores(pipe):
    state = make_state(pipe, batch_size=2)
    x, t = state.mu_y + 0.3, torch.tensor(0.6)
    s1, s2 = single_scores(state, x, t)
    strategy = MixGuidance(alpha=0.3)
    strategy.prepare(state)
    torch.testing.assert_close(strategy.score(state, x, t, 0), 0.7 * s1 + 0.3 * s2, atol=1e-5, rtol=1e-5)
    assert strategy.voice_weights() == VoiceWeights(style=0.7, pitch=0.7)


def test_dual_noise_with_routing_map_one_is_the_single_reference_score(pipe):
    state = make_state(pipe)
    x, t = state.mu_y + 0.3, torch.tensor(0.6)
    strategy = DualNoise("temporal", boundary=1.0, crossfade=0.0)  # boundary at the end: R == 1 everywhere
    strategy.prepare(state)
    assert torch.equal(state.routing_map, torch.ones(1, 80, T))
    single = SingleReference()
    reference_state = make_state(pipe)
    single.prepare(reference_state)
    torch.testing.assert_close(strategy.score(state, x, t, 0), single.score(reference_state, x, t, 0),
                               atol=1e-5, rtol=1e-5)


def test_dual_noise_composes_by_the_pitch_mask(pipe):
    state = make_state(pipe)
    x, t = state.mu_y + 0.3, torch.tensor(0.6)
    s1, s2 = single_scores(state, x, t)
    strategy = DualNoise("freq")
    strategy.prepare(state)
    routing_map = state.pitch_mask
    assert 0 < routing_map.mean() < 1
    torch.testing.assert_close(strategy.score(state, x, t, 0), routing_map * s1 + (1 - routing_map) * s2,
                               atol=1e-5, rtol=1e-5)


def test_dual_noise_merge_step_merges_two_trajectories(pipe):
    state = make_state(pipe)
    strategy = DualNoise("temporal", boundary=0.5, crossfade=0.0, merge_step=2)
    assert strategy.needs_second_noise
    strategy.prepare(state)
    state.second_noise = state.mu_y - 1.0
    x = state.mu_y + 1.0
    x = strategy.adjust_sample(state, x, torch.tensor(1.0), 0)
    strategy.score(state, x, torch.tensor(1.0), 0)  # steps x2 too
    x2 = state.extras["x2"]
    assert not torch.equal(x2, state.second_noise)
    merged = strategy.adjust_sample(state, x, torch.tensor(0.5), 2)
    torch.testing.assert_close(merged[..., :12], x[..., :12])
    torch.testing.assert_close(merged[..., 12:], x2[..., 12:])


def test_dual_noise_rejects_bad_options():
    with pytest.raises(ValueError, match="dual_noise_map must be one of freq, temporal"):
        DualNoise("spectral")
    with pytest.raises(ValueError, match="dual_noise_merge_step"):
        DualNoise("freq", merge_step=-1)


def test_conditioning_stack_pads_tokens_with_masked_keys(pipe):
    state = make_state(pipe)
    stacked = Conditioning.stack(Conditioning.of(state.ref1), Conditioning.of(state.ref2))
    assert stacked.style_tokens.shape == (2, 8, 16)
    assert stacked.token_mask.tolist() == [[True] * 8, [True] * 6 + [False] * 2]


def test_conditioning_gives_the_unet_no_mask_when_every_token_is_real(pipe):
    state = make_state(pipe)
    whole = Conditioning.of(state.ref1)
    assert bool(whole.token_mask.all()) and whole.attention_mask is None  # attention then runs with no key bias
    stacked = Conditioning.stack(Conditioning.of(state.ref1), Conditioning.of(state.ref2))
    assert stacked.attention_mask is stacked.token_mask  # ref2's padded keys stay masked
    for conditioning in (whole, stacked):
        copy = conditioning.with_kwargs({"capture": "store"})
        assert copy.cross_attention_kwargs == {"capture": "store"} and copy.style_tokens is conditioning.style_tokens
        assert copy._all_real is not None  # inherited: no second check
        assert (copy.attention_mask is None) == (conditioning.attention_mask is None)
