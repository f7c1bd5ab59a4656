"""Hub helpers: the model card, uploading through a fake HfApi, and loading "user/repo" through a fake download.

Nothing here touches the network: uploads go to `FakeHubApi`, downloads through a monkeypatched
``huggingface_hub.snapshot_download`` (which ``MelStyleInterpolationPipeline.from_pretrained`` imports at call
time), and the offline test sets ``huggingface_hub.constants.HF_HUB_OFFLINE``, which blocks every request.
"""

from __future__ import annotations

import csv
import json
import shutil

import huggingface_hub
import numpy as np
import pytest
import torch
import yaml
from conftest import SAMPLE_RATE, harmonic_tone

from melinterp.pipelines import MelStyleInterpolationPipeline
from melinterp.pipelines.hub import load_pipeline, model_card, push_pipeline_to_hub
from melinterp.testing import tiny_pipeline

REPO_ID = "someone/melinterp-tiny"


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_model_card_front_matter_usage_and_parameter_counts(pipe):
    card = model_card(pipe, repo_id=REPO_ID)
    assert front_matter(card) == {
        "library_name": "melinterp", "license": "apache-2.0", "pipeline_tag": "text-to-speech",
        "tags": ["text-to-speech", "diffusion", "voice-interpolation", "grad-tts"],
    }
    assert f"# {REPO_ID}" in card
    assert f'MelStyleInterpolationPipeline.from_pretrained("{REPO_ID}")' in card
    assert 'mode="freq"' in card
    for heading in ("## What it is", "## How to use", "## Components", "## Configurations", "## Limitations"):
        assert heading in card
    unet_parameters = sum(p.numel() for p in pipe.unet.parameters())
    total = sum(sum(p.numel() for p in m.parameters()) for m in (pipe.text_encoder, pipe.style_encoder, pipe.unet))
    assert f"| `unet` | `MelUNet2DConditionModel` | {unet_parameters:,} |" in card
    assert "| `vocoder` | `GriffinLimVocoder` | 0 |" in card
    assert "- The vocoder is Griffin-Lim: phasey, buzzy audio." in card
    assert f"| **total** | | **{total:,}** |" in card
    assert '"hop_length": 256' in card  # the feature config is shown
    assert "## Training log" not in card and "## Metrics" not in card


def test_model_card_names_a_trained_vocoder_in_its_limitations(pipe):
    from melinterp.models import VocosVocoder
    from melinterp.pipelines.hub import model_card

    speaking = MelStyleInterpolationPipeline(**{**pipe.components, "vocoder": VocosVocoder(dim=16, intermediate_dim=32,
                                                                                           num_layers=1)})
    card = model_card(speaking, repo_id=REPO_ID)
    assert "- The vocoder is a trained `VocosVocoder`" in card and "phasey" not in card


def test_model_card_training_log_and_metrics(pipe, tmp_path):
    log = tmp_path / "train.csv"
    with log.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "loss", "lr"])
        writer.writeheader()
        for step in range(1, 31):
            writer.writerow({"step": step * 100, "loss": 2.0 / step, "lr": 1e-4})
    card = model_card(pipe, training_log=log, metrics={"speaker_similarity_ref2": 0.8123456, "log_f0_rmse": 0.05})
    table = card.split("## Training log\n")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith(("| step", "| ---"))]
    assert len(rows) == 12  # 30 rows thinned to 12, evenly spaced
    assert rows[0] == "| 100 | 2 | 0.0001 |" and rows[-1] == "| 3000 | 0.06667 | 0.0001 |"
    assert "| speaker_similarity_ref2 | 0.8123 |" in card
    # a list of dicts (the trainer's rows in memory) works the same way
    assert "| 1 | 0.5 |" in model_card(pipe, training_log=[{"step": 1, "loss": 0.5}])

    with pytest.raises(FileNotFoundError, match="training_log: no such file .*train.csv"):
        model_card(pipe, training_log=tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="training_log must be a path to the trainer's train.csv or a list of dicts"):
        model_card(pipe, training_log=42)


class FakeHubApi:
    """Records what `push_pipeline_to_hub` asks of the Hub; keeps a copy of each uploaded folder as the repo."""

    def __init__(self, storage):
        self.storage = storage
        self.calls = []

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))
        return f"https://huggingface.co/{kwargs['repo_id']}"

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", {k: v for k, v in kwargs.items() if k != "folder_path"}))
        shutil.copytree(kwargs["folder_path"], self.storage / kwargs["repo_id"], dirs_exist_ok=True)


def test_push_uploads_a_loadable_folder_with_a_card_and_from_pretrained_reads_it_back(pipe, tmp_path,
                                                                                      monkeypatch):
    api = FakeHubApi(tmp_path / "hub")
    url = push_pipeline_to_hub(pipe, REPO_ID, private=True, token="hf_fake", commit_message="first upload",
                               metrics={"mcd": 7.5}, api=api)
    assert url == f"https://huggingface.co/{REPO_ID}"
    assert api.calls == [
        ("create_repo", {"repo_id": REPO_ID, "repo_type": "model", "private": True, "token": "hf_fake",
                         "exist_ok": True}),
        ("upload_folder", {"repo_id": REPO_ID, "repo_type": "model", "token": "hf_fake",
                           "commit_message": "first upload"}),
    ]
    repo = tmp_path / "hub" / REPO_ID
    uploaded = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file())
    for expected in ("README.md", "model_index.json", "unet/diffusion_pytorch_model.safetensors",
                     "text_encoder/diffusion_pytorch_model.safetensors", "vocoder/config.json",
                     "scheduler/scheduler_config.json"):
        assert expected in uploaded
    assert json.loads((repo / "model_index.json").read_text())["unet"] == ["melinterp", "MelUNet2DConditionModel"]
    card = (repo / "README.md").read_text()
    assert front_matter(card)["library_name"] == "melinterp" and "| mcd | 7.5 |" in card

    # from_pretrained("user/repo") downloads with huggingface_hub.snapshot_download: serve the uploaded folder
    downloads = []

    def fake_snapshot_download(repo_id, **kwargs):
        downloads.append((repo_id, kwargs))
        return str(tmp_path / "hub" / repo_id)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    from_hub = MelStyleInterpolationPipeline.from_pretrained(REPO_ID, revision="main")
    assert downloads == [(REPO_ID, {"revision": "main", "cache_dir": None, "token": None,
                                    "local_files_only": False})]
    local = tmp_path / "local"
    pipe.save_pretrained(local)
    from_folder = MelStyleInterpolationPipeline.from_pretrained(local)
    ref1, ref2 = (harmonic_tone(120.0, 0.5), SAMPLE_RATE), (harmonic_tone(240.0, 0.5), SAMPLE_RATE)
    outputs = []
    for p in (from_hub, from_folder, pipe):
        p.set_progress_bar_config(disable=True)
        outputs.append(p("Hi there.", ref1, ref2, mode="freq", num_inference_steps=2,
                         generator=torch.Generator().manual_seed(7)))
    # the Hub copy is the saved pipeline, bit for bit
    np.testing.assert_array_equal(outputs[0].mels, outputs[1].mels)
    np.testing.assert_array_equal(outputs[0].audios, outputs[1].audios)
    # and the pipeline in memory up to float rounding: weights read from safetensors' storage (equal values)
    # take slightly different CPU kernel paths than freshly initialised ones (~1e-5 on these untrained mels)
    np.testing.assert_allclose(outputs[0].mels, outputs[2].mels, atol=1e-3)


def test_push_rejects_a_repo_id_without_owner(pipe, tmp_path):
    api = FakeHubApi(tmp_path)
    with pytest.raises(ValueError, match=r"repo_id must be 'user/name' \(or 'organisation/name'\), got 'tiny'"):
        push_pipeline_to_hub(pipe, "tiny", api=api)
    assert api.calls == []


def test_load_pipeline_errors_name_the_cause(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"--model ./nowhere: no such folder"):
        load_pipeline("./nowhere", option="--model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is a folder without model_index.json"):
        load_pipeline(tmp_path / "empty")
    broken = tmp_path / "broken"
    tiny_pipeline().save_pretrained(broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"broken: not a complete saved pipeline: .*diffusion_pytorch_model"):
        load_pipeline(broken)
    # HF_HUB_OFFLINE=1 (read by huggingface_hub at import, so set its constant) and nothing cached: a clear error
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match=r"model someone/not-cached: could not load the pipeline from the Hugging "
                                         r"Face Hub \(LocalEntryNotFoundError: .*\)\. HF_HUB_OFFLINE is set"):
        load_pipeline("someone/not-cached", cache_dir=str(tmp_path / "cache"))


def test_pipeline_push_to_hub_uploads_our_model_card(pipe, tmp_path):
    api = FakeHubApi(tmp_path / "hub")
    url = pipe.push_to_hub(REPO_ID, api=api, metrics={"mcd": 7.5})
    assert url == f"https://huggingface.co/{REPO_ID}"
    card = (tmp_path / "hub" / REPO_ID / "README.md").read_text()
    assert card.startswith("---") and "library_name: melinterp" in card and 'mode="freq"' in card
    assert (tmp_path / "hub" / REPO_ID / "model_index.json").is_file()
