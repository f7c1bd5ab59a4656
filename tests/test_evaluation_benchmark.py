"""`melinterp evaluate`: every mode scored on held-out voices, report files, resuming, and readable errors."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import harmonic_tone, requires_espeak, requires_flite

from melinterp.cli import main
from melinterp.evaluation import benchmark
from melinterp.evaluation.benchmark import (
    MODE_ORDER,
    aggregate,
    aggregate_quality,
    load_pairs,
    load_quality_utterances,
    quality_rows,
    report_markdown,
)


# ---------------------------------------------------------------------------------------------------------------
# A hand-made corpus of tones (no engine needed) for the corpus reader and the errors
# ---------------------------------------------------------------------------------------------------------------

def _write_tone(path: Path, f0: float) -> None:
    from melinterp.data.engines import write_wav

    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, harmonic_tone(f0, seconds=0.5), 22050)


def _tone_corpus(root: Path) -> Path:
    """Two held-out speakers A (200 Hz) and B (120 Hz), two texts each; one triplet saying text 0."""
    lines = []
    for speaker, f0 in (("A", 200.0), ("B", 120.0)):
        for text_id, text in enumerate(("Text zero.", "Text one.")):
            _write_tone(root / "wavs" / speaker / f"t{text_id}.wav", f0)
            lines.append(f"../wavs/{speaker}/t{text_id}.wav|{speaker}|{text}")
    (root / "filelists").mkdir(parents=True)
    (root / "filelists" / "heldout.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, f0 in (("a", 200.0), ("b", 120.0), ("b_at_a", 200.0)):
        _write_tone(root / "triplets" / "000" / f"{name}.wav", f0)
    triplet = {"id": "000", "text": "Text zero.", "far": True,
               "a": {"speaker": "A", "wav": "triplets/000/a.wav", "f0_median_hz": 200.0},
               "b": {"speaker": "B", "wav": "triplets/000/b.wav", "f0_median_hz": 120.0},
               "b_at_a_pitch": {"speaker": "B", "wav": "triplets/000/b_at_a.wav", "f0_median_hz": 200.0}}
    (root / "triplets.jsonl").write_text(json.dumps(triplet) + "\n", encoding="utf-8")
    return root


def test_pairs_take_references_that_do_not_say_the_triplet_text(tmp_path):
    corpus = _tone_corpus(tmp_path / "corpus")
    (pair,) = load_pairs(corpus)
    assert pair.id == "000" and pair.text == "Text zero."
    # t0 says the triplet's text: the references must be the other utterance of each speaker
    assert pair.ref1 == (corpus / "wavs" / "A" / "t1.wav").resolve()
    assert pair.ref2 == (corpus / "wavs" / "B" / "t1.wav").resolve()
    assert pair.b_at_a_wav == corpus / "triplets" / "000" / "b_at_a.wav"
    assert pair.far  # 12 log2(200 / 120) = 8.8 semitones


def test_bad_corpus_is_a_clear_error(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    assert main(["evaluate", "--model", str(model), "--corpus", str(tmp_path / "nope"), "--out",
                 str(tmp_path / "out"), "--quick"]) == 1
    assert "--corpus" in capsys.readouterr().err

    corpus = _tone_corpus(tmp_path / "corpus")
    (corpus / "triplets.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"no triplets\.jsonl .*make-corpus"):
        load_pairs(corpus)

    corpus = _tone_corpus(tmp_path / "corpus2")
    (corpus / "triplets.jsonl").write_text('{"text": "no voices"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 1: expected a triplet with keys a, b, b_at_a_pitch"):
        load_pairs(corpus)

    corpus = _tone_corpus(tmp_path / "corpus3")
    heldout = corpus / "filelists" / "heldout.txt"
    heldout.write_text("".join(line + "\n" for line in heldout.read_text().splitlines() if "|B|" not in line))
    with pytest.raises(ValueError, match=r"speaker 'B' has no utterance in filelists/heldout.txt"):
        load_pairs(corpus)


def test_bad_model_is_a_clear_error(tmp_path, capsys):
    corpus = _tone_corpus(tmp_path / "corpus")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", "--model", str(empty), "--corpus", str(corpus), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "--model" in err and "model_index.json" in err and "training output" in err
    assert main(["evaluate", "--model", str(tmp_path / "missing"), "--corpus", str(corpus), "--out",
                 str(tmp_path / "out")]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_a_bad_vocoder_folder_fails_before_the_model_loads(tmp_path, capsys):
    corpus = _tone_corpus(tmp_path / "corpus")
    from melinterp.models.vocoder import GriffinLimVocoder

    (tmp_path / "a" / "empty").mkdir(parents=True)
    for parent in ("b", "c"):
        GriffinLimVocoder(n_iter=1).save_pretrained(tmp_path / parent / "vocos")
    for folders, message in ((["b/vocos", "a/empty"], "--vocoder {}/a/empty: not a vocoder folder (no config.json)"),
                             (["b/vocos", "c/vocos"], "two vocoder folders are named 'vocos'")):
        arguments = [part for folder in folders for part in ("--vocoder", str(tmp_path / folder))]
        # the model does not exist: the vocoder's error comes first, so no model was loaded to find it
        assert main(["evaluate", "--model", str(tmp_path / "missing"), "--corpus", str(corpus), "--out",
                     str(tmp_path / "out"), "--sections", "quality", *arguments]) == 1
        err = capsys.readouterr().err
        assert message.format(tmp_path) in err and "no such folder" not in err
        assert not (tmp_path / "out" / "report.json").exists()


def test_quality_utterances_are_spread_over_speakers_with_references_of_other_texts(tmp_path):
    corpus = _tone_corpus(tmp_path / "corpus")
    (first_a, first_b, second) = load_quality_utterances(corpus, 3)
    # round one: each speaker's first utterance; round two only partly fits: the speaker evenly spaced, B
    assert [(u.speaker, u.wav.name) for u in (first_a, first_b, second)] == [("A", "t0.wav"), ("B", "t0.wav"),
                                                                             ("B", "t1.wav")]
    for utterance in (first_a, first_b, second):
        assert utterance.reference.parent == utterance.wav.parent  # the same speaker ...
        assert utterance.reference != utterance.wav  # ... saying the other text
    assert first_a.id == "A-t0" and first_a.text == "Text zero."
    assert len(load_quality_utterances(corpus, 16)) == 4  # all there are
    assert load_quality_utterances(corpus, 3) == [first_a, first_b, second]  # deterministic

    heldout = corpus / "filelists" / "heldout.txt"
    heldout.write_text("".join(line + "\n" for line in heldout.read_text().splitlines() if "Text one" not in line))
    with pytest.raises(ValueError, match="two held-out utterances of different texts"):
        load_quality_utterances(corpus, 3)


def test_quality_vocoders_and_vocode():
    import torch

    from melinterp.audio import FeatureConfig
    from melinterp.models.vocoder import GriffinLimVocoder

    class Repeat(torch.nn.Module):
        """A stand-in vocoder: each frame's mean log-mel, repeated over the hop."""

        def forward(self, mel):  # (B, n_mels, T) -> (B, T * 256)
            assert not torch.is_grad_enabled()
            return mel.mean(1).repeat_interleave(256, dim=-1)

    config = FeatureConfig()
    own = Repeat()
    vocoders = benchmark.quality_vocoders(SimpleNamespace(feature_config=config, vocoder=own))
    assert list(vocoders) == ["griffin_lim", "Repeat"] and vocoders["Repeat"] is own
    assert isinstance(vocoders["griffin_lim"], GriffinLimVocoder)
    griffin_lim = GriffinLimVocoder.from_feature_config(config)
    assert list(benchmark.quality_vocoders(SimpleNamespace(feature_config=config, vocoder=griffin_lim))) == \
        ["griffin_lim"]
    assert quality_rows(vocoders) == ["ground_truth", "vocoded_gt/griffin_lim", "vocoded_gt/Repeat",
                                      "none/griffin_lim", "none/Repeat"]
    mel = np.full((80, 5), 40.0, np.float32)  # above -ln(log_clamp): clamped, as the pipeline does
    audio = benchmark.vocode(own, mel, config)
    assert audio.shape == (5 * 256,) and audio.dtype == np.float32
    np.testing.assert_allclose(audio, -np.log(config.log_clamp), rtol=1e-6)


def test_extra_vocoders_are_compared_under_their_folder_names(tmp_path):
    from melinterp import HiFiGANGenerator
    from melinterp.audio import FeatureConfig
    from melinterp.models.vocoder import GriffinLimVocoder

    tiny = dict(resblock="2", upsample_rates=(8, 8, 4), upsample_kernel_sizes=(16, 16, 8), upsample_initial_channel=16,
                resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),))
    HiFiGANGenerator(**tiny).save_pretrained(tmp_path / "hifigan_universal")
    config = FeatureConfig()
    extra = benchmark.load_extra_vocoders([tmp_path / "hifigan_universal"], config)
    assert list(extra) == ["hifigan_universal"] and isinstance(extra["hifigan_universal"], HiFiGANGenerator)
    assert not extra["hifigan_universal"].training
    pipeline = SimpleNamespace(feature_config=config, vocoder=_tiny_vocos())
    vocoders = benchmark.quality_vocoders(pipeline, extra=extra)
    assert list(vocoders) == ["griffin_lim", "VocosVocoder", "hifigan_universal"]
    rows = quality_rows(vocoders)
    assert "vocoded_gt/hifigan_universal" in rows and "none/hifigan_universal" in rows
    assert "vocoded_gt/hifigan_universal:recording_phase" not in rows  # no STFT frames of its own to split
    audio = benchmark.vocode(vocoders["hifigan_universal"], np.full((80, 5), -5.0, np.float32), config)
    assert audio.shape == (5 * 256,) and np.isfinite(audio).all()

    with pytest.raises(ValueError, match="already has a vocoder named 'griffin_lim'"):
        benchmark.quality_vocoders(pipeline, extra={"griffin_lim": GriffinLimVocoder.from_feature_config(config)})
    (tmp_path / "other").mkdir()
    HiFiGANGenerator(**tiny).save_pretrained(tmp_path / "other" / "hifigan_universal")
    with pytest.raises(ValueError, match="two vocoder folders are named 'hifigan_universal'"):
        benchmark.load_extra_vocoders([tmp_path / "hifigan_universal", tmp_path / "other" / "hifigan_universal"],
                                      config)
    HiFiGANGenerator(**{**tiny, "upsample_rates": (8, 8, 2), "upsample_kernel_sizes": (16, 16, 4)},
                     hop_length=128).save_pretrained(tmp_path / "hop128")
    with pytest.raises(ValueError, match="its hop_length is 128, the model's features have 256"):
        benchmark.load_extra_vocoders([tmp_path / "hop128"], config)
    with pytest.raises(ValueError, match="not a vocoder folder"):
        benchmark.load_extra_vocoders([tmp_path / "missing"], config)


def test_vocoder_spec_names_a_dtype_only_after_the_last_at():
    assert benchmark.vocoder_spec("runs/v1") == (Path("runs/v1"), None, "v1")
    assert benchmark.vocoder_spec("runs/v1@bfloat16") == (Path("runs/v1"), "bfloat16", "v1@bfloat16")
    assert benchmark.vocoder_spec(Path("runs/v1@float16")) == (Path("runs/v1"), "float16", "v1@float16")
    # anything but a known dtype after the "@" is part of the path, and so is an "@" with no folder before it
    assert benchmark.vocoder_spec("runs@2/v1") == (Path("runs@2/v1"), None, "v1")
    assert benchmark.vocoder_spec("runs/v1@bf16") == (Path("runs/v1@bf16"), None, "v1@bf16")
    assert benchmark.vocoder_spec("@bfloat16") == (Path("@bfloat16"), None, "@bfloat16")


def test_an_extra_vocoder_is_loaded_in_the_dtype_it_names_beside_itself(tmp_path):
    import torch

    from melinterp import HiFiGANGenerator
    from melinterp.audio import FeatureConfig

    torch.manual_seed(0)
    tiny = dict(resblock="2", upsample_rates=(8, 8, 4), upsample_kernel_sizes=(16, 16, 8), upsample_initial_channel=16,
                resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),))
    HiFiGANGenerator(**tiny).save_pretrained(tmp_path / "v1")
    config = FeatureConfig()
    extra = benchmark.load_extra_vocoders([tmp_path / "v1", f"{tmp_path / 'v1'}@bfloat16"], config)
    assert list(extra) == ["v1", "v1@bfloat16"]
    assert extra["v1"].conv_pre.weight.dtype == torch.float32
    assert extra["v1@bfloat16"].conv_pre.weight.dtype == torch.bfloat16
    mel = np.random.default_rng(0).normal(-4.0, 1.0, (80, 6)).astype(np.float32)
    full, half = (benchmark.vocode(extra[name], mel, config) for name in ("v1", "v1@bfloat16"))
    assert half.dtype == np.float32 and half.shape == full.shape == (6 * 256,)
    assert not np.array_equal(half, full)  # it did run in bfloat16 ...
    np.testing.assert_allclose(half, full, atol=0.05 * np.abs(full).max())  # ... and to about its 8 bits
    rows = quality_rows(benchmark.quality_vocoders(SimpleNamespace(feature_config=config, vocoder=_tiny_vocos()),
                                                   extra=extra))
    assert "vocoded_gt/v1@bfloat16" in rows and "none/v1@bfloat16" in rows

    (tmp_path / "other").mkdir()
    HiFiGANGenerator(**tiny).save_pretrained(tmp_path / "other" / "v1")
    with pytest.raises(ValueError, match="two vocoder folders are named 'v1@bfloat16'"):
        benchmark.check_extra_vocoder_folders([f"{tmp_path / 'v1'}@bfloat16", f"{tmp_path / 'other' / 'v1'}@bfloat16"])
    with pytest.raises(ValueError, match="not a vocoder folder"):
        benchmark.check_extra_vocoder_folders([f"{tmp_path / 'missing'}@bfloat16"])


def _tiny_vocos():
    from melinterp.models.vocos import VocosVocoder

    return VocosVocoder(dim=8, intermediate_dim=16, num_layers=1).eval()


def test_an_stft_frame_vocoder_gets_its_phase_and_magnitude_rows():
    from melinterp.models.vocoder import GriffinLimVocoder

    vocos = _tiny_vocos()
    assert benchmark.splits_phase(vocos) and not benchmark.splits_phase(GriffinLimVocoder())
    vocoders = {"griffin_lim": GriffinLimVocoder(), "VocosVocoder": vocos}
    assert quality_rows(vocoders) == [
        "ground_truth", "vocoded_gt/griffin_lim", "vocoded_gt/VocosVocoder",
        "vocoded_gt/VocosVocoder:recording_phase", "vocoded_gt/VocosVocoder:recording_magnitude",
        "none/griffin_lim", "none/VocosVocoder"]
    assert quality_rows(list(vocoders)) == ["ground_truth", "vocoded_gt/griffin_lim", "vocoded_gt/VocosVocoder",
                                            "none/griffin_lim", "none/VocosVocoder"]  # names alone: no split

    # the table explains the split rows only when it has them
    rows = quality_rows(vocoders)
    utterance = _utterance_numbers("flite", "one", {row: "one" for row in rows}, {row: 3.0 for row in rows})
    quality = {**aggregate_quality([utterance], rows), "n_utterances": 1, "row_order": rows}
    markdown = "\n".join(benchmark.quality_markdown(quality))
    assert "| vocoded_gt/VocosVocoder:recording_magnitude | 3.00 |" in markdown
    assert "the recording's magnitudes with V's output's phases" in markdown
    plain = quality_rows(["griffin_lim"])
    utterance = _utterance_numbers("flite", "one", {row: "one" for row in plain}, {row: 3.0 for row in plain})
    quality = {**aggregate_quality([utterance], plain), "n_utterances": 1, "row_order": plain}
    assert "recording_phase" not in "\n".join(benchmark.quality_markdown(quality))


def test_phase_magnitude_split_swaps_the_right_half():
    """A stand-in that predicts twice the recording's own STFT: with the recording's phases put back the output is
    twice the recording (the magnitudes are the vocoder's); with its magnitudes put back, the recording itself."""
    import torch

    from melinterp.audio import FeatureConfig, MelSpectrogram

    config = FeatureConfig()
    truth = 0.3 * harmonic_tone(160.0, seconds=0.5)[: 40 * config.hop_length]
    truth = (truth * np.hanning(len(truth))).astype(np.float32)  # quiet edges: no reflect-padding artefacts
    front_end = MelSpectrogram(config)
    recording = front_end.stft(torch.from_numpy(truth)[None])
    vocos = _tiny_vocos()
    seen = []

    def spectrum(mel):  # what an STFT-frame vocoder predicts from the recording's mel
        seen.append(mel)
        return 2.0 * recording

    vocos.spectrum = spectrum
    truth_mel = front_end(torch.from_numpy(truth))  # the mel vocoded_gt vocodes
    split = benchmark.phase_magnitude_split(vocos, truth, truth_mel, config)
    assert list(split) == ["recording_phase", "recording_magnitude"]
    (mel,) = seen
    torch.testing.assert_close(mel[0], truth_mel)  # the vocoder is given that mel
    assert split["recording_phase"].shape == split["recording_magnitude"].shape == truth.shape
    np.testing.assert_allclose(split["recording_magnitude"], truth, atol=1e-4)
    np.testing.assert_allclose(split["recording_phase"], 2.0 * truth, atol=2e-4)

    # frames that its overlap-add cancels are not heard, so they are not split: predicted frames of the recording's
    # STFT plus a large inconsistent part (S minus the STFT of S's inverse, which inverts to silence) give the
    # recording, and both halves of the split are the recording
    noise = torch.randn(recording.shape, generator=torch.Generator().manual_seed(0), dtype=torch.complex64)
    cancelled = noise - front_end.stft(vocos.from_spectrum(noise))
    assert float(vocos.from_spectrum(cancelled).abs().max()) < 1e-4 < float(cancelled.abs().mean())
    vocos.spectrum = lambda mel: recording + 5.0 * cancelled
    split = benchmark.phase_magnitude_split(vocos, truth, truth_mel, config)
    for part in ("recording_phase", "recording_magnitude"):
        np.testing.assert_allclose(split[part], truth, atol=1e-3)
    given = benchmark.phase_magnitude_split(vocos, truth, truth_mel, config, vocoded=0.5 * truth)  # output given
    np.testing.assert_allclose(given["recording_phase"], 0.5 * truth, atol=1e-3)


def _utterance_numbers(speaker: str, text: str, transcripts: dict, ovrl: dict) -> dict:
    """One utterance's result as `score_quality_utterance` writes it, with chosen transcripts and OVRL per row."""
    return {"speaker": speaker, "text": text, "outputs": {
        row: {"ovrl": ovrl[row], "sig": 3.0, "bak": 4.0, "p808": 3.5, "transcript": transcripts[row],
              "mcd": None if row == "ground_truth" else 6.0} for row in transcripts}}


def test_quality_aggregates_count_wer_on_readable_voices_only():
    rows = quality_rows(["griffin_lim"])  # ground_truth, vocoded_gt/griffin_lim, none/griffin_lim
    text = "one two three four"
    readable = {"ground_truth": text, "vocoded_gt/griffin_lim": "one two three for", "none/griffin_lim": "one"}
    unreadable = {row: "oh oh" for row in rows}
    utterances = [
        _utterance_numbers("flite", text, readable, dict(zip(rows, (3.0, 2.8, 2.0)))),
        _utterance_numbers("flite", text, {**readable, "none/griffin_lim": None}, dict(zip(rows, (3.0, 2.6, 1.0)))),
        _utterance_numbers("espeak", text, unreadable, dict(zip(rows, (2.0, 2.0, None)))),
    ]
    quality = aggregate_quality(utterances, rows)
    assert quality["wer_voices"] == ["flite"]
    (left_out,) = quality["left_out"]
    assert left_out["speaker"] == "espeak" and left_out["ground_truth_wer"] == 1.0
    assert "100 %" in left_out["reason"] and "25 %" in left_out["reason"]
    table = quality["rows"]
    assert table["ground_truth"]["wer"] == 0.0
    assert table["vocoded_gt/griffin_lim"]["wer"] == pytest.approx(2 / 8)  # one substitution in each of two
    assert table["none/griffin_lim"]["wer"] == pytest.approx(7 / 8)  # 3 deleted, then 4 (None: nothing heard)
    assert table["ground_truth"]["ovrl"] == pytest.approx(8 / 3)  # DNSMOS over every voice
    assert table["ground_truth"]["ovrl_voice_range"] == [2.0, 3.0]
    assert table["none/griffin_lim"]["ovrl"] == pytest.approx(1.5)  # None (unrated) left out of the mean
    assert table["vocoded_gt/griffin_lim"]["mcd"] == 6.0 and table["ground_truth"]["mcd"] is None
    assert quality["voices"]["espeak"]["wer"]["none/griffin_lim"] == 1.0  # still reported per voice

    markdown = "\n".join(benchmark.quality_markdown({**quality, "n_utterances": 3, "row_order": rows[::-1]}))
    assert ("| ground_truth | 2.67 (2.00–3.00) | 3.00 (3.00–3.00) | 4.00 (4.00–4.00) | 3.50 (3.50–3.50) | 0 % "
            "| – |") in markdown
    assert "| none/griffin_lim | 1.50 (1.50–1.50) |" in markdown and "| 88 % | 6.00 |" in markdown
    assert "WER voices: flite. Left out of WER" in markdown and "espeak (ground-truth WER 100 %)" in markdown
    assert "| espeak (left out) | 1 | 100 % | 100 % | 100 % |" in markdown
    assert markdown.index("| none/griffin_lim |") < markdown.index("| ground_truth |")  # in the given row order
    # OVRL per voice, which the pooled mean hides: flite's two utterances, espeak's one (unrated: a dash)
    per_voice = markdown[markdown.index("DNSMOS OVRL per voice"):]
    assert "| output | espeak | flite |" in per_voice
    assert "| ground_truth | 2.00 | 3.00 |" in per_voice and "| vocoded_gt/griffin_lim | 2.00 | 2.70 |" in per_voice
    assert "| none/griffin_lim | – | 1.50 |" in per_voice
    single = {**quality, "n_utterances": 2, "voices": {"flite": quality["voices"]["flite"]}}
    assert "OVRL per voice" not in "\n".join(benchmark.quality_markdown(single))  # one voice: the main table says it
    # each output against the ground truth, paired: WER over the readable voice's two utterances, OVRL over all
    versus = {entry["row"]: entry for entry in quality["differences"]}
    assert set(versus) == {"vocoded_gt/griffin_lim", "none/griffin_lim"}
    assert {entry["baseline"] for entry in quality["differences"]} == {"ground_truth"}
    assert versus["vocoded_gt/griffin_lim"]["wer"]["difference"] == pytest.approx(2 / 8)
    assert versus["none/griffin_lim"]["ovrl"]["n"] == 2  # the unrated utterance has no pair
    assert "| vocoded_gt/griffin_lim | ground_truth | -0.20 [-0.40, +0.00] | +25.0 [+25.0, +25.0] |" in markdown


def test_comparisons_set_each_vocoder_against_the_truth_griffin_lim_and_the_pipelines_own():
    vocoders = {"griffin_lim": None, "VocosVocoder": _tiny_vocos(), "hifigan": None}
    pairs = benchmark.comparison_pairs(vocoders, own="VocosVocoder")
    rows = quality_rows(vocoders)
    assert [row for row, baseline in pairs if baseline == "ground_truth"] == rows[1:]  # split rows too
    assert "vocoded_gt/VocosVocoder:recording_phase" in rows
    assert [pair for pair in pairs if pair[1] != "ground_truth"] == [
        ("vocoded_gt/VocosVocoder", "vocoded_gt/griffin_lim"), ("none/VocosVocoder", "none/griffin_lim"),
        ("vocoded_gt/hifigan", "vocoded_gt/griffin_lim"), ("none/hifigan", "none/griffin_lim"),
        ("vocoded_gt/hifigan", "vocoded_gt/VocosVocoder"), ("none/hifigan", "none/VocosVocoder")]
    # a Griffin-Lim pipeline has no vocoder of its own: the extra ones meet the truth and Griffin-Lim only
    assert all(baseline in ("ground_truth", "vocoded_gt/griffin_lim", "none/griffin_lim")
               for _, baseline in benchmark.comparison_pairs({"griffin_lim": None, "hifigan": None}))


def test_wer_is_judged_per_voice_over_its_pitch_and_rate_settings():
    assert benchmark.voice_of("flite-awb_p0.80_s1.10") == "flite-awb"
    assert benchmark.voice_of("espeak-en-us+f4_p35_s190") == "espeak-en-us+f4"
    assert benchmark.voice_of("p225") == "p225"  # a real corpus's speaker is its voice
    rows = quality_rows(["griffin_lim"])
    text = "one two three four"
    heard = {"ground_truth": text, "vocoded_gt/griffin_lim": text, "none/griffin_lim": text}
    misheard = {**heard, "ground_truth": "one two three for"}  # a quarter of the words wrong
    utterances = [_utterance_numbers("flite-awb_p0.80_s1.10", text, heard, dict(zip(rows, (3.0, 3.0, 3.0)))),
                  _utterance_numbers("flite-awb_p1.25_s0.90", text, misheard, dict(zip(rows, (3.0, 3.0, 3.0))))]
    quality = aggregate_quality(utterances, rows)
    assert list(quality["voices"]) == ["flite-awb"] and quality["voices"]["flite-awb"]["n_utterances"] == 2
    assert quality["voices"]["flite-awb"]["wer"]["ground_truth"] == pytest.approx(1 / 8)
    assert quality["wer_voices"] == ["flite-awb"]
    assert aggregate_quality(utterances, rows, wer_voice_limit=0.1)["wer_voices"] == []  # the limit is a choice


# ---------------------------------------------------------------------------------------------------------------
# Aggregates and the table, on hand-written per-pair numbers
# ---------------------------------------------------------------------------------------------------------------

def _pair_numbers(far: bool, success: bool, pitch: float, timbre: float, mcd: float) -> dict:
    transfer = {"pitch_transfer": pitch, "timbre_score": timbre, "success": success, "mcd": mcd,
                "log_f0_rmse": 1.0}
    return {"far": far, "modes": {
        "none": {side: {"mcd": mcd, "log_f0_rmse": 2.0} for side in ("ref1", "ref2")},
        **{name: dict(transfer) for name in benchmark.TRANSFER_MODES},
        "temporal": {"pitch_transfer": pitch, "timbre_score": timbre, "success": success},
        "mix": {"pitch_transfer": pitch, "timbre_score": timbre, "success": success, "f0_spearman": 1.0,
                "similarity_ref2_spearman": 0.5, "timbre_spearman": timbre},
        "ground_truth": {"freq_success": True, "temporal_success": success, "timbre_score": 0.3},
    }}


def test_aggregates_count_success_on_far_pairs_only():
    pairs = [_pair_numbers(True, True, 1.0, 0.2, 6.0), _pair_numbers(True, False, 3.0, -0.1, 8.0),
             _pair_numbers(False, True, 5.0, None, 10.0)]  # near pair: in the means, not in the success rate
    table = aggregate(pairs)
    assert set(table) == {*MODE_ORDER, "ground_truth"}
    assert table["ground_truth"] == {"n_far_pairs": 2, "freq_success_rate": 1.0, "temporal_success_rate": 0.5}
    row = table["freq_mask"]
    assert row["n_pairs"] == 3 and row["n_far_pairs"] == 2
    assert row["success_rate"] == pytest.approx(0.5)
    assert row["pitch_transfer"] == pytest.approx(3.0)
    assert row["timbre_score"] == pytest.approx(0.05)  # None (undefined) is left out of the mean
    assert row["mcd"] == pytest.approx(8.0)
    assert table["none"]["mcd"] == pytest.approx(8.0) and table["none"]["success_rate"] is None
    assert table["temporal"]["mcd"] is None  # no parallel ground truth for a temporal output
    assert table["mix"]["f0_spearman"] == pytest.approx(1.0)

    report = {"config": {"model": "m", "corpus": "c", "n_pairs": 3, "n_far_pairs": 2, "steps": 3, "seed": 0,
                         "quick": True, "alphas": [0.0, 0.5, 1.0]}, "aggregates": table}
    markdown = report_markdown(report)
    assert "| freq_mask | 3 | 50 % | 3.00 | 0.050 | 8.00 | 1.000 |" in markdown
    assert "| none | 3 | – | – | – | 8.00 | 2.000 |" in markdown
    assert all(f"| {name} |" in markdown for name in MODE_ORDER)
    assert "on the 2 far pairs: freq success 100 %, temporal success 50 %" in markdown


# ---------------------------------------------------------------------------------------------------------------
# End to end: a tiny synthesised corpus, a tiny random pipeline
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """(corpus, model, out, exit code) after one ``melinterp evaluate --quick`` on a tiny make-corpus corpus, with
    the quality section on 2 utterances."""
    from melinterp.data.corpus import PRESETS, build_corpus
    from melinterp.testing import tiny_pipeline

    root = tmp_path_factory.mktemp("evaluate")
    corpus, model, out = root / "corpus", root / "model", root / "out"
    # the benchmark reads only held-out voices and triplets: one training utterance per seen speaker is enough
    config = replace(PRESETS["tiny"], train_per_speaker=1, val_per_speaker=1)
    build_corpus(corpus, config, seed=0, jobs=2, quiet=True)
    tiny_pipeline(seed=0).save_pretrained(model)
    code = main(["evaluate", "--model", str(model), "--corpus", str(corpus), "--out", str(out), *QUICK_ARGUMENTS])
    return corpus, model, out, code


QUICK_ARGUMENTS = ["--quick", "--max-pairs", "1", "--quality-utterances", "2", "--quiet"]


def end_to_end(test):
    """A test of the tiny ``evaluate`` run: slow, and its corpus needs both engines."""
    return pytest.mark.slow(requires_espeak(requires_flite(test)))


@pytest.fixture
def no_synthesis(monkeypatch):
    """Any call of the pipeline fails the test: every output must come from the cache."""
    from melinterp.pipelines import MelStyleInterpolationPipeline

    def fail(*args, **kwargs):
        raise AssertionError("the pipeline ran again although its outputs are cached")

    monkeypatch.setattr(MelStyleInterpolationPipeline, "__call__", fail)


def _report(evaluated) -> dict:
    """report.json of the fixture's run, which must have succeeded."""
    corpus, model, out, code = evaluated
    assert code == 0
    return json.loads((out / "report.json").read_text())


def _finite_or_none(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and math.isfinite(value))


@end_to_end
def test_quick_run_writes_the_report_for_every_mode(evaluated):
    out, report = evaluated[2], _report(evaluated)
    assert report["config"]["quick"] is True and report["config"]["steps"] == benchmark.QUICK_STEPS
    assert report["config"]["alphas"] == [0.0, 0.5, 1.0]
    assert len(report["pairs"]) == 1
    pair = report["pairs"][0]
    assert set(pair["modes"]) == {*MODE_ORDER, "ground_truth"}
    assert set(report["aggregates"]) <= {*MODE_ORDER, "ground_truth"} and set(MODE_ORDER) <= set(report["aggregates"])
    assert len(pair["modes"]["mix"]["sweep"]) == 3
    temporal = pair["modes"]["temporal"]
    assert 0 < temporal["boundary_frame"] < temporal["frames"]  # boundary 0.5: near the middle
    assert abs(temporal["boundary_frame"] - temporal["frames"] / 2) <= 0.1 * temporal["frames"]
    # references are real held-out speech: their pitch is defined, and the speaker judge can embed the outputs
    assert math.isfinite(pair["ref1_semitones"]) and math.isfinite(pair["ref2_semitones"])
    for name in benchmark.TRANSFER_MODES:
        numbers = pair["modes"][name]
        assert all(_finite_or_none(numbers[key]) for key in ("pitch_transfer", "timbre_score", "mcd"))
        assert -2.0 <= numbers["similarity_ref1"] - 1 <= 0.0  # a cosine similarity
        assert numbers["timbre_score"] == pytest.approx(numbers["similarity_ref2"] - numbers["similarity_ref1"])
    for name, row in report["aggregates"].items():
        assert row.get("n_pairs", 1) == 1, name
        assert all(_finite_or_none(value) for value in row.values())
    markdown = (out / "report.md").read_text()
    assert all(f"| {name} |" in markdown for name in MODE_ORDER)
    figures = sorted((out / "figures").glob("*.png"))
    assert figures and all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in figures)


@end_to_end
def test_quick_run_scores_quality(evaluated):
    """The tiny model speaks noise: the numbers are checked for shape and for agreeing with the judges."""
    from melinterp.evaluation import Recognizer, word_error_rate

    out, report = evaluated[2], _report(evaluated)
    assert report["config"]["sections"] == ["modes", "quality"]
    quality = report["quality"]
    rows = ["ground_truth", "vocoded_gt/griffin_lim", "none/griffin_lim"]  # the tiny pipeline vocodes by Griffin-Lim
    assert quality["vocoders"] == ["griffin_lim"]
    assert quality["row_order"] == rows and set(quality["rows"]) == set(rows)
    utterances = quality["utterances"]
    assert quality["n_utterances"] == len(utterances) == 2
    assert len({u["speaker"] for u in utterances}) == 2  # spread over the voices
    for utterance in utterances:
        assert set(utterance["outputs"]) == set(rows)
        assert Path(utterance["reference"]).parent == Path(utterance["wav"]).parent != Path(utterance["reference"])
        for name, numbers in utterance["outputs"].items():
            assert all(_finite_or_none(numbers[key]) for key in ("ovrl", "sig", "bak", "p808", "wer", "mcd")), name
            assert isinstance(numbers["transcript"], str) and numbers["wer"] >= 0.0
        truth = utterance["outputs"]["ground_truth"]
        assert all(1.0 <= truth[key] <= 5.0 for key in ("ovrl", "sig", "bak", "p808"))  # real recordings
        assert truth["mcd"] is None and utterance["outputs"]["vocoded_gt/griffin_lim"]["mcd"] > 0.0

    # each voice's ground-truth WER is what the judges say on its recordings, and it decides who counts in WER
    recognizer = Recognizer()
    for name, voice in quality["voices"].items():
        mine = [u for u in utterances if benchmark.voice_of(u["speaker"]) == name]
        assert len(mine) == voice["n_utterances"] > 0
        heard = [recognizer.transcribe(benchmark.read_audio(Path(u["wav"]))) for u in mine]
        assert voice["wer"]["ground_truth"] == pytest.approx(word_error_rate([u["text"] for u in mine], heard))
        assert (name in quality["wer_voices"]) == (voice["wer"]["ground_truth"] < benchmark.WER_VOICE_LIMIT)
    assert {v["speaker"] for v in quality["left_out"]} == set(quality["voices"]) - set(quality["wer_voices"])
    for name, row in quality["rows"].items():
        assert all(_finite_or_none(row[key]) for key in ("ovrl", "sig", "bak", "p808", "wer", "mcd")), name
        assert (row["wer"] is None) == (not quality["wer_voices"])
    markdown = (out / "report.md").read_text()
    assert "## Quality" in markdown and all(f"| {name} |" in markdown for name in rows)
    assert "Left out of WER" in markdown


@end_to_end
def test_sections_run_alone(evaluated, tmp_path, no_synthesis):
    corpus, model, out, _ = evaluated
    both = _report(evaluated)
    for section, absent in (("quality", "aggregates"), ("modes", "quality")):
        copy = tmp_path / section
        shutil.copytree(out / "work", copy / "work")  # the cache of the full run: nothing is synthesised again
        assert main(["evaluate", "--model", str(model), "--corpus", str(corpus), "--out", str(copy),
                     "--sections", section, *QUICK_ARGUMENTS]) == 0
        report = json.loads((copy / "report.json").read_text())
        assert report["config"]["sections"] == [section] and absent not in report
        markdown = (copy / "report.md").read_text()
        assert ("## Quality" in markdown) == (section == "quality")
        assert ("## Interpolation modes" in markdown) == (section == "modes")
    assert report["aggregates"] == both["aggregates"]
    assert json.loads((tmp_path / "quality" / "report.json").read_text())["quality"] == both["quality"]


@end_to_end
def test_rerun_skips_finished_work(evaluated, no_synthesis, capsys):
    corpus, model, out, _ = evaluated
    before = _report(evaluated)
    (out / "report.json").unlink()
    assert main(["evaluate", "--model", str(model), "--corpus", str(corpus), "--out", str(out),
                 *QUICK_ARGUMENTS]) == 0
    after = json.loads((out / "report.json").read_text())
    assert after["aggregates"] == before["aggregates"]
    assert after["quality"] == before["quality"]

    # the synthesised outputs are cached too: a lost per-utterance quality result is scored again from the cached
    # mel of mode none, and gives the same numbers
    quality_dirs = sorted((out / "work" / "quality").iterdir())
    assert len(quality_dirs) == 2 and all((path / "none.npz").is_file() for path in quality_dirs)
    (quality_dirs[0] / "result.json").unlink()
    assert main(["evaluate", "--model", str(model), "--corpus", str(corpus), "--out", str(out),
                 *QUICK_ARGUMENTS]) == 0
    assert json.loads((out / "report.json").read_text())["quality"] == before["quality"]
    # a lost per-pair result would be measured again without synthesising
    (pair_dir,) = [path for path in (out / "work").iterdir() if path.is_dir() and path.name != "quality"]
    (pair_dir / "result.json").unlink()
    assert len(list(pair_dir.glob("*.npz"))) == 1 + 1 + len(benchmark.TRANSFER_MODES) + 1 + 3

    # other settings cannot reuse the cache
    assert main(["evaluate", "--model", str(model), "--corpus", str(corpus), "--out", str(out), "--quick",
                 "--max-pairs", "1", "--steps", "2", "--quiet"]) == 1
    assert "pass another --out" in capsys.readouterr().err


def test_synthesizer_cache_round_trips(tmp_path):
    """A cached output reads back exactly as written, maps that were None stay None."""

    class FakeFeatures:
        hop_length = 4

    class FakePipeline:
        feature_config = FakeFeatures()
        calls = 0

        def __call__(self, text, ref1, ref2, **keywords):
            FakePipeline.calls += 1
            from types import SimpleNamespace

            return SimpleNamespace(lengths=[3], audios=np.arange(20, dtype=np.float32)[None],
                                   mels=np.ones((1, 80, 5), np.float32), routing_map=None, ref1_mass=None)

    pair = benchmark.Pair("007", "text", *(tmp_path / name for name in ("a", "b", "c", "r1", "r2")), far=True)
    synthesize = benchmark._Synthesizer(FakePipeline(), tmp_path / "work", steps=2, seed=0, device="cpu")
    first = synthesize(pair, "freq_mask", pair.ref1, pair.ref2, mode="freq")
    second = synthesize(pair, "freq_mask", pair.ref1, pair.ref2, mode="freq")
    assert FakePipeline.calls == 1
    np.testing.assert_array_equal(second["audio"], np.arange(12, dtype=np.float32))  # 3 frames x hop 4
    assert second["mel"].shape == (80, 3) and second["routing_map"] is None and second["ref1_mass"] is None
    np.testing.assert_array_equal(first["audio"], second["audio"])
