"""MelStyleInterpolationPipeline end to end on the tiny random pipeline: every mode, outputs, saving and loading,
determinism, batching, routing geometry, noise tuning, guidance, callbacks and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import harmonic_tone

from melinterp import MelStyleInterpolationPipeline, NoiseTuningConfig, tiny_pipeline
from melinterp.testing import TINY_MODEL_CONFIG
from melinterp.text import TextError

TEXT = "Hello world."
STEPS = 3
SR = 22050
REF1 = (harmonic_tone(150.0, 0.5), SR)
REF2 = (harmonic_tone(300.0, 0.5), SR)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run(pipe, mode="none", text=TEXT, ref1=REF1, ref2=REF2, seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", STEPS)
    return pipe(text, ref1, None if mode == "none" else ref2, mode=mode, generator=seeded(seed), **kwargs)


def close(a, b):
    """Same computation up to float reassociation (batched vs single BLAS calls): 1e-4 on mels of size ~10-80."""
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def public(config) -> dict:
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def test_tiny_config_matches_the_example_json():
    path = Path(__file__).parents[1] / "examples" / "configs" / "models" / "tiny.json"
    on_disk = json.loads(path.read_text())
    on_disk.pop("_description", None)
    assert on_disk == TINY_MODEL_CONFIG


# ---------------------------------------------------------------------------------------------------------------
# Every mode, every output type
# ---------------------------------------------------------------------------------------------------------------


MODES = [
    ("none", {}),
    ("mix", {"alpha": 0.3}),
    ("temporal", {"boundary": "0.2s", "crossfade": 0.05}),
    ("freq", {"freq_guidance": "mask"}),
    ("freq", {"freq_guidance": "none", "pitch_mask": "harmonic"}),
    ("freq", {"freq_guidance": "noise_tuning", "tuning": NoiseTuningConfig(t_end=0.6, iterations=1)}),
    ("dual_noise", {"dual_noise_map": "freq"}),
    ("dual_noise", {"dual_noise_map": "temporal", "boundary": 3, "dual_noise_merge_step": 1}),
]


MODE_IDS = ["none", "mix", "temporal", "freq-mask", "freq-none-harmonic", "freq-noise_tuning", "dual_noise-freq",
            "dual_noise-temporal-merge"]


@pytest.mark.parametrize("mode, kwargs", MODES, ids=MODE_IDS)
def test_every_mode_runs_end_to_end(pipe, mode, kwargs):
    out = run(pipe, mode, return_attention=True, **kwargs)
    (num_frames,) = out.lengths
    hop = pipe.feature_config.hop_length
    assert out.sample_rate == 22050
    assert out.mels.shape == (1, 80, num_frames) and out.mels.dtype == np.float32
    assert out.audios.shape == (1, num_frames * hop) and out.audios.dtype == np.float32
    assert np.isfinite(out.audios).all() and np.abs(out.audios).max() > 0
    has_map = mode != "none" and mode != "mix"
    assert (out.routing_map is not None) == has_map
    if has_map:
        assert out.routing_map.shape == (1, 80, num_frames)
        assert out.routing_map.min() >= 0 and out.routing_map.max() <= 1
    assert (out.pitch_mask is not None) == (mode == "freq" or kwargs.get("dual_noise_map") == "freq")
    assert (out.ref1_mass is not None) == (mode in ("temporal", "freq"))


@pytest.fixture(scope="module")
def tokens_only_pipe(pipe):
    """The tiny pipeline with a U-Net that hears the voice only through its cross-attention tokens (no global style
    vector), as examples/configs/models/voices_tokens_only.json."""
    from melinterp.models import MelUNet2DConditionModel
    from melinterp.pipelines import MelStyleInterpolationPipeline

    config = {k: v for k, v in pipe.unet.config.items() if not k.startswith("_")}
    config.update(class_embed_type=None, projection_class_embeddings_input_dim=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = MelUNet2DConditionModel(**config).eval()
    tokens_only = MelStyleInterpolationPipeline(**{**pipe.components, "unet": unet})
    tokens_only.set_progress_bar_config(disable=True)
    return tokens_only


@pytest.mark.parametrize("mode, kwargs", MODES, ids=MODE_IDS)
def test_every_mode_runs_with_a_unet_that_hears_the_voice_only_through_its_tokens(tokens_only_pipe, mode, kwargs):
    out = run(tokens_only_pipe, mode, return_attention=True, **kwargs)
    assert np.isfinite(out.audios).all() and np.abs(out.audios).max() > 0
    assert out.mels.shape == (1, 80, int(out.lengths[0]))


def test_a_tokens_only_unet_ignores_the_style_vector(tokens_only_pipe):
    unet = tokens_only_pipe.unet
    assert unet.class_embedding is None
    sample, tokens = torch.randn(1, 2, 80, 32, generator=seeded(0)), torch.randn(1, 5, 16, generator=seeded(1))
    with torch.no_grad():
        style_vectors = [torch.randn(1, 16, generator=seeded(k)) for k in (2, 3)]
        outputs = [unet(sample, torch.tensor([0.5]), tokens, class_labels=vector).sample for vector in style_vectors]
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_output_types(pipe):
    pt = run(pipe, output_type="pt")
    assert isinstance(pt.audios, torch.Tensor) and isinstance(pt.mels, torch.Tensor)
    assert pt.mels.shape == (1, 80, int(pt.lengths[0]))
    mel = run(pipe, output_type="mel")
    assert mel.audios is None
    np.testing.assert_array_equal(mel.mels, pt.mels.numpy())
    audios, mels = run(pipe, return_dict=False)
    assert audios.shape[-1] == mels.shape[-1] * pipe.feature_config.hop_length


def test_references_as_path_tensor_and_pair_agree(pipe, tmp_path):
    soundfile = pytest.importorskip("soundfile")
    path = tmp_path / "ref.wav"
    soundfile.write(path, REF1[0], SR, subtype="FLOAT")
    from_pair = run(pipe, output_type="mel").mels
    np.testing.assert_array_equal(run(pipe, ref1=str(path), output_type="mel").mels, from_pair)
    np.testing.assert_array_equal(run(pipe, ref1=torch.from_numpy(REF1[0]), output_type="mel").mels, from_pair)


@pytest.mark.parametrize("mode", ["none", "freq", "temporal"])
def test_encoded_references_give_what_the_recordings_give(pipe, mode):
    encoded1, encoded2 = pipe.encode_reference(REF1), pipe.encode_reference(REF2)
    assert encoded1.style_tokens.shape[0] == 1 and encoded1.f0.ndim == 1 and (encoded1.f0 > 0).any()
    assert pipe.encode_reference(encoded1) is encoded1
    kwargs = {"output_type": "mel", "return_attention": mode != "none"}
    from_audio = run(pipe, mode, **kwargs)
    from_encodings = run(pipe, mode, ref1=encoded1, ref2=encoded2, **kwargs)
    np.testing.assert_array_equal(from_encodings.mels, from_audio.mels)
    if mode != "none":
        np.testing.assert_array_equal(from_encodings.ref1_mass, from_audio.ref1_mass)


def test_a_batch_mixing_encodings_and_recordings_equals_single_calls(pipe):
    """Items of different reference lengths: the encodings' tokens are padded and masked like a batched encoding."""
    short2 = (harmonic_tone(300.0, 0.3), SR)
    texts = [TEXT, "A longer sentence, to speak."]
    batch = pipe(texts, [pipe.encode_reference(REF1), REF2], [short2, pipe.encode_reference(REF1)], mode="freq",
                 generator=[seeded(1), seeded(2)], num_inference_steps=STEPS, output_type="mel")
    singles = [run(pipe, "freq", text=texts[0], ref1=REF1, ref2=short2, seed=1, output_type="mel"),
               run(pipe, "freq", text=texts[1], ref1=REF2, ref2=REF1, seed=2, output_type="mel")]
    for b, single in enumerate(singles):
        (length,) = single.lengths
        assert batch.lengths[b] == length
        close(batch.mels[b, :, :length], single.mels[0])


def test_encode_reference_refuses_bad_audio_by_name(pipe):
    from melinterp.audio import AudioError

    with pytest.raises(AudioError, match=r"ref: audio array is silent"):
        pipe.encode_reference((np.zeros(22050, dtype=np.float32), SR))
    with pytest.raises(ValueError, match=r"or a ReferenceEncoding \(pipe.encode_reference\), got int"):
        pipe.encode_reference(3)


# ---------------------------------------------------------------------------------------------------------------
# Saving, loading, determinism, batching
# ---------------------------------------------------------------------------------------------------------------


def test_save_pretrained_from_pretrained_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["unet"] == ["melinterp", "MelUNet2DConditionModel"]
    assert index["feature_config"] == ["melinterp", "FeatureConfig"]
    assert index["text_processor"] == ["melinterp", "TextProcessor"]
    for name in ("text_encoder", "style_encoder", "unet", "scheduler", "vocoder", "text_processor", "feature_config"):
        assert (tmp_path / name).is_dir()

    loaded = MelStyleInterpolationPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    for name in ("feature_config", "vocoder", "scheduler"):
        assert public(getattr(loaded, name).config) == public(getattr(pipe, name).config)
    assert public(loaded.text_processor.config.config) == public(pipe.text_processor.config.config)
    for name in ("text_encoder", "style_encoder", "unet"):
        original, restored = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert original.keys() == restored.keys()
        assert all(torch.equal(original[k], restored[k]) for k in original)
    close(run(loaded, "temporal").mels, run(pipe, "temporal").mels)


def test_from_training_output_folder(pipe, tmp_path):
    """The trainer's export layout: models, scheduler, feature_config/ and text_config/, no model_index.json."""
    for name in ("text_encoder", "style_encoder", "unet"):
        getattr(pipe, name).save_pretrained(tmp_path / name)
    pipe.scheduler.save_config(tmp_path / "scheduler")
    pipe.feature_config.save_config(tmp_path / "feature_config")
    pipe.text_processor.config.save_config(tmp_path / "text_config")
    loaded = MelStyleInterpolationPipeline.from_training_output(tmp_path, vocoder=pipe.vocoder)
    loaded.set_progress_bar_config(disable=True)
    close(run(loaded).mels, run(pipe).mels)
    with pytest.raises(ValueError, match="directory must be a training export folder"):
        MelStyleInterpolationPipeline.from_training_output(tmp_path / "missing")


def test_same_seed_same_output_other_seed_differs(pipe):
    first, second = run(pipe, "mix", seed=3), run(pipe, "mix", seed=3)
    np.testing.assert_array_equal(first.mels, second.mels)
    np.testing.assert_array_equal(first.audios, second.audios)
    assert np.abs(run(pipe, "mix", seed=4).mels - first.mels).max() > 1e-2


def test_batch_of_two_equals_two_single_calls(pipe):
    texts = [TEXT, "A longer sentence, to speak."]
    batch = pipe(texts, [REF1, REF2], [REF2, REF1], mode="temporal", generator=[seeded(1), seeded(2)],
                 num_inference_steps=STEPS, return_attention=True)
    singles = [run(pipe, "temporal", text=texts[0], ref1=REF1, ref2=REF2, seed=1, return_attention=True),
               run(pipe, "temporal", text=texts[1], ref1=REF2, ref2=REF1, seed=2, return_attention=True)]
    assert batch.lengths[0] != batch.lengths[1]  # different lengths: the padding path is exercised
    hop = pipe.feature_config.hop_length
    for b, single in enumerate(singles):
        (length,) = single.lengths
        assert batch.lengths[b] == length
        close(batch.mels[b, :, :length], single.mels[0])
        close(batch.ref1_mass[b, :, :length], single.ref1_mass[0])
        np.testing.assert_array_equal(batch.routing_map[b, :, :length], single.routing_map[0])
        assert np.all(batch.audios[b, length * hop:] == 0)
        assert np.all(batch.mels[b, :, length:] == np.float32(np.log(pipe.feature_config.log_clamp)))


def test_one_generator_for_a_batch_gives_the_first_item_its_single_result(pipe):
    batch = pipe([TEXT, TEXT], REF1, generator=seeded(5), num_inference_steps=STEPS, output_type="mel")
    close(batch.mels[0], run(pipe, seed=5, output_type="mel").mels[0])
    assert np.abs(batch.mels[0] - batch.mels[1]).max() > 1e-2  # items get different noise


# ---------------------------------------------------------------------------------------------------------------
# Modes against known answers
# ---------------------------------------------------------------------------------------------------------------


def test_mix_endpoints_equal_single_reference(pipe):
    close(run(pipe, "mix", alpha=0.0, output_type="mel").mels, run(pipe, ref1=REF1, output_type="mel").mels)
    close(run(pipe, "mix", alpha=1.0, output_type="mel").mels, run(pipe, ref1=REF2, output_type="mel").mels)


def test_temporal_ref1_mass_is_higher_before_the_boundary(pipe):
    out = run(pipe, "temporal", boundary=0.5, crossfade=0.0, routing_strength=4.0, return_attention=True)
    (length,) = out.lengths
    before, after = out.ref1_mass[..., : length // 2].mean(), out.ref1_mass[..., length // 2 + 1:].mean()
    assert before > 0.9 and after < 0.1
    baseline = run(pipe, "temporal", boundary=0.5, routing_strength=0.0, return_attention=True)
    assert abs(baseline.ref1_mass[..., : length // 2].mean() - baseline.ref1_mass[..., length // 2 + 1:].mean()) < 0.05


def test_freq_mask_ref1_mass_is_higher_inside_the_pitch_mask(pipe):
    out = run(pipe, "freq", routing_strength=4.0, return_attention=True)
    inside = (out.ref1_mass * out.pitch_mask).sum() / out.pitch_mask.sum()
    outside = (out.ref1_mass * (1 - out.pitch_mask)).sum() / (1 - out.pitch_mask).sum()
    assert inside > 0.8 and outside < 0.1


@pytest.mark.slow
def test_noise_tuning_raises_ref1_mass_inside_the_pitch_mask(pipe):
    """The random tiny model's attention barely depends on x_t, so the effect is small but far above noise."""
    def masses(out):
        mask = out.pitch_mask
        inside = (out.ref1_mass * mask).sum() / mask.sum()
        return inside, inside - (out.ref1_mass * (1 - mask)).sum() / (1 - mask).sum()

    tuning = NoiseTuningConfig(t_start=1.0, t_end=0.0, step_size=3.0, iterations=3)
    untuned_inside, untuned_gap = masses(run(pipe, "freq", freq_guidance="none", return_attention=True))
    tuned_inside, tuned_gap = masses(run(pipe, "freq", freq_guidance="noise_tuning", tuning=tuning,
                                         return_attention=True))
    assert tuned_inside > untuned_inside + 0.002
    assert tuned_gap > 0.004 and tuned_gap > 10 * abs(untuned_gap)


def test_classifier_free_guidance(pipe):
    np.testing.assert_array_equal(run(pipe, guidance_scale=1.0).mels, run(pipe).mels)
    null_calls = []  # per U-Net call: whether it was conditioned on the learned null style

    def record(unet, args, kwargs):
        tokens = kwargs["encoder_hidden_states"]
        null_calls.append(torch.equal(tokens, pipe.style_encoder.null_token.expand_as(tokens)))

    hook = pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        run(pipe, guidance_scale=1.0)
        assert null_calls == [False] * STEPS
        null_calls.clear()
        guided = run(pipe, guidance_scale=3.0)
        assert null_calls == [False, True] * STEPS  # each step: the conditional call, then the unconditional one
    finally:
        hook.remove()
    assert np.abs(guided.mels - run(pipe, guidance_scale=1.0).mels).max() > 1e-3


# ---------------------------------------------------------------------------------------------------------------
# Callbacks, progress bar
# ---------------------------------------------------------------------------------------------------------------


def test_callback_on_step_end_sees_every_step_and_can_change_latents(pipe):
    seen = []

    def callback(pipeline, i, t, tensors):
        seen.append((i, float(t), tuple(tensors["latents"].shape)))
        if i == STEPS - 1:
            return {"latents": torch.zeros_like(tensors["latents"])}
        return None

    out = run(pipe, callback_on_step_end=callback, output_type="mel")
    assert [i for i, _, _ in seen] == list(range(STEPS))
    assert [t for _, t, _ in seen] == pytest.approx([1.0, 2 / 3, 1 / 3])
    assert seen[0][2] == (1, 80, int(out.lengths[0]))
    assert np.all(out.mels == 0)


def test_progress_bar_can_be_disabled(pipe, capsys):
    pipe.set_progress_bar_config(disable=False)
    try:
        run(pipe, output_type="mel")
        assert f"{STEPS}/{STEPS}" in capsys.readouterr().err
    finally:
        pipe.set_progress_bar_config(disable=True)
    run(pipe, output_type="mel")
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------------------------


BAD_INPUTS = [
    ({"mode": "blend"}, r"mode must be one of 'none', 'mix', 'temporal', 'freq', 'dual_noise', got 'blend'"),
    ({"mode": "temporal", "ref2": None}, r"mode='temporal' interpolates between two voices and needs ref2"),
    ({"mode": "none", "ref2": REF2}, r"ref2 was given but mode='none' uses ref1 only"),
    ({"ref1": None}, r"ref1 is required"),
    ({"alpha": 1.5}, r"alpha must be a weight of ref2 in \[0, 1\], got 1.5"),
    ({"alpha": -0.1}, r"alpha must be"),
    ({"boundary": 2.5}, r"boundary 2.5 is outside the utterance"),
    ({"mode": "temporal", "boundary": "9s"}, r"boundary '9s' is outside the utterance, which lasts"),
    ({"mode": "temporal", "boundary": 500}, r"boundary 500 is outside the utterance: its phoneme string has"),
    ({"crossfade": -1.0}, r"crossfade must be a width >= 0 in seconds"),
    ({"num_inference_steps": 0}, r"num_inference_steps must be a positive integer, got 0"),
    ({"num_inference_steps": -3}, r"num_inference_steps must be a positive integer"),
    ({"num_inference_steps": 2.5}, r"num_inference_steps must be a positive integer"),
    ({"output_type": "wav"}, r"output_type must be one of 'np', 'pt', 'mel', got 'wav'"),
    ({"pitch_mask": "comb"}, r"pitch_mask must be one of 'band', 'harmonic', got 'comb'"),
    ({"freq_guidance": "bias"}, r"freq_guidance must be one of 'mask', 'noise_tuning', 'none', got 'bias'"),
    ({"dual_noise_map": "both"}, r"dual_noise_map must be one of 'freq', 'temporal'"),
    ({"temperature": 0.0}, r"temperature must be > 0"),
    ({"length_scale": 0}, r"length_scale must be > 0"),
    ({"routing_strength": -1}, r"routing_strength must be >= 0"),
    ({"ref1": [REF1, REF1]}, r"ref1 is a list of 2 references but there are 1 texts"),
    ({"ref1": np.zeros(100)}, r"ref1 must be a file path, an \(array, sample_rate\) pair, a 1-D waveform tensor"),
    ({"ref1": torch.zeros(2, 100)}, r"ref1 as a tensor must be a 1-D waveform"),
    ({"ref1": (np.zeros(22050, dtype=np.float32), SR)}, r"ref1: audio array is silent"),
    ({"generator": [seeded(0), seeded(1)]}, r"generator is a list of 2 but there are 1 texts"),
]


@pytest.mark.parametrize("kwargs, message", BAD_INPUTS, ids=[m[:40] for _, m in BAD_INPUTS])
def test_bad_inputs_raise_value_errors_naming_the_argument(pipe, kwargs, message):
    call = {"text": TEXT, "ref1": REF1, "ref2": None, "mode": "none", "num_inference_steps": STEPS, **kwargs}
    if call["mode"] != "none" and "ref2" not in kwargs:
        call["ref2"] = REF2
    with pytest.raises(ValueError, match=message):
        pipe(**call)


@pytest.mark.parametrize("text, message", [("", "text is empty"), ("   ", "text is empty"), ([], "text must be")])
def test_empty_text(pipe, text, message):
    with pytest.raises(ValueError, match=message) as error:
        pipe(text, REF1, num_inference_steps=STEPS)
    if text != []:
        assert isinstance(error.value, TextError)


def test_from_pretrained_downloads_a_hub_repository(pipe, tmp_path, monkeypatch):
    """A repo id that is not a local folder goes through huggingface_hub.snapshot_download (mocked: no network)."""
    import huggingface_hub

    pipe.save_pretrained(tmp_path)
    requested = []

    def fake_snapshot_download(repo_id, **kwargs):
        requested.append((repo_id, kwargs["revision"]))
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    loaded = MelStyleInterpolationPipeline.from_pretrained("user/melinterp-tiny", revision="main")
    assert requested == [("user/melinterp-tiny", "main")]
    assert isinstance(loaded.unet, type(pipe.unet))
    with pytest.raises(ValueError, match=r"unknown components \['decoder'\]"):
        MelStyleInterpolationPipeline.from_pretrained(tmp_path, decoder=None)


def test_from_pretrained_refuses_foreign_libraries(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    index["vocoder"] = ["some_package", "Vocoder"]
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="component 'vocoder' names library 'some_package'"):
        MelStyleInterpolationPipeline.from_pretrained(tmp_path)
    # a component passed in is not loaded
    loaded = MelStyleInterpolationPipeline.from_pretrained(tmp_path, vocoder=pipe.vocoder)
    assert loaded.vocoder is pipe.vocoder


def test_importing_the_pipeline_needs_no_audio_or_phonemizer_packages():
    """Training machines lack librosa/pyworld/phonemizer: the pipeline module must import without them.

    (soundfile is not checked: transformers, which diffusers' DiffusionPipeline imports, loads it when present.)
    """
    import subprocess
    import sys

    code = ("import sys, melinterp; melinterp.MelStyleInterpolationPipeline; melinterp.tiny_pipeline; "
            "heavy = {'librosa', 'pyworld', 'phonemizer', 'matplotlib'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------------------------
# Long texts: bounded batches, progress over sentences
# ---------------------------------------------------------------------------------------------------------------


def test_equal_length_groups_hold_at_most_max_frames_unless_one_item_is_longer():
    from melinterp.pipelines.batching import equal_length_groups

    lengths = torch.tensor([100, 100, 100, 250, 100, 900])
    assert equal_length_groups(lengths) == [([0, 1, 2, 4], 100), ([3], 250), ([5], 900)]
    assert equal_length_groups(lengths, 200) == [([0, 1], 100), ([2, 4], 100), ([3], 250), ([5], 900)]
    groups = equal_length_groups(lengths, 300)
    assert sorted(b for items, _ in groups for b in items) == list(range(6))  # every item once
    assert all(len(items) * length <= 300 or len(items) == 1 for items, length in groups)


def test_bounded_batches_give_what_one_batch_gives_and_the_bar_counts_sentence_steps(pipe, capsys):
    text = "Red apples fell. Green pears fell. Red apples fell. Green pears fell."  # equal-length sentences
    whole = run(pipe, text=text, max_batch_frames=None)
    bounded = run(pipe, text=text, max_batch_frames=1)  # one sentence a U-Net batch
    close(bounded.mels, whole.mels)
    np.testing.assert_array_equal(bounded.lengths, whole.lengths)
    pipe.set_progress_bar_config(disable=False)
    try:
        run(pipe, text=text, output_type="mel", max_batch_frames=1)
        assert f"{4 * STEPS}/{4 * STEPS}" in capsys.readouterr().err  # 4 sentences x the steps
    finally:
        pipe.set_progress_bar_config(disable=True)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="max_batch_frames must be a positive integer or None"):
            run(pipe, max_batch_frames=bad)


def test_a_long_unpunctuated_text_is_denoised_in_bounded_batches(pipe, monkeypatch):
    from melinterp.pipelines import pipeline_mel_style_interpolation as module

    seen = []
    original = module.equal_length_groups
    monkeypatch.setattr(module, "equal_length_groups",
                        lambda lengths, max_frames: seen.append(groups := original(lengths, max_frames)) or groups)
    words = "red apples fall under the old bridge while seven green birds sing".split()
    text = " ".join(words[i % len(words)] for i in range(400))  # 400 words, no punctuation
    out = run(pipe, text=text, output_type="mel", max_batch_frames=600, num_inference_steps=1)
    (groups,) = seen
    assert len(groups) > 1 and all(len(items) * frames <= 600 or len(items) == 1 for items, frames in groups)
    assert out.lengths[0] == sum(frames * len(items) for items, frames in groups) + \
        round(0.25 * SR / pipe.feature_config.hop_length) * (sum(len(items) for items, _ in groups) - 1)


def test_text_canvas_lays_out_each_texts_sentences_a_pause_apart_in_whatever_order_groups_come():
    from melinterp.pipelines.batching import TextCanvas

    spans, lengths, pause = [range(0, 3), range(3, 4)], [2, 3, 2, 4], 2  # text 0: 2 + 2 + 3 + 2 + 2 = 11 frames
    canvas = TextCanvas(spans, lengths, pause, fills={"mels": -9.0}, scales={"audios": 3})
    for items in ([3], [1], [0, 2]):  # groups of equal-length sentences, in any order; sentence k's values are k + 1
        frames = lengths[items[0]]
        canvas.add(items, {"mels": torch.stack([torch.full((2, frames), k + 1.0) for k in items]),
                           "audios": torch.stack([torch.full((3 * frames,), k + 1.0) for k in items]),
                           "maps": None})
    assert canvas.lengths == [11, 4] and canvas.num_frames == 11
    expected = torch.full((2, 2, 11), -9.0)
    expected[0, :, 0:2], expected[0, :, 4:7], expected[0, :, 9:11], expected[1, :, 0:4] = 1.0, 2.0, 3.0, 4.0
    torch.testing.assert_close(canvas.outputs["mels"], expected)
    audios = torch.zeros(2, 33)  # the pauses and the padding are silence
    audios[0, 0:6], audios[0, 12:21], audios[0, 27:33], audios[1, 0:12] = 1.0, 2.0, 3.0, 4.0
    torch.testing.assert_close(canvas.outputs["audios"], audios)
    assert canvas.outputs["maps"] is None


def test_the_text_encoder_runs_on_a_few_sentences_at_a_time_with_the_same_result(pipe):
    from melinterp.pipelines.batching import in_chunks

    ids = torch.randint(1, 40, (11, 17), generator=seeded(0))
    lengths = torch.randint(5, 18, (11,), generator=seeded(1))
    style = torch.randn(11, pipe.text_encoder.config.style_dim, generator=seeded(2))
    pitch = torch.randn(11, pipe.text_encoder.config.pitch_dim, generator=seeded(3)) \
        if pipe.text_encoder.config.pitch_dim else None
    with torch.no_grad():
        whole = pipe.text_encoder(ids, lengths, style, pitch)
        calls = []
        chunked = in_chunks(lambda *rows: calls.append(len(rows[0])) or pipe.text_encoder(*rows), 4 * 17**2)(
            ids, lengths, style, pitch)
    assert calls == [4, 4, 3]  # 4 rows of 17 ids fill the budget of cells
    calls.clear()
    in_chunks(lambda *rows: calls.append(len(rows[0])) or pipe.text_encoder(*rows), 4 * 17**2)(
        ids[:, :8], lengths.clamp(max=8), style, pitch)
    assert calls == [11]  # shorter rows: more of them a call
    calls.clear()
    in_chunks(lambda *rows: calls.append(len(rows[0])) or pipe.text_encoder(*rows), 10)(ids, lengths, style, pitch)
    assert calls == [1] * 11  # one row a call at least
    for a, b in zip(whole, chunked):
        close(a, b)
