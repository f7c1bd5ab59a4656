"""``melinterp evaluate``: score every interpolation mode with independent judges on held-out voices.

    melinterp evaluate --model DIR --corpus CORPUS --out OUT [--quick] [--steps N] [--seed S] [--device cpu]
                       [--sections modes quality identity] [--quality-utterances N] [--identity-clips N]
                       [--vocoder DIR[@DTYPE] ...]

The corpus is one made by ``melinterp make-corpus``: its held-out voices and texts (``filelists/heldout.txt``)
and its parallel triplets (``triplets.jsonl``: A at its pitch, B at its pitch, B at A's pitch, same text). For
each triplet ("pair"), with ref1 = another held-out utterance of A's speaker and ref2 = another of B's speaker
(never a file with the triplet's text, so no content leaks into the style):

- ``none``: the triplet's text in the voice of ref1 alone, compared with A's ground truth (MCD, log-f0 RMSE);
  likewise ref2 alone against B's. The quality floor.
- ``freq`` (freq_guidance ``mask``, ``noise_tuning`` and ``none`` as the ablation) and ``dual_noise``: pitch of
  ref1, timbre of ref2. **pitch transfer** = |f0 median(output) - f0 median(ref1)| in semitones, **timbre score**
  = similarity(output, ref2) - similarity(output, ref1) (resemblyzer), and MCD to "B at A's pitch".
- ``temporal``: the output is split at the boundary frame (where the routing map's weight of ref1 falls below
  one half); each part is scored against its own reference: pitch transfer to it and timbre score = similarity
  to it minus similarity to the other.
- ``mix``: alpha swept over 0, 0.25, 0.5, 0.75, 1; the Spearman correlation with alpha of the f0 median (in
  the direction ref1 -> ref2) and of similarity(ref2) - similarity(ref1).

Success (per pair, only on pairs whose references differ by at least 4 semitones): the output's f0 median is
closer to the pitch reference's than to the other's, and its similarity to the timbre reference is higher than
to the other. Temporal: both parts follow their own reference. Mix: both Spearman correlations are positive.

The quality section (``--sections quality`` runs it alone, in minutes) scores N held-out utterances (16, spread
over the speakers) with DNSMOS (OVRL, SIG, BAK, P808: naturalness without a reference), the word error rate of
pocketsphinx and MCD to the recording, for: ``ground_truth`` (the recording), ``vocoded_gt/<vocoder>`` (the
recording's mel through each vocoder: Griffin-Lim, the pipeline's own when it is another, and each ``--vocoder
DIR`` folder under the folder's name, e.g. an official HiFi-GAN converted by ``melinterp convert-hifigan``, or with
``--vocoder DIR@bfloat16`` in that dtype under ``NAME@bfloat16``; for a
vocoder that predicts STFT frames, also ``vocoded_gt/<vocoder>:recording_phase`` and ``:recording_magnitude``, its
output's STFT with the recording's phases or magnitudes put back, which say whether its magnitudes or its phases
cost more) and
``none/<vocoder>`` (mode none with ref1 = another utterance of the speaker, one mel through each vocoder). WER is
counted only on the voices whose ground truth the recogniser reads (WER under 25 %); the others are listed.

The identity section (``--sections identity``; not run unless named, since it embeds E recordings of every
training voice however small the run) asks whether mode none sounds like the voice of its reference: for each
held-out voice, N clips (``--identity-clips``, 4) at the voice's own pitch, each ref1 of mode none saying another
held-out sentence; the speaker judge identifies each output by its nearest centroid among all training voices' and
all held-out voices' (E = ``--identity-enrol`` recordings each, 5, picked as ``check-voices --pitch own`` does; a
held-out voice's enrolment never holds a recording its outputs use). It reports the share identified as their own
voice, overall and per voice, the voices they were mistaken for, and the same for the reference clips themselves
(the judge's ceiling). A novel held-out set (``CORPUS/novel``) takes the training voices of its parent corpus, or of
``--training-corpus``. See `melinterp.evaluation.identity`.

Writes ``OUT/report.json`` (config, per-pair numbers, aggregates, "quality", "identity"), ``OUT/report.md`` (one
row per mode, one per quality output, one per held-out voice) and a few PNG figures (``OUT/figures/``). Every
synthesised output and per-pair, per-utterance or per-output result is cached under ``OUT/work/`` (written
atomically), so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FAR_SEMITONES = 4.0  # pairs whose references differ by less are not counted in the success rate
FULL_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
QUICK_ALPHAS = (0.0, 0.5, 1.0)
QUICK_PAIRS = 2
QUICK_STEPS = 3
DEFAULT_STEPS = 10
FIGURE_PAIRS = 2  # pairs that get PNG figures
# Two-reference modes with a pitch reference (ref1) and a timbre reference (ref2): name -> pipeline keywords.
TRANSFER_MODES: dict[str, dict] = {
    "freq_mask": {"mode": "freq", "freq_guidance": "mask"},
    "freq_noise_tuning": {"mode": "freq", "freq_guidance": "noise_tuning"},
    "freq_none": {"mode": "freq", "freq_guidance": "none"},
    "dual_noise": {"mode": "dual_noise"},
}
MODE_ORDER = ("none", *TRANSFER_MODES, "temporal", "mix")
# the interpolation modes on the triplets; quality of single held-out utterances; voice identity of mode none
SECTIONS = ("modes", "quality", "identity")
# identity is asked for by name: it embeds every training voice's enrolment, however small the run
DEFAULT_SECTIONS = ("modes", "quality")
QUALITY_UTTERANCES = 16
QUICK_QUALITY_UTTERANCES = 4
WER_VOICE_LIMIT = 0.25  # a voice whose ground-truth WER is not under this is left out of the WER
# make-corpus speakers are "<engine>-<voice>_p<pitch>_s<rate>": the voice is the speaker without its settings
SPEAKER_SETTINGS = re.compile(r"(_p[^_]+)?(_s[^_]+)?$")


# --------------------------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pair:
    """One parallel triplet with the references chosen for it (absolute paths)."""

    id: str
    text: str
    a_wav: Path  # A at its pitch: ground truth of mode none with ref1
    b_wav: Path  # B at its pitch: ground truth of mode none with ref2
    b_at_a_wav: Path  # B at A's pitch: ground truth of the transfer modes
    ref1: Path  # another held-out utterance of A's speaker: the pitch reference
    ref2: Path  # another held-out utterance of B's speaker: the timbre reference
    far: bool


def load_pairs(corpus_dir: str | Path, max_pairs: int | None = None) -> list[Pair]:
    """The corpus's triplets with their references, in file order, at most ``max_pairs``.

    Raises:
        FileNotFoundError: ``corpus_dir`` or its ``filelists/heldout.txt`` / ``triplets.jsonl`` is missing.
        ValueError: a triplet lacks a key, or a speaker of a triplet has no held-out utterance.
    """
    from melinterp.utils import read_text_file

    root, (heldout, triplets_path) = _corpus_files(corpus_dir, "filelists/heldout.txt", "triplets.jsonl")
    by_speaker = _heldout_by_speaker(heldout)

    pairs = []
    lines = [line for line in read_text_file(triplets_path, "--corpus").splitlines() if line.strip()]
    for number, line in enumerate(lines, start=1):
        try:
            triplet = json.loads(line)
            a, b, b_at_a, text = triplet["a"], triplet["b"], triplet["b_at_a_pitch"], triplet["text"]
            wavs = [root / a["wav"], root / b["wav"], root / b_at_a["wav"]]
            ref1 = _reference(by_speaker, a["speaker"], text, fallback=wavs[0])
            ref2 = _reference(by_speaker, b["speaker"], text, fallback=wavs[1])
            identifier = str(triplet.get("id", f"{number - 1:03d}"))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{triplets_path}, line {number}: expected a triplet with keys a, b, b_at_a_pitch "
                             f"(each with wav and speaker) and text; {type(error).__name__}: {error}") from None
        for wav in wavs:
            if not wav.is_file():
                raise FileNotFoundError(f"{triplets_path}, line {number}: {wav} does not exist")
        far = abs(math.log2(a["f0_median_hz"] / b["f0_median_hz"]) * 12) >= FAR_SEMITONES \
            if "f0_median_hz" in a and "f0_median_hz" in b else bool(triplet.get("far", False))
        pairs.append(Pair(identifier, text, *wavs, ref1, ref2, far))
    if not pairs:
        raise ValueError(f"--corpus {root}: triplets.jsonl holds no triplet")
    return pairs if max_pairs is None else pairs[:max_pairs]


def _corpus_files(corpus_dir: str | Path, *relative: str) -> tuple[Path, list[Path]]:
    """The corpus folder and its files ``relative`` (posix paths under it), each checked to exist."""
    root = Path(corpus_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--corpus {root}: no such folder (expected one made by `melinterp make-corpus`)")
    paths = [root / name for name in relative]
    for name, path in zip(relative, paths):
        if not path.is_file():
            raise FileNotFoundError(f"--corpus {root}: no {name} (expected a corpus made by `melinterp make-corpus` "
                                    f"with held-out voices{' and triplets' if 'triplets.jsonl' in relative else ''})")
    return root, paths


def _heldout_by_speaker(heldout: Path) -> dict[str, list]:
    """The held-out filelist's utterances by speaker, each speaker's in file order."""
    from melinterp.data.filelists import read_filelist

    by_speaker: dict[str, list] = {}
    for utterance in read_filelist(heldout):
        by_speaker.setdefault(utterance.speaker, []).append(utterance)
    return by_speaker


def _reference(by_speaker: dict, speaker: str, text: str, fallback: Path | None) -> Path | None:
    """A held-out utterance of ``speaker`` that does not say ``text`` (the first in the filelist), else fallback."""
    utterances = by_speaker.get(speaker)
    if not utterances:
        raise ValueError(f"speaker {speaker!r} has no utterance in filelists/heldout.txt")
    others = [u for u in utterances if u.text.strip() != text.strip()]
    return Path(others[0].wav_path) if others else fallback


@dataclass(frozen=True)
class HeldOutUtterance:
    """One held-out recording for the quality section, with the reference chosen for it (absolute paths)."""

    id: str  # "<speaker>-<wav stem>": the cache folder under out/work/quality/
    speaker: str
    text: str
    wav: Path  # the ground truth
    reference: Path  # another held-out utterance of the speaker, with another text: ref1 of mode none


def load_quality_utterances(corpus_dir: str | Path, count: int) -> list[HeldOutUtterance]:
    """``count`` held-out utterances spread over the speakers (fewer when the corpus has fewer), deterministically.

    Speakers are taken in name order, round by round: each one's first utterance, then each one's second, ...; the
    last round, when only part of it fits, takes speakers evenly spaced over that order (4 of 6 voices: the 1st,
    3rd, 4th and 6th). Only utterances whose speaker has another held-out utterance with another text count: that
    one is the reference, so no content leaks into the style.

    Raises:
        FileNotFoundError: ``corpus_dir`` or its ``filelists/heldout.txt`` is missing.
        ValueError: no speaker has two held-out utterances with different texts.
    """
    root, (heldout,) = _corpus_files(corpus_dir, "filelists/heldout.txt")
    by_speaker = _heldout_by_speaker(heldout)
    usable = {}  # speaker -> [(utterance, its reference)] in file order
    for speaker in sorted(by_speaker):
        with_reference = [(u, _reference(by_speaker, speaker, u.text, fallback=None)) for u in by_speaker[speaker]]
        usable[speaker] = [(u, reference) for u, reference in with_reference if reference is not None]
    rounds = [[items[k] for items in usable.values() if k < len(items)]
              for k in range(max(len(items) for items in usable.values()))]
    chosen = []
    for members in rounds:
        room = count - len(chosen)
        if room <= 0:
            break
        chosen += members if len(members) <= room else [members[int((i + 0.5) * len(members) / room)]
                                                        for i in range(room)]
    if not chosen:
        raise ValueError(f"--corpus {root}: the quality section needs a speaker with two held-out utterances of "
                         "different texts in filelists/heldout.txt (one to judge, one as its voice reference)")
    return [HeldOutUtterance(cache_name(f"{u.speaker}-{Path(u.wav_path).stem}"), u.speaker, u.text,
                             Path(u.wav_path), reference) for u, reference in chosen]


def cache_name(name: str) -> str:
    """``name`` as a folder name under out/work/: characters other than letters, digits and ``+_.-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9+_.-]", "_", name)


def read_audio(path: Path) -> np.ndarray:
    """float32 mono samples of a 16-bit wav at 22050 Hz."""
    from melinterp.data.engines import read_wav

    audio, sample_rate = read_wav(path)
    if sample_rate != 22050:
        raise ValueError(f"{path}: expected 22050 Hz audio, got {sample_rate} Hz")
    return audio


# --------------------------------------------------------------------------------------------------------------
# Synthesis, cached under out/work/<pair>/<run>.{wav,npz}
# --------------------------------------------------------------------------------------------------------------

class _Synthesizer:
    """Runs the pipeline once per (pair, run name) and caches the waveform, mel and maps."""

    def __init__(self, pipeline, work_dir: Path, *, steps: int, seed: int, device: str):
        self.pipeline, self.work_dir, self.steps, self.seed, self.device = pipeline, work_dir, steps, seed, device

    def __call__(self, pair: Pair | HeldOutUtterance, name: str, ref1: Path, ref2: Path | None, *,
                 attention: bool = False, output_type: str = "np", **keywords) -> dict:
        """``{"audio": (N,), "mel": (n_mels, T), "routing_map": (n_mels, T) | None, "ref1_mass": ... | None}``;
        ``output_type="mel"`` skips the pipeline's vocoder and gives audio None."""
        path = self.work_dir / pair.id / f"{name}.npz"
        if path.is_file():
            with np.load(path) as cached:
                return {key: (cached[key] if cached[key].size else None) for key in cached.files}
        import torch

        from melinterp.utils import atomic_path

        result = self.pipeline(pair.text, str(ref1), None if ref2 is None else str(ref2),
                               num_inference_steps=self.steps, output_type=output_type, return_attention=attention,
                               generator=torch.Generator(device=self.device).manual_seed(self.seed), **keywords)
        frames = int(result.lengths[0])
        hop = self.pipeline.feature_config.hop_length

        def crop(maps):
            return np.zeros(0, np.float32) if maps is None else np.asarray(maps[0][:, :frames], np.float32)

        audio = np.zeros(0, np.float32) if result.audios is None else np.asarray(result.audios[0][: frames * hop],
                                                                                 np.float32)
        record = {"audio": audio, "mel": crop(result.mels),
                  "routing_map": crop(result.routing_map), "ref1_mass": crop(result.ref1_mass)}
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **record)
        return {key: (value if value.size else None) for key, value in record.items()}


# --------------------------------------------------------------------------------------------------------------
# Judges
# --------------------------------------------------------------------------------------------------------------

class _Judges:
    """The metrics of `melinterp.evaluation.metrics`, with each reference's numbers computed once.

    A metric that is undefined for an output (silent, nothing voiced, too short to embed: the metrics raise
    ValueError) gives NaN, and the reason is kept in `undefined` for the report.
    """

    def __init__(self):
        from melinterp.evaluation import metrics

        self.metrics = metrics
        self._speaker = self._dnsmos = self._recognizer = None
        self._semitones: dict[Path, float] = {}
        self.undefined: list[str] = []
        self.output = ""  # the output being judged, named in `undefined`

    def _measure(self, what: str, function, *args):
        try:
            return function(*args)
        except ValueError as error:  # the judges' "undefined for this audio"
            self.undefined.append(f"{self.output}: {what}: {error}")
            return None

    @property
    def speaker(self):
        """The speaker judge (`melinterp.evaluation.speaker.SpeakerSimilarity`), built on first use."""
        if self._speaker is None:
            self._speaker = self.metrics.SpeakerSimilarity()
        return self._speaker

    def similarity(self, audio, reference) -> float:
        """Speaker similarity (cosine of resemblyzer embeddings), NaN when either cannot be embedded."""
        value = self._measure("speaker similarity", self.speaker.similarity, audio, reference)
        return math.nan if value is None else float(value)

    def embed(self, audio) -> np.ndarray | None:
        """The speaker judge's embedding (D,) of a waveform at 22050 Hz, None when it cannot be embedded."""
        return self._measure("speaker embedding", self.speaker.embed, audio)

    def naturalness(self, audio) -> dict:
        """DNSMOS ``{"ovrl", "sig", "bak", "p808"}`` (1..5, `melinterp.evaluation.naturalness`), NaN each when the
        clip cannot be rated (silent, too short)."""
        from melinterp.evaluation.naturalness import DNSMOS, DNSMOS_KEYS

        if self._dnsmos is None:
            self._dnsmos = DNSMOS()
        return self._measure("DNSMOS", self._dnsmos.score, audio) or {key: math.nan for key in DNSMOS_KEYS}

    def transcribe(self, audio) -> str | None:
        """What pocketsphinx hears (`melinterp.evaluation.intelligibility`), None when the clip is too short."""
        from melinterp.evaluation.intelligibility import Recognizer

        if self._recognizer is None:
            self._recognizer = Recognizer()
        return self._measure("transcription", self._recognizer.transcribe, audio)

    def load_quality_judges(self) -> None:
        """Load DNSMOS, the recogniser and jiwer now, so that a missing package fails before the synthesis."""
        from melinterp.evaluation.intelligibility import Recognizer, word_error_rate
        from melinterp.evaluation.naturalness import DNSMOS

        self._dnsmos, self._recognizer = self._dnsmos or DNSMOS(), self._recognizer or Recognizer()
        _ = self._dnsmos.model, self._recognizer.decoder  # each is built on its first access
        word_error_rate(["loaded"], ["loaded"])  # imports jiwer

    def semitones(self, audio) -> float:
        """f0 median in semitones relative to 440 Hz (NaN when nothing is voiced)."""
        value = self._measure("f0 median", self.metrics.f0_median_semitones, audio)
        return math.nan if value is None else float(value)

    def parallel(self, audio, truth, *, f0: bool = True) -> dict:
        """MCD (dB) and, with ``f0``, log-f0 RMSE (semitones), f0 correlation and V/UV error against a parallel
        ground truth, from one WORLD analysis and DTW alignment of the two (about a second of CPU)."""
        alignment = self._measure("DTW alignment", self.metrics.align, audio, truth)
        mcd = f0_values = None
        if alignment is not None:
            mcd = self._measure("MCD", lambda: self.metrics.mcd(audio, truth, alignment=alignment))
            if f0:
                f0_values = self._measure("f0 metrics", lambda: self.metrics.f0_metrics(audio, truth,
                                                                                        alignment=alignment))
        f0 = f0_values or {}
        return {"mcd": math.nan if mcd is None else float(mcd),
                **{key: float(f0.get(key, math.nan)) for key in ("log_f0_rmse", "f0_correlation", "vuv_error")}}

    def reference_semitones(self, path: Path) -> float:
        if path not in self._semitones:
            self._semitones[path] = self.semitones(read_audio(path))
        return self._semitones[path]

    def follows(self, audio, own: Path, other: Path, own_audio, other_audio) -> dict:
        """How well ``audio`` follows ``own`` rather than ``other`` in pitch and in timbre."""
        st, st_own, st_other = self.semitones(audio), self.reference_semitones(own), self.reference_semitones(other)
        sim_own, sim_other = self.similarity(audio, own_audio), self.similarity(audio, other_audio)
        return {
            "f0_semitones": st, "pitch_transfer": abs(st - st_own),
            "pitch_closer": bool(abs(st - st_own) < abs(st - st_other)) if np.isfinite(st) else False,
            "similarity_own": sim_own, "similarity_other": sim_other, "timbre_score": sim_own - sim_other,
        }


def _transfer_figures(judges: _Judges, audio, pair: Pair, ref1_audio, ref2_audio, truth, *, f0: bool) -> dict:
    """Pitch of ref1, timbre of ref2: pitch transfer, timbre score, success and the distances to B at A's pitch."""
    pitch = judges.follows(audio, pair.ref1, pair.ref2, ref1_audio, ref2_audio)
    sim1, sim2 = pitch["similarity_own"], pitch["similarity_other"]
    return {"f0_semitones": pitch["f0_semitones"], "pitch_transfer": pitch["pitch_transfer"],
            "similarity_ref1": sim1, "similarity_ref2": sim2, "timbre_score": sim2 - sim1,
            "success": bool(pitch["pitch_closer"] and sim2 > sim1), **judges.parallel(audio, truth, f0=f0)}


def score_pair(pair: Pair, synthesize: _Synthesizer, judges: _Judges, *, alphas, figures: bool,
               transfer_f0: bool = True) -> dict:
    """Every mode's numbers for one pair (see the module docstring). ``transfer_f0=False`` skips the log-f0 RMSE
    of the transfer modes to B at A's pitch (``--quick``: it costs a DTW per output)."""
    ref1_audio, ref2_audio = read_audio(pair.ref1), read_audio(pair.ref2)
    a_truth, b_truth, b_at_a = read_audio(pair.a_wav), read_audio(pair.b_wav), read_audio(pair.b_at_a_wav)
    st1, st2 = judges.reference_semitones(pair.ref1), judges.reference_semitones(pair.ref2)
    result = {"id": pair.id, "text": pair.text, "ref1": str(pair.ref1), "ref2": str(pair.ref2),
              "ref1_semitones": st1, "ref2_semitones": st2, "reference_semitones_apart": abs(st1 - st2),
              "far": bool(abs(st1 - st2) >= FAR_SEMITONES), "modes": {}}
    modes = result["modes"]
    judges.undefined = []

    # none: each reference alone against its speaker's ground truth
    none = {}
    for side, ref, truth in (("ref1", pair.ref1, a_truth), ("ref2", pair.ref2, b_truth)):
        judges.output = f"none_{side}"
        audio = synthesize(pair, judges.output, ref, None, mode="none")["audio"]
        none[side] = judges.parallel(audio, truth)
    modes["none"] = none

    # the judges on the ground truth itself (B at A's pitch; A's first half then B's second half): the ceiling they
    # allow on this pair, so a success rate can be read against what a perfect system would score
    judges.output = "ground_truth"
    truth = judges.follows(b_at_a, pair.ref1, pair.ref2, ref1_audio, ref2_audio)
    truth_first = judges.follows(a_truth[: len(a_truth) // 2], pair.ref1, pair.ref2, ref1_audio, ref2_audio)
    truth_last = judges.follows(b_truth[len(b_truth) // 2:], pair.ref2, pair.ref1, ref2_audio, ref1_audio)
    modes["ground_truth"] = {
        "freq_success": bool(truth["pitch_closer"] and truth["similarity_other"] > truth["similarity_own"]),
        "temporal_success": bool(all(part["pitch_closer"] and part["timbre_score"] > 0
                                     for part in (truth_first, truth_last))),
        "timbre_score": truth["similarity_other"] - truth["similarity_own"],
    }

    # freq (three guidances) and dual_noise: pitch of ref1, timbre of ref2
    for name, keywords in TRANSFER_MODES.items():
        judges.output = name
        output = synthesize(pair, name, pair.ref1, pair.ref2, attention=figures and name == "freq_mask", **keywords)
        modes[name] = _transfer_figures(judges, output["audio"], pair, ref1_audio, ref2_audio, b_at_a,
                                        f0=transfer_f0)

    # temporal: each part follows its own reference
    judges.output = "temporal"
    output = synthesize(pair, "temporal", pair.ref1, pair.ref2, attention=figures, mode="temporal")
    audio, routing = output["audio"], output["routing_map"]
    weight_of_ref1 = routing.mean(axis=0)  # (T,)
    below = np.flatnonzero(weight_of_ref1 < 0.5)
    boundary = int(below[0]) if below.size else routing.shape[1]
    split = boundary * len(audio) // routing.shape[1]
    first = judges.follows(audio[:split], pair.ref1, pair.ref2, ref1_audio, ref2_audio)
    last = judges.follows(audio[split:], pair.ref2, pair.ref1, ref2_audio, ref1_audio)
    parts_follow = [part["pitch_closer"] and part["timbre_score"] > 0 for part in (first, last)]
    modes["temporal"] = {"boundary_frame": boundary, "frames": int(routing.shape[1]), "first": first, "last": last,
                         "pitch_transfer": (first["pitch_transfer"] + last["pitch_transfer"]) / 2,
                         "timbre_score": (first["timbre_score"] + last["timbre_score"]) / 2,
                         "success": bool(all(parts_follow))}

    # mix: sweep alpha; f0 should move from ref1's towards ref2's, similarity from ref1 towards ref2
    sweep = []
    for alpha in alphas:
        judges.output = f"mix_{alpha:.2f}"
        audio = synthesize(pair, judges.output, pair.ref1, pair.ref2, mode="mix", alpha=float(alpha))["audio"]
        sim1, sim2 = judges.similarity(audio, ref1_audio), judges.similarity(audio, ref2_audio)
        st = judges.semitones(audio)
        target = (1 - alpha) * st1 + alpha * st2  # the pitch a linear blend would have, semitones
        sweep.append({"alpha": float(alpha), "f0_semitones": st, "pitch_error": abs(st - target),
                      "similarity_ref1": sim1, "similarity_ref2": sim2, "timbre_score": sim2 - sim1})
    direction = 1.0 if st2 >= st1 else -1.0
    f0_rho = direction * _spearman(judges, [s["alpha"] for s in sweep], [s["f0_semitones"] for s in sweep])
    sim2_rho = _spearman(judges, [s["alpha"] for s in sweep], [s["similarity_ref2"] for s in sweep])
    timbre_rho = _spearman(judges, [s["alpha"] for s in sweep], [s["timbre_score"] for s in sweep])
    modes["mix"] = {"sweep": sweep, "f0_spearman": f0_rho, "similarity_ref2_spearman": sim2_rho,
                    "timbre_spearman": timbre_rho,
                    "pitch_transfer": float(np.nanmean([s["pitch_error"] for s in sweep])) if any(
                        np.isfinite(s["pitch_error"]) for s in sweep) else math.nan,
                    "timbre_score": timbre_rho,
                    "success": bool(np.isfinite(f0_rho) and np.isfinite(timbre_rho) and f0_rho > 0 and timbre_rho > 0)}
    result["undefined"] = list(dict.fromkeys(judges.undefined))  # metrics that could not be measured, and why
    return result


def _spearman(judges: _Judges, x, y) -> float:
    """Spearman correlation over the points where y is defined; NaN with fewer than 3 of them."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    defined = np.isfinite(y)
    if defined.sum() < 3:
        return math.nan
    return float(judges.metrics.spearman(x[defined], y[defined]))


# --------------------------------------------------------------------------------------------------------------
# Quality: naturalness, intelligibility and MCD of the ground truth, the vocoded ground truth and mode none
# --------------------------------------------------------------------------------------------------------------

def quality_vocoders(pipeline, device: str = "cpu", extra: dict | None = None) -> dict:
    """The vocoders the quality section compares, by name: ``griffin_lim`` (default settings for the pipeline's
    features) always, the pipeline's own vocoder, under its class name, when it is not a Griffin-Lim one, and the
    ``extra`` ones (name -> vocoder, e.g. `load_extra_vocoders`; ``evaluate --vocoder DIR``).

    Raises:
        ValueError: an extra vocoder's name is one of the others'.
    """
    from melinterp.models.vocoder import GriffinLimVocoder

    vocoders = {"griffin_lim": GriffinLimVocoder.from_feature_config(pipeline.feature_config).to(device).eval()}
    if not isinstance(pipeline.vocoder, GriffinLimVocoder):
        vocoders[type(pipeline.vocoder).__name__] = pipeline.vocoder
    for name, vocoder in (extra or {}).items():
        if name in vocoders:
            raise ValueError(f"--vocoder {name}: the quality section already has a vocoder named {name!r} (rename "
                             f"the folder)")
        vocoders[name] = vocoder
    return vocoders


#: ``evaluate --vocoder DIR@DTYPE``: the dtypes an extra vocoder may be loaded in (bfloat16 nearly halves a HiFi-GAN's
#: time on a CPU with bfloat16 instructions; what that costs is what the quality section then measures)
VOCODER_DTYPES = ("float32", "bfloat16", "float16")


def vocoder_spec(spec) -> tuple[Path, str | None, str]:
    """``evaluate --vocoder``'s value -> (folder, dtype name or None, the report's name for it).

    ``DIR`` loads the folder's vocoder in float32 under the folder's name; ``DIR@DTYPE`` (DTYPE one of
    `VOCODER_DTYPES`) loads it in that dtype under ``NAME@DTYPE``, so one run can set a vocoder beside itself at
    another precision. An ``@`` followed by anything else is part of the folder's path.
    """
    text = str(spec)
    folder, at, dtype = text.rpartition("@")
    if at and dtype in VOCODER_DTYPES and folder:
        return Path(folder), dtype, f"{Path(folder).name}@{dtype}"
    return Path(text), None, Path(text).name


def check_extra_vocoder_folders(folders) -> None:
    """``evaluate --vocoder DIR[@DTYPE]``'s checks that need no weights (run before the model loads): each is a
    vocoder folder (`vocoder_folder_class`), and no two share a name (`vocoder_spec`), since the report names each
    vocoder by its folder and dtype.

    Raises:
        ValueError: what is wrong, naming the folder.
    """
    from melinterp.models.vocoder import vocoder_folder_class

    names = set()
    for folder, _, name in map(vocoder_spec, folders):
        if name in names:
            raise ValueError(f"--vocoder {folder}: two vocoder folders are named {name!r}; the report names "
                             f"each vocoder by its folder (and @DTYPE)")
        names.add(name)
        try:
            vocoder_folder_class(folder)
        except ValueError as error:
            raise ValueError(f"--vocoder {error}") from error


def load_extra_vocoders(folders, feature_config, device: str = "cpu") -> dict:
    """``evaluate --vocoder DIR[@DTYPE]``: each vocoder folder (`load_vocoder_folder`: a `melinterp train-vocoder`
    or `melinterp convert-hifigan` output, a pipeline's ``vocoder/``) by its name (`vocoder_spec`), on ``device``
    in float32 or the dtype named.

    Raises:
        ValueError: not a vocoder folder, two folders of one name, or a vocoder of other mels, sample rate or hop
        than the pipeline's ``feature_config``.
    """
    import torch

    from melinterp.models.vocoder import feature_mismatch, load_vocoder_folder

    check_extra_vocoder_folders(folders)
    vocoders = {}
    for folder, dtype, name in map(vocoder_spec, folders):
        vocoder = load_vocoder_folder(folder, **({} if dtype is None else {"torch_dtype": getattr(torch, dtype)}))
        mismatch = feature_mismatch(vocoder, feature_config)
        if mismatch is not None:
            key, have, want = mismatch
            raise ValueError(f"--vocoder {folder}: its {key} is {have}, the model's features have {want}")
        vocoders[name] = vocoder.to(device).eval()
    return vocoders


SPLIT_ROWS = ("recording_phase", "recording_magnitude")  # see `phase_magnitude_split`


def splits_phase(vocoder) -> bool:
    """Whether a vocoder predicts STFT frames (``spectrum(mel)`` and ``from_spectrum(frames)``, as `VocosVocoder`
    does), so that the quality section can split its error into what its magnitudes and its phases cost."""
    return callable(getattr(vocoder, "spectrum", None)) and callable(getattr(vocoder, "from_spectrum", None))


def quality_rows(vocoders) -> list[str]:
    """The quality table's rows: the recording, the recording's mel through each vocoder (and, for an STFT-frame
    vocoder, its two `phase_magnitude_split` rows), mode none through each.

    ``vocoders``: names, or the name -> vocoder dict of `quality_vocoders` (only a dict says which vocoders split).
    """
    split = {name for name, vocoder in vocoders.items() if splits_phase(vocoder)} if isinstance(vocoders, dict) \
        else set()
    vocoded = [row for name in vocoders
               for row in (f"vocoded_gt/{name}", *(f"vocoded_gt/{name}:{part}" for part in SPLIT_ROWS
                                                   if name in split))]
    return ["ground_truth", *vocoded, *(f"none/{name}" for name in vocoders)]


def _vocoder_placement(vocoder):
    """(device, floating dtype) of a vocoder's weights; CPU float32 for one without floating weights (Griffin-Lim)."""
    import torch

    weight = next(itertools.chain(vocoder.parameters(), vocoder.buffers()), None)
    return (weight.device, weight.dtype) if weight is not None and weight.is_floating_point() else \
        (torch.device("cpu"), torch.float32)


def _vocoder_input(vocoder, mel, feature_config):
    """A natural-log mel (n_mels, T) as a (1, n_mels, T) tensor on the vocoder's device and in its dtype, clamped to
    +-ln(log_clamp) as the pipeline does before its vocoder."""
    import torch

    device, dtype = _vocoder_placement(vocoder)
    log_floor = float(np.log(feature_config.log_clamp))
    return torch.as_tensor(mel).to(device=device, dtype=dtype).clamp(log_floor, -log_floor)[None]


def vocode(vocoder, mel, feature_config) -> np.ndarray:
    """float32 waveform (T * hop_length,) of a natural-log mel (n_mels, T) by any module mel (B, n_mels, T) ->
    waveform (B, T * hop_length), on the vocoder's device; the mel is clamped to +-ln(log_clamp) first, as the
    pipeline does before its vocoder."""
    import torch

    with torch.no_grad():
        audio = vocoder(_vocoder_input(vocoder, mel, feature_config))[0]  # (T * hop_length,)
    return audio.float().cpu().numpy()


def phase_magnitude_split(vocoder, truth: np.ndarray, mel, feature_config,
                          vocoded: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Where a vocoder with an inverse STFT of its own (`splits_phase`) loses, on one recording: the STFT of its
    output from the recording's mel (n_mels, T), the front end's framing, half of it swapped for the recording's own
    STFT before the inverse STFT.

    It splits the output's STFT, not the frames an STFT-frame vocoder predicts: those need not be a consistent STFT
    (the bundled Vocos's carry about twice the recording's energy, mostly where the recording is quiet, which its
    overlap-add cancels), and what is heard is the output. ``vocoded``: that output (T * hop_length,), when already
    made (`vocode`).

    Returns float32 waveforms (T * hop_length,): ``recording_phase``, the output's magnitudes with the recording's
    phases (what the magnitudes alone cost), and ``recording_magnitude``, the recording's magnitudes with the
    output's phases (what the phases alone cost). Judged beside ``vocoded_gt`` and the ground truth, they say which
    half of the vocoder to improve.
    """
    import torch

    from melinterp.audio import stft

    if vocoded is None:
        vocoded = vocode(vocoder, mel, feature_config)
    output = stft(torch.as_tensor(vocoded, dtype=torch.float32)[None], feature_config)  # (1, n_freq, T)
    recording = stft(torch.as_tensor(truth, dtype=torch.float32)[None], feature_config)[..., :output.shape[-1]]
    unit = lambda frames: frames / frames.abs().clamp(min=1e-9)  # noqa: E731 (the phase as a unit complex)
    swapped = {"recording_phase": output.abs() * unit(recording),
               "recording_magnitude": recording.abs() * unit(output)}
    device, _ = _vocoder_placement(vocoder)
    with torch.no_grad():
        return {part: vocoder.from_spectrum(frames.to(device))[0].float().cpu().numpy()
                for part, frames in swapped.items()}


def score_quality_utterance(item: HeldOutUtterance, synthesize: _Synthesizer, judges: _Judges, vocoders: dict,
                            feature_config) -> dict:
    """DNSMOS, transcript, WER and MCD to the recording for every row of `quality_rows` on one utterance.

    The ground truth's mel and mode none's mel (the utterance's text in the voice of its reference, synthesised
    once) go through every vocoder, so the vocoders are compared on the same mels.
    """
    from melinterp.audio import mel_spectrogram
    from melinterp.evaluation.intelligibility import word_error_rate

    truth = read_audio(item.wav)
    judges.undefined = []

    def judge(name: str, audio) -> dict:
        judges.output = name
        transcript = judges.transcribe(audio)
        return {**judges.naturalness(audio), "transcript": transcript,
                "wer": word_error_rate([item.text], [transcript or ""]),  # no words heard: all deleted
                "mcd": None if name == "ground_truth" else judges.parallel(audio, truth, f0=False)["mcd"]}

    outputs = {"ground_truth": judge("ground_truth", truth)}
    truth_mel = mel_spectrogram(truth, feature_config)  # (n_mels, T)
    for name, vocoder in vocoders.items():
        vocoded = vocode(vocoder, truth_mel, feature_config)
        outputs[f"vocoded_gt/{name}"] = judge(f"vocoded_gt/{name}", vocoded)
        if splits_phase(vocoder):
            for part, audio in phase_magnitude_split(vocoder, truth, truth_mel, feature_config, vocoded).items():
                outputs[f"vocoded_gt/{name}:{part}"] = judge(f"vocoded_gt/{name}:{part}", audio)
    mel = synthesize(item, "none", item.reference, None, mode="none", output_type="mel")["mel"]  # (n_mels, T)
    for name, vocoder in vocoders.items():
        outputs[f"none/{name}"] = judge(f"none/{name}", vocode(vocoder, mel, feature_config))
    return {"id": item.id, "speaker": item.speaker, "text": item.text, "wav": str(item.wav),
            "reference": str(item.reference), "outputs": outputs,
            "undefined": list(dict.fromkeys(judges.undefined))}


def voice_of(speaker: str) -> str:
    """The voice of a speaker: a make-corpus speaker without its pitch and rate settings ("flite-awb_p0.80_s1.10" ->
    "flite-awb"), any other name as it is. WER judges whether the recogniser reads a *voice*, over all its
    settings: one utterance a speaker is too few to decide on."""
    return SPEAKER_SETTINGS.sub("", speaker) or speaker


def comparison_pairs(vocoders, own: str | None = None) -> list[tuple[str, str]]:
    """The (row, baseline) pairs whose paired differences the quality section reports, for the vocoders of
    `quality_vocoders` (as `quality_rows` takes them, griffin_lim first): every row against the ground truth; each
    other vocoder against Griffin-Lim on the same mels (the recordings' and mode none's); and each vocoder but
    ``own`` (the pipeline's, when it has one) against ``own``, the question before swapping it in."""
    rows = quality_rows(vocoders)
    pairs = [(row, "ground_truth") for row in rows if row != "ground_truth"]
    neural = [name for name in vocoders if name != "griffin_lim"]
    for baseline, challengers in (("griffin_lim", neural), (own, [name for name in neural if name != own])):
        if baseline is not None:
            pairs += [(f"{kind}/{name}", f"{kind}/{baseline}")
                      for name in challengers for kind in ("vocoded_gt", "none")]
    return pairs


def aggregate_quality(utterances: list[dict], rows: list[str], wer_voice_limit: float = WER_VOICE_LIMIT,
                      comparisons: list[tuple[str, str]] | None = None) -> dict:
    """Per row: DNSMOS means over all utterances with their range over the voices' means, WER over the voices the
    recogniser can read, mean MCD; per voice: the DNSMOS means and WER of every row; the voices left out of WER; per
    (row, baseline) of ``comparisons`` (default: every row against the ground truth; `comparison_pairs`), the
    paired difference with its bootstrap interval (`melinterp.evaluation.intervals.paired_differences`).

    WER pools words (errors / reference words) over the utterances of the voices whose ground-truth WER is below
    ``wer_voice_limit``: on a voice the recogniser cannot read, an output's WER says nothing about the output.
    """
    from melinterp.evaluation.intelligibility import word_error_rate
    from melinterp.evaluation.naturalness import DNSMOS_KEYS

    def pooled_wer(items, row):
        if not items:
            return None
        return word_error_rate([u["text"] for u in items], [u["outputs"][row]["transcript"] or "" for u in items])

    by_voice: dict[str, list] = {}
    for utterance in utterances:
        by_voice.setdefault(voice_of(utterance["speaker"]), []).append(utterance)
    voices = {voice: {"n_utterances": len(items), "wer": {row: pooled_wer(items, row) for row in rows},
                      **{key: {row: _mean([u["outputs"][row][key] for u in items]) for row in rows}
                         for key in DNSMOS_KEYS}}
              for voice, items in sorted(by_voice.items())}
    readable = [voice for voice, entry in voices.items() if entry["wer"]["ground_truth"] < wer_voice_limit]
    left_out = [{"speaker": speaker, "ground_truth_wer": voice["wer"]["ground_truth"],
                 "reason": f"ground-truth WER {_cell(voice['wer']['ground_truth'], -1)} is not under "
                           f"{_cell(wer_voice_limit, -1)}: the recogniser cannot read this voice"}
                for speaker, voice in voices.items() if speaker not in readable]
    heard = [u for u in utterances if voice_of(u["speaker"]) in readable]
    table = {}
    for row in rows:
        entry = {"n_utterances": len(utterances), "n_wer_utterances": len(heard)}
        for key in DNSMOS_KEYS:
            per_voice = [voice[key][row] for voice in voices.values() if voice[key][row] is not None]
            entry[key] = _mean([u["outputs"][row][key] for u in utterances])
            entry[f"{key}_voice_range"] = [min(per_voice), max(per_voice)] if per_voice else None
        entry["wer"] = pooled_wer(heard, row)
        entry["mcd"] = _mean([u["outputs"][row]["mcd"] for u in utterances])
        table[row] = entry
    from melinterp.evaluation.intervals import paired_differences

    if comparisons is None:
        comparisons = [(row, "ground_truth") for row in rows if row != "ground_truth"]
    return {"rows": table, "row_order": list(rows), "voices": voices, "wer_voices": readable, "left_out": left_out,
            "wer_voice_limit": wer_voice_limit, "differences": paired_differences(utterances, comparisons, heard)}


def quality_markdown(quality: dict) -> list[str]:
    """report.md's quality section: the table of rows, the voices WER leaves out, WER and OVRL per voice."""
    voices = quality["voices"]
    rows = {name: quality["rows"][name] for name in quality["row_order"]}  # report.json sorts the keys

    def dnsmos(entry, key):
        spread = entry[f"{key}_voice_range"]
        return _cell(entry[key]) + ("" if spread is None or len(voices) < 2 else
                                    f" ({_cell(spread[0])}–{_cell(spread[1])})")

    lines = [
        "## Quality", "",
        f"{quality['n_utterances']} held-out utterances of {len(voices)} voices. DNSMOS (speechmos; 1..5, higher "
        "is better): mean over the utterances, in brackets the range of the voices' means. WER (pocketsphinx en-US) "
        f"over the voices whose ground-truth WER is under {_cell(quality['wer_voice_limit'], -1)}. MCD (dB) to the "
        "recording. `vocoded_gt/V`: the recording's mel through vocoder V; `none/V`: mode none (the text in the "
        "voice of another utterance of the speaker) through V."
        + (" `vocoded_gt/V:recording_phase`: the STFT magnitudes of V's output with the recording's phases (what "
           "V's magnitudes alone cost); `vocoded_gt/V:recording_magnitude`: the recording's magnitudes with V's "
           "output's phases (what its phases alone cost)." if any(":" in name for name in rows) else ""), "",
        "| output | DNSMOS OVRL | SIG | BAK | P808 | WER | MCD (dB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, entry in rows.items():
        lines.append(f"| {name} | {' | '.join(dnsmos(entry, key) for key in ('ovrl', 'sig', 'bak', 'p808'))} | "
                     f"{_cell(entry['wer'], -1)} | {_cell(entry['mcd'])} |")
    differences = quality.get("differences")  # reports written before the intervals have none
    if differences:
        from melinterp.evaluation.intervals import LEVEL, RESAMPLES

        lines += ["", f"Paired differences on the same utterances (output minus what it is set against), and in "
                      f"brackets their {LEVEL:.0%} interval by a bootstrap over the utterances ({RESAMPLES:,} "
                      "resamples; `melinterp.evaluation.intervals`). An interval that holds 0 is a difference these "
                      "utterances cannot tell from chance.", "",
                  "| output | against | DNSMOS OVRL | WER (points) |", "| --- | --- | ---: | ---: |"]
        lines += [f"| {entry['row']} | {entry['baseline']} | {_interval(entry['ovrl'], 1, 2)} | "
                  f"{_interval(entry['wer'], 100, 1)} |" for entry in differences]
    left_out = "; ".join(f"{voice['speaker']} (ground-truth WER {_cell(voice['ground_truth_wer'], -1)})"
                         for voice in quality["left_out"])
    lines += ["", f"WER voices: {', '.join(quality['wer_voices']) or 'none'}. Left out of WER (the recogniser "
              f"cannot read their own recordings): {left_out or 'none'}.", "",
              "| voice | n | " + " | ".join(f"WER {name}" for name in rows) + " |",
              "| --- | ---: | " + " | ".join("---:" for _ in rows) + " |"]
    for speaker, voice in voices.items():
        mark = "" if speaker in quality["wer_voices"] else " (left out)"
        lines.append(f"| {speaker}{mark} | {voice['n_utterances']} | "
                     + " | ".join(_cell(voice["wer"][name], -1) for name in rows) + " |")
    if len(voices) > 1:  # a mean over the voices can hide the one an output loses on
        lines += ["", "DNSMOS OVRL per voice (mean over its utterances):", "",
                  "| output | " + " | ".join(voices) + " |", "| --- | " + " | ".join("---:" for _ in voices) + " |"]
        lines += [f"| {name} | " + " | ".join(_cell(voice["ovrl"][name]) for voice in voices.values()) + " |"
                  for name in rows]
    return lines + [""]


# --------------------------------------------------------------------------------------------------------------
# Aggregates, report, figures
# --------------------------------------------------------------------------------------------------------------

def _mean(values) -> float | None:
    values = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None


def aggregate(pairs: list[dict]) -> dict:
    """Per mode: n pairs, success rate (far pairs only), mean pitch transfer, timbre score, MCD and more."""
    table = {}
    none = [p["modes"]["none"] for p in pairs]
    table["none"] = {"n_pairs": len(pairs), "success_rate": None, "pitch_transfer": None, "timbre_score": None,
                     "mcd": _mean([n[s]["mcd"] for n in none for s in ("ref1", "ref2")]),
                     "log_f0_rmse": _mean([n[s]["log_f0_rmse"] for n in none for s in ("ref1", "ref2")]),
                     "mcd_ref1": _mean([n["ref1"]["mcd"] for n in none]),
                     "mcd_ref2": _mean([n["ref2"]["mcd"] for n in none])}
    far = [p for p in pairs if p["far"]]
    for name in (*TRANSFER_MODES, "temporal", "mix"):
        numbers = [p["modes"][name] for p in pairs]
        row = {"n_pairs": len(pairs), "n_far_pairs": len(far),
               "success_rate": _mean([float(p["modes"][name]["success"]) for p in far]),
               "pitch_transfer": _mean([n["pitch_transfer"] for n in numbers]),
               "timbre_score": _mean([n["timbre_score"] for n in numbers]),
               "mcd": _mean([n.get("mcd") for n in numbers])}
        if name in TRANSFER_MODES:
            row["log_f0_rmse"] = _mean([n["log_f0_rmse"] for n in numbers])
        if name == "mix":
            row.update({key: _mean([n[key] for n in numbers])
                        for key in ("f0_spearman", "similarity_ref2_spearman", "timbre_spearman")})
            # on references of nearly one pitch the f0 has no direction to move in: the far pairs alone
            row["f0_spearman_far"] = _mean([p["modes"]["mix"]["f0_spearman"] for p in far])
        table[name] = row
    truths = [p["modes"]["ground_truth"] for p in far if "ground_truth" in p["modes"]]
    if truths:
        table["ground_truth"] = {"n_far_pairs": len(truths),
                                 "freq_success_rate": _mean([float(t["freq_success"]) for t in truths]),
                                 "temporal_success_rate": _mean([float(t["temporal_success"]) for t in truths])}
    return table


def _interval(entry: dict | None, scale: float, digits: int) -> str:
    """``+0.12 [-0.03, +0.27]`` of a `paired_bootstrap` result times ``scale``; ``–`` for none."""
    if entry is None:
        return "–"
    return (f"{scale * entry['difference']:+.{digits}f} [{scale * entry['low']:+.{digits}f}, "
            f"{scale * entry['high']:+.{digits}f}]")


def _cell(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.0f} %" if digits == -1 else f"{value:.{digits}f}"


def report_markdown(report: dict) -> str:
    """report.md: one row per mode (section modes), one per output kind (section quality), one per held-out voice
    (section identity)."""
    config = report["config"]
    lines = ["# melinterp evaluate", "",
             f"model `{config['model']}`, corpus `{config['corpus']}`, {config['steps']} steps, "
             f"seed {config['seed']}{', quick' if config['quick'] else ''}.", ""]
    if "aggregates" in report:
        lines += _modes_markdown(report)
    if "quality" in report:
        lines += quality_markdown(report["quality"])
    if "identity" in report:
        from melinterp.evaluation.identity import identity_markdown

        lines += identity_markdown(report["identity"])
    return "\n".join(lines)


def _modes_markdown(report: dict) -> list[str]:
    config, table = report["config"], report["aggregates"]
    lines = [
        "## Interpolation modes", "",
        f"{config['n_pairs']} pairs ({config['n_far_pairs']} at least {FAR_SEMITONES:g} semitones apart). "
        "Pitch transfer: |f0 median(output) - f0 median(pitch reference)| in semitones (lower is better). "
        "Timbre score: similarity to the timbre reference minus similarity to the other (higher is better); "
        "for mix it is the Spearman correlation of that difference with alpha. MCD (dB) to the parallel ground "
        "truth: A or B for none, B at A's pitch otherwise. Success rate on the far pairs only.", "",
        "| mode | n pairs | success rate | pitch transfer (st) | timbre score | MCD (dB) | log-f0 RMSE |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in MODE_ORDER:
        row = table[name]
        lines.append(f"| {name} | {row['n_pairs']} | {_cell(row['success_rate'], -1)} | "
                     f"{_cell(row['pitch_transfer'])} | {_cell(row['timbre_score'], 3)} | {_cell(row['mcd'])} | "
                     f"{_cell(row.get('log_f0_rmse'), 3)} |")
    mix = table["mix"]
    lines += ["", f"Mix sweep over alpha = {', '.join(f'{a:g}' for a in config['alphas'])}: Spearman correlation "
              f"with alpha of the f0 median (towards ref2) {_cell(mix['f0_spearman'])}, of similarity to ref2 "
              f"{_cell(mix['similarity_ref2_spearman'])}, of the timbre score {_cell(mix['timbre_spearman'])}; "
              f"of the f0 median on the far pairs alone {_cell(mix.get('f0_spearman_far'))}.", ""]
    truth = table.get("ground_truth")
    if truth:
        lines += [f"The same judges on the ground truth itself (B at A's pitch; A's first half then B's second half), "
                  f"on the {truth['n_far_pairs']} far pairs: freq success {_cell(truth['freq_success_rate'], -1)}, "
                  f"temporal success {_cell(truth['temporal_success_rate'], -1)}: the ceiling these judges allow.", ""]
    return lines


def plot_pair(pair: Pair, synthesize: _Synthesizer, path: Path) -> Path:
    """PNG: f0 contours of the outputs and references, the freq_mask and temporal mels and their ref1_mass maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from melinterp.audio import extract_f0
    from melinterp.utils import save_figure

    outputs = {name: synthesize(pair, name, pair.ref1, pair.ref2) for name in ("freq_mask", "temporal")}
    fig, axes = plt.subplots(2, 3, figsize=(16, 7))
    for row, (name, output) in enumerate(outputs.items()):
        ax = axes[row, 0]
        for label, audio, style in (("output", output["audio"], "k-"), ("ref1 (pitch)", read_audio(pair.ref1), "b:"),
                                    ("ref2 (timbre)", read_audio(pair.ref2), "r:")):
            f0 = extract_f0(audio, method="dio")
            ax.plot(np.where(f0 > 0, f0, np.nan), style, label=label)
        ax.set_title(f"{name}: f0 (Hz)")
        ax.set_xlabel("frame")
        ax.legend(fontsize=7)
        for col, (title, key, cmap, limits) in enumerate((("log-mel", "mel", "magma", (None, None)),
                                                          ("attention share to ref1", "ref1_mass", "coolwarm",
                                                           (0.0, 1.0))), start=1):
            ax = axes[row, col]
            ax.set_title(f"{name}: {title}")
            values = output[key]
            if values is None:
                ax.text(0.5, 0.5, "not captured", ha="center", va="center", transform=ax.transAxes)
                continue
            image = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, vmin=limits[0], vmax=limits[1])
            fig.colorbar(image, ax=ax)
    fig.suptitle(f"pair {pair.id}: {pair.text}")
    fig.tight_layout()
    return save_figure(fig, path, dpi=80)


# --------------------------------------------------------------------------------------------------------------
# The Python API and the command
# --------------------------------------------------------------------------------------------------------------

def evaluate(pipeline, corpus_dir, out_dir, *, quick: bool = False, steps: int | None = None, seed: int = 0,
             max_pairs: int | None = None, progress: bool = True, device: str = "cpu", model_name: str = "",
             sections=DEFAULT_SECTIONS, quality_utterances: int | None = None,
             wer_voice_limit: float = WER_VOICE_LIMIT, identity_clips: int | None = None,
             identity_enrol: int | None = None, identity_pitch: str = "own", training_corpus=None,
             extra_vocoders: dict | None = None) -> dict:
    """Score ``pipeline`` on the corpus's held-out voices; write report.json, report.md and figures.

    Args:
        pipeline: a `MelStyleInterpolationPipeline`.
        corpus_dir: a folder made by ``melinterp make-corpus`` (held-out filelist; triplets.jsonl for "modes").
        out_dir: where the report goes; ``out_dir/work`` caches outputs, so a rerun resumes.
        quick: 2 pairs, 3 steps, 3 alphas, no log-f0 RMSE for the transfer modes, 4 quality utterances, 1 identity
            clip a voice (for CI).
        steps: denoising steps (default 10, or 3 with ``quick``).
        seed: seed of the prior noise, the same for every output.
        max_pairs: at most this many triplets (default all, or 2 with ``quick``).
        progress: show a tqdm bar.
        sections: any of "modes" (every interpolation mode on the triplets), "quality" (DNSMOS, WER and MCD of
            the ground truth, the vocoded ground truth and mode none, per vocoder) and "identity" (is mode none
            nearest its own voice's centroid: `melinterp.evaluation.identity`); default modes and quality.
        quality_utterances: held-out utterances the quality section scores (default 16, or 4 with ``quick``).
        wer_voice_limit: WER counts the voices whose ground-truth WER is under this (default 0.25).
        identity_clips: reference clips a held-out voice in the identity section (default 4, or 1 with ``quick``).
        identity_enrol: recordings a voice's centroid is made of (default 5, as check-voices').
        identity_pitch: "own" (clips and enrolment at each voice's own pitch) or "all" (every pitch setting).
        training_corpus: the corpus whose training voices the identity section tells the held-out ones from
            (default the corpus itself, or its parent for ``CORPUS/novel``).
        extra_vocoders: name -> vocoder, compared in the quality section beside Griffin-Lim and the pipeline's own
            (`load_extra_vocoders`).
    Returns:
        The report (as written to report.json).
    """
    from melinterp.utils import atomic_path, read_json_file, write_json

    sections = (sections,) if isinstance(sections, str) else tuple(sections)
    unknown = [name for name in sections if name not in SECTIONS]
    if unknown or not sections:
        raise ValueError(f"--sections must name one or more of {', '.join(SECTIONS)}, got {list(sections)}")
    steps = steps if steps is not None else QUICK_STEPS if quick else DEFAULT_STEPS
    if steps < 1:
        raise ValueError(f"--steps must be a positive number of denoising steps, got {steps}")
    if max_pairs is None and quick:
        max_pairs = QUICK_PAIRS
    if max_pairs is not None and max_pairs < 1:
        raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
    if quality_utterances is None:
        quality_utterances = QUICK_QUALITY_UTTERANCES if quick else QUALITY_UTTERANCES
    if quality_utterances < 1:
        raise ValueError(f"--quality-utterances must be >= 1, got {quality_utterances}")
    if not 0.0 < wer_voice_limit <= 1.0 or not math.isfinite(wer_voice_limit):
        raise ValueError(f"--wer-voice-limit must be a word error rate in (0, 1], got {wer_voice_limit}")
    # a bad corpus, or a mode the package no longer has, fails before anything is synthesised
    if "modes" in sections:
        _check_modes(QUICK_ALPHAS if quick else FULL_ALPHAS)
    pairs = load_pairs(corpus_dir, max_pairs) if "modes" in sections else []
    utterances = load_quality_utterances(corpus_dir, quality_utterances) if "quality" in sections else []
    identity_set = _identity_set(corpus_dir, quick, identity_clips, identity_enrol, identity_pitch,
                                 training_corpus) if "identity" in sections else None
    out_dir = Path(out_dir)
    work_dir = out_dir / "work"

    # The cache is only valid for the settings that made it
    settings = {"model": model_name, "corpus": str(Path(corpus_dir).resolve()), "steps": steps, "seed": seed}
    settings_path = work_dir / "settings.json"
    if settings_path.is_file():
        previous = read_json_file(settings_path, "--out")
        if previous != settings:
            raise ValueError(f"{work_dir} caches outputs made with {previous}, not {settings}: pass another --out, "
                             f"or delete {work_dir} to start again")
    write_json(settings_path, settings)

    pipeline.set_progress_bar_config(disable=True)
    judges = _Judges()
    if "quality" in sections:
        judges.load_quality_judges()  # a missing judge fails now, not after the modes section
    report = {"config": {**settings, "quick": quick, "sections": [name for name in SECTIONS if name in sections],
                         "judges": {"f0": "pyworld (melinterp.evaluation.metrics)", "speaker": "resemblyzer",
                                    "mcd": "mel-cepstral distortion with DTW", "naturalness": "DNSMOS (speechmos)",
                                    "intelligibility": "pocketsphinx en-US, WER by jiwer"}}}
    if "modes" in sections:
        alphas = QUICK_ALPHAS if quick else FULL_ALPHAS
        results = _evaluate_modes(pairs, _Synthesizer(pipeline, work_dir, steps=steps, seed=seed, device=device),
                                  judges, out_dir, alphas=alphas, transfer_f0=not quick, progress=progress)
        report["config"].update({"alphas": list(alphas), "n_pairs": len(results),
                                 "n_far_pairs": sum(r["far"] for r in results), "far_semitones": FAR_SEMITONES})
        report.update({"pairs": results, "aggregates": aggregate(results)})
    if "quality" in sections:
        vocoders = quality_vocoders(pipeline, device, extra_vocoders)
        synthesize = _Synthesizer(pipeline, work_dir / "quality", steps=steps, seed=seed, device=device)
        results = _evaluate_quality(utterances, synthesize, judges, vocoders, pipeline.feature_config,
                                    progress=progress)
        own = next((name for name in vocoders if name != "griffin_lim" and name not in (extra_vocoders or {})), None)
        report["quality"] = {"n_utterances": len(results), "vocoders": list(vocoders),
                             **aggregate_quality(results, quality_rows(vocoders), wer_voice_limit,
                                                 comparison_pairs(vocoders, own)),
                             "utterances": results}
    if "identity" in sections:
        from melinterp.evaluation.identity import evaluate_identity

        synthesize = _Synthesizer(pipeline, work_dir / "identity", steps=steps, seed=seed, device=device)
        report["identity"] = evaluate_identity(identity_set, synthesize, judges, progress=progress)
    report = _finite_or_none(report)
    write_json(out_dir / "report.json", report)
    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text(report_markdown(report), encoding="utf-8")
    return report


def _identity_set(corpus_dir, quick: bool, clips: int | None, enrol: int | None, pitch: str, training_corpus):
    """`melinterp.evaluation.identity.load_identity_set` with evaluate's defaults."""
    from melinterp.evaluation.identity import IDENTITY_CLIPS, QUICK_IDENTITY_CLIPS, load_identity_set
    from melinterp.evaluation.voices import DEFAULT_ENROL

    clips = clips if clips is not None else QUICK_IDENTITY_CLIPS if quick else IDENTITY_CLIPS
    return load_identity_set(corpus_dir, clips=clips, enrol=DEFAULT_ENROL if enrol is None else enrol, pitch=pitch,
                             training_corpus=training_corpus)


def _check_modes(alphas) -> None:
    """Every pipeline call `score_pair` makes names a strategy of `melinterp.guidance.STRATEGIES` with options it
    accepts (`make_strategy` raises the pipeline's own ValueError otherwise)."""
    from melinterp.guidance import ModeOptions, make_strategy

    calls = [{"mode": "none"}, *TRANSFER_MODES.values(), {"mode": "temporal"},
             *({"mode": "mix", "alpha": float(alpha)} for alpha in alphas)]
    for keywords in calls:
        options = dict(keywords)
        make_strategy(options.pop("mode"), ModeOptions(**options))


def _evaluate_modes(pairs: list[Pair], synthesize: _Synthesizer, judges: _Judges, out_dir: Path, *, alphas,
                    transfer_f0: bool, progress: bool) -> list[dict]:
    """`score_pair` for every pair, each result cached in out/work/<pair>/result.json; figures of the first pairs."""
    from tqdm.auto import tqdm

    results = []
    for index, pair in enumerate(tqdm(pairs, desc="evaluate", unit="pair", disable=not progress)):
        result = _cached_result(synthesize.work_dir / pair.id / "result.json", lambda: score_pair(
            pair, synthesize, judges, alphas=alphas, figures=index < FIGURE_PAIRS, transfer_f0=transfer_f0))
        results.append(result)
        figure = out_dir / "figures" / f"pair_{pair.id}.png"
        if index < FIGURE_PAIRS and not figure.is_file():
            plot_pair(pair, synthesize, figure)
    return results


def _evaluate_quality(utterances: list[HeldOutUtterance], synthesize: _Synthesizer, judges: _Judges,
                      vocoders: dict, feature_config, *, progress: bool) -> list[dict]:
    """`score_quality_utterance` for every utterance, each cached in out/work/quality/<id>/result.json (scored
    again, from the cached mel, when the vocoders have changed)."""
    from tqdm.auto import tqdm

    rows = set(quality_rows(vocoders))
    results = []
    for item in tqdm(utterances, desc="quality", unit="utterance", disable=not progress):
        path = synthesize.work_dir / item.id / "result.json"
        if path.is_file() and set(json.loads(path.read_text(encoding="utf-8"))["outputs"]) != rows:
            path.unlink()
        results.append(_cached_result(path, lambda: score_quality_utterance(item, synthesize, judges, vocoders,
                                                                            feature_config)))
    return results


def _cached_result(path: Path, score) -> dict:
    """The JSON at ``path``, or ``score()`` written there first (NaN as null, atomically) and read back."""
    from melinterp.utils import write_json

    if not path.is_file():
        write_json(path, _finite_or_none(score()))
    return json.loads(path.read_text(encoding="utf-8"))


def _finite_or_none(value):
    """NaN and infinities become None, so report.json is strict JSON."""
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def load_model(model: str | Path):
    """A saved pipeline folder (model_index.json) or a training output folder (`from_training_output`)."""
    from melinterp.pipelines import MelStyleInterpolationPipeline
    from melinterp.pipelines.hub import load_pipeline

    path = Path(model)
    if path.is_dir() and not (path / "model_index.json").is_file():
        if not (path / "unet").is_dir():
            raise ValueError(f"--model {path}: expected a pipeline folder (model_index.json) or a training output "
                             "folder (text_encoder/, style_encoder/, unet/, ...), found neither")
        try:
            return MelStyleInterpolationPipeline.from_training_output(path)
        except OSError as error:
            raise ValueError(f"--model {path}: not a complete training output folder: {error}") from error
    return load_pipeline(model, option="--model")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="a pipeline folder (save_pretrained) or a training output folder")
    parser.add_argument("--corpus", type=Path, required=True, metavar="DIR",
                        help="a corpus made by `melinterp make-corpus` (held-out filelist and triplets.jsonl)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="report folder (an existing one is resumed)")
    from melinterp.evaluation.identity import IDENTITY_CLIPS, PITCHES, QUICK_IDENTITY_CLIPS
    from melinterp.evaluation.voices import DEFAULT_ENROL

    parser.add_argument("--quick", action="store_true",
                        help=f"for CI: 2 pairs, 3 steps, 3 alphas, {QUICK_QUALITY_UTTERANCES} quality utterances, "
                             f"{QUICK_IDENTITY_CLIPS} identity clip a voice")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(DEFAULT_SECTIONS),
                        help="modes: every interpolation mode on the triplets; quality: DNSMOS, WER and MCD of the "
                             "ground truth, the vocoded ground truth and mode none, per vocoder; identity: is mode "
                             "none nearest its own voice among all training and held-out voices' speaker-judge "
                             f"centroids (default: {' '.join(DEFAULT_SECTIONS)})")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"denoising steps (default {DEFAULT_STEPS}, {QUICK_STEPS} with --quick)")
    parser.add_argument("--max-pairs", type=int, default=None, help="at most this many triplets (default all)")
    parser.add_argument("--wer-voice-limit", type=float, default=WER_VOICE_LIMIT, metavar="RATE",
                        help=f"quality: WER counts the voices whose ground-truth WER is under this (default "
                             f"{WER_VOICE_LIMIT}); the report names the voices left out")
    parser.add_argument("--quality-utterances", type=int, default=None, metavar="N",
                        help=f"held-out utterances the quality section scores (default {QUALITY_UTTERANCES}, "
                             f"{QUICK_QUALITY_UTTERANCES} with --quick)")
    parser.add_argument("--identity-clips", type=int, default=None, metavar="N",
                        help=f"identity: reference clips a held-out voice, each one output of mode none (default "
                             f"{IDENTITY_CLIPS}, {QUICK_IDENTITY_CLIPS} with --quick)")
    parser.add_argument("--identity-enrol", type=int, default=None, metavar="E",
                        help=f"identity: recordings a voice's centroid is made of (default {DEFAULT_ENROL}); a "
                             "held-out voice's are none of those its outputs use")
    parser.add_argument("--identity-pitch", choices=PITCHES, default="own",
                        help="identity: clips and enrolment at each voice's own pitch (default, as check-voices) or "
                             "over all its pitch settings")
    parser.add_argument("--training-corpus", type=Path, default=None, metavar="DIR",
                        help="identity: the corpus whose training voices' centroids the outputs are told from "
                             "(default --corpus, or its parent folder for CORPUS/novel)")
    parser.add_argument("--vocoder", action="append", default=[], metavar="DIR[@DTYPE]",
                        help="quality: another vocoder folder to compare beside Griffin-Lim and the model's own (a "
                             "`convert-hifigan` or `train-vocoder` output), named by its folder; DIR@bfloat16 (or "
                             "@float16, @float32) loads it in that dtype, named NAME@bfloat16; repeatable")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior noise (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from melinterp.utils import check_writable_folder

    if args.device not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda, got {args.device!r}")
    check_writable_folder("--out", args.out)
    # a bad corpus or vocoder folder fails before the model loads
    if "modes" in args.sections:
        load_pairs(args.corpus, 1)
    if "quality" in args.sections:
        load_quality_utterances(args.corpus, 1)
    if "identity" in args.sections:
        _identity_set(args.corpus, args.quick, args.identity_clips, args.identity_enrol, args.identity_pitch,
                      args.training_corpus)
    check_extra_vocoder_folders(args.vocoder)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu")
    pipeline = load_model(args.model).to(args.device)
    extra_vocoders = load_extra_vocoders(args.vocoder, pipeline.feature_config, args.device)
    report = evaluate(pipeline, args.corpus, args.out, quick=args.quick, steps=args.steps, seed=args.seed,
                      max_pairs=args.max_pairs, progress=not args.quiet, device=args.device,
                      sections=args.sections, quality_utterances=args.quality_utterances,
                      wer_voice_limit=args.wer_voice_limit, identity_clips=args.identity_clips,
                      identity_enrol=args.identity_enrol, identity_pitch=args.identity_pitch,
                      training_corpus=args.training_corpus, extra_vocoders=extra_vocoders,
                      model_name=str(Path(args.model).resolve()) if Path(args.model).exists() else str(args.model))
    if not args.quiet:
        print(report_markdown(report))
        print(f"wrote {Path(args.out) / 'report.json'} and {Path(args.out) / 'report.md'}")
    return 0
