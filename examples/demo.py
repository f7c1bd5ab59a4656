"""`make demo`: one sentence in every mode, spoken by the model bundled with melinterp, from two reference voices.

    python examples/demo.py [--out examples/output] [--ref1 examples/refs/high_f4.wav]
                            [--ref2 examples/refs/low_robert.wav]

Writes ``<mode>.wav`` and ``<mode>.png`` (the mel, the routing map or pitch mask, and the share of attention each
cell gave to ref1) for every mode, and prints a table with each output's median f0 beside the references' own: in
"freq" the pitch follows ref1 while the rest follows ref2, in "mix" it sits between them, in "temporal" the first
half follows ref1 and the second half ref2. The references are voices the model never heard in training.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parent
SENTENCE = "The old lighthouse keeper painted the blue door on Friday morning."
RUNS = {  # output name -> pipeline keywords
    "none": {"mode": "none"},
    "mix": {"mode": "mix", "alpha": 0.5},
    "temporal": {"mode": "temporal", "boundary": 0.5},
    "freq": {"mode": "freq", "freq_guidance": "mask"},
    "freq_noise_tuning": {"mode": "freq", "freq_guidance": "noise_tuning"},
    "dual_noise": {"mode": "dual_noise"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES / "output")
    parser.add_argument("--ref1", type=Path, default=EXAMPLES / "refs" / "high_f4.wav")
    parser.add_argument("--ref2", type=Path, default=EXAMPLES / "refs" / "low_robert.wav")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    import melinterp
    from melinterp import MelStyleInterpolationPipeline
    from melinterp.audio import load_audio
    from melinterp.evaluation.metrics import f0_median_semitones
    from melinterp.synthesize import plot_result, write_wav

    def hz(audio) -> float:
        return 440.0 * 2.0 ** (f0_median_semitones(audio) / 12.0)

    args.out.mkdir(parents=True, exist_ok=True)
    pipe = MelStyleInterpolationPipeline.from_pretrained(melinterp.DEFAULT_MODEL)
    pipe.set_progress_bar_config(disable=True)
    print(f"model: {melinterp.DEFAULT_MODEL}")
    print(f"ref1: {args.ref1} (f0 median {hz(load_audio(args.ref1)):.0f} Hz)")
    print(f"ref2: {args.ref2} (f0 median {hz(load_audio(args.ref2)):.0f} Hz)")
    print(f'text: "{SENTENCE}"\n')
    print("| output | f0 median | seconds | wall |\n| --- | --- | --- | --- |")
    for name, keywords in RUNS.items():
        start = time.perf_counter()
        result = pipe(SENTENCE, str(args.ref1), None if name == "none" else str(args.ref2),
                      num_inference_steps=args.steps, generator=torch.Generator().manual_seed(0),
                      return_attention=keywords["mode"] in ("temporal", "freq"), **keywords)
        wall = time.perf_counter() - start
        audio = result.audios[0][: int(result.lengths[0]) * pipe.feature_config.hop_length]
        wav, png = args.out / f"{name}.wav", args.out / f"{name}.png"
        write_wav(wav, audio, result.sample_rate)
        plot_result(result, png, mode=keywords["mode"], title=f"{name}: {SENTENCE}")
        if name == "temporal":
            half = len(audio) // 2
            pitch = f"{hz(audio[:half]):.0f} Hz, then {hz(audio[half:]):.0f} Hz"
        else:
            pitch = f"{hz(audio):.0f} Hz"
        print(f"| {wav} | {pitch} | {len(audio) / result.sample_rate:.2f} | {wall:.1f} s |")
    print(f"\nwrote one .wav and one .png per mode into {args.out}/")


if __name__ == "__main__":
    main()
