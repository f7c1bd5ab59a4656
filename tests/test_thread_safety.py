"""A pipeline, and the phonemiser under it, called from several threads at once give each call its own result."""

from __future__ import annotations

import threading

import numpy as np
import torch
from conftest import harmonic_tone

from melinterp.testing import tiny_pipeline
from melinterp.text.phonemize import phonemize_normalized

THREADS = 4


def run_in_threads(function, jobs: list) -> list:
    """``function(job)`` for every job, spread over THREADS threads started together; results in job order."""
    results, errors = [None] * len(jobs), []
    barrier = threading.Barrier(THREADS)

    def worker(offset: int) -> None:
        barrier.wait()  # all threads enter the shared code at the same moment
        for index in range(offset, len(jobs), THREADS):
            try:
                results[index] = function(jobs[index])
            except Exception as error:  # noqa: BLE001 - collected and re-raised in the main thread
                errors.append(error)

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def test_concurrent_phonemisation_returns_each_calls_own_phonemes():
    texts = [[f"number {i} is a {word}", f"the {word} count is {i}"]
             for i, word in enumerate(["cat", "ship", "violin", "table", "garden"] * 12)]
    alone = [phonemize_normalized(batch, "en-us") for batch in texts]
    together = run_in_threads(lambda batch: phonemize_normalized(batch, "en-us"), texts)
    assert together == alone


def test_pipeline_called_from_threads_gives_the_single_threaded_outputs():
    """4 threads x 10 calls of one pipeline, with different texts, seeds, modes and step counts, each equal to the
    same call made alone. The multistep solver keeps its history on the shared scheduler: the hardest case."""
    from melinterp.schedulers import GradTTSDPMSolverScheduler

    pipe = tiny_pipeline(seed=0)
    pipe.scheduler = GradTTSDPMSolverScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    reference = (harmonic_tone(180.0, seconds=0.6), 22050)
    other = (harmonic_tone(110.0, seconds=0.6), 22050)
    texts = ["Hello there.", "A quiet evening.", "Go now, please.", "One more time."]
    jobs = [(texts[i % 4], i, ("none", "freq")[i % 2], 2 + i % 3) for i in range(40)]  # text, seed, mode, steps

    def speak(job):
        text, seed, mode, steps = job
        out = pipe(text, reference, other if mode != "none" else None, mode=mode, num_inference_steps=steps,
                   generator=torch.Generator().manual_seed(seed))
        return out.audios[0]

    alone = [speak(job) for job in jobs]
    together = run_in_threads(speak, jobs)
    for single, threaded in zip(alone, together):
        np.testing.assert_array_equal(threaded, single)
