"""``melinterp synthesize``: end to end on a tiny saved pipeline, atomic outputs, one-line errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile
import torch
from conftest import SAMPLE_RATE, harmonic_tone

from melinterp import synthesize
from melinterp.cli import main
from melinterp.testing import tiny_pipeline

TEXT = "Hello there."
STEPS = "2"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    tiny_pipeline(seed=0).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refs")
    ref1, ref2 = folder / "low.wav", folder / "high.wav"
    soundfile.write(ref1, harmonic_tone(120.0, seconds=0.5), SAMPLE_RATE)
    soundfile.write(ref2, harmonic_tone(240.0, seconds=0.5), SAMPLE_RATE)
    return ref1, ref2


def reference_audio(model_dir, text, ref1, ref2, mode, seed=0, return_attention=False, scheduler=None):
    """What the Python API gives for the same settings, cut to the item's length."""
    from melinterp.pipelines import MelStyleInterpolationPipeline

    pipe = MelStyleInterpolationPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    if scheduler is not None:
        pipe.scheduler = scheduler.from_config(pipe.scheduler.config)
    # --plot asks for attention maps: the ref1 mass rides in the attention call, as it does in the API
    out = pipe(text, str(ref1), None if ref2 is None else str(ref2), mode=mode, num_inference_steps=int(STEPS),
               generator=torch.Generator().manual_seed(seed), return_attention=return_attention)
    return out.audios[0][: int(out.lengths[0]) * 256]


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_freq_mode_writes_16_bit_wav_equal_to_the_api_and_a_plot(model_dir, refs, tmp_path, capsys):
    ref1, ref2 = refs
    out, png = tmp_path / "out.wav", tmp_path / "out.png"
    code = main(["synthesize", TEXT, "--ref1", str(ref1), "--ref2", str(ref2), "--mode", "freq", "--out", str(out),
                 "--plot", str(png), "--model", str(model_dir), "--steps", STEPS, "--seed", "0"])
    assert code == 0
    assert f"wrote {out}" in capsys.readouterr().out
    info = soundfile.info(out)
    assert (info.samplerate, info.channels, info.subtype, info.format) == (SAMPLE_RATE, 1, "PCM_16", "WAV")
    written, _ = soundfile.read(out, dtype="float32")
    expected = np.clip(reference_audio(model_dir, TEXT, ref1, ref2, "freq", return_attention=True), -1, 1)
    assert written.shape == expected.shape and written.size % 256 == 0
    np.testing.assert_allclose(written, expected, atol=1.0 / 32767)  # 16-bit quantisation
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert leftovers(tmp_path) == []


def test_scheduler_dpm_swaps_in_the_fast_solver(model_dir, refs, tmp_path):
    from melinterp.schedulers import GradTTSDPMSolverScheduler

    ref1, _ = refs
    out = tmp_path / "dpm.wav"
    assert main(["synthesize", TEXT, "--ref1", str(ref1), "--out", str(out), "--model", str(model_dir), "--steps",
                 STEPS, "--scheduler", "dpm"]) == 0
    written, _ = soundfile.read(out, dtype="float32")
    expected = np.clip(reference_audio(model_dir, TEXT, ref1, None, "none", scheduler=GradTTSDPMSolverScheduler), -1, 1)
    euler = np.clip(reference_audio(model_dir, TEXT, ref1, None, "none"), -1, 1)
    np.testing.assert_allclose(written, expected, atol=1.0 / 32767)
    assert np.abs(written - euler).max() > 10.0 / 32767  # a different solver really ran


def test_vocoder_option_swaps_in_griffin_lim_or_a_vocoder_folder(model_dir, refs, tmp_path):
    from melinterp.models import VocosVocoder

    ref1, _ = refs
    torch.manual_seed(0)
    folder = tmp_path / "vocos"
    VocosVocoder(dim=16, intermediate_dim=32, num_layers=1).save_pretrained(folder)
    written = {}
    for which in ("model", "griffin-lim", str(folder)):
        out = tmp_path / f"{len(written)}.wav"
        assert main(["synthesize", TEXT, "--ref1", str(ref1), "--out", str(out), "--model", str(model_dir),
                     "--steps", STEPS, "--vocoder", which]) == 0
        written[which], _ = soundfile.read(out, dtype="float32")
    # the tiny model's own vocoder is Griffin-Lim with 4 iterations; the defaults' 32 give other samples
    assert written["model"].shape == written["griffin-lim"].shape == written[str(folder)].shape
    assert np.abs(written["model"] - written["griffin-lim"]).max() > 10.0 / 32767
    assert np.abs(written[str(folder)] - written["griffin-lim"]).max() > 10.0 / 32767


def test_text_file_writes_one_numbered_file_per_non_empty_line(model_dir, refs, tmp_path):
    ref1, _ = refs
    lines = tmp_path / "lines.txt"
    lines.write_text("First line.\n\n   \nSecond one here.\n", encoding="utf-8")
    out = tmp_path / "speech.wav"
    code = main(["synthesize", "--text-file", str(lines), "--ref1", str(ref1), "--out", str(out), "--plot",
                 str(tmp_path / "speech.png"), "--model", str(model_dir), "--steps", STEPS, "--seed", "3"])
    assert code == 0
    assert sorted(p.name for p in tmp_path.glob("speech*")) == [
        "speech_001.png", "speech_001.wav", "speech_002.png", "speech_002.wav"]
    # every line uses --seed: line 2 is what the single text gives
    second, _ = soundfile.read(tmp_path / "speech_002.wav", dtype="float32")
    expected = np.clip(reference_audio(model_dir, "Second one here.", ref1, None, "none", seed=3,
                                       return_attention=True), -1, 1)
    np.testing.assert_allclose(second, expected, atol=1.0 / 32767)


def test_numbered_names():
    from pathlib import Path

    assert synthesize._numbered(Path("a/out.wav"), 2) == [Path("a/out_001.wav"), Path("a/out_002.wav")]
    assert synthesize._numbered(Path("x.wav"), 1000)[-1] == Path("x_1000.wav")


def test_a_failing_pipeline_leaves_no_file_and_keeps_the_old_one(model_dir, refs, tmp_path, monkeypatch, capsys):
    from melinterp.models.vocoder import GriffinLimVocoder

    ref1, ref2 = refs
    out = tmp_path / "out.wav"
    args = ["synthesize", TEXT, "--ref1", str(ref1), "--ref2", str(ref2), "--out", str(out), "--model",
            str(model_dir), "--steps", "1"]

    def broken_vocoder(self, mel):
        raise RuntimeError("vocoder exploded")

    monkeypatch.setattr(GriffinLimVocoder, "forward", broken_vocoder)
    assert main(args) == 1
    assert capsys.readouterr().err == "melinterp synthesize: error: vocoder exploded\n"
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    # Ctrl-C while the wav is half written: the old file stays as it was, no temporary file is left
    out.write_bytes(b"old")
    import melinterp.data.engines as engines

    real_write = engines.write_wav

    def interrupted_write(path, audio, sample_rate):
        real_write(path, audio[: len(audio) // 2], sample_rate)
        raise KeyboardInterrupt

    monkeypatch.setattr(engines, "write_wav", interrupted_write)
    assert main(args) == 130
    assert out.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_bad_reference_audio_is_a_one_line_error(model_dir, refs, tmp_path, capsys):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wav file")
    out = tmp_path / "out.wav"
    code = main(["synthesize", TEXT, "--ref1", str(garbage), "--out", str(out), "--model", str(model_dir),
                 "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("melinterp synthesize: error: ref1: could not read audio file")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [
    (["--mode", "sideways"], r"--mode must be one of none, mix, temporal, freq, dual_noise, got 'sideways'"),
    (["--pitch-mask", "comb"], r"--pitch-mask must be one of band, harmonic, got 'comb'"),
    (["--boundary", "late"], r"--boundary 'late': boundary as a str must be seconds with the unit"),
    (["--steps", "0"], r"--steps must be a positive number of denoising steps, got 0"),
    (["--scheduler", "heun"], r"--scheduler must be one of euler, dpm, got 'heun'"),
    (["--ref2", "missing.wav"], r"--ref2 missing.wav: no such file"),
    (["--text", "   "], r"the text is empty \(got '   '\)"),
    (["--text-file", "lines.txt"], r"either as an argument or with --text-file, not both"),
    (["--model", "no/such/folder"], r"--model no/such/folder: no such folder"),
    (["--model", "EMPTY"], r"is a folder without model_index.json"),
    (["--vocoder", "hifi"], r"--vocoder must be model, griffin-lim or a vocoder folder holding config.json"),
])
def test_input_errors_are_one_line_messages(refs, tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lines.txt").write_text("hi\n")
    (tmp_path / "EMPTY").mkdir()
    ref1, _ = refs
    args = {"--ref1": str(ref1), "--out": "out.wav", "--model": str(tmp_path / "EMPTY"), "--text": TEXT}
    for option, value in zip(extra[::2], extra[1::2]):
        args[option] = value
    argv = ["synthesize"] + ([args.pop("--text")] if args["--text"] is not None else [])
    argv += [item for option, value in args.items() if value is not None for item in (option, value)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("melinterp synthesize: error: ") and err.count("\n") == 1
    assert re.search(message, err), err
    assert not (tmp_path / "out.wav").exists()


def test_cli_choices_match_the_pipeline():
    from melinterp.guidance import PITCH_MASK_KINDS
    from melinterp.pipelines.pipeline_mel_style_interpolation import FREQ_GUIDANCE, MODES

    assert synthesize.MODES == MODES
    assert synthesize.FREQ_GUIDANCE == FREQ_GUIDANCE
    assert synthesize.PITCH_MASKS == tuple(PITCH_MASK_KINDS)
