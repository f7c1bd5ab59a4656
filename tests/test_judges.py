"""Offline judges of intelligibility (pocketsphinx WER) and naturalness (DNSMOS), on cases with known answers."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import SAMPLE_RATE, requires_flite

from melinterp.evaluation import DNSMOS, Recognizer, normalize_transcript, word_error_rate

SENTENCES = ("The quick brown fox jumps over the lazy dog.", "We will meet at the station tomorrow morning.")


def needs_flite(test):
    """Speech made by flite (whose voices pocketsphinx reads): skipped cleanly where the program is absent."""
    return pytest.mark.engines(requires_flite(test))


@pytest.fixture(scope="module")
def slt_speech():
    """flite ``slt`` saying each of SENTENCES: float32 (N,) at 22050 Hz."""
    from melinterp.data.engines import FliteEngine

    engine = FliteEngine()
    return [engine.synthesize(text, "slt", pitch=1.0, rate=1.0) for text in SENTENCES]


@pytest.fixture(scope="module")
def recognizer():
    pytest.importorskip("pocketsphinx")
    return Recognizer()


@pytest.fixture(scope="module")
def dnsmos():
    pytest.importorskip("speechmos")
    pytest.importorskip("onnxruntime")
    return DNSMOS()


def _white_noise(seconds: float, rms: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, rms, int(seconds * SAMPLE_RATE)).astype(np.float32)


# --- transcripts and WER ----------------------------------------------------------------------------------------

def test_normalize_transcript_keeps_words_only():
    assert normalize_transcript("  Don't STOP -- a well-known 'quote', OK?\n") == "don't stop a well known quote ok"
    assert normalize_transcript("Hello,world!  Bye.") == "hello world bye"
    assert normalize_transcript("...") == ""


def test_word_error_rate_known_answers():
    sentence = "the cat sat down"
    assert word_error_rate([sentence], [sentence]) == 0.0
    assert word_error_rate([sentence], ["the dog sat down"]) == pytest.approx(0.25)  # one substitution in 4 words
    assert word_error_rate(["The cat, sat DOWN!"], ["the cat  sat down"]) == 0.0  # punctuation and case ignored
    assert word_error_rate([sentence], [""]) == 1.0  # every word deleted
    assert word_error_rate([sentence], ["the cat sat down now"]) == pytest.approx(0.25)  # one insertion
    # pooled over the pairs: (1 + 2) errors / 6 words, not the mean of 0.25 and 1
    assert word_error_rate(["a b c d", "e f"], ["a x c d", ""]) == pytest.approx(0.5)


def test_word_error_rate_refuses_bad_input():
    with pytest.raises(ValueError, match="as many hypotheses as references"):
        word_error_rate(["a b"], ["a", "b"])
    with pytest.raises(ValueError, match="reference 1 has no word"):
        word_error_rate(["a b", "?!"], ["a b", "c"])
    with pytest.raises(TypeError, match="lists of transcripts"):
        word_error_rate("a b", "a b")


def test_missing_packages_say_how_to_install(monkeypatch):
    judged = ("pocketsphinx", "jiwer", "speechmos")
    for module in [name for name in sys.modules if name.split(".")[0] in judged] + list(judged):
        monkeypatch.setitem(sys.modules, module, None)  # `import module` (and its submodules) raises ImportError
    with pytest.raises(RuntimeError, match=r"pocketsphinx.*pip install 'melinterp\[eval\]'"):
        Recognizer().transcribe(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    with pytest.raises(RuntimeError, match=r"jiwer.*pip install 'melinterp\[eval\]'"):
        word_error_rate(["a"], ["a"])
    with pytest.raises(RuntimeError, match=r"speechmos.*pip install 'melinterp\[eval\]'"):
        DNSMOS().score(_white_noise(1.0, 0.1), SAMPLE_RATE)


# --- the recogniser -----------------------------------------------------------------------------------------------

@needs_flite
def test_recognizer_reads_flite_speech(recognizer, slt_speech):
    transcripts = [recognizer.transcribe(audio, SAMPLE_RATE) for audio in slt_speech]
    assert word_error_rate(list(SENTENCES), transcripts) < 0.25  # measured 1 error in 17 words
    # the same speech at 16 kHz, the recogniser's own rate (no resampling inside)
    import librosa

    at_16k = librosa.resample(slt_speech[0], orig_sr=SAMPLE_RATE, target_sr=16000)
    assert word_error_rate([SENTENCES[0]], [recognizer.transcribe(at_16k, 16000)]) < 0.25
    # one decoder, two threads: the lock serialises them and each gets its own transcript
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(lambda audio: recognizer.transcribe(audio, SAMPLE_RATE), slt_speech)) == transcripts


def test_recognizer_hears_no_words_in_noise_or_silence(recognizer):
    reference = [SENTENCES[0]]
    assert word_error_rate(reference, [recognizer.transcribe(_white_noise(2.0, 0.1), SAMPLE_RATE)]) >= 0.9
    assert word_error_rate(reference, [recognizer.transcribe(np.zeros(2 * SAMPLE_RATE, np.float32))]) >= 0.9
    with pytest.raises(ValueError, match="at least 0.1 s"):
        recognizer.transcribe(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match=r"mono waveform of shape \(N,\)"):
        recognizer.transcribe(np.zeros((2, SAMPLE_RATE), np.float32))


# --- DNSMOS -------------------------------------------------------------------------------------------------------

@needs_flite
def test_dnsmos_prefers_clean_speech_to_noisy(dnsmos, slt_speech):
    clean = slt_speech[0]
    noisy = clean + _white_noise(len(clean) / SAMPLE_RATE, float(np.sqrt(np.mean(clean ** 2))))  # SNR 0 dB
    clean_scores, noisy_scores = dnsmos.score(clean, SAMPLE_RATE), dnsmos.score(noisy, SAMPLE_RATE)
    for scores in (clean_scores, noisy_scores):
        assert set(scores) == {"ovrl", "sig", "bak", "p808"}
        assert all(np.isfinite(value) and 1.0 <= value <= 5.0 for value in scores.values()), scores
    # measured: OVRL 2.6 clean, 1.5 noisy; BAK 4.0 clean, 1.4 noisy
    assert clean_scores["ovrl"] > noisy_scores["ovrl"] + 0.5
    assert clean_scores["bak"] > noisy_scores["bak"] + 1.0


def test_dnsmos_refuses_what_it_cannot_rate(dnsmos):
    with pytest.raises(ValueError, match="silent"):
        dnsmos.score(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    with pytest.raises(ValueError, match="at least 0.1 s"):
        dnsmos.score(np.zeros(10, np.float32), SAMPLE_RATE)
    with pytest.raises(ValueError, match="NaN"):
        dnsmos.score(np.full(SAMPLE_RATE, np.nan, np.float32), SAMPLE_RATE)
