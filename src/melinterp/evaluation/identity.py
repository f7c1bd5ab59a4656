"""The identity section of ``melinterp evaluate``: is mode none heard as the voice of its reference clip?

    melinterp evaluate --model DIR --corpus CORPUS --out OUT --sections identity [--identity-clips 4]
                       [--identity-enrol 5] [--identity-pitch own] [--training-corpus DIR]

For each held-out voice of the corpus (its ``filelists/heldout.txt``; a novel corpus's own), N recordings at the
voice's own pitch (``--identity-clips``) are reference clips: each is ref1 of mode none saying the text of the
voice's next recording (another held-out sentence), at the evaluation's steps and seed. The speaker judge
(resemblyzer) identifies every output by its nearest centroid (cosine) among all training voices' and all
held-out voices' centroids. A centroid is the normalised mean of the judge's embeddings of E recordings of the
voice (``--identity-enrol``) at the same pitch choice, picked as ``melinterp check-voices`` picks them
(:func:`melinterp.evaluation.voices.voice_utterances`), so a training voice's centroid is the one check-voices
makes. A held-out voice's enrolment leaves out every recording its outputs use (the N clips and the recordings
whose texts they say): the judge never matches an output against its own reference, nor hears its text there.

``--identity-pitch own`` (the default, as check-voices' ``--pitch own``) takes clips and enrolment at each voice's
own pitch setting (espeak's -p 50, a factor of 1.0 for the others); ``all`` spreads both over its pitch settings.
The training voices are those of ``filelists/train.txt`` and ``val.txt`` of the corpus or, for a novel held-out
set (``CORPUS/novel``, which has no ``corpus.json`` of its own), of its parent folder, or of ``--training-corpus``.

Per output: the nearest voice, whether it is its own, the similarity to its own centroid and to the nearest other
voice's. The ground truth, each reference clip itself identified among the same centroids, is the ceiling the
judge allows on this corpus. Results are cached per output under ``OUT/work/identity/<id>/`` (scored again from
the cached audio when the centroids change) and the enrolment's embeddings in ``OUT/work/identity/enrolment.npz``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melinterp.evaluation.benchmark import _cached_result, _cell, _corpus_files, _mean, cache_name, read_audio
from melinterp.evaluation.voices import DEFAULT_ENROL, corpus_speakers, voice_centroids, voice_utterances

IDENTITY_CLIPS = 4  # reference clips a held-out voice
QUICK_IDENTITY_CLIPS = 1
PITCHES = ("own", "all")
SAVE_EVERY = 64  # enrolment embeddings between two writes of the cache


@dataclass(frozen=True)
class IdentityItem:
    """One output to identify: mode none in the voice of ``reference``, saying the text of ``text_from``."""

    id: str  # "<speaker>-<clip stem>-says-<text's stem>": the cache folder under out/work/identity/
    voice: str
    speaker: str  # the reference clip's
    text: str
    reference: Path  # ref1, and the ground truth identified beside the output
    text_from: Path  # another recording of the voice, whose text the output says


@dataclass(frozen=True)
class IdentitySet:
    """The outputs to identify and every voice's enrolment (absolute paths)."""

    items: list[IdentityItem]
    enrolment: dict[str, list[Path]]  # voice -> the recordings of its centroid: training voices, then held-out
    heldout_voices: list[str]
    training_corpus: Path
    pitch: str
    clips: int  # outputs a held-out voice
    enrol: int  # recordings a centroid (a held-out voice's may have fewer)


def find_training_corpus(corpus_dir: str | Path, training_corpus: str | Path | None = None) -> Path:
    """The corpus whose training voices the held-out voices must be told from: ``training_corpus`` when given,
    else ``corpus_dir`` when it has a corpus.json, else its parent folder when that has one (``CORPUS/novel``).

    Raises:
        FileNotFoundError: none of them has a corpus.json.
    """
    if training_corpus is not None:
        root = Path(training_corpus)
        if not (root / "corpus.json").is_file():
            raise FileNotFoundError(f"--training-corpus {root}: no corpus.json (expected a folder made by "
                                    "`melinterp make-corpus`)")
        return root
    root = Path(corpus_dir)
    for candidate in (root, root.resolve().parent):
        if (candidate / "corpus.json").is_file():
            return candidate
    raise FileNotFoundError(f"--corpus {root}: the identity section tells the held-out voices from the training "
                            "voices, but neither this folder nor its parent has a corpus.json: pass "
                            "--training-corpus DIR (the corpus made with it by `melinterp make-corpus`)")


def load_identity_set(corpus_dir: str | Path, *, clips: int = IDENTITY_CLIPS, enrol: int = DEFAULT_ENROL,
                      pitch: str = "own", training_corpus: str | Path | None = None) -> IdentitySet:
    """``clips`` outputs a held-out voice and the enrolment of every voice (see the module docstring).

    A held-out voice's recordings are taken in `voice_utterances` order: the first ``clips`` are the reference
    clips, the one after each clip gives that clip's text, the next ``enrol`` (or fewer, at least one) make the
    centroid. A training voice's centroid is its first ``enrol`` recordings of train.txt and val.txt.

    Raises:
        FileNotFoundError: no held-out filelist, or no corpus.json to read the speakers' pitch settings from.
        ValueError: a bad count or pitch, a held-out voice with too few recordings, no training voice, or a voice
            that is both.
    """
    if clips < 1 or enrol < 1:
        raise ValueError(f"--identity-clips and --identity-enrol must be >= 1, got {clips} and {enrol}")
    if pitch not in PITCHES:
        raise ValueError(f"--identity-pitch must be one of {', '.join(PITCHES)}, got {pitch!r}")
    root, (heldout_list,) = _corpus_files(corpus_dir, "filelists/heldout.txt")
    training = find_training_corpus(root, training_corpus)
    speakers = corpus_speakers(training)
    if (root / "corpus.json").is_file():
        speakers = {**speakers, **corpus_speakers(root)}
    needed = clips + 1 + enrol
    heldout = voice_utterances([heldout_list], speakers, pitch=pitch, per_voice=needed)
    if not heldout:
        raise ValueError(f"--corpus {root}: no held-out recording at pitch {pitch!r} of a speaker that "
                         f"{training / 'corpus.json'} knows" + (" (--identity-pitch all takes every pitch)"
                                                                if pitch == "own" else ""))
    short = {voice: len(utterances) for voice, utterances in heldout.items() if len(utterances) < clips + 2}
    if short:
        raise ValueError(f"held-out voices with fewer than {clips + 2} recordings of different texts at pitch "
                         f"{pitch!r} (--identity-clips {clips}, one more for the last clip's text and one at least "
                         "for the centroid): " + ", ".join(f"{voice} ({n})" for voice, n in short.items()))
    trained = voice_utterances([training / "filelists" / "train.txt", training / "filelists" / "val.txt"], speakers,
                               pitch=pitch, per_voice=enrol)
    if not trained:
        raise ValueError(f"--training-corpus {training}: no training recording at pitch {pitch!r} in its "
                         "filelists/train.txt or val.txt")
    both = sorted(set(trained) & set(heldout))
    if both:
        raise ValueError(f"voices both held out and trained on: {', '.join(both)}")

    items = []
    enrolment = {voice: [Path(u.wav_path) for u in utterances] for voice, utterances in trained.items()}
    for voice, utterances in heldout.items():
        for clip, said in zip(utterances[:clips], utterances[1:clips + 1]):
            name = cache_name(f"{clip.speaker}-{Path(clip.wav_path).stem}-says-{Path(said.wav_path).stem}")
            items.append(IdentityItem(name, voice, clip.speaker, said.text, Path(clip.wav_path), Path(said.wav_path)))
        enrolment[voice] = [Path(u.wav_path) for u in utterances[clips + 1:]]
    return IdentitySet(items, enrolment, list(heldout), training, pitch, clips, enrol)


# --------------------------------------------------------------------------------------------------------------
# The judge
# --------------------------------------------------------------------------------------------------------------

def identify(embedding, voice: str, names: list[str], centroids: np.ndarray) -> dict:
    """Which centroid an embedding (D,) is nearest (cosine), among ``centroids`` (V, D, unit rows) of ``names``.

    Returns:
        ``{"nearest", "identified", "similarity_own", "nearest_other", "similarity_nearest_other"}``: the nearest
        voice, whether it is ``voice``, the cosine to ``voice``'s centroid, the nearest of the other voices and the
        cosine to its centroid. An embedding of None (the judge could not embed the audio) is identified as nothing.
    """
    own = names.index(voice)
    if embedding is None:
        return {"nearest": None, "identified": False, "similarity_own": None, "nearest_other": None,
                "similarity_nearest_other": None}
    vector = np.asarray(embedding, dtype=np.float64)
    similarity = centroids @ (vector / max(float(np.linalg.norm(vector)), 1e-12))  # (V,)
    nearest = int(np.argmax(similarity))
    others = similarity.copy()
    others[own] = -np.inf
    other = int(np.argmax(others))
    return {"nearest": names[nearest], "identified": nearest == own, "similarity_own": float(similarity[own]),
            "nearest_other": names[other], "similarity_nearest_other": float(others[other])}


def enrolment_embeddings(paths, judges, cache_path: Path, *, progress: bool = True) -> dict[str, np.ndarray | None]:
    """str(path) -> the judge's embedding of each recording (None: it could not be embedded), cached in
    ``cache_path`` (npz: paths, embeddings, failed), which is read first and written every few dozen."""
    from tqdm.auto import tqdm

    from melinterp.utils import atomic_path

    embeddings: dict[str, np.ndarray | None] = {}
    if cache_path.is_file():
        with np.load(cache_path) as cached:
            embeddings.update(zip(cached["paths"].tolist(), cached["embeddings"]))
            embeddings.update((path, None) for path in cached["failed"].tolist())

    def save():
        done = [(path, value) for path, value in embeddings.items() if value is not None]
        with atomic_path(cache_path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, paths=np.array([path for path, _ in done], dtype=str),
                     embeddings=np.stack([value for _, value in done]) if done else np.zeros((0, 0), np.float32),
                     failed=np.array([path for path, value in embeddings.items() if value is None], dtype=str))

    missing = [str(path) for path in dict.fromkeys(paths) if str(path) not in embeddings]
    for count, path in enumerate(tqdm(missing, desc="enrolment", unit="wav", disable=not progress), start=1):
        judges.output = f"enrolment {path}"
        embeddings[path] = judges.embed(read_audio(Path(path)))
        if count % SAVE_EVERY == 0 or count == len(missing):
            save()
    return embeddings


def centroids_of(identity: IdentitySet, embeddings: dict) -> tuple[list[str], np.ndarray, list[str]]:
    """(voice names, (V, D) centroids, enrolment recordings the judge could not embed) of ``identity``'s voices.

    Raises:
        ValueError: a voice none of whose enrolment recordings could be embedded.
    """
    failed = [str(path) for paths in identity.enrolment.values() for path in paths if embeddings[str(path)] is None]
    rows = {voice: [embeddings[str(path)] for path in paths if embeddings[str(path)] is not None]
            for voice, paths in identity.enrolment.items()}
    empty = [voice for voice, values in rows.items() if not values]
    if empty:
        raise ValueError(f"the speaker judge could embed none of the enrolment recordings of {', '.join(empty)}")
    return list(rows), voice_centroids({voice: np.stack(values) for voice, values in rows.items()}), failed


def score_identity_item(item: IdentityItem, synthesize, judges, names: list[str], centroids: np.ndarray,
                        digest: str) -> dict:
    """Mode none in the voice of the item's clip, and the clip itself, identified among ``centroids``."""
    judges.undefined = []
    judges.output = "none"
    audio = synthesize(item, "none", item.reference, None, mode="none")["audio"]
    output = identify(judges.embed(audio), item.voice, names, centroids)
    judges.output = "ground_truth"
    truth = identify(judges.embed(read_audio(item.reference)), item.voice, names, centroids)
    return {"id": item.id, "voice": item.voice, "speaker": item.speaker, "text": item.text,
            "reference": str(item.reference), "text_from": str(item.text_from), "centroids": digest,
            "output": output, "ground_truth": truth, "undefined": list(dict.fromkeys(judges.undefined))}


def evaluate_identity(identity: IdentitySet, synthesize, judges, *, progress: bool = True) -> dict:
    """report.json's "identity": the config, the aggregates of `aggregate_identity` and every item's result, each
    cached in out/work/identity/<id>/result.json (``synthesize.work_dir`` is out/work/identity)."""
    from tqdm.auto import tqdm

    paths = [path for voice_paths in identity.enrolment.values() for path in voice_paths]
    embeddings = enrolment_embeddings(paths, judges, synthesize.work_dir / "enrolment.npz", progress=progress)
    names, centroids, failed = centroids_of(identity, embeddings)
    # a cached result stands for the centroids it was identified among
    digest = hashlib.sha1(json.dumps({voice: [str(path) for path in voice_paths] for voice, voice_paths in
                                      identity.enrolment.items()}, sort_keys=True).encode()).hexdigest()[:16]
    results = []
    for item in tqdm(identity.items, desc="identity", unit="output", disable=not progress):
        path = synthesize.work_dir / item.id / "result.json"
        if path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("centroids") != digest:
            path.unlink()
        results.append(_cached_result(path, lambda: score_identity_item(item, synthesize, judges, names, centroids,
                                                                        digest)))
    heldout = set(identity.heldout_voices)
    config = {"pitch": identity.pitch, "training_corpus": str(identity.training_corpus.resolve()),
              "clips": identity.clips, "enrol": identity.enrol,
              "training_voices": [voice for voice in names if voice not in heldout],
              "heldout_voices": identity.heldout_voices, "judge": "resemblyzer, cosine to the voices' centroids"}
    return {"config": config, **aggregate_identity(results), "items": results,
            "enrolment": {voice: [str(path) for path in voice_paths] for voice, voice_paths in
                          identity.enrolment.items()},
            "left_out_of_enrolment": failed}


# --------------------------------------------------------------------------------------------------------------
# Aggregates and the table
# --------------------------------------------------------------------------------------------------------------

def aggregate_identity(results: list[dict]) -> dict:
    """``{"overall": figures, "voices": {voice: figures}}`` where figures are the share of outputs identified as
    their own voice (an output the judge cannot embed counts as not identified), the same for the ground truth, the
    mean similarities to the own centroid and the nearest other one, and the voices mistaken for (with counts)."""

    def figures(items: list[dict]) -> dict:
        entry = {"n_outputs": len(items)}
        for key in ("output", "ground_truth"):
            found = [item[key] for item in items]
            prefix = "" if key == "output" else "ground_truth_"
            mistaken = Counter(f["nearest"] for f in found if not f["identified"] and f["nearest"] is not None)
            entry.update({
                f"{prefix}identified": _mean([float(f["identified"]) for f in found]),
                f"{prefix}similarity_own": _mean([f["similarity_own"] for f in found]),
                f"{prefix}similarity_nearest_other": _mean([f["similarity_nearest_other"] for f in found]),
                f"{prefix}mistaken_for": dict(sorted(mistaken.items(), key=lambda pair: (-pair[1], pair[0]))),
                f"{prefix}not_embedded": sum(f["nearest"] is None for f in found),
            })
        return entry

    by_voice: dict[str, list] = {}
    for result in results:
        by_voice.setdefault(result["voice"], []).append(result)
    return {"overall": figures(results), "voices": {voice: figures(items) for voice, items in sorted(by_voice.items())}}


def identity_markdown(identity: dict) -> list[str]:
    """report.md's identity section: one row for all outputs, one a held-out voice."""
    config = identity["config"]

    def mistaken(counts: dict) -> str:
        return ", ".join(f"{voice} ({n})" for voice, n in sorted(counts.items(), key=lambda p: (-p[1], p[0]))) or "–"

    overall = identity["overall"]
    n_training, n_heldout = len(config["training_voices"]), len(config["heldout_voices"])
    pitch = "at the voice's own pitch" if config["pitch"] == "own" else "over all its pitch settings"
    lines = [
        "## Voice identity", "",
        "Mode none with ref1 = a held-out recording of the voice, saying another held-out sentence: "
        f"{overall['n_outputs']} outputs of {n_heldout} held-out voices ({config['clips']} clips each), each "
        f"identified by its nearest centroid (resemblyzer, cosine) among {n_training + n_heldout}: {n_training} "
        f"training voices (of `{config['training_corpus']}`) and the {n_heldout} held-out ones. A centroid is the "
        f"normalised mean of the embeddings of up to {config['enrol']} recordings {pitch}; a held-out voice's "
        "leaves out every recording its outputs use (the reference clips and the recordings of their texts). "
        "Ground truth: each reference clip itself, identified the same way (the ceiling the judge allows). "
        "Similarities: the mean cosine to the own centroid and to the nearest other one.", "",
        "| voice | outputs | identified | ground truth identified | similarity own | nearest other | mistaken for "
        "| ground truth mistaken for |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for name, entry in (("all", overall), *identity["voices"].items()):
        lines.append(f"| {name} | {entry['n_outputs']} | {_cell(entry['identified'], -1)} | "
                     f"{_cell(entry['ground_truth_identified'], -1)} | {_cell(entry['similarity_own'], 3)} | "
                     f"{_cell(entry['similarity_nearest_other'], 3)} | {mistaken(entry['mistaken_for'])} | "
                     f"{mistaken(entry['ground_truth_mistaken_for'])} |")
    if overall["not_embedded"]:
        lines += ["", f"{overall['not_embedded']} outputs the judge could not embed count as not identified."]
    return lines + [""]
