"""What the two accelerate trainers (`Trainer`, `VocoderTrainer`) share: the run folder, its CSV logs, checkpoints,
the time budget and the per-step seed. A trainer sets ``config`` (with ``optim.seed`` and ``log``), ``output_dir``,
``accelerator``, ``models``, ``step``, ``resume`` and ``max_minutes``, and says what a checkpoint holds beyond the
models' weights: `_checkpoint_extras` (EMA tensors, optimiser or optimisers, trainer state) and `_restore_extras`."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import torch

from melinterp.training.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint


class TrainingRun:
    def _init_run(self, config, output_dir, *, resume: bool, export: bool, progress: bool,
                  max_minutes: float | None, max_steps: int | None, accelerator) -> None:
        """The settings every run has: its config and folder, how it starts, ends and reports, and its accelerator
        (a new one in the config's mixed precision unless given)."""
        from accelerate import Accelerator

        self.config = config
        self.output_dir = Path(output_dir)
        self.resume, self.export, self.progress = resume, export, progress
        self.max_minutes = max_minutes
        self.max_steps = max_steps if max_steps is not None else config.optim.max_steps
        self.accelerator = accelerator or Accelerator(mixed_precision=config.optim.mixed_precision)

    @property
    def checkpoint_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    state_keys: tuple[str, ...] = ("step",)  # what `_restore_extras` reads from state.json

    def _checkpoint_extras(self) -> tuple[dict[str, torch.Tensor], object, dict]:
        """(EMA tensors, the optimiser or a dict of them, the trainer state for state.json)."""
        raise NotImplementedError

    def _restore_extras(self, ema: dict[str, torch.Tensor], state: dict) -> None:
        """Take back what `_checkpoint_extras` saved (the optimisers are restored already)."""
        raise NotImplementedError

    def save(self) -> Path:
        """Write a checkpoint of this step (on the main process; every process waits for it)."""
        self.accelerator.wait_for_everyone()
        path = self.checkpoint_dir / f"step-{self.step:08d}"
        if self.accelerator.is_main_process:
            ema, optimizer, state = self._checkpoint_extras()
            path = save_checkpoint(self.checkpoint_dir, models=self._unwrapped(), ema=ema, optimizer=optimizer,
                                   state=state, keep=self.config.log.keep_checkpoints)
        self.accelerator.wait_for_everyone()
        return path

    def restore(self) -> Path | None:
        """Continue from the newest intact checkpoint, if there is one; returns it.

        A checkpoint with a file missing, truncated (a full disk, a crash) or malformed is skipped with a line on
        stderr naming it and why, and the next older one is tried.

        Raises:
            ValueError: there are checkpoints but none is intact (names the folder and each one's problem), or the
                weights do not fit the configured models.
        """
        checkpoints = list_checkpoints(self.checkpoint_dir)
        if not checkpoints:
            return None
        optimizer = self._checkpoint_extras()[1]
        problems = []
        for path in reversed(checkpoints):
            try:
                ema, state = load_checkpoint(path, models=self._unwrapped(), optimizer=optimizer,
                                             device=self.accelerator.device, state_keys=self.state_keys)
            except CheckpointError as error:  # the message names the file
                problems.append(str(error))
                if self.accelerator.is_main_process:
                    print(f"warning: skipped checkpoint {path.name}: {error}", file=sys.stderr)
                continue
            self._restore_extras(ema, state)
            return path
        raise ValueError(f"no intact checkpoint to resume from in {self.checkpoint_dir} ({'; '.join(problems)}): "
                         "start a new run without --resume, in another --output-dir")

    def _unwrapped(self) -> dict[str, torch.nn.Module]:
        return {name: self.accelerator.unwrap_model(model) for name, model in self.models.items()}

    def _step_seed(self) -> int:
        """The seed of this step's random draws on this process: (seed, step, process) alone."""
        return (self.config.optim.seed * 1_000_003 + self.step) * 64 + self.accelerator.process_index

    def _log_row(self, name: str, row: dict) -> None:
        """Append ``row`` to ``logs/NAME.csv`` (header from the first row), on the main process only."""
        if not self.accelerator.is_main_process:
            return
        path = self.output_dir / "logs" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def _start_run(self) -> None:
        """Create the run folder with the config in it; resume from the newest checkpoint (``self.resume``), or
        refuse a folder that already holds checkpoints."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if self.accelerator.is_main_process:
            (self.output_dir / "training_config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        if self.resume:
            restored = self.restore()
            self.accelerator.print(f"resumed from {restored} at step {self.step}" if restored
                                   else "no checkpoint to resume from: starting at step 0")
        elif list_checkpoints(self.checkpoint_dir):
            raise ValueError(f"{self.checkpoint_dir} already holds checkpoints: pass --resume to continue that run, "
                             "or choose another --output-dir")

    def _time_is_up(self, start: float) -> bool:
        if self.max_minutes is None:
            return False
        from accelerate.utils import broadcast

        # every process must stop at the same step: the main process decides
        flag = torch.tensor([float(time.monotonic() - start > self.max_minutes * 60)], device=self.accelerator.device)
        return bool(broadcast(flag, from_process=0).item())
