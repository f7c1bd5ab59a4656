"""examples/benchmarks/bench.py (`make bench`): argument checks and a real overhead-ratio run on the bundled model."""

from __future__ import annotations

import json
import math

import pytest
from conftest import example_script


def load_bench():
    return example_script("benchmarks/bench.py", "melinterp_bench")


@pytest.fixture(scope="module")
def bench():
    return load_bench()


def test_steps_and_sections_parse_and_refuse_nonsense(bench):
    assert bench.parse_steps("4,10,25,50") == [4, 10, 25, 50]
    assert bench.parse_sections("rtf,memory") == ["rtf", "memory"]
    with pytest.raises(bench.argparse.ArgumentTypeError, match="positive integers"):
        bench.parse_steps("0,4")
    with pytest.raises(bench.argparse.ArgumentTypeError, match="comma-separated step counts"):
        bench.parse_steps("four")
    with pytest.raises(bench.argparse.ArgumentTypeError, match="sections must be some of rtf,ratios"):
        bench.parse_sections("rtf,speed")


def test_ratio_steps_takes_the_largest_count_up_to_ten(bench):
    assert bench.ratio_steps([4, 10, 25, 50]) == 10
    assert bench.ratio_steps([2]) == 2
    assert bench.ratio_steps([25, 50]) == 25


def test_markdown_table_and_json_safe(bench):
    assert bench.markdown_table(["a", "b"], [[1, "x"]]) == "| a | b |\n| --- | --- |\n| 1 | x |"
    assert bench.json_safe({"r": [1.5, math.nan, {"x": math.inf}]}) == {"r": [1.5, None, {"x": None}]}


def test_missing_reference_says_which_and_how(bench, tmp_path, capsys):
    missing = tmp_path / "nowhere.wav"
    with pytest.raises(SystemExit):
        bench.main(["--ref1", str(missing), "--sections", "ratios"])
    error = capsys.readouterr().err
    assert f"--ref1 {missing} does not exist" in error
    assert "examples/refs/low_robert.wav" in error


@pytest.mark.slow
def test_ratios_section_on_the_bundled_model_gives_finite_positive_ratios(bench, tmp_path):
    for ref in (bench.DEFAULT_REF1, bench.DEFAULT_REF2):
        if not ref.is_file():
            pytest.skip(f"reference {ref} is not in this checkout")
    json_path = tmp_path / "bench.json"
    results = bench.main(["--quick", "--sections", "ratios", "--steps", "2", "--repeats", "1",
                          "--json", str(json_path)])
    saved = json.loads(json_path.read_text())
    assert set(saved) == {"environment", "ratios"}
    assert saved["environment"]["threads"] == 2 and saved["environment"]["device"] == "cpu"
    ratios = saved["ratios"]
    assert ratios["steps"] == 2 and ratios["baseline"] == "freq mask"
    assert set(ratios["ratios"]) == {"return_attention=True", "noise_tuning", "dual_noise", "guidance_scale=3",
                                     "encoded references"}
    for name, row in ratios["ratios"].items():
        for key in ("pipeline_ratio", "decoder_ratio", "seconds", "decoder_seconds"):
            value = row[key]
            assert value is not None and math.isfinite(value) and value > 0, (name, key, value)
        # the ratio is the variant's seconds over the baseline's, as printed
        assert row["pipeline_ratio"] == pytest.approx(row["seconds"] / ratios["baseline_seconds"])
    assert results["ratios"]["ratios"].keys() == ratios["ratios"].keys()


@pytest.mark.slow
def test_rtf_section_times_the_given_text(bench, tmp_path):
    json_path = tmp_path / "bench.json"
    bench.main(["--sections", "rtf", "--modes", "none", "--steps", "2", "--repeats", "1", "--text", "Hi there.",
                "--json", str(json_path)])
    rtf = json.loads(json_path.read_text())["rtf"]
    assert rtf["text"] == "Hi there."
    (row,) = rtf["rows"]
    assert row["mode"] == "none" and row["steps"] == 2
    assert 0.3 < row["audio_seconds"] < 1.5  # two words, not the default 2.5 s sentence
    assert 0 < row["rtf_decoder"] < row["rtf_no_vocoder"]
    # the bundled vocoder costs about 1 % of a call, less than the spread of one repeat: the full call is only
    # sure to take longer than the decoder alone (the vocoder section times the vocoder by itself)
    assert row["rtf_decoder"] < row["rtf_full"]


def test_vocoder_section_alone_times_the_bundled_vocoder_and_griffin_lim_without_the_pipeline(bench, tmp_path,
                                                                                              monkeypatch):
    def no_pipeline(args):
        raise AssertionError("--sections vocoder must not load the pipeline")

    monkeypatch.setattr(bench, "load_pipeline", no_pipeline)
    json_path = tmp_path / "bench.json"
    bench.main(["--sections", "vocoder", "--repeats", "1", "--batch", "2", "--json", str(json_path)])
    section = json.loads(json_path.read_text())["vocoder"]
    assert section["batch"] == 2 and section["audio_seconds"] == pytest.approx(2 * 2.5, rel=0.01)
    rows = {row["vocoder"]: row for row in section["rows"]}
    assert set(rows) == {"model (VocosVocoder)", "griffin-lim"}
    assert rows["model (VocosVocoder)"]["parameters"] > 1_000_000 and rows["griffin-lim"]["parameters"] == 0
    assert all(math.isfinite(row["rtf"]) and row["rtf"] > 0 for row in rows.values())
