"""``melinterp check-voices``: are a corpus's voices heard as different voices? The speaker judge decides.

    melinterp check-voices --corpus CORPUS --out CORPUS/voice_check.json [--enrol 5] [--test 10] [--pitch own]

For every voice (a speaker name without its ``_p<pitch>_s<rate>`` settings: all pitch and rate settings of one
timbre), the judge (resemblyzer's speaker encoder, :mod:`melinterp.evaluation.speaker`) embeds ``enrol + test``
of its recordings; the voice's centroid is the normalised mean of its first ``enrol`` embeddings. Then:

- **pairwise centroid similarity**: the cosine of every two centroids;
- **own-voice identification**: the share of a voice's ``test`` recordings (other texts than the enrolment's)
  whose nearest centroid, among all voices checked together, is their own voice's.

A voice is **distinct** when its own-voice identification is at least ``MIN_OWN_ID`` and no other voice's centroid
is as similar to its own as ``MAX_CENTROID_SIMILARITY``. Both thresholds were set on espeak-ng's variants, whose
near-twins the criterion must reject (``klatt``/``klatt6`` 1.000, ``steph2``/``steph3`` 0.999, ``iven``/``iven2``
0.990, ``en-us``/``grandpa`` 0.989, ``en+m4``/``en-us+m4`` 0.978: identification 0.00-0.83 on six test sentences).

``--pitch own`` (the default) takes each voice at its own pitch (espeak's -p 50, a factor of 1.0), the setting at
which voices are told apart by ear; ``--pitch all`` mixes all its pitch settings, a harder test for a judge that
also hears pitch. The report (JSON) holds the criterion, every voice's numbers, the most similar pairs and the
summary per split (training, held-out, novel); a Markdown table beside it gives the same at a glance.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from melinterp.evaluation.benchmark import voice_of

MIN_OWN_ID = 0.8  # share of a voice's test recordings identified as that voice
MAX_CENTROID_SIMILARITY = 0.97  # cosine of two centroids at or above which two voices are one
DEFAULT_ENROL, DEFAULT_TEST = 5, 10
PAIRS_REPORTED = 25
NATURAL_SOURCES = ("piper-",)  # voices made from these engines count as natural-sounding


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def voice_centroids(enrolment: Mapping[str, np.ndarray]) -> np.ndarray:
    """(V, D) unit centroids, one row a voice in the mapping's order: the normalised mean of each voice's (n, D)
    enrolment embeddings (each normalised first, so every recording weighs the same)."""
    return _unit(np.stack([_unit(np.asarray(rows, dtype=np.float64)).mean(axis=0) for rows in enrolment.values()]))


def voice_distinctness(embeddings: Mapping[str, np.ndarray], *, enrol: int = DEFAULT_ENROL,
                       min_own_id: float = MIN_OWN_ID, max_similarity: float = MAX_CENTROID_SIMILARITY) -> dict:
    """Centroid similarities and own-voice identification of voices judged together.

    Args:
        embeddings: voice name -> (n, D) speaker embeddings of its recordings; the first ``enrol`` make the
            centroid, the others are identified. Every voice needs more than ``enrol``.
        enrol: recordings a centroid is made of.
        min_own_id, max_similarity: the criterion (see the module docstring).

    Returns:
        ``{"criterion", "voices": {name: {own_id, test, nearest, nearest_similarity, split_half, distinct,
        confused_with}}, "pairs": the most similar pairs, "names", "similarity": (V, V) centroid cosines}``.

    Raises:
        ValueError: fewer than two voices, a voice without test recordings, or embeddings of unequal size.
    """
    names = list(embeddings)
    if len(names) < 2:
        raise ValueError(f"the check compares voices: expected at least two, got {len(names)}")
    arrays = {}
    for name in names:
        array = np.asarray(embeddings[name], dtype=np.float64)
        if array.ndim != 2 or array.shape[0] <= enrol:
            raise ValueError(f"voice {name!r}: expected more than {enrol} embeddings (enrolment + test) as an (n, D) "
                             f"array, got shape {array.shape}")
        arrays[name] = _unit(array)
    sizes = {array.shape[1] for array in arrays.values()}
    if len(sizes) != 1:
        raise ValueError(f"embeddings of unequal sizes: {sorted(sizes)}")
    centroids = voice_centroids({name: arrays[name][:enrol] for name in names})  # (V, D)
    similarity = centroids @ centroids.T  # (V, V)
    voices = {}
    for index, name in enumerate(names):
        test = arrays[name][enrol:]
        nearest_voice = np.argmax(test @ centroids.T, axis=1)  # (n_test,)
        own_id = float(np.mean(nearest_voice == index))
        others = similarity[index].copy()
        others[index] = -np.inf
        nearest = int(np.argmax(others))
        confused = sorted({names[i] for i in nearest_voice if i != index})
        split_half = float(_unit(test.mean(axis=0)) @ centroids[index])
        voices[name] = {
            "own_id": round(own_id, 4), "test": int(test.shape[0]), "nearest": names[nearest],
            "nearest_similarity": round(float(others[nearest]), 4), "split_half": round(split_half, 4),
            "confused_with": confused,
            "distinct": bool(own_id >= min_own_id and others[nearest] < max_similarity),
        }
    upper = [(float(similarity[i, j]), names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]
    pairs = [{"a": a, "b": b, "similarity": round(value, 4)}
             for value, a, b in sorted(upper, reverse=True)[:PAIRS_REPORTED]]
    return {"criterion": {"enrol": enrol, "min_own_id": min_own_id, "max_centroid_similarity": max_similarity,
                          "rule": f"distinct: own-voice identification >= {min_own_id:g} among all voices checked "
                                  f"together and every other centroid's cosine < {max_similarity:g}"},
            "voices": voices, "pairs": pairs, "names": names,
            "similarity": np.round(similarity, 4).tolist()}


def summarise(report: dict, groups: Mapping[str, list[str]]) -> dict:
    """Per group of voices (e.g. splits): how many, how many distinct, the natural-sounding share of the distinct
    ones, mean own-voice identification and the highest centroid similarity within the whole check."""
    summary = {}
    for group, names in groups.items():
        rows = [report["voices"][name] for name in names if name in report["voices"]]
        distinct = [name for name in names if report["voices"].get(name, {}).get("distinct")]
        natural = [name for name in distinct if name.startswith(NATURAL_SOURCES)]
        summary[group] = {
            "voices": len(rows), "distinct": len(distinct), "natural_distinct": len(natural),
            "natural_share": round(len(natural) / len(distinct), 4) if distinct else 0.0,
            "own_id_mean": round(float(np.mean([row["own_id"] for row in rows])), 4) if rows else None,
            "own_id_min": min((row["own_id"] for row in rows), default=None),
            "nearest_similarity_max": max((row["nearest_similarity"] for row in rows), default=None),
            "not_distinct": sorted(set(names) - set(distinct)),
        }
    return summary


# --------------------------------------------------------------------------------------------------------------
# On a corpus made by make-corpus
# --------------------------------------------------------------------------------------------------------------


def corpus_recordings(corpus: str | Path, *, pitch: str = "own", per_voice: int = DEFAULT_ENROL + DEFAULT_TEST,
                      splits: tuple[str, ...] = ("train", "heldout", "novel")) -> dict[str, dict[str, list[Path]]]:
    """split -> voice -> up to ``per_voice`` wav paths, chosen by :func:`voice_utterances`.

    Reads ``corpus.json`` (speakers) and the filelists: train and val for the training voices, ``heldout.txt`` and
    ``novel/filelists/heldout.txt`` for the held-out sets.

    Raises:
        FileNotFoundError: no corpus.json or filelists there.
        ValueError: ``pitch`` is neither "own" nor "all".
    """
    root = Path(corpus)
    speakers = corpus_speakers(root)
    filelists = {"train": ["filelists/train.txt", "filelists/val.txt"], "heldout": ["filelists/heldout.txt"],
                 "novel": ["novel/filelists/heldout.txt"]}
    chosen = {split: {voice: [Path(u.wav_path) for u in utterances] for voice, utterances in voice_utterances(
        [root / name for name in filelists[split]], speakers, pitch=pitch, per_voice=per_voice).items()}
        for split in splits}
    if not any(chosen.values()):
        raise FileNotFoundError(f"--corpus {root}: no recordings found in its filelists for {', '.join(splits)}")
    return chosen


def corpus_speakers(corpus: str | Path) -> dict[str, dict]:
    """``corpus.json``'s speakers: name -> {engine, voice, pitch_setting, pitch_control, split, ...}.

    Raises:
        FileNotFoundError: the folder has no corpus.json.
    """
    meta_path = Path(corpus) / "corpus.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"--corpus {corpus}: no corpus.json (expected a folder made by "
                                "`melinterp make-corpus`)")
    return json.loads(meta_path.read_text(encoding="utf-8"))["speakers"]


def voice_utterances(filelists, speakers: Mapping[str, dict], *, pitch: str = "own", per_voice: int) -> dict:
    """voice (in name order) -> up to ``per_voice`` of its utterances (`melinterp.data.filelists.Utterance`) in the
    filelists that exist, chosen deterministically: spread over the voice's settings, each text once. The choice
    grows by appending: the first k are the same whatever ``per_voice`` is.

    ``pitch="own"`` keeps a voice's recordings at its own pitch (``pitch_setting`` 50 for espeak's own voices, else
    1.0); ``"all"`` keeps every pitch. Speakers that ``speakers`` (corpus.json's) does not name are left out.

    Raises:
        ValueError: ``pitch`` is neither "own" nor "all".
    """
    from melinterp.data.filelists import read_filelist

    if pitch not in ("own", "all"):
        raise ValueError(f"--pitch must be 'own' or 'all', got {pitch!r}")
    by_voice: dict[str, dict[str, list]] = {}
    for filelist in filelists:
        if not Path(filelist).is_file():
            continue
        for utterance in read_filelist(filelist):
            entry = speakers.get(utterance.speaker)
            if entry is None or (pitch == "own" and not _own_pitch(entry)):
                continue
            by_voice.setdefault(voice_of(utterance.speaker), {}).setdefault(utterance.speaker, []).append(utterance)
    return {voice: _spread(groups, per_voice) for voice, groups in sorted(by_voice.items())}


def _own_pitch(entry: dict) -> bool:
    own = 50 if entry["engine"] == "espeak" and entry.get("pitch_control") != "world" else 1.0
    return float(entry["pitch_setting"]) == own


def _spread(by_speaker: dict[str, list], count: int) -> list:
    """Round-robin over a voice's speakers (its settings), skipping texts already taken: up to ``count``
    utterances."""
    queues = [list(utterances) for _, utterances in sorted(by_speaker.items())]
    taken, texts = [], set()
    while len(taken) < count and any(queues):
        for queue in queues:
            while queue:
                utterance = queue.pop(0)
                if utterance.text not in texts:
                    texts.add(utterance.text)
                    taken.append(utterance)
                    break
            if len(taken) == count:
                break
    return taken


def embed_recordings(recordings: Mapping[str, list[Path]], *, quiet: bool = False) -> dict[str, np.ndarray]:
    """voice -> (n, 256) resemblyzer embeddings of its wavs."""
    from tqdm import tqdm

    from melinterp.data.engines import read_wav
    from melinterp.evaluation.speaker import SpeakerSimilarity

    judge = SpeakerSimilarity()
    total = sum(len(paths) for paths in recordings.values())
    bar = tqdm(total=total, desc="embeddings", unit="wav", disable=quiet, file=sys.stderr, dynamic_ncols=True)
    embeddings = {}
    try:
        for voice, paths in recordings.items():
            rows = []
            for path in paths:
                audio, sample_rate = read_wav(path)
                rows.append(judge.embed(audio, sample_rate))
                bar.update()
            embeddings[voice] = np.stack(rows)
    finally:
        bar.close()
    return embeddings


def check_corpus(corpus: str | Path, *, enrol: int = DEFAULT_ENROL, test: int = DEFAULT_TEST, pitch: str = "own",
                 quiet: bool = False) -> dict:
    """:func:`voice_distinctness` of all of a corpus's voices (training, held-out and novel together), with the
    summary per split."""
    recordings = corpus_recordings(corpus, pitch=pitch, per_voice=enrol + test)
    flat = {voice: paths for split in recordings.values() for voice, paths in split.items()}
    short = {voice: len(paths) for voice, paths in flat.items() if len(paths) <= enrol}
    if short:
        raise ValueError(f"voices with no more than --enrol {enrol} recordings at pitch {pitch!r}: "
                         + ", ".join(f"{voice} ({n})" for voice, n in sorted(short.items())))
    report = voice_distinctness(embed_recordings(flat, quiet=quiet), enrol=enrol)
    report["summary"] = summarise(report, {split: list(voices) for split, voices in recordings.items()})
    report["corpus"] = str(Path(corpus).resolve())
    report["pitch"] = pitch
    report["recordings"] = {voice: [str(path) for path in paths] for voice, paths in flat.items()}
    return report


def markdown(report: dict) -> str:
    """The report as a Markdown summary and one row a voice."""
    lines = [f"# Voice check: {report.get('corpus', '')}", "", f"Criterion: {report['criterion']['rule']}; "
             f"centroids of {report['criterion']['enrol']} recordings, pitch {report.get('pitch', 'own')}.", "",
             "| split | voices | distinct | natural-sounding distinct (share) | own-id mean | own-id min | "
             "max centroid similarity |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for split, row in report.get("summary", {}).items():
        lines.append(f"| {split} | {row['voices']} | {row['distinct']} | {row['natural_distinct']} "
                     f"({row['natural_share']:.0%}) | {row['own_id_mean']} | {row['own_id_min']} | "
                     f"{row['nearest_similarity_max']} |")
    lines += ["", "| voice | own-id | nearest voice | centroid similarity | split-half | distinct |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name, row in report["voices"].items():
        lines.append(f"| {name} | {row['own_id']:.2f} | {row['nearest']} | {row['nearest_similarity']:.3f} | "
                     f"{row['split_half']:.3f} | {'yes' if row['distinct'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, required=True, help="a corpus made by `melinterp make-corpus`")
    parser.add_argument("--out", type=Path, required=True, help="the report (JSON; a .md table is written beside it)")
    parser.add_argument("--enrol", type=int, default=DEFAULT_ENROL, help="recordings per centroid (default 5)")
    parser.add_argument("--test", type=int, default=DEFAULT_TEST, help="recordings identified per voice (default 10)")
    parser.add_argument("--pitch", choices=("own", "all"), default="own",
                        help="own: each voice at its own pitch (default); all: all its pitch settings mixed")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the judge (default 1: faster on a busy machine)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from melinterp.utils import write_json

    if args.enrol < 1 or args.test < 1:
        raise ValueError(f"--enrol and --test must be >= 1, got {args.enrol} and {args.test}")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    report = check_corpus(args.corpus, enrol=args.enrol, test=args.test, pitch=args.pitch, quiet=args.quiet)
    write_json(args.out, report)
    args.out.with_suffix(".md").write_text(markdown(report), encoding="utf-8")
    for split, row in report["summary"].items():
        print(f"{split}: {row['distinct']} of {row['voices']} voices distinct ({row['natural_distinct']} "
              f"natural-sounding), own-voice identification mean {row['own_id_mean']}, min {row['own_id_min']}; "
              f"highest centroid similarity {row['nearest_similarity_max']}")
    print(f"report: {args.out} and {args.out.with_suffix('.md')}")
    return 0
