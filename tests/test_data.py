"""Data: filelists, the feature cache and `melinterp preprocess`, the style dataset and its collate function."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SAMPLE_RATE, harmonic_tone

from melinterp.audio import F0_METHODS, FeatureConfig, extract_f0, frame_energy, load_audio, mel_spectrogram
from melinterp.data import (
    FeatureCache,
    SpeechStyleCollate,
    SpeechStyleDataset,
    Utterance,
    build_cache,
    read_filelist,
    read_speakers,
    write_filelist,
    write_speakers,
)
from melinterp.data import features as features_module
from melinterp.data.engines import trim_silence
from melinterp.text import TextConfig, TextProcessor

F0_METHOD = "dio"  # fast; the cache must store whichever method it was asked for
# speaker -> (f0 in Hz, durations in seconds of its utterances)
VOICES = {"low": (120.0, (0.40, 0.55, 0.70)), "high": (240.0, (0.45, 0.60, 0.35))}
WORDS = ["red apples", "a quiet harbour", "seven bright stars", "the old mill", "green fields", "one more day"]


def write_corpus(root: Path) -> Path:
    """Tiny corpus: harmonic tones as wavs under root/wavs, a filelist root/train.txt with relative paths."""
    (root / "wavs").mkdir(parents=True)
    lines, word = ["# tiny test corpus"], iter(WORDS)
    for speaker, (f0, durations) in VOICES.items():
        for number, seconds in enumerate(durations):
            name = f"wavs/{speaker}_{number}.wav"
            sf.write(root / name, harmonic_tone(f0, seconds), SAMPLE_RATE)
            lines.append(f"{name}|{speaker}|{next(word)}")
    (root / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "train.txt"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(filelist, cache_dir) with the cache built once for the module."""
    root = tmp_path_factory.mktemp("corpus")
    filelist = write_corpus(root)
    report = build_cache(read_filelist(filelist), root / "cache", FeatureConfig(), TextConfig(),
                         f0_method=F0_METHOD, jobs=1, progress=False)
    assert (report.computed, report.reused, report.bad) == (6, 0, [])
    return filelist, root / "cache"


# -- filelists ------------------------------------------------------------------------------------------------


def test_read_filelist_resolves_paths_skips_comments_and_keeps_bars_in_text(tmp_path):
    (tmp_path / "lists").mkdir()
    filelist = tmp_path / "lists" / "train.txt"
    filelist.write_text("\ufeff# header\n\n../wavs/a.wav|spk1|Hello there.\n  # indented comment\n"
                        "/abs/b.wav| spk2 |Text with | a bar\n", encoding="utf-8")
    first, second = read_filelist(filelist)
    assert first == Utterance(tmp_path / "wavs" / "a.wav", "spk1", "Hello there.", 3, filelist)
    assert (second.wav_path, second.speaker, second.text, second.line) == (Path("/abs/b.wav"), "spk2",
                                                                           "Text with | a bar", 5)
    assert first.origin == f"{filelist}:3"


@pytest.mark.parametrize("line", ["wavs/a.wav|spk1", "wavs/a.wav||some text", "wavs/a.wav|spk1|  "])
def test_read_filelist_names_file_and_line_of_a_malformed_line(tmp_path, line):
    filelist = tmp_path / "bad.txt"
    filelist.write_text(f"a.wav|s|one\n# comment\n{line}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.txt:3: expected 'wav_path\|speaker\|text' with three non-empty"):
        read_filelist(filelist)


def test_read_filelist_rejects_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.txt").write_text("# only a comment\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty\.txt: filelist holds no utterance"):
        read_filelist(tmp_path / "empty.txt")
    with pytest.raises(FileNotFoundError, match="filelist not found: .*nope.txt"):
        read_filelist(tmp_path / "nope.txt")
    (tmp_path / "latin1.txt").write_bytes("a.wav|s|caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        read_filelist(tmp_path / "latin1.txt")


def test_write_filelist_round_trips_with_relative_paths(tmp_path):
    utterances = [Utterance(tmp_path / "wavs" / "a.wav", "spk1", "Ünïcode | bar"),
                  Utterance(tmp_path / "wavs" / "b.wav", "spk2", "second")]
    path = write_filelist(tmp_path / "lists" / "out.txt", utterances, relative_to=tmp_path / "lists")
    assert path.read_text(encoding="utf-8").splitlines()[0] == "../wavs/a.wav|spk1|Ünïcode | bar"
    assert [(u.wav_path, u.speaker, u.text) for u in read_filelist(path)] == \
        [(u.wav_path, u.speaker, u.text) for u in utterances]
    assert not list((tmp_path / "lists").glob(".*.tmp"))  # the atomic write left no temp file

    absolute = write_filelist(tmp_path / "abs.txt", utterances)
    assert absolute.read_text(encoding="utf-8").startswith(f"{tmp_path}/wavs/a.wav|spk1|")


def test_write_filelist_rejects_fields_that_would_not_read_back(tmp_path):
    with pytest.raises(ValueError, match=r"speaker must not contain '\|'"):
        write_filelist(tmp_path / "x.txt", [Utterance(tmp_path / "a.wav", "a|b", "text")])
    with pytest.raises(ValueError, match="text must be non-empty and on one line"):
        write_filelist(tmp_path / "x.txt", [Utterance(tmp_path / "a.wav", "a", "two\nlines")])
    with pytest.raises(ValueError, match="wav_path must be absolute"):
        Utterance(Path("relative.wav"), "a", "text")
    assert not (tmp_path / "x.txt").exists()


# -- feature cache --------------------------------------------------------------------------------------------


def test_cached_features_equal_direct_computation(corpus):
    filelist, cache_dir = corpus
    cache = FeatureCache(cache_dir)
    config = FeatureConfig()
    processor = TextProcessor(TextConfig())
    assert cache.trim_db == features_module.DEFAULT_TRIM_DB
    for utterance in read_filelist(filelist):
        cached = cache.get(utterance)
        audio = trim_silence(load_audio(utterance.wav_path), SAMPLE_RATE, threshold_db=-cache.trim_db,
                             margin=features_module.TRIM_MARGIN, pad=False)
        frames = len(audio) // config.hop_length
        assert cached["mel"].shape == (80, frames) and cached["mel"].dtype == torch.float32
        torch.testing.assert_close(cached["mel"], mel_spectrogram(audio, config), rtol=0, atol=1e-6)
        np.testing.assert_allclose(cached["f0"].numpy(), extract_f0(audio, config, method=F0_METHOD), atol=1e-4)
        np.testing.assert_allclose(cached["energy"].numpy(), frame_energy(audio, config), rtol=1e-6)
        # the batched phonemisation of build_cache gives what encode gives text by text
        assert cached["phoneme_ids"].dtype == torch.int64
        assert cached["phoneme_ids"].tolist() == processor.encode(utterance.text)


def speech_in_silence(seconds_before: float, seconds_after: float) -> np.ndarray:
    """0.6 s of a tone with seconds of faint noise (-80 dBFS) around it, as a long-silence recording."""
    rng = np.random.default_rng(1)
    quiet = lambda seconds: 1e-4 * rng.standard_normal(int(seconds * SAMPLE_RATE)).astype(np.float32)  # noqa
    return np.concatenate([quiet(seconds_before), 0.5 * harmonic_tone(150.0, 0.6), quiet(seconds_after)])


def test_long_silences_are_trimmed_and_other_rates_and_flac_resampled(tmp_path):
    tone_frames = int(0.6 * SAMPLE_RATE) // 256
    wavs = {"padded.wav": (speech_in_silence(2.0, 3.0), SAMPLE_RATE)}
    for rate in (24000, 44100, 48000):
        t = np.arange(int(0.6 * rate)) / rate
        wavs[f"tone_{rate}.flac"] = (0.5 * np.sin(2 * np.pi * 150.0 * t).astype(np.float32), rate)
    for name, (audio, rate) in wavs.items():
        sf.write(tmp_path / name, audio, rate)
    utterances = [Utterance(tmp_path / name, "s", "red apples") for name in wavs]

    trimmed = FeatureCache(tmp_path / "trimmed", f0_method=F0_METHOD)
    frames = {u.wav_path.name: trimmed.get(u)["mel"].shape[1] for u in utterances}
    margin_frames = 2 * features_module.TRIM_MARGIN * SAMPLE_RATE / 256
    assert tone_frames <= frames["padded.wav"] <= tone_frames + margin_frames + 2  # 5 s of silence cut to 0.2 s
    for rate in (24000, 44100, 48000):  # resampled to 22.05 kHz: the tone's length in frames, give or take one
        assert abs(frames[f"tone_{rate}.flac"] - tone_frames) <= 1 + margin_frames

    whole = FeatureCache(tmp_path / "whole", f0_method=F0_METHOD, trim_db=0)
    assert whole.get(utterances[0])["mel"].shape[1] == len(speech_in_silence(2.0, 3.0)) // 256
    with pytest.raises(ValueError, match="trim_db: cache has 0.0, requested 40.0"):
        FeatureCache(tmp_path / "whole", trim_db=40)
    with pytest.raises(ValueError, match="trim_db must be >= 0"):
        FeatureCache(tmp_path / "other", trim_db=-3)


def test_caches_from_before_the_trim_read_as_untrimmed_with_their_keys(corpus, tmp_path):
    """A cache_config.json without trim_db (written before the setting existed) means untrimmed recordings, and
    its entries keep the keys they were stored under (settings digest of configs and f0 method alone)."""
    filelist, _ = corpus
    old = tmp_path / "old_cache"
    build_cache(read_filelist(filelist), old, f0_method=F0_METHOD, trim_db=0, jobs=1, progress=False)
    settings = json.loads((old / "cache_config.json").read_text())
    (old / "cache_config.json").write_text(json.dumps({k: v for k, v in settings.items() if k != "trim_db"}))

    legacy = FeatureCache(old)
    assert legacy.trim_db == 0.0
    public = {k: v for k, v in json.loads((old / "feature_config.json").read_text()).items() if not k.startswith("_")}
    text = {k: v for k, v in json.loads((old / "text_config.json").read_text()).items() if not k.startswith("_")}
    digest_before_the_trim = hashlib.sha1(json.dumps({"feature_config": public, "text_config": text,
                                                      "f0_method": F0_METHOD}, sort_keys=True).encode()).hexdigest()
    assert legacy._settings_digest() == digest_before_the_trim
    assert all(legacy.find(u) is not None for u in read_filelist(filelist))
    with pytest.raises(ValueError, match="trim_db: cache has 0.0, requested 40.0"):
        FeatureCache(old, trim_db=40)


def test_cache_layout_index_and_settings(corpus):
    filelist, cache_dir = corpus
    cache = FeatureCache(cache_dir)
    assert cache.f0_method == F0_METHOD and cache.feature_config.n_mels == 80
    assert json.loads((cache_dir / "cache_config.json").read_text())["f0_method"] == F0_METHOD
    assert FeatureConfig.from_config(FeatureConfig.load_config(cache_dir)).hop_length == 256
    index = json.loads((cache_dir / "index.json").read_text())
    utterances = read_filelist(filelist)
    assert set(index) == {cache.key(u) for u in utterances}
    record = index[cache.key(utterances[0])]
    assert (record["speaker"], record["text"], record["frames"]) == ("low", "red apples",
                                                                     int(0.40 * SAMPLE_RATE) // 256)
    assert F0_METHODS == features_module.F0_TRACKERS


def test_cache_hit_does_not_recompute(corpus, monkeypatch):
    filelist, cache_dir = corpus

    def no_compute(*args, **kwargs):
        raise AssertionError("features were recomputed")

    monkeypatch.setattr(FeatureCache, "compute_audio", no_compute)
    monkeypatch.setattr(FeatureCache, "compute", no_compute)
    utterances = read_filelist(filelist)
    assert FeatureCache(cache_dir).get(utterances[0])["mel"].shape[0] == 80
    report = build_cache(utterances, cache_dir, jobs=1, progress=False)
    assert (report.computed, report.reused) == (0, 6)


def test_key_follows_wav_and_text_changes(tmp_path):
    sf.write(tmp_path / "a.wav", harmonic_tone(150.0, 0.4), SAMPLE_RATE)
    cache = FeatureCache(tmp_path / "cache", FeatureConfig(), TextConfig(), f0_method=F0_METHOD)
    utterance = Utterance(tmp_path / "a.wav", "s", "some words")
    key = cache.key(utterance)
    assert len(key) == 40 and cache.key(utterance) == key
    assert cache.key(Utterance(tmp_path / "a.wav", "s", "other words")) != key
    os.utime(tmp_path / "a.wav", ns=(1, 1))
    assert cache.key(utterance) != key
    other_mels = FeatureCache(tmp_path / "cache2", FeatureConfig(n_mels=40), TextConfig(), f0_method=F0_METHOD)
    assert other_mels.key(utterance) != key
    with pytest.raises(FileNotFoundError, match="wav file not found: .*missing.wav"):
        cache.key(Utterance(tmp_path / "missing.wav", "s", "text"))


def test_cache_refuses_other_settings(corpus):
    _, cache_dir = corpus
    with pytest.raises(ValueError, match=r"other settings \(feature_config.json: n_mels: cache has 80, "
                                         r"requested 40\); use another --cache-dir"):
        FeatureCache(cache_dir, FeatureConfig(n_mels=40))
    with pytest.raises(ValueError, match="text_config.json: language: cache has 'en-us', requested 'fr-fr'"):
        FeatureCache(cache_dir, text_config=TextConfig(language="fr-fr"))
    with pytest.raises(ValueError, match="f0_method: cache has 'dio', requested 'harvest'"):
        FeatureCache(cache_dir, f0_method="harvest")
    with pytest.raises(ValueError, match="unknown f0_method 'yin'; expected one of harvest, dio"):
        FeatureCache(cache_dir, f0_method="yin")
    FeatureCache(cache_dir, FeatureConfig(), TextConfig(), f0_method=F0_METHOD)  # the same settings are fine


def test_build_cache_names_the_bad_line_or_skips_it(tmp_path):
    sf.write(tmp_path / "good.wav", harmonic_tone(200.0, 0.4), SAMPLE_RATE)
    sf.write(tmp_path / "short.wav", harmonic_tone(200.0, 0.1), SAMPLE_RATE)
    (tmp_path / "list.txt").write_text("good.wav|s|fine words\nshort.wav|s|too short\nnone.wav|s|no file\n"
                                       "good.wav|s|?!\n", encoding="utf-8")
    utterances = read_filelist(tmp_path / "list.txt")
    with pytest.raises(ValueError, match=r"list\.txt:3: wav file not found: .*none\.wav \(--skip-bad"):
        build_cache(utterances, tmp_path / "cache", f0_method=F0_METHOD, jobs=1, progress=False)
    with pytest.raises(ValueError, match=r"list\.txt:4: cannot encode the text: .*'\?!'"):
        build_cache(utterances[3:], tmp_path / "cache", f0_method=F0_METHOD, jobs=1, progress=False)
    with pytest.raises(ValueError, match=r"list\.txt:2: AudioError: .*too short"):
        build_cache(utterances[:2], tmp_path / "cache", f0_method=F0_METHOD, jobs=1, progress=False)

    report = build_cache(utterances, tmp_path / "cache", f0_method=F0_METHOD, jobs=1, progress=False,
                         skip_bad=True)
    assert (report.computed, report.reused) == (0, 1)  # the run that failed kept what it had finished
    assert [(u.line, message.split(":")[0]) for u, message in report.bad] == [
        (3, "wav file not found"), (4, "cannot encode the text"), (2, "AudioError")]
    assert len(json.loads((tmp_path / "cache" / "index.json").read_text())) == 1


def test_preprocess_command_in_parallel_matches_the_serial_cache(corpus, tmp_path, capsys):
    from melinterp.cli import main

    filelist, serial_cache_dir = corpus
    assert main(["preprocess", "--filelist", str(filelist), "--cache-dir", str(tmp_path / "cache"),
                 "--jobs", "2", "--f0-method", F0_METHOD, "--quiet"]) == 0
    assert "6 computed, 0 already cached, 0 skipped" in capsys.readouterr().out
    parallel, serial = FeatureCache(tmp_path / "cache"), FeatureCache(serial_cache_dir)
    for utterance in read_filelist(filelist):
        assert torch.equal(parallel.get(utterance)["mel"], serial.get(utterance)["mel"])
    assert main(["preprocess", "--filelist", str(filelist), "--cache-dir", str(tmp_path / "cache"),
                 "--f0-method", "harvest", "--quiet"]) == 1
    assert "f0_method: cache has 'dio', requested 'harvest'" in capsys.readouterr().err


def test_cache_moved_with_its_corpus_is_found_through_the_index(corpus, tmp_path):
    filelist, cache_dir = corpus
    moved = tmp_path / "moved"
    shutil.copytree(filelist.parent, moved, copy_function=shutil.copy)  # new paths and new mtimes
    utterances = read_filelist(moved / "train.txt")
    cache = FeatureCache(moved / "cache")
    assert all(cache.key(u) != FeatureCache(cache_dir).key(v) for u, v in zip(utterances, read_filelist(filelist)))
    assert [cache.find(u) for u in utterances] == [FeatureCache(cache_dir).find(u) for u in read_filelist(filelist)]

    # a training machine that has the cache and the filelist but no wavs
    shutil.rmtree(moved / "wavs")
    assert all(FeatureCache(moved / "cache").find(u) is not None for u in utterances)

    # a wav regenerated with other samples of the same size is not served stale features
    (moved / "wavs").mkdir()
    sf.write(utterances[0].wav_path, harmonic_tone(300.0, 0.40), SAMPLE_RATE)
    assert FeatureCache(moved / "cache").find(utterances[0]) is None


# -- dataset --------------------------------------------------------------------------------------------------


def test_dataset_item_shapes_and_dtypes(corpus):
    filelist, cache_dir = corpus
    dataset = SpeechStyleDataset(filelist, cache_dir)
    assert len(dataset) == 6 and dataset.speakers == ["high", "low"]
    item = dataset[0]
    frames = int(0.40 * SAMPLE_RATE) // 256
    assert item["mel"].shape == (80, frames) and item["mel"].dtype == torch.float32
    assert item["f0"].shape == item["energy"].shape == (frames,)
    assert item["phoneme_ids"].dtype == torch.int64 and item["phoneme_ids"].ndim == 1
    assert item["speaker_id"] == 1  # "low" after "high"
    assert item["ref_mel"].shape[0] == 80 and item["ref_mel"].dtype == torch.float32
    assert [dataset[i]["speaker_id"] for i in range(6)] == [1, 1, 1, 0, 0, 0]
    assert dataset[-1]["index"] == 5
    with pytest.raises(IndexError, match="index 6 out of range for a dataset of 6"):
        dataset[6]


def test_reference_is_another_utterance_of_the_same_speaker(corpus):
    filelist, cache_dir = corpus
    dataset = SpeechStyleDataset(filelist, cache_dir, seed=3)
    cache = FeatureCache(cache_dir)
    cached_mels = [cache.get(u)["mel"] for u in dataset.utterances]
    references = set()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            item = dataset[index]
            ref_index = item["ref_index"]
            matches = [i for i, mel in enumerate(cached_mels) if torch.equal(mel, item["ref_mel"])]
            assert matches == [ref_index] and ref_index != index
            assert dataset.utterances[ref_index].speaker == dataset.utterances[index].speaker
            references.add((index, ref_index))
    assert len(references) > 6  # both other utterances serve as reference over the epochs


def test_reference_choice_is_reproducible_for_a_seed_and_epoch(corpus):
    filelist, cache_dir = corpus

    def draws(seed, epoch):
        dataset = SpeechStyleDataset(filelist, cache_dir, seed=seed, max_ref_frames=10)
        dataset.set_epoch(epoch)
        return [(item["ref_index"], item["ref_mel"].sum().item()) for item in (dataset[i] for i in range(6))]

    assert draws(0, 0) == draws(0, 0)
    assert draws(0, 0) != draws(0, 1)
    assert draws(0, 0) != draws(1, 0)


def test_reference_is_cropped_to_max_ref_frames(corpus):
    filelist, cache_dir = corpus
    dataset = SpeechStyleDataset(filelist, cache_dir, max_ref_frames=12)
    cache = FeatureCache(cache_dir)
    for index in range(len(dataset)):
        item = dataset[index]
        full = cache.get(dataset.utterances[item["ref_index"]])["mel"]  # (n_mels, T_ref)
        assert item["ref_mel"].shape == (80, 12)
        windows = full.unfold(1, 12, 1).permute(1, 0, 2)  # (T_ref - 11, n_mels, 12)
        assert any(torch.equal(window, item["ref_mel"]) for window in windows)
    with pytest.raises(ValueError, match="max_ref_frames must be a positive number of frames or None, got 0"):
        SpeechStyleDataset(filelist, cache_dir, max_ref_frames=0)


def test_single_utterance_speakers_are_left_out_with_a_warning(corpus):
    filelist, cache_dir = corpus
    utterances = read_filelist(filelist)
    with pytest.warns(UserWarning, match="single utterance .* left out: high"):
        dataset = SpeechStyleDataset(utterances[:4], cache_dir)
    assert len(dataset) == 3 and dataset.speakers == ["low"]
    with pytest.raises(ValueError, match="no speaker has two or more utterances"):
        with pytest.warns(UserWarning):
            SpeechStyleDataset([utterances[0], utterances[3]], cache_dir)


def test_speaker_ids_follow_a_given_training_list(corpus, tmp_path):
    filelist, cache_dir = corpus
    utterances = read_filelist(filelist)
    write_speakers(tmp_path / "speakers.json", ["zeta", "low", "high"])
    assert read_speakers(tmp_path / "speakers.json") == ["zeta", "low", "high"]
    dataset = SpeechStyleDataset(filelist, cache_dir, speakers=tmp_path / "speakers.json")
    assert dataset.speaker_ids == [1, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError, match="speakers not in the speaker list: high; .*allow_unknown_speakers=True"):
        SpeechStyleDataset(utterances, cache_dir, speakers=["low"])
    dataset = SpeechStyleDataset(utterances, cache_dir, speakers=["low"], allow_unknown_speakers=True)
    assert dataset.speaker_ids == [0, 0, 0, -1, -1, -1]
    with pytest.raises(ValueError, match="speakers must be unique"):
        SpeechStyleDataset(utterances, cache_dir, speakers=["low", "low", "high"])


def test_missing_cache_entries_say_to_run_preprocess(corpus, tmp_path):
    filelist, _ = corpus
    with pytest.raises(FileNotFoundError, match=r"6 of 6 utterances have no entry in the feature cache .*"
                                                r"\(first: .*train\.txt:2\); run `melinterp preprocess "
                                                r"--filelist .*train\.txt --cache-dir .*empty` first"):
        SpeechStyleDataset(filelist, tmp_path / "empty")


def test_compute_missing_fills_the_cache_on_the_fly(corpus, tmp_path):
    filelist, cache_dir = corpus
    utterances = read_filelist(filelist)[:2]
    dataset = SpeechStyleDataset(utterances, tmp_path / "cache", f0_method=F0_METHOD, compute_missing=True)
    item = dataset[0]
    torch.testing.assert_close(item["mel"], FeatureCache(cache_dir).get(utterances[0])["mel"], rtol=0, atol=0)
    assert item["ref_index"] == 1
    assert len(list((tmp_path / "cache" / "entries").rglob("*.safetensors"))) == 2
    SpeechStyleDataset(utterances, tmp_path / "cache")  # now complete: no compute needed


# -- collate --------------------------------------------------------------------------------------------------


def test_collate_pads_and_masks(corpus):
    filelist, cache_dir = corpus
    dataset = SpeechStyleDataset(filelist, cache_dir)
    items = [dataset[i] for i in (0, 2, 5)]
    batch = SpeechStyleCollate()(items)
    mel_lengths = [item["mel"].shape[1] for item in items]
    ref_lengths = [item["ref_mel"].shape[1] for item in items]
    phoneme_lengths = [item["phoneme_ids"].shape[0] for item in items]
    T, T_ref, L = max(mel_lengths), max(ref_lengths), max(phoneme_lengths)
    assert batch["mel"].shape == (3, 80, T) and batch["f0"].shape == batch["energy"].shape == (3, T)
    assert batch["ref_mel"].shape == (3, 80, T_ref) and batch["phoneme_ids"].shape == (3, L)
    for name, lengths in (("mel", mel_lengths), ("ref", ref_lengths), ("phoneme", phoneme_lengths)):
        assert batch[f"{name}_lengths"].tolist() == lengths
        mask = batch[f"{name}_mask"]
        assert mask.dtype == torch.float32 and mask.shape[:2] == (3, 1)
        assert mask.sum(dim=(1, 2)).tolist() == lengths
    assert batch["speaker_id"].tolist() == [1, 1, 0] and batch["speaker_id"].dtype == torch.int64
    for row, item in enumerate(items):
        n = item["mel"].shape[1]
        assert torch.equal(batch["mel"][row, :, :n], item["mel"]) and torch.equal(batch["f0"][row, :n], item["f0"])
        assert batch["mel"][row, :, n:].abs().sum() == 0 and batch["energy"][row, n:].abs().sum() == 0
        assert batch["ref_mel"][row, :, item["ref_mel"].shape[1]:].abs().sum() == 0
        assert batch["phoneme_ids"][row, item["phoneme_ids"].shape[0]:].abs().sum() == 0


def test_collate_rounds_frames_up_to_pad_multiple(corpus):
    filelist, cache_dir = corpus
    dataset = SpeechStyleDataset(filelist, cache_dir)
    items = [dataset[i] for i in (0, 1)]  # 34 and 47 frames
    batch = SpeechStyleCollate(pad_multiple=4)(items)
    assert batch["mel"].shape[-1] == 48 and batch["mel_mask"].shape[-1] == 48 and batch["f0"].shape[-1] == 48
    assert batch["mel_mask"].sum(dim=(1, 2)).tolist() == [34, 47]
    assert batch["ref_mel"].shape[-1] == max(item["ref_mel"].shape[1] for item in items)  # not rounded
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=SpeechStyleCollate(pad_multiple=4))
    assert [batch["mel"].shape[-1] % 4 for batch in loader] == [0, 0]
    with pytest.raises(ValueError, match="pad_multiple must be a positive integer, got 0"):
        SpeechStyleCollate(pad_multiple=0)
    with pytest.raises(ValueError, match="cannot collate an empty list"):
        SpeechStyleCollate()([])


# -- the training machine has no librosa, pyworld or phonemizer --------------------------------------------------


@pytest.mark.slow  # a fresh interpreter imports torch
def test_reading_a_cache_needs_no_audio_or_text_front_end_packages(corpus):
    filelist, cache_dir = corpus
    script = textwrap.dedent(f"""
        import sys
        for name in ("librosa", "pyworld", "phonemizer", "soundfile"):
            sys.modules[name] = None  # any import of them now raises ImportError
        from melinterp.data.dataset import SpeechStyleCollate, SpeechStyleDataset
        dataset = SpeechStyleDataset({str(filelist)!r}, {str(cache_dir)!r}, max_ref_frames=16)
        batch = SpeechStyleCollate(pad_multiple=4)([dataset[i] for i in range(len(dataset))])
        print(tuple(batch["mel"].shape), tuple(batch["ref_mel"].shape))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "(6, 80, 60) (6, 80, 16)"  # 60 frames: already a multiple of 4
