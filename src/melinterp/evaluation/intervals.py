"""How sure a difference between two rows of the quality table is: a paired bootstrap over the utterances.

The quality section judges each output on the same held-out utterances, so a vocoder's difference to the ground
truth (or to Griffin-Lim on the same mels, or to another vocoder) is paired: resampling the utterances (with
replacement) and recomputing the difference on each resample gives its spread, and the 2.5th and 97.5th
percentiles of those differences a 95 % interval. On 10 sentences of one voice a WER 8 points above the ground
truth's can be chance; this says whether it is.

A difference is a ratio of sums, ``sum(values - baseline) / sum(weights)``, over the resampled items:

- DNSMOS: per-utterance scores with weight 1, so the mean difference;
- WER: per-utterance word errors with the reference's word count as weight, so the pooled WER's difference (as
  `melinterp.evaluation.word_error_rate` pools: errors over reference words, not a mean of per-utterance rates).
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


def paired_bootstrap(values, baseline, weights=None, *, resamples: int = RESAMPLES, level: float = LEVEL,
                     seed: int = 0) -> dict | None:
    """The difference ``sum(values - baseline) / sum(weights)`` over N paired items (``weights`` default 1) and its
    ``level`` percentile interval over ``resamples`` resamples of the items, seeded: ``{"difference", "low",
    "high", "n"}``, or None for no items.

    Raises:
        ValueError: the three differ in length, a weight is not positive, or a number is not finite.
    """
    values, baseline = np.asarray(values, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    if not values.shape == baseline.shape == weights.shape or values.ndim != 1:
        raise ValueError(f"paired_bootstrap needs three 1-D sequences of one length, got shapes {values.shape}, "
                         f"{baseline.shape} and {weights.shape}")
    if not (np.isfinite(values).all() and np.isfinite(baseline).all() and np.isfinite(weights).all()):
        raise ValueError("paired_bootstrap takes finite numbers only")
    if (weights <= 0).any():
        raise ValueError("paired_bootstrap's weights must be positive (an utterance's reference word count)")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if values.size == 0:
        return None
    differences = values - baseline
    picks = np.random.default_rng(seed).integers(0, values.size, size=(int(resamples), values.size))
    resampled = differences[picks].sum(axis=1) / weights[picks].sum(axis=1)  # (resamples,)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return {"difference": float(differences.sum() / weights.sum()), "low": float(low), "high": float(high),
            "n": int(values.size)}


def paired_differences(utterances: list[dict], pairs: list[tuple[str, str]], wer_utterances: list[dict], *,
                       seed: int = 0) -> list[dict]:
    """For each (row, baseline) of ``pairs``: ``{"row", "baseline", "ovrl": paired_bootstrap, "wer":
    paired_bootstrap}`` of row minus baseline, DNSMOS OVRL over the utterances where both have a score, WER over
    ``wer_utterances`` (those of the voices the recogniser reads). Utterances are the quality section's
    (`score_quality_utterance`)."""
    from melinterp.evaluation.intelligibility import normalize_transcript, word_error_rate

    words = [len(normalize_transcript(item["text"]).split()) for item in wer_utterances]
    errors: dict[str, list[float]] = {}  # row -> word errors of each WER utterance; a baseline serves many pairs

    def word_errors(row: str) -> list[float]:
        if row not in errors:  # no transcript: nothing heard, every word deleted
            errors[row] = [word_error_rate([item["text"]], [item["outputs"][row]["transcript"] or ""]) * count
                           for item, count in zip(wer_utterances, words)]
        return errors[row]

    out = []
    for row, baseline in pairs:
        scored = [item for item in utterances
                  if item["outputs"][row]["ovrl"] is not None and item["outputs"][baseline]["ovrl"] is not None]
        ovrl = paired_bootstrap([item["outputs"][row]["ovrl"] for item in scored],
                                [item["outputs"][baseline]["ovrl"] for item in scored], seed=seed)
        wer = paired_bootstrap(word_errors(row), word_errors(baseline), words, seed=seed)
        out.append({"row": row, "baseline": baseline, "ovrl": ovrl, "wer": wer})
    return out
