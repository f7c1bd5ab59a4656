"""The page of ``melinterp app``: `build_app` lays it out on a pipeline, `speak` answers its button.

Every request is checked as ``melinterp synthesize`` checks its arguments (`melinterp.synthesize.check_options`),
and an error the command would print as one line (`melinterp.cli.USER_ERRORS`) appears in the page as a
`gr.Error` with the same message; anything else is logged with its traceback and shown as one short line. The
pipeline is shared by all sessions and called from Gradio's worker threads: it takes its calls one at a time
(its lock), while the checks, the f0 measurements and the figure of other requests go on beside it. Each request
draws its noise from its own generator, so a request gives what it gives alone.

The page makes no request outside its server: gradio's usage analytics are off, and its default theme's fonts are
served by the server itself.
"""

from __future__ import annotations

import functools
import html
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from melinterp.audio import PITCH_MASK_KINDS, load_audio
from melinterp.cli import USER_ERRORS
from melinterp.guidance import FREQ_GUIDANCE, STRATEGIES, ModeOptions
from melinterp.synthesize import check_options, check_speakable, check_text, result_figure, write_wav
from melinterp.text import split_sentences
from melinterp.utils import check_positive_int

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home
import gradio as gr  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

TEXT = "The old lighthouse keeper painted the blue door on Friday morning."
MODE = "freq"
STEPS = 10  # as melinterp synthesize
#: each mode control and the modes that read it: the page shows a control only in its modes
CONTROL_MODES = {
    "alpha": ("mix",),
    "boundary": ("temporal",),
    "crossfade": ("temporal",),
    "pitch_mask": ("freq", "dual_noise"),
    "freq_guidance": ("freq",),
}


def build_app(pipe=None, *, concurrency: int = 2) -> gr.Blocks:
    """The page, on `pipe` (default: the bundled model, ``melinterp.DEFAULT_MODEL``), shared by every session.

    Args:
        pipe: a `MelStyleInterpolationPipeline`; its progress bar is best disabled (the page shows progress).
        concurrency: requests worked on at once, each in a worker thread of Gradio's queue.

    Returns:
        The `gr.Blocks`, queued; ``.launch(server_name=..., server_port=...)`` serves it.
    """
    check_positive_int("concurrency", concurrency)
    if pipe is None:
        from melinterp import DEFAULT_MODEL, MelStyleInterpolationPipeline

        pipe = MelStyleInterpolationPipeline.from_pretrained(DEFAULT_MODEL)
        pipe.set_progress_bar_config(disable=True)
    defaults, shown = ModeOptions(), {name: MODE in modes for name, modes in CONTROL_MODES.items()}

    with gr.Blocks(title="melinterp", analytics_enabled=False) as demo:
        gr.Markdown("# melinterp\nSpeech in a voice taken from, or interpolated between, two recordings.")
        with gr.Row():
            with gr.Column():
                ref1 = gr.Audio(sources=["upload", "microphone"], type="filepath", buttons=["download"],
                                label="ref1: the voice (none), the pitch (freq), the start (temporal)", elem_id="ref1")
                ref2 = gr.Audio(sources=["upload", "microphone"], type="filepath", buttons=["download"],
                                label="ref2: the timbre (freq), the end (temporal)", elem_id="ref2")
                text = gr.Textbox(TEXT, label="text", lines=2, elem_id="text")
                mode = gr.Radio(list(STRATEGIES), value=MODE, label="mode", elem_id="mode")
                controls = {  # the keys of CONTROL_MODES, in the order `speak` takes them
                    "alpha": gr.Slider(0.0, 1.0, value=defaults.alpha, step=0.05, label="alpha: weight of ref2",
                                       visible=shown["alpha"]),
                    "boundary": gr.Textbox(str(defaults.boundary), visible=shown["boundary"],
                                           label="boundary: where ref2 takes over, a fraction (0.5), a phoneme "
                                                 "index (7) or seconds (0.8s)"),
                    "crossfade": gr.Slider(0.0, 1.0, value=defaults.crossfade, step=0.01, label="crossfade (s)",
                                           visible=shown["crossfade"]),
                    "pitch_mask": gr.Radio(list(PITCH_MASK_KINDS), value=defaults.pitch_mask,
                                           label="pitch mask: where ref1 is asked for", visible=shown["pitch_mask"]),
                    "freq_guidance": gr.Radio(list(FREQ_GUIDANCE), value=defaults.freq_guidance,
                                              label="freq guidance", visible=shown["freq_guidance"]),
                }
                with gr.Row():
                    steps = gr.Slider(1, 50, value=STEPS, step=1, precision=0, label="steps", elem_id="steps")
                    seed = gr.Number(0, precision=0, label="seed", elem_id="seed")
                button = gr.Button("Speak", variant="primary", elem_id="speak")
            with gr.Column():
                speech = gr.Audio(type="filepath", label="speech", interactive=False, buttons=["download"],
                                  elem_id="speech")
                pitch = gr.Markdown(elem_id="pitch")
        figure = gr.Plot(format="png", show_label=False, elem_id="figure")  # its panels have titles

        mode.change(visible_controls, inputs=mode, outputs=[ref2, *controls.values()], queue=False,
                    show_progress="hidden")
        button.click(functools.partial(speak, pipe), api_name="speak", outputs=[speech, pitch, figure],
                     inputs=[text, ref1, ref2, mode, *controls.values(), steps, seed])
    return demo.queue(default_concurrency_limit=concurrency)


def visible_controls(mode: str) -> list[dict]:
    """Updates that show ref2 and each control of `CONTROL_MODES` in the modes that read them, and hide them in
    the others."""
    return [gr.update(visible=STRATEGIES[mode].num_references == 2)] + [gr.update(visible=mode in modes)
                                                                        for modes in CONTROL_MODES.values()]


def speak(pipe, text: str, ref1: str | None, ref2: str | None, mode: str, alpha: float, boundary: str,
          crossfade: float, pitch_mask: str, freq_guidance: str, steps: int, seed: int,
          progress=gr.Progress()) -> tuple[bytes, str, Figure]:
    """Answer the button: the speech as 16-bit wav bytes (what ``melinterp synthesize`` writes for the same
    settings), a markdown table of the median f0 of the output and the references, and the figure of
    ``melinterp synthesize --plot``.

    `ref1` and `ref2` are paths of recordings (ref2 is not used by one-reference modes such as "none"), `boundary`
    is ``--boundary``'s text. `progress` is told the denoising steps done.

    Raises:
        gr.Error: the message ``melinterp synthesize`` prints for the same inputs, or a short line for an
            unexpected error (logged with its traceback).
    """
    try:
        options = ModeOptions(alpha=alpha, boundary=boundary, crossfade=crossfade, pitch_mask=pitch_mask,
                              freq_guidance=freq_guidance)
        return _speak(pipe, text, ref1, ref2, mode, options, steps, seed, progress)
    except USER_ERRORS as error:
        raise page_error(str(error)) from error
    except Exception as error:
        logger.exception("melinterp app: a request failed")
        raise page_error(f"synthesis failed ({type(error).__name__}); the server's log says why") from error


def page_error(message: str) -> gr.Error:
    """The `gr.Error` that shows `message` as written (Gradio renders an error's message as HTML, where a
    ``<speak>`` quoted by a text error would vanish)."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def _speak(pipe, text, ref1, ref2, mode, options: ModeOptions, steps, seed, progress) -> tuple[bytes, str, Figure]:
    # 1. The checks of melinterp synthesize, before waiting for the model
    check_text(text)
    if ref1 is None:
        raise ValueError("no ref1: upload or record a reference recording")
    boundary = check_options(mode, Path(ref1), None if ref2 is None else Path(ref2), pitch_mask=options.pitch_mask,
                             freq_guidance=options.freq_guidance, boundary=options.boundary, steps=steps, seed=seed)
    if STRATEGIES[mode].num_references == 1:
        ref2 = None  # the page hides it, but keeps what was uploaded
    check_speakable(text, pipe.text_processor)

    # 2. Synthesise, telling `progress` of each denoising step (the pipeline counts steps of sentences)
    total, done = max(1, len(split_sentences(text))) * steps, 0

    def on_step_end(pipe, step, timestep, tensors):
        nonlocal done
        done += tensors["latents"].shape[0]
        progress((done, total), desc="denoising", unit="steps")

    progress(0.0, desc="waiting for the model")
    result = pipe(text, ref1, ref2, mode=mode, alpha=options.alpha, boundary=boundary, crossfade=options.crossfade,
                  pitch_mask=options.pitch_mask, freq_guidance=options.freq_guidance, num_inference_steps=steps,
                  generator=torch.Generator(device=pipe.device).manual_seed(seed), output_type="np",
                  return_attention=True, callback_on_step_end=on_step_end)
    audio = result.audios[0][: int(result.lengths[0]) * pipe.feature_config.hop_length]

    # 3. The outputs: the wav, its pitch beside the references', the figure
    progress(1.0, desc="measuring f0")
    with tempfile.TemporaryDirectory() as folder:  # the CLI's writer; Gradio keeps the bytes in its cache
        wav = write_wav(Path(folder) / "speech.wav", audio, result.sample_rate).read_bytes()
    waveforms = {"output": audio}
    for name, path in (("ref1", ref1), ("ref2", ref2)):
        if path is not None:
            waveforms[name] = load_audio(path, target_sr=result.sample_rate)
    return wav, pitch_table(waveforms, pipe.feature_config), result_figure(result, mode=mode, title=text)


def pitch_table(waveforms: dict[str, np.ndarray], feature_config) -> str:
    """A markdown table of each waveform's median f0 (pyworld harvest, the judge of `melinterp evaluate`), in Hz
    and in semitones from A4 (440 Hz); "unvoiced" where no frame is voiced."""
    from melinterp.evaluation.f0 import f0_median_hz, hz_to_semitones

    rows = ["| | median f0 | semitones from A4 |", "| --- | ---: | ---: |"]
    for name, waveform in waveforms.items():
        try:
            hz = f0_median_hz(waveform, feature_config)
        except ValueError:
            rows.append(f"| {name} | unvoiced | |")
            continue
        rows.append(f"| {name} | {hz:.0f} Hz | {float(hz_to_semitones(hz)):+.1f} |")
    return "\n".join(rows)
