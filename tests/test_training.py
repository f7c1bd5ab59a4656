"""Training: config parsing, checkpoints, one-batch overfitting, and exact resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SAMPLE_RATE, harmonic_tone

from melinterp.audio import FeatureConfig
from melinterp.data import SpeechStyleCollate, SpeechStyleDataset, build_cache, read_filelist
from melinterp.schedulers import GradTTSScheduler
from melinterp.text import TextConfig, TextProcessor
from melinterp.training import TrainingConfig
from melinterp.training.checkpoint import flatten_optimizer_state, unflatten_optimizer_state
from melinterp.training.objective import compute_losses
from melinterp.training.run import TrainingRun
from melinterp.training.trainer import Trainer, build_models, learning_rate_at

REPO = Path(__file__).resolve().parents[1]
TINY_MODELS = REPO / "examples" / "configs" / "models" / "tiny.json"
WORDS = "red blue green seven apples under the old bridge quietly sing loud morning river stone".split()


def syllable_tone(f0: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A harmonic tone with a syllable-rate loudness envelope: crude speech-like structure at a known pitch."""
    tone = harmonic_tone(f0 * rng.uniform(0.97, 1.03), seconds)
    t = np.arange(tone.size) / SAMPLE_RATE
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(3.0, 5.0) * t + rng.uniform(0, np.pi))
    return (tone * envelope).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> dict:
    """Three 'speakers' (tones at 110, 180, 260 Hz), four short utterances each, with a built feature cache."""
    root = tmp_path_factory.mktemp("tiny_corpus")
    rng = np.random.default_rng(0)
    lines = []
    for speaker, f0 in (("low", 110.0), ("mid", 180.0), ("high", 260.0)):
        for index in range(4):
            path = root / "wavs" / f"{speaker}_{index}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, syllable_tone(f0, rng.uniform(0.7, 1.1), rng), SAMPLE_RATE)
            text = " ".join(rng.choice(WORDS, size=3)) + "."
            lines.append(f"wavs/{path.name}|{speaker}|{text}")
    filelist = root / "train.txt"
    filelist.write_text("\n".join(lines) + "\n", encoding="utf-8")
    build_cache(read_filelist(filelist), root / "cache", FeatureConfig(), TextConfig(), f0_method="dio", jobs=1,
                progress=False)
    config = {
        "data": {"train_filelist": "train.txt", "val_filelist": "train.txt", "cache_dir": "cache", "batch_size": 4,
                 "max_ref_frames": 64, "segment_frames": 32},
        "models": str(TINY_MODELS),
        "optim": {"learning_rate": 2e-3, "warmup_steps": 2, "max_steps": 6, "ema_decay": 0.9, "seed": 3},
        "log": {"log_every": 1, "val_every": 1000, "checkpoint_every": 3, "keep_checkpoints": 3},
    }
    (root / "tiny.json").write_text(json.dumps(config))
    return {"root": root, "config_path": root / "tiny.json", "filelist": filelist}


def read_log(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_config_resolves_paths_and_model_file(tiny_corpus):
    config = TrainingConfig.from_file(tiny_corpus["config_path"])
    assert Path(config.data.cache_dir) == (tiny_corpus["root"] / "cache").resolve()
    assert set(config.models) >= {"text_encoder", "style_encoder", "unet"}
    assert config.optim.max_steps == 6


@pytest.mark.parametrize("change, message", [
    ({"surprise": {}}, "unknown training config sections"),
    ({"optim": {"learning_rat": 1e-3}}, "unknown keys in training config section 'optim'"),
    ({"models": {"unet": {}}}, "lacks"),
])
def test_config_errors_name_the_problem(tiny_corpus, change, message):
    raw = json.loads(tiny_corpus["config_path"].read_text())
    raw.update(change)
    with pytest.raises(ValueError, match=message):
        TrainingConfig.from_dict(raw, base_dir=tiny_corpus["root"])


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe{}", "is not UTF-8 text"),
    (b"{not json", "is not valid JSON"),
    (b"[1, 2]", "must hold a JSON object, got list"),
])
def test_unreadable_config_files_name_the_file(tmp_path, content, message):
    from melinterp.training.vocoder_trainer import VocoderTrainingConfig

    path = tmp_path / "config.json"
    path.write_bytes(content)
    for config_class in (TrainingConfig, VocoderTrainingConfig):
        with pytest.raises(ValueError, match=f"{path}.*{message}|{message}") as error:
            config_class.from_file(path)
        assert str(path) in str(error.value)
    with pytest.raises(FileNotFoundError, match="config not found"):
        TrainingConfig.from_file(tmp_path / "missing.json")


def test_mismatched_vocabulary_is_refused(tiny_corpus):
    config = TrainingConfig.from_file(tiny_corpus["config_path"])
    config.models["text_encoder"] = {**config.models["text_encoder"], "n_vocab": 12}
    with pytest.raises(ValueError, match="n_vocab is 12"):
        build_models(config, vocab_size=151)


def test_learning_rate_warms_up_then_decays():
    optim = TrainingConfig.from_dict({"data": {"train_filelist": "x", "cache_dir": "y"}, "models": {
        "text_encoder": {}, "style_encoder": {}, "unet": {}}, "optim": {
        "learning_rate": 1.0, "warmup_steps": 4, "max_steps": 14, "lr_schedule": "cosine"}}).optim
    rates = [learning_rate_at(step, optim) for step in range(15)]
    assert rates[:4] == [0.25, 0.5, 0.75, 1.0]
    assert rates[4] == pytest.approx(1.0) and rates[9] == pytest.approx(0.5) and rates[14] == pytest.approx(0.0)


def test_optimizer_state_round_trips_through_safetensors_layout():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    tensors, meta = flatten_optimizer_state(optimizer.state_dict())
    assert all(torch.is_tensor(value) for value in tensors.values())
    json.dumps(meta)  # everything that is not a tensor must be JSON
    restored = unflatten_optimizer_state(tensors, json.loads(json.dumps(meta)))
    other = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    other.load_state_dict(restored)
    for key, value in optimizer.state_dict()["state"][0].items():
        assert torch.equal(other.state_dict()["state"][0][key], value)


def test_checkpoint_round_trips_a_dict_of_optimizers(tmp_path):
    """A GAN's two optimisers: one file pair each, both states restored."""
    from melinterp.training.checkpoint import load_checkpoint, save_checkpoint

    def make(learning_rate: float):
        torch.manual_seed(0)
        models = {"generator": torch.nn.Linear(3, 2), "critic": torch.nn.Linear(2, 1)}
        optimizers = {"generator": torch.optim.AdamW(models["generator"].parameters(), lr=learning_rate),
                      "critic": torch.optim.SGD(models["critic"].parameters(), lr=learning_rate, momentum=0.9)}
        return models, optimizers

    models, optimizers = make(0.1)
    for _ in range(2):
        models["critic"](models["generator"](torch.randn(4, 3))).sum().backward()
        for optimizer in optimizers.values():
            optimizer.step()
    path = save_checkpoint(tmp_path, models=models, ema={}, optimizer=optimizers, state={"step": 2})
    assert sorted(p.name for p in path.glob("optimizer*")) == [
        "optimizer.critic.json", "optimizer.critic.safetensors", "optimizer.generator.json",
        "optimizer.generator.safetensors"]

    restored_models, restored = make(0.5)  # other hyper-parameters and no state: all of it must come from the file
    _, state = load_checkpoint(path, models=restored_models, optimizer=restored)
    assert state["step"] == 2
    for name, optimizer in optimizers.items():
        expected, actual = optimizer.state_dict(), restored[name].state_dict()
        assert json.dumps(actual["param_groups"]) == json.dumps(expected["param_groups"])  # JSON: tuples are lists
        assert actual["state"].keys() == expected["state"].keys() and expected["state"]
        for index, values in expected["state"].items():
            assert actual["state"][index].keys() == values.keys()
            for key, value in values.items():
                assert torch.equal(torch.as_tensor(actual["state"][index][key]), torch.as_tensor(value)), (name, key)


class TinyRun(TrainingRun):
    """The checkpoint side of a trainer, without data: one linear layer, AdamW, the step as its state."""

    def __init__(self, output_dir: Path, seed: int = 0):
        torch.manual_seed(seed)
        self.output_dir, self.step = output_dir, 0
        self.models = {"net": torch.nn.Linear(3, 2)}
        self.optimizer = torch.optim.AdamW(self.models["net"].parameters(), lr=0.1)
        self.accelerator = SimpleNamespace(device=torch.device("cpu"), is_main_process=True,
                                           unwrap_model=lambda model: model)

    def _checkpoint_extras(self):
        return {}, self.optimizer, {"step": self.step}

    def _restore_extras(self, ema, state):
        self.step = state["step"]

    def train_and_save(self, steps: int) -> dict[str, torch.Tensor]:
        from melinterp.training.checkpoint import save_checkpoint

        for _ in range(steps):
            self.models["net"](torch.randn(4, 3)).sum().backward()
            self.optimizer.step()
            self.step += 1
        save_checkpoint(self.checkpoint_dir, models=self.models, ema={}, optimizer=self.optimizer,
                        state={"step": self.step})
        return {key: value.clone() for key, value in self.models["net"].state_dict().items()}


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# how a checkpoint file gets broken (a full disk, a crash of the machine, a hand edit), and what the skip must say
BROKEN_CHECKPOINTS = {
    "truncated models": (lambda c: truncate(c / "models.safetensors"), "models.safetensors"),
    "truncated optimizer tensors": (lambda c: truncate(c / "optimizer.safetensors"), "optimizer.safetensors"),
    "missing state": (lambda c: (c / "state.json").unlink(), "state.json"),
    "state not JSON": (lambda c: (c / "state.json").write_text("{\"step\": 4,"), "state.json"),
    "state without step": (lambda c: (c / "state.json").write_text("{}"), "state.json"),
    "optimizer not JSON": (lambda c: (c / "optimizer.json").write_bytes(b"\xff garbage"), "optimizer.json"),
    "optimizer of the wrong shape": (lambda c: (c / "optimizer.json").write_text("[1, 2]"), "optimizer.json"),
    "optimizer of other groups": (lambda c: (c / "optimizer.json").write_text(
        json.dumps({"param_groups": [], "scalars": {}})), "optimizer.json"),
    "missing rng": (lambda c: (c / "rng.safetensors").unlink(), "rng.safetensors"),
}


@pytest.mark.parametrize("breakage", BROKEN_CHECKPOINTS)
def test_resume_skips_a_broken_newest_checkpoint_and_says_why(tmp_path, capsys, breakage):
    run = TinyRun(tmp_path)
    at_two = run.train_and_save(2)
    run.train_and_save(2)
    newest = run.checkpoint_dir / "step-00000004"
    breaks, file_name = BROKEN_CHECKPOINTS[breakage]
    breaks(newest)

    resumed = TinyRun(tmp_path, seed=1)  # other initial weights: everything must come from step 2
    assert resumed.restore() == run.checkpoint_dir / "step-00000002"
    assert resumed.step == 2
    for key, value in at_two.items():
        assert torch.equal(resumed.models["net"].state_dict()[key], value), key
    message = capsys.readouterr().err
    assert f"skipped checkpoint {newest.name}: " in message and str(newest / file_name) in message
    assert message.count("\n") == 1


def test_resume_with_no_intact_checkpoint_names_the_folder_and_each_problem(tmp_path):
    run = TinyRun(tmp_path)
    run.train_and_save(1)
    run.train_and_save(1)
    truncate(run.checkpoint_dir / "step-00000002" / "models.safetensors")
    (run.checkpoint_dir / "step-00000001" / "state.json").unlink()
    with pytest.raises(ValueError, match="no intact checkpoint") as error:
        TinyRun(tmp_path).restore()
    message = str(error.value)
    assert str(run.checkpoint_dir) in message
    assert "step-00000002" in message and "models.safetensors" in message
    assert "step-00000001" in message and "state.json" in message


def test_tiny_model_overfits_one_batch(tiny_corpus):
    config = TrainingConfig.from_file(tiny_corpus["config_path"])
    text_config = TextConfig()
    dataset = SpeechStyleDataset(tiny_corpus["filelist"], config.data.cache_dir, text_config=text_config, seed=0,
                                 max_ref_frames=64)
    batch = SpeechStyleCollate()([dataset[i] for i in range(4)])
    models = build_models(config, TextProcessor(text_config).vocab_size)
    scheduler = GradTTSScheduler()
    parameters = [p for model in models.values() for p in model.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=3e-3)
    totals = []
    for _ in range(60):
        # the same draws every step: one fixed batch, one fixed objective
        losses = compute_losses(*models.values(), scheduler, batch, segment_frames=32, style_dropout_prob=0.0,
                                generator=torch.Generator().manual_seed(0))
        optimizer.zero_grad()
        losses.total.backward()
        optimizer.step()
        totals.append(losses.total.item())
    assert np.isfinite(totals).all()
    assert np.mean(totals[-5:]) < 0.5 * totals[0], f"loss went {totals[0]:.3f} -> {np.mean(totals[-5:]):.3f}"


@pytest.mark.slow
def test_stopped_and_resumed_run_matches_uninterrupted_run(tiny_corpus, tmp_path):
    config = TrainingConfig.from_file(tiny_corpus["config_path"])
    whole = Trainer(config, tmp_path / "whole", progress=False, export=False).train()
    assert whole.step == 6 and whole.stopped_by == "max_steps"

    first = Trainer(config, tmp_path / "split", max_steps=4, progress=False, export=False).train()
    assert first.step == 4
    with pytest.raises(ValueError, match="--resume"):
        Trainer(config, tmp_path / "split", progress=False, export=False).train()
    second = Trainer(config, tmp_path / "split", resume=True, progress=False).train()
    assert second.step == 6

    whole_log = read_log(tmp_path / "whole" / "logs" / "train.csv")
    split_log = read_log(tmp_path / "split" / "logs" / "train.csv")
    assert [row["step"] for row in split_log] == [str(step) for step in range(1, 7)]
    for a, b in zip(whole_log, split_log):
        for key in ("loss", "duration", "prior", "diffusion", "lr"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5, abs=1e-6), (a["step"], key)

    from safetensors.torch import load_file

    weights_whole = load_file(str(whole.checkpoint / "models.safetensors"))
    weights_split = load_file(str(second.checkpoint / "models.safetensors"))
    for key, value in weights_whole.items():
        torch.testing.assert_close(weights_split[key], value, rtol=1e-5, atol=1e-6)

    # the exported folder holds one component a subfolder, loadable with from_pretrained
    from melinterp.models import MelUNet2DConditionModel

    exported = second.export_dir
    for name in ("text_encoder", "style_encoder", "unet", "scheduler", "feature_config", "text_config"):
        assert (exported / name).is_dir(), name
    assert not list(exported.rglob("*.bin")) and list(exported.rglob("*.safetensors"))
    MelUNet2DConditionModel.from_pretrained(exported / "unet")


@pytest.mark.slow
def test_resume_falls_back_past_a_truncated_checkpoint(tiny_corpus, tmp_path, capsys):
    config = TrainingConfig.from_file(tiny_corpus["config_path"])
    Trainer(config, tmp_path / "run", max_steps=4, progress=False, export=False).train()  # checkpoints 3 and 4
    truncate(tmp_path / "run" / "checkpoints" / "step-00000004" / "models.safetensors")
    capsys.readouterr()
    result = Trainer(config, tmp_path / "run", resume=True, max_steps=4, progress=False, export=False).train()
    captured = capsys.readouterr()
    assert "skipped checkpoint step-00000004: " in captured.err and "models.safetensors is truncated" in captured.err
    assert f"resumed from {tmp_path / 'run' / 'checkpoints' / 'step-00000003'} at step 3" in captured.out
    assert result.step == 4


def test_validation_writes_losses_and_a_mel_picture(tiny_corpus, tmp_path):
    config = TrainingConfig.from_file(tiny_corpus["config_path"])
    trainer = Trainer(config, tmp_path / "run", max_steps=1, progress=False, export=False)
    trainer.train()
    means = trainer.validate(max_batches=1)
    assert set(means) == {"val_loss", "val_duration", "val_prior", "val_diffusion"}
    assert all(np.isfinite(list(means.values())))
    pictures = list((tmp_path / "run" / "logs").glob("val-step-*.png"))
    assert len(pictures) == 1 and pictures[0].stat().st_size > 1000


def test_model_outputs_survive_mixed_precision_output_conversion():
    """accelerate converts every model output back to float32 under mixed precision by rebuilding it."""
    from accelerate.utils import convert_to_fp32

    from melinterp.models import StyleEncoderOutput

    output = StyleEncoderOutput(style_tokens=torch.ones(1, 2, 3, dtype=torch.bfloat16),
                                token_mask=torch.ones(1, 2, dtype=torch.bool),
                                style_vector=torch.ones(1, 3, dtype=torch.bfloat16))
    converted = convert_to_fp32(output)
    assert converted.style_tokens.dtype == torch.float32 and converted.token_mask.dtype == torch.bool
    assert converted.style_vector.dtype == torch.float32


def test_batch_sampler_shards_and_resumes_mid_epoch():
    from melinterp.training.trainer import EpochBatchSampler

    shards = [EpochBatchSampler(20, 3, seed=1, process_index=p, num_processes=2) for p in range(2)]
    batches = [list(shard) for shard in shards]
    assert len(batches[0]) == len(batches[1]) == 3 == len(shards[0])  # 20 // (3 * 2); the rest is dropped
    seen = [i for shard in batches for batch in shard for i in batch]
    assert len(seen) == len(set(seen)) == 18
    shards[0].set_epoch(0, start_batch=2)
    assert list(shards[0]) == batches[0][2:] and len(shards[0]) == 1
    shards[0].set_epoch(1)
    assert list(shards[0]) != batches[0]  # a new epoch, a new order


def test_init_from_starts_from_an_exported_model_and_refuses_a_mismatch(tiny_corpus, tmp_path):
    config = TrainingConfig.from_file(tiny_corpus["config_path"])
    source = Trainer(config, tmp_path / "source", max_steps=2, progress=False).train().export_dir
    started = Trainer(config, tmp_path / "finetune", progress=False, export=False, init_from=source)
    from safetensors.torch import load_file

    for name, model in started._unwrapped().items():
        saved = load_file(str(source / name / "diffusion_pytorch_model.safetensors"))
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, saved[key].to(value.dtype), msg=f"{name}.{key}")
    assert started.step == 0  # a new run: steps and optimiser start afresh

    wider = json.loads(TINY_MODELS.read_text())
    wider["unet"]["block_out_channels"] = [16, 32]
    other = TrainingConfig.from_dict({**json.loads(tiny_corpus["config_path"].read_text()), "models": wider},
                                     base_dir=tiny_corpus["root"])
    with pytest.raises(ValueError, match="unet does not fit the configured model"):
        Trainer(other, tmp_path / "mismatch", progress=False, export=False, init_from=source)

    # the encoders from the export, the wider U-Net from its own random initialisation
    partial = Trainer(other, tmp_path / "partial", progress=False, export=False, init_from=source,
                      init_components=["text_encoder", "style_encoder"])
    models = partial._unwrapped()
    for name in ("text_encoder", "style_encoder"):
        saved = load_file(str(source / name / "diffusion_pytorch_model.safetensors"))
        for key, value in models[name].state_dict().items():
            torch.testing.assert_close(value, saved[key].to(value.dtype), msg=f"{name}.{key}")
    assert models["unet"].config.block_out_channels == [16, 32]


def test_init_components_need_init_from(tiny_corpus, tmp_path, capsys):
    from melinterp.cli import main

    assert main(["train", "--config", str(tiny_corpus["config_path"]), "--output-dir", str(tmp_path / "run"),
                 "--init-components", "unet", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("melinterp train: error: --init-components names the models --init-from gives")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_reference_group_pattern_draws_references_across_speakers_of_one_group(tiny_corpus):
    """With a pattern that maps every speaker to one group, references come from other speakers too; the item's
    pitch condition is that of its own utterance."""
    from melinterp.audio import pitch_features

    alone = SpeechStyleDataset(tiny_corpus["filelist"], tiny_corpus["root"] / "cache")
    grouped = SpeechStyleDataset(tiny_corpus["filelist"], tiny_corpus["root"] / "cache",
                                 reference_group_pattern="^(low|mid|high)$")
    speakers = [u.speaker for u in grouped.utterances]
    crossed = [speakers[grouped[i]["ref_index"]] != speakers[i] for i in range(len(grouped))]
    assert any(crossed)
    assert all(speakers[alone[i]["ref_index"]] == speakers[i] for i in range(len(alone)))
    item = grouped[0]
    np.testing.assert_array_equal(item["pitch"].numpy(), pitch_features(item["f0"]))
    assert -1.0 < float(item["pitch"][0]) < 0.0  # the 110 Hz speaker: below 150 Hz, within an octave
    with pytest.raises(ValueError, match="is not a regular expression"):
        SpeechStyleDataset(tiny_corpus["filelist"], tiny_corpus["root"] / "cache", reference_group_pattern="(")
