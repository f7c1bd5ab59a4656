"""Intelligibility by an independent judge: word error rate of pocketsphinx's offline en-US recogniser.

pocketsphinx ships its acoustic model, language model and dictionary inside its wheel, so nothing is downloaded.
It reads flite's voices well and espeak-ng's formant voices hardly at all (WER near 90 %): a WER means something only
for a voice whose own recordings it can read, which `melinterp evaluate` checks on the ground truth first.
pocketsphinx and jiwer are imported on first use, so importing this module costs nothing.
"""

from __future__ import annotations

import re

import numpy as np

from melinterp.evaluation._judges import LazyJudge, mono_waveform, require

RECOGNIZER_SAMPLE_RATE = 16000  # what the en-US acoustic model was trained on, Hz

_NOT_WORD = re.compile(r"[^\w']+|_")  # anything but letters, digits and apostrophes separates words
_LOOSE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")  # quote marks, not the one inside "don't"


def normalize_transcript(text: str) -> str:
    """A transcript as the word error rate compares it: lower case, words only, single spaces.

    Punctuation and symbols become word breaks ("well-known" -> "well known"), apostrophes inside a word stay
    ("Don't!" -> "don't"), runs of whitespace collapse. Numbers stay digits: write references in words.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a transcript str, got {type(text).__name__}")
    words = _LOOSE_APOSTROPHE.sub(" ", _NOT_WORD.sub(" ", text.lower()))
    return " ".join(words.split())


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Word error rate of ``hypotheses`` against ``references``, both normalised by `normalize_transcript`.

    (substitutions + deletions + insertions) / reference words, pooled over all the pairs (not a mean of per-pair
    rates): 0 for a perfect transcript, 1 for an empty one, and above 1 with many insertions.

    Raises:
        ValueError: the lists differ in length or are empty, or a reference has no word.
    """
    if isinstance(references, str) or isinstance(hypotheses, str):
        raise TypeError("word_error_rate expects two lists of transcripts, got a str: wrap it in a list")
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses) or not references:
        raise ValueError(f"expected as many hypotheses as references (at least one), got {len(references)} "
                         f"references and {len(hypotheses)} hypotheses")
    references = [normalize_transcript(text) for text in references]
    hypotheses = [normalize_transcript(text) for text in hypotheses]
    for index, reference in enumerate(references):
        if not reference:
            raise ValueError(f"reference {index} has no word after normalisation: nothing to count errors against")
    return float(require("jiwer", "the word error rate").wer(references, hypotheses))


class Recognizer(LazyJudge):
    """pocketsphinx's en-US recogniser (bundled model); the decoder is loaded once, on the first `transcribe`.

    A pocketsphinx decoder holds one utterance's state, so calls from several threads are serialised by a lock.

    >>> recognizer = Recognizer()
    >>> recognizer.transcribe(audio, 22050)  # (N,) float32 in [-1, 1] -> "the quick brown fox"
    """

    @property
    def decoder(self):
        """pocketsphinx's `Decoder` with the bundled en-US model, built once."""
        return self._model()

    def _build(self):
        pocketsphinx = require("pocketsphinx", "intelligibility (word error rate)")
        model = pocketsphinx.get_model_path
        # the bundled model, named explicitly; FATAL keeps pocketsphinx's configuration log off stderr
        return pocketsphinx.Decoder(hmm=model("en-us/en-us"), lm=model("en-us/en-us.lm.bin"),
                                    dict=model("en-us/cmudict-en-us.dict"), samprate=RECOGNIZER_SAMPLE_RATE,
                                    loglevel="FATAL")

    def transcribe(self, audio, sample_rate: int = 22050) -> str:
        """The words heard in a mono waveform (N,) at ``sample_rate`` Hz, lower case ("" when none).

        The audio is resampled to 16 kHz, peak-normalised (the recogniser judges words, not loudness) and
        quantised to 16-bit PCM, the input pocketsphinx expects.
        """
        waveform = mono_waveform(audio, sample_rate, "transcribe")
        if sample_rate != RECOGNIZER_SAMPLE_RATE:
            import librosa

            waveform = librosa.resample(waveform, orig_sr=sample_rate, target_sr=RECOGNIZER_SAMPLE_RATE)
        peak = float(np.max(np.abs(waveform)))
        if peak > 0:
            waveform = waveform * (0.9 / peak)
        pcm = np.round(waveform * 32767).astype("<i2").tobytes()  # 16-bit little-endian mono
        decoder = self.decoder
        with self._lock:  # one utterance at a time: the decoder holds its state
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            hypothesis = decoder.hyp()
        return "" if hypothesis is None else hypothesis.hypstr.strip().lower()
