"""Time one mel U-Net call on the CPU and report the real-time factor of a 10-step synthesis.

RTF = (num_steps * seconds per U-Net call) / seconds of audio, audio = T frames * hop 256 / 22050 Hz.
One U-Net call at batch 1 is timed (2 warm-up calls, then the median of --repeats calls) for T = 172 frames (2 s)
and 860 frames (10 s), with style tokens from a --ref-seconds reference (S = ceil(frames / 4)). The text and style
encoders run once per utterance; their time is printed separately.

    python examples/benchmarks/time_unet.py                        # tiny, default and large
    python examples/benchmarks/time_unet.py --configs default --repeats 21

Other processes on the machine inflate the numbers: the script prints the load average before and after, and the
fastest call besides the median; rerun when they disagree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from melinterp.models.style_encoder import StyleEncoder
from melinterp.models.text_encoder import TextEncoder
from melinterp.models.unet_mel import MelUNet2DConditionModel

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "models"
SAMPLE_RATE = 22050
HOP_LENGTH = 256
N_MELS = 80


def frames_to_seconds(num_frames: int) -> float:
    return num_frames * HOP_LENGTH / SAMPLE_RATE


def time_call(fn, repeats: int) -> tuple[float, float]:
    """(median, min) seconds of ``fn()`` after two warm-up calls."""
    with torch.inference_mode():
        for _ in range(2):
            fn()
        durations = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            durations.append(time.perf_counter() - start)
    return statistics.median(durations), min(durations)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def benchmark_config(name: str, frames: list[int], repeats: int, ref_seconds: float, steps: int) -> None:
    config = json.loads((CONFIG_DIR / f"{name}.json").read_text())
    torch.manual_seed(0)
    text_encoder = TextEncoder.from_config(config["text_encoder"]).eval()
    style_encoder = StyleEncoder.from_config(config["style_encoder"]).eval()
    unet = MelUNet2DConditionModel.from_config(config["unet"]).eval()
    print(
        f"\n[{name}] parameters: U-Net {count_parameters(unet) / 1e6:.2f} M, text encoder "
        f"{count_parameters(text_encoder) / 1e6:.2f} M, style encoder {count_parameters(style_encoder) / 1e6:.2f} M"
    )

    ref_frames = max(1, round(ref_seconds * SAMPLE_RATE / HOP_LENGTH))
    ref_mel = torch.randn(1, N_MELS, ref_frames)
    style_median, _ = time_call(lambda: style_encoder(ref_mel), repeats)
    with torch.inference_mode():
        style = style_encoder(ref_mel)
    num_phonemes = 100
    phoneme_ids = torch.randint(0, text_encoder.config.n_vocab, (1, num_phonemes))
    phoneme_lengths = torch.tensor([num_phonemes])
    pitch_dim = text_encoder.config.get("pitch_dim", 0)
    pitch = torch.zeros(1, pitch_dim) if pitch_dim else None  # the voice's pitch features, where conditioned on them
    text_median, _ = time_call(lambda: text_encoder(phoneme_ids, phoneme_lengths, style.style_vector, pitch), repeats)
    print(
        f"  once per utterance: style encoder ({ref_seconds:g} s reference, {style.style_tokens.shape[1]} tokens) "
        f"{style_median * 1e3:.1f} ms, text encoder ({num_phonemes} phonemes) {text_median * 1e3:.1f} ms"
    )

    in_channels = unet.config.in_channels
    for num_frames in frames:
        sample = torch.randn(1, in_channels, N_MELS, num_frames)
        timestep = torch.tensor([500.0])

        def call():
            return unet(sample, timestep, style.style_tokens, style.token_mask, class_labels=style.style_vector)

        median, fastest = time_call(call, repeats)
        audio_seconds = frames_to_seconds(num_frames)
        print(
            f"  T={num_frames:4d} ({audio_seconds:4.1f} s): one call median {median * 1e3:7.1f} ms "
            f"(fastest {fastest * 1e3:7.1f} ms) -> RTF at {steps} steps {steps * median / audio_seconds:.3f} "
            f"(fastest {steps * fastest / audio_seconds:.3f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "default", "large"],
                        help=f"names of JSON files in {CONFIG_DIR}")
    parser.add_argument("--frames", nargs="+", type=int, default=[172, 860], help="mel frames T to time")
    parser.add_argument("--repeats", type=int, default=11, help="timed calls per T (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--steps", type=int, default=10, help="U-Net calls per synthesis")
    parser.add_argument("--ref-seconds", type=float, default=3.0, help="reference length for the style tokens")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()}")
    for name in args.configs:
        benchmark_config(name, args.frames, args.repeats, args.ref_seconds, args.steps)
    print(f"\nload average {os.getloadavg()}")


if __name__ == "__main__":
    main()
