"""Shared test fixtures: synthetic signals the tests make themselves, engine availability, one-thread torch."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile
import torch

SAMPLE_RATE = 22050


def example_script(relative_path: str, name: str):
    """A script of examples/ (``"training/carry_cache.py"``), which is no package, imported as module ``name``."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / relative_path
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def harmonic_tone(f0: float, seconds: float = 1.0, sr: int = SAMPLE_RATE, n_harmonics: int = 8,
                  amplitude: float = 0.3) -> np.ndarray:
    """A periodic tone with 1/k harmonic amplitudes: a stand-in for a voiced vowel at a known f0 (Hz)."""
    t = np.arange(int(round(seconds * sr))) / sr
    wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, n_harmonics + 1))
    return (amplitude * wave / np.max(np.abs(wave))).astype(np.float32)


@pytest.fixture
def tone():
    return harmonic_tone


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A folder holding `melinterp.testing.tiny_pipeline` (seed 0), for ``--model``."""
    from melinterp.testing import tiny_pipeline

    folder = tmp_path_factory.mktemp("model")
    tiny_pipeline(seed=0).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """Two reference recordings, harmonic tones of half a second: (120 Hz, 240 Hz) wav paths."""
    folder = tmp_path_factory.mktemp("refs")
    ref1, ref2 = folder / "low.wav", folder / "high.wav"
    soundfile.write(ref1, harmonic_tone(120.0, seconds=0.5), SAMPLE_RATE)
    soundfile.write(ref2, harmonic_tone(240.0, seconds=0.5), SAMPLE_RATE)
    return ref1, ref2


@pytest.fixture(scope="module")
def one_thread():
    """torch on one CPU thread for a module of tiny models: on a machine shared with other jobs, two threads
    spinning for the cores make a tiny training step ~20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


requires_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
requires_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")


def engine_test(*programs: str):
    """Decorator: the test runs the named engine programs ("espeak", "flite"): marked ``engines`` and skipped where
    one is missing."""
    marks = {"espeak": requires_espeak, "flite": requires_flite}

    def decorate(test):
        for program in programs:
            test = marks[program](test)
        return pytest.mark.engines(test)
    return decorate
