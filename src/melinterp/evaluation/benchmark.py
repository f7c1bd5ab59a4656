"""``melinterp evaluate``: score every interpolation mode with independent judges on held-out voices.

    melinterp evaluate --model DIR --corpus CORPUS --out OUT [--quick] [--steps N] [--seed S] [--device cpu]

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

Writes ``OUT/report.json`` (config, per-pair numbers, aggregates), ``OUT/report.md`` (one row per mode) and a few
PNG figures (``OUT/figures/``). Every synthesised output and per-pair result is cached under ``OUT/work/``
(written atomically), so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
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
    from melinterp.data.filelists import read_filelist

    root = Path(corpus_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--corpus {root}: no such folder (expected one made by `melinterp make-corpus`)")
    heldout, triplets_path = root / "filelists" / "heldout.txt", root / "triplets.jsonl"
    for path in (heldout, triplets_path):
        if not path.is_file():
            raise FileNotFoundError(f"--corpus {root}: no {path.relative_to(root)} (expected a corpus made by "
                                    "`melinterp make-corpus` with held-out voices and triplets)")
    by_speaker: dict[str, list] = {}
    for utterance in read_filelist(heldout):
        by_speaker.setdefault(utterance.speaker, []).append(utterance)

    pairs = []
    lines = [line for line in triplets_path.read_text(encoding="utf-8").splitlines() if line.strip()]
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


def _reference(by_speaker: dict, speaker: str, text: str, fallback: Path) -> Path:
    """A held-out utterance of ``speaker`` that does not say ``text`` (the first in the filelist)."""
    utterances = by_speaker.get(speaker)
    if not utterances:
        raise ValueError(f"speaker {speaker!r} has no utterance in filelists/heldout.txt")
    others = [u for u in utterances if u.text.strip() != text.strip()]
    return Path(others[0].wav_path) if others else fallback


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

    def __call__(self, pair: Pair, name: str, ref1: Path, ref2: Path | None, *, attention: bool = False,
                 **keywords) -> dict:
        """``{"audio": (N,), "mel": (n_mels, T), "routing_map": (n_mels, T) | None, "ref1_mass": ... | None}``."""
        path = self.work_dir / pair.id / f"{name}.npz"
        if path.is_file():
            with np.load(path) as cached:
                return {key: (cached[key] if cached[key].size else None) for key in cached.files}
        import torch

        from melinterp.utils import atomic_path

        result = self.pipeline(pair.text, str(ref1), None if ref2 is None else str(ref2),
                               num_inference_steps=self.steps, output_type="np", return_attention=attention,
                               generator=torch.Generator(device=self.device).manual_seed(self.seed), **keywords)
        frames = int(result.lengths[0])
        hop = self.pipeline.feature_config.hop_length

        def crop(maps):
            return np.zeros(0, np.float32) if maps is None else np.asarray(maps[0][:, :frames], np.float32)

        record = {"audio": np.asarray(result.audios[0][: frames * hop], np.float32), "mel": crop(result.mels),
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
        self._speaker = None
        self._semitones: dict[Path, float] = {}
        self.undefined: list[str] = []
        self.output = ""  # the output being judged, named in `undefined`

    def _measure(self, what: str, function, *args):
        try:
            return function(*args)
        except ValueError as error:  # the judges' "undefined for this audio"
            self.undefined.append(f"{self.output}: {what}: {error}")
            return None

    def similarity(self, audio, reference) -> float:
        """Speaker similarity (cosine of resemblyzer embeddings), NaN when either cannot be embedded."""
        if self._speaker is None:
            self._speaker = self.metrics.SpeakerSimilarity()
        value = self._measure("speaker similarity", self._speaker.similarity, audio, reference)
        return math.nan if value is None else float(value)

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


def _cell(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.0f} %" if digits == -1 else f"{value:.{digits}f}"


def report_markdown(report: dict) -> str:
    """The report.md table: one row per mode."""
    config, table = report["config"], report["aggregates"]
    lines = [
        "# melinterp evaluate", "",
        f"model `{config['model']}`, corpus `{config['corpus']}`, {config['n_pairs']} pairs "
        f"({config['n_far_pairs']} at least {FAR_SEMITONES:g} semitones apart), {config['steps']} steps, "
        f"seed {config['seed']}{', quick' if config['quick'] else ''}.", "",
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
    return "\n".join(lines)


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
             max_pairs: int | None = None, progress: bool = True, device: str = "cpu", model_name: str = "") -> dict:
    """Score every mode of ``pipeline`` on the corpus's triplets; write report.json, report.md and figures.

    Args:
        pipeline: a `MelStyleInterpolationPipeline`.
        corpus_dir: a folder made by ``melinterp make-corpus`` (held-out filelist and triplets.jsonl).
        out_dir: where the report goes; ``out_dir/work`` caches outputs, so a rerun resumes.
        quick: 2 pairs, 3 steps, 3 alphas, no log-f0 RMSE for the transfer modes (for CI).
        steps: denoising steps (default 10, or 3 with ``quick``).
        seed: seed of the prior noise, the same for every output.
        max_pairs: at most this many triplets (default all, or 2 with ``quick``).
        progress: show a tqdm bar.
    Returns:
        The report (as written to report.json).
    """
    from tqdm.auto import tqdm

    from melinterp.utils import write_json

    steps = steps if steps is not None else QUICK_STEPS if quick else DEFAULT_STEPS
    if steps < 1:
        raise ValueError(f"--steps must be a positive number of denoising steps, got {steps}")
    if max_pairs is None and quick:
        max_pairs = QUICK_PAIRS
    if max_pairs is not None and max_pairs < 1:
        raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
    pairs = load_pairs(corpus_dir, max_pairs)
    alphas = QUICK_ALPHAS if quick else FULL_ALPHAS
    out_dir = Path(out_dir)
    work_dir = out_dir / "work"

    # The cache is only valid for the settings that made it
    settings = {"model": model_name, "corpus": str(Path(corpus_dir).resolve()), "steps": steps, "seed": seed}
    settings_path = work_dir / "settings.json"
    if settings_path.is_file():
        previous = json.loads(settings_path.read_text(encoding="utf-8"))
        if previous != settings:
            raise ValueError(f"{work_dir} caches outputs made with {previous}, not {settings}: pass another --out, "
                             f"or delete {work_dir} to start again")
    write_json(settings_path, settings)

    pipeline.set_progress_bar_config(disable=True)
    synthesize = _Synthesizer(pipeline, work_dir, steps=steps, seed=seed, device=device)
    judges = _Judges()
    results = []
    for index, pair in enumerate(tqdm(pairs, desc="evaluate", unit="pair", disable=not progress)):
        result_path = work_dir / pair.id / "result.json"
        if result_path.is_file():
            result = json.loads(result_path.read_text(encoding="utf-8"))
        else:
            result = score_pair(pair, synthesize, judges, alphas=alphas, figures=index < FIGURE_PAIRS,
                                transfer_f0=not quick)
            write_json(result_path, _finite_or_none(result))
            result = json.loads(result_path.read_text(encoding="utf-8"))
        results.append(result)
        figure = out_dir / "figures" / f"pair_{pair.id}.png"
        if index < FIGURE_PAIRS and not figure.is_file():
            plot_pair(pair, synthesize, figure)

    report = {
        "config": {**settings, "quick": quick, "alphas": list(alphas), "n_pairs": len(results),
                   "n_far_pairs": sum(r["far"] for r in results), "far_semitones": FAR_SEMITONES,
                   "judges": {"f0": "pyworld (melinterp.evaluation.metrics)", "speaker": "resemblyzer",
                              "mcd": "mel-cepstral distortion with DTW"}},
        "pairs": results,
        "aggregates": aggregate(results),
    }
    report = _finite_or_none(report)
    write_json(out_dir / "report.json", report)
    from melinterp.utils import atomic_path

    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text(report_markdown(report), encoding="utf-8")
    return report


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
    parser.add_argument("--quick", action="store_true", help="for CI: 2 pairs, 3 steps, 3 alphas")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"denoising steps (default {DEFAULT_STEPS}, {QUICK_STEPS} with --quick)")
    parser.add_argument("--max-pairs", type=int, default=None, help="at most this many triplets (default all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior noise (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.device not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda, got {args.device!r}")
    load_pairs(args.corpus, 1)  # a bad corpus fails before the model loads
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu")
    pipeline = load_model(args.model).to(args.device)
    report = evaluate(pipeline, args.corpus, args.out, quick=args.quick, steps=args.steps, seed=args.seed,
                      max_pairs=args.max_pairs, progress=not args.quiet, device=args.device,
                      model_name=str(Path(args.model).resolve()) if Path(args.model).exists() else str(args.model))
    if not args.quiet:
        print(report_markdown(report))
        print(f"wrote {Path(args.out) / 'report.json'} and {Path(args.out) / 'report.md'}")
    return 0
