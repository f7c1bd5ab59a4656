"""Turn a training export into the pipeline folder that ships inside the package (``melinterp.DEFAULT_MODEL``).

    python examples/training/bundle_default_model.py RUN_DIR/final src/melinterp/default_model \
        --vocoder runs/vocoder-ft/final
    python examples/training/bundle_default_model.py src/melinterp/default_model src/melinterp/default_model \
        --vocoder runs/vocoder-ft/final      # a saved pipeline in: swap its vocoder only

The neural weights are stored in float16 (half the size; `from_pretrained` loads them back into float32 models
unless ``torch_dtype`` says otherwise), the configs as they are. ``--vocoder`` takes a vocoder folder (from
`melinterp train-vocoder` or `melinterp convert-hifigan`; its config.json names the class); without it a training
export gets Griffin-Lim and a saved pipeline keeps its own. The model card (README.md) is written separately, from
the training logs and the evaluation reports.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="a training export folder (RUN_DIR/final)")
    parser.add_argument("out", type=Path, help="the pipeline folder to write (replaced)")
    parser.add_argument("--vocoder", type=Path, help="a vocoder folder to bundle (stored in float16)")
    args = parser.parse_args(argv)

    from melinterp import MelStyleInterpolationPipeline
    from melinterp.models.vocoder import load_vocoder_folder

    if (args.export / "model_index.json").is_file():
        pipe = MelStyleInterpolationPipeline.from_pretrained(args.export)
    else:
        pipe = MelStyleInterpolationPipeline.from_training_output(args.export)
    if args.vocoder is not None:
        pipe.register_modules(vocoder=load_vocoder_folder(args.vocoder))
    names = ["text_encoder", "style_encoder", "unet"]
    if any(p.numel() for p in pipe.vocoder.parameters()):
        names.append("vocoder")  # a neural vocoder; Griffin-Lim's only tensor is its window buffer
    for name in names:
        getattr(pipe, name).to(torch.float16)
    card = args.out / "README.md"
    kept = card.read_text(encoding="utf-8") if card.is_file() else None
    if args.out.exists():
        shutil.rmtree(args.out)
    pipe.save_pretrained(args.out)
    if kept is not None:
        card.write_text(kept, encoding="utf-8")
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
