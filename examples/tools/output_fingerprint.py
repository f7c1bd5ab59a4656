"""Fingerprint every seeded output of the bundled model, to show that a refactor changes no bit of them.

    python examples/tools/output_fingerprint.py --out /tmp/fp_before.json [--arrays /tmp/fp_before]
    python examples/tools/output_fingerprint.py --out /tmp/fp_after.json [--arrays /tmp/fp_after]
    python examples/tools/output_fingerprint.py --compare /tmp/fp_before.json /tmp/fp_after.json
    python examples/tools/output_fingerprint.py --out /tmp/some.json --skip cli demo --only none mix_0.3   # quick

Writes a JSON file ``{job: {output: sha256}}`` over:

- pipeline calls of the bundled model (``melinterp.DEFAULT_MODEL``), each seeded (its generator, and torch's global
  generator before it): every mode and option (mix alphas, temporal boundaries in all three units, freq with each
  pitch mask and each ``freq_guidance``, noise tuning with default and custom settings, dual noise with each map and
  with a merge step), classifier-free guidance, ``return_attention`` on and off, both schedulers (Euler ODE and
  SDE, DPM-Solver and DPM-Solver++ and its SDE), batches of several texts (several lengths, one reference per text,
  sentences split and joined, one generator for a batch), encoded references, output types and a step callback.
  Each output's mels, waveforms, lengths, routing maps, pitch masks and ref1 masses are hashed as arrays (dtype,
  shape and bytes);
- ``melinterp synthesize`` runs (wav and PNG bytes);
- ``examples/demo.py`` (``make demo``'s jobs: every wav and PNG it writes);
- with ``--corpus DIR``: ``melinterp evaluate --quick`` on that corpus (made there by ``make-corpus`` with the tiny
  preset when the folder does not exist): every cached synthesis, per-pair result, the reports and the figures.

With ``--arrays DIR`` every hashed array is also saved there (``<job>.npz``), so that ``--compare`` can say by how
much two runs differ where their hashes do not agree. Run both on the same machine with the same thread count.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1]
REF1 = str(EXAMPLES / "refs" / "high_f4.wav")
REF2 = str(EXAMPLES / "refs" / "low_robert.wav")
REF3 = str(EXAMPLES / "refs" / "mid_awb.wav")
TEXT = "The old painter crossed the quiet bridge."
LONG_TEXT = "She sells sea shells. The shells she sells are surely sea shells! Are they?"
OUTPUT_FIELDS = ("audios", "mels", "lengths", "routing_map", "pitch_mask", "ref1_mass")
STEPS = 4
SEED = 0


def _schedulers():
    from melinterp.schedulers import GradTTSDPMSolverScheduler, GradTTSScheduler

    return {
        "euler": (GradTTSScheduler, {}),
        "euler_sde": (GradTTSScheduler, {"stochastic": True}),
        "dpm": (GradTTSDPMSolverScheduler, {}),
        "dpm++": (GradTTSDPMSolverScheduler, {"algorithm_type": "dpmsolver++"}),
        "dpm_sde": (GradTTSDPMSolverScheduler, {"stochastic": True}),
    }


def pipeline_jobs() -> dict[str, dict]:
    """job name -> pipeline keywords (``scheduler`` names one of `_schedulers`; ``seed`` the generator's seed)."""
    from melinterp import NoiseTuningConfig

    two = {"ref2": REF2}
    custom_tuning = NoiseTuningConfig(t_start=1.0, t_end=0.5, gamma=0.5, step_size=0.1, iterations=2,
                                      layers=("down_blocks.2",))
    jobs = {
        "none": {"mode": "none"},
        "none_encoded_ref": {"mode": "none", "encoded": True},
        "none_slow_cold": {"mode": "none", "length_scale": 1.3, "temperature": 1.0, "seed": 7},
        "none_cfg": {"mode": "none", "guidance_scale": 2.5},
        "none_pt": {"mode": "none", "output_type": "pt"},
        "none_mel": {"mode": "none", "output_type": "mel"},
        "none_callback": {"mode": "none", "callback": True},
        "mix_0.3": {"mode": "mix", "alpha": 0.3, **two},
        "mix_0": {"mode": "mix", "alpha": 0.0, **two},
        "mix_1": {"mode": "mix", "alpha": 1.0, **two},
        "mix_cfg": {"mode": "mix", "alpha": 0.6, "guidance_scale": 2.0, **two},
        "temporal_fraction": {"mode": "temporal", "boundary": 0.4, "crossfade": 0.1, **two},
        "temporal_fraction_attention": {"mode": "temporal", "boundary": 0.4, "crossfade": 0.1,
                                        "return_attention": True, **two},
        "temporal_phoneme": {"mode": "temporal", "boundary": 7, "crossfade": 0.0, "return_attention": True, **two},
        "temporal_seconds": {"mode": "temporal", "boundary": "0.6s", "routing_strength": 2.0, **two},
        "temporal_cfg": {"mode": "temporal", "guidance_scale": 2.0, "return_attention": True, **two},
        "freq_mask_band": {"mode": "freq", "freq_guidance": "mask", **two},
        "freq_mask_band_attention": {"mode": "freq", "freq_guidance": "mask", "return_attention": True, **two},
        "freq_mask_harmonic": {"mode": "freq", "pitch_mask": "harmonic", "return_attention": True, **two},
        "freq_mask_strength": {"mode": "freq", "routing_strength": 3.0, "return_attention": True, **two},
        "freq_none_band": {"mode": "freq", "freq_guidance": "none", "return_attention": True, **two},
        "freq_none_harmonic": {"mode": "freq", "freq_guidance": "none", "pitch_mask": "harmonic", **two},
        "freq_mask_cfg": {"mode": "freq", "guidance_scale": 2.0, "return_attention": True, **two},
        "freq_tuning_band": {"mode": "freq", "freq_guidance": "noise_tuning", **two},
        "freq_tuning_band_attention": {"mode": "freq", "freq_guidance": "noise_tuning", "return_attention": True,
                                       **two},
        "freq_tuning_harmonic_custom": {"mode": "freq", "freq_guidance": "noise_tuning", "pitch_mask": "harmonic",
                                        "tuning": custom_tuning, "return_attention": True, **two},
        "freq_tuning_cfg": {"mode": "freq", "freq_guidance": "noise_tuning", "guidance_scale": 2.0, **two},
        "dual_noise_freq_band": {"mode": "dual_noise", "return_attention": True, **two},
        "dual_noise_freq_harmonic": {"mode": "dual_noise", "pitch_mask": "harmonic", **two},
        "dual_noise_temporal": {"mode": "dual_noise", "dual_noise_map": "temporal", "boundary": "0.5s",
                                "crossfade": 0.2, **two},
        "dual_noise_freq_merge": {"mode": "dual_noise", "dual_noise_merge_step": 2, **two},
        "dual_noise_temporal_merge": {"mode": "dual_noise", "dual_noise_map": "temporal", "boundary": 5,
                                      "dual_noise_merge_step": 1, **two},
        "dual_noise_cfg": {"mode": "dual_noise", "guidance_scale": 2.0, **two},
        "dual_noise_merge_cfg": {"mode": "dual_noise", "dual_noise_merge_step": 2, "guidance_scale": 2.0, **two},
        "dual_noise_merge_callback": {"mode": "dual_noise", "dual_noise_merge_step": 2, "callback": True, **two},
        # batches: three texts of different lengths, one reference pair per text, one generator per text
        "batch_freq": {"mode": "freq", "text": [TEXT, "Hello there.", LONG_TEXT], "ref1": [REF1, REF2, REF3],
                       "ref2": [REF2, REF3, REF1], "seeds": [1, 2, 3], "return_attention": True},
        "batch_temporal": {"mode": "temporal", "text": [TEXT, LONG_TEXT, "Hello there."], "ref2": [REF2, REF3, REF2],
                           "seeds": [4, 5, 6], "return_attention": True},
        "batch_dual_noise_merge": {"mode": "dual_noise", "text": [TEXT, LONG_TEXT], "dual_noise_merge_step": 1,
                                   "seeds": [8, 9], **two},
        "batch_mix_cfg": {"mode": "mix", "alpha": 0.4, "text": [LONG_TEXT, TEXT], "guidance_scale": 1.5, **two},
        "batch_equal_lengths": {"mode": "none", "text": [TEXT, TEXT, TEXT]},  # one generator, one length group
        "batch_encoded_and_recorded": {"mode": "freq", "text": [TEXT, "Hello there."], "ref1": ["enc:" + REF1, REF3],
                                       "ref2": [REF2, "enc:" + REF1], "seeds": [1, 2]},
        "long_text_split": {"mode": "none", "text": LONG_TEXT, "sentence_pause": 0.1},
        "long_text_unsplit": {"mode": "temporal", "text": LONG_TEXT, "split_sentences": False, **two},
    }
    for scheduler in ("dpm", "dpm++"):
        jobs.update({
            f"{scheduler}_none": {"mode": "none", "scheduler": scheduler, "steps": 6},
            f"{scheduler}_mix": {"mode": "mix", "scheduler": scheduler, **two},
            f"{scheduler}_temporal": {"mode": "temporal", "scheduler": scheduler, "return_attention": True, **two},
            f"{scheduler}_freq": {"mode": "freq", "scheduler": scheduler, "return_attention": True, **two},
            f"{scheduler}_freq_tuning": {"mode": "freq", "freq_guidance": "noise_tuning", "scheduler": scheduler,
                                         **two},
            f"{scheduler}_dual_noise": {"mode": "dual_noise", "scheduler": scheduler, **two},
            f"{scheduler}_dual_noise_merge": {"mode": "dual_noise", "dual_noise_merge_step": 2,
                                              "scheduler": scheduler, "steps": 6, **two},
            f"{scheduler}_dual_noise_merge_cfg": {"mode": "dual_noise", "dual_noise_merge_step": 1,
                                                  "guidance_scale": 2.0, "scheduler": scheduler, **two},
            f"{scheduler}_batch": {"mode": "freq", "text": [TEXT, LONG_TEXT], "scheduler": scheduler, **two},
        })
    for scheduler in ("euler_sde", "dpm_sde"):
        jobs.update({
            f"{scheduler}_none": {"mode": "none", "scheduler": scheduler},
            f"{scheduler}_mix": {"mode": "mix", "scheduler": scheduler, **two},
            f"{scheduler}_freq": {"mode": "freq", "scheduler": scheduler, **two},
            f"{scheduler}_dual_noise": {"mode": "dual_noise", "scheduler": scheduler, **two},
            f"{scheduler}_batch": {"mode": "temporal", "text": [TEXT, LONG_TEXT], "scheduler": scheduler, **two},
            # the second trajectory's SDE noise: seeded only through torch's global generator
            f"{scheduler}_dual_noise_merge": {"mode": "dual_noise", "dual_noise_merge_step": 2,
                                              "scheduler": scheduler, **two},
        })
    return jobs


def array_digest(value) -> str | None:
    if value is None:
        return None
    array = np.ascontiguousarray(value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value))
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_pipeline_jobs(pipe, arrays: Path | None, only: list[str] | None = None) -> dict:
    import torch

    base_config = pipe.scheduler.config
    schedulers = _schedulers()
    encodings = {}
    results = {}
    for name, job in pipeline_jobs().items():
        if only and name not in only:
            continue
        job = dict(job)
        scheduler_class, overrides = schedulers[job.pop("scheduler", "euler")]
        pipe.scheduler = scheduler_class.from_config(base_config, **overrides)
        text = job.pop("text", TEXT)
        steps = job.pop("steps", STEPS)
        seeds = job.pop("seeds", None)
        seed = job.pop("seed", SEED)
        encoded = job.pop("encoded", False)
        callback = job.pop("callback", False)

        def reference(ref):
            if isinstance(ref, list):
                return [reference(r) for r in ref]
            if isinstance(ref, str) and ref.startswith("enc:"):
                if ref not in encodings:
                    encodings[ref] = pipe.encode_reference(ref[4:])
                return encodings[ref]
            return ref

        ref1 = reference(job.pop("ref1", "enc:" + REF1 if encoded else REF1))
        ref2 = reference(job.pop("ref2", None))
        if callback:
            def shrink(pipeline, i, t, tensors):  # sees (B, n_mels, T) and changes the latents at step 1 only
                assert tensors["latents"].shape[0] == (len(text) if isinstance(text, list) else 1)
                return {"latents": tensors["latents"] * 0.99} if i == 1 else None
            job["callback_on_step_end"] = shrink
        generator = ([torch.Generator().manual_seed(s) for s in seeds] if seeds is not None
                     else torch.Generator().manual_seed(seed))
        torch.manual_seed(1234)  # whatever draws from torch's global generator is pinned too
        output = pipe(text, ref1, ref2, num_inference_steps=steps, generator=generator, **job)
        values = {field: getattr(output, field) for field in OUTPUT_FIELDS}
        results[name] = {field: array_digest(value) for field, value in values.items()}
        if arrays is not None:
            np.savez(arrays / f"{name}.npz", **{field: np.asarray(value.cpu() if hasattr(value, "cpu") else value)
                                                for field, value in values.items() if value is not None})
        print(f"{name}: {results[name]['mels'][:12]}", flush=True)
    pipe.scheduler = schedulers["euler"][0].from_config(base_config)
    return results


def run_cli_jobs(work: Path) -> dict:
    from melinterp.cli import main

    text_file = work / "lines.txt"
    text_file.write_text("Hello there.\n\nThe quiet bridge.\n", encoding="utf-8")
    runs = {
        "cli_freq_plot": ["synthesize", TEXT, "--ref1", REF1, "--ref2", REF2, "--mode", "freq", "--steps", "4",
                          "--out", "{dir}/freq.wav", "--plot", "{dir}/freq.png"],
        "cli_default_mode_dpm": ["synthesize", TEXT, "--ref1", REF1, "--ref2", REF2, "--scheduler", "dpm",
                                 "--steps", "5", "--seed", "3", "--out", "{dir}/dpm.wav"],
        "cli_temporal_seconds": ["synthesize", TEXT, "--ref1", REF1, "--ref2", REF2, "--mode", "temporal",
                                 "--boundary", "0.8s", "--crossfade", "0.2", "--steps", "4", "--out",
                                 "{dir}/temporal.wav", "--plot", "{dir}/temporal.png"],
        "cli_text_file_none_griffin_lim": ["synthesize", "--text-file", str(text_file), "--ref1", REF3,
                                           "--vocoder", "griffin-lim", "--steps", "3", "--guidance-scale", "2",
                                           "--out", "{dir}/lines.wav"],
        "cli_dual_noise_harmonic": ["synthesize", TEXT, "--ref1", REF1, "--ref2", REF2, "--mode", "dual_noise",
                                    "--pitch-mask", "harmonic", "--steps", "4", "--out", "{dir}/dual.wav"],
        "cli_noise_tuning": ["synthesize", TEXT, "--ref1", REF1, "--ref2", REF2, "--mode", "freq",
                             "--freq-guidance", "noise_tuning", "--steps", "4", "--out", "{dir}/tuning.wav"],
    }
    results = {}
    for name, argv in runs.items():
        folder = work / name
        folder.mkdir()
        with contextlib.redirect_stdout(io.StringIO()):
            code = main([a.replace("{dir}", str(folder)) for a in argv])
        if code != 0:
            raise RuntimeError(f"{name}: melinterp {' '.join(argv)} exited with {code}")
        results[name] = {path.name: file_digest(path) for path in sorted(folder.iterdir())}
        print(f"{name}: {len(results[name])} files", flush=True)
    return results


def run_demo(work: Path) -> dict:
    folder = work / "demo"
    argv = sys.argv
    try:
        sys.argv = [str(EXAMPLES / "demo.py"), "--out", str(folder)]
        with contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(str(EXAMPLES / "demo.py"), run_name="__main__")
    finally:
        sys.argv = argv
    results = {path.name: file_digest(path) for path in sorted(folder.iterdir())}
    print(f"demo: {len(results)} files", flush=True)
    return {"demo": results}


def run_evaluate(corpus: Path, work: Path) -> dict:
    import melinterp
    from melinterp.cli import main

    if not corpus.exists():
        subprocess.run([sys.executable, "-m", "melinterp", "make-corpus", "--out", str(corpus), "--preset", "tiny",
                        "--train-per-speaker", "0", "--val-per-speaker", "0", "--heldout-per-speaker", "2",
                        "--triplets", "2", "--jobs", "1", "--quiet"], check=True)
    out = work / "evaluate"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["evaluate", "--model", melinterp.DEFAULT_MODEL, "--corpus", str(corpus), "--out", str(out),
                     "--quick", "--quiet"])
    if code != 0:
        raise RuntimeError(f"melinterp evaluate exited with {code}")
    results = {}
    for path in sorted(out.rglob("*")):
        if path.is_file():
            relative = str(path.relative_to(out))
            if path.suffix == ".npz":
                with np.load(path) as cached:
                    results[relative] = {key: array_digest(cached[key]) for key in sorted(cached.files)}
            elif path.suffix in (".json", ".md"):  # they name the model folder: two checkouts compare equal
                text = path.read_text(encoding="utf-8").replace(melinterp.DEFAULT_MODEL, "<DEFAULT_MODEL>")
                results[relative] = hashlib.sha256(text.encode()).hexdigest()
            else:
                results[relative] = file_digest(path)
    print(f"evaluate: {len(results)} files", flush=True)
    return {"evaluate": results}


def compare(before_path: Path, after_path: Path) -> int:
    before, after = (json.loads(Path(p).read_text()) for p in (before_path, after_path))
    differing = 0
    for job in sorted(set(before["jobs"]) | set(after["jobs"])):
        a, b = before["jobs"].get(job), after["jobs"].get(job)
        if a == b:
            continue
        differing += 1
        if a is None or b is None:
            print(f"{job}: only in {'after' if a is None else 'before'}")
            continue
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                print(f"{job}: {key} differs{_max_difference(before, after, job, key)}")
    total = len(set(before["jobs"]) | set(after["jobs"]))
    print(f"{total - differing} of {total} jobs identical" + ("" if differing else ": every output bit-identical"))
    return 1 if differing else 0


def _max_difference(before: dict, after: dict, job: str, field: str) -> str:
    folders = before.get("arrays"), after.get("arrays")
    if None in folders:
        return ""
    paths = [Path(folder) / f"{job}.npz" for folder in folders]
    if not all(path.is_file() for path in paths):
        return ""
    with np.load(paths[0]) as first, np.load(paths[1]) as second:
        if field not in first.files or field not in second.files:
            return ""
        x, y = first[field], second[field]
        if x.shape != y.shape:
            return f" (shapes {x.shape} and {y.shape})"
        return f" (max abs difference {np.abs(x.astype(np.float64) - y.astype(np.float64)).max():.3g})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="JSON file to write")
    parser.add_argument("--arrays", type=Path, help="also save every hashed array here, one .npz per job")
    parser.add_argument("--corpus", type=Path, help="also fingerprint `melinterp evaluate --quick` on this corpus")
    parser.add_argument("--skip", nargs="*", default=[], choices=["pipeline", "cli", "demo"],
                        help="parts to leave out")
    parser.add_argument("--only", nargs="*", metavar="JOB", help="run only these pipeline jobs (a quick check)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"),
                        help="compare two fingerprint files instead")
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)
    if args.out is None:
        parser.error("--out is required (or --compare BEFORE AFTER)")

    import torch

    import melinterp
    from melinterp import MelStyleInterpolationPipeline

    if args.arrays is not None:
        args.arrays.mkdir(parents=True, exist_ok=True)
    jobs = {}
    with tempfile.TemporaryDirectory(prefix="melinterp-fingerprint-") as work:
        work = Path(work)
        if "pipeline" not in args.skip:
            pipe = MelStyleInterpolationPipeline.from_pretrained(melinterp.DEFAULT_MODEL)
            pipe.set_progress_bar_config(disable=True)
            jobs.update(run_pipeline_jobs(pipe, args.arrays, args.only))
        if "cli" not in args.skip:
            jobs.update(run_cli_jobs(work))
        if "demo" not in args.skip:
            jobs.update(run_demo(work))
        if args.corpus is not None:
            jobs.update(run_evaluate(args.corpus, work))
    record = {"torch": torch.__version__, "threads": torch.get_num_threads(), "package": melinterp.__file__,
              "arrays": None if args.arrays is None else str(args.arrays.resolve()), "jobs": jobs}
    args.out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(jobs)} jobs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
