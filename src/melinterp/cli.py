"""The ``melinterp`` command.

Each sub-command lives in its own module, which exposes ``add_arguments(parser)`` and ``run(args) -> int``.
Those modules keep heavy imports (torch, librosa, pyworld) inside functions, so ``melinterp --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Add a line here when a capability lands.
COMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("melinterp.analyze", "run the audio and text front ends on a recording and plot the features"),
    "make-corpus": ("melinterp.data.corpus",
                    "synthesise the multi-voice training corpus (espeak-ng, flite, piper, festival, WORLD warps)"),
    "prepare-filelists": ("melinterp.data.importers",
                          "train/val/test filelists from LJSpeech, LibriTTS(-R), VCTK or ESD as published"),
    "preprocess": ("melinterp.data.features", "compute and cache mel, f0, energy and phoneme ids for a filelist"),
    "train": ("melinterp.training.command", "train the text encoder, style encoder and mel U-Net (accelerate)"),
    "vocoder-mels": ("melinterp.training.vocoder_mels",
                     "the model's own mels of recordings, on their frame grid (for vocoder fine-tuning)"),
    "train-vocoder": ("melinterp.training.vocoder_command",
                      "train the neural vocoder (Vocos, GAN losses) on recordings or the model's mels (accelerate)"),
    "synthesize": ("melinterp.synthesize", "speak text in a voice taken from, or interpolated between, two recordings"),
    "evaluate": ("melinterp.evaluation.benchmark",
                 "score every interpolation mode with independent judges on held-out voices"),
    "check-voices": ("melinterp.evaluation.voices",
                     "judge whether a corpus's voices are heard as different voices (speaker-encoder centroids)"),
    "convert-hifigan": ("melinterp.convert_hifigan", "turn an official HiFi-GAN checkpoint into a vocoder folder"),
    "app": ("melinterp.app", "a web page (Gradio) that speaks with the model: two recordings, text, mode, controls"),
}

#: the errors a command reports as their message, in one line, not as a traceback: ours are written to be read by
#: people (`melinterp app` shows the same messages in the page)
USER_ERRORS = (ValueError, FileNotFoundError, RuntimeError)


def build_parser() -> argparse.ArgumentParser:
    from melinterp import __version__

    parser = argparse.ArgumentParser(
        prog="melinterp",
        description="Diffusion text-to-speech with voices interpolated between two reference recordings.",
    )
    parser.add_argument("--version", action="version", version=f"melinterp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as error:
        print(f"melinterp {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
