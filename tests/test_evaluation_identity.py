"""`melinterp evaluate --sections identity`: is mode none nearest its own voice's centroid, among all voices?"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import harmonic_tone

from melinterp.cli import main
from melinterp.evaluation import benchmark
from melinterp.evaluation.identity import aggregate_identity, identify, identity_markdown, load_identity_set

# ---------------------------------------------------------------------------------------------------------------
# A corpus of tones: each voice a fundamental at its own pitch, 1.5 times it at its other pitch setting
# ---------------------------------------------------------------------------------------------------------------

VOICE_F0 = {"espeak-en-us+m3": 100.0, "flite-slt": 160.0,  # training
            "espeak-en-us+f4": 220.0, "flite-awb": 130.0,  # held out
            "festival-ked": 280.0}  # novel
OFF_PITCH = 1.5


def _speakers(voice: str) -> list[tuple[str, float, bool]]:
    """(speaker name, f0, at its own pitch) of a voice: two rates at its own pitch, one rate at another."""
    engine = voice.split("-")[0]
    own, other = ("50", "70") if engine == "espeak" else ("1.00", "1.50")
    rates = ("150", "190") if engine == "espeak" else ("0.90", "1.10")
    f0 = VOICE_F0[voice]
    return [(f"{voice}_p{own}_s{rates[0]}", f0, True), (f"{voice}_p{own}_s{rates[1]}", f0, True),
            (f"{voice}_p{other}_s{rates[0]}", f0 * OFF_PITCH, False)]


def _tone_voices_corpus(root: Path, per_speaker: int = 3) -> Path:
    """corpus.json, train/val/heldout filelists and a novel/ folder (its own heldout filelist, no corpus.json);
    every recording says a text of its own."""
    from melinterp.data.engines import write_wav

    splits = {"train": ["espeak-en-us+m3", "flite-slt"], "heldout": ["espeak-en-us+f4", "flite-awb"],
              "novel": ["festival-ked"]}
    speakers, lines, count = {}, {"train": [], "val": [], "heldout": [], "novel": []}, 0
    for split, voices in splits.items():
        for voice in voices:
            for speaker, f0, own in _speakers(voice):
                speakers[speaker] = {"engine": voice.split("-")[0], "voice": voice.split("-", 1)[1], "split": split,
                                     "pitch_control": "engine",
                                     "pitch_setting": (50 if own else 70) if voice.startswith("espeak") else
                                     (1.0 if own else 1.5)}
                for index in range(per_speaker):
                    count += 1
                    wav = root / "wavs" / speaker / f"t{count:05d}.wav"
                    wav.parent.mkdir(parents=True, exist_ok=True)
                    write_wav(wav, harmonic_tone(f0, seconds=0.4), 22050)
                    listed = "val" if split == "train" and index == per_speaker - 1 else split
                    prefix = "../../" if split == "novel" else "../"
                    lines[listed].append(f"{prefix}wavs/{speaker}/{wav.name}|{speaker}|Sentence number {count}.")
    for name, folder in (("train", root), ("val", root), ("heldout", root), ("novel", root / "novel")):
        (folder / "filelists").mkdir(parents=True, exist_ok=True)
        filelist = "heldout" if name == "novel" else name
        (folder / "filelists" / f"{filelist}.txt").write_text("\n".join(lines[name]) + "\n", encoding="utf-8")
    (root / "corpus.json").write_text(json.dumps({"speakers": speakers}), encoding="utf-8")
    return root


def _f0_embedding(self, audio, sample_rate=22050):
    """A stand-in speaker judge: a bump at the waveform's strongest frequency, so a tone's voice is its f0."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.size < sample_rate // 10 or np.max(np.abs(audio)) < 1e-4:
        raise ValueError("audio is silent or too short: no speaker to embed")
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    peak_hz = np.fft.rfftfreq(audio.size, 1 / sample_rate)[np.argmax(spectrum)]
    grid = np.arange(50.0, 500.0, 5.0)
    return np.exp(-0.5 * ((grid - peak_hz) / 8.0) ** 2).astype(np.float32)


@pytest.fixture
def f0_judge(monkeypatch):
    from melinterp.evaluation.speaker import SpeakerSimilarity

    monkeypatch.setattr(SpeakerSimilarity, "embed", _f0_embedding)


class TonePipeline:
    """A stand-in for the pipeline: speaks the voice of ref1 as a tone at ``speaks[voice]`` Hz (the voice's own f0
    unless told otherwise), or silence where that is None."""

    feature_config = SimpleNamespace(hop_length=256)

    def __init__(self, speaks: dict | None = None):
        self.speaks, self.calls = speaks or {}, []

    def set_progress_bar_config(self, **_):
        pass

    def __call__(self, text, ref1, ref2, **keywords):
        assert ref2 is None and keywords["mode"] == "none"
        self.calls.append((text, Path(ref1)))
        voice = benchmark.voice_of(Path(ref1).parent.name)
        f0 = self.speaks.get(voice, VOICE_F0[voice])
        audio = np.zeros(22050 // 2, np.float32) if f0 is None else harmonic_tone(f0, seconds=0.5)
        frames = audio.size // 256
        return SimpleNamespace(lengths=[frames], audios=audio[None], mels=np.zeros((1, 80, frames), np.float32),
                               routing_map=None, ref1_mass=None)


# ---------------------------------------------------------------------------------------------------------------
# Identification
# ---------------------------------------------------------------------------------------------------------------

def test_an_output_counts_only_when_nearest_its_own_centroid():
    names = ["train-a", "train-b", "heldout-c"]
    centroids = np.eye(3, 4)  # (V, D) unit rows
    own = identify(np.array([0.2, 0.1, 0.9, 0.0]), "heldout-c", names, centroids)
    assert own["identified"] and own["nearest"] == "heldout-c" and own["nearest_other"] == "train-a"
    norm = np.linalg.norm([0.2, 0.1, 0.9])
    assert own["similarity_own"] == pytest.approx(0.9 / norm)
    assert own["similarity_nearest_other"] == pytest.approx(0.2 / norm)

    trained = identify(np.array([0.1, 0.8, 0.6, 0.0]), "heldout-c", names, centroids)  # nearer a training voice
    assert not trained["identified"] and trained["nearest"] == trained["nearest_other"] == "train-b"
    assert trained["similarity_own"] < trained["similarity_nearest_other"]
    silent = identify(None, "heldout-c", names, centroids)  # the judge could not embed it
    assert not silent["identified"] and silent["nearest"] is None

    results = [{"voice": "heldout-c", "output": own, "ground_truth": own},
               {"voice": "heldout-c", "output": trained, "ground_truth": own},
               {"voice": "heldout-c", "output": silent, "ground_truth": own}]
    figures = aggregate_identity(results)
    assert figures["overall"]["identified"] == pytest.approx(1 / 3)  # not embedded: not identified
    assert figures["overall"]["ground_truth_identified"] == 1.0
    assert figures["voices"]["heldout-c"]["mistaken_for"] == {"train-b": 1}
    assert figures["overall"]["not_embedded"] == 1 and figures["overall"]["ground_truth_mistaken_for"] == {}


# ---------------------------------------------------------------------------------------------------------------
# The outputs and the enrolment
# ---------------------------------------------------------------------------------------------------------------

def test_enrolment_leaves_out_every_recording_the_outputs_use(tmp_path):
    corpus = _tone_voices_corpus(tmp_path / "corpus")
    identity = load_identity_set(corpus, clips=2, enrol=3)
    assert identity.training_corpus == corpus and identity.heldout_voices == ["espeak-en-us+f4", "flite-awb"]
    assert list(identity.enrolment) == ["espeak-en-us+m3", "flite-slt", "espeak-en-us+f4", "flite-awb"]
    assert len(identity.items) == 4 and all(len(paths) == 3 for paths in identity.enrolment.values())
    for voice in identity.heldout_voices:
        items = [item for item in identity.items if item.voice == voice]
        used = {item.reference for item in items} | {item.text_from for item in items}
        assert len(used) == 3  # two clips, and the recording after the second gives its text
        assert used.isdisjoint(identity.enrolment[voice])
        for item in items:
            assert benchmark.voice_of(item.reference.parent.name) == voice == benchmark.voice_of(item.speaker)
            assert item.text != f"Sentence number {int(item.reference.stem[1:])}."  # another sentence
            assert item.text == f"Sentence number {int(item.text_from.stem[1:])}."
        assert {item.reference.parent.name for item in items} == {speaker for speaker, _, own in _speakers(voice)
                                                                  if own}  # spread over its rates
    # own pitch: neither a clip nor an enrolment recording is at another pitch setting
    everything = [item.reference for item in identity.items] + [p for paths in identity.enrolment.values()
                                                                for p in paths]
    assert all("_p70_" not in str(path) and "_p1.50_" not in str(path) for path in everything)
    assert load_identity_set(corpus, clips=2, enrol=3).items == identity.items  # deterministic

    across = load_identity_set(corpus, clips=2, enrol=3, pitch="all")
    assert any("_p70_" in str(path) or "_p1.50_" in str(path) for paths in across.enrolment.values() for path in paths)
    with pytest.raises(ValueError, match=r"fewer than 7 recordings .* espeak-en-us\+f4 \(6\)"):
        load_identity_set(corpus, clips=5, enrol=3)  # 6 at its own pitch: 5 clips, a text, and no centroid left
    assert len(load_identity_set(corpus, clips=5, enrol=3, pitch="all").items) == 10
    with pytest.raises(ValueError, match="--identity-pitch"):
        load_identity_set(corpus, pitch="low")


def test_a_novel_corpus_is_told_from_its_parents_training_voices(tmp_path, capsys):
    corpus = _tone_voices_corpus(tmp_path / "corpus")
    novel = load_identity_set(corpus / "novel", clips=2, enrol=3)
    assert novel.training_corpus == corpus.resolve()
    assert novel.heldout_voices == ["festival-ked"]  # its own held-out filelist, not the parent's
    assert list(novel.enrolment) == ["espeak-en-us+m3", "flite-slt", "festival-ked"]
    assert all(item.voice == "festival-ked" for item in novel.items)

    # elsewhere, the training corpus is named
    (tmp_path / "moved").mkdir()
    moved = (corpus / "novel").rename(tmp_path / "moved" / "novel")
    for filelist in (moved / "filelists" / "heldout.txt",):
        filelist.write_text(filelist.read_text().replace("../../wavs/", f"{corpus}/wavs/"))
    with pytest.raises(FileNotFoundError, match="--training-corpus"):
        load_identity_set(moved, clips=2, enrol=3)
    assert load_identity_set(moved, clips=2, enrol=3, training_corpus=corpus).items == novel.items
    # ... and the command says so before it loads a model
    assert main(["evaluate", "--model", str(tmp_path / "no-model"), "--corpus", str(moved), "--out",
                 str(tmp_path / "out"), "--sections", "identity"]) == 1
    assert "pass --training-corpus DIR" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# The section, with a stand-in pipeline and judge
# ---------------------------------------------------------------------------------------------------------------

def test_identity_figures_reach_the_report_and_resume(tmp_path, f0_judge):
    corpus = _tone_voices_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    pipeline = TonePipeline({"flite-awb": VOICE_F0["espeak-en-us+m3"]})  # awb comes out as a training voice
    report = benchmark.evaluate(pipeline, corpus, out, sections=("identity",), identity_clips=2, identity_enrol=3,
                                steps=2, progress=False)
    assert report["config"]["sections"] == ["identity"] and "aggregates" not in report and "quality" not in report
    identity = json.loads((out / "report.json").read_text())["identity"]
    assert identity["config"]["pitch"] == "own" and identity["config"]["clips"] == 2
    assert identity["config"]["training_voices"] == ["espeak-en-us+m3", "flite-slt"]
    overall, voices = identity["overall"], identity["voices"]
    assert overall["n_outputs"] == 4 and overall["identified"] == 0.5 and overall["ground_truth_identified"] == 1.0
    assert voices["espeak-en-us+f4"]["identified"] == 1.0 and voices["flite-awb"]["identified"] == 0.0
    assert voices["flite-awb"]["mistaken_for"] == {"espeak-en-us+m3": 2}
    assert voices["flite-awb"]["similarity_nearest_other"] == pytest.approx(1.0, abs=0.01)
    for item in identity["items"]:
        assert item["ground_truth"]["identified"] and item["reference"] not in identity["enrolment"][item["voice"]]
    texts = {text for text, _ in pipeline.calls}
    assert len(pipeline.calls) == 4 and texts == {item["text"] for item in identity["items"]}

    markdown = (out / "report.md").read_text()
    assert "## Voice identity" in markdown and "among 4: 2 training voices" in markdown
    assert "| all | 4 | 50 % | 100 % |" in markdown
    assert "| flite-awb | 2 | 0 % | 100 % |" in markdown and "| espeak-en-us+m3 (2) | – |" in markdown
    assert "| espeak-en-us+f4 | 2 | 100 % | 100 % |" in markdown

    # resumed: nothing synthesised or identified again; other centroids: identified again from the cached outputs
    (out / "report.json").unlink()
    again = TonePipeline({"flite-awb": None})  # would make the judge fail, were it called
    assert benchmark.evaluate(again, corpus, out, sections=("identity",), identity_clips=2, identity_enrol=3,
                              steps=2, progress=False)["identity"] == identity
    assert not again.calls
    fewer = benchmark.evaluate(again, corpus, out, sections=("identity",), identity_clips=2, identity_enrol=1,
                               steps=2, progress=False)["identity"]
    assert not again.calls and fewer["overall"]["identified"] == 0.5
    assert {item["centroids"] for item in fewer["items"]} != {item["centroids"] for item in identity["items"]}
    assert all(len(paths) == 1 for paths in fewer["enrolment"].values())


def test_an_output_the_judge_cannot_embed_is_not_identified(tmp_path, f0_judge):
    corpus = _tone_voices_corpus(tmp_path / "corpus")
    report = benchmark.evaluate(TonePipeline({"espeak-en-us+f4": None}), corpus, tmp_path / "out",
                                sections=("identity",), identity_clips=1, identity_enrol=2, progress=False)
    figures = report["identity"]["voices"]["espeak-en-us+f4"]
    assert figures["identified"] == 0.0 and figures["not_embedded"] == 1 and figures["mistaken_for"] == {}
    assert any("speaker embedding" in reason for item in report["identity"]["items"] for reason in item["undefined"])
    assert "1 outputs the judge could not embed" in "\n".join(identity_markdown(report["identity"]))


def test_quick_identity_from_the_command_line(tmp_path, f0_judge, one_thread):
    """The tiny random model speaks noise: the figures are checked for shape, the run for its quick settings."""
    from melinterp.testing import tiny_pipeline

    corpus = _tone_voices_corpus(tmp_path / "corpus")
    model, out = tmp_path / "model", tmp_path / "out"
    tiny_pipeline(seed=0).save_pretrained(model)
    assert main(["evaluate", "--model", str(model), "--corpus", str(corpus / "novel"), "--out", str(out),
                 "--sections", "identity", "--quick", "--identity-enrol", "2", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["quick"] and report["config"]["steps"] == benchmark.QUICK_STEPS
    identity = report["identity"]
    assert identity["config"]["clips"] == 1 and identity["overall"]["n_outputs"] == 1  # one novel voice, one clip
    assert identity["config"]["training_corpus"] == str(corpus.resolve())
    assert identity["overall"]["ground_truth_identified"] == 1.0
    assert 0.0 <= identity["overall"]["identified"] <= 1.0
    assert "| festival-ked | 1 |" in (out / "report.md").read_text()
