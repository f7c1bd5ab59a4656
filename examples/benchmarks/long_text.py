"""Memory and time of long texts: a 20,000-character text against its longest chunk, each in a fresh process.

    python examples/benchmarks/long_text.py [--chars 20000] [--steps 2] [--max-batch-frames N] [--json out.json]

The text repeats a paragraph with one 400-word unpunctuated run in it (split at `melinterp.text.MAX_CHUNK_CHARS`);
its longest chunk is the longest piece `melinterp.text.split_sentences` makes of it. Each measurement runs in its
own process (so its peak resident memory is its own: ``ru_maxrss``) on the bundled model, mode none, two torch
threads. Printed: peak RSS, wall time, time per character, and the ratios the README quotes (memory of the whole
text over memory of its longest chunk; time per character of the whole text over that of a quarter of it), with
the load average before and after, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REF = Path(__file__).resolve().parents[2] / "examples" / "refs" / "mid_awb.wav"
PARAGRAPH = (
    "The old painter crossed the quiet bridge at noon, carrying a basket of apples and a folded map. "
    "Nobody in the village knew where he had come from; some said the coast, others the mountains. "
    + " ".join("red apples fall under the old bridge while seven green birds sing".split()[i % 12]
               for i in range(400)) + ". "
    "When the bells rang at six, he packed his brushes and walked home along the river."
)

CHILD = r"""
import json, resource, sys, time, torch, warnings
warnings.simplefilter("ignore")
torch.set_num_threads(2)
import melinterp
from melinterp import MelStyleInterpolationPipeline
pipe = MelStyleInterpolationPipeline.from_pretrained(melinterp.DEFAULT_MODEL)
pipe.set_progress_bar_config(disable=True)
text, steps, ref = sys.stdin.read(), int(sys.argv[1]), sys.argv[2]
options = {} if sys.argv[3] == "default" else {"max_batch_frames": int(sys.argv[3])}
start = time.perf_counter()
out = pipe(text, ref, num_inference_steps=steps, generator=torch.Generator().manual_seed(0), **options)
seconds = time.perf_counter() - start
print(json.dumps({"chars": len(text), "seconds": seconds, "audio_seconds": float(out.lengths[0]) * 256 / 22050,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(text: str, steps: int, max_batch_frames: int | None) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, str(steps), str(REF), str(max_batch_frames or "default")],
                            input=text, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=20000, help="length of the long text (default 20000)")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps (default 2: memory is per step)")
    parser.add_argument("--max-batch-frames", type=int, help="the pipeline's max_batch_frames (default its own)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from melinterp.text import split_sentences

    text = (PARAGRAPH + " ") * (args.chars // len(PARAGRAPH) + 1)
    text = text[: args.chars].rsplit(" ", 1)[0] + "."
    quarter = text[: len(text) // 4].rsplit(" ", 1)[0] + "."
    longest = max(split_sentences(text), key=len)
    load_before = os.getloadavg()
    runs = {name: measure(piece, args.steps, args.max_batch_frames)
            for name, piece in (("longest_chunk", longest), ("quarter", quarter), ("whole", text))}
    load_after = os.getloadavg()
    for name, run in runs.items():
        print(f"{name:14s} {run['chars']:6d} chars, {run['audio_seconds']:7.1f} s of speech: "
              f"peak RSS {run['peak_rss_mib']:7.0f} MiB, {run['seconds']:6.1f} s "
              f"({1000 * run['seconds'] / run['chars']:.1f} ms a character)")
    figures = {
        "memory_whole_over_longest_chunk": runs["whole"]["peak_rss_mib"] / runs["longest_chunk"]["peak_rss_mib"],
        "time_per_char_whole_over_quarter": ((runs["whole"]["seconds"] / runs["whole"]["chars"])
                                             / (runs["quarter"]["seconds"] / runs["quarter"]["chars"])),
    }
    print(f"memory: whole text / longest chunk = {figures['memory_whole_over_longest_chunk']:.2f}; time per "
          f"character: whole / quarter = {figures['time_per_char_whole_over_quarter']:.2f}; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after ({os.cpu_count()} cores), {args.steps} steps")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, **figures, "steps": args.steps,
                                         "max_batch_frames": args.max_batch_frames or "default",
                                         "load_average": [load_before, load_after]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
