"""Carry a feature cache to a remote GPU machine in a quarter of its size, and restore it there.

    python examples/training/carry_cache.py pack CORPUS OUT.tar.xz      # filelists + cache, 8-bit mels, xz
    python examples/training/carry_cache.py unpack OUT.tar.xz CORPUS    # the same corpus layout, float32 again

    python examples/training/carry_cache.py pack CORPUS OUT.tar.xz --piece-mb 30   # OUT.tar.xz.part000, ... + sums
    python examples/training/carry_cache.py unpack OUT.tar.xz.part* CORPUS          # the pieces, in order

A cache from ``melinterp preprocess`` stores float32 log-mels: about 100 MB per hour of speech. Uploads to a
rented GPU are often capped (the device runner here takes 64 MiB a call), so ``pack`` quantises each log-mel to
8 bits between ln(log_clamp) and ``MEL_CEILING`` (a step of 0.055 in natural-log magnitude, 0.24 dB, far below
what the diffusion loss resolves), keeps f0, energy and phoneme ids as they are, and compresses with xz: about
25 MB per hour. ``--piece-mb N`` cuts the archive into pieces of at most N MB (10**6 bytes) for an upload capped
per call, with their sha256 sums in ``OUT.tar.xz.sha256``; ``unpack`` takes the pieces in order and reads them as
one stream (``sha256sum -c`` checks them first). ``unpack`` writes ordinary float32 entries under the same keys,
with ``index.json``, the cache's settings and the filelists, so ``melinterp train`` finds every utterance without
its wav. Entries are read with safetensors only; nothing is unpickled.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tarfile
from pathlib import Path

import numpy as np

MEL_CEILING = 2.5  # natural-log mel magnitude; real speech peaks near 1.5
LEVELS = 255


def _mel_floor(cache_dir: Path) -> float:
    config = json.loads((cache_dir / "feature_config.json").read_text(encoding="utf-8"))
    return math.log(config.get("log_clamp", 1e-5))


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def pack(corpus: Path, out: Path, piece_mb: float | None = None) -> list[Path]:
    """Pack ``corpus``'s filelists and cache into ``out``; returns the files written (the pieces, if cut)."""
    from safetensors import safe_open
    from safetensors.numpy import save

    cache_dir = corpus / "cache"
    index = json.loads((cache_dir / "index.json").read_text(encoding="utf-8"))
    floor = _mel_floor(cache_dir)
    scale = (MEL_CEILING - floor) / LEVELS
    clipped = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:xz") as tar:
        for path in sorted((corpus / "filelists").glob("*.txt")):
            tar.add(path, arcname=f"filelists/{path.name}")
        for path in sorted(cache_dir.glob("*.json")):
            tar.add(path, arcname=f"cache/{path.name}")
        for key in sorted(index):
            entry = cache_dir / "entries" / key[:2] / f"{key}.safetensors"
            with safe_open(entry, framework="np") as handle:
                metadata = handle.metadata()
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
            mel = tensors.pop("mel")
            clipped += int((mel > MEL_CEILING).sum())
            tensors["mel_q"] = np.clip(np.round((mel - floor) / scale), 0, LEVELS).astype(np.uint8)
            metadata = dict(metadata, mel_floor=repr(floor), mel_step=repr(scale))
            _add_bytes(tar, f"cache/entries/{key[:2]}/{key}.safetensors", save(tensors, metadata))
    print(f"packed {len(index)} entries into {out} ({out.stat().st_size / 2**20:.1f} MiB); "
          f"{clipped} mel values above {MEL_CEILING} were clipped")
    return cut_into_pieces(out, piece_mb) if piece_mb else [out]


def cut_into_pieces(archive: Path, piece_mb: float) -> list[Path]:
    """Replace ``archive`` by ``archive.part000``, ``.part001``, ... of at most ``piece_mb`` MB each, and write their
    sha256 sums (``sha256sum -c`` format) to ``archive.sha256``."""
    import hashlib

    if piece_mb <= 0:
        raise ValueError(f"--piece-mb must be > 0, got {piece_mb}")
    size = int(piece_mb * 1_000_000)
    pieces, sums = [], []
    with open(archive, "rb") as source:
        while chunk := source.read(size):
            piece = archive.with_name(f"{archive.name}.part{len(pieces):03d}")
            piece.write_bytes(chunk)
            pieces.append(piece)
            sums.append(f"{hashlib.sha256(chunk).hexdigest()}  {piece.name}\n")
    archive.with_name(f"{archive.name}.sha256").write_text("".join(sums), encoding="utf-8")
    archive.unlink()
    print(f"cut into {len(pieces)} pieces of at most {piece_mb:g} MB: {pieces[0].name} .. {pieces[-1].name}")
    return pieces


class _Concatenated(io.RawIOBase):
    """Several files read one after another as one stream (the pieces of a cut archive)."""

    def __init__(self, paths: list[Path]):
        self._paths = list(paths)
        self._file = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            if self._file is None:
                if not self._paths:
                    return 0
                self._file = open(self._paths.pop(0), "rb")
            count = self._file.readinto(buffer)
            if count:
                return count
            self._file.close()
            self._file = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        super().close()


def unpack(archives: list[Path], corpus: Path) -> None:
    """Restore the corpus layout from an archive, or from its pieces given in order."""
    from safetensors.numpy import load, save_file

    archive = archives[0]
    for path in archives:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such archive or piece")
    count = 0
    stream = io.BufferedReader(_Concatenated(archives), buffer_size=1 << 20)
    with stream, tarfile.open(fileobj=stream, mode="r|xz") as tar:
        for member in tar:
            name = Path(member.name)
            if not member.isfile() or name.is_absolute() or ".." in name.parts:
                raise ValueError(f"{archive}: unexpected member {member.name!r}")
            data = tar.extractfile(member).read()
            target = corpus / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if name.parts[:2] != ("cache", "entries"):
                target.write_bytes(data)
                continue
            header_size = int.from_bytes(data[:8], "little")
            metadata = json.loads(data[8:8 + header_size]).get("__metadata__", {})
            tensors = load(data)
            floor, step = float(metadata.pop("mel_floor")), float(metadata.pop("mel_step"))
            tensors["mel"] = (tensors.pop("mel_q").astype(np.float32) * step + floor).astype(np.float32)
            save_file(tensors, target, metadata)
            count += 1
    print(f"unpacked {count} entries into {corpus / 'cache'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packer = commands.add_parser("pack", help="CORPUS (with filelists/ and cache/) -> OUT.tar.xz")
    packer.add_argument("corpus", type=Path)
    packer.add_argument("out", type=Path)
    packer.add_argument("--piece-mb", type=float, default=None,
                        help="cut the archive into pieces of at most this many MB (10**6 bytes)")
    unpacker = commands.add_parser("unpack", help="ARCHIVE [MORE PIECES...] -> CORPUS/filelists and CORPUS/cache")
    unpacker.add_argument("archive", type=Path, nargs="+", help="the archive, or all its pieces in order")
    unpacker.add_argument("corpus", type=Path)
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(args.corpus, args.out, args.piece_mb)
    else:
        unpack(args.archive, args.corpus)
    return 0


if __name__ == "__main__":
    sys.exit(main())
