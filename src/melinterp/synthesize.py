"""``melinterp synthesize``: text + reference recordings -> a wav file, with an optional PNG of what was routed.

    melinterp synthesize "Hello there." --ref1 pitch.wav --ref2 timbre.wav --mode freq --out out.wav [--model DIR]

Without ``--model`` the model bundled with the package (``melinterp.DEFAULT_MODEL``) speaks, offline.

Every input and output is checked before the model loads (an output that would overwrite a reference, or that
cannot be written, is refused), and every line of ``--text-file`` before the first is spoken. Every file is written
atomically (a temporary file beside it, renamed when complete), so an error or Ctrl-C never leaves a half-written
wav or PNG; with ``--plot`` the wav is put in place only once its PNG is written. ``--text-file`` speaks each
non-empty line into its own file, numbered from the ``--out`` name (``out.wav`` -> ``out_001.wav``,
``out_002.wav``, ...); every line uses the same ``--seed``, so line k sounds exactly as
``melinterp synthesize "line k"`` would.

torch, the pipeline and soundfile are imported inside `run`, so ``melinterp --help`` stays fast.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

DEVICES = ("cpu", "cuda")
SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed takes (a negative seed wraps around)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="?", help="the text to speak (or give --text-file)")
    parser.add_argument("--text-file", type=Path, metavar="FILE",
                        help="speak each non-empty line of FILE into its own wav: --out out.wav writes out_001.wav, "
                             "out_002.wav, ... (and out_001.png, ... with --plot)")
    parser.add_argument("--ref1", type=Path, required=True, metavar="WAV",
                        help="reference recording 1: the voice in mode none, the pitch in mode freq, the start in "
                             "mode temporal")
    parser.add_argument("--ref2", type=Path, metavar="WAV",
                        help="reference recording 2 (every mode but none): the timbre in mode freq, the end in mode "
                             "temporal")
    # the modes, pitch masks and schedulers are checked in `run` against the package's own tables, which building
    # the parser does not import (they import torch)
    parser.add_argument("--mode", metavar="MODE",
                        help="a mode of melinterp.guidance.STRATEGIES: none, mix, temporal, freq, dual_noise, ... "
                             "(default: freq with --ref2, none without)")
    parser.add_argument("--out", type=Path, required=True, metavar="WAV", help="output wav (16-bit PCM)")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="also write a PNG of the mel, the pitch mask or routing map, and the share of attention "
                             "each cell gave to ref1")
    parser.add_argument("--model", metavar="DIR",
                        help="a pipeline folder written by save_pretrained, or a Hub id user/name (default: the "
                             "model bundled with the package, melinterp.DEFAULT_MODEL)")
    parser.add_argument("--steps", type=int, default=10, metavar="N", help="denoising steps (default: 10)")
    parser.add_argument("--scheduler", default="euler", metavar="NAME",
                        help="a scheduler of melinterp.schedulers.SCHEDULERS: euler (Grad-TTS's first-order "
                             "solver, the bundled model's own), dpm (DPM-Solver 2M: about Euler-25's quality in 7 "
                             "steps), ... (default: euler)")
    parser.add_argument("--vocoder", default="model", metavar="WHICH",
                        help="model (the model's own: the bundled model's is a trained Vocos), griffin-lim (no "
                             "weights), or a vocoder folder such as one from `melinterp convert-hifigan` or "
                             "`melinterp train-vocoder` (default: model)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior noise (default: 0)")
    parser.add_argument("--alpha", type=float, default=0.5, help="mode mix: weight of ref2 in [0, 1] (default: 0.5)")
    parser.add_argument("--boundary", default="0.5",
                        help="mode temporal: where ref2 takes over: a fraction of the utterance (0.5), a phoneme "
                             "index (7) or seconds (0.8s) (default: 0.5)")
    parser.add_argument("--crossfade", type=float, default=0.1,
                        help="mode temporal: crossfade width in seconds (default: 0.1)")
    parser.add_argument("--pitch-mask", default="band", metavar="KIND",
                        help="mode freq: band or harmonic (default: band)")
    parser.add_argument("--freq-guidance", default="mask", metavar="HOW",
                        help="mode freq: mask, noise_tuning or none (default: mask)")
    parser.add_argument("--guidance-scale", type=float, default=1.0,
                        help="classifier-free guidance scale against the null style; 1 = none (default: 1)")
    parser.add_argument("--temperature", type=float, default=1.5,
                        help="prior temperature: noise is eps / temperature (default: 1.5)")
    parser.add_argument("--device", default="cpu", metavar="DEVICE", help=f"{' or '.join(DEVICES)} (default: cpu)")


def run(args: argparse.Namespace) -> int:
    from melinterp.schedulers import SCHEDULERS

    # 1. Check everything that needs no model, so a typo costs no loading time
    texts, lines = _texts(args)
    mode = args.mode or ("freq" if args.ref2 is not None else "none")
    _check_choice("--device", args.device, DEVICES)
    _check_choice("--scheduler", args.scheduler, tuple(SCHEDULERS))
    boundary = check_options(mode, args.ref1, args.ref2, pitch_mask=args.pitch_mask,
                             freq_guidance=args.freq_guidance, boundary=args.boundary, steps=args.steps,
                             seed=args.seed)
    if args.out.suffix.lower() != ".wav":
        raise ValueError(f"--out must name a .wav file, got {args.out}")
    if args.plot is not None and args.plot.suffix.lower() != ".png":
        raise ValueError(f"--plot must name a .png file, got {args.plot}")
    outputs = _numbered(args.out, len(texts)) if args.text_file is not None else [args.out]
    plots = ([None] * len(texts) if args.plot is None
             else _numbered(args.plot, len(texts)) if args.text_file is not None else [args.plot])
    _check_outputs(args, outputs, plots)
    if args.vocoder not in ("model", "griffin-lim") and not (Path(args.vocoder) / "config.json").is_file():
        raise ValueError(f"--vocoder must be model, griffin-lim or a vocoder folder holding config.json, got "
                         f"{args.vocoder!r}")

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu")

    # 2. Load the pipeline
    from melinterp import DEFAULT_MODEL
    from melinterp.pipelines.hub import load_pipeline

    pipe = load_pipeline(args.model or DEFAULT_MODEL, option="--model").to(args.device)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = SCHEDULERS[args.scheduler].from_config(pipe.scheduler.config)
    if args.vocoder != "model":
        pipe.vocoder = _load_vocoder(args.vocoder, pipe.feature_config).to(args.device)

    # 3. Check that the model can speak every text before writing any file
    _check_texts(args, texts, lines, pipe.text_processor)

    # 4. One output per text
    from melinterp.utils import atomic_path

    for text, out_path, plot_path in zip(texts, outputs, plots):
        result = pipe(text, str(args.ref1), None if args.ref2 is None else str(args.ref2), mode=mode,
                      alpha=args.alpha, boundary=boundary, crossfade=args.crossfade, pitch_mask=args.pitch_mask,
                      freq_guidance=args.freq_guidance, num_inference_steps=args.steps,
                      temperature=args.temperature, guidance_scale=args.guidance_scale,
                      generator=torch.Generator(device=args.device).manual_seed(args.seed), output_type="np",
                      return_attention=plot_path is not None)
        num_frames = int(result.lengths[0])
        audio = result.audios[0][: num_frames * pipe.feature_config.hop_length]
        # the wav moves into place only once the plot is written, so a failing plot leaves neither
        with atomic_path(out_path) as wav_tmp:
            write_wav(wav_tmp, audio, result.sample_rate)
            if plot_path is not None:
                plot_result(result, plot_path, mode=mode, title=text)
        print(f"wrote {out_path} ({len(audio) / result.sample_rate:.2f} s at {result.sample_rate} Hz)")
        if plot_path is not None:
            print(f"wrote {plot_path}")
    if args.text_file is not None:
        _note_stale_outputs(args, len(texts))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------

def check_text(text: str) -> str:
    """``text`` if it holds something to speak, else the ValueError `melinterp synthesize` reports."""
    if not text.strip():
        raise ValueError(f"the text is empty (got {text!r}): give at least one word to speak")
    return text


def check_options(mode: str, ref1: Path, ref2: Path | None, *, pitch_mask: str, freq_guidance: str, boundary: str,
                  steps: int, seed: int) -> float | int | str:
    """The checks of one synthesis that need no model, with the messages `melinterp synthesize` reports (they name
    its options): the mode and its options, the reference files, the steps and the seed. ``melinterp app`` runs
    them on every request. Returns `boundary` as the pipeline takes it (see `_parse_boundary`).

    Raises:
        ValueError, FileNotFoundError: the first value that is not one the pipeline takes.
    """
    from melinterp.audio import PITCH_MASK_KINDS
    from melinterp.guidance import FREQ_GUIDANCE, STRATEGIES

    _check_choice("--mode", mode, tuple(STRATEGIES))
    _check_choice("--pitch-mask", pitch_mask, PITCH_MASK_KINDS)
    _check_choice("--freq-guidance", freq_guidance, FREQ_GUIDANCE)
    for option, path in (("--ref1", ref1), ("--ref2", ref2)):
        if path is not None and path.is_dir():
            raise ValueError(f"{option} {path} is a folder, expected a recording file (.wav, .flac, ...)")
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"{option} {path}: no such file")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"--steps must be a positive number of denoising steps, got {steps}")
    if not isinstance(seed, int) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ValueError(f"--seed must be an integer in [-2**63, 2**64 - 1], got {seed}")
    return _parse_boundary(boundary)


def _load_vocoder(which: str, feature_config):
    """Griffin-Lim for ``feature_config``, or the vocoder in a folder (its config.json names the class)."""
    from melinterp.models.vocoder import GriffinLimVocoder, load_vocoder_folder

    if which == "griffin-lim":
        return GriffinLimVocoder.from_feature_config(feature_config)
    try:
        vocoder = load_vocoder_folder(which)
    except ValueError as error:
        raise ValueError(f"--vocoder {which}: {error}") from None
    hop = getattr(vocoder.config, "hop_length", None)
    if hop is not None and hop != feature_config.hop_length:
        raise ValueError(f"--vocoder {which}: its hop length is {hop} samples but the model's mels have "
                         f"{feature_config.hop_length}")
    return vocoder


def _texts(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    """(texts, line numbers): the non-empty lines of --text-file (numbered from 1), or the one text (line 0)."""
    if args.text is not None and args.text_file is not None:
        raise ValueError("give the text either as an argument or with --text-file, not both")
    if args.text_file is not None:
        from melinterp.utils import read_text_file

        lines = [line.strip() for line in read_text_file(args.text_file, "--text-file").splitlines()]
        numbered = [(number, line) for number, line in enumerate(lines, start=1) if line]
        if not numbered:
            raise ValueError(f"--text-file {args.text_file} has no non-empty line to speak")
        return [line for _, line in numbered], [number for number, _ in numbered]
    if args.text is None:
        raise ValueError('no text to speak: give it as an argument ("Hello there.") or with --text-file FILE')
    return [check_text(args.text)], [0]


def check_speakable(text: str, text_processor) -> None:
    """Phonemise every sentence of ``text`` as the pipeline will: a TextError says what cannot be spoken."""
    from melinterp.text import split_sentences

    sentences = split_sentences(text)
    for phonemes in text_processor.phonemize_batch(sentences if len(sentences) > 1 else [text]):
        text_processor.encode_phonemes(phonemes)


def _check_texts(args: argparse.Namespace, texts: list[str], lines: list[int], text_processor) -> None:
    """`check_speakable` on every text; a TextError names the --text-file line."""
    from melinterp.text import TextError

    for text, line in zip(texts, lines):
        try:
            check_speakable(text, text_processor)
        except TextError as error:
            if args.text_file is None:
                raise
            raise ValueError(f"--text-file {args.text_file} line {line}: {error}") from error


def _check_outputs(args: argparse.Namespace, outputs: list[Path], plots: list[Path | None]) -> None:
    """Refuse, before any loading, an output that is a reference (or the text file) or that cannot be written."""
    from melinterp.utils import check_writable_file

    inputs = [("--ref1", args.ref1), ("--ref2", args.ref2), ("--text-file", args.text_file)]
    for option, paths in (("--out", outputs), ("--plot", plots)):
        for path in paths:
            if path is None:
                continue
            for input_option, input_path in inputs:
                if input_path is not None and _same_file(path, input_path):
                    raise ValueError(f"{option} and {input_option} name the same file ({path} and {input_path}): "
                                     f"writing {option} would overwrite it; choose another {option}")
            check_writable_file(option, path, "a .wav" if option == "--out" else "a .png")


def _same_file(path: Path, other: Path) -> bool:
    if path.resolve() == other.resolve():
        return True
    try:
        return os.path.samefile(path, other)  # hard links, or a symbolic link in a parent folder
    except OSError:
        return False  # one of them does not exist


def _note_stale_outputs(args: argparse.Namespace, count: int) -> None:
    """Say which numbered outputs past this run's last are left from an earlier, longer run."""
    for option, path in (("--out", args.out), ("--plot", args.plot)):
        if path is None:
            continue
        stale = _numbered(path, count + 1)[-1]
        if stale.exists():
            print(f"note: {stale} is from an earlier run: this one wrote {count} {option} files, up to "
                  f"{_numbered(path, count)[-1].name}")


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{option} must be one of {', '.join(choices)}, got {value!r}")


def _parse_boundary(text: str) -> float | int | str:
    """'0.5' -> 0.5 (fraction), '7' -> 7 (phoneme index), '0.8s' -> '0.8s' (seconds), as the pipeline takes them."""
    from melinterp.guidance import parse_boundary

    value: float | int | str = text.strip()
    try:
        value = int(value)
    except ValueError:
        try:
            value = float(value)
        except ValueError:
            pass
    try:
        number = float(value[:-1] if isinstance(value, str) and value.endswith("s") else value)
    except ValueError:
        number = 0.0  # not a number: parse_boundary says what it expects
    if not math.isfinite(number):
        raise ValueError(f"--boundary {text!r}: expected a finite fraction in [0, 1], a phoneme index or seconds "
                         "(0.5, 7 or 0.8s)")
    try:
        parse_boundary(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"--boundary {text!r}: {error}") from error
    return value


def _numbered(path: Path, count: int) -> list[Path]:
    """out.wav -> [out_001.wav, out_002.wav, ...] (more digits past 999 lines)."""
    width = max(3, len(str(count)))
    return [path.with_name(f"{path.stem}_{i:0{width}d}{path.suffix}") for i in range(1, count + 1)]


# ---------------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------------

def write_wav(path: Path, audio, sample_rate: int) -> Path:
    """Write mono ``audio`` (N,) in [-1, 1] as 16-bit PCM, atomically; samples beyond full scale are clipped."""
    from melinterp.data.engines import write_wav as write_pcm16_wav
    from melinterp.utils import atomic_path

    with atomic_path(path) as tmp:
        write_pcm16_wav(tmp, audio, int(sample_rate))
    return path


def plot_result(result, path: Path, *, mode: str, title: str = "", item: int = 0) -> Path:
    """PNG, written atomically: the generated mel, the pitch mask (or routing map), and ref1's attention share."""
    from melinterp.utils import save_figure

    return save_figure(result_figure(result, mode=mode, title=title, item=item), path, dpi=100)


def result_figure(result, *, mode: str, title: str = "", item: int = 0):
    """The figure `plot_result` writes, for item `item` of a pipeline output: three panels over its frames.

    Made without pyplot, so that threads (the web page's workers) may each draw one at the same time.
    """
    from matplotlib.figure import Figure

    num_frames = int(result.lengths[item])
    panels = [("generated log-mel", result.mels, "magma", None)]
    if result.pitch_mask is not None:
        panels.append(("pitch mask of ref1", result.pitch_mask, "viridis", (0.0, 1.0)))
    else:
        panels.append(("routing map (weight of ref1)", result.routing_map, "viridis", (0.0, 1.0)))
    panels.append(("attention share given to ref1", result.ref1_mass, "coolwarm", (0.0, 1.0)))

    fig = Figure(figsize=(15, 3.8))
    axes = fig.subplots(1, 3, sharey=True)
    for ax, (name, values, cmap, limits) in zip(axes, panels):
        ax.set_title(name)
        ax.set_xlabel("frame")
        if values is None:
            ax.text(0.5, 0.5, f"not used in mode {mode!r}", ha="center", va="center", transform=ax.transAxes)
            continue
        image = ax.imshow(values[item][:, :num_frames], origin="lower", aspect="auto", cmap=cmap,
                          vmin=None if limits is None else limits[0], vmax=None if limits is None else limits[1])
        fig.colorbar(image, ax=ax)
    axes[0].set_ylabel("mel bin")
    if title:
        fig.suptitle(title if len(title) <= 90 else title[:87] + "...")
    fig.tight_layout()
    return fig
