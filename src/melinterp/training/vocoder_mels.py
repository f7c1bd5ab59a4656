"""``melinterp vocoder-mels``: the acoustic model's own mels of recordings, on their frame grid (teacher forcing).

    melinterp vocoder-mels --model DIR --filelist corpus/filelists/train.txt --out model_mels.safetensors

For each recording of the filelist, the model synthesises its text in the style of *another* recording of the same
speaker (as at inference), with durations found by monotonic alignment search against the recording's own mel
(`melinterp.training.validation.synthesize_mel` with ``align_to``), so the synthesis has exactly the recording's
frames. A vocoder fine-tuned on (model mel, recording) pairs (``data.model_mels`` of `melinterp train-vocoder`)
learns to turn what the model really emits into real audio.

The output is one safetensors file: ``mel.{i}`` (n_mels, T_i) float16, and metadata ``recordings``, a JSON list of
the recordings' paths as the filelist writes them (relative to its folder, `recording_key`), so the file travels
with the corpus, also once its recordings are converted to another format.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


DEFAULT_STEPS = 10  # the pipeline's
DEFAULT_TEMPERATURE = 1.5  # the pipeline's


def recording_key(utterance) -> str:
    """An utterance's recording as its filelist names it: the path relative to the filelist's folder, without the
    file's suffix (the same recording converted from .wav to .flac keeps its key)."""
    return normalize_key(os.path.relpath(utterance.wav_path, utterance.filelist.parent))


def normalize_key(path: str) -> str:
    return Path(path).with_suffix("").as_posix()


def teacher_forced_mels(pipeline, utterances, *, references=None, num_inference_steps: int = DEFAULT_STEPS,
                        temperature: float = DEFAULT_TEMPERATURE, seed: int = 0,
                        progress: bool = True) -> dict[str, torch.Tensor]:
    """recording key -> the model's mel (n_mels, T) of that recording's text, aligned to the recording.

    The style of each comes from another recording of its speaker in ``references`` (default: ``utterances``).
    """
    import numpy as np
    import torch

    from melinterp.audio import extract_f0, load_audio, mel_spectrogram, pitch_features
    from melinterp.pipelines.references import REFERENCE_F0_METHOD
    from melinterp.training.validation import synthesize_mel

    config = pipeline.feature_config
    models = {"text_encoder": pipeline.text_encoder, "style_encoder": pipeline.style_encoder, "unet": pipeline.unet}
    by_speaker: dict[str, dict] = {}  # speaker -> wav path -> utterance: a recording listed twice is still one
    for utterance in utterances if references is None else references:
        by_speaker.setdefault(utterance.speaker, {}).setdefault(utterance.wav_path, utterance)
    speakers = {utterance.speaker for utterance in utterances}
    lonely = sorted(s for s in speakers if len(by_speaker.get(s, [])) < 2)
    if lonely:
        raise ValueError(f"speakers with a single recording have no other one to take the style from: "
                         f"{', '.join(lonely[:5])}")
    mels = {}
    items = utterances
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(utterances, desc="vocoder-mels", unit="utt")
    for index, utterance in enumerate(items):
        own = list(by_speaker[utterance.speaker].values())
        paths = [u.wav_path for u in own]
        position = paths.index(utterance.wav_path) if utterance.wav_path in paths else -1
        reference = own[(position + 1) % len(own)]  # the next recording of the same speaker
        wave = load_audio(utterance.wav_path, target_sr=config.sample_rate, min_duration=0.05)
        ref_wave = load_audio(reference.wav_path, target_sr=config.sample_rate, min_duration=0.05)
        target = mel_spectrogram(torch.from_numpy(wave), config)  # (n_mels, T)
        ref_mel = mel_spectrogram(torch.from_numpy(ref_wave), config)
        pitch = torch.from_numpy(np.asarray(pitch_features(extract_f0(ref_wave, config, method=REFERENCE_F0_METHOD)),
                                            dtype=np.float32))
        phonemes = pipeline.text_processor.phonemize_batch([utterance.text])[0]
        ids = torch.tensor(pipeline.text_processor.encode_phonemes(phonemes))
        mel = synthesize_mel(models, pipeline.scheduler, ids, ref_mel, pitch, num_steps=num_inference_steps,
                             temperature=temperature, seed=seed * 1_000_003 + index, align_to=target)
        mels[recording_key(utterance)] = mel.to(torch.float16)
    return mels


def recording_mels(utterances, feature_config) -> dict[str, torch.Tensor]:
    """recording key -> the recording's own log-mel (n_mels, T) float16, in `teacher_forced_mels`'s format: the
    mels a teacher vocoder is distilled on besides the model's (``vocoder-mels --own``)."""
    import torch

    from melinterp.audio import load_audio, mel_spectrogram

    mels = {}
    for utterance in utterances:
        wave = load_audio(utterance.wav_path, target_sr=feature_config.sample_rate, min_duration=0.05)
        mels[recording_key(utterance)] = mel_spectrogram(torch.from_numpy(wave), feature_config).to(torch.float16)
    return mels


def save_model_mels(mels: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Write `teacher_forced_mels`'s output as one safetensors file, atomically."""
    from melinterp.utils import save_safetensors

    names = list(mels)
    return save_safetensors({f"mel.{i}": mels[name].contiguous() for i, name in enumerate(names)}, path,
                            metadata={"recordings": json.dumps(names)})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="pipeline folder or training output (default: the bundled "
                        "model)")
    parser.add_argument("--filelist", type=Path, required=True, action="append",
                        help="wav_path|speaker|text filelist (repeat for several)")
    parser.add_argument("--reference-filelist", type=Path, action="append", default=[],
                        help="more recordings to take styles from (repeatable; e.g. the training filelist when "
                             "--filelist is a validation list with one recording a speaker)")
    parser.add_argument("--out", type=Path, required=True, help="the safetensors file to write")
    parser.add_argument("--steps", type=int, default=None, help=f"denoising steps (default {DEFAULT_STEPS}, the "
                        f"pipeline's)")
    parser.add_argument("--temperature", type=float, default=None,
                        help=f"prior temperature (default {DEFAULT_TEMPERATURE}, the pipeline's)")
    parser.add_argument("--max-per-speaker", type=int, default=None,
                        help="mels for at most this many recordings a speaker (the others still serve as references)")
    parser.add_argument("--seed", type=int, default=None, help="noise seed (default 0)")
    parser.add_argument("--own", action="store_true",
                        help="write the recordings' own mels instead (no model runs, so --steps, --temperature, "
                             "--seed and --reference-filelist do not apply): with the model's, the mels a teacher "
                             "vocoder is distilled on (data.teacher of train-vocoder)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from melinterp.data import read_filelist
    from melinterp.evaluation.benchmark import load_model
    from melinterp.utils import check_writable_file

    synthesis_options = {"--steps": args.steps, "--temperature": args.temperature, "--seed": args.seed,
                         "--reference-filelist": args.reference_filelist or None}
    given = [option for option, value in synthesis_options.items() if value is not None]
    if args.own and given:
        raise ValueError(f"--own writes the recordings' own mels and synthesises nothing: {', '.join(given)} "
                         f"{'does' if len(given) == 1 else 'do'} not apply to it")
    steps = DEFAULT_STEPS if args.steps is None else args.steps
    if steps < 1:
        raise ValueError(f"--steps must be at least 1, got {steps}")
    check_writable_file("--out", args.out, "a .safetensors")
    if args.threads:
        torch.set_num_threads(args.threads)
    utterances = [u for filelist in args.filelist for u in read_filelist(filelist)]
    references = utterances + [u for filelist in args.reference_filelist for u in read_filelist(filelist)]
    if args.max_per_speaker is not None:
        counts: dict[str, int] = {}
        kept = []
        for utterance in utterances:
            counts[utterance.speaker] = counts.get(utterance.speaker, 0) + 1
            if counts[utterance.speaker] <= args.max_per_speaker:
                kept.append(utterance)
        utterances = kept
    if args.model is None:
        import melinterp

        args.model = melinterp.DEFAULT_MODEL
    pipeline = load_model(args.model)
    if args.own:
        mels, kind = recording_mels(utterances, pipeline.feature_config), "recordings' own"
    else:
        temperature = DEFAULT_TEMPERATURE if args.temperature is None else args.temperature
        mels = teacher_forced_mels(pipeline, utterances, references=references, num_inference_steps=steps,
                                   temperature=temperature, seed=args.seed or 0, progress=not args.quiet)
        kind = "teacher-forced"
    save_model_mels(mels, args.out)
    frames = sum(mel.shape[-1] for mel in mels.values())
    seconds = frames * pipeline.feature_config.hop_length / pipeline.feature_config.sample_rate
    print(f"wrote {len(mels)} {kind} mels ({seconds / 60:.1f} min of audio) to {args.out}")
    return 0
