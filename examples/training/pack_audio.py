"""Copy a filelist's recordings as FLAC into a folder that travels light (a GPU machine with a capped upload).

    python examples/training/pack_audio.py corpus/filelists/train.txt --out pack/ --per-speaker 0:2 \
        --filelist-name train.txt

Writes ``OUT/wavs/<speaker>/<name>.flac`` (lossless, about half the size of 16-bit wav for speech) and
``OUT/filelists/NAME`` listing them (``../wavs/...|speaker|text``), with the recordings' relative paths unchanged
but for the suffix, so teacher-forced mels made from the original filelist (`melinterp vocoder-mels`) still match.
``--per-speaker A:B`` keeps each speaker's utterances A to B-1 (in filelist order), so two packs can split a corpus.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import soundfile


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("filelist", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-speaker", default=None, help="A:B, each speaker's utterances A..B-1")
    parser.add_argument("--filelist-name", default="train.txt")
    args = parser.parse_args(argv)
    first, last = (0, None) if args.per_speaker is None else (int(x) if x else None
                                                              for x in args.per_speaker.split(":"))
    first = first or 0
    lines, seen, total = [], {}, 0
    for filelist in args.filelist:
        for line in filelist.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            path, speaker, text = line.split("|", 2)
            index = seen[speaker] = seen.get(speaker, -1) + 1
            if index < first or (last is not None and index >= last):
                continue
            source = (filelist.parent / path).resolve()
            relative = Path(os.path.relpath(source, filelist.parent.parent))  # wavs/<speaker>/<name>.wav
            target = (args.out / relative).with_suffix(".flac")
            target.parent.mkdir(parents=True, exist_ok=True)
            audio, sample_rate = soundfile.read(source, dtype="int16")
            soundfile.write(target, audio, sample_rate, format="FLAC", subtype="PCM_16")
            total += target.stat().st_size
            lines.append(f"../{relative.with_suffix('.flac').as_posix()}|{speaker}|{text}")
    out_list = args.out / "filelists" / args.filelist_name
    out_list.parent.mkdir(parents=True, exist_ok=True)
    out_list.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} recordings, {total / 2**20:.1f} MiB of FLAC, listed in {out_list}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
