"""Corpus importers (`melinterp prepare-filelists`): miniature LJSpeech, LibriTTS, VCTK and ESD trees as their
publishers lay them out, the filelists read from them, bad layouts, and a few training steps on an import."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import harmonic_tone, requires_espeak

from melinterp.cli import main
from melinterp.data import read_filelist
from melinterp.data.importers import (
    FORMATS,
    LayoutError,
    read_esd,
    read_libritts,
    read_ljspeech,
    read_vctk,
    split_utterances,
)

TEXTS = ["Red apples fell.", "The old mill turned.", "Seven bright stars.", "Green fields wait.",
         "One more day.", "A quiet harbour."]


def tone_file(path: Path, f0: float, sample_rate: int = 22050, seconds: float = 0.6) -> Path:
    """A harmonic tone (with 0.5 s of silence after it) at ``sample_rate``, as wav or flac by the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tone = harmonic_tone(f0, seconds, sr=sample_rate)
    sf.write(path, np.concatenate([tone, np.zeros(sample_rate // 2, np.float32)]), sample_rate)
    return path


def make_ljspeech(root: Path) -> Path:
    lines = []
    for n, text in enumerate(TEXTS[:4], start=1):
        tone_file(root / "wavs" / f"LJ001-{n:04d}.wav", 200.0)
        lines.append(f"LJ001-{n:04d}|{text.upper()}|{text}")
    lines.append("LJ001-0099|No recording.|No recording.")  # listed, absent: skipped and counted
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def make_libritts(root: Path) -> Path:
    """Subset folder / speaker / chapter, 24 kHz wavs beside their .normalized.txt and .original.txt."""
    n = 0
    for speaker, f0 in (("19", 120.0), ("103", 220.0)):
        for chapter in ("198", "1240"):
            for index in range(2):
                stem = f"{speaker}_{chapter}_000000_{index:06d}"
                folder = root / "train-clean-100" / speaker / chapter
                tone_file(folder / f"{stem}.wav", f0, sample_rate=24000)
                (folder / f"{stem}.normalized.txt").write_text(TEXTS[n % 6] + "\n", encoding="utf-8")
                (folder / f"{stem}.original.txt").write_text(TEXTS[n % 6].upper(), encoding="utf-8")
                n += 1
    return root


def make_vctk(root: Path) -> Path:
    """VCTK 0.92: txt/ and 48 kHz flac for mic1 and mic2; p315 has recordings but no transcripts."""
    for speaker, f0 in (("p225", 210.0), ("p226", 115.0), ("p227", 130.0)):
        for index in range(1, 4):
            stem = f"{speaker}_{index:03d}"
            (root / "txt" / speaker).mkdir(parents=True, exist_ok=True)
            (root / "txt" / speaker / f"{stem}.txt").write_text(TEXTS[index] + "\n", encoding="utf-8")
            for mic in ("mic1", "mic2"):
                tone_file(root / "wav48_silence_trimmed" / speaker / f"{stem}_{mic}.flac", f0, sample_rate=48000)
    tone_file(root / "wav48_silence_trimmed" / "p315" / "p315_001_mic1.flac", 150.0, sample_rate=48000)
    (root / "txt" / "p225" / "p225_009.txt").write_text("Transcript only.\n", encoding="utf-8")
    return root


def make_esd(root: Path) -> Path:
    """ESD as unpacked from its archive: an extra 'Emotion Speech Dataset' folder, speaker folders with a
    transcript (UTF-16 for one, as some of the publisher's are) and emotion folders with split subfolders; a
    Mandarin speaker (GB18030 transcript) that the default selection leaves out."""
    base = root / "Emotion Speech Dataset"
    for speaker, f0, encoding in (("0011", 110.0, "utf-8"), ("0012", 230.0, "utf-16"), ("0013", 160.0, "utf-8"),
                                  ("0001", 250.0, "gb18030")):
        lines, n = [], 0
        for emotion in ("Angry", "Happy", "Neutral"):
            for split in ("train", "test"):
                n += 1
                key = f"{speaker}_{n:06d}"
                tone_file(base / speaker / emotion / split / f"{key}.wav", f0 * (1.1 if emotion == "Angry" else 1))
                text = "打远一看" if speaker == "0001" else TEXTS[n % 6]
                label = "中立" if speaker == "0001" else emotion
                lines.append(f"{key}\t{text}\t{label}")
        (base / speaker / f"{speaker}.txt").write_text("\n".join(lines) + "\n", encoding=encoding)
    return root


MAKERS = {"ljspeech": make_ljspeech, "libritts": make_libritts, "vctk": make_vctk, "esd": make_esd}


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    return {name: make(tmp_path_factory.mktemp(name)) for name, make in MAKERS.items()}


def test_ljspeech_reads_the_normalised_column_and_counts_missing_recordings(trees):
    utterances, skipped = read_ljspeech(trees["ljspeech"])
    assert [u.text for u in utterances] == TEXTS[:4]  # the third column, not the upper-cased second
    assert {u.speaker for u in utterances} == {"LJ"} and all(u.wav_path.is_file() for u in utterances)
    assert skipped == {"transcript without a recording": 1}


def test_libritts_takes_speaker_ids_and_normalized_transcripts_of_every_subset(trees):
    utterances, skipped = read_libritts(trees["libritts"])
    assert len(utterances) == 8 and skipped == {}
    assert sorted({u.speaker for u in utterances}) == ["103", "19"]
    assert all(u.wav_path.name.startswith(u.speaker + "_") for u in utterances)
    assert utterances[0].text in TEXTS  # .normalized.txt, not .original.txt


def test_vctk_pairs_transcripts_with_the_chosen_microphone(trees):
    utterances, skipped = read_vctk(trees["vctk"])
    assert len(utterances) == 9 and all(u.wav_path.name.endswith("_mic1.flac") for u in utterances)
    assert sorted({u.speaker for u in utterances}) == ["p225", "p226", "p227"]  # p315: no transcripts
    assert skipped == {"transcript without a mic1 recording": 1}
    assert all(u.wav_path.name.endswith("_mic2.flac") for u in read_vctk(trees["vctk"], mic="mic2")[0])


def test_esd_names_speakers_by_emotion_reads_utf16_and_skips_mandarin_by_default(trees):
    utterances, skipped = read_esd(trees["esd"])
    assert sorted({u.speaker for u in utterances}) == [f"{s}_{e}" for s in ("0011", "0012", "0013")
                                                       for e in ("Angry", "Happy", "Neutral")]
    assert len(utterances) == 18 and all(u.text in TEXTS for u in utterances)  # 0012's UTF-16 transcript read
    assert skipped == {"speaker not selected (--esd-speakers)": 1}
    mandarin, _ = read_esd(trees["esd"], speakers=None)
    assert {u.text for u in mandarin if u.speaker.startswith("0001_")} == {"打远一看"}  # GB18030


@pytest.mark.parametrize("format_name, damage, message", [
    ("ljspeech", lambda root: (root / "metadata.csv").unlink(), r"metadata\.csv not found.*expected layout"),
    ("ljspeech", lambda root: (root / "metadata.csv").write_text("|no id\n"), r"metadata\.csv:1: expected 'id\|text"),
    ("vctk", lambda root: (root / "wav48_silence_trimmed").rename(root / "audio"),
     "has neither wav48_silence_trimmed/ nor wav48/"),
    ("vctk", lambda root: (root / "txt").rename(root / "text"), r"txt not found: the VCTK transcripts folder"),
    ("libritts", lambda root: [p.rename(p.with_suffix(".txt.bak")) for p in root.rglob("*.normalized.txt")],
     r"no \*\.normalized\.txt transcript"),
    ("esd", lambda root: (root / "Emotion Speech Dataset" / "0011" / "0011.txt").unlink(),
     "speaker 0011's transcript"),
])
def test_bad_layouts_say_what_was_expected_where(tmp_path, format_name, damage, message):
    root = MAKERS[format_name](tmp_path / format_name)
    damage(root)
    with pytest.raises(LayoutError, match=message):
        FORMATS[format_name].read(root)


def test_splits_are_per_speaker_and_disjoint(trees):
    utterances, _ = read_libritts(trees["libritts"])
    splits = split_utterances(utterances, val_fraction=0.25, test_fraction=0.25, seed=1)
    paths = {name: {u.wav_path for u in part} for name, part in splits.items()}
    assert sum(map(len, paths.values())) == 8 and not (paths["train"] & paths["val"] | paths["train"] & paths["test"])
    for speaker in ("19", "103"):  # 4 utterances each: one val, one test, two train
        assert [sum(u.speaker == speaker for u in splits[name]) for name in ("train", "val", "test")] == [2, 1, 1]
    assert split_utterances(utterances, val_fraction=0.25, test_fraction=0.25, seed=1) == splits  # seeded


def test_held_out_voices_take_all_their_emotions_to_test(trees):
    utterances, _ = read_esd(trees["esd"])
    pattern = FORMATS["esd"].reference_group_pattern
    splits = split_utterances(utterances, test_speakers=["0012"], reference_group_pattern=pattern)
    assert {u.speaker for u in splits["test"]} == {"0012_Angry", "0012_Happy", "0012_Neutral"}
    assert not any(u.speaker.startswith("0012") for u in splits["train"] + splits["val"])
    chosen = split_utterances(utterances, test_speakers=1, reference_group_pattern=pattern, seed=3)
    assert len({u.speaker[:4] for u in chosen["test"]}) == 1
    with pytest.raises(ValueError, match="names voices the corpus does not have: 9999"):
        split_utterances(utterances, test_speakers=["9999"], reference_group_pattern=pattern)
    with pytest.raises(ValueError, match="has 3 voice"):
        split_utterances(utterances, test_speakers=3, reference_group_pattern=pattern)


def test_command_writes_relative_filelists_and_import_json(trees, tmp_path, capsys):
    out = tmp_path / "lists"
    out.mkdir()
    (out / "test.txt").write_text("stale.wav|x|from an earlier run\n")
    assert main(["prepare-filelists", str(trees["vctk"]), "--format", "vctk", "--out", str(out),
                 "--test-speaker-ids", "p227", "--val-fraction", "0.3"]) == 0
    listed = {name: read_filelist(out / f"{name}.txt") for name in ("train", "val", "test")}
    assert {u.speaker for u in listed["test"]} == {"p227"} and len(listed["val"]) == 2
    assert all(u.wav_path.is_file() for part in listed.values() for u in part)
    assert not (out / "train.txt").read_text().startswith("/")  # relative to the folder, movable with it
    report = json.loads((out / "import.json").read_text())
    assert report["speaker_disjoint_test"] and report["splits"]["test"]["voices"] == ["p227"]
    assert "CC BY 4.0" in report["licence"]
    assert "skipped 1: transcript without a mic1 recording" in capsys.readouterr().err

    assert main(["prepare-filelists", str(trees["esd"]), "--format", "esd", "--out", str(tmp_path / "esd"),
                 "--test-fraction", "0", "--val-fraction", "0"]) == 0
    assert not (tmp_path / "esd" / "test.txt").exists()
    assert '"reference_group_pattern": "_(Angry|Happy|Neutral|Sad|Surprise)$"' in capsys.readouterr().out


def test_command_refuses_a_missing_corpus_and_an_output_under_a_file(trees, tmp_path, capsys):
    assert main(["prepare-filelists", str(tmp_path / "nowhere"), "--format", "ljspeech", "--out",
                 str(tmp_path / "o")]) == 1
    assert "corpus folder not found" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["prepare-filelists", str(trees["ljspeech"]), "--format", "ljspeech", "--out",
                 str(tmp_path / "file" / "lists")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err


@requires_espeak
def test_an_imported_esd_trains_with_references_across_emotions(trees, tmp_path):
    """prepare-filelists -> preprocess (flac/48 kHz/silences handled) -> a few training steps -> a loadable model."""
    from melinterp import MelStyleInterpolationPipeline
    from melinterp.data import SpeechStyleDataset, build_cache
    from melinterp.training import TrainingConfig
    from melinterp.training.trainer import Trainer

    out = tmp_path / "esd"
    assert main(["prepare-filelists", str(trees["esd"]), "--format", "esd", "--out", str(out),
                 "--test-speaker-ids", "0013"]) == 0
    report = json.loads((out / "import.json").read_text())
    build_cache(read_filelist(out / "train.txt"), out / "cache", f0_method="dio", jobs=1, progress=False)
    pattern = report["reference_group_pattern"]
    dataset = SpeechStyleDataset(out / "train.txt", out / "cache", reference_group_pattern=pattern)
    angry = next(i for i, u in enumerate(dataset.utterances) if u.speaker == "0011_Angry")
    drawn = {dataset.utterances[dataset.reference_index(angry, torch.Generator().manual_seed(k))].speaker
             for k in range(40)}
    assert {"0011_Happy", "0011_Neutral"} <= drawn <= {"0011_Angry", "0011_Happy", "0011_Neutral"}  # same speaker

    config = TrainingConfig.from_dict({
        "data": {"train_filelist": str(out / "train.txt"), "val_filelist": str(out / "train.txt"),
                 "cache_dir": str(out / "cache"), "batch_size": 4, "max_ref_frames": 64, "segment_frames": 32,
                 "reference_group_pattern": pattern},
        "models": str(Path(__file__).resolve().parents[1] / "examples" / "configs" / "models" / "tiny.json"),
        "optim": {"learning_rate": 2e-3, "warmup_steps": 1, "max_steps": 3, "seed": 0},
        "log": {"log_every": 1, "val_every": 1000, "checkpoint_every": 3},
    })
    result = Trainer(config, tmp_path / "run", progress=False).train()
    assert result.step == 3 and all(np.isfinite(v) for v in result.last_losses.values() if isinstance(v, float))
    pipe = MelStyleInterpolationPipeline.from_training_output(result.export_dir)
    ref = read_filelist(out / "test.txt")[0].wav_path  # a held-out voice as the reference
    audio = pipe("Red apples fell.", str(ref), num_inference_steps=2).audios
    assert np.isfinite(np.asarray(audio)).all() and np.asarray(audio).size > 0
