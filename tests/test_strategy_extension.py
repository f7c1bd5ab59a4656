"""A guidance strategy written outside the package registers and runs end to end with no edit to the package:
"energy from ref1, the rest from ref2" needs an analysis of ref1 the package does not take (its energy contour),
registered here too; the pipeline provides it without knowing the strategy, and ``melinterp synthesize`` takes the
new mode by name."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
from conftest import SAMPLE_RATE, harmonic_tone

from melinterp.audio import frame_energy
from melinterp.cli import main
from melinterp.guidance import STRATEGIES, Conditioning, Guidance, GuidanceStrategy, register_strategy
from melinterp.models.attention_processors import RoutingSpec
from melinterp.pipelines.references import ANALYSES
from melinterp.testing import tiny_pipeline

TEXT = "Hello there, my friend."
STEPS = 3


def quiet_then_loud(f0: float) -> np.ndarray:
    """A tone whose first half is a tenth as loud as its second half."""
    wave = harmonic_tone(f0, seconds=1.0)
    wave[: wave.size // 2] *= 0.1
    return wave


REF1 = (quiet_then_loud(150.0), SAMPLE_RATE)
REF2 = (harmonic_tone(300.0, seconds=0.8), SAMPLE_RATE)


def energy_profile(energy: np.ndarray, num_frames: int) -> torch.Tensor:
    """(T,) a reference's energy contour, stretched to T frames and scaled to [0, 1]."""
    contour = torch.from_numpy(np.log(energy + 1e-5))[None, None]  # (1, 1, T_ref)
    contour = F.interpolate(contour, size=num_frames, mode="linear", align_corners=False)[0, 0]
    return (contour - contour.min()) / (contour.max() - contour.min()).clamp_min(1e-8)


class EnergyFromRef1(GuidanceStrategy):
    """Keys = [ref1 ; ref2]; a cell listens to ref1 as much as ref1 is loud at that point of the utterance (its
    energy contour stretched over the output is the routing map over time), to ref2 otherwise."""

    num_references = 2
    reference_analyses = ("energy",)
    captures_ref1_mass = True

    def prepare(self, state):
        profiles = torch.stack([energy_profile(e, state.num_frames) for e in state.ref1_analyses["energy"]])
        routing_map = profiles[:, None, :].expand(-1, state.mu_y.shape[1], -1).contiguous().to(state.mu_y)
        routing = RoutingSpec(state.pad_map(routing_map), num_ref1_tokens=state.ref1.style_tokens.shape[1],
                              strength=4.0)
        vector = 0.5 * (state.ref1.style_vector + state.ref2.style_vector)
        conditioning = Conditioning.two_references(state.ref1, state.ref2, vector, {"routing": routing})
        return Guidance(conditioning, routing_map=routing_map)


@pytest.fixture
def energy_mode(monkeypatch):
    """The analysis and the strategy registered for one test, and taken out again after it."""
    monkeypatch.setitem(ANALYSES, "energy", lambda waveform, config: frame_energy(waveform, config))
    register_strategy("energy_from_ref1")(EnergyFromRef1)
    yield "energy_from_ref1"
    del STRATEGIES["energy_from_ref1"]
    EnergyFromRef1.name = None


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def run(pipe, mode, ref1=REF1, **kwargs):
    return pipe(TEXT, ref1, REF2, mode=mode, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0),
                return_attention=True, **kwargs)


def test_a_strategy_defined_here_runs_end_to_end(pipe, energy_mode):
    out = run(pipe, energy_mode)
    (num_frames,) = out.lengths
    assert out.mels.shape == (1, 80, num_frames) and np.isfinite(out.audios).all()
    assert out.pitch_mask is None
    # the routing map is ref1's energy: quiet first half, loud second half
    weight = out.routing_map[0].mean(0)  # (T,)
    first, last = weight[: num_frames // 3].mean(), weight[-num_frames // 3:].mean()
    assert first < 0.1 and last > 0.9
    # and attention went where the map sent it
    mass = out.ref1_mass[0].mean(0)
    assert mass[-num_frames // 3:].mean() > mass[: num_frames // 3].mean() + 0.5


def test_the_new_mode_is_refused_options_like_any_other_and_takes_encoded_references(pipe, energy_mode):
    with pytest.raises(ValueError, match=r"mode='energy_from_ref1' interpolates between two voices and needs ref2"):
        pipe(TEXT, REF1, mode=energy_mode, num_inference_steps=1)
    with pytest.raises(ValueError, match=r"mode must be one of 'none', .*, 'energy_from_ref1', got 'energy'"):
        pipe(TEXT, REF1, REF2, mode="energy", num_inference_steps=1)
    # a reference analysed once keeps its waveform: the energy is taken of it when a strategy asks
    from_encoding = run(pipe, energy_mode, ref1=pipe.encode_reference(REF1), output_type="mel")
    np.testing.assert_array_equal(from_encoding.mels, run(pipe, energy_mode, output_type="mel").mels)


def test_a_strategy_object_is_a_mode_without_registering(pipe, monkeypatch):
    monkeypatch.setitem(ANALYSES, "energy", lambda waveform, config: frame_energy(waveform, config))
    out = run(pipe, EnergyFromRef1(), output_type="mel")
    assert out.routing_map is not None and "energy_from_ref1" not in STRATEGIES


def test_synthesize_takes_the_registered_mode_by_name(energy_mode, tmp_path):
    model, ref1, ref2, out = tmp_path / "model", tmp_path / "ref1.wav", tmp_path / "ref2.wav", tmp_path / "out.wav"
    tiny_pipeline().save_pretrained(model)
    soundfile.write(ref1, REF1[0], SAMPLE_RATE)
    soundfile.write(ref2, REF2[0], SAMPLE_RATE)
    assert main(["synthesize", TEXT, "--ref1", str(ref1), "--ref2", str(ref2), "--mode", energy_mode, "--model",
                 str(model), "--steps", "2", "--out", str(out), "--plot", str(tmp_path / "out.png")]) == 0
    assert soundfile.info(out).frames > 0
