"""The synthetic corpus: sentence generator, speech engines, and ``melinterp make-corpus`` end to end."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import engine_test, harmonic_tone

from melinterp.cli import main
from melinterp.data.corpus import (
    PRESETS,
    PitchCurve,
    Speaker,
    config_from_args,
    plan_utterances,
    semitones,
    speakers_of,
)
from melinterp.data.engines import (
    PEAK_LEVEL,
    SAMPLE_RATE,
    EngineError,
    EngineNotFoundError,
    EnginePaths,
    EspeakEngine,
    FliteEngine,
    trim_silence,
    world_pitch_shift,
)
from melinterp.data.sentences import (
    generate_sentences,
    indefinite_article,
    vocabulary,
    words_of,
)


requires_espeak, requires_flite = engine_test("espeak"), engine_test("flite")


# --------------------------------------------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------------------------------------------


def test_sentences_are_distinct_deterministic_and_varied():
    sentences = generate_sentences(5000, seed=0)
    assert len(sentences) == 5000
    assert len({tuple(words_of(s)) for s in sentences}) == 5000  # distinct even ignoring case and punctuation
    assert sentences == generate_sentences(5000, seed=0)
    assert sentences[:50] != generate_sentences(50, seed=1)
    assert all(s.strip() and s[0].isupper() and s[-1] in ".?!" for s in sentences)
    assert all(4 <= len(words_of(s)) <= 16 for s in sentences)
    ends = {mark: sum(s.endswith(mark) for s in sentences) for mark in ".?!"}
    assert ends["."] > 2000 and ends["?"] > 500 and ends["!"] > 200
    assert len(vocabulary(sentences)) > 800
    assert sum(any(w in words_of(s) for w in ("twenty", "hundred", "seven", "three")) for s in sentences) > 300


def test_sentence_word_bounds_and_errors():
    short = generate_sentences(200, seed=3, min_words=4, max_words=6)
    assert all(4 <= len(words_of(s)) <= 6 for s in short)
    with pytest.raises(ValueError, match="could only make .* distinct sentences"):
        generate_sentences(10, seed=0, min_words=1, max_words=1)
    with pytest.raises(ValueError, match="min_words <= max_words"):
        generate_sentences(10, min_words=8, max_words=4)


def test_indefinite_articles_and_spelled_numbers():
    assert [indefinite_article(w) for w in ("old", "useful", "umbrella", "box", "hour")] == ["an", "a", "an", "a", "an"]
    digits = [s for s in generate_sentences(300, seed=1) if any(ch.isdigit() for ch in s)]
    assert digits == []  # numbers reach the engines as words


# --------------------------------------------------------------------------------------------------------------
# Plan (no engine needed)
# --------------------------------------------------------------------------------------------------------------


def test_speaker_names_are_filesystem_safe():
    assert Speaker("espeak", "en-us+m3", 65, 175).name == "espeak-en-us+m3_p65_s175"
    assert Speaker("flite", "slt", 1.12, 0.9).name == "flite-slt_p1.12_s0.90"
    assert Speaker("flite", "awb", 1.125, 1.0).name == "flite-awb_p1.125_s1.00"


def test_plan_splits_voices_and_texts():
    config = PRESETS["tiny"]
    sentences, pools, plans = plan_utterances(config, seed=0)
    assert set(pools["train"]).isdisjoint(pools["val"]) and set(pools["train"]).isdisjoint(pools["heldout"])
    assert set(pools["val"]).isdisjoint(pools["heldout"])
    for split in ("train", "val", "heldout"):
        assert {p.text_id for p in plans if p.split == split} <= set(pools[split])
    heldout_voices = {(p.speaker.engine, p.speaker.voice) for p in plans if p.split == "heldout"}
    seen_voices = {(p.speaker.engine, p.speaker.voice) for p in plans if p.split != "heldout"}
    assert heldout_voices == set(config.voices("heldout")) and heldout_voices.isdisjoint(seen_voices)
    for speaker in speakers_of(config, "train"):  # a speaker never says the same text twice
        ids = [p.text_id for p in plans if p.speaker == speaker]
        assert len(ids) == len(set(ids)) == config.train_per_speaker + config.val_per_speaker
    assert all(config.gain_db[0] <= p.gain_db <= config.gain_db[1] for p in plans)
    assert [(p.wav, p.gain_db) for p in plans] == [(p.wav, p.gain_db) for p in plan_utterances(config, seed=0)[2]]


def test_default_preset_size():
    config = PRESETS["default"]
    _, pools, plans = plan_utterances(config, seed=0)
    train_speakers = speakers_of(config, "train")
    assert len(train_speakers) == 23 * 5 * 2
    assert sum(p.split == "train" for p in plans) == 230 * 40
    assert len({p.text_id for p in plans if p.split == "train"}) == len(pools["train"])  # every text is used


def test_pitch_curve_interpolates_in_log_f0():
    curve = PitchCurve("espeak", "en-us+m3", [(20, 80.0), (80, 160.0)])
    assert curve.median_at(50) == pytest.approx(80 * math.sqrt(2), rel=1e-6)
    assert curve.setting_for(80 * math.sqrt(2)) == 50
    assert curve.median_at(110) == pytest.approx(160 * 2 ** 0.5, rel=1e-6)  # extrapolated along the end segment
    assert curve.setting_for(1000.0) == 99  # clamped to espeak's range
    flite = PitchCurve("flite", "awb", [(1.0, 100.0)])  # one point: a factor is a ratio
    assert flite.setting_for(125.0) == pytest.approx(1.25)
    assert semitones(200.0, 100.0) == pytest.approx(12.0)


def test_config_overrides_from_command_line():
    import argparse

    from melinterp.data import corpus

    parser = argparse.ArgumentParser()
    corpus.add_arguments(parser)
    args = parser.parse_args(["--out", "x", "--preset", "tiny", "--espeak-pitches", "10,90", "--triplets", "4",
                              "--engines", "espeak"])
    config = config_from_args(args)
    assert config.espeak_pitches == (10, 90) and config.triplets == 4 and config.engines == ("espeak",)
    assert config.train_per_speaker == PRESETS["tiny"].train_per_speaker


# --------------------------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------------------------


def _f0_median(audio: np.ndarray, method: str = "dio") -> float:
    from melinterp.audio import extract_f0

    f0 = extract_f0(audio, method=method)
    return float(np.median(f0[f0 > 0]))


def test_engine_paths_precedence(tmp_path, monkeypatch):
    root = tmp_path / "debroot"
    for name in ("usr/bin/espeak-ng", "usr/bin/flite", "usr/lib/x86_64-linux-gnu/espeak-ng-data/phontab"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    (root / "usr/lib/x86_64-linux-gnu/pulseaudio").mkdir()
    environ = {"MELINTERP_FLITE": "/env/flite", "MELINTERP_ESPEAK": "/env/espeak-ng"}
    paths = EnginePaths.resolve(espeak_bin="/explicit/espeak-ng", deb_root=root, environ=environ)
    assert paths.espeak_bin == "/explicit/espeak-ng"  # an option beats --deb-root
    assert paths.flite_bin == str(root / "usr/bin/flite")  # --deb-root beats the environment
    assert paths.espeak_data == str(root / "usr/lib/x86_64-linux-gnu/espeak-ng-data")
    assert paths.library_path[:2] == (str(root / "usr/lib/x86_64-linux-gnu"),
                                      str(root / "usr/lib/x86_64-linux-gnu/pulseaudio"))
    monkeypatch.setenv("LD_LIBRARY_PATH", "/already/there")
    assert paths.environment()["LD_LIBRARY_PATH"].split(":")[-1] == "/already/there"
    assert EnginePaths.resolve(environ=environ).flite_bin == "/env/flite"
    with pytest.raises(EngineNotFoundError, match="--deb-root .* is not a folder"):
        EnginePaths.resolve(deb_root=tmp_path / "missing")


def test_missing_engine_error_teaches(tmp_path):
    paths = EnginePaths.resolve(espeak_bin=tmp_path / "nowhere/espeak-ng")
    with pytest.raises(EngineNotFoundError, match=r"espeak-ng not found at .*nowhere/espeak-ng .*apt-get install"):
        EspeakEngine(paths)
    with pytest.raises(EngineNotFoundError, match="flite was not found on PATH.*--deb-root"):
        FliteEngine(EnginePaths(espeak_bin=None, flite_bin=None))


def test_make_corpus_reports_missing_engine(tmp_path, capsys):
    code = main(["make-corpus", "--out", str(tmp_path / "corpus"), "--preset", "tiny", "--engines", "espeak",
                 "--espeak-bin", str(tmp_path / "nonexistent/espeak-ng"), "--quiet"])
    assert code == 1
    message = capsys.readouterr().err
    assert "nonexistent/espeak-ng" in message and "apt-get install espeak-ng flite" in message
    assert not (tmp_path / "corpus" / "filelists").exists()


@requires_espeak
def test_espeak_bad_data_folder(tmp_path):
    with pytest.raises(EngineNotFoundError, match="has no 'phontab'"):
        EspeakEngine(EnginePaths.resolve(espeak_data=tmp_path))


@requires_espeak
def test_espeak_renders_22050_with_gain(tmp_path):
    from melinterp.data.engines import read_wav

    engine = EspeakEngine()
    audio = engine.synthesize("Seven yellow boxes arrived today.", "en-us+m3", pitch=50, rate=175, gain_db=-6.0)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 1.0 < audio.size / SAMPLE_RATE < 4.0
    assert np.abs(audio).max() == pytest.approx(PEAK_LEVEL * 10 ** (-6 / 20), rel=1e-4)
    assert "eSpeak NG" in engine.version()

    written = engine.synthesize_to_file(tmp_path / "x.wav", "Seven yellow boxes.", "en-us+m3", pitch=50, rate=175)
    read, sample_rate = read_wav(tmp_path / "x.wav")
    assert sample_rate == SAMPLE_RATE and np.array_equal(read, written)
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]  # no temporary file left behind


@requires_espeak
def test_espeak_pitch_setting_raises_f0():
    engine = EspeakEngine()
    medians = [_f0_median(engine.synthesize("Seven yellow boxes arrived today.", "en-us+f2", pitch=p, rate=175))
               for p in (20, 50, 80)]
    assert medians[0] < medians[1] < medians[2]
    assert semitones(medians[2], medians[0]) > 5.0  # -p 20 -> 80 is most of an octave


@requires_espeak
def test_espeak_voice_checks(monkeypatch):
    engine = EspeakEngine()
    if "1.51" in engine.version():  # espeak-ng 1.51 drops the variant of the alias en-gb
        with pytest.raises(EngineError, match="ignores the variant of 'en-gb\\+m4'.*'en\\+m4'"):
            engine.check_voice("en-gb+m4")
    engine.check_voice("en+m4")
    with monkeypatch.context() as patch:  # any version: a variant that changes nothing is refused
        patch.setattr(engine, "_espeak_wav", lambda text, voice, options=(): b"same bytes")
        with pytest.raises(EngineError, match="ignores the variant of 'en-us\\+m1'"):
            engine.check_voice("en-us+m1")
    with pytest.raises(EngineError, match="no voiced source"):
        engine.check_voice("en-us+whisper")
    with pytest.raises(EngineError, match="unknown espeak-ng variant 'nosuchvariant'"):
        engine.check_voice("en-us+nosuchvariant")
    with pytest.raises(ValueError, match="integer in 0..99"):
        engine.render("Hello there.", "en-us", pitch=120, rate=175)


@requires_espeak
def test_voices_differ_more_than_pitches():
    """Timbre: the mean log-mel of one voice at two pitches is closer than two voices at the same setting."""
    from melinterp.audio import mel_spectrogram

    engine = EspeakEngine()

    def mean_log_mel(voice, pitch):
        mel = mel_spectrogram(engine.synthesize("Seven yellow boxes arrived today.", voice, pitch=pitch,
                                                rate=175)).numpy()
        loud = mel.max(axis=0) > mel.max() - 4.0  # frames with speech
        return mel[:, loud].mean(axis=1)

    def distance(a, b):
        return float(np.sqrt(np.mean((a - b) ** 2)))

    same_voice = distance(mean_log_mel("en-us+m3", 40), mean_log_mel("en-us+m3", 60))
    reference = mean_log_mel("en-us+m3", 50)
    for other in ("en-us+klatt4", "en-us+Andy"):
        assert distance(reference, mean_log_mel(other, 50)) > 2.0 * same_voice


@requires_flite
def test_flite_engine_pitch_knob_follows_factor():
    engine = FliteEngine()
    text = "Seven yellow boxes arrived today."
    low, mid, high = (_f0_median(engine.synthesize(text, "awb", pitch=k, rate=1.0)) for k in (0.8, 1.0, 1.25))
    assert low < mid < high
    assert semitones(high, low) == pytest.approx(12 * math.log2(1.25 / 0.8), abs=1.0)
    with pytest.raises(EngineError, match="flite has no voice 'nobody'"):
        engine.render(text, "nobody", pitch=1.0, rate=1.0)
    with pytest.raises(ValueError, match="breaks below int_f0_target_mean=110 Hz"):
        engine.render(text, "slt", pitch=0.55, rate=1.0)


@requires_flite
def test_flite_world_pitch_knob_for_rms():
    """rms ignores int_f0_target_mean, so its pitch moves by WORLD resynthesis."""
    engine = FliteEngine()
    low, high = (_f0_median(engine.synthesize("Hello there.", "rms", pitch=k, rate=1.0)) for k in (0.8, 1.25))
    assert semitones(high, low) == pytest.approx(12 * math.log2(1.25 / 0.8), abs=0.7)


def test_world_pitch_shift_on_a_tone():
    tone = harmonic_tone(150.0, seconds=1.0)
    shifted = world_pitch_shift(tone, SAMPLE_RATE, 1.25)
    assert abs(shifted.size - tone.size) < 0.01 * SAMPLE_RATE
    assert _f0_median(shifted, "harvest") == pytest.approx(187.5, rel=0.02)


def test_trim_silence_keeps_margin():
    speech = harmonic_tone(200.0, seconds=0.5)
    padded = np.concatenate([np.zeros(SAMPLE_RATE), speech, np.zeros(SAMPLE_RATE // 100)])
    trimmed = trim_silence(padded, SAMPLE_RATE, margin=0.1)
    assert trimmed.size == pytest.approx(speech.size + 0.2 * SAMPLE_RATE, abs=0.011 * SAMPLE_RATE)
    assert np.abs(trimmed[: int(0.09 * SAMPLE_RATE)]).max() == 0.0


# --------------------------------------------------------------------------------------------------------------
# make-corpus --preset tiny, end to end
# --------------------------------------------------------------------------------------------------------------

SPEAKER_NAME = re.compile(r"^(espeak|flite)-[A-Za-z0-9+_.-]+_p[0-9.]+_s[0-9.]+$")


def _build(out: Path, *extra: str) -> None:
    assert main(["make-corpus", "--out", str(out), "--preset", "tiny", "--seed", "7", "--quiet", *extra]) == 0


def _corpus_files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "tiny"
    _build(root, "--jobs", "2")
    return root


@requires_espeak
@requires_flite
@pytest.mark.slow
def test_tiny_corpus_filelists_and_splits(tiny_corpus):
    from melinterp.data.filelists import read_filelist

    corpus = json.loads((tiny_corpus / "corpus.json").read_text())
    lists = {split: read_filelist(tiny_corpus / "filelists" / f"{split}.txt") for split in ("train", "val", "heldout")}
    assert {split: len(items) for split, items in lists.items()} == {
        split: corpus["counts"][split] for split in ("train", "val", "heldout")}
    assert corpus["counts"]["train"] == 3 * 2 * 5 and corpus["counts"]["heldout"] == 3 * 2 * 3

    heldout_voices = set(corpus["voices"]["heldout"])
    for split, items in lists.items():
        for utterance in items:
            assert utterance.wav_path.is_file() and SPEAKER_NAME.match(utterance.speaker)
            assert utterance.wav_path.parent.name == utterance.speaker
            voice = utterance.speaker.rsplit("_p", 1)[0]
            assert (voice in heldout_voices) == (split == "heldout")
    texts = {split: {tuple(words_of(u.text)) for u in items} for split, items in lists.items()}
    assert texts["train"].isdisjoint(texts["heldout"]) and texts["train"].isdisjoint(texts["val"])
    assert corpus["hours"]["train"] > 0 and corpus["engines"]["espeak"]["version"]
    from melinterp.data.corpus import ENGINE_LICENCES

    for name, engine in corpus["engines"].items():  # every voice source's licence travels with the corpus
        assert engine["licence"] == ENGINE_LICENCES[name]


@requires_espeak
@requires_flite
@pytest.mark.slow
def test_tiny_corpus_metadata_beside_each_wav(tiny_corpus):
    from melinterp.data.engines import read_wav
    from melinterp.data.filelists import read_filelist

    for split in ("train", "val", "heldout"):
        for utterance in read_filelist(tiny_corpus / "filelists" / f"{split}.txt"):
            meta = json.loads(utterance.wav_path.with_suffix(".json").read_text(encoding="utf-8"))
            audio, sample_rate = read_wav(utterance.wav_path)
            assert sample_rate == SAMPLE_RATE and meta["num_samples"] == audio.size
            assert meta["text"] == utterance.text and meta["speaker"] == utterance.speaker
            assert meta["split"] == split and -6.0 <= meta["gain_db"] <= 0.0
            assert meta["duration_s"] == pytest.approx(audio.size / SAMPLE_RATE, abs=1e-4)
            # the gain is exact: peak-normalised to -1 dBFS, then gain_db
            assert np.abs(audio).max() == pytest.approx(PEAK_LEVEL * 10 ** (meta["gain_db"] / 20), abs=2e-4)
            assert 60.0 < meta["f0_median_hz"] < 400.0 and meta["voiced_fraction"] > 0.2


@requires_espeak
@requires_flite
@pytest.mark.slow
def test_tiny_corpus_triplets(tiny_corpus):
    from melinterp.data.engines import read_wav

    triplets = [json.loads(line) for line in (tiny_corpus / "triplets.jsonl").read_text().splitlines()]
    assert len(triplets) == 2
    heldout_voices = set(json.loads((tiny_corpus / "corpus.json").read_text())["voices"]["heldout"])
    apart = []
    for triplet in triplets:
        a, b, b_at_a = triplet["a"], triplet["b"], triplet["b_at_a_pitch"]
        assert (b_at_a["voice"], b_at_a["rate_setting"]) == (b["voice"], b["rate_setting"])
        assert a["voice"] != b["voice"]
        assert {f"{a['engine']}-{a['voice']}", f"{b['engine']}-{b['voice']}"} <= heldout_voices
        assert abs(triplet["residual_semitones"]) <= 1.0
        assert triplet["residual_semitones"] == pytest.approx(
            semitones(b_at_a["f0_median_hz"], a["f0_median_hz"]), abs=2e-3)
        # an independent judge (harvest, not the dio that calibrated) agrees within a semitone
        a_audio, _ = read_wav(tiny_corpus / a["wav"])
        b_at_a_audio, _ = read_wav(tiny_corpus / b_at_a["wav"])
        assert abs(semitones(_f0_median(b_at_a_audio, "harvest"), _f0_median(a_audio, "harvest"))) <= 1.0
        apart.append(abs(triplet["semitones_a_minus_b"]))
        assert triplet["far"] == (apart[-1] >= 4.0)
    assert max(apart) >= 4.0 and min(apart) < 4.0


@requires_espeak
@requires_flite
@pytest.mark.slow
def test_tiny_corpus_is_deterministic_and_resumes(tiny_corpus, tmp_path):
    # Same seed, another folder, one process instead of two: byte-identical filelists, metadata and audio.
    again = tmp_path / "again"
    _build(again, "--jobs", "1")
    first, second = _corpus_files(tiny_corpus), _corpus_files(again)
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []

    # Resume: nothing finished is rewritten; a missing utterance and a killed run's temporary file are handled.
    wavs = sorted(again.glob("wavs/*/*.wav"))
    stamps = {path: path.stat().st_mtime_ns for path in wavs}
    lost = wavs[3]
    lost.unlink()
    lost.with_suffix(".json").unlink()
    leftover = lost.parent / f".{lost.name}.abc123.tmp"
    leftover.write_bytes(b"half a wav")
    _build(again, "--jobs", "1")
    assert lost.read_bytes() == first[str(lost.relative_to(again))]
    assert not leftover.exists()
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in stamps.items() if path != lost)
    assert _corpus_files(again) == second
