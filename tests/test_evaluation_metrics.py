"""Evaluation metrics: f0 medians and distances, mel-cepstra, DTW, MCD, f0 tracking, energy, speaker, Spearman."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import SAMPLE_RATE, harmonic_tone, requires_espeak

from melinterp.audio import extract_f0
from melinterp.evaluation import (
    SpeakerSimilarity,
    dtw_path,
    energy_correlation,
    f0_median_hz,
    f0_median_semitones,
    f0_metrics,
    mcd,
    mel_cepstrum,
    semitone_distance,
    spearman,
)
from melinterp.evaluation.cepstrum import _warp, envelope_to_mel_cepstrum, world_features
from melinterp.evaluation.f0 import pearson

SENTENCE = "The quick brown fox jumps."
OTHER_SENTENCE = "She sells sea shells today."


def needs_espeak(test):
    """Speech made by espeak-ng: skipped cleanly where the program is absent."""
    return pytest.mark.engines(requires_espeak(test))


@pytest.fixture(scope="module")
def speech():
    """espeak renderings (float32, 22050 Hz): one voice at three pitch settings and a second sentence, another voice."""
    from melinterp.data.engines import EspeakEngine

    engine = EspeakEngine()
    say = lambda text, voice, pitch=50: engine.synthesize(text, voice, pitch=pitch, rate=175)  # noqa: E731
    return {
        "m3": say(SENTENCE, "en-us+m3"),
        "m3_low": say(SENTENCE, "en-us+m3", pitch=30),
        "m3_high": say(SENTENCE, "en-us+m3", pitch=70),
        "m3_other_sentence": say(OTHER_SENTENCE, "en-us+m3"),
        "f2": say(SENTENCE, "en-us+f2"),
    }


def _sine(freq_hz: float, seconds: float = 0.5, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


# --- f0 -----------------------------------------------------------------------------------------------------------

def test_semitone_distance_known_answers():
    assert semitone_distance(330.0, 220.0) == pytest.approx(12 * np.log2(1.5))  # 7.02
    assert semitone_distance(220.0, 440.0) == pytest.approx(12.0)
    assert semitone_distance(261.63, 261.63) == 0.0
    with pytest.raises(ValueError, match="two positive finite frequencies"):
        semitone_distance(0.0, 220.0)


def test_f0_median_of_harmonic_tones():
    assert f0_median_hz(harmonic_tone(220.0)) == pytest.approx(220.0, rel=0.01)
    assert f0_median_semitones(harmonic_tone(440.0)) == pytest.approx(0.0, abs=0.1)  # A4 is the reference
    difference = f0_median_semitones(harmonic_tone(330.0)) - f0_median_semitones(harmonic_tone(220.0))
    assert difference == pytest.approx(12 * np.log2(1.5), abs=0.5)


def test_f0_median_errors_teach():
    with pytest.raises(ValueError, match="no voiced frames"):
        f0_median_hz(_sine(5000.0))  # far above the tracker's 800 Hz ceiling
    with pytest.raises(ValueError, match="silent"):
        f0_median_semitones(np.zeros(SAMPLE_RATE, dtype=np.float32))
    with pytest.raises(ValueError, match="expected at least one frame"):
        f0_median_hz(np.zeros(0, dtype=np.float32))


# --- mel-cepstrum and DTW ----------------------------------------------------------------------------------------

def test_envelope_to_mel_cepstrum_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    alpha, order = 0.455, 24
    true_cepstrum = rng.normal(0.0, 0.3, size=(2, order + 1)) / (1 + np.arange(order + 1))  # (2, 25)
    omega = np.linspace(0.0, np.pi, 4097)
    beta = _warp(omega, alpha)
    log_amplitude = true_cepstrum @ np.cos(np.arange(order + 1)[:, None] * beta[None, :])  # (2, 4097)
    recovered = envelope_to_mel_cepstrum(np.exp(2.0 * log_amplitude), order, alpha)  # power envelope in
    np.testing.assert_allclose(recovered, true_cepstrum, atol=2e-4)


def test_mel_cepstrum_shape_and_frames_match_f0():
    tone = harmonic_tone(220.0, seconds=0.5)
    cepstra = mel_cepstrum(tone)
    assert cepstra.shape == (len(tone) // 256, 25)
    assert np.all(np.isfinite(cepstra))
    f0, _ = world_features(tone)
    np.testing.assert_array_equal(f0, extract_f0(tone, method="harvest"))
    with pytest.raises(ValueError, match="order must be a positive integer"):
        mel_cepstrum(tone, order=0)
    with pytest.raises(ValueError, match="alpha must lie in"):
        mel_cepstrum(tone, alpha=1.5)


def test_dtw_path_is_optimal_on_small_sequences():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(9, 3)), rng.normal(size=(7, 3))
    cost = np.linalg.norm(a[:, None] - b[None], axis=-1)
    best = np.full((10, 8), np.inf)
    best[0, 0] = 0.0
    for i in range(1, 10):
        for j in range(1, 8):
            best[i, j] = cost[i - 1, j - 1] + min(best[i - 1, j], best[i, j - 1], best[i - 1, j - 1])
    ia, ib = dtw_path(a, b)
    assert cost[ia, ib].sum() == pytest.approx(best[-1, -1])


def test_dtw_path_recovers_time_stretch():
    rng = np.random.default_rng(2)
    a = np.cumsum(rng.normal(size=(200, 4)), axis=0)  # a smooth random walk
    b = np.repeat(a, 2, axis=0) + 0.01 * rng.normal(size=(400, 4))  # the same, twice as slow
    ia, ib = dtw_path(a, b)
    assert (ia[0], ib[0]) == (0, 0) and (ia[-1], ib[-1]) == (199, 399)
    assert np.all(np.diff(ia) >= 0) and np.all(np.diff(ib) >= 0)
    assert np.all(np.diff(ia) + np.diff(ib) >= 1)  # every step moves
    slope = np.polyfit(ia, ib, 1)[0]
    assert slope == pytest.approx(2.0, abs=0.05)


def test_dtw_path_errors_teach():
    with pytest.raises(ValueError, match=r"same D, got \(3, 2\) and \(4, 5\)"):
        dtw_path(np.zeros((3, 2)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="at least one frame"):
        dtw_path(np.zeros((0, 2)), np.zeros((4, 2)))


# --- parallel metrics on speech ----------------------------------------------------------------------------------

@needs_espeak
def test_signal_against_itself_is_perfect(speech):
    audio = speech["m3"]
    assert mcd(audio, audio) == pytest.approx(0.0, abs=1e-9)
    metrics = f0_metrics(audio, audio)
    assert metrics["log_f0_rmse"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["f0_correlation"] == pytest.approx(1.0, abs=1e-9)
    assert metrics["vuv_error"] == 0.0
    assert metrics["voiced_pairs"] > 50
    assert energy_correlation(audio, audio) == pytest.approx(1.0, abs=1e-9)


@needs_espeak
def test_pitch_setting_difference_matches_direct_f0(speech):
    low, high = speech["m3_low"], speech["m3_high"]
    measured = f0_median_semitones(high) - f0_median_semitones(low)
    f0_low, f0_high = extract_f0(low), extract_f0(high)
    direct = 12 * np.log2(np.median(f0_high[f0_high > 0]) / np.median(f0_low[f0_low > 0]))
    assert measured == pytest.approx(direct, abs=0.5)
    assert measured > 3.0  # espeak pitch 30 -> 70 is about 6.7 semitones for en-us+m3


@needs_espeak
def test_f0_metrics_see_a_pitch_shift_but_keep_the_contour(speech):
    metrics = f0_metrics(speech["m3_low"], speech["m3"])  # same voice and text, espeak pitch 30 vs 50
    assert metrics["log_f0_rmse"] > 1.0  # measured 2.9 semitones
    assert metrics["f0_correlation"] > 0.7  # measured 0.93
    assert 0.0 <= metrics["vuv_error"] < 0.3


@needs_espeak
def test_mcd_separates_voices_more_than_pitches(speech):
    between_voices = mcd(speech["m3"], speech["f2"])  # measured 9.1 dB
    between_pitches = mcd(speech["m3_low"], speech["m3_high"])  # measured 3.6 dB
    assert between_voices > between_pitches + 2.0
    assert 0.0 < between_pitches


@needs_espeak
def test_parallel_metrics_reject_silence(speech):
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    with pytest.raises(ValueError, match="reference is silent"):
        f0_metrics(speech["m3"], silence)
    with pytest.raises(ValueError, match="audio is silent"):
        energy_correlation(silence, speech["m3"])
    with pytest.raises(ValueError, match="silent"):
        mcd(speech["m3"], silence)


# --- speaker similarity ------------------------------------------------------------------------------------------

@needs_espeak
@pytest.mark.slow
def test_speaker_similarity_ranks_voices(speech):
    pytest.importorskip("resemblyzer")
    judge = SpeakerSimilarity()
    assert judge.similarity(speech["m3"], speech["m3"]) > 0.99
    m3, m3_other_sentence, f2 = (judge.embed(speech[name]) for name in ("m3", "m3_other_sentence", "f2"))
    assert m3.shape == (256,) and m3.dtype == np.float32
    assert np.linalg.norm(m3) == pytest.approx(1.0, abs=1e-3)
    same_voice = float(m3 @ m3_other_sentence)  # measured 0.77
    other_voice = float(m3_other_sentence @ f2)  # measured ~0.62
    assert same_voice > other_voice + 0.05
    with pytest.raises(ValueError, match="silent"):
        judge.embed(np.zeros(SAMPLE_RATE, dtype=np.float32))
    with pytest.raises(ValueError, match="at least 0.1 s"):
        judge.embed(np.zeros(10, dtype=np.float32))


# --- correlations ------------------------------------------------------------------------------------------------

def test_spearman_known_answers_and_nan_safety():
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [8, 6, 4, 2]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert spearman([1, 2, 3], [5, 5, 5]) == 0.0
        assert spearman([1], [2]) == 0.0
    assert spearman([1, 2, np.nan, 3], [2, 4, 1, 6]) == pytest.approx(1.0)  # the NaN pair is dropped
    with pytest.raises(ValueError, match="one length"):
        spearman([1, 2], [1, 2, 3])


def test_pearson_constant_is_zero():
    assert pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.5]) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 6.5])[0, 1])
    assert pearson([1.0, 2.0, 3.0], [7.0, 7.0, 7.0]) == 0.0


def test_import_is_light():
    code = ("import sys, melinterp.evaluation as e; e.spearman; "
            "print(any(m in sys.modules for m in ('pyworld', 'resemblyzer', 'librosa')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_shared_alignment_gives_the_same_numbers():
    from melinterp.evaluation import metrics

    a, b = harmonic_tone(220.0, 0.8), harmonic_tone(247.0, 0.9)
    alignment = metrics.align(a, b)
    assert metrics.mcd(a, b, alignment=alignment) == metrics.mcd(a, b)
    assert metrics.f0_metrics(a, b, alignment=alignment) == metrics.f0_metrics(a, b)
