"""Pack a `melinterp vocoder-mels` file into 8 bits a value for a GPU machine with a capped upload, and unpack it there.

    python examples/training/pack_mels.py pack corpus-voc/model_mels.safetensors --out pack/model_mels.npz
    python examples/training/pack_mels.py unpack pack/model_mels.npz --out model_mels.safetensors

Each mel is stored as uint8 steps between its own minimum and maximum (a compressed ``.npz``, no pickle), so the
1,150 float16 mels of corpus-voc's training recordings (52 minutes of audio, 43 MB) travel in 19 MB. The rounding
error is at most half a step, (max - min) / 510 nats: at most 0.027 over those recordings' own mels, against the
0.47 (mean absolute) by which two of the acoustic model's teacher-forced mels of one recording differ. ``unpack``
writes the float16 file back with the same recording keys, so ``data.model_mels`` of `melinterp train-vocoder`
reads it as it reads the original. (``carry_cache.py`` does the same for a feature cache, on a fixed range.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

LEVELS = 255


FIELDS = ("steps", "lengths", "low", "high", "names")


def pack(mels: dict, path: Path) -> Path:
    """recording key -> (n_mels, T) mel, as `read_model_mels` returns them -> a compressed ``.npz`` at ``path``
    (that name exactly, written atomically).

    Raises:
        ValueError: no mels to pack.
    """
    from melinterp.utils import atomic_path

    if not mels:
        raise ValueError("it holds no mels: nothing to pack")
    names = list(mels)
    arrays = [np.asarray(mels[name], dtype=np.float32) for name in names]
    low = np.array([a.min() for a in arrays], np.float32)
    high = np.array([a.max() for a in arrays], np.float32)
    steps = [np.round((a - lo) / max(hi - lo, 1e-6) * LEVELS).astype(np.uint8) for a, lo, hi in zip(arrays, low, high)]
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a file object: numpy adds no ".npz" to its name
        np.savez_compressed(handle, steps=np.concatenate(steps, axis=1),
                            lengths=np.array([a.shape[1] for a in arrays]), low=low, high=high,
                            names=np.array(json.dumps(names)))
    return path


def unpack(path: Path) -> dict:
    """A ``pack`` file -> recording key -> (n_mels, T) float32 mel.

    Raises:
        ValueError: the file is not a ``pack`` output (not an ``.npz`` archive, or one without its fields).
    """
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ValueError("not an .npz archive written by `pack_mels.py pack`")
    with np.load(path, allow_pickle=False) as packed:
        missing = [field for field in FIELDS if field not in packed.files]
        if missing:
            raise ValueError(f"an .npz archive without {', '.join(missing)}: not written by `pack_mels.py pack`")
        names = json.loads(str(packed["names"]))
        steps, lengths, low, high = packed["steps"], packed["lengths"], packed["low"], packed["high"]
    ends = np.cumsum(lengths)
    return {name: steps[:, end - length: end].astype(np.float32) / LEVELS * (high[i] - low[i]) + low[i]
            for i, (name, end, length) in enumerate(zip(names, ends, lengths))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("source", type=Path, help="a vocoder-mels .safetensors (pack) or a pack .npz (unpack)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    import torch

    from melinterp.training.vocoder_mels import save_model_mels
    from melinterp.training.vocoder_trainer import read_model_mels
    from melinterp.utils import check_writable_file

    try:
        check_writable_file("--out", args.out, "an .npz" if args.action == "pack" else "a .safetensors")
    except ValueError as error:
        print(f"pack_mels.py: error: {error}", file=sys.stderr)
        return 1
    try:
        if args.action == "pack":
            mels = {name: mel.float().numpy() for name, mel in read_model_mels(args.source).items()}
            pack(mels, args.out)
        else:
            mels = unpack(args.source)
            save_model_mels({name: torch.from_numpy(mel).to(torch.float16) for name, mel in mels.items()}, args.out)
    except (OSError, ValueError) as error:
        print(f"pack_mels.py: error: {args.source}: {error}", file=sys.stderr)
        return 1
    print(f"{args.action}ed {len(mels)} mels into {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
