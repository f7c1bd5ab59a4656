"""Sharing pipelines on the Hugging Face Hub: a model card, an upload helper and a loader with readable errors.

- `model_card` writes the README.md of a pipeline repository: YAML front matter (library, tags, license), what the
  model is, how to use it, its components with parameter counts, their configurations, and the training log and
  metrics when given.
- `push_pipeline_to_hub` saves the pipeline to a temporary folder, adds the card and uploads the folder with
  ``HfApi.create_repo(exist_ok=True)`` and ``HfApi.upload_folder`` (one commit). Pass ``api`` to use another
  client (tests pass a recording fake; nothing here touches the network by itself).
- `load_pipeline` is ``MelStyleInterpolationPipeline.from_pretrained`` for command-line use: a missing folder,
  a folder that is not a saved pipeline, or a repository that cannot be downloaded (offline, not found, not
  cached with ``HF_HUB_OFFLINE=1``) becomes a one-line ``FileNotFoundError`` / ``ValueError`` naming the cause.

Loading from the Hub goes through ``huggingface_hub.snapshot_download``, which
``MelStyleInterpolationPipeline.from_pretrained`` imports at call time (so monkeypatching
``huggingface_hub.snapshot_download`` redirects it).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

LICENSE = "apache-2.0"
TAGS = ("text-to-speech", "diffusion", "voice-interpolation", "grad-tts")
MODEL_CARD_NAME = "README.md"
_MAX_LOG_ROWS = 12  # rows of the training log shown in the card (evenly spaced, the last always included)


# ---------------------------------------------------------------------------------------------------------------
# Model card
# ---------------------------------------------------------------------------------------------------------------

def _vocoder_limitation(pipeline) -> str:
    """The limitations line about the pipeline's vocoder."""
    vocoder = getattr(pipeline, "vocoder", None)
    if vocoder is None or type(vocoder).__name__ == "GriffinLimVocoder":
        return ("- The vocoder is Griffin-Lim: phasey, buzzy audio. It is there to make the model usable without a "
                "trained vocoder.\n")
    return (f"- The vocoder is a trained `{type(vocoder).__name__}`; voices far from its training data may come out "
            "with artefacts it never learnt to avoid. `GriffinLimVocoder` needs no weights and is the fallback.\n")


def model_card(pipeline, *, repo_id: str | None = None, training_log=None, metrics: Mapping[str, Any] | None = None,
               license: str = LICENSE, sections: Mapping[str, str] | None = None) -> str:
    """The README.md of a pipeline repository, as a string.

    Args:
        pipeline: a `MelStyleInterpolationPipeline` (anything with ``components`` works).
        repo_id: "user/name" on the Hub; used in the title and the usage snippet.
        training_log: the trainer's ``logs/train.csv`` (a path), or its rows as a list of dicts; the card shows
            up to 12 rows, evenly spaced, always the last.
        metrics: evaluation results, name -> value (e.g. {"speaker_similarity_ref2": 0.81}).
        license: SPDX id for the front matter.
        sections: more sections, title -> markdown body, placed after the metrics (data, training, evaluation).
    """
    name = repo_id or "melinterp-model"
    usage_id = repo_id or "path/to/saved_pipeline"
    parts = [
        _front_matter(license),
        f"# {name}\n",
        "## What it is\n",
        "A melinterp diffusion text-to-speech pipeline whose voice is "
        "interpolated between two reference recordings. A Grad-TTS-style text encoder predicts a mel prior mu_y "
        "from phonemes; a U-Net denoises a mel-spectrogram from N(mu_y, I / temperature) while cross-attending to "
        "style tokens taken from the references; a vocoder turns the mel into a waveform. Because every (mel bin, "
        "frame) cell of the U-Net is an attention query, each cell can be routed to one reference or the other:\n",
        "| mode | result |\n| --- | --- |\n"
        "| `none` | the voice of ref1 |\n"
        "| `mix` | a blend, weight `alpha` of ref2 |\n"
        "| `temporal` | starts like ref1, ends like ref2 (`boundary`, `crossfade`) |\n"
        "| `freq` | the pitch (f0 and harmonics) of ref1, everything else of ref2 |\n"
        "| `dual_noise` | temporal or freq, composed in mel space |\n",
        "## How to use\n",
        "```bash\npip install melinterp\n```\n",
        "```python\nimport soundfile\nimport torch\n\nfrom melinterp import MelStyleInterpolationPipeline\n\n"
        f'pipe = MelStyleInterpolationPipeline.from_pretrained("{usage_id}")\n'
        'out = pipe("The quick brown fox.", "pitch_voice.wav", "timbre_voice.wav", mode="freq",\n'
        "           num_inference_steps=10, generator=torch.Generator().manual_seed(0))\n"
        'soundfile.write("out.wav", out.audios[0], out.sample_rate)\n```\n',
        "or from the command line:\n",
        f'```bash\nmelinterp synthesize "The quick brown fox." --ref1 pitch_voice.wav --ref2 timbre_voice.wav '
        f"--mode freq --model {usage_id} --out out.wav\n```\n",
        "## Components\n",
        _components_table(pipeline),
        "## Configurations\n",
        _configurations(pipeline),
    ]
    if training_log is not None:
        parts += ["## Training log\n", _training_log_table(training_log)]
    if metrics:
        parts += ["## Metrics\n", _metrics_table(metrics)]
    for title, text in (sections or {}).items():
        parts += [f"## {title}\n", text.rstrip() + "\n"]
    parts += [
        "## Limitations\n",
        "- Trained on a synthetic corpus (espeak-ng and flite voices); expect robotic timbre and little prosody, "
        "and do not expect it to generalise to natural recordings.\n"
        + _vocoder_limitation(pipeline) +
        "- References should be clean, single-speaker, at least a second long; `freq` mode needs a voiced ref1.\n"
        "- Interpolated voices are not real people's voices, but references can be: only use recordings you have "
        "the right to use, and do not use the model to impersonate anyone.\n",
    ]
    return "\n".join(parts)


def _front_matter(license: str) -> str:
    lines = ["---", "library_name: melinterp", f"license: {license}", "pipeline_tag: text-to-speech", "tags:"]
    lines += [f"- {tag}" for tag in TAGS]
    return "\n".join(lines + ["---", ""])


def _components_table(pipeline) -> str:
    import torch

    rows = ["| component | class | parameters |", "| --- | --- | ---: |"]
    total = 0
    for name, component in pipeline.components.items():
        if component is None:
            continue
        if isinstance(component, torch.nn.Module):
            count = sum(p.numel() for p in component.parameters())
            total += count
            shown = f"{count:,}"
        else:
            shown = "-"
        rows.append(f"| `{name}` | `{type(component).__name__}` | {shown} |")
    rows.append(f"| **total** | | **{total:,}** |")
    return "\n".join(rows) + "\n"


def _component_config(component) -> dict | None:
    config = getattr(component, "config", None)
    if config is not None and not isinstance(config, Mapping):  # TextProcessor.config is a TextConfig
        config = getattr(config, "config", None)
    if not isinstance(config, Mapping):
        return None
    return {key: value for key, value in config.items() if not key.startswith("_")}


def _configurations(pipeline) -> str:
    blocks = []
    for name, component in pipeline.components.items():
        config = _component_config(component) if component is not None else None
        if config is None:
            continue
        text = json.dumps(config, indent=2, sort_keys=True, default=str)
        blocks.append(f"<details><summary><code>{name}</code></summary>\n\n```json\n{text}\n```\n\n</details>\n")
    return "\n".join(blocks) if blocks else "(none)\n"


def _read_log_rows(training_log) -> list[dict]:
    if isinstance(training_log, (str, os.PathLike)):
        path = Path(training_log)
        if not path.is_file():
            raise FileNotFoundError(f"training_log: no such file {path}; expected the trainer's logs/train.csv")
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    if isinstance(training_log, Iterable) and not isinstance(training_log, Mapping):
        rows = list(training_log)
        if all(isinstance(row, Mapping) for row in rows):
            return [dict(row) for row in rows]
    raise ValueError(f"training_log must be a path to the trainer's train.csv or a list of dicts, got "
                     f"{type(training_log).__name__}")


def _training_log_table(training_log) -> str:
    rows = _read_log_rows(training_log)
    if not rows:
        return "(empty)\n"
    if len(rows) > _MAX_LOG_ROWS:
        step = (len(rows) - 1) / (_MAX_LOG_ROWS - 1)
        rows = [rows[round(i * step)] for i in range(_MAX_LOG_ROWS)]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_format_value(row.get(column, "")) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _metrics_table(metrics: Mapping[str, Any]) -> str:
    lines = ["| metric | value |", "| --- | ---: |"]
    lines += [f"| {name} | {_format_value(value)} |" for name, value in metrics.items()]
    return "\n".join(lines) + "\n"


def _format_value(value) -> str:
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return value
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# ---------------------------------------------------------------------------------------------------------------
# Upload
# ---------------------------------------------------------------------------------------------------------------

def push_pipeline_to_hub(pipeline, repo_id: str, *, private: bool = False, token: str | None = None,
                         commit_message: str = "Upload melinterp pipeline", training_log=None,
                         metrics: Mapping[str, Any] | None = None, api=None) -> str:
    """Save ``pipeline`` with a model card and upload it to the Hub repository ``repo_id`` in one commit.

    Args:
        repo_id: "user/name"; the repository is created (model type) if it does not exist.
        private: create the repository private (an existing repository keeps its visibility).
        token: Hub token; None uses the cached login.
        commit_message: message of the upload commit.
        training_log, metrics: passed to `model_card`.
        api: an ``huggingface_hub.HfApi``-like object (``create_repo``, ``upload_folder``); default
            ``HfApi(token=token)``.

    Returns:
        the URL of the repository (what ``create_repo`` returns, as a str).
    """
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must be 'user/name' (or 'organisation/name'), got {repo_id!r}")
    card = model_card(pipeline, repo_id=repo_id, training_log=training_log, metrics=metrics)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    url = api.create_repo(repo_id=repo_id, repo_type="model", private=private, token=token, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="melinterp-push-") as folder:
        pipeline.save_pretrained(folder)
        Path(folder, MODEL_CARD_NAME).write_text(card, encoding="utf-8")
        api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model", token=token,
                          commit_message=commit_message)
    return str(url)


# ---------------------------------------------------------------------------------------------------------------
# Loading with readable errors
# ---------------------------------------------------------------------------------------------------------------

def load_pipeline(name_or_path: str | os.PathLike, *, option: str = "model", **kwargs):
    """``MelStyleInterpolationPipeline.from_pretrained(name_or_path, **kwargs)`` with one-line errors.

    ``name_or_path`` is a folder written by ``save_pretrained`` or a Hub id "user/name". ``option`` names the
    argument in messages (the CLI passes "--model").

    Raises:
        FileNotFoundError: a path that does not exist and is not of the Hub's "user/name" form.
        ValueError: a folder without ``model_index.json`` or with a component missing, or a Hub id that cannot be
            downloaded (not found, no network, or not cached while ``HF_HUB_OFFLINE=1``).
    """
    from melinterp.pipelines import MelStyleInterpolationPipeline

    name = os.fspath(name_or_path)
    if os.path.isdir(name):
        if not os.path.isfile(os.path.join(name, "model_index.json")):
            raise ValueError(f"{option} {name} is a folder without model_index.json: expected a pipeline saved by "
                             "MelStyleInterpolationPipeline.save_pretrained")
        try:
            return MelStyleInterpolationPipeline.from_pretrained(name, **kwargs)
        except OSError as error:  # diffusers' "no file named ... in directory ..." for an incomplete folder
            raise ValueError(f"{option} {name}: not a complete saved pipeline: {error}") from error
    if _looks_local(name):
        raise FileNotFoundError(f"{option} {name}: no such folder (expected a saved pipeline folder or a Hub id "
                                "'user/name')")
    from huggingface_hub.errors import HFValidationError

    try:
        return MelStyleInterpolationPipeline.from_pretrained(name, **kwargs)
    except HFValidationError as error:
        raise ValueError(f"{option} {name!r} is neither a folder nor a valid Hub id 'user/name': {error}") from error
    except OSError as error:  # huggingface_hub's HTTP, offline and cache-miss errors are all OSErrors
        from huggingface_hub import constants

        hint = (" HF_HUB_OFFLINE is set and the repository is not in the local cache: download it once online, "
                "or pass a local folder" if constants.is_offline_mode() else "")
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{option} {name}: could not load the pipeline from the Hugging Face Hub "
                         f"({type(error).__name__}: {first_line}).{hint}") from error


def _looks_local(name: str) -> bool:
    """Anything but the Hub's "user/name" form is a local path (a bare "name" too: melinterp ids have an owner)."""
    return looks_like_local_path(name) or name.count("/") != 1


def looks_like_local_path(name: str) -> bool:
    """Whether `name` is meant as a local path rather than a Hub id: it starts with "/", ".", "~" (./, ../, ~/),
    has more than one "/", holds the platform's separator, exists, or its first folder exists here ("models/x"
    with a local ``models/``). Bare names and "user/name" ids that match nothing on disk go to the Hub."""
    first_folder = name.split("/", 1)[0] if "/" in name else ""
    return (os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1
            or (os.sep != "/" and os.sep in name) or os.path.exists(name)
            or (bool(first_folder) and os.path.isdir(first_folder)))
