"""Neural models: TextEncoder, length regulation, StyleEncoder, MelUNet2DConditionModel (tiny configs, seeded)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from melinterp.models.length_regulator import (
    durations_from_log,
    expand,
    expand_durations,
    generate_path,
    sequence_mask,
)
from melinterp.models.style_encoder import StyleEncoder, StyleEncoderOutput
from melinterp.models.text_encoder import RelativePositionMultiHeadAttention, TextEncoder
from melinterp.models.unet_mel import MelUNet2DConditionModel
from melinterp.text import TextProcessor

CONFIG_DIR = Path(__file__).resolve().parents[1] / "examples" / "configs" / "models"
N_MELS = 80


def load_config(name: str) -> dict:
    """A model config file; the text encoder's vocabulary is set from the default symbol table, as training does."""
    config = json.loads((CONFIG_DIR / f"{name}.json").read_text())
    config["text_encoder"]["n_vocab"] = TextProcessor().vocab_size
    return config


@pytest.fixture(scope="module")
def tiny() -> dict:
    return load_config("tiny")


def public_config(config) -> dict:
    """A model config without diffusers' private keys (``_name_or_path``, ``_diffusers_version``...)."""
    return {key: value for key, value in config.items() if not key.startswith("_")}


def build(cls, config: dict, seed: int = 0):
    torch.manual_seed(seed)
    return cls.from_config(config).eval()


def unet_inputs(unet: MelUNet2DConditionModel, batch: int, num_frames: int, num_tokens: int = 5, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    config = unet.config
    return dict(
        sample=torch.randn(batch, config.in_channels, N_MELS, num_frames, generator=generator),
        timestep=torch.linspace(20.0, 980.0, batch),
        encoder_hidden_states=torch.randn(batch, num_tokens, config.cross_attention_dim, generator=generator),
        class_labels=torch.randn(batch, config.projection_class_embeddings_input_dim, generator=generator),
    )


# ----------------------------------------------------------------------------------------------- length regulator


def test_sequence_mask_known_values():
    mask = sequence_mask(torch.tensor([3, 1, 0]), 4)
    expected = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(mask, expected)
    assert sequence_mask(torch.tensor([2, 5])).shape == (2, 5)


def test_durations_from_log_ceil_minimum_and_padding():
    frames = torch.tensor([[[math.log(2.2), math.log(0.1), math.log(3.0), 5.0]]])  # (1, 1, 4)
    x_mask = torch.tensor([[[1.0, 1.0, 1.0, 0.0]]])
    assert durations_from_log(frames, x_mask).tolist() == [[3, 1, 3, 0]]  # 0.1 frames -> at least 1
    assert durations_from_log(frames, x_mask, length_scale=2.0).tolist() == [[5, 1, 6, 0]]
    with pytest.raises(ValueError, match="length_scale must be > 0"):
        durations_from_log(frames, x_mask, length_scale=0.0)
    with pytest.raises(ValueError, match=r"must both be \(B, 1, L\)"):
        durations_from_log(frames[:, 0], x_mask[:, 0])


def test_generate_path_known_alignment():
    durations = torch.tensor([[2, 1, 3], [1, 2, 0]])
    y_mask = sequence_mask(durations.sum(1)).unsqueeze(1).float()  # (2, 1, 6)
    path = generate_path(durations, y_mask)
    expected_0 = torch.tensor([[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=torch.float)
    expected_1 = torch.tensor([[1, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.float)
    assert torch.equal(path[0], expected_0)
    assert torch.equal(path[1], expected_1)


def test_generate_path_covers_every_real_frame_once_and_is_monotone():
    generator = torch.Generator().manual_seed(0)
    durations = torch.randint(1, 6, (3, 9), generator=generator)
    durations[1, 6:] = 0  # padded phonemes
    y_lengths = durations.sum(1)
    y_mask = sequence_mask(y_lengths).unsqueeze(1).float()
    path = generate_path(durations, y_mask)  # (B, L, T)
    assert torch.equal(path.sum(1), y_mask[:, 0])  # one phoneme per real frame, none on padding
    assert torch.equal(path.sum(2).long(), durations)  # durations sum to T per item
    for b in range(3):
        owner = path[b, :, : y_lengths[b]].argmax(0)
        assert (owner[1:] >= owner[:-1]).all()  # monotone: phonemes never go back


def test_generate_path_rejects_mask_that_disagrees_with_durations():
    durations = torch.tensor([[2, 2]])
    with pytest.raises(ValueError, match=r"durations cover \[4\] frames but y_mask has \[5\] real frames"):
        generate_path(durations, torch.ones(1, 1, 5))


def test_expand_repeats_each_phoneme_vector():
    mu_x = torch.tensor([[[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]]])  # (1, C=2, L=3)
    durations = torch.tensor([[1, 0, 2]])  # phoneme 1 gets no frame (e.g. a dropped token)
    path = generate_path(durations, torch.ones(1, 1, 3))
    assert expand(mu_x, path).tolist() == [[[1.0, 3.0, 3.0], [10.0, 30.0, 30.0]]]
    with pytest.raises(ValueError, match="matching B and L"):
        expand(mu_x[:, :, :2], path)


# ---------------------------------------------------------------------------------------------------- text encoder


def text_inputs(config: dict, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    phoneme_ids = torch.randint(0, config["n_vocab"], (2, 9), generator=generator)
    phoneme_lengths = torch.tensor([9, 5])
    style_vector = torch.randn(2, config["style_dim"], generator=generator)
    pitch = torch.randn(2, config["pitch_dim"], generator=generator) * 0.5 if config.get("pitch_dim") else None
    return phoneme_ids, phoneme_lengths, style_vector, pitch


def test_text_encoder_shapes_and_masks(tiny):
    encoder = build(TextEncoder, tiny["text_encoder"])
    phoneme_ids, phoneme_lengths, style_vector, pitch = text_inputs(tiny["text_encoder"])
    with torch.no_grad():
        mu_x, log_durations, x_mask = encoder(phoneme_ids, phoneme_lengths, style_vector, pitch)
    assert mu_x.shape == (2, N_MELS, 9)
    assert log_durations.shape == (2, 1, 9)
    assert torch.equal(x_mask[:, 0], sequence_mask(phoneme_lengths, 9).float())
    assert mu_x[1, :, 5:].abs().max() == 0 and log_durations[1, :, 5:].abs().max() == 0


def test_text_encoder_ignores_padded_ids_and_padding_length(tiny):
    encoder = build(TextEncoder, tiny["text_encoder"])
    phoneme_ids, phoneme_lengths, style_vector, pitch = text_inputs(tiny["text_encoder"])
    other_ids = phoneme_ids.clone()
    other_ids[1, 5:] = (phoneme_ids[1, 5:] + 7) % tiny["text_encoder"]["n_vocab"]
    with torch.no_grad():
        mu_a, logw_a, _ = encoder(phoneme_ids, phoneme_lengths, style_vector, pitch)
        mu_b, logw_b, _ = encoder(other_ids, phoneme_lengths, style_vector, pitch)
        mu_alone, logw_alone, _ = encoder(phoneme_ids[1:, :5], phoneme_lengths[1:], style_vector[1:], pitch[1:])
    torch.testing.assert_close(mu_a, mu_b, atol=1e-6, rtol=0)
    torch.testing.assert_close(logw_a, logw_b, atol=1e-6, rtol=0)
    torch.testing.assert_close(mu_a[1:, :, :5], mu_alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(logw_a[1:, :, :5], logw_alone, atol=1e-5, rtol=0)
    # the style vector does condition the outputs
    with torch.no_grad():
        mu_c, _, _ = encoder(phoneme_ids, phoneme_lengths, style_vector + 1.0, pitch)
    assert (mu_c - mu_a)[0].abs().max() > 1e-3


def test_duration_loss_trains_predictor_and_style_but_not_text_features(tiny):
    encoder = build(TextEncoder, tiny["text_encoder"])
    phoneme_ids, phoneme_lengths, style_vector, pitch = text_inputs(tiny["text_encoder"])
    style_vector.requires_grad_(True)
    _, log_durations, _ = encoder(phoneme_ids, phoneme_lengths, style_vector, pitch)
    log_durations.pow(2).sum().backward()
    assert encoder.duration_predictor.conv_1.weight.grad.abs().sum() > 0
    assert style_vector.grad.abs().sum() > 0  # speaking rate is part of the style
    for name, parameter in encoder.named_parameters():
        if not name.startswith(("duration_predictor.", "duration_style_proj.")):
            assert parameter.grad is None, name


def test_relative_position_offsets_stay_within_the_window():
    attention = RelativePositionMultiHeadAttention(channels=8, n_heads=2, window_size=4)
    one_hot = attention._offset_one_hot(6, torch.device("cpu"), torch.float32)  # (L, L, 2w+1)
    assert one_hot.shape == (6, 6, 9)
    assert one_hot[0, 5].sum() == 0  # key 5 steps after the query: outside the window
    assert one_hot[0, 4].argmax() == 8 and one_hot[3, 1].argmax() == 2 and one_hot[2, 2].argmax() == 4
    assert one_hot.sum() == 36 - 2  # every pair but the two at distance 5


def test_text_encoder_input_errors(tiny):
    encoder = build(TextEncoder, tiny["text_encoder"])
    phoneme_ids, phoneme_lengths, style_vector, pitch = text_inputs(tiny["text_encoder"])
    n_vocab = tiny["text_encoder"]["n_vocab"]
    with pytest.raises(ValueError, match=rf"phoneme ids must lie in \[0, {n_vocab}\)"):
        encoder(phoneme_ids + n_vocab, phoneme_lengths, style_vector, pitch)
    with pytest.raises(ValueError, match=r"phoneme_lengths must lie in \[1, 9\]"):
        encoder(phoneme_ids, torch.tensor([10, 5]), style_vector, pitch)
    with pytest.raises(ValueError, match=r"style_vector must be \(2, 16\), got shape \(2, 8\)"):
        encoder(phoneme_ids, phoneme_lengths, style_vector[:, :8], pitch)
    with pytest.raises(ValueError, match=r"conditioned on pitch: pass pitch \(2, 2\)"):
        encoder(phoneme_ids, phoneme_lengths, style_vector)
    with pytest.raises(ValueError, match=r"pitch must be \(2, 2\), got shape \(2, 1\)"):
        encoder(phoneme_ids, phoneme_lengths, style_vector, pitch[:, :1])
    unpitched = build(TextEncoder, dict(tiny["text_encoder"], pitch_dim=0))
    with pytest.raises(ValueError, match="has no pitch condition"):
        unpitched(phoneme_ids, phoneme_lengths, style_vector, pitch)


def test_text_encoder_pitch_condition_moves_mu(tiny):
    encoder = build(TextEncoder, tiny["text_encoder"])
    phoneme_ids, phoneme_lengths, style_vector, pitch = text_inputs(tiny["text_encoder"])
    with torch.no_grad():
        mu, _, _ = encoder(phoneme_ids, phoneme_lengths, style_vector, pitch)
        mu_up, _, _ = encoder(phoneme_ids, phoneme_lengths, style_vector, pitch + 1.0)
    assert (mu_up - mu)[0].abs().max() > 1e-3


# --------------------------------------------------------------------------------------------------- style encoder


@pytest.mark.parametrize("num_frames", [1, 2, 3, 4, 5, 8, 9, 23])
def test_style_encoder_token_count(tiny, num_frames):
    encoder = build(StyleEncoder, tiny["style_encoder"])
    with torch.no_grad():
        output = encoder(torch.randn(2, N_MELS, num_frames))
    expected = math.ceil(num_frames / 4)
    assert isinstance(output, StyleEncoderOutput)
    assert output.style_tokens.shape == (2, expected, tiny["style_encoder"]["hidden_channels"])
    assert output.token_mask.shape == (2, expected) and output.token_mask.all()
    assert output.style_vector.shape == (2, tiny["style_encoder"]["style_dim"])
    assert StyleEncoder.num_tokens(num_frames) == expected


def test_style_encoder_padding_invariance(tiny):
    encoder = build(StyleEncoder, tiny["style_encoder"])
    generator = torch.Generator().manual_seed(1)
    real_frames, padded_frames = 23, 37
    ref_mel = torch.randn(1, N_MELS, real_frames, generator=generator)
    padded_mel = torch.cat([ref_mel, 5.0 * torch.randn(1, N_MELS, padded_frames - real_frames, generator=generator)], 2)
    ref_mask = sequence_mask(torch.tensor([real_frames]), padded_frames).unsqueeze(1).float()
    with torch.no_grad():
        alone = encoder(ref_mel)
        padded = encoder(padded_mel, ref_mask)
        # the same reference in a batch beside a longer one
        batched = encoder(torch.cat([padded_mel, torch.randn(1, N_MELS, padded_frames, generator=generator)]),
                          torch.cat([ref_mask, torch.ones_like(ref_mask)]))
    num_real_tokens = math.ceil(real_frames / 4)
    assert padded.token_mask[0].tolist() == [True] * num_real_tokens + [False] * (10 - num_real_tokens)
    for output in (padded, batched):
        torch.testing.assert_close(output.style_tokens[:1, :num_real_tokens], alone.style_tokens, atol=1e-5, rtol=0)
        torch.testing.assert_close(output.style_vector[:1], alone.style_vector, atol=1e-5, rtol=0)
    assert padded.style_tokens[0, num_real_tokens:].abs().max() == 0


def test_style_encoder_null_style(tiny):
    encoder = build(StyleEncoder, tiny["style_encoder"])
    null = encoder.null_style(batch_size=3, num_tokens=7)
    channels, style_dim = tiny["style_encoder"]["hidden_channels"], tiny["style_encoder"]["style_dim"]
    assert null.style_tokens.shape == (3, 7, channels)
    assert null.token_mask.shape == (3, 7) and null.token_mask.dtype == torch.bool and null.token_mask.all()
    assert null.style_vector.shape == (3, style_dim)
    assert torch.equal(null.style_tokens, encoder.null_token.expand(3, 7, -1))
    torch.testing.assert_close(encoder.null_style(1, 2).style_vector, null.style_vector[:1])  # same for any S
    null.style_vector.sum().backward()
    assert encoder.null_token.grad.abs().sum() > 0  # learned
    with pytest.raises(ValueError, match="must be >= 1"):
        encoder.null_style(0, 4)


def test_style_encoder_input_errors(tiny):
    encoder = build(StyleEncoder, tiny["style_encoder"])
    with pytest.raises(ValueError, match=r"ref_mel must be \(B, 80, T_ref\)"):
        encoder(torch.randn(1, 40, 10))
    with pytest.raises(ValueError, match=r"no real frame for batch items \[1\]"):
        encoder(torch.randn(2, N_MELS, 10), torch.stack([torch.ones(1, 10), torch.zeros(1, 10)]))


# ------------------------------------------------------------------------------------------------------------ U-Net


@pytest.mark.parametrize("config_name", ["tiny", "default"])
@pytest.mark.parametrize("num_frames", [1, 37, 101])
def test_unet_output_shape_for_any_length(config_name, num_frames):
    unet = build(MelUNet2DConditionModel, load_config(config_name)["unet"])
    with torch.no_grad():
        output = unet(**unet_inputs(unet, batch=2, num_frames=num_frames))
    assert output.sample.shape == (2, 1, N_MELS, num_frames)
    assert torch.isfinite(output.sample).all()


def test_unet_padding_and_masks(tiny):
    unet = build(MelUNet2DConditionModel, tiny["unet"])
    inputs = unet_inputs(unet, batch=2, num_frames=37, num_tokens=6)
    mask = sequence_mask(torch.tensor([37, 29]), 37).unsqueeze(1).float()  # (B, 1, T)
    token_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    with torch.no_grad():
        reference = unet(**inputs, mask=mask, encoder_attention_mask=token_mask).sample
        # garbage in padded frames and padded tokens must not reach real frames
        noisy = dict(inputs)
        noisy["sample"] = inputs["sample"] + 10.0 * (1 - mask).unsqueeze(2) * torch.randn_like(inputs["sample"])
        noisy["encoder_hidden_states"] = inputs["encoder_hidden_states"].clone()
        noisy["encoder_hidden_states"][1, 4:] = 100.0
        perturbed = unet(**noisy, mask=mask, encoder_attention_mask=token_mask).sample
        # a real token does matter
        changed = dict(inputs)
        changed["encoder_hidden_states"] = inputs["encoder_hidden_states"].clone()
        changed["encoder_hidden_states"][1, 0] = 100.0
        steered = unet(**changed, mask=mask, encoder_attention_mask=token_mask).sample
    assert reference[1, :, :, 29:].abs().max() == 0  # output is zero on padded frames
    torch.testing.assert_close(perturbed, reference, atol=1e-5, rtol=0)
    assert (steered - reference)[1].abs().max() > 1e-3


def test_unet_save_load_round_trip(tmp_path, tiny):
    unet = build(MelUNet2DConditionModel, tiny["unet"])
    unet.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    assert json.loads((tmp_path / "config.json").read_text())["_class_name"] == "MelUNet2DConditionModel"
    loaded = MelUNet2DConditionModel.from_pretrained(tmp_path).eval()
    for name, tensor in unet.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    inputs = unet_inputs(unet, batch=1, num_frames=21)
    with torch.no_grad():  # same weights; memory-mapped tensors may take other SIMD paths (~1e-7 differences)
        torch.testing.assert_close(loaded(**inputs).sample, unet(**inputs).sample, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls,key", [(TextEncoder, "text_encoder"), (StyleEncoder, "style_encoder")])
def test_encoders_save_load_round_trip(tmp_path, tiny, cls, key):
    model = build(cls, tiny[key])
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path).eval()
    assert public_config(loaded.config) == public_config(model.config)
    with torch.no_grad():
        if cls is TextEncoder:
            inputs = text_inputs(tiny[key])
            for a, b in zip(loaded(*inputs), model(*inputs)):
                torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
        else:
            ref_mel = torch.randn(2, N_MELS, 13)
            torch.testing.assert_close(loaded(ref_mel).style_vector, model(ref_mel).style_vector, atol=1e-6, rtol=0)


@pytest.mark.parametrize("config_name", ["tiny", "default"])
def test_no_self_attention_and_cross_attention_at_every_resolution(config_name):
    """Record the query and key lengths every attention layer sees: full-resolution queries only meet style tokens."""
    unet = build(MelUNet2DConditionModel, load_config(config_name)["unet"])
    num_frames, num_tokens = 37, 6
    padded = unet.padded_num_frames(num_frames)
    seen: dict[str, tuple[int, int]] = {}

    def record(name):
        def hook(module, args, kwargs, output):
            keys = kwargs.get("encoder_hidden_states")
            seen[name] = (args[0].shape[1], None if keys is None else keys.shape[1])
        return hook

    attention_layers = {name: m for name, m in unet.named_modules() if isinstance(m, Attention)}
    for name, module in attention_layers.items():
        module.register_forward_hook(record(name), with_kwargs=True)
    with torch.no_grad():
        unet(**unet_inputs(unet, batch=1, num_frames=num_frames, num_tokens=num_tokens))

    assert set(seen) == set(attention_layers)
    assert all(keys == num_tokens for _, keys in seen.values())  # every layer attends to the style tokens only
    assert all(module.is_cross_attention for module in attention_layers.values())
    num_levels = len(unet.config.block_out_channels)
    levels_seen = {queries for queries, _ in seen.values()}
    for level in range(num_levels):  # cross-attention at every resolution, the 80-bin one included
        assert (N_MELS >> level) * (padded >> level) in levels_seen


def test_unet_refuses_self_attention(tiny):
    with_self_attention = dict(tiny["unet"], only_cross_attention=False)
    with pytest.raises(ValueError, match="cross-attention to style tokens only"):
        MelUNet2DConditionModel.from_config(with_self_attention)
    attentive_mid_block = dict(tiny["unet"], mid_block_type="UNetMidBlock2DCrossAttn")
    with pytest.raises(ValueError, match="UNetMidBlock2DCrossAttn always self-attends"):
        MelUNet2DConditionModel.from_config(attentive_mid_block)


def test_unet_input_errors(tiny):
    unet = build(MelUNet2DConditionModel, tiny["unet"])
    inputs = unet_inputs(unet, batch=2, num_frames=12)
    with pytest.raises(ValueError, match=r"sample must be \(B, 2, n_mels, T\)"):
        unet(**dict(inputs, sample=inputs["sample"][:, :1]))
    with pytest.raises(ValueError, match=r"mask must be \(2, 1, 12\)"):
        unet(**inputs, mask=torch.ones(2, 12))
    with pytest.raises(ValueError, match=r"encoder_attention_mask must be \(2, 5\)"):
        unet(**inputs, encoder_attention_mask=torch.ones(2, 4, dtype=torch.bool))


class ProbeProcessor(AttnProcessor2_0):
    """AttnProcessor2_0 that records which layers received the ``probe`` keyword."""

    def __init__(self, name: str, calls: list):
        super().__init__()
        self.name, self.calls = name, calls

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, probe=None):
        self.calls.append((self.name, probe))
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


def test_cross_attention_kwargs_reach_every_attention_layer(tiny):
    unet = build(MelUNet2DConditionModel, tiny["unet"])
    assert all(isinstance(p, AttnProcessor2_0) for p in unet.attn_processors.values())
    inputs = unet_inputs(unet, batch=1, num_frames=16)
    with torch.no_grad():
        expected = unet(**inputs).sample
        calls: list = []
        unet.set_attn_processor({name: ProbeProcessor(name, calls) for name in unet.attn_processors})
        probed = unet(**inputs, cross_attention_kwargs={"probe": "here"}).sample
    assert sorted(name for name, _ in calls) == sorted(unet.attn_processors)
    assert all(probe == "here" for _, probe in calls)
    torch.testing.assert_close(probed, expected, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------------- all together


@pytest.mark.parametrize("config_name", ["tiny", "default"])
def test_gradient_reaches_every_parameter(config_name):
    """One backward pass of a toy Grad-TTS loss (prior + duration + score, with a null-style item) trains everything."""
    config = load_config(config_name)
    text_encoder = build(TextEncoder, config["text_encoder"]).train()
    style_encoder = build(StyleEncoder, config["style_encoder"]).train()
    unet = build(MelUNet2DConditionModel, config["unet"]).train()
    # the pre-net's last projection starts at zero (Grad-TTS), which blocks its inner layers until the first step
    torch.nn.init.normal_(text_encoder.prenet.proj.weight, std=0.1)
    generator = torch.Generator().manual_seed(0)

    phoneme_ids, phoneme_lengths, _, pitch = text_inputs(config["text_encoder"])
    ref_mask = sequence_mask(torch.tensor([23, 15]), 23).unsqueeze(1).float()
    style = style_encoder(torch.randn(2, N_MELS, 23, generator=generator), ref_mask)
    null = style_encoder.null_style(1, style.style_tokens.shape[1])  # classifier-free guidance dropout
    style_tokens = torch.cat([style.style_tokens[:1], null.style_tokens])
    token_mask = torch.cat([style.token_mask[:1], null.token_mask])
    style_vector = torch.cat([style.style_vector[:1], null.style_vector])

    mu_x, log_durations, x_mask = text_encoder(phoneme_ids, phoneme_lengths, style_vector, pitch)
    durations = torch.randint(1, 4, (2, 9), generator=generator) * x_mask[:, 0].long()
    y_mask = sequence_mask(durations.sum(1)).unsqueeze(1).float()
    mu_y = expand(mu_x, generate_path(durations, y_mask))  # (B, n_mels, T)
    mel = torch.randn(mu_y.shape, generator=generator) * y_mask
    noise = torch.randn(mu_y.shape, generator=generator) * y_mask
    x_t = (0.5 * mel + 0.5 * mu_y + 0.7 * noise) * y_mask
    score = unet(torch.stack([x_t, mu_y], 1), torch.tensor([300.0, 700.0]), style_tokens, token_mask,
                 class_labels=style_vector, mask=y_mask).sample[:, 0]

    prior_loss = ((mel - mu_y) ** 2 * y_mask).sum() / y_mask.sum()
    duration_loss = ((log_durations - torch.log(durations.unsqueeze(1).clamp(min=1.0)) * x_mask) ** 2).sum()
    score_loss = ((score * 0.7 + noise) ** 2 * y_mask).sum() / y_mask.sum()
    (prior_loss + duration_loss + score_loss).backward()

    for model in (text_encoder, style_encoder, unet):
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None, f"{type(model).__name__}.{name} got no gradient"
            assert parameter.grad.abs().sum() > 0, f"{type(model).__name__}.{name} got a zero gradient"


@pytest.mark.parametrize("config_name", ["tiny", "default", "large"])
def test_model_configs_fit_together(config_name):
    config = load_config(config_name)
    text, style, unet = config["text_encoder"], config["style_encoder"], config["unet"]
    assert text["n_mels"] == style["n_mels"] == N_MELS
    assert unet["cross_attention_dim"] == style["hidden_channels"]  # style tokens are the U-Net's keys
    assert unet["projection_class_embeddings_input_dim"] == style["style_dim"] == text["style_dim"]
    assert unet["in_channels"] == 2 and unet["out_channels"] == 1
    assert N_MELS % 2 ** (len(unet["block_out_channels"]) - 1) == 0
    TextEncoder.from_config(text)
    StyleEncoder.from_config(style)
    MelUNet2DConditionModel.from_config(unet)  # refuses self-attention


def test_style_dropout_inside_forward_swaps_in_the_null_style(tiny):
    encoder = build(StyleEncoder, tiny["style_encoder"]).eval()
    ref_mel = torch.randn(3, 80, 21, generator=torch.Generator().manual_seed(0))
    plain = encoder(ref_mel)
    drop = torch.tensor([False, True, False])
    dropped = encoder(ref_mel, drop=drop)
    null = encoder.null_style(3, plain.style_tokens.shape[1])
    torch.testing.assert_close(dropped.style_tokens[1], null.style_tokens[1])
    torch.testing.assert_close(dropped.style_vector[1], null.style_vector[1])
    torch.testing.assert_close(dropped.style_tokens[[0, 2]], plain.style_tokens[[0, 2]])
    torch.testing.assert_close(dropped.reference_vector, plain.style_vector)  # the text encoder's condition
    dropped.style_vector.sum().backward()
    assert encoder.null_token.grad is not None


def test_expand_durations_is_expand_of_the_path_bit_for_bit_without_the_path():
    generator = torch.Generator().manual_seed(0)
    durations = torch.randint(1, 6, (5, 9), generator=generator)
    durations[1, 6:] = 0  # padded phonemes
    durations[3, 2:] = 0
    lengths = durations.sum(1)
    y_mask = sequence_mask(lengths, int(lengths.max()) + 3).unsqueeze(1).float()  # extra padded frames too
    mu_x = torch.randn(5, 4, 9, generator=generator)
    expected = expand(mu_x, generate_path(durations, y_mask))
    got = expand_durations(mu_x, durations, y_mask)
    assert got.shape == expected.shape and torch.equal(got, expected)
    assert not torch.signbit(got[y_mask.expand_as(got) == 0]).any()  # padding is +0.0, as the product gives
