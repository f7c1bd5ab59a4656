"""accelerate-based training loop: mixed precision, EMA, clipping, warm-up, safetensors checkpoints, exact resume.

The same code runs on one CPU, one GPU, or under ``accelerate launch`` on several GPUs. Every random draw of a
step (segment offsets, diffusion times, noise, style dropout) comes from a generator seeded by (seed, step,
process), the data order from (seed, epoch), and dropout from torch's global generator, whose state each
checkpoint stores: a run stopped and resumed repeats an uninterrupted run step for step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler, Subset

from melinterp.training.checkpoint import load_state_strict
from melinterp.training.config import MODEL_NAMES, TrainingConfig
from melinterp.training.ema import EMAWeights
from melinterp.training.objective import compute_losses
from melinterp.training.run import TrainingRun


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of a fresh permutation each epoch, drawn from (seed, epoch) alone, sharded over processes.

    Global batch ``b`` of an epoch is ``batch_size * num_processes`` consecutive items of the permutation; process
    ``p`` takes its ``p``-th slice. ``set_epoch(epoch, start_batch)`` resumes an epoch after the batches already
    used, so a resumed run continues with exactly the items it has not seen. Incomplete batches are dropped.
    """

    def __init__(self, size: int, batch_size: int, seed: int, process_index: int = 0, num_processes: int = 1):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.process_index, self.num_processes = process_index, num_processes
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        global_batch = self.batch_size * self.num_processes
        for batch in range(self.start_batch, self.size // global_batch):
            first = batch * global_batch + self.process_index * self.batch_size
            yield order[first:first + self.batch_size]

    def __len__(self) -> int:
        return self.size // (self.batch_size * self.num_processes) - self.start_batch


def learning_rate_at(step: int, optim) -> float:
    """Linear warm-up, then constant or cosine decay to zero at ``max_steps``."""
    if optim.warmup_steps > 0 and step < optim.warmup_steps:
        return optim.learning_rate * (step + 1) / optim.warmup_steps
    if optim.lr_schedule == "constant":
        return optim.learning_rate
    if optim.lr_schedule == "cosine":
        progress = (step - optim.warmup_steps) / max(1, optim.max_steps - optim.warmup_steps)
        return optim.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {optim.lr_schedule!r}")


@dataclass
class TrainResult:
    step: int
    stopped_by: str  # "max_steps" or "time_budget"
    frames_per_second: float  # mel frames of training targets processed per second (all processes)
    last_losses: dict[str, float]
    checkpoint: Path
    export_dir: Path | None


def build_models(config: TrainingConfig, vocab_size: int) -> dict[str, torch.nn.Module]:
    """Fresh models from the config; the text encoder's vocabulary comes from the text front end's symbol table."""
    from melinterp.models import MelUNet2DConditionModel, StyleEncoder, TextEncoder

    text_encoder_config = dict(config.models["text_encoder"])
    if text_encoder_config.setdefault("n_vocab", vocab_size) != vocab_size:
        raise ValueError(f"models.text_encoder.n_vocab is {text_encoder_config['n_vocab']} but the text front end has "
                         f"{vocab_size} ids (symbols + padding + blank): leave n_vocab out, it is set from the table")
    torch.manual_seed(config.optim.seed)
    return {
        "text_encoder": TextEncoder(**text_encoder_config),
        "style_encoder": StyleEncoder(**config.models["style_encoder"]),
        "unet": MelUNet2DConditionModel(**config.models["unet"]),
    }


def load_initial_weights(models: dict[str, torch.nn.Module], folder: Path, components=None) -> None:
    """Start from the weights of a model folder (a training export or a saved pipeline: one subfolder per model):
    those of `components` (names of `models`; default all), the others keep their random initialisation.

    Raises:
        ValueError: a component is missing or its weights do not fit the configured model (names the keys).
    """
    from safetensors.torch import load_file

    for name in models if components is None else components:
        model = models[name]
        path = folder / name / "diffusion_pytorch_model.safetensors"
        if not path.is_file():
            raise ValueError(f"--init-from {folder}: no {name}/diffusion_pytorch_model.safetensors (expected a "
                             f"training export or a saved pipeline folder)")
        load_state_strict(model, load_file(path), f"--init-from {folder}: {name}")


class Trainer(TrainingRun):
    def __init__(self, config: TrainingConfig, output_dir: str | Path, *, resume: bool = False,
                 max_minutes: float | None = None, max_steps: int | None = None, export: bool = True,
                 progress: bool = True, accelerator=None, init_from: str | Path | None = None,
                 init_components=None):
        from melinterp.audio import FeatureConfig
        from melinterp.data import SpeechStyleCollate, SpeechStyleDataset, read_filelist
        from melinterp.schedulers import GradTTSScheduler
        from melinterp.text import TextConfig, TextProcessor

        self._init_run(config, output_dir, resume=resume, export=export, progress=progress, max_minutes=max_minutes,
                       max_steps=max_steps, accelerator=accelerator)
        self.feature_config = FeatureConfig()
        self.text_config = TextConfig(language=config.data.language)
        self.vocab_size = TextProcessor(self.text_config).vocab_size
        self.noise_scheduler = GradTTSScheduler(**config.scheduler)

        self.train_set = SpeechStyleDataset(config.data.train_filelist, config.data.cache_dir,
                                            feature_config=self.feature_config, text_config=self.text_config,
                                            seed=config.optim.seed, max_ref_frames=config.data.max_ref_frames,
                                            reference_group_pattern=config.data.reference_group_pattern)
        if len(self.train_set) < config.data.batch_size:
            raise ValueError(f"the training set has {len(self.train_set)} utterances, fewer than batch_size="
                             f"{config.data.batch_size}")
        self.val_set = None
        if config.data.val_filelist:
            self.val_set = self._validation_set(read_filelist(config.data.val_filelist))
        self.collate = SpeechStyleCollate()
        # our own sharded batch sampler (not accelerate's) so that data order depends on (seed, epoch) alone
        self.batch_sampler = EpochBatchSampler(len(self.train_set), config.data.batch_size, config.optim.seed,
                                               self.accelerator.process_index, self.accelerator.num_processes)
        self.loader = DataLoader(self.train_set, batch_sampler=self.batch_sampler, collate_fn=self.collate,
                                 num_workers=config.data.num_workers, pin_memory=torch.cuda.is_available(),
                                 # the loader's own generator keeps it from drawing on torch's global one
                                 generator=torch.Generator().manual_seed(config.optim.seed))

        models = build_models(config, self.vocab_size)
        if init_from is not None:
            load_initial_weights(models, Path(init_from), init_components)
        parameters = [p for model in models.values() for p in model.parameters()]
        optimizer = torch.optim.AdamW(parameters, lr=config.optim.learning_rate, betas=config.optim.betas,
                                      weight_decay=config.optim.weight_decay)
        prepared = self.accelerator.prepare(*models.values(), optimizer)
        self.models = dict(zip(MODEL_NAMES, prepared[:3]))
        self.optimizer = prepared[3]
        self.ema = EMAWeights(self._unwrapped(), config.optim.ema_decay)
        self.step, self.epoch, self.batches_done = 0, 0, 0

    # -- helpers -------------------------------------------------------------------------------------------------
    def _validation_set(self, val_utterances) -> Subset:
        """Validation items with style references drawn from any other utterance of the same speaker, training
        utterances included (a validation speaker often has a single held-back utterance)."""
        from melinterp.data import SpeechStyleDataset

        val_paths = {utterance.wav_path for utterance in val_utterances}
        pool = list(val_utterances) + [u for u in self.train_set.utterances if u.wav_path not in val_paths]
        dataset = SpeechStyleDataset(pool, self.config.data.cache_dir, feature_config=self.feature_config,
                                     text_config=self.text_config, speakers=self.train_set.speakers,
                                     seed=self.config.optim.seed + 1, max_ref_frames=self.config.data.max_ref_frames,
                                     reference_group_pattern=self.config.data.reference_group_pattern)
        indices = [i for i, utterance in enumerate(dataset.utterances) if utterance.wav_path in val_paths]
        if not indices:
            raise ValueError(f"no utterance of {self.config.data.val_filelist} has a speaker with another utterance "
                             "to serve as its style reference")
        return Subset(dataset, indices)

    def _step_generator(self) -> torch.Generator:
        return torch.Generator(device=self.accelerator.device).manual_seed(self._step_seed())

    def _state(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "batches_done": self.batches_done,
                "config": self.config.to_dict()}

    state_keys = ("step", "epoch", "batches_done")

    def _checkpoint_extras(self) -> tuple[dict[str, torch.Tensor], torch.optim.Optimizer, dict]:
        return self.ema.shadow, self.optimizer, self._state()

    def _restore_extras(self, ema: dict[str, torch.Tensor], state: dict) -> None:
        self.ema.load(ema)
        self.step, self.epoch, self.batches_done = state["step"], state["epoch"], state["batches_done"]

    # -- the loop ------------------------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        config, accelerator = self.config, self.accelerator
        self._start_run()

        start = time.monotonic()
        window_frames, window_start, last = 0, time.monotonic(), {}
        total_frames, stopped_by = 0, "max_steps"
        bar = None
        if self.progress and accelerator.is_main_process:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.max_steps, initial=self.step, desc="train", unit="step")
        while self.step < self.max_steps and stopped_by != "time_budget":
            self.batch_sampler.set_epoch(self.epoch, start_batch=self.batches_done)  # resumes mid-epoch
            self.train_set.set_epoch(self.epoch)
            for batch in self.loader:
                batch = {key: value.to(accelerator.device, non_blocking=True) for key, value in batch.items()}
                self._train_step(batch)
                frames = accelerator.gather(batch["mel_lengths"].sum().reshape(1)).sum().item()
                window_frames += frames
                total_frames += frames
                if bar is not None:
                    bar.update(1)
                if self.step % config.log.log_every == 0 or self.step == self.max_steps:
                    elapsed = time.monotonic() - window_start
                    minutes = round((time.monotonic() - start) / 60, 3)
                    last = {"step": self.step, "epoch": self.epoch, "minutes": minutes,
                            "lr": self.optimizer.param_groups[0]["lr"], **self._last_losses,
                            "grad_norm": self._last_grad_norm, "frames_per_s": round(window_frames / elapsed, 1)}
                    self._log_row("train", last)
                    if bar is not None:
                        bar.set_postfix(loss=f"{last['loss']:.3f}", fps=f"{last['frames_per_s']:.0f}")
                    window_frames, window_start = 0, time.monotonic()
                if self.val_set is not None and self.step % config.log.val_every == 0:
                    self.validate()
                if self.step % config.log.checkpoint_every == 0:
                    self.save()
                if self.step >= self.max_steps:
                    break
                if self._time_is_up(start):
                    stopped_by = "time_budget"
                    break
            else:
                self.epoch += 1
                self.batches_done = 0
        if bar is not None:
            bar.close()
        elapsed = time.monotonic() - start
        checkpoint = self.save()
        export_dir = self.export_pipeline_folder(self.output_dir / "final") if self.export else None
        return TrainResult(step=self.step, stopped_by=stopped_by,
                           frames_per_second=total_frames / elapsed if elapsed > 0 else 0.0,
                           last_losses=last, checkpoint=checkpoint, export_dir=export_dir)

    def _train_step(self, batch: dict[str, torch.Tensor]) -> None:
        config, accelerator = self.config, self.accelerator
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate_at(self.step, config.optim)
        for model in self.models.values():
            model.train()
        with accelerator.autocast():
            losses = compute_losses(*self.models.values(), self.noise_scheduler, batch,
                                    segment_frames=config.data.segment_frames,
                                    style_dropout_prob=config.optim.style_dropout,
                                    generator=self._step_generator())
        accelerator.backward(losses.total)
        parameters = [p for model in self.models.values() for p in model.parameters()]
        grad_norm = accelerator.clip_grad_norm_(parameters, config.optim.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.batches_done += 1
        self.ema.update(self._unwrapped(), self.step)
        self._last_losses = {key: round(value, 6) for key, value in losses.as_floats().items()}
        self._last_grad_norm = round(float(grad_norm), 4)

    @torch.no_grad()
    def validate(self, max_batches: int = 4) -> dict[str, float]:
        """Validation losses (fixed draws) and a PNG of one target mel beside its synthesis from the EMA weights."""
        from melinterp.training.validation import plot_validation_mel

        config, accelerator = self.config, self.accelerator
        for model in self.models.values():
            model.eval()
        loader = DataLoader(self.val_set, batch_size=config.data.batch_size, shuffle=False, collate_fn=self.collate)
        totals, count = {}, 0
        generator = torch.Generator(device=accelerator.device).manual_seed(config.optim.seed)
        for index, batch in enumerate(loader):
            if index >= max_batches:
                break
            batch = {key: value.to(accelerator.device) for key, value in batch.items()}
            with accelerator.autocast():
                losses = compute_losses(*self.models.values(), self.noise_scheduler, batch,
                                        segment_frames=config.data.segment_frames, style_dropout_prob=0.0,
                                        generator=generator)
            for key, value in losses.as_floats().items():
                totals[key] = totals.get(key, 0.0) + value
            count += 1
        means = {f"val_{key}": round(value / max(count, 1), 6) for key, value in totals.items()}
        self._log_row("val", {"step": self.step, **means})
        if accelerator.is_main_process:
            plot_validation_mel(self.ema_models(), self.noise_scheduler, self.val_set[0],
                                self.output_dir / "logs" / f"val-step-{self.step:08d}.png", step=self.step)
        return means

    def ema_models(self) -> dict[str, torch.nn.Module]:
        """Fresh copies of the models holding the EMA weights, on the training device, in eval mode."""
        models = build_models(self.config, self.vocab_size)
        self.ema.copy_to(models)
        return {name: model.to(self.accelerator.device).eval() for name, model in models.items()}

    def export_pipeline_folder(self, directory: Path) -> Path:
        """Save the EMA weights, the scheduler and the front-end configs, one component a subfolder."""
        if self.accelerator.is_main_process:
            for name, model in self.ema_models().items():
                model.to("cpu").save_pretrained(directory / name)
            self.noise_scheduler.save_config(directory / "scheduler")
            self.feature_config.save_config(directory / "feature_config")
            self.text_config.save_config(directory / "text_config")
        self.accelerator.wait_for_everyone()
        return directory
