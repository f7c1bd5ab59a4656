"""Make the mode pages' figures: ``melinterp synthesize --plot`` for every mode on the bundled model (seeded).

    python docs/figures.py docs/_generated      # run by ``make docs`` before sphinx-build

Writes ``<mode>.png`` (the mel with the mode's routing) and ``<mode>.wav`` for each mode, from the two bundled
reference recordings (``examples/refs/``), 10 steps, seed 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

from melinterp.cli import main

ROOT = Path(__file__).resolve().parents[1]
TEXT = "The old painter crossed the quiet bridge at noon."
MODES = {  # mode -> extra synthesize options
    "none": [],
    "mix": ["--alpha", "0.5"],
    "temporal": ["--boundary", "0.5"],
    "freq": [],
    "dual_noise": [],
}


def make_figures(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    refs = ROOT / "examples" / "refs"
    for mode, options in MODES.items():
        if (out / f"{mode}.png").is_file():
            continue  # made by an earlier build
        second = [] if mode == "none" else ["--ref2", str(refs / "high_f4.wav")]
        code = main(["synthesize", TEXT, "--ref1", str(refs / "low_robert.wav"), *second, "--mode", mode,
                     "--out", str(out / f"{mode}.wav"), "--plot", str(out / f"{mode}.png"), "--seed", "0",
                     *options])
        if code != 0:
            raise SystemExit(f"docs/figures.py: synthesize failed for mode {mode}")


if __name__ == "__main__":
    make_figures(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "_generated")
