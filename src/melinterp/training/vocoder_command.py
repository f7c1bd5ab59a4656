"""``melinterp train-vocoder``: train the neural vocoder on recordings, or fine-tune it on the model's own mels."""

from __future__ import annotations

import argparse

from melinterp.training.command import add_run_arguments, check_run_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, config_help="vocoder training config JSON (see examples/configs/vocoder*.json)",
                      init_help="start from a vocoder folder's weights (a `train-vocoder` final/ folder, with its "
                                "discriminators, or a pipeline's vocoder/): fine-tuning; steps and optimisers start "
                                "afresh", output="checkpoints, logs and the final vocoder go here")


def run(args: argparse.Namespace) -> int:
    from melinterp.training.vocoder_trainer import VocoderTrainer, VocoderTrainingConfig

    config = VocoderTrainingConfig.from_file(args.config)
    check_run_arguments(args, "a vocoder")
    trainer = VocoderTrainer(config, args.output_dir, resume=args.resume, init_from=args.init_from,
                             max_minutes=args.max_minutes, max_steps=args.max_steps, export=not args.no_export,
                             progress=not args.quiet)
    result = trainer.train()
    trainer.accelerator.print(
        f"stopped at step {result.step} ({result.stopped_by}); {result.steps_per_second:.2f} steps/s; "
        f"losses {result.last_losses}; checkpoint {result.checkpoint}"
        + (f"; vocoder folder {result.export_dir}" if result.export_dir else ""))
    return 0
