"""``melinterp app``: the page's handler (speech that follows ref1, the CLI's checks and messages, progress, threads)
and the page itself, served on 127.0.0.1 and driven in headless Chromium.

The browser tests need Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium:
where one is missing they are skipped, but in CI (``CI`` set) they fail instead.
"""

from __future__ import annotations

import html
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import SAMPLE_RATE

import melinterp
from melinterp.cli import main


def missing(reason: str) -> None:
    """Skip the test for want of `reason`, except in CI, where `.ci/run` installs everything: fail there."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: .ci/run installs it)")
    pytest.skip(reason)


try:
    import gradio as gr
except ModuleNotFoundError:
    missing("gradio is not installed: pip install -e '.[app]'")

from melinterp.app.page import CONTROL_MODES, build_app, speak, visible_controls  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

REFS = Path(__file__).resolve().parents[1] / "examples" / "refs"
HIGH, LOW = REFS / "high_f4.wav", REFS / "low_robert.wav"  # about 210 and 85 Hz: 16 semitones apart
TEXT = "Hello there."
SCREENSHOT = Path(__file__).resolve().parents[1] / "examples" / "output" / "app_screenshot.png"  # gitignored


@pytest.fixture(scope="module")
def bundled():
    pipe = melinterp.MelStyleInterpolationPipeline.from_pretrained(melinterp.DEFAULT_MODEL)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def tiny(model_dir):
    """The tiny pipeline as ``melinterp synthesize --model model_dir`` loads it."""
    from melinterp.pipelines.hub import load_pipeline

    pipe = load_pipeline(model_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def uploads(refs):
    """The two references as the page passes them (paths as str)."""
    return str(refs[0]), str(refs[1])


def request(text=TEXT, ref1=None, ref2=None, mode="freq", *, alpha=0.5, boundary="0.5", crossfade=0.1,
            pitch_mask="band", freq_guidance="mask", steps=2, seed=0) -> list:
    """The button's inputs, in the page's order, with the page's defaults but for two steps."""
    return [text, ref1, ref2, mode, alpha, boundary, crossfade, pitch_mask, freq_guidance, steps, seed]


def semitones(audio) -> float:
    """Median f0 in semitones from A4, by pyworld (the judge of `melinterp evaluate`), never by the model."""
    from melinterp.evaluation.f0 import f0_median_semitones

    return f0_median_semitones(audio)


def reference_semitones(path: Path) -> float:
    from melinterp.audio import load_audio

    return semitones(load_audio(path))


def follows_ref1(audio) -> bool:
    """Whether the f0 of `audio` is that of ref1 (HIGH), not that of ref2 (LOW): within 3 semitones of the first,
    6 semitones nearer it than the second."""
    high, low, out = reference_semitones(HIGH), reference_semitones(LOW), semitones(audio)
    return abs(out - high) < 3.0 and abs(out - high) < abs(out - low) - 6.0


def read_wav(data: bytes) -> np.ndarray:
    audio, sample_rate = soundfile.read(io.BytesIO(data), dtype="float32")
    assert sample_rate == SAMPLE_RATE
    return audio


def cli_error(*argv: str, capsys) -> str:
    """The message ``melinterp synthesize ARGV`` prints, without its prefix."""
    assert main(["synthesize", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("melinterp synthesize: error: ") and err.count("\n") == 1, err
    return err.removeprefix("melinterp synthesize: error: ").removesuffix("\n")


# --- the handler ---------------------------------------------------------------------------------------------------

def test_freq_speech_takes_the_pitch_of_ref1_and_shows_what_was_measured(bundled):
    wav, pitch, figure = speak(bundled, *request("She found a small silver key.", str(HIGH), str(LOW), steps=4))
    audio = read_wav(wav)
    assert follows_ref1(audio), semitones(audio)
    rows = dict(re.findall(r"^\| (output|ref1|ref2) \| (\d+) Hz \|", pitch, flags=re.MULTILINE))
    assert set(rows) == {"output", "ref1", "ref2"}
    assert float(rows["output"]) == pytest.approx(440.0 * 2 ** (semitones(audio) / 12), rel=0.03)
    assert float(rows["ref2"]) == pytest.approx(440.0 * 2 ** (reference_semitones(LOW) / 12), rel=0.03)
    assert [ax.get_title() for ax in figure.axes[:3]] == [  # then the colorbars
        "generated log-mel", "pitch mask of ref1", "attention share given to ref1"]


@pytest.mark.parametrize("mode, options, cli_options", [
    ("mix", {"alpha": 0.3}, ["--alpha", "0.3"]),
    ("temporal", {"boundary": "0.2s", "crossfade": 0.05}, ["--boundary", "0.2s", "--crossfade", "0.05"]),
    ("freq", {"pitch_mask": "harmonic", "freq_guidance": "none"}, ["--pitch-mask", "harmonic", "--freq-guidance",
                                                                   "none"]),
])
def test_wav_and_figure_are_those_of_melinterp_synthesize_plot(tiny, model_dir, uploads, tmp_path, mode, options,
                                                               cli_options):
    from melinterp.utils import save_figure

    wav, _, figure = speak(tiny, *request(TEXT, *uploads, mode, seed=7, **options))
    out, plot = tmp_path / "cli.wav", tmp_path / "cli.png"
    assert main(["synthesize", TEXT, "--ref1", uploads[0], "--ref2", uploads[1], "--mode", mode, *cli_options, "--out",
                 str(out), "--plot", str(plot), "--model", str(model_dir), "--steps", "2", "--seed", "7"]) == 0
    assert wav == out.read_bytes()
    assert save_figure(figure, tmp_path / "page.png").read_bytes() == plot.read_bytes()


def test_mode_none_speaks_without_the_ref2_that_stays_uploaded(tiny, uploads):
    alone, table, _ = speak(tiny, *request(TEXT, uploads[0], None, "none"))
    assert speak(tiny, *request(TEXT, uploads[0], uploads[1], "none"))[0] == alone
    assert "| ref1 |" in table and "| ref2 |" not in table


@pytest.mark.parametrize("case", ["empty_text", "freq_without_ref2", "silent_ref1", "corrupt_ref2", "bad_boundary",
                                  "markup", "zero_steps"])
def test_errors_are_the_messages_of_melinterp_synthesize(tiny, model_dir, uploads, tmp_path, capsys, case):
    silent, corrupt = tmp_path / "silent.wav", tmp_path / "corrupt.wav"
    soundfile.write(silent, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    corrupt.write_bytes(b"RIFF not really a wav file")
    inputs = {"text": TEXT, "ref1": uploads[0], "ref2": uploads[1], "mode": "freq", "boundary": "0.5", "steps": 2}
    inputs.update({
        "empty_text": {"text": "   "},
        "freq_without_ref2": {"ref2": None},
        "silent_ref1": {"ref1": str(silent)},
        "corrupt_ref2": {"ref2": str(corrupt)},
        "bad_boundary": {"mode": "temporal", "boundary": "late"},
        "markup": {"text": "Wait <break time=\"1s\"/> now."},
        "zero_steps": {"steps": 0},
    }[case])
    argv = [inputs["text"], "--ref1", inputs["ref1"], "--mode", inputs["mode"], "--boundary", inputs["boundary"],
            "--steps", str(inputs["steps"]), "--out", str(tmp_path / "out.wav"), "--model", str(model_dir)]
    if inputs["ref2"] is not None:
        argv += ["--ref2", inputs["ref2"]]
    message = cli_error(*argv, capsys=capsys)
    with pytest.raises(gr.Error) as error:
        speak(tiny, *request(**inputs))
    assert html.unescape(error.value.message) == message  # the page renders the message as HTML


def test_a_missing_ref1_is_asked_for(tiny):
    with pytest.raises(gr.Error, match="no ref1: upload or record a reference recording"):
        speak(tiny, *request(ref1=None, mode="none"))


def test_an_unexpected_error_is_one_short_line_and_a_logged_traceback(tiny, uploads, monkeypatch, caplog):
    def broken_vocoder(self, mel):
        raise KeyError("vocoder state")

    monkeypatch.setattr(type(tiny.vocoder), "forward", broken_vocoder)
    with pytest.raises(gr.Error) as error:
        speak(tiny, *request(TEXT, *uploads))
    assert error.value.message == "synthesis failed (KeyError); the server's log says why"
    assert "Traceback" in caplog.text and "vocoder state" in caplog.text


def test_progress_counts_the_denoising_steps_of_every_sentence(tiny, uploads):
    calls = []
    speak(tiny, *request("One sentence here. And a second one.", *uploads, steps=3),
          progress=lambda value, desc=None, **kwargs: calls.append((value, desc)))
    assert calls == [(0.0, "waiting for the model")] + [((k, 6), "denoising") for k in range(1, 7)] + [
        (1.0, "measuring f0")]


def test_threads_at_once_get_what_calls_one_after_another_get(tiny, uploads):
    jobs = [request(TEXT, *uploads, "freq", seed=0), request("A quiet evening.", *uploads, "mix", seed=1, steps=3),
            request("Go now, please.", *uploads, "temporal", seed=2), request(TEXT, uploads[0], None, "none", seed=3)]
    alone = [speak(tiny, *job)[:2] for job in jobs]
    together, barrier = [None] * len(jobs), threading.Barrier(2)

    def worker(first: int) -> None:
        barrier.wait()  # both threads call the shared pipeline at the same moment
        for index in range(first, len(jobs), 2):
            together[index] = speak(tiny, *jobs[index])[:2]

    threads = [threading.Thread(target=worker, args=(first,)) for first in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone


def test_the_page_shows_only_the_controls_of_the_chosen_mode():
    shown = {}
    for mode in ("none", "mix", "temporal", "freq", "dual_noise"):
        ref2, *controls = [update["visible"] for update in visible_controls(mode)]
        shown[mode] = [name for name, visible in zip(["ref2", *CONTROL_MODES], [ref2, *controls]) if visible]
    assert shown == {"none": [], "mix": ["ref2", "alpha"], "temporal": ["ref2", "boundary", "crossfade"],
                     "freq": ["ref2", "pitch_mask", "freq_guidance"], "dual_noise": ["ref2", "pitch_mask"]}


# --- the command ---------------------------------------------------------------------------------------------------

def test_the_command_is_listed_and_only_running_it_imports_gradio():
    code = ("import sys; from melinterp.cli import build_parser; "
            "print(build_parser().format_help(), 'gradio' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^ +app +a web page \(Gradio\)", shown, flags=re.MULTILINE), shown
    assert shown.split()[-1] == "False"


def test_the_command_serves_the_page_on_the_model(model_dir, monkeypatch):
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda demo, **kwargs: launched.update(kwargs, demo=demo))
    assert main(["app", "--model", str(model_dir), "--port", "7999", "--concurrency", "3"]) == 0
    assert launched.pop("demo").title == "melinterp"
    assert launched == {"server_name": "127.0.0.1", "server_port": 7999, "share": False}


@pytest.mark.parametrize("case, message", [
    ("no_gradio", "the web page needs gradio, which is not installed: pip install 'melinterp[app]'"),
    ("no_worker", "--concurrency must be a positive number of requests, got 0"),
])
def test_command_errors_are_one_line(monkeypatch, capsys, case, message):
    argv = ["app", "--model", "unused"]
    if case == "no_gradio":
        monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio fails as where it is not installed
        monkeypatch.delitem(sys.modules, "melinterp.app.page")
    else:
        argv += ["--concurrency", "0"]
    assert main(argv) == 1
    assert capsys.readouterr().err == f"melinterp app: error: {message}\n"


# --- the page in a browser -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(bundled):
    """The page on the bundled model, served on a free port of 127.0.0.1 for this module's tests."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = build_app(bundled)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium under selenium, logging every request the page makes."""
    for program in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not Path(program).is_file():
            missing(f"{program} is missing: apt-get install chromium chromium-driver")
    try:
        from selenium import webdriver
    except ModuleNotFoundError:
        missing("selenium is not installed: pip install -e '.[dev]'")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1700"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


def wait_for(driver, css: str, timeout: float = 30.0, *, gone: bool = False, text: bool = False):
    """The first element matching `css`, once there is one (with `text`: one showing text; with `gone`: once there
    is none)."""
    from selenium.webdriver.support.ui import WebDriverWait

    def seen(driver):
        found = driver.find_elements("css selector", css)
        if text:
            found = [element for element in found if element.text.strip()]
        return not found if gone else found

    found = WebDriverWait(driver, timeout).until(seen)
    return None if gone else found[0]


def upload(driver, component: str, path: Path) -> None:
    """Choose `path` in a reference's file input and wait until the server has it (its download link shows)."""
    wait_for(driver, f"#{component} input[type=file]").send_keys(str(path))
    wait_for(driver, f"#{component} a[download]")


def test_the_page_speaks_freq_in_the_pitch_of_ref1(server, browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    browser.get(server)
    wait_for(browser, "#mode input[value=none]").click()
    wait_for(browser, "#ref2", gone=True)  # mode none takes one reference
    browser.find_element("css selector", "#mode input[value=freq]").click()
    upload(browser, "ref1", HIGH)
    upload(browser, "ref2", LOW)
    steps = browser.find_element("css selector", "#steps input[type=number]")
    steps.send_keys(Keys.CONTROL, "a")
    steps.send_keys("4", Keys.ENTER)
    browser.find_element("css selector", "#speak").click()

    link = wait_for(browser, "#speech a[download]", timeout=120).get_attribute("href")
    wait_for(browser, "#figure img")
    screenshot = tmp_path / "app.png"
    browser.save_screenshot(str(screenshot))
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(screenshot, SCREENSHOT)
    print(f"screenshot of the page: {screenshot} (and {SCREENSHOT})")

    assert urllib.parse.urlsplit(link).hostname == "127.0.0.1"
    with urllib.request.urlopen(link, timeout=30) as response:
        audio = read_wav(response.read())
    assert follows_ref1(audio), semitones(audio)
    assert "output" in browser.find_element("css selector", "#pitch").text

    import json

    requested = {json.loads(entry["message"])["message"].get("params", {}).get("request", {}).get("url")
                 for entry in browser.get_log("performance")} - {None}
    outside = [url for url in requested if urllib.parse.urlsplit(url).scheme not in ("data", "blob")
               and urllib.parse.urlsplit(url).hostname != "127.0.0.1"]
    assert requested and outside == []


def test_the_page_shows_an_error_as_melinterp_synthesize_words_it(server, browser, tmp_path, capsys):
    from selenium.webdriver.common.keys import Keys

    text = "Say <b>this</b> now."
    message = cli_error(text, "--ref1", str(HIGH), "--out", str(tmp_path / "out.wav"), "--steps", "1",
                        capsys=capsys)
    browser.get(server)
    wait_for(browser, "#mode input[value=none]").click()
    upload(browser, "ref1", HIGH)
    box = browser.find_element("css selector", "#text textarea")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(text)
    browser.find_element("css selector", "#speak").click()
    assert wait_for(browser, "[data-testid=toast-text]", text=True).text == message
