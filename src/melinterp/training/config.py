"""Training configuration: one JSON file holds the data, the model sizes and the optimisation settings.

Example files live in ``examples/configs/`` (``tiny``, ``default``, ``large``). Paths inside a config are resolved
against the config file's folder, so a config can sit beside its corpus.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from melinterp.utils import read_json_file

MODEL_NAMES = ("text_encoder", "style_encoder", "unet")  # the models `melinterp train` trains, as its folders name them


@dataclass
class DataConfig:
    train_filelist: str
    cache_dir: str
    val_filelist: str | None = None
    language: str = "en-us"
    batch_size: int = 16
    num_workers: int = 0
    max_ref_frames: int | None = 400  # random crop of the style reference, frames
    segment_frames: int = 172  # random mel segment for the score-matching loss (Grad-TTS out_size), frames
    # references from speakers whose names match once this regex is removed ("_p[^_]+": a make-corpus voice at
    # any pitch, which teaches pitch and timbre apart); None: the same speaker
    reference_group_pattern: str | None = None


@dataclass
class OptimConfig:
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 500
    lr_schedule: str = "constant"  # "constant" or "cosine" (after warm-up)
    max_steps: int = 100_000
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    mixed_precision: str = "no"  # "no", "fp16" or "bf16" (accelerate)
    style_dropout: float = 0.1  # share of items trained with the null style (classifier-free guidance)
    seed: int = 0


@dataclass
class LogConfig:
    log_every: int = 50  # steps between loss log lines
    val_every: int = 1000  # steps between validation losses and the validation mel plot
    checkpoint_every: int = 1000  # steps between checkpoints
    keep_checkpoints: int = 2


@dataclass
class TrainingConfig:
    data: DataConfig
    # "text_encoder", "style_encoder", "unet": constructor arguments (in the JSON file: inline, or a path to a file)
    models: dict[str, dict[str, Any]]
    optim: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)
    scheduler: dict[str, Any] = field(default_factory=dict)  # GradTTSScheduler arguments
    source: str | None = None  # the file this config came from

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base_dir: Path | None = None) -> "TrainingConfig":
        raw = {key: value for key, value in raw.items() if not key.startswith("_")}  # "_description" etc.
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown training config sections: {sorted(unknown)}")
        for required in ("data", "models"):
            if required not in raw:
                raise ValueError(f"training config has no '{required}' section")
        data = _build(DataConfig, raw["data"], "data")
        if base_dir is not None:
            for name in ("train_filelist", "val_filelist", "cache_dir"):
                value = getattr(data, name)
                if value is not None and not Path(value).is_absolute():
                    setattr(data, name, str((base_dir / value).resolve()))
        models = raw["models"]
        if isinstance(models, str):  # a path to a JSON file of model configs, relative to the config file
            models_path = Path(models) if base_dir is None or Path(models).is_absolute() else base_dir / models
            if not models_path.is_file():
                raise FileNotFoundError(f"model config file not found: {models_path}")
            models = read_json_file(models_path, "model config file")
        missing = {"text_encoder", "style_encoder", "unet"} - set(models)
        if missing:
            raise ValueError(f"training config 'models' lacks {sorted(missing)}")
        optim = _build(OptimConfig, raw.get("optim", {}), "optim")
        optim.betas = tuple(optim.betas)
        return cls(data=data, models=models, optim=optim, log=_build(LogConfig, raw.get("log", {}), "log"),
                   scheduler=dict(raw.get("scheduler", {})), source=raw.get("source"))

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainingConfig":
        path = Path(path)
        return cls.from_dict(read_config_json(path, "training config"), base_dir=path.parent)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_config_json(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` with ``"source"`` set to the path; errors name ``what`` and the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    raw = read_json_file(path, what)
    raw.setdefault("source", str(path))
    return raw


def _build(kind, values: dict[str, Any], section: str):
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown keys in training config section '{section}': {sorted(unknown)}; "
                         f"expected some of {sorted(known)}")
    try:
        return kind(**values)
    except TypeError as error:
        raise ValueError(f"training config section '{section}': {error}") from None
