"""``melinterp prepare-filelists``: train/val/test filelists from public corpora, read as their publishers ship them.

Each reader takes the corpus's own layout and text files (under ROOT) and returns utterances (wav path,
speaker, text):

- ``ljspeech``: ``metadata.csv`` (``id|text|normalised text``) and ``wavs/<id>.wav``; one speaker, ``LJ``.
- ``libritts`` (LibriTTS and LibriTTS-R): ``[subset/]SPEAKER/CHAPTER/<utt>.wav`` beside ``<utt>.normalized.txt``;
  the speaker id.
- ``vctk``: ``txt/pXXX/pXXX_NNN.txt`` and ``wav48_silence_trimmed/pXXX/pXXX_NNN_mic1.flac`` (release 0.92; the
  older ``wav48/pXXX/pXXX_NNN.wav`` is read too); ``pXXX``.
- ``esd``: ``SPEAKER/SPEAKER.txt`` (``id<TAB>text<TAB>emotion``) and
  ``SPEAKER/EMOTION/[train|evaluation|test/]<id>.wav``; ``SPEAKER_Emotion``.

For ESD the emotion is part of the speaker name, so a style reference carries it; the written ``import.json``
gives the ``reference_group_pattern`` (training config, ``data`` section) that lets a reference be *another*
emotion of the same speaker, as the synthetic corpus lets it be another pitch of the same voice.

Splits are made per speaker (seeded): ``val`` and ``test`` take a fraction of each speaker's utterances, at least
one of each where the speaker has three or more. ``--test-speakers N`` or ``--test-speaker-ids`` instead hold whole
speakers out (ESD: with all their emotions): the test filelist is then speaker-disjoint from train and val, for
judging unseen voices.
Recordings are listed as they are (flac, any sample rate, leading and trailing silence): ``melinterp preprocess``
resamples them and trims their end silences.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from melinterp.data.filelists import Utterance, write_filelist

ESD_EMOTIONS = ("Angry", "Happy", "Neutral", "Sad", "Surprise")
ESD_ENGLISH_SPEAKERS = tuple(f"{n:04d}" for n in range(11, 21))  # 0001-0010 speak Mandarin
SPLITS = ("train", "val", "test")


class LayoutError(ValueError):
    """The folder does not hold the corpus layout asked for; the message says what was expected where."""


@dataclass(frozen=True)
class CorpusFormat:
    """A public corpus: how to read it, how its speakers group, and under what licence its publisher ships it."""

    name: str
    read: Callable[..., tuple[list[Utterance], dict[str, int]]]  # (utterances, {reason: count} of what was skipped)
    licence: str
    reference_group_pattern: str | None = None


def _text_of(path: Path) -> str:
    try:
        return " ".join(path.read_text(encoding="utf-8-sig").split())
    except UnicodeDecodeError as error:
        raise LayoutError(f"{path}: transcript is not UTF-8 text ({error})") from None


class _Collected:
    """The utterances read so far, and how many lines were skipped for each reason."""

    def __init__(self):
        self.utterances: list[Utterance] = []
        self.skipped: dict[str, int] = defaultdict(int)

    def add(self, wav: Path | None, speaker: str, text: str, missing: str = "transcript without a recording"):
        if not text:
            self.skipped["empty transcript"] += 1
        elif wav is None or not wav.is_file():
            self.skipped[missing] += 1
        else:
            self.utterances.append(Utterance(wav, speaker, text))

    def result(self, nothing_found: str) -> tuple[list[Utterance], dict[str, int]]:
        """(utterances, skipped); a `LayoutError` with ``nothing_found`` when not one line was seen."""
        if not self.utterances and not self.skipped:
            raise LayoutError(nothing_found)
        return self.utterances, dict(self.skipped)


def _require(path: Path, what: str, layout: str) -> Path:
    if not path.exists():
        raise LayoutError(f"{path} not found: {what} (expected layout: {layout})")
    return path


# --------------------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------------------

LJSPEECH_LAYOUT = "ROOT/metadata.csv with lines 'LJ001-0001|text|normalised text' and ROOT/wavs/LJ001-0001.wav"


def read_ljspeech(root: Path) -> tuple[list[Utterance], dict[str, int]]:
    """LJSpeech 1.1: one speaker; the normalised text (third column) where there is one, else the second."""
    metadata = _require(root / "metadata.csv", "the LJSpeech transcript", LJSPEECH_LAYOUT)
    wavs = _require(root / "wavs", "the LJSpeech recordings folder", LJSPEECH_LAYOUT)
    try:
        lines = metadata.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise LayoutError(f"{metadata}: not UTF-8 text ({error})") from None
    found = _Collected()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2 or not fields[0].strip():
            raise LayoutError(f"{metadata}:{number}: expected 'id|text|normalised text', got {line!r}")
        text = " ".join((fields[2] if len(fields) > 2 and fields[2].strip() else fields[1]).split())
        found.add(wavs / f"{fields[0].strip()}.wav", "LJ", text)
    return found.result(f"{metadata} lists no utterance (expected layout: {LJSPEECH_LAYOUT})")


LIBRITTS_LAYOUT = ("ROOT[/subset]/SPEAKER/CHAPTER/SPEAKER_CHAPTER_NNNNNN_NNNNNN.wav beside "
                   "SPEAKER_CHAPTER_NNNNNN_NNNNNN.normalized.txt")


def read_libritts(root: Path) -> tuple[list[Utterance], dict[str, int]]:
    """LibriTTS or LibriTTS-R, one subset folder or several under ROOT; the ``.normalized.txt`` transcripts."""
    _require(root, "the LibriTTS folder", LIBRITTS_LAYOUT)
    found = _Collected()
    for transcript in sorted(root.rglob("*.normalized.txt")):
        stem = transcript.name[: -len(".normalized.txt")]
        speaker = stem.split("_")[0]
        if transcript.parent.parent.name != speaker:
            raise LayoutError(f"{transcript}: its speaker id {speaker!r} is not the name of its grandparent folder "
                              f"(expected layout: {LIBRITTS_LAYOUT})")
        found.add(transcript.with_name(f"{stem}.wav"), speaker, _text_of(transcript))
    return found.result(f"no *.normalized.txt transcript under {root} (expected layout: {LIBRITTS_LAYOUT})")


VCTK_LAYOUT = ("ROOT/txt/p225/p225_001.txt and ROOT/wav48_silence_trimmed/p225/p225_001_mic1.flac "
               "(VCTK 0.92), or ROOT/wav48/p225/p225_001.wav (VCTK 0.80)")


def read_vctk(root: Path, mic: str = "mic1") -> tuple[list[Utterance], dict[str, int]]:
    """VCTK 0.92 (``mic1`` or ``mic2`` flac) or 0.80 (wav); speakers without transcripts (p315) are skipped."""
    texts = _require(root / "txt", "the VCTK transcripts folder", VCTK_LAYOUT)
    if (root / "wav48_silence_trimmed").is_dir():
        audio = lambda speaker, stem: root / "wav48_silence_trimmed" / speaker / f"{stem}_{mic}.flac"  # noqa: E731
        missing = f"transcript without a {mic} recording"
    elif (root / "wav48").is_dir():
        audio = lambda speaker, stem: root / "wav48" / speaker / f"{stem}.wav"  # noqa: E731
        missing = "transcript without a recording"
    else:
        raise LayoutError(f"{root} has neither wav48_silence_trimmed/ nor wav48/ (expected layout: {VCTK_LAYOUT})")
    found = _Collected()
    for transcript in sorted(texts.glob("p*/p*_*.txt")):
        speaker = transcript.parent.name
        found.add(audio(speaker, transcript.stem), speaker, _text_of(transcript), missing)
    return found.result(f"no txt/pXXX/pXXX_NNN.txt transcript under {root} (expected layout: {VCTK_LAYOUT})")


ESD_LAYOUT = ("ROOT/0011/0011.txt (lines 'id<TAB>text<TAB>emotion') and ROOT/0011/Angry/[train/]0011_000351.wav, "
              "for speakers 0001-0020 and emotions " + ", ".join(ESD_EMOTIONS))
ESD_ENCODINGS = ("utf-8-sig", "gb18030")  # besides UTF-16 with a byte-order mark: the publisher's come in all three


def _read_esd_transcript(path: Path) -> list[str]:
    raw = path.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw.decode("utf-16").splitlines()
    for encoding in ESD_ENCODINGS:
        try:
            return raw.decode(encoding).splitlines()
        except UnicodeDecodeError:
            continue
    raise LayoutError(f"{path}: transcript is neither UTF-16 with a byte-order mark nor "
                      f"{' nor '.join(ESD_ENCODINGS)} text")


def read_esd(root: Path, speakers: Iterable[str] | None = ESD_ENGLISH_SPEAKERS) -> tuple[list[Utterance],
                                                                                         dict[str, int]]:
    """ESD: the speaker folders present among ``speakers`` (default the English ones; ``None``: all)."""
    _require(root, "the ESD folder", ESD_LAYOUT)
    if not any(re.fullmatch(r"\d{4}", p.name) for p in root.iterdir()):
        nested = [p for p in root.iterdir() if p.is_dir() and any(re.fullmatch(r"\d{4}", q.name)
                                                                  for q in p.iterdir())]
        if len(nested) == 1:  # "Emotion Speech Dataset/" inside the archive's folder
            root = nested[0]
        else:
            raise LayoutError(f"no speaker folder (0001-0020) in {root} (expected layout: {ESD_LAYOUT})")
    wanted = None if speakers is None else set(speakers)
    found = _Collected()
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d{4}", p.name)):
        speaker = folder.name
        if wanted is not None and speaker not in wanted:
            found.skipped["speaker not selected (--esd-speakers)"] += 1
            continue
        transcript = _require(folder / f"{speaker}.txt", f"speaker {speaker}'s transcript", ESD_LAYOUT)
        wavs = {wav.stem: wav for emotion in ESD_EMOTIONS for wav in (folder / emotion).rglob("*.wav")}
        emotion_of = {wav.stem: wav.relative_to(folder).parts[0] for wav in wavs.values()}
        for number, line in enumerate(_read_esd_transcript(transcript), start=1):
            if not line.strip():
                continue
            fields = [field.strip() for field in line.split("\t")]
            if len(fields) < 2:
                raise LayoutError(f"{transcript}:{number}: expected 'id<TAB>text<TAB>emotion', got {line!r}")
            key = fields[0]
            found.add(wavs.get(key), f"{speaker}_{emotion_of.get(key)}", " ".join(fields[1].split()))
    return found.result(f"no ESD recording under {root} (expected layout: {ESD_LAYOUT})")


FORMATS: dict[str, CorpusFormat] = {
    "ljspeech": CorpusFormat("ljspeech", read_ljspeech, "public domain (https://keithito.com/LJ-Speech-Dataset/)"),
    "libritts": CorpusFormat("libritts", read_libritts, "CC BY 4.0 (https://www.openslr.org/60/, "
                                                        "LibriTTS-R https://www.openslr.org/141/)"),
    "vctk": CorpusFormat("vctk", read_vctk, "CC BY 4.0 (https://datashare.ed.ac.uk/handle/10283/3443)"),
    "esd": CorpusFormat("esd", read_esd, "the ESD licence: non-commercial research use only "
                                         "(https://github.com/HLTSingapore/Emotional-Speech-Data)",
                        reference_group_pattern="_(" + "|".join(ESD_EMOTIONS) + ")$"),
}


# --------------------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------------------

def voice_of(speaker: str, reference_group_pattern: str | None) -> str:
    """The voice a speaker name belongs to: the name with the group pattern removed (ESD: without its emotion)."""
    return speaker if reference_group_pattern is None else re.sub(reference_group_pattern, "", speaker)


def split_utterances(utterances: list[Utterance], *, val_fraction: float = 0.02, test_fraction: float = 0.02,
                     test_speakers: int | list[str] = 0, reference_group_pattern: str | None = None,
                     seed: int = 0) -> dict[str, list[Utterance]]:
    """Train, val and test utterances, in the corpus's order within each.

    Args:
        utterances: what a reader returned.
        val_fraction, test_fraction: of each speaker's utterances (at least one each for speakers with three or
            more); ``test_fraction`` is ignored when ``test_speakers`` holds voices out.
        test_speakers: a number of voices to hold out whole (chosen with ``seed``), or their names; their
            utterances are the test split and nothing else.
        reference_group_pattern: speakers equal once it is removed are one voice (held out together).
        seed: of the choices.

    Raises:
        ValueError: fractions out of range, unknown or too many held-out voices, or no utterance left to train.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    rng = random.Random(seed)
    voices = sorted({voice_of(u.speaker, reference_group_pattern) for u in utterances})
    if isinstance(test_speakers, int):
        if not 0 <= test_speakers < len(voices):
            raise ValueError(f"--test-speakers {test_speakers}: the corpus has {len(voices)} voice(s); hold out "
                             f"fewer than that")
        held_out = set(rng.sample(voices, test_speakers))
    else:
        unknown = sorted(set(test_speakers) - set(voices))
        if unknown:
            raise ValueError(f"--test-speakers names voices the corpus does not have: {', '.join(unknown)} "
                             f"(it has {', '.join(voices[:10])}{', ...' if len(voices) > 10 else ''})")
        held_out = set(test_speakers)
        if held_out == set(voices):
            raise ValueError("--test-speakers holds out every voice: none is left to train on")

    by_speaker: dict[str, list[int]] = defaultdict(list)
    for index, utterance in enumerate(utterances):
        by_speaker[utterance.speaker].append(index)
    split_of = {}
    for speaker, indices in by_speaker.items():
        if voice_of(speaker, reference_group_pattern) in held_out:
            split_of.update(dict.fromkeys(indices, "test"))
            continue
        shuffled = rng.sample(indices, len(indices))
        floor = 1 if len(indices) >= 3 else 0
        n_val = max(floor, round(val_fraction * len(indices))) if val_fraction > 0 else 0
        n_test = 0 if held_out or test_fraction == 0 else max(floor, round(test_fraction * len(indices)))
        split_of.update(dict.fromkeys(shuffled[:n_val], "val"))
        split_of.update(dict.fromkeys(shuffled[n_val:n_val + n_test], "test"))
        split_of.update(dict.fromkeys(shuffled[n_val + n_test:], "train"))
    splits = {name: [u for i, u in enumerate(utterances) if split_of[i] == name] for name in SPLITS}
    if not splits["train"]:
        raise ValueError("no utterance is left for training: lower the val/test fractions")
    return splits


# --------------------------------------------------------------------------------------------------------------
# The `melinterp prepare-filelists` command
# --------------------------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="the corpus folder as its publisher ships it")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS), help="the corpus's layout")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for train.txt, val.txt, test.txt and import.json (wav paths relative to it)")
    parser.add_argument("--val-fraction", type=float, default=0.02, help="of each speaker (default 0.02)")
    parser.add_argument("--test-fraction", type=float, default=0.02,
                        help="of each speaker, when no --test-speakers (default 0.02)")
    held_out = parser.add_mutually_exclusive_group()
    held_out.add_argument("--test-speakers", type=int, default=0, metavar="N",
                          help="hold out N voices whole (seeded): a speaker-disjoint test split")
    held_out.add_argument("--test-speaker-ids", metavar="ID,ID,...",
                          help="hold out these voices whole (ESD: speaker ids such as 0013, all emotions)")
    parser.add_argument("--vctk-mic", choices=("mic1", "mic2"), default="mic1", help="VCTK 0.92's microphone")
    parser.add_argument("--esd-speakers", default="english", metavar="english|all|ID,ID,...",
                        help="ESD speakers (default the English ones, 0011-0020)")
    parser.add_argument("--seed", type=int, default=0)


def _check_out(out: Path) -> None:
    """Refuse an output path that cannot be a folder of filelists, before reading the corpus."""
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--out {out}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK):
                raise ValueError(f"--out {out}: {parent} is not writable")
            return


def run(args: argparse.Namespace) -> int:
    corpus = FORMATS[args.format]
    root = args.root.resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {args.root}")
    _check_out(args.out)
    options = {}
    if args.format == "vctk":
        options["mic"] = args.vctk_mic
    elif args.format == "esd":
        options["speakers"] = {"english": ESD_ENGLISH_SPEAKERS, "all": None}.get(
            args.esd_speakers, tuple(s.strip() for s in args.esd_speakers.split(",") if s.strip()))
    utterances, skipped = corpus.read(root, **options)
    if not utterances:
        raise LayoutError(f"{root}: no usable utterance ({', '.join(f'{n} {why}' for why, n in skipped.items())})")
    test_speakers = (args.test_speakers if args.test_speaker_ids is None
                     else [s.strip() for s in args.test_speaker_ids.split(",") if s.strip()])
    splits = split_utterances(utterances, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                              test_speakers=test_speakers, reference_group_pattern=corpus.reference_group_pattern,
                              seed=args.seed)
    out = args.out.resolve()
    for name, part in splits.items():
        if part:
            write_filelist(out / f"{name}.txt", part, relative_to=out)
        elif (out / f"{name}.txt").exists():
            (out / f"{name}.txt").unlink()  # a stale split of an earlier run would be read as this one's
    voices = lambda part: sorted({voice_of(u.speaker, corpus.reference_group_pattern) for u in part})  # noqa
    from melinterp.utils import write_json

    write_json(out / "import.json", {
        "format": args.format, "root": str(root), "licence": corpus.licence, "seed": args.seed,
        "reference_group_pattern": corpus.reference_group_pattern,
        "splits": {name: {"utterances": len(part), "speakers": len({u.speaker for u in part}),
                          "voices": voices(part)} for name, part in splits.items()},
        "speaker_disjoint_test": test_speakers not in (0, []), "skipped": skipped,
    })
    counts = ", ".join(f"{name} {len(part)}" for name, part in splits.items())
    print(f"{args.format} {root}: {len(utterances)} utterances of {len({u.speaker for u in utterances})} speakers "
          f"-> {out} ({counts})")
    for why, count in skipped.items():
        print(f"  skipped {count}: {why}", file=sys.stderr)
    if corpus.reference_group_pattern:
        print(f'  training config: "reference_group_pattern": {json.dumps(corpus.reference_group_pattern)} draws '
              f"references from every emotion of a speaker")
    print(f"  licence: {corpus.licence}")
    return 0
