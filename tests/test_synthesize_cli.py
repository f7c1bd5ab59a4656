"""``melinterp synthesize``: end to end on a tiny saved pipeline, atomic outputs, one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import SAMPLE_RATE

from melinterp import synthesize
from melinterp.cli import main

TEXT = "Hello there."
STEPS = "2"


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


# --- inputs and outputs are checked before the model loads ---------------------------------------------------------

@pytest.fixture
def no_loading(monkeypatch):
    """Make loading the model an error, so a test sees which checks come before it."""
    import melinterp.pipelines.hub as hub

    def load_pipeline(*args, **kwargs):
        raise RuntimeError("the model was loaded")

    monkeypatch.setattr(hub, "load_pipeline", load_pipeline)


@pytest.fixture
def own_refs(refs, tmp_path):
    """Copies of the references in tmp_path, so a test that overwrites one spoils no other test."""
    copies = tmp_path / "refs"
    copies.mkdir()
    for ref in refs:
        (copies / ref.name).write_bytes(ref.read_bytes())
    return copies / refs[0].name, copies / refs[1].name


def synthesize_argv(ref1, ref2, out, *extra):
    return ["synthesize", TEXT, "--ref1", str(ref1), "--ref2", str(ref2), "--out", str(out), "--model", "unused",
            "--steps", "1", *extra]


@pytest.mark.parametrize("case", ["out_is_ref1", "out_is_ref2_spelled_otherwise", "out_is_ref1_hard_link",
                                  "plot_links_to_ref2"])
def test_an_output_naming_a_reference_is_refused(own_refs, tmp_path, no_loading, capsys, case):
    ref1, ref2 = own_refs
    before = ref1.read_bytes(), ref2.read_bytes()
    out, extra = tmp_path / "out.wav", []
    if case == "out_is_ref1":
        out, options = ref1, "--out and --ref1"
    elif case == "out_is_ref2_spelled_otherwise":
        out, options = ref2.parent / ".." / ref2.parent.name / ref2.name, "--out and --ref2"
    elif case == "out_is_ref1_hard_link":
        out, options = tmp_path / "link.wav", "--out and --ref1"
        out.hardlink_to(ref1)
    else:
        (tmp_path / "picture.png").symlink_to(ref2)
        extra, options = ["--plot", str(tmp_path / "picture.png")], "--plot and --ref2"
    assert main(synthesize_argv(ref1, ref2, out, *extra)) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"melinterp synthesize: error: {options} name the same file") and err.count("\n") == 1
    assert (ref1.read_bytes(), ref2.read_bytes()) == before


def test_text_file_checks_every_line_before_writing_any(model_dir, refs, tmp_path, capsys):
    ref1, _ = refs
    lines = tmp_path / "lines.txt"
    lines.write_text("First line.\n\n!!!\nLast one.\n", encoding="utf-8")
    code = main(["synthesize", "--text-file", str(lines), "--ref1", str(ref1), "--out", str(tmp_path / "speech.wav"),
                 "--model", str(model_dir), "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"melinterp synthesize: error: --text-file {lines} line 3: ") and err.count("\n") == 1
    assert "phonemized to no phonemes" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lines.txt"]


@pytest.mark.parametrize("text, message", [
    ("\x00abc", "text holds the control character U+0000 (NUL) at index 0: "),
    ("Read 你好 aloud.", "text holds letters that espeak-ng cannot read in language 'en-us': '你' (U+4F60, CJK)"),
    ('Wait <break time="1s"/> now.', "text holds markup '<break time=\"1s\"/>' at index 5: "),
])
def test_text_that_cannot_be_spoken_as_written_is_a_one_line_error(model_dir, refs, tmp_path, capsys, text, message):
    out = tmp_path / "speech.wav"
    assert main(["synthesize", text, "--ref1", str(refs[0]), "--out", str(out), "--model", str(model_dir),
                 "--steps", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"melinterp synthesize: error: {message}") and err.count("\n") == 1
    assert not out.exists()


def test_text_file_notes_stale_numbered_outputs_of_an_earlier_run(model_dir, refs, tmp_path, capsys):
    ref1, _ = refs
    lines = tmp_path / "lines.txt"
    lines.write_text("One.\nTwo.\n", encoding="utf-8")
    (tmp_path / "speech_003.wav").write_bytes(b"old")
    assert main(["synthesize", "--text-file", str(lines), "--ref1", str(ref1), "--out", str(tmp_path / "speech.wav"),
                 "--model", str(model_dir), "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'speech_003.wav'} is from an earlier run" in out
    assert (tmp_path / "speech_003.wav").read_bytes() == b"old"


@pytest.mark.parametrize("case, message", [
    ("out_is_a_folder", r"--out .*out.wav is a folder, expected a \.wav file to write"),
    ("out_under_a_file", r"--out .*notes.txt/out.wav: .*notes.txt is a file, not a folder"),
    ("plot_under_a_file", r"--plot .*notes.txt/out.png: .*notes.txt is a file, not a folder"),
    ("numbered_out_is_a_folder", r"--out .*out_002.wav is a folder, expected a \.wav file to write"),
    ("out_read_only", r"--out .*out.wav: cannot write in the folder .*locked"),
])
def test_outputs_that_cannot_be_written_are_refused_before_loading(refs, tmp_path, monkeypatch, no_loading, capsys,
                                                                   case, message):
    import os

    ref1, ref2 = refs
    (tmp_path / "notes.txt").write_text("a file")
    out, extra = tmp_path / "out.wav", []
    if case == "out_is_a_folder":
        out.mkdir()
    elif case == "out_under_a_file":
        out = tmp_path / "notes.txt" / "out.wav"
    elif case == "plot_under_a_file":
        extra = ["--plot", str(tmp_path / "notes.txt" / "out.png")]
    elif case == "numbered_out_is_a_folder":
        (tmp_path / "out_002.wav").mkdir()
        (tmp_path / "lines.txt").write_text("One.\nTwo.\n")
        extra = ["--text-file", str(tmp_path / "lines.txt")]
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        out = locked / "out.wav"
        real_access = os.access
        # tests run as root, who may write in a read-only folder: say it is not writable instead
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != locked and real_access(path, mode))
    argv = synthesize_argv(ref1, ref2, out, *extra)
    if case == "numbered_out_is_a_folder":
        argv.remove(TEXT)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("melinterp synthesize: error: ") and err.count("\n") == 1
    assert re.search(message, err), err


def test_a_failing_plot_leaves_no_wav(model_dir, refs, tmp_path, monkeypatch, capsys):
    ref1, _ = refs

    def broken_plot(*args, **kwargs):
        raise RuntimeError("plot exploded")

    monkeypatch.setattr(synthesize, "plot_result", broken_plot)
    out = tmp_path / "out.wav"
    assert main(["synthesize", TEXT, "--ref1", str(ref1), "--out", str(out), "--plot", str(tmp_path / "out.png"),
                 "--model", str(model_dir), "--steps", "1"]) == 1
    assert capsys.readouterr().err == "melinterp synthesize: error: plot exploded\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, message", [
    (["--ref1", "EMPTY"], r"--ref1 EMPTY is a folder, expected a recording file"),
    (["--boundary", "nan"], r"--boundary 'nan': expected a finite fraction in \[0, 1\], a phoneme index or seconds"),
    (["--boundary", "inf"], r"--boundary 'inf': expected a finite fraction"),
    (["--seed", str(2**70)], r"--seed must be an integer in \[-2\*\*63, 2\*\*64 - 1\], got 1180591620717411303424"),
    (["--seed", str(-2**63 - 1)], r"--seed must be an integer in .*, got -9223372036854775809"),
    (["--seed", "-1"], r"the model was loaded"),  # torch takes negative seeds: they pass, as before
    (["--seed", str(2**64 - 1)], r"the model was loaded"),
])
def test_more_input_errors_are_one_line_messages(refs, tmp_path, monkeypatch, no_loading, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "EMPTY").mkdir()
    ref1, ref2 = refs
    args = {"--ref1": str(ref1), "--ref2": str(ref2), "--out": "out.wav", "--model": "unused"}
    args.update(zip(extra[::2], extra[1::2]))
    assert main(["synthesize", TEXT] + [item for pair in args.items() for item in pair]) == 1
    err = capsys.readouterr().err
    assert err.startswith("melinterp synthesize: error: ") and err.count("\n") == 1
    assert re.search(message, err), err
