"""Front-end demo: what melinterp's audio and text front ends see in one recording.

No trained model is bundled yet, so this demo does not synthesise speech with the diffusion model. It renders an
example sentence with espeak-ng (a synthetic harmonic tone when espeak-ng is missing), then runs every front end:
log-mel, f0, energy, the "band" and "harmonic" pitch masks and the phonemiser, and writes a picture.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from melinterp.analyze import analyze, plot, summary
from melinterp.data.engines import EngineNotFoundError, EspeakEngine, write_wav

SENTENCE = "The quick brown fox jumps over the lazy dog at 7:30 on Dr. Lee's farm."
SAMPLE_RATE = 22050


def example_recording(out_dir: Path) -> tuple[Path, str]:
    """Render the example sentence; fall back to a 180 Hz harmonic tone when espeak-ng is missing."""
    path = out_dir / "example.wav"
    try:
        audio = EspeakEngine().synthesize(SENTENCE, "en-us+m3", pitch=50, rate=165)
        source = "espeak-ng voice en-us+m3"
    except EngineNotFoundError:
        t = np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE
        audio = 0.3 * sum(np.sin(2 * np.pi * k * 180.0 * t) / k for k in range(1, 9)) / 2.0
        source = "a 180 Hz harmonic tone (espeak-ng is not installed: apt-get install espeak-ng)"
    write_wav(path, audio.astype(np.float32), SAMPLE_RATE)
    return path, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("examples/output"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    print("melinterp front-end demo. No trained model is bundled yet: this runs the audio and text front ends "
          "only; speech synthesis arrives with the default model.\n")
    wav_path, source = example_recording(args.out)
    print(f"recording     {wav_path} ({source})")
    print(f"text          {SENTENCE}")
    analysis = analyze(wav_path, text=SENTENCE)
    print(summary(analysis))
    picture = plot(analysis, args.out / "frontends.png", title=f"{source}: {SENTENCE}")
    print(f"\npicture       {picture}")


if __name__ == "__main__":
    main()
