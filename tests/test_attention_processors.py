"""Attention processors: SDPA equivalence, routing bias geometry at every U-Net level, capture, key padding."""

from __future__ import annotations

import logging

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

import melinterp.models.attention_processors as ap
from melinterp.models.attention_processors import (
    AttentionStore,
    MelAttnProcessor,
    RoutingSpec,
    frequency_routing_map,
    install_processors,
    query_grid,
    resize_routing_map,
    temporal_routing_map,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # the tiny U-Net runs ~3x faster on one thread

N_MELS, T, S1, S2, TOKEN_DIM = 80, 8, 4, 4, 16
GRIDS = {(80, 8), (40, 4), (20, 2)}  # the three levels of the tiny U-Net


def tiny_unet() -> UNet2DConditionModel:
    """A 3-level U-Net over (B, 2, 80, T) with cross-attention everywhere (attn1 too, via only_cross_attention)."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=None,
        in_channels=2,
        out_channels=1,
        block_out_channels=(8, 16, 16),
        down_block_types=("CrossAttnDownBlock2D",) * 3,
        up_block_types=("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=TOKEN_DIM,
        attention_head_dim=4,
        only_cross_attention=True,
        layers_per_block=1,
        norm_num_groups=4,
    )
    return unet.eval()


@pytest.fixture
def unet():
    return tiny_unet()


@pytest.fixture
def inputs():
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(2, 2, N_MELS, T, generator=generator)  # (B, [x_t, mu_y], 80, T)
    tokens = torch.randn(2, S1 + S2, TOKEN_DIM, generator=generator)  # (B, [ref1 ; ref2], C)
    timestep = torch.tensor([500, 500])
    return sample, timestep, tokens


def run(unet, inputs, **kwargs):
    sample, timestep, tokens = inputs
    return unet(kwargs.pop("sample", sample), timestep, tokens, **kwargs).sample


def store(num_ref1_tokens=S1, **kwargs) -> AttentionStore:
    return AttentionStore(num_ref1_tokens=num_ref1_tokens, sample_size=(N_MELS, T), **kwargs)


def biased_softmax(query, key, key_bias=None, query_log_weights=None, key_blocks=None):
    """softmax(q k^T / sqrt(d) + bias) over keys with the bias materialised: the formula `folded_attention` folds
    into one fused call. (B, heads, N, S) float32."""
    scores = (query @ key.transpose(-1, -2)).float() * query.shape[-1] ** -0.5
    if key_bias is not None:
        scores = scores + key_bias.float()  # (B, heads or 1, 1, S)
    if query_log_weights is not None:
        scores = scores + (query_log_weights.float() @ key_blocks.float().T).unsqueeze(1)  # (B or 1, 1, N, S)
    return scores.softmax(dim=-1)


@pytest.fixture
def attention_probs(monkeypatch):
    """The probabilities of every cross-attention call, in call order: `biased_softmax` of the inputs the processor
    hands its fused call (so they show which keys it masks and how it routes)."""
    calls = []
    folded = ap.folded_attention

    def spy(query, key, value, num_ref1_tokens=None, **bias):
        calls.append(biased_softmax(query, key, **bias))
        return folded(query, key, value, num_ref1_tokens=num_ref1_tokens, **bias)

    monkeypatch.setattr(ap, "folded_attention", spy)
    return calls


def quadrant_map(batch_size=2):
    """R = 1 on the low-frequency, early-time quadrant (f < 40, t < 4), 0 elsewhere."""
    routing_map = torch.zeros(batch_size, N_MELS, T)
    routing_map[:, : N_MELS // 2, : T // 2] = 1.0
    return routing_map


# ---------------------------------------------------------------------------------------------- geometry


def test_diffusers_flattens_queries_frequency_major(unet):
    """The queries a transformer block sees are proj_in's (B, C, H, W) map flattened as index h * W + w."""
    seen = {}
    transformer = unet.down_blocks[0].attentions[0]
    transformer.proj_in.register_forward_hook(lambda m, i, o: seen.__setitem__("feature_map", o))
    transformer.transformer_blocks[0].register_forward_pre_hook(lambda m, a: seen.__setitem__("queries", a[0]))
    sample = torch.randn(1, 2, N_MELS, T)
    unet(sample, torch.tensor([10]), torch.randn(1, S1 + S2, TOKEN_DIM))
    feature_map, queries = seen["feature_map"], seen["queries"]  # (1, C, 80, T), (1, 80*T, C)
    assert feature_map.shape[-2:] == (N_MELS, T)
    channels = feature_map.shape[1]
    for h, w in [(0, 0), (0, 5), (3, 0), (79, 7), (41, 6)]:
        torch.testing.assert_close(queries[0, h * T + w], feature_map[0, :, h, w])
    time_major = feature_map.permute(0, 3, 2, 1).reshape(1, -1, channels)
    assert not torch.allclose(queries, time_major)


def test_query_grid_finds_every_level():
    assert query_grid(80 * 16, (80, 16)) == (80, 16)
    assert query_grid(40 * 8, (80, 16)) == (40, 8)
    assert query_grid(10 * 2, (80, 16)) == (10, 2)
    # odd sizes follow diffusers' stride-2 conv (padding 1): ceil at each level
    assert query_grid(40 * 8, (80, 15)) == (40, 8)
    assert query_grid(3 * 1, (80, 1)) == (3, 1)
    with pytest.raises(ValueError, match=r"no U-Net level of a \(80, 12\) input.*pad the routing map"):
        query_grid(80 * 16, (80, 12))


def test_resize_routing_map_matches_manual_loop():
    torch.manual_seed(0)
    routing_map = torch.rand(2, 80, 16)
    height, width = 20, 4  # level 2: 4 x 4 cells per query
    flat = resize_routing_map(routing_map, height, width)
    assert flat.shape == (2, height * width)
    for h in range(height):
        for w in range(width):
            cell = routing_map[:, 4 * h : 4 * h + 4, 4 * w : 4 * w + 4].mean(dim=(1, 2))
            torch.testing.assert_close(flat[:, h * width + w], cell)
    assert torch.equal(resize_routing_map(routing_map, 80, 16), routing_map.reshape(2, -1))


def test_resize_routing_map_non_divisible_width_uses_area_windows():
    torch.manual_seed(0)
    routing_map = torch.rand(1, N_MELS, 15)
    flat = resize_routing_map(routing_map, 40, 8)
    for h in (0, 17, 39):
        for w in range(8):
            start, end = (w * 15) // 8, -(-((w + 1) * 15) // 8)
            cell = routing_map[0, 2 * h : 2 * h + 2, start:end].mean()
            torch.testing.assert_close(flat[0, h * 8 + w], cell)


# ---------------------------------------------------------------------------------------------- equivalence


def test_matches_attn_processor_2_0_without_routing_or_capture(unet, inputs):
    mask = torch.ones(2, S1 + S2)
    mask[0, -2:] = 0
    unet.set_attn_processor(AttnProcessor2_0())
    with torch.no_grad():
        expected = run(unet, inputs, encoder_attention_mask=mask)
        install_processors(unet)
        plain = run(unet, inputs, encoder_attention_mask=mask)
        with_none = run(
            unet, inputs, encoder_attention_mask=mask, cross_attention_kwargs={"routing": None, "capture": None}
        )
        # the ref1 mass rides in an extra value dimension: capturing it leaves the attention unchanged
        capture = store()
        captured = run(unet, inputs, encoder_attention_mask=mask, cross_attention_kwargs={"capture": capture})
    assert all(isinstance(p, MelAttnProcessor) for p in unet.attn_processors.values())
    assert (plain - expected).abs().max() < 1e-5
    assert (with_none - expected).abs().max() < 1e-5
    assert (captured - expected).abs().max() < 1e-5
    assert len(capture.records) == 19  # 20 attention layers, minus the mid block's self-attention


def test_routing_half_everywhere_changes_nothing(unet, inputs):
    install_processors(unet)
    routing = RoutingSpec(torch.full((1, N_MELS, T), 0.5), num_ref1_tokens=S1, strength=3.0)
    with torch.no_grad():
        plain = run(unet, inputs)
        routed = run(unet, inputs, cross_attention_kwargs={"routing": routing})
    assert (routed - plain).abs().max() < 1e-5


def test_no_warning_about_unused_cross_attention_kwargs(unet, inputs, caplog):
    diffusers_logger = logging.getLogger("diffusers")  # diffusers does not propagate to the root logger
    diffusers_logger.addHandler(caplog.handler)
    try:
        routing = RoutingSpec(quadrant_map(), num_ref1_tokens=S1)
        kwargs = {"routing": routing, "capture": store(), "key_padding_mask": torch.ones(2, S1 + S2)}
        with torch.no_grad(), caplog.at_level(logging.WARNING, logger="diffusers"):
            unet.set_attn_processor(AttnProcessor2_0())
            run(unet, inputs, cross_attention_kwargs={"routing": None, "capture": None})
            assert "are not expected by AttnProcessor2_0" in caplog.text  # the control: warnings are visible
            caplog.clear()
            install_processors(unet)
            run(unet, inputs, cross_attention_kwargs=kwargs)
        assert caplog.records == []
    finally:
        diffusers_logger.removeHandler(caplog.handler)


# ---------------------------------------------------------------------------------------------- routing


@pytest.mark.parametrize("weight_ref1", [1.0, 0.0])
def test_uniform_routing_sends_all_mass_to_one_reference(unet, inputs, weight_ref1):
    install_processors(unet)
    routing = RoutingSpec(torch.full((2, N_MELS, T), weight_ref1), num_ref1_tokens=S1, strength=10.0)
    capture = store(detach=True)
    with torch.no_grad():
        run(unet, inputs, cross_attention_kwargs={"routing": routing, "capture": capture})
    assert len(capture.records) == 19
    for record in capture.records:
        torch.testing.assert_close(record.ref1_mass, torch.full_like(record.ref1_mass, weight_ref1), atol=1e-3, rtol=0)


def test_corner_routing_lands_on_the_same_corner_at_every_level(unet, inputs):
    install_processors(unet)
    routing = RoutingSpec(quadrant_map(), num_ref1_tokens=S1, strength=10.0)
    capture = store(detach=True)
    with torch.no_grad():
        run(unet, inputs, cross_attention_kwargs={"routing": routing, "capture": capture})
    grids = set()
    for record in capture.records:
        _, height, width = record.ref1_mass.shape
        grids.add((height, width))
        corner = torch.zeros(height, width, dtype=torch.bool)
        corner[: height // 2, : width // 2] = True
        assert record.ref1_mass[:, corner].min() > 0.999, record.layer
        assert record.ref1_mass[:, ~corner].max() < 1e-3, record.layer
    assert grids == GRIDS
    # back on the mel grid (coarse levels upsampled bilinearly, which blurs only the corner's edges: frames 2-5 and
    # bins 36-43), the mass lands on the corner
    mel_mass = capture.ref1_mass()
    assert mel_mass.shape == (2, N_MELS, T)
    assert mel_mass[:, :36, :2].min() > 0.999
    assert mel_mass[:, 44:].max() < 1e-3 and mel_mass[:, :, 6:].max() < 1e-3


def test_routing_errors_teach():
    with pytest.raises(ValueError, match=r"routing_map must lie in \[0, 1\]"):
        RoutingSpec(torch.full((1, N_MELS, T), 1.5), num_ref1_tokens=S1)
    with pytest.raises(ValueError, match=r"must be a \(B, n_mels, T\) tensor, got \(80, 8\)"):
        RoutingSpec(torch.ones(N_MELS, T), num_ref1_tokens=S1)
    routing = RoutingSpec(torch.ones(1, N_MELS, T), num_ref1_tokens=S1)
    with pytest.raises(ValueError, match=r"has 4 keys and num_ref1_tokens=4"):
        routing.key_blocks(4)
    with pytest.raises(ValueError, match=r"routing_map has batch 3 but the U-Net batch is 2"):
        RoutingSpec(torch.ones(3, N_MELS, T), num_ref1_tokens=S1).query_log_weights(N_MELS * T, 2)


def test_routing_map_with_wrong_length_is_refused_in_the_unet(unet, inputs):
    install_processors(unet)
    routing = RoutingSpec(torch.ones(2, N_MELS, T - 4), num_ref1_tokens=S1)
    with torch.no_grad(), pytest.raises(ValueError, match=r"640 queries, but no U-Net level of a \(80, 4\)"):
        run(unet, inputs, cross_attention_kwargs={"routing": routing})


def test_temporal_routing_map():
    hard = temporal_routing_map(num_frames=10, boundary=5, n_mels=3, batch_size=2)
    assert hard.shape == (2, 3, 10)
    assert hard[0, 0].tolist() == [1.0] * 5 + [0.0] * 5
    soft = temporal_routing_map(num_frames=10, boundary=5, crossfade=4, n_mels=3)[0, 0]
    assert soft[:4].tolist() == [1.0] * 4 and soft[7:].tolist() == [0.0] * 3
    assert soft[5].item() == pytest.approx(0.5)
    assert soft[4].item() == pytest.approx(0.5 * (1 + torch.cos(torch.tensor(torch.pi / 4)).item()))
    assert torch.all(soft[1:] <= soft[:-1])
    with pytest.raises(ValueError, match="crossfade must be >= 0 frames, got -1"):
        temporal_routing_map(10, 5, crossfade=-1)


def test_frequency_routing_map():
    band = torch.zeros(N_MELS)
    band[10:20] = 1.0
    routing_map = frequency_routing_map(band, num_frames=T)
    assert routing_map.shape == (1, N_MELS, T)
    assert routing_map[0, 10:20].min() == 1 and routing_map[0, :10].max() == 0 and routing_map[0, 20:].max() == 0
    per_frame = torch.rand(2, N_MELS, T, generator=torch.Generator().manual_seed(0))
    assert torch.equal(frequency_routing_map(per_frame), per_frame)
    with pytest.raises(ValueError, match=r"needs num_frames"):
        frequency_routing_map(band)
    with pytest.raises(ValueError, match=r"pitch_mask must lie in \[0, 1\]"):
        frequency_routing_map(2 * band, num_frames=T)


# ---------------------------------------------------------------------------------------------- capture


def test_capture_only_on_asked_layers(unet, inputs, monkeypatch):
    processors = install_processors(unet)
    mass_calls = []
    original_folded = ap.folded_attention

    def folded(*args, **kwargs):
        mass_calls.append(kwargs.get("num_ref1_tokens") is not None)
        return original_folded(*args, **kwargs)

    monkeypatch.setattr(ap, "folded_attention", folded)
    single = "up_blocks.2.attentions.0.transformer_blocks.0.attn1"
    capture = store(layers=["down_blocks.1", single])
    with torch.no_grad():
        run(unet, inputs, cross_attention_kwargs={"capture": capture})
    expected = {
        "down_blocks.1.attentions.0.transformer_blocks.0.attn1",
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2",
        single,
    }
    assert expected <= set(processors)
    assert sorted(r.layer for r in capture.records) == sorted(expected)
    assert sum(mass_calls) == 3  # the other cross-attention layers computed no mass
    assert capture.records[0].ref1_mass.shape == (2, 40, 4)
    nowhere = store(layers="no_such_block")
    with torch.no_grad():
        run(unet, inputs, cross_attention_kwargs={"capture": nowhere})
    with pytest.raises(ValueError, match=r"nothing recorded for layers=\('no_such_block',\)"):
        nowhere.ref1_mass()


def test_self_attention_is_never_captured(unet, inputs):
    install_processors(unet)
    capture = store(layers=["mid_block"])
    with torch.no_grad():
        run(unet, inputs, cross_attention_kwargs={"capture": capture})
    assert [r.layer for r in capture.records] == ["mid_block.attentions.0.transformer_blocks.0.attn2"]


def test_ref1_and_ref2_masses_sum_to_one(unet, inputs, attention_probs):
    install_processors(unet)
    mask = torch.ones(2, S1 + S2)
    mask[1, -1] = 0
    capture = store()
    with torch.no_grad():
        kwargs = {"capture": capture, "key_padding_mask": mask}
        run(unet, inputs, encoder_attention_mask=mask, cross_attention_kwargs=kwargs)
    assert len(attention_probs) == len(capture.records) == 19
    for record, probs in zip(capture.records, attention_probs):
        ref1 = probs[..., :S1].sum(-1).mean(1)  # (B, N)
        ref2 = probs[..., S1:].sum(-1).mean(1)
        torch.testing.assert_close(ref1 + ref2, torch.ones_like(ref1), atol=1e-5, rtol=0)
        torch.testing.assert_close(record.ref1_mass.flatten(1), ref1, atol=1e-5, rtol=1e-4)
        assert 0.05 < record.ref1_mass.mean() < 0.95  # an untrained model spreads mass over both


@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize("head_dim", [8, 5])
def test_folded_attention_is_the_explicit_biased_softmax(heads, head_dim):
    """Routing bias, key padding and the ref1 mass folded into one SDPA call give the explicit formula's numbers."""
    generator = torch.Generator().manual_seed(0)
    batch, num_queries, num_keys = 2, 12, 7
    query = torch.randn(batch, heads, num_queries, head_dim, generator=generator)
    key = torch.randn(batch, heads, num_keys, head_dim, generator=generator)
    value = torch.randn(batch, heads, num_keys, head_dim, generator=generator)
    routing = RoutingSpec(torch.rand(1, 3, 4, generator=generator), num_ref1_tokens=S1, strength=2.0)
    key_bias = torch.zeros(batch, heads, 1, num_keys)
    key_bias[1, :, :, -2:] = ap.KEY_PADDING_BIAS  # item 1's last two tokens are padding

    bias = {"key_bias": key_bias, "query_log_weights": routing.query_log_weights(num_queries, batch),
            "key_blocks": routing.key_blocks(num_keys)}
    output, ref1_mass = ap.folded_attention(query, key, value, num_ref1_tokens=S1, **bias)
    probs = biased_softmax(query, key, **bias)  # (B, h, N, S)
    torch.testing.assert_close(output, probs @ value, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ref1_mass, probs[..., :S1].sum(-1), atol=1e-5, rtol=1e-5)
    assert probs[1, ..., -2:].max() < 1e-6  # the padding really was discarded
    assert 0.05 < ref1_mass.mean() < 0.95  # and the routing really did something to compare

    plain, no_mass = ap.folded_attention(query, key, value)
    torch.testing.assert_close(plain, biased_softmax(query, key) @ value, atol=1e-5, rtol=1e-5)
    assert no_mass is None


def test_routing_spec_makes_every_level_once():
    """Each level's log-weights exist from construction on and calls only read them (a compiled U-Net guards on
    that table, so it must not change between steps)."""
    routing = RoutingSpec(quadrant_map(), num_ref1_tokens=S1, strength=2.0)
    table = dict(routing._log_weights)
    assert set(table) == {(80, 8), (40, 4), (20, 2), (10, 1), (5, 1), (3, 1), (2, 1), (1, 1)}
    for height, width in GRIDS:
        log_weights = routing.query_log_weights(height * width, 2)
        assert log_weights is table[(height, width)]
        assert log_weights.shape == (2, height * width, 2)
    assert routing._log_weights == table
    full = routing.query_log_weights(N_MELS * T, 2)
    expected = 2.0 * torch.stack([quadrant_map().clamp(1e-4, 1).log(), (1 - quadrant_map()).clamp(1e-4, 1).log()], -1)
    torch.testing.assert_close(full, expected.flatten(1, 2))


def test_capture_gives_the_mass_of_the_full_probabilities(unet, inputs, attention_probs):
    """The fused capture records what the materialised probabilities give, layer by layer and averaged."""
    install_processors(unet)
    keep = torch.ones(2, S1 + S2)
    keep[0, -1] = 0
    routing = RoutingSpec(quadrant_map(), num_ref1_tokens=S1, strength=3.0)
    fused = store()
    with torch.no_grad():
        kwargs = {"routing": routing, "key_padding_mask": keep}
        captured = run(unet, inputs, encoder_attention_mask=keep, cross_attention_kwargs={**kwargs, "capture": fused})
        plain = run(unet, inputs, encoder_attention_mask=keep, cross_attention_kwargs=kwargs)
    torch.testing.assert_close(captured, plain, atol=1e-5, rtol=1e-4)
    explicit = store()
    for record, probs in zip(fused.records, attention_probs):
        explicit.record(record.layer, probs[..., :S1].sum(-1).mean(1).reshape(record.ref1_mass.shape))
    assert len(explicit.records) == len(fused.records) == 19
    for a, b in zip(fused.records, explicit.records):
        torch.testing.assert_close(a.ref1_mass, b.ref1_mass, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fused.ref1_mass(), explicit.ref1_mass(), atol=1e-5, rtol=1e-4)


def test_store_and_routing_must_agree_on_the_ref1_block(unet, inputs):
    install_processors(unet)
    routing = RoutingSpec(quadrant_map(), num_ref1_tokens=S1)
    with torch.no_grad(), pytest.raises(ValueError, match=r"store.num_ref1_tokens=5 disagrees with routing"):
        run(unet, inputs, cross_attention_kwargs={"routing": routing, "capture": store(S1 + 1)})


def test_key_padding_mask_is_respected(unet, inputs, attention_probs):
    install_processors(unet)
    keep = torch.ones(2, S1 + S2)
    keep[:, -2:] = 0  # the last two ref2 tokens are padding
    # R = 0 with strong routing pushes everything to ref2, whose padded tokens must still get nothing
    routing = RoutingSpec(torch.zeros(1, N_MELS, T), num_ref1_tokens=S1, strength=10.0)
    with torch.no_grad():
        diffusers_only = store()
        run(unet, inputs, encoder_attention_mask=keep, cross_attention_kwargs={"capture": diffusers_only})
        diffusers_probs = list(attention_probs)
        attention_probs.clear()
        both = store()
        run(unet, inputs, encoder_attention_mask=keep,
            cross_attention_kwargs={"capture": both, "key_padding_mask": keep, "routing": routing})
    assert len(diffusers_probs) == len(attention_probs) == 19
    for record, probs in zip(diffusers_only.records, diffusers_probs):
        padded_mass = probs[..., -2:].max()
        if record.layer.endswith("attn2"):
            assert padded_mass < 1e-6, record.layer
        else:  # diffusers gives attn1 (cross-attention under only_cross_attention) no key mask
            assert padded_mass > 1e-3, record.layer
    for record, probs in zip(both.records, attention_probs):
        assert probs[..., -2:].max() < 1e-6, record.layer
        torch.testing.assert_close(probs[..., S1:-2].sum(-1), torch.ones(probs.shape[:-1]), atol=1e-3, rtol=0)
        assert record.ref1_mass.max() < 1e-3, record.layer
    with torch.no_grad(), pytest.raises(ValueError, match=r"key_padding_mask must be \(B, S\) = \(2, 8\)"):
        run(unet, inputs, cross_attention_kwargs={"key_padding_mask": keep[:, :4]})


# ---------------------------------------------------------------------------------------------- noise tuning


def pitch_cells():
    """A pitch-like band P: the lowest 20 mel bins in every frame."""
    in_pitch = torch.zeros(N_MELS, T, dtype=torch.bool)
    in_pitch[:20] = True
    return in_pitch


def noise_tuning_loss(unet, inputs, sample, gamma=1.0):
    capture = store()
    run(unet, inputs, sample=sample, cross_attention_kwargs={"capture": capture})
    ref1_mass = capture.ref1_mass()  # (B, 80, T)
    in_pitch = pitch_cells()
    loss = -ref1_mass[:, in_pitch].mean() - gamma * (1 - ref1_mass[:, ~in_pitch]).mean()
    return loss, ref1_mass[:, in_pitch].mean()


def test_noise_tuning_loss_has_a_gradient_and_raises_ref1_mass_in_pitch(unet, inputs):
    install_processors(unet)
    sample = inputs[0].clone().requires_grad_(True)
    loss, _ = noise_tuning_loss(unet, inputs, sample)
    (grad,) = torch.autograd.grad(loss, sample)
    assert grad.abs().max() > 1e-5  # ~2.5e-4 here (seeded)

    # summing whole rows (all keys) gives a constant: its gradient vanishes. A store whose "ref1 block" is every
    # key records each query's whole row.
    whole_rows = store(S1 + S2)
    run(unet, inputs, sample=sample, cross_attention_kwargs={"capture": whole_rows})
    in_pitch = pitch_cells().flatten()
    full_res = [r for r in whole_rows.records if r.ref1_mass.shape[-2:] == (N_MELS, T)]
    row_sums = torch.stack([r.ref1_mass.flatten(1) for r in full_res]).mean(0)  # (B, N)
    bad_loss = -row_sums[:, in_pitch].mean() - row_sums[:, ~in_pitch].mean()
    assert bad_loss.item() == pytest.approx(-2.0, abs=1e-5)
    (bad_grad,) = torch.autograd.grad(bad_loss, sample)
    assert bad_grad.abs().max() < 1e-4 * grad.abs().max()  # numerical noise

    # a few gradient steps on x_t (channel 0; mu_y stays) raise the ref1 mass inside P
    x_t = inputs[0][:, :1].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x_t], lr=0.5)
    mu_y = inputs[0][:, 1:]
    _, before = noise_tuning_loss(unet, inputs, torch.cat([x_t, mu_y], 1))
    for _ in range(5):
        loss, _ = noise_tuning_loss(unet, inputs, torch.cat([x_t, mu_y], 1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        _, after = noise_tuning_loss(unet, inputs, torch.cat([x_t, mu_y], 1))
    # an untrained U-Net attends almost uniformly, so the mass moves by ~1e-2 from 0.496 (seeded)
    assert after > before + 0.005, (before.item(), after.item())


def test_detached_store_holds_no_graph(unet, inputs):
    install_processors(unet)
    sample = inputs[0].clone().requires_grad_(True)
    capture = store(detach=True)
    run(unet, inputs, sample=sample, cross_attention_kwargs={"capture": capture})
    assert not capture.ref1_mass().requires_grad
    assert all(not r.ref1_mass.requires_grad for r in capture.records)
    assert capture.ref1_mass().shape == (2, N_MELS, T)
