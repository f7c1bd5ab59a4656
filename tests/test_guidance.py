"""Guidance strategies on their own: the registry and option checks, boundary units, pitch masks, the
noise-tuning loss and its gradient, mix and dual-noise score composition, against known answers on the tiny
model."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from melinterp.audio import FeatureConfig, hz_to_mel_bin
from melinterp.guidance import (
    STRATEGIES,
    Conditioning,
    DualNoise,
    FrequencyRouting,
    GuidanceState,
    MixGuidance,
    ModeOptions,
    NoiseTuning,
    NoiseTuningConfig,
    PhonemeTiming,
    SingleReference,
    TemporalRouting,
    VoiceWeights,
    boundary_frame,
    make_strategy,
    noise_tuning_loss,
    parse_boundary,
)
from melinterp.models.attention_processors import AttentionStore
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
    durations = torch.tensor([[2, 4, 6, 4, 8]] * batch_size)
    return GuidanceState(
        mu_y=torch.randn(batch_size, 80, num_frames, generator=generator), y_mask=torch.ones(batch_size, 1, num_frames),
        ref1=ref1, ref2=ref2, ref1_analyses={"f0": [np.full(40, f0[b % len(f0)], dtype=np.float32)
                                                    for b in range(batch_size)]},
        ref2_analyses={}, timing=PhonemeTiming(durations, durations.sum(1), [2] * batch_size, True, 22050 / 256),
        feature_config=FeatureConfig(), padded_num_frames=pipe.unet.padded_num_frames(num_frames),
    )


def score_function(pipe, state):
    """The pipeline's U-Net call for this state: ``score(latents, t, conditioning, capture=None)``."""
    return functools.partial(pipe.unet_score, state=state)


def strategy_score(pipe, state, strategy, x, t, i=0):
    """What the pipeline's loop makes of one step's U-Net call under a strategy: the combined score."""
    guidance = strategy.prepare(state)
    scores = score_function(pipe, state)(strategy.model_input(guidance, x, i), t, guidance.conditioning)
    return strategy.combine_scores(guidance, scores, i)


# ---------------------------------------------------------------------------------------------------------------
# The registry, and options checked by the strategy that reads them
# ---------------------------------------------------------------------------------------------------------------


def test_every_mode_is_registered_in_its_order():
    assert list(STRATEGIES) == ["none", "mix", "temporal", "freq", "dual_noise"]
    assert STRATEGIES["none"] is SingleReference and STRATEGIES["dual_noise"] is DualNoise
    assert all(STRATEGIES[name].name == name for name in STRATEGIES)


def test_make_strategy_reads_the_options_of_its_mode():
    assert make_strategy("mix", ModeOptions(alpha=0.25)).alpha == 0.25
    assert type(make_strategy("freq", ModeOptions(freq_guidance="noise_tuning"))) is NoiseTuning
    unrouted = make_strategy("freq", ModeOptions(freq_guidance="none", pitch_mask="harmonic"))
    assert (type(unrouted), unrouted.route, unrouted.pitch_mask) == (FrequencyRouting, False, "harmonic")
    merging = make_strategy("dual_noise", ModeOptions(dual_noise_merge_step=3))
    assert merging.num_trajectories == 2 and merging.reference_analyses == ("f0",)
    assert make_strategy("dual_noise", ModeOptions(dual_noise_map="temporal")).reference_analyses == ()
    strategy = TemporalRouting(boundary=3)
    assert make_strategy(strategy, ModeOptions()) is strategy  # an object brings its own options


@pytest.mark.parametrize("options, message", [
    ({"alpha": 1.5}, r"alpha must be a weight of ref2 in \[0, 1\], got 1.5"),
    ({"boundary": "8"}, r"boundary as a str must be seconds"),
    ({"crossfade": -0.1}, r"crossfade must be a width >= 0 in seconds"),
    ({"routing_strength": float("nan")}, r"routing_strength must be >= 0, got nan"),
    ({"pitch_mask": "comb"}, r"pitch_mask must be one of 'band', 'harmonic', got 'comb'"),
    ({"freq_guidance": "bias"}, r"freq_guidance must be one of 'mask', 'noise_tuning', 'none', got 'bias'"),
    ({"dual_noise_map": "both"}, r"dual_noise_map must be one of 'freq', 'temporal', got 'both'"),
    ({"dual_noise_merge_step": 1.5}, r"dual_noise_merge_step must be an integer >= 0"),
])
def test_a_bad_option_is_refused_whatever_the_mode(options, message):
    for mode in STRATEGIES:
        with pytest.raises(ValueError, match=message):
            make_strategy(mode, ModeOptions(**options))


def test_an_unknown_mode_names_the_registered_ones():
    with pytest.raises(ValueError, match=r"mode must be one of 'none', 'mix', 'temporal', 'freq', 'dual_noise', "
                                         r"got 'blend'"):
        make_strategy("blend", ModeOptions())
    with pytest.raises(ValueError, match=r"mode must be one of .*, got \['freq'\]"):
        make_strategy(["freq"], ModeOptions())


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
    guidance = TemporalRouting(boundary=1, crossfade=0.0).prepare(state)
    expected = (torch.arange(T) < 12).float().expand(1, 80, T)
    assert torch.equal(guidance.routing_map, expected)
    assert guidance.conditioning.style_tokens.shape[1] == 8 + 6  # keys [ref1 ; ref2]
    assert guidance.conditioning.cross_attention_kwargs["routing"].routing_map.shape == (1, 80, 24)


def test_temporal_phoneme_weights_follow_the_routing_map(pipe):
    """Per phoneme id, the mean of the map over its frames: ids 0-2 lie before the boundary (frame 12), 3-4 after."""
    state = make_state(pipe)
    strategy = TemporalRouting(boundary=1, crossfade=0.0)
    assert strategy.voice_weights() == VoiceWeights(0.5, 0.5)  # the pass that decides the durations
    assert strategy.phoneme_weights(state.timing).tolist() == [[1.0, 1.0, 1.0, 0.0, 0.0]]
    assert SingleReference().phoneme_weights(state.timing) is None


# ---------------------------------------------------------------------------------------------------------------
# Pitch masks
# ---------------------------------------------------------------------------------------------------------------


def test_band_pitch_mask_covers_f0_and_harmonics(pipe):
    state = make_state(pipe, f0=(200.0,))
    guidance = FrequencyRouting("band").prepare(state)
    column = guidance.pitch_mask[0, :, 0]
    for k in (1, 2, 3):
        assert column[int(round(float(hz_to_mel_bin(k * 200.0))))] == 1.0
    assert column[int(round(float(hz_to_mel_bin(4 * 200.0)))) + 3] == 0.0  # above the third harmonic
    assert torch.equal(guidance.routing_map, guidance.pitch_mask)  # R = P
    assert torch.equal(guidance.pitch_mask, guidance.pitch_mask[..., :1].expand_as(guidance.pitch_mask))  # each frame


def test_harmonic_pitch_mask_stretches_ref1_voiced_contour(pipe):
    state = make_state(pipe)
    f0 = np.zeros(40, dtype=np.float32)
    f0[10:20], f0[20:30] = 150.0, 300.0  # unvoiced edges are dropped, so the contour fills T
    state.ref1_analyses = {"f0": [f0]}
    guidance = FrequencyRouting("harmonic").prepare(state)
    low, high = int(round(float(hz_to_mel_bin(150.0)))), int(round(float(hz_to_mel_bin(300.0))))
    first, last = guidance.pitch_mask[0, :, 0], guidance.pitch_mask[0, :, -1]
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
    score = score_function(pipe, state)
    tuning = NoiseTuningConfig(t_start=1.0, t_end=0.0, step_size=0.2, iterations=1)
    strategy = NoiseTuning("band", tuning)
    guidance = strategy.prepare(state)
    assert "routing" not in (guidance.conditioning.cross_attention_kwargs or {})  # keys both refs, no bias
    x, t = state.mu_y + torch.randn(state.mu_y.shape, generator=torch.Generator().manual_seed(1)), torch.tensor(0.8)
    gradient = strategy.loss_gradient(state, guidance, x, t, score)
    assert gradient.abs().max() > 1e-6
    assert torch.isfinite(gradient).all()

    def loss(sample):
        store = AttentionStore(num_ref1_tokens=8, sample_size=state.padded_size, detach=True)
        score(sample, t, guidance.conditioning, store)
        mass = store.ref1_mass()[..., :T]
        return noise_tuning_loss(mass, guidance.pitch_mask, state.y_mask, 1.0).item()

    tuned = strategy.adjust_latents(state, guidance, x, t, 0, score)
    rms = (tuned - x).pow(2).mean().sqrt().item()
    assert rms == pytest.approx(0.2, rel=1e-4)  # step_size is the RMS change per iteration
    assert loss(tuned) < loss(x)
    # outside [t_end, t_start] nothing changes
    late = NoiseTuning("band", NoiseTuningConfig(t_start=0.5, t_end=0.2))
    assert late.adjust_latents(state, late.prepare(state), x, torch.tensor(0.8), 0, score) is x


def test_whole_row_mass_has_zero_gradient(pipe):
    """Summing a query's whole row (both references) is a constant 1: the design's warning, checked."""
    state = make_state(pipe)
    guidance = FrequencyRouting("band", route=False).prepare(state)
    whole_rows = AttentionStore(num_ref1_tokens=8 + 6, sample_size=state.padded_size)  # "ref1 block" = every key
    with torch.enable_grad():
        x = state.mu_y.clone().requires_grad_(True)
        score_function(pipe, state)(x, torch.tensor(0.8), guidance.conditioning, whole_rows)
        whole = whole_rows.ref1_mass()
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


def single_scores(pipe, state, x, t):
    score = score_function(pipe, state)
    return score(x, t, Conditioning.of(state.ref1)), score(x, t, Conditioning.of(state.ref2))


def test_mix_is_the_weighted_sum_of_single_reference_scores(pipe):
    state = make_state(pipe, batch_size=2)
    x, t = state.mu_y + 0.3, torch.tensor(0.6)
    s1, s2 = single_scores(pipe, state, x, t)
    strategy = MixGuidance(alpha=0.3)
    torch.testing.assert_close(strategy_score(pipe, state, strategy, x, t), 0.7 * s1 + 0.3 * s2, atol=1e-5,
                               rtol=1e-5)
    assert strategy.voice_weights() == VoiceWeights(style=0.7, pitch=0.7)


def test_dual_noise_with_routing_map_one_is_the_single_reference_score(pipe):
    state = make_state(pipe)
    x, t = state.mu_y + 0.3, torch.tensor(0.6)
    strategy = DualNoise("temporal", boundary=1.0, crossfade=0.0)  # boundary at the end: R == 1 everywhere
    assert torch.equal(strategy.prepare(state).routing_map, torch.ones(1, 80, T))
    torch.testing.assert_close(strategy_score(pipe, state, strategy, x, t),
                               strategy_score(pipe, state, SingleReference(), x, t), atol=1e-5, rtol=1e-5)


def test_dual_noise_composes_by_the_pitch_mask(pipe):
    state = make_state(pipe)
    x, t = state.mu_y + 0.3, torch.tensor(0.6)
    s1, s2 = single_scores(pipe, state, x, t)
    strategy = DualNoise("freq")
    routing_map = strategy.prepare(state).pitch_mask
    assert 0 < routing_map.mean() < 1
    torch.testing.assert_close(strategy_score(pipe, state, strategy, x, t), routing_map * s1 + (1 - routing_map) * s2,
                               atol=1e-5, rtol=1e-5)


def test_dual_noise_merge_step_merges_two_trajectories(pipe):
    """Two trajectories ride as one batch of 2B: each follows its own reference's score until the merge step,
    where they become one, composed by the map from then on."""
    state = make_state(pipe)
    strategy = DualNoise("temporal", boundary=0.5, crossfade=0.0, merge_step=2)
    assert strategy.num_trajectories == 2
    guidance = strategy.prepare(state)
    x, x2 = state.mu_y + 1.0, state.mu_y - 1.0
    latents = torch.cat([x, x2])  # (2B, n_mels, T)
    t = torch.tensor(1.0)
    assert strategy.model_input(guidance, latents, 0) is latents
    s1, s2 = single_scores(pipe, state, x, t)[0], single_scores(pipe, state, x2, t)[1]
    torch.testing.assert_close(strategy_score(pipe, state, strategy, latents, t), torch.cat([s1, s2]), atol=1e-5,
                               rtol=1e-5)
    assert strategy.adjust_latents(state, guidance, latents, t, 1, None) is latents
    merged = strategy.adjust_latents(state, guidance, latents, torch.tensor(0.5), 2, None)
    torch.testing.assert_close(merged[:1, :, :12], x[..., :12])  # before the boundary, ref1's trajectory
    torch.testing.assert_close(merged[:1, :, 12:], x2[..., 12:])  # after it, ref2's
    torch.testing.assert_close(merged[1:], merged[:1])
    after = torch.cat([merged[:1], torch.zeros_like(x)])  # the second rows are not read after the merge
    torch.testing.assert_close(strategy.model_input(guidance, after, 2), torch.cat([merged[:1], merged[:1]]))
    composed = strategy_score(pipe, state, strategy, after, torch.tensor(0.5), i=2)
    assert composed.shape == (2, 80, T)
    merged_from_the_start = DualNoise("temporal", boundary=0.5, crossfade=0.0)
    torch.testing.assert_close(composed[:1], strategy_score(pipe, state, merged_from_the_start, merged[:1],
                                                            torch.tensor(0.5)), atol=1e-5, rtol=1e-5)


def test_dual_noise_rejects_bad_options():
    with pytest.raises(ValueError, match="dual_noise_map must be one of 'freq', 'temporal'"):
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
