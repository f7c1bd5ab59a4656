"""``melinterp train``: train the text encoder, style encoder and mel U-Net from a JSON config."""

from __future__ import annotations

import argparse
from pathlib import Path

from melinterp.training.config import MODEL_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, config_help="training config JSON (see examples/configs/)",
                      init_help="start from the weights of a model folder (a training export or a saved pipeline, "
                                "e.g. melinterp.DEFAULT_MODEL): fine-tuning; steps, optimiser and learning rate start "
                                "afresh", output="checkpoints, logs and the final model go here")
    parser.add_argument("--init-components", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES),
                        metavar="NAME", help=f"with --init-from: the models whose weights it gives (default all of "
                        f"{', '.join(MODEL_NAMES)}); the others start from random weights, e.g. a larger U-Net "
                        "under the default model's text and style encoders")


def add_run_arguments(parser: argparse.ArgumentParser, *, config_help: str, init_help: str, output: str) -> None:
    """The options every training command takes: config, output folder, resume or init-from, budgets, export."""
    parser.add_argument("--config", type=Path, required=True, help=config_help)
    parser.add_argument("--output-dir", type=Path, required=True, help=output)
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output-dir")
    parser.add_argument("--init-from", type=Path, help=init_help)
    parser.add_argument("--max-minutes", type=float, help="stop cleanly (with a checkpoint) after this many minutes")
    parser.add_argument("--max-steps", type=int, help="override the config's optim.max_steps")
    parser.add_argument("--no-export", action="store_true", help="do not write the final folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def check_run_arguments(args: argparse.Namespace, what: str) -> None:
    """Refuse a non-positive time budget, --init-from together with --resume (``what`` names the weights), and an
    --output-dir that could not be written."""
    from melinterp.utils import check_writable_folder

    check_writable_folder("--output-dir", args.output_dir)
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise ValueError(f"--max-minutes must be positive, got {args.max_minutes}")
    if args.init_from is not None and args.resume:
        raise ValueError(f"--init-from starts a new run from {what}'s weights; --resume continues a run from its "
                         "checkpoint: pass one of them")


def run(args: argparse.Namespace) -> int:
    from melinterp.training.config import TrainingConfig
    from melinterp.training.trainer import Trainer

    config = TrainingConfig.from_file(args.config)
    check_run_arguments(args, "a model")
    if args.init_from is None and set(args.init_components) != set(MODEL_NAMES):
        raise ValueError("--init-components names the models --init-from gives: pass --init-from too")
    trainer = Trainer(config, args.output_dir, resume=args.resume, max_minutes=args.max_minutes,
                      max_steps=args.max_steps, export=not args.no_export, progress=not args.quiet,
                      init_from=args.init_from, init_components=args.init_components)
    result = trainer.train()
    trainer.accelerator.print(
        f"stopped at step {result.step} ({result.stopped_by}); {result.frames_per_second:.0f} mel frames/s; "
        f"losses {result.last_losses}; checkpoint {result.checkpoint}"
        + (f"; model folder {result.export_dir}" if result.export_dir else ""))
    return 0
