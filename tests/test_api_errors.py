"""Wrong uses of the Python API raise a short error that says what was expected and what came."""

from __future__ import annotations

import copy
import os
import re
import shutil

import numpy as np
import pytest
import soundfile
import torch

from melinterp.audio import AudioError, load_audio
from melinterp.pipelines import MelStyleInterpolationPipeline
from melinterp.testing import TINY_MODEL_CONFIG, tiny_pipeline

from conftest import SAMPLE_RATE, harmonic_tone


@pytest.fixture(scope="module")
def pipe(one_thread):
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def saved(pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_pipeline")
    pipe.save_pretrained(folder)
    return folder


def _copy_of(saved, tmp_path):
    folder = tmp_path / "pipeline"
    shutil.copytree(saved, folder)
    return folder


# ---------------------------------------------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("generator", [0, np.random.default_rng(0), [torch.Generator(), 0]],
                         ids=["int", "numpy_rng", "list_with_an_int"])
def test_a_generator_that_is_not_a_torch_generator_is_refused(pipe, generator):
    ref = (harmonic_tone(200.0, seconds=0.5), SAMPLE_RATE)
    texts = "Hi." if not isinstance(generator, list) else ["Hi.", "Yo."]
    with pytest.raises(ValueError, match=r"generator must be a torch\.Generator or a list of them, one per text"):
        pipe(texts, ref, generator=generator, num_inference_steps=1, output_type="mel")


# ---------------------------------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------------------------------

def test_a_tuple_of_two_paths_is_not_read_as_array_and_sample_rate(pipe, tmp_path):
    paths = []
    for f0 in (180.0, 240.0):
        path = tmp_path / f"ref_{int(f0)}.wav"
        soundfile.write(path, harmonic_tone(f0, seconds=0.5), SAMPLE_RATE)
        paths.append(str(path))
    with pytest.raises(ValueError, match=r"ref1 as a tuple must be an \(array, sample_rate\) pair, got a tuple of "
                                         r"\(str, str\).*several references.*list"):
        pipe(["Hi.", "Yo."], tuple(paths), num_inference_steps=1, output_type="mel")


def test_an_array_sampled_below_8_khz_is_refused():
    with pytest.raises(AudioError, match=r"audio array is sampled at 1000 Hz.*at least 8000 Hz"):
        load_audio(harmonic_tone(200.0, seconds=1.0, sr=1000), 1000)


def test_a_file_sampled_below_8_khz_is_refused(tmp_path, pipe):
    path = tmp_path / "low.wav"
    soundfile.write(path, harmonic_tone(200.0, seconds=1.0, sr=1000), 1000)
    with pytest.raises(AudioError, match=re.escape(str(path)) + r" is sampled at 1000 Hz.*at least 8000 Hz"):
        load_audio(path)
    with pytest.raises(AudioError, match=r"ref1: .* is sampled at 1000 Hz"):
        pipe("Hi.", str(path), num_inference_steps=1, output_type="mel")


def test_audio_at_8_khz_is_accepted():
    assert load_audio(harmonic_tone(200.0, seconds=0.5, sr=8000), 8000).size == int(0.5 * SAMPLE_RATE)


# ---------------------------------------------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without a CUDA device")
@pytest.mark.parametrize("call", [
    lambda p: p.to("cuda"), lambda p: p.to(torch.device("cuda", 0)), lambda p: p.to(device="cuda:0"),
    lambda p: p.to("cuda", torch.float16),
], ids=["str", "device", "keyword", "with_dtype"])
def test_moving_to_cuda_without_a_cuda_device_says_so(pipe, call):
    with pytest.raises(ValueError, match=r"no CUDA device is available.*torch .* was built"):
        call(pipe)
    assert pipe.device == torch.device("cpu")


def test_moving_to_cpu_and_to_a_dtype_still_work(pipe):
    assert pipe.to("cpu") is pipe
    assert pipe.to(device=torch.device("cpu"), dtype=torch.float32).device == torch.device("cpu")


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["no/such/folder", "./nowhere", "../nowhere", "/no/such/folder", "~/nowhere"])
def test_from_pretrained_of_a_missing_local_path_says_the_folder_does_not_exist(name):
    with pytest.raises(FileNotFoundError, match=re.escape(name) + r": no such folder"):
        MelStyleInterpolationPipeline.from_pretrained(name)


def test_from_pretrained_of_a_missing_folder_inside_an_existing_one_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(FileNotFoundError, match=r"models/missing: no such folder"):
        MelStyleInterpolationPipeline.from_pretrained("models/missing")


def test_from_pretrained_still_sends_user_repo_ids_to_the_hub(monkeypatch, saved):
    import huggingface_hub

    asked = []

    def fake_snapshot_download(repo_id, **kwargs):
        asked.append(repo_id)
        return str(saved)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    MelStyleInterpolationPipeline.from_pretrained("someone/tiny")
    assert asked == ["someone/tiny"]


def _replace_with_pickle(folder, component):
    weights = folder / component / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file

    torch.save(load_file(weights), folder / component / "diffusion_pytorch_model.bin")
    weights.unlink()


def test_pickle_weights_are_refused_unless_allowed(saved, tmp_path):
    folder = _copy_of(saved, tmp_path)
    _replace_with_pickle(folder, "unet")
    with pytest.raises(ValueError, match=r"component 'unet'.*no \.safetensors weights.*only safetensors weights are "
                                         r"loaded.*allow_pickle=True"):
        MelStyleInterpolationPipeline.from_pretrained(folder)
    loaded = MelStyleInterpolationPipeline.from_pretrained(folder, allow_pickle=True)
    assert isinstance(loaded.unet, torch.nn.Module)


# ---------------------------------------------------------------------------------------------------------------
# Component compatibility
# ---------------------------------------------------------------------------------------------------------------

def _wider_pipeline(width: int = 32) -> MelStyleInterpolationPipeline:
    """A tiny pipeline whose style is `width` wide (style tokens, style vector) instead of 16."""
    from melinterp.models import MelUNet2DConditionModel, StyleEncoder, TextEncoder

    config = copy.deepcopy(TINY_MODEL_CONFIG)
    config["style_encoder"].update(hidden_channels=width, style_dim=width)
    config["text_encoder"].update(style_dim=width)
    config["unet"].update(cross_attention_dim=width, projection_class_embeddings_input_dim=width)
    base = tiny_pipeline(seed=1)
    torch.manual_seed(1)
    return MelStyleInterpolationPipeline(
        text_encoder=TextEncoder(n_vocab=base.text_processor.vocab_size, **config["text_encoder"]).eval(),
        style_encoder=StyleEncoder(**config["style_encoder"]).eval(),
        unet=MelUNet2DConditionModel(**config["unet"]).eval(), scheduler=base.scheduler, vocoder=base.vocoder,
        text_processor=base.text_processor, feature_config=base.feature_config,
    )


def test_a_unet_from_a_smaller_model_is_refused_at_load_time(saved, tmp_path):
    wide = tmp_path / "wide"
    _wider_pipeline().save_pretrained(wide)
    shutil.rmtree(wide / "unet")
    shutil.copytree(saved / "unet", wide / "unet")
    with pytest.raises(ValueError, match=r"style_encoder makes style tokens of 32 channels but unet\.config\."
                                         r"cross_attention_dim is 16"):
        MelStyleInterpolationPipeline.from_pretrained(wide)


def test_mismatched_components_name_the_sizes(pipe):
    from melinterp.models import StyleEncoder

    config = dict(TINY_MODEL_CONFIG["style_encoder"], style_dim=24)
    components = dict(pipe.components, style_encoder=StyleEncoder(**config))
    with pytest.raises(ValueError, match=r"style_encoder\.config\.style_dim is 24 but text_encoder\.config\.style_dim "
                                         r"is 16") as error:
        MelStyleInterpolationPipeline(**components)
    assert "projection_class_embeddings_input_dim is 16" in str(error.value)

    config = dict(TINY_MODEL_CONFIG["style_encoder"], n_mels=40)
    components = dict(pipe.components, style_encoder=StyleEncoder(**config))
    with pytest.raises(ValueError, match=r"style_encoder\.config\.n_mels is 40 but feature_config\.n_mels is 80"):
        MelStyleInterpolationPipeline(**components)


def test_a_saved_tiny_pipeline_still_loads(saved):
    loaded = MelStyleInterpolationPipeline.from_pretrained(saved)
    assert os.path.isdir(saved) and loaded.unet.config.cross_attention_dim == 16
