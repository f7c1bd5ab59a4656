"""Vocoder training: config parsing, the GAN's discriminators and losses, aligned segment draws, a tiny run end to
end through the CLI, exact resume, fine-tuning from a vocoder folder and on the model's own mels, and the
teacher-forced mels of `melinterp vocoder-mels`."""

from __future__ import annotations

import csv
import functools
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SAMPLE_RATE, harmonic_tone, requires_espeak
from safetensors.torch import load_file, save_file

from melinterp import tiny_pipeline
from melinterp.audio import FeatureConfig, load_audio, mel_spectrogram
from melinterp.cli import main
from melinterp.data import read_filelist
from melinterp.models.hifigan import HiFiGANGenerator
from melinterp.models.vocos import VocosVocoder
from melinterp.training.discriminators import (
    MultiPeriodDiscriminator,
    MultiResolutionDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from melinterp.training.phase_loss import anti_wrapped, complex_loss, magnitude_loss, phase_losses
from melinterp.training.vocoder_mels import recording_key, save_model_mels
from melinterp.training.vocoder_trainer import (
    SegmentBank,
    VocoderTrainer,
    VocoderTrainingConfig,
    build_generator,
    build_vocoder_models,
    load_bank,
    read_model_mels,
)

pytestmark = pytest.mark.usefixtures("one_thread")

HOP = 256
TINY_CONFIG = {
    "data": {"train_filelist": "../train.txt", "val_filelist": "../train.txt", "segment_frames": 16, "batch_size": 2,
             "val_items": 1},
    "model": {"dim": 16, "intermediate_dim": 32, "num_layers": 1, "kernel_size": 3},
    "mpd": {"periods": [2, 3], "channels": [8, 16]},
    "mrd": {"resolutions": [[512, 128], [256, 64]], "channels": 8},
    "optim": {"learning_rate": 1e-3, "warmup_steps": 1, "max_steps": 4, "seed": 0},
    "log": {"log_every": 1, "val_every": 2, "checkpoint_every": 2, "keep_checkpoints": 2},
}


def noise_bursts(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """White noise gated on and off at a syllable rate: an unvoiced stand-in."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    gate = (np.sin(2 * np.pi * 4.0 * t) > 0).astype(np.float32)
    return (0.2 * gate * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Four 1 s recordings (three tones, one noise), a filelist beside them, and configs/tiny.json."""
    root = tmp_path_factory.mktemp("vocoder_corpus")
    rng = np.random.default_rng(0)
    recordings = {"tone_110": harmonic_tone(110.0), "tone_180": harmonic_tone(180.0),
                  "tone_260": harmonic_tone(260.0), "noise": noise_bursts(1.0, rng)}
    (root / "wavs").mkdir()
    lines = []
    for name, audio in recordings.items():
        sf.write(root / "wavs" / f"{name}.wav", audio, SAMPLE_RATE)
        lines.append(f"wavs/{name}.wav|{name.split('_')[0]}|A line about {name}.")
    (root / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_config(root, "tiny")
    return root


def write_config(root: Path, name: str, **sections) -> Path:
    """configs/NAME.json: the tiny config with some sections' keys replaced."""
    raw = {key: {**value, **sections.pop(key, {})} for key, value in TINY_CONFIG.items()}
    path = root / "configs" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({**raw, **sections}))
    return path


def train_vocoder(config: Path, output_dir: Path, *extra: str) -> int:
    return main(["train-vocoder", "--config", str(config), "--output-dir", str(output_dir), "--quiet", *extra])


def read_log(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def generator_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return {key[len("generator."):]: value for key, value in load_file(str(checkpoint / "models.safetensors")).items()
            if key.startswith("generator.")}


def assert_same_weights(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, rtol=0, atol=1e-6, msg=key)


@pytest.fixture(scope="module")
def whole_run(corpus, tmp_path_factory) -> Path:
    """An uninterrupted 4-step run of the tiny config, through the CLI."""
    output_dir = tmp_path_factory.mktemp("whole") / "run"
    assert train_vocoder(corpus / "configs" / "tiny.json", output_dir) == 0
    return output_dir


# ---------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------


def test_config_resolves_paths_against_its_folder_and_lists_model_mels(corpus):
    path = write_config(corpus, "with_mels", data={"model_mels": "../mels.safetensors"})
    config = VocoderTrainingConfig.from_file(path)
    assert config.data.train_filelist == config.data.val_filelist == str((corpus / "train.txt").resolve())
    assert config.data.model_mels == [str((corpus / "mels.safetensors").resolve())]
    assert config.optim.betas == (0.8, 0.99) and config.source == str(path)

    listed = VocoderTrainingConfig.from_dict({"data": {"train_filelist": "/abs/train.txt", "model_mels": ["a", "b"]}},
                                             base_dir=corpus)
    assert listed.data.train_filelist == "/abs/train.txt"  # absolute paths stay as they are
    assert listed.data.model_mels == [str((corpus / name).resolve()) for name in ("a", "b")]


@pytest.mark.parametrize("change, message", [
    ({"surprise": {}}, r"unknown vocoder training config sections: \['surprise'\]"),
    ({"optim": {"learning_rat": 1e-3}}, r"unknown keys in training config section 'optim': \['learning_rat'\]"),
    ({"data": {"segment_frame": 8}}, r"section 'data': \['segment_frame'\]"),
    ({"log": {"val_evry": 8}}, r"section 'log': \['val_evry'\]"),
    ({"optim": {"mixed_precision": "fp16"}},
     "optim.mixed_precision must be 'no' or 'bf16' for the vocoder, got 'fp16'"),
    ({"optim": {"gd_weight": -1.0}}, r"optim.gd_weight must be a number >= 0 \(0 leaves the term out\), got -1.0"),
    ({"optim": {"ptd_weight": "10"}}, r"optim.ptd_weight must be a number >= 0 \(0 leaves the term out\), got '10'"),
    ({"optim": {"magnitude_weight": -0.5}},
     r"optim.magnitude_weight must be a number >= 0 \(0 leaves the term out\), got -0.5"),
    ({"optim": {"complex_weight": None}},
     r"optim.complex_weight must be a number >= 0 \(0 leaves the term out\), got None"),
    ({"optim": {"adversarial": "no"}}, "optim.adversarial must be true or false, got 'no'"),
    ({"optim": {"adversarial": False}}, "optim.adversarial false trains without discriminators, which only a "
                                        "teacher's targets allow"),
    ({"optim": {"spectral_resolutions": []}}, r"optim.spectral_resolutions must be a non-empty list of \[n_fft, hop\]"),
    ({"optim": {"spectral_resolutions": [[512, 1024]]}}, r"0 < hop <= n_fft .* got \[\[512, 1024\]\]"),
    ({"optim": {"spectral_resolutions": [[512, 128], [2048]]}}, "optim.spectral_resolutions must be"),
    ({"optim": {"spectral_resolutions": [[512.0, 128]]}}, "optim.spectral_resolutions must be"),
])
def test_config_errors_name_the_problem(change, message):
    raw = {**TINY_CONFIG, **{key: {**TINY_CONFIG.get(key, {}), **value} for key, value in change.items()}}
    with pytest.raises(ValueError, match=message):
        VocoderTrainingConfig.from_dict(raw)


SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "configs"


@pytest.mark.parametrize("name", sorted(path.name for path in SHIPPED_CONFIGS.glob("vocoder*.json")))
def test_the_shipped_vocoder_configs_parse_and_build(name):
    config = VocoderTrainingConfig.from_file(SHIPPED_CONFIGS / name)
    models = build_vocoder_models(config)
    # the HiFi-GAN students, weight-normalised as the authors train: V2, and V1 cut to 192, 256 or 320 channels
    # (prune_hifigan.py), the last with its kernel-3 residual blocks alone
    regression = ("vocoder_distil_regression.json", "vocoder_distil_regression_wide.json",
                  "vocoder_distil_regression_fast.json")
    students = {"vocoder_distil_v2.json": 128, "vocoder_distil_pruned.json": 192,
                "vocoder_distil_regression.json": 192, "vocoder_distil_regression_wide.json": 256,
                "vocoder_distil_regression_fast.json": 320}
    distillations = ("vocoder_distil.json", *students)
    assert isinstance(models["generator"], HiFiGANGenerator if name in students else VocosVocoder)
    if name in students:
        assert models["generator"].config.upsample_initial_channel == students[name] and config.model["weight_norm"]
        kernels = [3] if name == "vocoder_distil_regression_fast.json" else [3, 7, 11]
        assert list(models["generator"].config.resblock_kernel_sizes) == kernels
    spectral = (config.optim.ip_weight, config.optim.gd_weight, config.optim.ptd_weight, config.optim.magnitude_weight)
    assert (name in ("vocoder_phase.json", "vocoder_mixed.json", *distillations)) == any(w > 0 for w in spectral)
    assert (config.data.model_mel_fraction is not None) == (name == "vocoder_mixed.json")
    assert (config.data.teacher is not None) == (name in distillations)
    if config.data.teacher is not None:  # distillation on mels alone: no recordings but the validation ones
        assert config.data.train_filelist is None and len(config.data.model_mels) == 2
    # runs 10, 11 and 12 alone train without discriminators, on the STFT terms at three framings
    assert config.optim.adversarial == (name not in regression)
    assert (config.optim.spectral_resolutions is not None) == (name in regression)


@pytest.mark.parametrize("section, key", [("model", "dimm"), ("mpd", "period"), ("mrd", "resolution")])
def test_unknown_model_keys_name_their_section(section, key):
    config = VocoderTrainingConfig.from_dict({**TINY_CONFIG, section: {**TINY_CONFIG[section], key: 1}})
    with pytest.raises(ValueError, match=f"vocoder training config section '{section}': .*'{key}'"):
        build_vocoder_models(config)


@pytest.mark.parametrize("model, message", [
    ({"class": "WaveNet"}, r"class 'WaveNet' is not a trainable vocoder \(VocosVocoder, HiFiGANGenerator\)"),
    ({"preset": "v2"}, r"'preset' is HiFi-GAN's \(the authors' v1, v2, v3\), not VocosVocoder's"),
    ({"class": "HiFiGANGenerator", "preset": "v4"}, r"unknown HiFi-GAN preset 'v4'"),
    ({"class": "HiFiGANGenerator", "preset": "v2", "dim": 8}, r".*unexpected keyword argument 'dim'"),
    ({"class": "HiFiGANGenerator", "upsample_rates": [8, 8]}, r"upsample_rates and upsample_kernel_sizes"),
])
def test_generator_choices_are_checked_by_name(model, message):
    with pytest.raises(ValueError, match=r"vocoder training config section 'model': " + message):
        build_generator(model)


def test_a_hifigan_preset_builds_the_authors_generator():
    generator = build_generator({"class": "HiFiGANGenerator", "preset": "v2"})
    assert isinstance(generator, HiFiGANGenerator) and generator.config.upsample_initial_channel == 128
    assert sum(p.numel() for p in generator.parameters()) == sum(
        p.numel() for p in HiFiGANGenerator.from_preset("v2").parameters())
    assert isinstance(build_generator({}), VocosVocoder)  # the default class
    wider = build_generator({"class": "HiFiGANGenerator", "preset": "v2", "upsample_initial_channel": 192})
    assert wider.config.upsample_initial_channel == 192 and wider.config.resblock_kernel_sizes == [3, 7, 11]


def test_unreadable_or_incomplete_configs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="has no 'data' section"):
        VocoderTrainingConfig.from_dict({"optim": {}})
    with pytest.raises(FileNotFoundError, match="vocoder training config not found"):
        VocoderTrainingConfig.from_file(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="is not valid JSON"):
        VocoderTrainingConfig.from_file(tmp_path / "broken.json")


# ---------------------------------------------------------------------------------------------------------------
# Discriminators and losses
# ---------------------------------------------------------------------------------------------------------------


def test_discriminators_give_logits_and_feature_maps_per_sub_discriminator():
    torch.manual_seed(0)
    audio = torch.randn(2, 4097) * 0.1  # (B, N): not a multiple of the periods, which pad it
    mpd = MultiPeriodDiscriminator(periods=(2, 3, 5), channels=(8, 16))
    logits, features = mpd(audio)
    assert len(logits) == len(features) == 3
    for period, each_logits, maps in zip((2, 3, 5), logits, features):
        assert each_logits.dim() == 2 and each_logits.shape[0] == 2 and torch.isfinite(each_logits).all()
        assert len(maps) == 3  # two convolutions and the output layer
        assert all(m.shape[0] == 2 and m.shape[-1] == period for m in maps)  # folded: width p, samples p apart
        assert [m.shape[1] for m in maps] == [8, 16, 1]

    mrd = MultiResolutionDiscriminator(resolutions=((512, 128), (256, 64)), channels=8)
    logits, features = mrd(audio)
    assert len(logits) == len(features) == 2
    for each_logits, maps in zip(logits, features):
        assert each_logits.dim() == 2 and each_logits.shape[0] == 2 and torch.isfinite(each_logits).all()
        assert len(maps) == 6 and all(m.dim() == 4 and m.shape[0] == 2 for m in maps)
    # the finer time resolution sees more frames
    assert logits[1].shape[1] > logits[0].shape[1]


def test_least_squares_losses_prefer_real_ones_and_fake_zeros():
    ones, zeros = [torch.ones(2, 5)] * 3, [torch.zeros(2, 5)] * 3
    assert float(discriminator_loss(ones, zeros)) == 0.0
    assert float(discriminator_loss(zeros, ones)) == 6.0  # (1 + 1) per sub-discriminator
    assert float(generator_adversarial_loss(ones)) == 0.0 < float(generator_adversarial_loss(zeros))


def test_feature_matching_is_mean_l1_and_zero_for_identical_features():
    torch.manual_seed(0)
    real = [[torch.randn(2, 4, 7, 3), torch.randn(2, 1, 7, 3)], [torch.randn(2, 8, 5)]]
    fake = [[(m + 0.5).requires_grad_() for m in maps] for maps in real]
    assert float(feature_matching_loss(real, real)) == 0.0
    loss = feature_matching_loss([[m.requires_grad_() for m in maps] for maps in real], fake)
    assert float(loss.detach()) == pytest.approx(1.5)  # 0.5 in each of three maps
    loss.backward()
    assert all(m.grad is not None for maps in fake for m in maps)
    assert all(m.grad is None for maps in real for m in maps)  # the real side is a fixed target


# ---------------------------------------------------------------------------------------------------------------
# Segment draws
# ---------------------------------------------------------------------------------------------------------------


SEGMENT_HOP = 64


@pytest.fixture
def bank_sources():
    """Three recordings of 10 (+ 7 samples), 30 and 5 frames of hop 64, on the int16 grid the bank stores; and
    mels whose channel 0 is the frame index and channel 1 the recording index."""
    generator = torch.Generator().manual_seed(0)
    waves, mels = [], []
    for index, samples in enumerate((10 * SEGMENT_HOP + 7, 30 * SEGMENT_HOP, 6 * SEGMENT_HOP - 1)):
        pcm = torch.randint(-32767, 32768, (samples,), generator=generator)
        waves.append((pcm.float() / 32767.0).numpy())  # exactly what the bank gives back
        frames = samples // SEGMENT_HOP
        mel = torch.randn(4, frames, generator=generator)
        mel[0], mel[1] = torch.arange(frames), index
        mels.append(mel)
    return waves, mels


def test_segments_are_aligned_slices_of_the_recordings(bank_sources):
    waves, mels = bank_sources
    bank = SegmentBank(waves, mels, SEGMENT_HOP, "cpu")
    assert len(bank) == 3 and bank.frames.tolist() == [10, 30, 5]
    mel, audio, from_model = bank.draw(64, 8, torch.Generator().manual_seed(0))
    assert mel.shape == (64, 4, 8) and audio.shape == (64, 8 * SEGMENT_HOP) and from_model.all()
    drawn = set()
    for mel_segment, audio_segment in zip(mel, audio):
        index, first = int(mel_segment[1, 0]), int(mel_segment[0, 0])
        drawn.add((index, first))
        expected = torch.from_numpy(waves[index][first * SEGMENT_HOP: (first + 8) * SEGMENT_HOP])
        assert torch.equal(audio_segment, expected)  # the very samples of that recording's frames
        assert torch.equal(mel_segment, mels[index][:, first: first + 8].half().float())
    assert {index for index, _ in drawn} == {0, 1}  # the 5-frame recording is shorter than a segment
    assert max(first for index, first in drawn if index == 1) <= 30 - 8
    assert len(drawn) > 20  # offsets vary

    again_mel, again_audio, _ = bank.draw(64, 8, torch.Generator().manual_seed(0))
    assert torch.equal(again_mel, mel) and torch.equal(again_audio, audio)
    assert not torch.equal(bank.draw(64, 8, torch.Generator().manual_seed(1)).audio, audio)
    # without mels the same seed draws the same audio
    no_mel, same_audio, none = SegmentBank(waves, None, SEGMENT_HOP, "cpu").draw(64, 8,
                                                                                 torch.Generator().manual_seed(0))
    assert no_mel is None and none is None and torch.equal(same_audio, audio)


def test_a_mixing_bank_takes_the_model_mel_at_its_rate_and_only_where_there_is_one(bank_sources):
    waves, mels = bank_sources
    marked = mels[0].clone()
    marked[1] = 7.0  # recording 1 will have no model mel (zeros in the bank): mark recording 0's apart from them
    half = SegmentBank(waves, [marked, None, mels[2]], SEGMENT_HOP, "cpu", model_mel_fraction=0.5)
    assert half.has_mel.tolist() == [True, False, True]
    segments = half.draw(4000, 8, torch.Generator().manual_seed(0))
    from_zero = segments.mel[:, 1, 0] == 7.0  # recording 2 is shorter than a segment: never drawn
    assert 1000 < int(from_zero.sum()) < 3000
    share = segments.from_model[from_zero].float().mean()
    assert 0.45 < share < 0.55  # recording 0's segments: about half from its model mel
    assert not segments.from_model[~from_zero].any()  # recording 1 has none: always its own mel
    # the audio is drawn as without mixing: the same seed, the same segments
    plain = SegmentBank(waves, mels, SEGMENT_HOP, "cpu").draw(4000, 8, torch.Generator().manual_seed(0))
    assert torch.equal(plain.audio, segments.audio)
    assert not SegmentBank(waves, mels, SEGMENT_HOP, "cpu", model_mel_fraction=0.0).draw(
        64, 8, torch.Generator().manual_seed(0)).from_model.any()
    assert SegmentBank(waves, mels, SEGMENT_HOP, "cpu", model_mel_fraction=1.0).draw(
        64, 8, torch.Generator().manual_seed(0)).from_model.all()
    with pytest.raises(ValueError, match="every recording needs a model mel unless model_mel_fraction is set"):
        SegmentBank(waves, [mels[0], None, mels[2]], SEGMENT_HOP, "cpu")
    with pytest.raises(ValueError, match="no recording has a model mel"):
        SegmentBank(waves, [None, None, None], SEGMENT_HOP, "cpu", model_mel_fraction=0.5)


def test_segment_bank_refuses_misaligned_mels_and_long_segments(bank_sources):
    waves, mels = bank_sources
    with pytest.raises(ValueError, match="model mel 1 has 29 frames but its recording has 30"):
        SegmentBank(waves, [mels[0], mels[1][:, :-1], mels[2]], SEGMENT_HOP, "cpu")
    with pytest.raises(ValueError, match="no recording is at least 31 frames long: lower data.segment_frames"):
        SegmentBank(waves, mels, SEGMENT_HOP, "cpu").draw(2, 31, torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------------------------------------------
# A tiny run end to end, exact resume, refusals
# ---------------------------------------------------------------------------------------------------------------


def test_a_tiny_run_writes_checkpoints_logs_validation_and_a_vocoder_folder(whole_run):
    checkpoints = sorted(p.name for p in (whole_run / "checkpoints").iterdir())
    assert checkpoints == ["step-00000002", "step-00000004"]
    latest = whole_run / "checkpoints" / "step-00000004"
    for name in ("models.safetensors", "optimizer.generator.safetensors", "optimizer.generator.json",
                 "optimizer.discriminators.safetensors", "optimizer.discriminators.json", "rng.safetensors"):
        assert (latest / name).is_file(), name
    assert json.loads((latest / "state.json").read_text())["step"] == 4
    prefixes = {key.split(".")[0] for key in load_file(str(latest / "models.safetensors"))}
    assert prefixes == {"generator", "mpd", "mrd"}

    train_log = read_log(whole_run / "logs" / "train.csv")
    assert [row["step"] for row in train_log] == ["1", "2", "3", "4"]
    for key in ("generator", "mel", "adversarial", "feature_matching", "discriminator", "lr"):
        assert all(np.isfinite(float(row[key])) for row in train_log), key
    val_log = read_log(whole_run / "logs" / "val.csv")
    assert [row["step"] for row in val_log] == ["2", "4"] and float(val_log[-1]["val_mel_l1"]) > 0
    audio, sr = sf.read(whole_run / "logs" / "val-step-00000004.wav")
    assert sr == SAMPLE_RATE and len(audio) == (SAMPLE_RATE // HOP) * HOP  # the first recording, whole
    assert (whole_run / "logs" / "val-step-00000004.png").stat().st_size > 1000

    final = whole_run / "final"
    assert sorted(p.name for p in final.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors",
                                                       "discriminators.safetensors"]
    vocoder = VocosVocoder.from_pretrained(final)
    assert vocoder.config.dim == 16
    assert_same_weights(vocoder.state_dict(), generator_weights(latest))
    assert vocoder(torch.zeros(80, 5) - 4.0).shape == (5 * HOP,)


TINY_HIFIGAN = {"class": "HiFiGANGenerator", "resblock": "2", "upsample_rates": [4, 4, 4, 4],
                "upsample_kernel_sizes": [8, 8, 8, 8], "upsample_initial_channel": 32, "resblock_kernel_sizes": [3],
                "resblock_dilation_sizes": [[1, 3]], "weight_norm": True}


def test_a_hifigan_student_trains_resumes_and_exports_a_plain_vocoder_folder(corpus, tmp_path):
    """``model.class`` HiFiGANGenerator with weight normalisation: the same run, its losses on the front end's
    framing; checkpoints hold the normalised parametrisation (a stopped and resumed run repeats the uninterrupted
    one), and the final folder holds it folded into plain weights, which load as a pipeline vocoder and give the
    trained generator's output."""
    from melinterp.models.vocoder import load_vocoder_folder
    from melinterp.training.vocoder_trainer import add_weight_norm, folded

    config = write_config(corpus, "hifigan")
    config.write_text(json.dumps({**json.loads(config.read_text()), "model": TINY_HIFIGAN}))  # not merged: replaced
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert train_vocoder(config, whole) == 0
    train_log = read_log(whole / "logs" / "train.csv")
    assert [row["step"] for row in train_log] == ["1", "2", "3", "4"]
    assert all(np.isfinite(float(row["mel"])) and float(row["mel"]) > 0 for row in train_log)
    weights = generator_weights(whole / "checkpoints" / "step-00000004")
    assert any(".parametrizations.weight.original1" in key for key in weights)

    vocoder = load_vocoder_folder(whole / "final", torch_dtype=torch.float32)
    assert isinstance(vocoder, HiFiGANGenerator) and vocoder.config.upsample_initial_channel == 32
    assert not any("parametrizations" in key for key in vocoder.state_dict())
    trained = add_weight_norm(build_generator(TINY_HIFIGAN))
    trained.load_state_dict(weights)
    mel = torch.randn(1, 80, 6) - 4.0
    with torch.no_grad():
        torch.testing.assert_close(vocoder(mel), trained(mel), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(folded(trained)(mel), trained(mel), atol=1e-6, rtol=1e-5)
    assert folded(vocoder) is vocoder  # nothing to fold

    assert train_vocoder(config, split, "--max-steps", "2") == 0
    assert train_vocoder(config, split, "--resume") == 0
    assert_same_weights(generator_weights(split / "checkpoints" / "step-00000004"), weights)


def test_weight_norm_must_be_a_boolean():
    with pytest.raises(ValueError, match="model.weight_norm must be true or false, got 'yes'"):
        VocoderTrainingConfig.from_dict({**TINY_CONFIG, "model": {**TINY_HIFIGAN, "weight_norm": "yes"}})


def test_stopped_and_resumed_run_matches_the_uninterrupted_one(corpus, whole_run, tmp_path, capsys):
    config = corpus / "configs" / "tiny.json"
    split = tmp_path / "split"
    assert train_vocoder(config, split, "--max-steps", "2") == 0
    assert train_vocoder(config, split) == 1  # a finished piece is not overwritten by accident
    err = capsys.readouterr().err
    assert "already holds checkpoints: pass --resume" in err and err.count("\n") == 1
    assert train_vocoder(config, split, "--resume") == 0
    assert "resumed from" in capsys.readouterr().out

    assert_same_weights(generator_weights(split / "checkpoints" / "step-00000004"),
                        generator_weights(whole_run / "checkpoints" / "step-00000004"))
    whole_log, split_log = read_log(whole_run / "logs" / "train.csv"), read_log(split / "logs" / "train.csv")
    assert [row["step"] for row in split_log] == ["1", "2", "3", "4"]
    for a, b in zip(whole_log, split_log):
        for key in ("mel", "discriminator", "lr"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5, abs=1e-6), (a["step"], key)


def test_resume_falls_back_past_a_truncated_checkpoint_and_says_so(corpus, whole_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(whole_run, run)
    broken = run / "checkpoints" / "step-00000004" / "models.safetensors"
    broken.write_bytes(broken.read_bytes()[:1000])  # a disk that filled up while the checkpoint was written
    assert train_vocoder(corpus / "configs" / "tiny.json", run, "--resume") == 0
    captured = capsys.readouterr()
    assert f"skipped checkpoint step-00000004: {broken} is truncated" in captured.err
    assert f"resumed from {run / 'checkpoints' / 'step-00000002'} at step 2" in captured.out
    # steps 3 and 4 again, from step 2: the same weights as the uninterrupted run's
    assert_same_weights(generator_weights(run / "checkpoints" / "step-00000004"),
                        generator_weights(whole_run / "checkpoints" / "step-00000004"))


def test_init_from_starts_from_a_vocoder_folder(corpus, whole_run, tmp_path):
    config = VocoderTrainingConfig.from_file(corpus / "configs" / "tiny.json")
    final = whole_run / "final"
    started = VocoderTrainer(config, tmp_path / "finetune", init_from=final, progress=False)
    models = started._unwrapped()
    assert started.step == 0
    assert_same_weights(models["generator"].state_dict(), load_file(str(final / "diffusion_pytorch_model.safetensors")))
    discriminators = load_file(str(final / "discriminators.safetensors"))
    for name in ("mpd", "mrd"):
        assert_same_weights({f"{name}.{k}": v for k, v in models[name].state_dict().items()},
                            {k: v for k, v in discriminators.items() if k.startswith(f"{name}.")})
    # and those are the trained weights, not a fresh seeded start
    fresh = VocoderTrainer(config, tmp_path / "fresh", progress=False)._unwrapped()["generator"].state_dict()
    assert any(not torch.equal(fresh[k], v) for k, v in models["generator"].state_dict().items())


def test_init_from_refuses_a_mismatch_and_resume(corpus, whole_run, tmp_path, capsys):
    final = str(whole_run / "final")
    wider = write_config(corpus, "wider", model={"dim": 32})
    assert train_vocoder(wider, tmp_path / "wider", "--init-from", final) == 1
    err = capsys.readouterr().err
    assert err.startswith("melinterp train-vocoder: error: --init-from ") and err.count("\n") == 1
    assert "does not fit the configured model" in err and "other shapes" in err

    assert train_vocoder(corpus / "configs" / "tiny.json", tmp_path / "both", "--init-from", final, "--resume") == 1
    assert "--resume continues a run from its checkpoint: pass one of them" in capsys.readouterr().err
    assert not (tmp_path / "both").exists()

    assert train_vocoder(corpus / "configs" / "tiny.json", tmp_path / "empty", "--init-from", str(tmp_path)) == 1
    assert "no diffusion_pytorch_model.safetensors" in capsys.readouterr().err


def test_mel_loss_stays_float32_under_bf16_autocast(corpus, tmp_path, monkeypatch):
    config = VocoderTrainingConfig.from_file(write_config(corpus, "no_val", data={"val_filelist": None}))
    trainer = VocoderTrainer(config, tmp_path / "bf16", progress=False)
    monkeypatch.setattr(trainer.accelerator, "autocast", lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    dtypes = []
    log_mel = trainer.mel.log_mel  # the step makes both mels from STFT frames it also keeps

    def recording_log_mel(spectrum):
        dtypes.append(log_mel(spectrum).dtype)
        return log_mel(spectrum)

    monkeypatch.setattr(trainer.mel, "log_mel", recording_log_mel)
    trainer._train_step()
    assert dtypes == [torch.float32, torch.float32]  # the real segment's mel and the generated one's
    assert all(np.isfinite(value) for value in trainer._last_losses.values())


def _phase_ramp(n_freq: int, frames: int, per_bin: float, per_frame: float, offset: float = 0.0) -> torch.Tensor:
    """Unit-magnitude (1, n_freq, T) frames whose phase is offset + per_bin * k + per_frame * t."""
    k = torch.arange(n_freq, dtype=torch.float32)[:, None]
    t = torch.arange(frames, dtype=torch.float32)[None]
    return torch.polar(torch.ones(n_freq, frames), offset + per_bin * k + per_frame * t)[None]


def test_phase_losses_measure_each_kind_of_phase_error():
    truth = _phase_ramp(33, 20, per_bin=0.3, per_frame=1.1)
    same = phase_losses(truth, truth)
    assert all(float(value) < 1e-5 for value in same.values())
    # 2 pi apart is the same phase; a constant offset moves the phase but neither of its differences
    assert float(phase_losses(_phase_ramp(33, 20, 0.3, 1.1, offset=2 * np.pi), truth)["ip"]) < 1e-5
    shifted = phase_losses(_phase_ramp(33, 20, 0.3, 1.1, offset=0.5), truth)
    assert float(shifted["ip"]) == pytest.approx(0.5, abs=1e-5)
    assert float(shifted["gd"]) < 1e-5 and float(shifted["ptd"]) < 1e-5
    # a wrong instantaneous frequency is a phase time difference error; a wrong pulse position, a group delay one
    assert float(phase_losses(_phase_ramp(33, 20, 0.3, 1.4), truth)["ptd"]) == pytest.approx(0.3, abs=1e-5)
    assert float(phase_losses(_phase_ramp(33, 20, 0.3, 1.4), truth)["gd"]) < 1e-5
    assert float(phase_losses(_phase_ramp(33, 20, 0.1, 1.1), truth)["gd"]) == pytest.approx(0.2, abs=1e-5)
    # an error of nearly 2 pi is a small one the other way (anti-wrapped)
    assert float(anti_wrapped(torch.tensor(2 * np.pi - 0.1))) == pytest.approx(0.1, abs=1e-6)


def test_phase_losses_count_only_the_audible_cells():
    truth = _phase_ramp(33, 20, 0.3, 1.1)
    quiet = torch.ones(1, 33, 20)
    quiet[:, 16:] = 1e-4  # the upper bins 80 dB down: below the -60 dB floor
    wrong_above = torch.cat([truth[:, :16], _phase_ramp(33, 20, 0.3, 1.1, offset=1.0)[:, 16:]], dim=1)
    losses = phase_losses(wrong_above, truth * quiet)
    assert float(losses["ip"]) < 1e-5 and float(losses["ptd"]) < 1e-5
    predicted = truth.clone().requires_grad_(True)
    phase_losses(predicted * torch.polar(torch.ones(()), torch.tensor(0.4)), truth)["ip"].backward()
    assert predicted.grad is not None and torch.isfinite(predicted.grad.real).all()
    with pytest.raises(ValueError, match="two complex STFTs of one shape"):
        phase_losses(truth.abs(), truth)
    with pytest.raises(ValueError, match="two complex STFTs of one shape"):
        phase_losses(truth[:, :, :1], truth[:, :, :1])


def test_magnitude_loss_compares_log_magnitudes_bin_by_bin():
    truth = _phase_ramp(33, 20, 0.3, 1.1) * 0.5
    assert float(magnitude_loss(truth, truth)) < 1e-6
    # the phase is not its business; a factor e on every cell is 1 in log magnitude
    assert float(magnitude_loss(truth * torch.polar(torch.ones(()), torch.tensor(1.0)), truth)) < 1e-5
    assert float(magnitude_loss(truth * np.e, truth)) == pytest.approx(1.0, abs=1e-4)
    # one bin of 33 wrong by e^2 in every frame: the mean is 2 / 33, though the mel filterbank might average it away
    louder = truth.clone()
    louder[:, 20] *= np.e ** 2
    assert float(magnitude_loss(louder, truth)) == pytest.approx(2 / 33, abs=1e-4)
    with pytest.raises(ValueError, match="two complex STFTs of one shape"):
        magnitude_loss(truth.abs(), truth)


def test_complex_loss_charges_a_phase_error_by_the_compressed_magnitude():
    truth = _phase_ramp(33, 20, 0.3, 1.1) * 8.0  # every cell of magnitude 8: 8 ** 0.3 after compression
    exact = functools.partial(complex_loss, eps=0.0)  # the arithmetic without the floor near silence
    assert float(exact(truth, truth)) < 1e-6
    scale = 8.0 ** 0.3
    # a phase off by pi everywhere: each compressed cell is its own negative, a distance of 2 x 8 ** 0.3
    flipped = truth * torch.polar(torch.ones(()), torch.tensor(np.pi))
    assert float(exact(flipped, truth)) == pytest.approx(2 * scale, rel=1e-4)
    # off by a quarter turn: |1 - i| = sqrt(2) per unit of compressed magnitude
    quarter = truth * torch.polar(torch.ones(()), torch.tensor(np.pi / 2))
    assert float(exact(quarter, truth)) == pytest.approx(np.sqrt(2) * scale, rel=1e-4)
    # a magnitude error alone: (e * 8) ** 0.3 - 8 ** 0.3 per cell
    assert float(exact(truth * np.e, truth)) == pytest.approx(scale * (np.e ** 0.3 - 1), rel=1e-4)
    # the same phase error in a quieter target costs less
    assert float(exact(flipped / 64, truth / 64)) == pytest.approx(2 * (8 / 64) ** 0.3, rel=1e-4)
    # the default floor changes a loud cell's cost by a hair, and silence costs nothing, with finite gradients
    assert float(complex_loss(flipped, truth)) == pytest.approx(2 * 8 * 8.01 ** -0.7, rel=1e-4)
    silent = torch.zeros_like(truth, requires_grad=True)
    loss = complex_loss(silent, torch.zeros_like(truth))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(silent.grad).all()
    with pytest.raises(ValueError, match="two complex STFTs of one shape"):
        complex_loss(truth.abs(), truth)


def test_spectral_weights_add_the_phase_and_magnitude_terms_to_the_generator_loss(corpus, tmp_path):
    weights = {"ip_weight": 0.5, "gd_weight": 2.0, "ptd_weight": 3.0, "magnitude_weight": 4.0,
               "complex_weight": 5.0}
    config = VocoderTrainingConfig.from_file(write_config(corpus, "phase", data={"val_filelist": None},
                                                          optim=weights))
    trainer = VocoderTrainer(config, tmp_path / "phase", progress=False)
    trainer._train_step()
    losses = trainer._last_losses
    assert all(0.0 <= losses[f"phase_{term}"] <= np.pi for term in ("ip", "gd", "ptd"))
    assert losses["magnitude"] > 0.0 and losses["complex"] > 0.0
    without_spectral = (losses["adversarial"] + config.optim.feature_matching_weight * losses["feature_matching"]
                        + config.optim.mel_weight * losses["mel"])
    spectral = (sum(weights[f"{term}_weight"] * losses[f"phase_{term}"] for term in ("ip", "gd", "ptd"))
                + weights["magnitude_weight"] * losses["magnitude"] + weights["complex_weight"] * losses["complex"])
    assert losses["generator"] == pytest.approx(without_spectral + spectral, rel=1e-4)
    assert all(p.grad is not None for p in trainer.models["generator"].parameters())

    plain = VocoderTrainer(VocoderTrainingConfig.from_file(write_config(corpus, "no_val", data={"val_filelist": None})),
                           tmp_path / "plain", progress=False)
    plain._train_step()
    assert not any(name.startswith("phase_") or name in ("magnitude", "complex") for name in plain._last_losses)


def test_generator_step_leaves_the_discriminators_gradients_alone(corpus, tmp_path):
    """The generator's backward pass computes no discriminator weight gradients (they would be thrown away at the
    next zero_grad), and the discriminators train again afterwards."""
    config = VocoderTrainingConfig.from_file(write_config(corpus, "no_val", data={"val_filelist": None}))
    trainer = VocoderTrainer(config, tmp_path / "frozen", progress=False)
    optimizer = trainer.optimizers["discriminators"]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    after_d_step = {}
    original_step = optimizer.step

    def step_and_snapshot(*args, **kwargs):
        result = original_step(*args, **kwargs)
        after_d_step.update({id(p): p.grad.clone() for p in params})
        return result

    optimizer.step = step_and_snapshot
    trainer._train_step()
    assert len(after_d_step) == len(params)
    assert all(torch.equal(p.grad, after_d_step[id(p)]) for p in params)
    assert all(p.requires_grad for p in params)
    assert all(p.grad is not None for p in trainer.models["generator"].parameters())

# ---------------------------------------------------------------------------------------------------------------
# Fine-tuning on the model's own mels
# ---------------------------------------------------------------------------------------------------------------


OFFSET = 0.5  # the stand-in "model mel" is the recording's own mel shifted by this (nats)


@pytest.fixture(scope="module")
def model_mels(corpus) -> Path:
    """model_mels.safetensors for three of the four recordings (all but the noise)."""
    utterances = [u for u in read_filelist(corpus / "train.txt") if u.speaker != "noise"]
    mels = {recording_key(u): mel_spectrogram(load_audio(u.wav_path)) + OFFSET for u in utterances}
    return save_model_mels({key: mel.half() for key, mel in mels.items()}, corpus / "model_mels.safetensors")


def test_model_mels_are_read_by_recording_key_whatever_the_audio_format(corpus, model_mels, tmp_path):
    mels = read_model_mels(model_mels)
    assert sorted(mels) == ["wavs/tone_110", "wavs/tone_180", "wavs/tone_260"]
    own = mel_spectrogram(load_audio(corpus / "wavs" / "tone_110.wav"))
    torch.testing.assert_close(mels["wavs/tone_110"].float(), own + OFFSET, atol=1e-2, rtol=0)

    # the same recordings converted to flac, listed by another filelist in the same folder: the same keys
    lines = []
    for utterance in read_filelist(corpus / "train.txt"):
        audio, sr = sf.read(utterance.wav_path, dtype="float32")
        sf.write(utterance.wav_path.with_suffix(".flac"), audio, sr)
        lines.append(f"wavs/{utterance.wav_path.stem}.flac|{utterance.speaker}|{utterance.text}")
    flac_list = corpus / "train_flac.txt"
    flac_list.write_text("\n".join(lines) + "\n")
    flac_keys = [recording_key(u) for u in read_filelist(flac_list)]
    assert flac_keys == [recording_key(u) for u in read_filelist(corpus / "train.txt")]
    config = VocoderTrainingConfig.from_file(corpus / "configs" / "tiny.json")
    bank, keys = load_bank(str(flac_list), config, FeatureConfig(), "cpu", model_mels=mels)
    assert keys == ["wavs/tone_110", "wavs/tone_180", "wavs/tone_260"] and len(bank) == 3  # no mel: left out

    with pytest.raises(ValueError, match="none of its recordings has a model mel"):
        load_bank(str(flac_list), config, FeatureConfig(), "cpu", model_mels={"elsewhere/x": own})
    save_file({"mel.0": own}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(ValueError, match="has no 'recordings' metadata"):
        read_model_mels(tmp_path / "bare.safetensors")
    (tmp_path / "truncated.safetensors").write_bytes((tmp_path / "bare.safetensors").read_bytes()[:20])
    with pytest.raises(ValueError, match="truncated.safetensors is not a readable safetensors file"):
        read_model_mels(tmp_path / "truncated.safetensors")


def test_fine_tuning_draws_the_model_mels_of_the_drawn_audio(corpus, model_mels, tmp_path):
    config = VocoderTrainingConfig.from_file(write_config(corpus, "finetune",
                                                          data={"model_mels": "../model_mels.safetensors"}))
    trainer = VocoderTrainer(config, tmp_path / "finetune", max_steps=2, progress=False)
    assert len(trainer.train_bank) == 3  # the noise recording has no model mel
    mel_in, audio, _ = trainer.train_bank.draw(8, 16, torch.Generator().manual_seed(0))
    # away from the segment's edges (where its own reflect padding differs) the real mel is the model mel - OFFSET
    torch.testing.assert_close(mel_in[..., 2:-2], trainer.mel(audio)[..., 2:-2] + OFFSET, atol=2e-2, rtol=0)
    val_mel, val_audio = trainer.val_items[0]
    torch.testing.assert_close(val_mel, read_model_mels(model_mels)["wavs/tone_110"].float())
    assert val_audio.shape == (val_mel.shape[-1] * HOP,)

    result = trainer.train()
    assert result.step == 2 and result.stopped_by == "max_steps"
    assert (tmp_path / "finetune" / "final" / "diffusion_pytorch_model.safetensors").is_file()
    recorded = json.loads((tmp_path / "finetune" / "training_config.json").read_text())
    assert recorded["data"]["model_mels"] == [str(model_mels.resolve())]


def test_mixing_keeps_every_recording_and_validates_on_their_own_mels(corpus, model_mels, tmp_path):
    config = VocoderTrainingConfig.from_file(write_config(
        corpus, "mixed", data={"model_mels": "../model_mels.safetensors", "model_mel_fraction": 0.5}))
    trainer = VocoderTrainer(config, tmp_path / "mixed", max_steps=2, progress=False)
    assert len(trainer.train_bank) == 4 and trainer.train_bank.has_mel.tolist().count(False) == 1  # the noise
    segments = trainer.train_bank.draw(64, 16, torch.Generator().manual_seed(0))
    own = trainer.mel(segments.audio)
    inner = (..., slice(2, -2))  # away from the segments' edges, where their own reflect padding differs
    model_rows, own_rows = segments.from_model, ~segments.from_model
    assert model_rows.any() and own_rows.any()
    torch.testing.assert_close(segments.mel[model_rows][inner], own[model_rows][inner] + OFFSET, atol=2e-2, rtol=0)
    val_mel, val_audio = trainer.val_items[0]
    torch.testing.assert_close(val_mel, trainer.mel(val_audio))  # the recording's own mel, not its model mel
    assert trainer.train().step == 2


def test_a_teacher_bank_trains_model_mel_rows_towards_the_teachers_audio(bank_sources):
    waves, mels = bank_sources
    teacher_waves = [-wave for wave in waves]  # a stand-in teacher: the recording upside down
    teacher_waves[1] = None
    bank = SegmentBank(waves, [mels[0], None, mels[2]], SEGMENT_HOP, "cpu", model_mel_fraction=0.5,
                       teacher_waves=teacher_waves)
    segments = bank.draw(400, 8, torch.Generator().manual_seed(0))
    plain = SegmentBank(waves, [mels[0], None, mels[2]], SEGMENT_HOP, "cpu", model_mel_fraction=0.5).draw(
        400, 8, torch.Generator().manual_seed(0))
    rows = segments.from_model
    assert rows.any() and (~rows).any() and torch.equal(rows, plain.from_model)
    torch.testing.assert_close(segments.audio[rows], -plain.audio[rows], atol=1e-4, rtol=0)
    assert torch.equal(segments.audio[~rows], plain.audio[~rows])  # recording rows keep the recording

    with pytest.raises(ValueError, match="one waveform for each model mel"):
        SegmentBank(waves, [mels[0], None, mels[2]], SEGMENT_HOP, "cpu", model_mel_fraction=0.5,
                    teacher_waves=[waves[0], waves[1], waves[2]])
    with pytest.raises(ValueError, match="teacher waveform 0 has 10 samples but its model mel needs 640"):
        SegmentBank(waves, mels, SEGMENT_HOP, "cpu", teacher_waves=[waves[0][:10], waves[1], waves[2]])


@pytest.fixture(scope="module")
def teacher_folder(tmp_path_factory) -> Path:
    """A tiny randomly initialised HiFi-GAN (V3 layout, hop 256) saved as a vocoder folder."""
    from melinterp import HiFiGANGenerator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        teacher = HiFiGANGenerator(resblock="2", upsample_rates=(8, 8, 4), upsample_kernel_sizes=(16, 16, 8),
                                   upsample_initial_channel=16, resblock_kernel_sizes=(3,),
                                   resblock_dilation_sizes=((1, 3),))
    folder = tmp_path_factory.mktemp("teacher") / "hifigan"
    teacher.save_pretrained(folder)
    return folder


def test_distillation_targets_are_the_teachers_output_on_the_model_mel(corpus, model_mels, teacher_folder, tmp_path):
    from melinterp import HiFiGANGenerator

    config = VocoderTrainingConfig.from_file(write_config(corpus, "distil", data={
        "model_mels": "../model_mels.safetensors", "model_mel_fraction": 0.5, "teacher": str(teacher_folder)}))
    assert config.data.teacher == str(teacher_folder)
    trainer = VocoderTrainer(config, tmp_path / "distil", max_steps=2, progress=False)
    assert trainer.teacher is None  # its targets are rendered once; its weights are not kept for the run
    teacher = HiFiGANGenerator.from_pretrained(teacher_folder).eval()
    bank, mels = trainer.train_bank, read_model_mels(model_mels)
    # each recording's targets: the teacher's waveform of its whole model mel (16-bit), the noise's (no mel) its own
    for index, key in enumerate(["wavs/tone_110", "wavs/tone_180", "wavs/tone_260", "wavs/noise"]):
        start, frames = int(bank.audio_start[index]) * HOP, int(bank.frames[index])
        stored = bank.teacher_audio[start: start + frames * HOP].float() / 32767
        if key in mels:
            with torch.no_grad():
                expected = teacher(mels[key].float()[None])[0]
            torch.testing.assert_close(stored, expected, atol=1 / 32767, rtol=0)
        else:
            assert torch.equal(bank.teacher_audio[start: start + frames * HOP], bank.audio[start: start + frames * HOP])
    segments = bank.draw(64, 16, torch.Generator().manual_seed(0))
    rows = segments.from_model
    assert rows.any() and (~rows).any()
    inner = (..., slice(2, -2))  # away from the segments' edges, where their own reflect padding differs
    # recording rows of the tones still learn the recording (the model mel is the recording's mel + OFFSET there;
    # the noise has none, zeros in the bank)
    tones = ~rows & (segments.mel.abs().amax(dim=(1, 2)) > 0)
    assert tones.any()
    torch.testing.assert_close(segments.mel[tones][inner], trainer.mel(segments.audio[tones])[inner] + OFFSET,
                               atol=2e-2, rtol=0)
    # model-mel rows do not: their target is the teacher's, whose mel is not the model mel's
    assert (segments.mel[rows][inner] - trainer.mel(segments.audio[rows])[inner] - OFFSET).abs().mean() > 0.1
    assert trainer.train().step == 2


def test_distillation_on_mels_alone_pairs_every_mel_with_the_teachers_waveform(corpus, model_mels, teacher_folder,
                                                                               tmp_path, capsys):
    from melinterp import HiFiGANGenerator

    own = tmp_path / "own_mels.safetensors"
    assert main(["vocoder-mels", "--own", "--filelist", str(corpus / "train.txt"), "--out", str(own), "--quiet"]) == 0
    own_mels = read_model_mels(own)
    # the synthesis options do not apply to the recordings' own mels: refused by name, nothing written
    refused = tmp_path / "refused.safetensors"
    for extra, named in ((["--steps", "5"], "--steps does not apply"),
                         (["--seed", "3", "--reference-filelist", str(corpus / "train.txt")],
                          "--seed, --reference-filelist do not apply")):
        assert main(["vocoder-mels", "--own", "--filelist", str(corpus / "train.txt"), "--out", str(refused),
                     "--quiet", *extra]) == 1
        assert named in capsys.readouterr().err and not refused.exists()
    assert sorted(own_mels) == ["wavs/noise", "wavs/tone_110", "wavs/tone_180", "wavs/tone_260"]
    torch.testing.assert_close(own_mels["wavs/tone_180"].float(),
                               mel_spectrogram(load_audio(corpus / "wavs" / "tone_180.wav")), atol=1e-2, rtol=0)

    config = VocoderTrainingConfig.from_file(write_config(corpus, "mels_alone", data={
        "train_filelist": None, "model_mels": ["../model_mels.safetensors", str(own)],
        "teacher": str(teacher_folder)}))
    trainer = VocoderTrainer(config, tmp_path / "mels_alone", max_steps=2, progress=False)
    bank = trainer.train_bank
    assert len(bank) == 7  # 3 model mels and 4 own mels: a recording is in it twice, once with each
    assert bank.has_mel.all() and bank.teacher_audio is None
    teacher = HiFiGANGenerator.from_pretrained(teacher_folder).eval()
    mels = [*read_model_mels(model_mels).values(), *own_mels.values()]
    for index, mel in enumerate(mels):
        start, frames = int(bank.audio_start[index]), int(bank.frames[index])
        assert frames == mel.shape[-1]
        with torch.no_grad():
            expected = teacher(mel.float()[None])[0]
        torch.testing.assert_close(bank.audio[start * HOP: (start + frames) * HOP].float() / 32767, expected,
                                   atol=1 / 32767, rtol=0)
        assert torch.equal(bank.mels[:, start: start + frames], mel.half())
    val_mel, val_audio = trainer.val_items[0]
    torch.testing.assert_close(val_mel, trainer.mel(val_audio))  # validated on a recording's own mel
    assert trainer.train().step == 2


def test_distillation_without_discriminators_trains_the_generator_on_the_spectral_terms_alone(
        corpus, model_mels, teacher_folder, tmp_path):
    resolutions = [[256, 64], [512, 128]]
    config = VocoderTrainingConfig.from_file(write_config(corpus, "no_gan", data={
        "train_filelist": None, "model_mels": "../model_mels.safetensors", "teacher": str(teacher_folder),
        "val_filelist": None}, optim={"adversarial": False, "complex_weight": 3.0, "magnitude_weight": 2.0,
                                      "spectral_resolutions": resolutions}))
    trainer = VocoderTrainer(config, tmp_path / "no_gan", progress=False)
    discriminators = {name: [p.detach().clone() for p in trainer.models[name].parameters()] for name in ("mpd", "mrd")}
    generator_before = [p.detach().clone() for p in trainer.models["generator"].parameters()]
    trainer._train_step()
    losses = trainer._last_losses
    assert set(losses) == {"generator", "mel", "grad_norm_g", "magnitude", "complex"}
    assert losses["generator"] == pytest.approx(config.optim.mel_weight * losses["mel"] + 2.0 * losses["magnitude"]
                                                + 3.0 * losses["complex"], rel=1e-4)
    for name, before in discriminators.items():  # never run, never stepped
        assert all(torch.equal(a, b) for a, b in zip(trainer.models[name].parameters(), before))
        assert all(p.grad is None for p in trainer.models[name].parameters())
    assert any(not torch.equal(a, b) for a, b in zip(trainer.models["generator"].parameters(), generator_before))

    # each term is the mean of the term at every listed framing (Hann window of n_fft, centred frames)
    fake, real = torch.randn(2, 4096) * 0.1, torch.randn(2, 4096) * 0.1
    spectra = [trainer.mel.stft(fake), trainer.mel.stft(real)]
    terms = trainer._spectral_terms(fake, real, *spectra)
    expected = {"magnitude": [], "complex": []}
    for n_fft, hop in resolutions:
        window = torch.hann_window(n_fft)
        a, b = (torch.stft(x, n_fft, hop_length=hop, window=window, return_complex=True) for x in (fake, real))
        assert a.shape[1] == n_fft // 2 + 1
        expected["magnitude"].append(float(magnitude_loss(a, b)))
        expected["complex"].append(float(complex_loss(a, b)))
    assert float(terms["magnitude"]) == pytest.approx(np.mean(expected["magnitude"]), rel=1e-5)
    assert float(terms["complex"]) == pytest.approx(np.mean(expected["complex"]), rel=1e-5)
    assert float(trainer._spectral_terms(real, real, spectra[1], spectra[1])["complex"]) == 0.0
    # a framing longer than a training segment would have nothing to frame: refused by name before any work
    segment = config.data.segment_frames * HOP
    too_long = VocoderTrainingConfig.from_file(write_config(corpus, "too_long", data={"val_filelist": None},
                                                            optim={"spectral_resolutions": [[512, 128],
                                                                                            [2 * segment, 128]]}))
    with pytest.raises(ValueError, match=f"an n_fft of {2 * segment} is longer than a training segment "
                                         rf"\({config.data.segment_frames} frames x {HOP} = {segment} samples"):
        VocoderTrainer(too_long, tmp_path / "too_long", progress=False)
    assert not (tmp_path / "too_long").exists()
    # unset, the terms are the front end's framing's, from the spectra the step already has
    trainer.config.optim.spectral_resolutions = None
    assert float(trainer._spectral_terms(fake, real, *spectra)["complex"]) == pytest.approx(
        float(complex_loss(*spectra)), rel=1e-6)


@pytest.mark.parametrize("data, message", [
    ({"teacher": "somewhere"}, "data.teacher needs data.model_mels"),
    ({"train_filelist": None}, "data.train_filelist is required"),
    ({"train_filelist": None, "teacher": "t", "model_mels": "m", "model_mel_fraction": 0.5},
     "data.model_mel_fraction mixes recordings with their model mels: it needs data.train_filelist"),
])
def test_teacher_configs_that_cannot_work_are_refused(corpus, data, message):
    with pytest.raises(ValueError, match=message):
        VocoderTrainingConfig.from_file(write_config(corpus, "bad_teacher", data=data))


def test_a_teacher_of_other_features_or_no_folder_is_refused_by_name(corpus, model_mels, tmp_path):
    from melinterp import HiFiGANGenerator

    HiFiGANGenerator(resblock="2", upsample_rates=(8, 8, 2), upsample_kernel_sizes=(16, 16, 4),
                     upsample_initial_channel=16, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),),
                     hop_length=128).save_pretrained(tmp_path / "hop128")
    for folder, message in ((tmp_path / "hop128", "its hop_length is 128 but the generator's is 256"),
                            (tmp_path / "missing", "not a folder")):
        config = VocoderTrainingConfig.from_file(write_config(corpus, "teacher_mismatch", data={
            "model_mels": "../model_mels.safetensors", "model_mel_fraction": 0.5, "teacher": str(folder)}))
        with pytest.raises(ValueError, match=message):
            VocoderTrainer(config, tmp_path / "run", max_steps=1, progress=False)


@pytest.mark.parametrize("data, message", [
    ({"model_mels": "../model_mels.safetensors", "model_mel_fraction": 1.5}, "data.model_mel_fraction must be"),
    ({"model_mels": "../model_mels.safetensors", "model_mel_fraction": "half"}, "data.model_mel_fraction must be"),
    ({"model_mel_fraction": 0.5}, "data.model_mel_fraction needs data.model_mels"),
])
def test_a_bad_model_mel_fraction_is_refused_by_name(corpus, data, message):
    with pytest.raises(ValueError, match=message):
        VocoderTrainingConfig.from_file(write_config(corpus, "bad_fraction", data=data))


# ---------------------------------------------------------------------------------------------------------------
# melinterp vocoder-mels: teacher-forced mels on the recordings' frame grid
# ---------------------------------------------------------------------------------------------------------------


SPEECH = {"adam": ("en-us", ["The red fox ran home.", "Seven apples fell down."]),
          "bella": ("en+f3", ["A quiet river sings.", "Stone bridges are old."])}


@pytest.fixture(scope="module")
def speech_corpus(tmp_path_factory) -> Path:
    """A saved tiny pipeline, and two espeak-ng speakers with two utterances each (filelist speech.txt)."""
    root = tmp_path_factory.mktemp("speech_corpus")
    tiny_pipeline().save_pretrained(root / "model")
    lines = []
    for speaker, (voice, texts) in SPEECH.items():
        for index, text in enumerate(texts):
            path = root / "wavs" / f"{speaker}_{index}.wav"
            path.parent.mkdir(exist_ok=True)
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
            lines.append(f"wavs/{path.name}|{speaker}|{text}")
    (root / "speech.txt").write_text("\n".join(lines) + "\n")
    (root / "adam_only.txt").write_text(lines[0] + "\n")
    return root


def vocoder_mels(root: Path, filelist: str, out: Path, *extra: str) -> int:
    return main(["vocoder-mels", "--model", str(root / "model"), "--filelist", str(root / filelist), "--out", str(out),
                 "--steps", "2", "--quiet", *extra])


@pytest.mark.engines
@requires_espeak
def test_vocoder_mels_lie_on_each_recordings_frame_grid(speech_corpus, tmp_path, capsys):
    out = tmp_path / "mels.safetensors"
    assert vocoder_mels(speech_corpus, "speech.txt", out) == 0
    assert "wrote 4 teacher-forced mels" in capsys.readouterr().out
    mels = read_model_mels(out)
    utterances = read_filelist(speech_corpus / "speech.txt")
    assert sorted(mels) == sorted(recording_key(u) for u in utterances)
    for utterance in utterances:
        mel = mels[recording_key(utterance)]
        samples = len(load_audio(utterance.wav_path, min_duration=0.05))
        assert mel.shape == (80, samples // HOP) and mel.dtype == torch.float16
        assert torch.isfinite(mel).all()

    assert vocoder_mels(speech_corpus, "speech.txt", out, "--max-per-speaker", "1") == 0
    assert sorted(read_model_mels(out)) == ["wavs/adam_0", "wavs/bella_0"]


@pytest.mark.engines
@requires_espeak
def test_vocoder_mels_needs_another_recording_of_each_speaker(speech_corpus, tmp_path, capsys):
    out = tmp_path / "mels.safetensors"
    for extra in ((), ("--reference-filelist", str(speech_corpus / "adam_only.txt"))):  # itself is no other
        assert vocoder_mels(speech_corpus, "adam_only.txt", out, *extra) == 1
        err = capsys.readouterr().err
        assert err.startswith("melinterp vocoder-mels: error: speakers with a single recording") and "adam" in err
        assert not out.exists()
    # with the speaker's other recordings as references it speaks
    assert vocoder_mels(speech_corpus, "adam_only.txt", out, "--reference-filelist",
                        str(speech_corpus / "speech.txt")) == 0
    assert list(read_model_mels(out)) == ["wavs/adam_0"]
