"""Benchmark the bundled pipeline: real-time factor, guidance overheads, peak memory and scheduler quality.

    python examples/benchmarks/bench.py                                # every section, CPU, float32
    python examples/benchmarks/bench.py --quick                        # smoke test: steps 4,10, one repeat
    python examples/benchmarks/bench.py --device cuda --dtype bfloat16 --sections rtf,ratios --json bench.json

Sections (``--sections``, default all), each printed as a markdown table and saved under its name in ``--json``:

- ``rtf``: real-time factor (wall seconds / seconds of audio produced; a batch produces ``--batch`` utterances) of
  the full pipeline (text -> waveform, the model's vocoder included), of the pipeline without the vocoder
  (``output_type="mel"``), and of the decoder alone (the denoising loop), for each mode at each of ``--steps``.
  *Decoder time* is read from ``callback_on_step_end`` timestamps of the ``output_type="mel"`` call: from the end
  of the first step to the end of the last, plus the first step itself taken to last as long as the second (the
  callback cannot see where the first step begins; its neighbour in the schedule is the honest stand-in, also for
  noise tuning, which acts only on the early, high-t steps). Nothing in the pipeline is patched. With one step
  it is NaN.
- ``ratios``: overheads measured in one process with interleaved repeats (the order of the configurations rotates
  every repeat), all against mode "freq" with ``freq_guidance="mask"``: ``return_attention=True``,
  ``freq_guidance="noise_tuning"``, mode "dual_noise", ``guidance_scale=3``, and the references passed as
  `pipe.encode_reference` results (analysed once, outside the timings: the saving of reusing two voices). Steps:
  the largest of ``--steps`` that is <= 10, else the smallest.
- ``memory``: peak memory increase of one mode "freq" synthesis of about 2, 10 and 30 s of audio, each in a fresh
  subprocess (``bench.py --_memory-probe SECONDS``). The pipeline splits nothing, so 30 s is the ~10 s sentence at
  a larger ``length_scale`` (lengths are calibrated by 1-step calls here). On CPU a thread samples the resident
  set (/proc/self/statm) every 2 ms and the increase over the RSS just before the call is reported (the
  ``ru_maxrss`` delta too); on CUDA ``torch.cuda.max_memory_allocated`` over the allocation before the call. The
  probe first warms up on a short text, so imports and first-call allocations are not counted.
- ``scheduler``: MCD on the audio (`melinterp.evaluation.mcd`, dB, WORLD mel-cepstra after DTW; the Griffin-Lim
  vocoder's phase reacts to small mel changes, which puts a floor under it), MCD on the mels themselves
  (`mel_cepstral_distortion`: DCT cepstra of the log-mels, no vocoder, no DTW) and mean |log-mel| difference
  of Euler (`GradTTSScheduler`) at 4, 10, 25 steps and DPM-Solver 2M (`GradTTSDPMSolverScheduler`) at 4-15 steps
  against a 100-step Euler reference with the same seed, mode "none", on three sentences.

- ``vocoder``: real-time factor of the vocoders alone on the log-mel of ``--ref1`` (cropped or tiled to 2.5 s, a
  batch of ``--batch``): the model's own vocoder and Griffin-Lim, and with ``--vocoder-architectures`` randomly
  initialised Vocos (the bundled size), HiFi-GAN V1, V2 and V3, and V1 cut to the students' layouts
  (`STUDENT_LAYOUTS`: 192 and 256 channels, and 320 with the kernel-3 residual blocks alone; speed does not depend
  on the weights: this is how the architecture was chosen); ``--dtype
  bfloat16`` times them all in bfloat16, which nearly halves a HiFi-GAN's time on a CPU with bfloat16
  instructions. Interleaved repeats, median. Alone (``--sections vocoder``) it loads only the model's vocoder
  folder, not the pipeline (no phonemiser needed: a GPU machine can run it bare).

Timings: medians of ``--repeats`` after a warm-up call of every configuration (librosa/numba JIT, first calls).
References are read from disk once; resampling and trimming still happen inside every call. On CUDA the wall
clock is read after ``torch.cuda.synchronize()`` at the start and end of a call, and the step ends are CUDA events
recorded on the stream (no synchronisation inside the loop, which would stop the CPU from queueing the next step
while the GPU runs this one). Other processes inflate CPU numbers: compare the load average printed before and
after, and rerun when they disagree.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

import melinterp
from melinterp.guidance import STRATEGIES
from melinterp.pipelines import MelStyleInterpolationPipeline
from melinterp.schedulers import SCHEDULERS

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REF1 = REPO_ROOT / "examples" / "refs" / "low_robert.wav"
DEFAULT_REF2 = REPO_ROOT / "examples" / "refs" / "high_f4.wav"
SECTIONS = ("rtf", "ratios", "memory", "scheduler", "vocoder")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

RTF_TEXT = "She sells sea shells by the shore."  # about 2.5 s with the default model
SHORT_TEXT = "Hello there, how are you?"  # the 2 s memory point (stretched or squeezed by length_scale)
LONG_TEXT = ("When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow, a division of "
             "white light into many beautiful colors.")  # about 10 s: the 10 s and 30 s memory points
WARMUP_TEXT = "Hi there."
SCHEDULER_TEXTS = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
)
SEED = 0
WARMUP_STEPS = 1  # first-call costs do not depend on the step count
MEMORY_SECONDS = (2.0, 10.0, 30.0)
MEMORY_STEPS = 2  # peak memory is reached within one step; more steps only cost time
LINEAR_TOLERANCE = 1.5  # "linear" when the growth factor lies within this factor of the length ratio
EULER_STEPS, DPM_STEPS, REFERENCE_STEPS = (4, 10, 25), (4, 5, 6, 7, 8, 10, 15), 100
QUICK_EULER_STEPS, QUICK_DPM_STEPS = (4, 10), (4, 7, 10)

# each configuration is the keyword arguments of one pipeline call (ref2 is added for two-reference modes);
# "encoded_refs": True passes the references as pipe.encode_reference(...) results, made once outside the timings
MODE_CALLS = {mode: {"mode": mode} for mode in STRATEGIES}  # "freq" is freq_guidance="mask", the default
RATIO_BASELINE = "freq mask"
RATIO_CALLS = {
    RATIO_BASELINE: {"mode": "freq"},
    "return_attention=True": {"mode": "freq", "return_attention": True},
    "noise_tuning": {"mode": "freq", "freq_guidance": "noise_tuning"},
    "dual_noise": {"mode": "dual_noise"},
    "guidance_scale=3": {"mode": "freq", "guidance_scale": 3.0},
    "encoded references": {"mode": "freq", "encoded_refs": True},
}


# ----------------------------------------------------------------------------------------------------------------
# Set-up
# ----------------------------------------------------------------------------------------------------------------


def parse_steps(value: str) -> list[int]:
    try:
        steps = [int(s) for s in value.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated step counts such as 4,10,25,50, got {value!r}")
    if not steps or min(steps) < 1:
        raise argparse.ArgumentTypeError(f"step counts must be positive integers, got {value!r}")
    return steps


def _parse_choices(value: str, choices, what: str) -> list[str]:
    """A comma-separated, non-empty subset of `choices`, in the order given."""
    chosen = [s.strip() for s in value.split(",") if s.strip()]
    if not chosen or any(c not in choices for c in chosen):
        raise argparse.ArgumentTypeError(f"{what} must be some of {','.join(choices)}, got {value!r}")
    return chosen


def parse_modes(value: str) -> list[str]:
    return _parse_choices(value, list(MODE_CALLS), "modes")


def parse_sections(value: str) -> list[str]:
    return _parse_choices(value, list(SECTIONS), "sections")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=melinterp.DEFAULT_MODEL, help="pipeline folder or Hub id")
    parser.add_argument("--ref1", default=str(DEFAULT_REF1), help="reference wav of voice 1 (pitch in mode freq)")
    parser.add_argument("--ref2", default=str(DEFAULT_REF2), help="reference wav of voice 2")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32",
                        help="torch_dtype the pipeline is loaded with")
    parser.add_argument("--batch", type=int, default=1, help="a batch of N copies of the text")
    parser.add_argument("--encoded-refs", action="store_true",
                        help="pass the references as pipe.encode_reference(...) results, analysed once outside the "
                             "timings (as a caller reusing two voices for many texts does)")
    parser.add_argument("--text", default=RTF_TEXT,
                        help=f"the sentence of the rtf and ratios sections (default {RTF_TEXT!r}, about 2.5 s)")
    parser.add_argument("--compile", action="store_true", help="torch.compile(pipe.unet)")
    parser.add_argument("--compile-mode", default="default",
                        help="torch.compile mode: default, reduce-overhead (CUDA graphs), max-autotune")
    parser.add_argument("--modes", type=parse_modes, default=list(MODE_CALLS),
                        help=f"comma-separated modes of the rtf table, some of {','.join(MODE_CALLS)}")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--sections", type=parse_sections, default=list(SECTIONS),
                        help=f"comma-separated, some of {','.join(SECTIONS)}")
    parser.add_argument("--steps", type=parse_steps, default=None,
                        help="denoising steps for rtf (default 4,10,25,50; --quick 4,10)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per cell, median (default 3)")
    parser.add_argument("--vocoder-architectures", action="store_true",
                        help="vocoder section: also time random Vocos and HiFi-GAN V1/V2/V3 (architecture choice)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: steps 4,10, one repeat, one scheduler sentence")
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    # internal: one memory measurement in a fresh process (run by the memory section)
    parser.add_argument("--_memory-probe", dest="memory_probe", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--_text", dest="probe_text", help=argparse.SUPPRESS)
    parser.add_argument("--_length-scale", dest="probe_length_scale", type=float, default=1.0,
                        help=argparse.SUPPRESS)
    return parser


def load_reference(path: str, name: str, parser: argparse.ArgumentParser) -> tuple:
    """(waveform, sample_rate) read once, so that timed calls do not read the disk."""
    import soundfile

    if not os.path.isfile(path):
        parser.error(f"--{name} {path} does not exist: pass --{name} PATH to a wav file (the defaults are "
                     f"examples/refs/low_robert.wav and examples/refs/high_f4.wav in the repository)")
    waveform, sample_rate = soundfile.read(path, dtype="float32")
    return waveform, sample_rate


def load_pipeline(args) -> MelStyleInterpolationPipeline:
    pipe = MelStyleInterpolationPipeline.from_pretrained(args.model, torch_dtype=DTYPES[args.dtype])
    pipe = pipe.to(args.device)
    pipe.set_progress_bar_config(disable=True)
    if args.compile:
        pipe.unet = torch.compile(pipe.unet, mode=args.compile_mode)
    return pipe


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# ----------------------------------------------------------------------------------------------------------------
# One timed call
# ----------------------------------------------------------------------------------------------------------------


class Bench:
    """The loaded pipeline, its references and how to time one call of it."""

    def __init__(self, pipe, ref1, ref2, device: str, batch: int, text: str = RTF_TEXT):
        self.pipe, self.ref1, self.ref2, self.device, self.batch, self.text = pipe, ref1, ref2, device, batch, text

    def encoded_refs(self) -> tuple:
        """Both references through `pipe.encode_reference`, once."""
        if not hasattr(self, "_encoded"):
            self._encoded = self.pipe.encode_reference(self.ref1), self.pipe.encode_reference(self.ref2)
        return self._encoded

    def clock(self) -> float:
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def call(self, text: str, steps: int, output_type: str = "mel", batch: int | None = None, **kwargs):
        """One synthesis of `batch` copies of `text`, seeded; kwargs go to the pipeline (mode, guidance...)."""
        kwargs = dict(kwargs)
        ref1, ref2 = self.encoded_refs() if kwargs.pop("encoded_refs", False) else (self.ref1, self.ref2)
        ref2 = ref2 if STRATEGIES[kwargs.get("mode", "none")].num_references == 2 else None
        batch = self.batch if batch is None else batch
        texts = text if batch == 1 else [text] * batch
        return self.pipe(texts, ref1, ref2, num_inference_steps=steps, output_type=output_type,
                         generator=torch.Generator().manual_seed(SEED), **kwargs)

    def timed(self, text: str, steps: int, output_type: str = "mel", **kwargs) -> dict:
        """{"seconds": wall, "decoder_seconds": denoising loop (see the module docstring), "audio_seconds"}."""
        step_ends = []  # seconds on the CPU clock, or CUDA events

        def on_step_end(pipe, i, t, tensors):
            if self.device == "cuda":
                event = torch.cuda.Event(enable_timing=True)
                event.record()
                step_ends.append(event)
            else:
                step_ends.append(time.perf_counter())
            return None

        start = self.clock()
        output = self.call(text, steps, output_type, callback_on_step_end=on_step_end, **kwargs)
        end = self.clock()  # synchronised: every event has completed
        if self.device == "cuda":
            step_ends = [step_ends[0].elapsed_time(e) / 1000.0 for e in step_ends]  # seconds after the first
        decoder = math.nan
        if len(step_ends) >= 2:  # steps 2..N as timed, plus step 1 taken to last as long as step 2
            decoder = (step_ends[-1] - step_ends[0]) + (step_ends[1] - step_ends[0])
        config = self.pipe.feature_config
        audio_seconds = float(sum(int(n) for n in output.lengths)) * config.hop_length / config.sample_rate
        return {"seconds": end - start, "decoder_seconds": decoder, "audio_seconds": audio_seconds}

    def warm_up(self, configurations) -> float:
        """Run every configuration once, the first with the vocoder, so JIT and first-call costs are out of the
        timings."""
        start = time.perf_counter()
        for index, kwargs in enumerate(configurations):
            self.call(self.text, WARMUP_STEPS, "np" if index == 0 else "mel", **kwargs)
        return time.perf_counter() - start


def median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


# ----------------------------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------------------------


def section_rtf(bench: Bench, steps_list: list[int], repeats: int, modes: list[str] | None = None) -> dict:
    rows = []
    for mode in modes or list(MODE_CALLS):
        kwargs = MODE_CALLS[mode]
        for steps in steps_list:
            full, mel = [], []
            for _ in range(repeats):  # the two kinds of call alternate, so drifting load hits both alike
                full.append(bench.timed(bench.text, steps, "np", **kwargs))
                mel.append(bench.timed(bench.text, steps, "mel", **kwargs))
            audio_seconds = full[0]["audio_seconds"]
            full_s = median([r["seconds"] for r in full])
            mel_s = median([r["seconds"] for r in mel])
            decoder_s = median([r["decoder_seconds"] for r in mel])
            rows.append({"mode": mode, "steps": steps, "audio_seconds": audio_seconds, "full_seconds": full_s,
                         "mel_seconds": mel_s, "decoder_seconds": decoder_s, "rtf_full": full_s / audio_seconds,
                         "rtf_no_vocoder": mel_s / audio_seconds, "rtf_decoder": decoder_s / audio_seconds})
    print("\n## Real-time factor (wall s / audio s; < 1 is faster than real time)\n")
    print(f"Text: {bench.text!r} ({rows[0]['audio_seconds'] / bench.batch:.2f} s of audio per item, batch "
          f"{bench.batch}); median of {repeats}.\n")
    print(markdown_table(
        ["mode", "steps", "RTF full", "RTF no vocoder", "RTF decoder", "full s", "no-vocoder s", "decoder s"],
        [[r["mode"], r["steps"], f"{r['rtf_full']:.3f}", f"{r['rtf_no_vocoder']:.3f}", f"{r['rtf_decoder']:.3f}",
          f"{r['full_seconds']:.2f}", f"{r['mel_seconds']:.2f}", f"{r['decoder_seconds']:.2f}"] for r in rows]))
    return {"text": bench.text, "repeats": repeats, "rows": rows}


def ratio_steps(steps_list: list[int]) -> int:
    """The largest step count <= 10, else the smallest: long enough to see the loop, short enough to repeat."""
    small = [s for s in steps_list if s <= 10]
    return max(small) if small else min(steps_list)


def section_ratios(bench: Bench, steps: int, repeats: int) -> dict:
    names = list(RATIO_CALLS)
    timings = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:  # rotate the order so no configuration always runs first
            timings[name].append(bench.timed(bench.text, steps, "mel", **RATIO_CALLS[name]))
    seconds = {name: median([r["seconds"] for r in timings[name]]) for name in names}
    decoder = {name: median([r["decoder_seconds"] for r in timings[name]]) for name in names}
    ratios = {}
    for name in names[1:]:
        ratios[name] = {"pipeline_ratio": seconds[name] / seconds[RATIO_BASELINE],
                        "decoder_ratio": decoder[name] / decoder[RATIO_BASELINE],
                        "seconds": seconds[name], "decoder_seconds": decoder[name]}
    print(f"\n## Overhead ratios against mode freq, freq_guidance mask ({steps} steps, output_type mel, median of "
          f"{repeats} interleaved)\n")
    print(f"Baseline: pipeline {seconds[RATIO_BASELINE]:.2f} s, decoder {decoder[RATIO_BASELINE]:.2f} s.\n")
    print(markdown_table(["variant", "pipeline ratio", "decoder ratio", "pipeline s", "decoder s"],
                         [[name, f"{r['pipeline_ratio']:.2f}x", f"{r['decoder_ratio']:.2f}x", f"{r['seconds']:.2f}",
                           f"{r['decoder_seconds']:.2f}"] for name, r in ratios.items()]))
    return {"steps": steps, "repeats": repeats, "baseline": RATIO_BASELINE,
            "baseline_seconds": seconds[RATIO_BASELINE], "baseline_decoder_seconds": decoder[RATIO_BASELINE],
            "ratios": ratios}


def section_memory(bench: Bench, args) -> dict:
    rows = []
    for target in MEMORY_SECONDS:
        text = SHORT_TEXT if target < 5 else LONG_TEXT
        length_scale = calibrate_length_scale(bench, text, target)
        command = [sys.executable, os.path.abspath(__file__), "--_memory-probe", str(target), "--_text", text,
                   "--_length-scale", repr(length_scale), "--model", str(args.model), "--ref1", args.ref1,
                   "--ref2", args.ref2, "--device", args.device, "--dtype", args.dtype, "--threads",
                   str(args.threads), "--batch", str(args.batch)]
        result = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in result.stdout.splitlines() if line.startswith("MEMORY_PROBE ")]
        if result.returncode != 0 or not lines:
            raise RuntimeError(f"memory probe for {target:g} s failed (exit {result.returncode}):\n"
                               f"{result.stderr[-3000:]}")
        rows.append(json.loads(lines[-1][len("MEMORY_PROBE "):]))
    growth = []
    for small, large in zip(rows, rows[1:]):
        length_ratio = large["audio_seconds"] / small["audio_seconds"]
        factor = large["peak_increase_mib"] / small["peak_increase_mib"] if small["peak_increase_mib"] > 0 \
            else math.nan
        if math.isnan(factor):
            verdict = "unmeasured"
        elif length_ratio / LINEAR_TOLERANCE <= factor <= length_ratio * LINEAR_TOLERANCE:
            verdict = "linear"
        else:
            verdict = "superlinear" if factor > length_ratio else "sublinear"
        growth.append({"from_seconds": small["target_seconds"], "to_seconds": large["target_seconds"],
                       "length_ratio": length_ratio, "growth_factor": factor, "verdict": verdict})
    measure = "torch.cuda.max_memory_allocated" if args.device == "cuda" else "peak RSS (sampled)"
    print(f"\n## Peak memory increase of one mode freq synthesis ({measure}; fresh process per length, "
          f"{MEMORY_STEPS} steps, vocoder included)\n")
    print(markdown_table(["target s", "audio s", "length_scale", "peak increase MiB", "ru_maxrss delta MiB"],
                         [[f"{r['target_seconds']:g}", f"{r['audio_seconds']:.2f}", f"{r['length_scale']:.2f}",
                           f"{r['peak_increase_mib']:.1f}",
                           "-" if r["ru_maxrss_delta_mib"] is None else f"{r['ru_maxrss_delta_mib']:.1f}"]
                          for r in rows]))
    print()
    print(markdown_table(["lengths", "length ratio", "growth factor", f"verdict (linear: within {LINEAR_TOLERANCE}x)"],
                         [[f"{g['to_seconds']:g} s / {g['from_seconds']:g} s", f"{g['length_ratio']:.2f}",
                           f"{g['growth_factor']:.2f}", g["verdict"]] for g in growth]))
    return {"measure": measure, "rows": rows, "growth": growth}


def calibrate_length_scale(bench: Bench, text: str, target_seconds: float, tolerance: float = 0.05) -> float:
    """The length_scale that makes `text` last about `target_seconds` in mode freq (durations ignore the noise, so
    one-step calls tell). Rounding each phoneme to whole frames makes length not quite proportional to
    length_scale: up to four multiplicative corrections."""
    length_scale = 1.0
    for _ in range(4):
        seconds = bench.timed(text, 1, "mel", batch=1, mode="freq", length_scale=length_scale)["audio_seconds"]
        if abs(seconds / target_seconds - 1.0) <= tolerance:
            break
        length_scale *= target_seconds / seconds
    return length_scale


def memory_probe(args, pipe, bench: Bench) -> dict:
    """Peak memory increase of one call in this (fresh) process, after a warm-up on a short text."""
    import resource

    bench.call(WARMUP_TEXT, MEMORY_STEPS, "np", mode="freq")
    gc.collect()
    kwargs = {"mode": "freq", "length_scale": args.probe_length_scale}
    ru_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        allocated_before = torch.cuda.memory_allocated()
        output = bench.call(args.probe_text, MEMORY_STEPS, "np", **kwargs)
        torch.cuda.synchronize()
        peak_increase = torch.cuda.max_memory_allocated() - allocated_before
    else:
        sampler = RssSampler()
        with sampler:
            output = bench.call(args.probe_text, MEMORY_STEPS, "np", **kwargs)
        peak_increase = sampler.peak - sampler.baseline
    ru_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    config = pipe.feature_config
    return {"target_seconds": args.memory_probe, "length_scale": args.probe_length_scale,
            "audio_seconds": float(output.lengths[0]) * config.hop_length / config.sample_rate,
            "peak_increase_mib": peak_increase / 2**20,
            "ru_maxrss_delta_mib": (ru_after - ru_before) / 1024 if sys.platform.startswith("linux") else None}


class RssSampler:
    """Resident set size in bytes, sampled from /proc/self/statm by a thread while the block runs."""

    PERIOD_S = 0.002

    def __init__(self):
        self.page_size = os.sysconf("SC_PAGE_SIZE")
        self.baseline = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * self.page_size

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.PERIOD_S)

    def __enter__(self):
        if not os.path.exists("/proc/self/statm"):
            raise RuntimeError("the CPU memory probe reads /proc/self/statm (Linux); this system has none")
        self.baseline = self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def mel_cepstral_distortion(mel_a, mel_b, order: int = 24) -> float:
    """MCD (dB) between two natural-log mels (n_mels, T) of the same length, on their orthonormal DCT-II cepstra
    (coefficients 1..order), frame by frame: the sampler's own error, without a vocoder or a DTW in between."""
    import numpy as np

    n_mels = mel_a.shape[0]
    basis = np.cos(np.pi / n_mels * (np.arange(n_mels)[None, :] + 0.5) * np.arange(order + 1)[:, None])
    basis *= np.sqrt(2.0 / n_mels)  # (order + 1, n_mels)
    diff = (basis @ (np.asarray(mel_a, np.float64) - np.asarray(mel_b, np.float64)))[1:]  # (order, T)
    return float(np.mean(10.0 / np.log(10.0) * np.sqrt(2.0 * (diff**2).sum(0))))


def section_scheduler(bench: Bench, quick: bool) -> dict:
    from melinterp.evaluation import mcd

    pipe = bench.pipe
    original = pipe.scheduler
    schedulers = {name: SCHEDULERS[name].from_config(original.config) for name in ("euler", "dpm")}
    euler_steps, dpm_steps = (QUICK_EULER_STEPS, QUICK_DPM_STEPS) if quick else (EULER_STEPS, DPM_STEPS)
    texts = SCHEDULER_TEXTS[:1] if quick else SCHEDULER_TEXTS
    runs = [("euler", s) for s in euler_steps] + [("dpm", s) for s in dpm_steps]
    config = pipe.feature_config
    mcds = {run: [] for run in runs}
    mel_errors = {run: [] for run in runs}
    mel_mcds = {run: [] for run in runs}
    seconds = {run: [] for run in runs}
    try:
        for text in texts:
            pipe.scheduler = schedulers["euler"]
            reference = bench.call(text, REFERENCE_STEPS, "np", batch=1)
            num_samples = int(reference.lengths[0]) * config.hop_length
            for name, steps in runs:
                pipe.scheduler = schedulers[name]
                start = bench.clock()
                output = bench.call(text, steps, "np", batch=1)
                seconds[(name, steps)].append(bench.clock() - start)
                mcds[(name, steps)].append(mcd(output.audios[0, :num_samples], reference.audios[0, :num_samples],
                                               config=config))
                mel_errors[(name, steps)].append(float(abs(output.mels[0] - reference.mels[0]).mean()))
                mel_mcds[(name, steps)].append(mel_cepstral_distortion(output.mels[0], reference.mels[0]))
    finally:
        pipe.scheduler = original
    rows = [{"scheduler": name, "steps": steps, "mcd_db": statistics.mean(mcds[(name, steps)]),
             "mel_mcd_db": statistics.mean(mel_mcds[(name, steps)]),
             "mel_mae": statistics.mean(mel_errors[(name, steps)]), "seconds": median(seconds[(name, steps)])}
            for name, steps in runs]
    target = next(r for r in rows if r["scheduler"] == "euler" and r["steps"] == max(euler_steps))
    under = [r["steps"] for r in rows if r["scheduler"] == "dpm" and r["mcd_db"] < target["mcd_db"]]
    answer = min(under) if under else None
    under_mel = [r["steps"] for r in rows if r["scheduler"] == "dpm" and r["mel_mcd_db"] < target["mel_mcd_db"]]
    answer_mel = min(under_mel) if under_mel else None
    print(f"\n## Scheduler swap: distance to a {REFERENCE_STEPS}-step Euler reference (mode none, seed {SEED}, mean "
          f"over {len(texts)} sentences)\n")
    print(markdown_table(["scheduler", "steps", "MCD dB (audio)", "MCD dB (mel)", "mean |log-mel diff|", "wall s"],
                         [[type(schedulers[r["scheduler"]]).__name__, r["steps"],
                           f"{r['mcd_db']:.3f}", f"{r['mel_mcd_db']:.3f}", f"{r['mel_mae']:.4f}",
                           f"{r['seconds']:.2f}"] for r in rows]))
    none_of = "none of " + ",".join(map(str, dpm_steps))
    print(f"\nSmallest DPM-Solver step count with MCD under Euler-{target['steps']}'s: on the audio "
          f"({target['mcd_db']:.3f} dB; WORLD analysis after the Griffin-Lim vocoder, whose phase reacts to small mel "
          f"changes) {answer if answer is not None else none_of}; on the mels themselves "
          f"({target['mel_mcd_db']:.3f} dB) {answer_mel if answer_mel is not None else none_of}")
    return {"reference_steps": REFERENCE_STEPS, "texts": list(texts), "rows": rows,
            "euler_target_steps": target["steps"], "smallest_dpm_steps_under_euler": answer,
            "smallest_dpm_steps_under_euler_mel": answer_mel}


# ----------------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------------


VOCODER_SECONDS = 2.5  # length of the mel the vocoder section times
#: the layouts of the V1 students distilled from the official V1 (examples/training/prune_hifigan.py), timed beside
#: it: cut to 192 or 256 channels, and to 320 with the kernel-3 residual block of each stage alone (--kernels 3)
STUDENT_LAYOUTS = {
    "V1 at 192 channels": {"upsample_initial_channel": 192},
    "V1 at 256 channels": {"upsample_initial_channel": 256},
    "V1 at 320 channels, kernel-3 blocks": {"upsample_initial_channel": 320, "resblock_kernel_sizes": [3],
                                            "resblock_dilation_sizes": [[1, 3, 5]]},
}


def load_vocoder(model: str, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """The ``vocoder`` component of a pipeline folder alone (its config.json names the class)."""
    from melinterp.models.vocoder import load_vocoder_folder

    return load_vocoder_folder(Path(model) / "vocoder", torch_dtype=dtype).to(device).eval()


def vocoder_mel(ref_path: str, batch: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """(batch, 80, T) log-mel of the reference recording, cropped or tiled to VOCODER_SECONDS."""
    import soundfile

    from melinterp.audio import FeatureConfig, mel_spectrogram

    config = FeatureConfig()
    audio, _ = soundfile.read(ref_path, dtype="float32")
    mel = mel_spectrogram(torch.from_numpy(audio), config)  # (80, T_ref)
    frames = round(VOCODER_SECONDS * config.sample_rate / config.hop_length)
    mel = mel.repeat(1, -(-frames // mel.shape[-1]))[:, :frames]
    return mel[None].repeat(batch, 1, 1).to(device, dtype)


def section_vocoder(model_vocoder: torch.nn.Module, args, repeats: int) -> dict:
    from melinterp.models import GriffinLimVocoder, HiFiGANGenerator, VocosVocoder

    device, dtype = args.device, DTYPES[args.dtype]
    vocoders = {f"model ({type(model_vocoder).__name__})": model_vocoder,
                "griffin-lim": GriffinLimVocoder().to(device)}
    if args.vocoder_architectures:
        torch.manual_seed(0)
        vocoders["Vocos 320x8 (random)"] = VocosVocoder().to(device, dtype).eval()
        for preset in ("v1", "v2", "v3"):
            generator = HiFiGANGenerator.from_preset(preset).to(device, dtype)
            vocoders[f"HiFi-GAN {preset.upper()} (random)"] = generator.eval()
        for layout, settings in STUDENT_LAYOUTS.items():
            generator = HiFiGANGenerator.from_preset("v1", **settings).to(device, dtype)
            vocoders[f"HiFi-GAN {layout} (random)"] = generator.eval()
    mel = vocoder_mel(args.ref1, args.batch, device, dtype)
    seconds_of_audio = args.batch * mel.shape[-1] * 256 / 22050
    timings = {name: [] for name in vocoders}
    clock = (lambda: (torch.cuda.synchronize(), time.perf_counter())[1]) if device == "cuda" else time.perf_counter
    with torch.inference_mode():
        for vocoder in vocoders.values():  # warm-up
            vocoder(mel)
        names = list(vocoders)
        for repeat in range(repeats):
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:
                start = clock()
                vocoders[name](mel)
                timings[name].append(clock() - start)
    rows = []
    for name, vocoder in vocoders.items():
        parameters = sum(p.numel() for p in vocoder.parameters())
        seconds = median(timings[name])
        rows.append({"vocoder": name, "parameters": parameters, "seconds": seconds,
                     "rtf": seconds / seconds_of_audio})
    print(f"\n## Vocoder alone ({args.batch} x {VOCODER_SECONDS} s of mel, median of {repeats} interleaved; "
          f"load average {load_average()})\n")
    print(markdown_table(["vocoder", "parameters", "seconds per call", "RTF"],
                         [[r["vocoder"], f"{r['parameters'] / 1e6:.2f} M", f"{r['seconds']:.4f}", f"{r['rtf']:.4f}"]
                          for r in rows]))
    return {"repeats": repeats, "batch": args.batch, "audio_seconds": seconds_of_audio, "rows": rows}


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def json_safe(value):
    """NaN and infinities become null (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def finish(results: dict, args) -> dict:
    """Record the load average after the run, print it, and write ``--json``."""
    results["environment"]["load_average_after"] = load_average()
    print(f"\nload average after: {results['environment']['load_average_after']}")
    if args.json:
        from melinterp.utils import write_json

        write_json(args.json, json_safe(results))
        print(f"wrote {args.json}")
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f"--batch must be >= 1, got {args.batch}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device (torch.cuda.is_available() is False)")
    steps_list = args.steps or ([4, 10] if args.quick else [4, 10, 25, 50])
    repeats = args.repeats or (1 if args.quick else 3)
    torch.set_num_threads(args.threads)
    ref1 = load_reference(args.ref1, "ref1", parser)
    ref2 = load_reference(args.ref2, "ref2", parser)

    if args.sections == ["vocoder"]:  # the vocoder alone: no pipeline, no phonemiser
        pipe = None
        model_vocoder = load_vocoder(args.model, args.device, DTYPES[args.dtype])
        environment = {"torch": torch.__version__, "device": args.device, "device_name": device_name(args.device),
                       "dtype": args.dtype, "threads": torch.get_num_threads(), "batch": args.batch,
                       "model": str(args.model), "load_average_before": load_average()}
        results = {"environment": environment, "vocoder": section_vocoder(model_vocoder, args, repeats)}
        return finish(results, args)
    pipe = load_pipeline(args)
    if args.encoded_refs:
        ref1, ref2 = pipe.encode_reference(ref1), pipe.encode_reference(ref2)
    bench = Bench(pipe, ref1, ref2, args.device, args.batch, args.text)
    if args.memory_probe is not None:
        print("MEMORY_PROBE " + json.dumps(json_safe(memory_probe(args, pipe, bench))))
        return {}

    environment = {
        "torch": torch.__version__, "melinterp": melinterp.__version__, "python": platform.python_version(),
        "device": args.device, "device_name": device_name(args.device), "dtype": args.dtype,
        "threads": torch.get_num_threads(), "batch": args.batch, "compile": args.compile and args.compile_mode,
        "encoded_refs": args.encoded_refs, "model": str(args.model),
        "ref1": args.ref1, "ref2": args.ref2, "load_average_before": load_average(),
    }
    compiled = f", compiled U-Net ({args.compile_mode})" if args.compile else ""
    print(f"torch {environment['torch']}, {args.device} ({environment['device_name']}), {args.dtype}, "
          f"{environment['threads']} threads, batch {args.batch}{compiled}, "
          f"{'references encoded once, ' if args.encoded_refs else ''}"
          f"load average {environment['load_average_before']}")

    configurations = []
    if "rtf" in args.sections:
        configurations += [MODE_CALLS[mode] for mode in args.modes]
    if "ratios" in args.sections:
        configurations += RATIO_CALLS.values()
    if "scheduler" in args.sections and not configurations:
        configurations.append(MODE_CALLS["none"])
    unique = [dict(c) for c in {json.dumps(c, sort_keys=True): c for c in configurations}.values()]
    if unique:
        print(f"warm-up: {bench.warm_up(unique):.1f} s")

    results = {"environment": environment}
    if "rtf" in args.sections:
        results["rtf"] = section_rtf(bench, steps_list, repeats, args.modes)
    if "ratios" in args.sections:
        results["ratios"] = section_ratios(bench, ratio_steps(steps_list), repeats)
    if "memory" in args.sections:
        results["memory"] = section_memory(bench, args)
    if "scheduler" in args.sections:
        results["scheduler"] = section_scheduler(bench, args.quick)
    if "vocoder" in args.sections:
        results["vocoder"] = section_vocoder(pipe.vocoder, args, repeats)
    return finish(results, args)


if __name__ == "__main__":
    main()
