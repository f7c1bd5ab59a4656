"""Paired bootstrap intervals of the quality section's differences to the ground truth, on known cases."""

import numpy as np
import pytest

from melinterp.evaluation.intelligibility import word_error_rate
from melinterp.evaluation.intervals import paired_bootstrap, paired_differences


def test_no_difference_and_a_constant_one_have_no_spread():
    baseline = np.linspace(2.0, 3.0, 12)
    assert paired_bootstrap(baseline, baseline) == {"difference": 0.0, "low": 0.0, "high": 0.0, "n": 12}
    shifted = paired_bootstrap(baseline + 0.3, baseline)
    assert shifted["difference"] == pytest.approx(0.3)
    assert shifted["low"] == pytest.approx(0.3) and shifted["high"] == pytest.approx(0.3)
    assert paired_bootstrap([], []) is None


def test_the_interval_holds_the_difference_and_narrows_with_more_utterances():
    rng = np.random.default_rng(1)
    baseline = rng.normal(2.5, 0.3, 400)
    values = baseline + 0.1 + rng.normal(0.0, 0.3, 400)  # a true difference of 0.1 in noise of 0.3
    few, many = paired_bootstrap(values[:10], baseline[:10]), paired_bootstrap(values, baseline)
    for entry in (few, many):
        assert entry["low"] < entry["difference"] < entry["high"]
    assert few["low"] < 0 < few["high"]  # 10 utterances cannot tell 0.1 from chance
    assert 0 < many["low"] < 0.1 < many["high"] < 0.2  # 400 can, and hold the truth
    assert (many["high"] - many["low"]) < 0.5 * (few["high"] - few["low"])
    assert paired_bootstrap(values[:10], baseline[:10], seed=0) == few  # seeded
    assert paired_bootstrap(values[:10], baseline[:10], seed=1) != few


def test_weights_make_it_a_pooled_rate():
    # errors and word counts of three utterances: the pooled difference is (2 - 0 + 0 - 1 + 5 - 2) / (4 + 8 + 10)
    entry = paired_bootstrap([2, 0, 5], [0, 1, 2], [4, 8, 10])
    assert entry["difference"] == pytest.approx(4 / 22)
    assert entry["low"] <= entry["difference"] <= entry["high"]


@pytest.mark.parametrize("arguments, message", [
    (([1.0, 2.0], [1.0]), "three 1-D sequences of one length"),
    (([1.0], [float("nan")]), "finite numbers only"),
    (([1.0], [1.0], [0.0]), "weights must be positive"),
])
def test_bad_input_is_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(*arguments)


def _utterance(text: str, transcripts: dict, ovrl: dict) -> dict:
    return {"speaker": "flite-awb", "text": text,
            "outputs": {row: {"ovrl": ovrl[row], "transcript": transcripts[row]} for row in transcripts}}


def test_paired_differences_pool_wer_like_the_table():
    text = "one two three four"
    utterances = [_utterance(text, {"ground_truth": text, "always_wrong": "one two three for",
                                    "once_wrong": "one two three for" if index == 0 else text},
                             {"ground_truth": 3.0, "always_wrong": 2.5, "once_wrong": None if index == 1 else 3.0})
                  for index in range(10)]
    always, once = paired_differences(utterances, [("always_wrong", "ground_truth"), ("once_wrong", "ground_truth")],
                                      utterances)
    assert (always["row"], always["baseline"]) == ("always_wrong", "ground_truth")
    pooled = word_error_rate([text] * 10, ["one two three for"] * 10) - word_error_rate([text] * 10, [text] * 10)
    assert always["wer"]["difference"] == pytest.approx(pooled) == pytest.approx(0.25)
    assert always["wer"]["low"] == pytest.approx(0.25) and always["wer"]["high"] == pytest.approx(0.25)
    assert always["ovrl"]["difference"] == pytest.approx(-0.5) and always["ovrl"]["n"] == 10
    assert once["wer"]["difference"] == pytest.approx(1 / 40)
    assert once["wer"]["low"] == 0.0  # one misheard word in ten utterances: not told from chance
    assert once["ovrl"]["n"] == 9  # the unrated utterance is left out of the pair
    # any two rows pair: the one always wrong against the one once wrong, the sign follows the order
    (between,) = paired_differences(utterances, [("once_wrong", "always_wrong")], utterances)
    assert between["wer"]["difference"] == pytest.approx(1 / 40 - 0.25)
    # WER over the readable voices' utterances only; none of them: no WER interval
    assert paired_differences(utterances, [("always_wrong", "ground_truth")], [])[0]["wer"] is None
