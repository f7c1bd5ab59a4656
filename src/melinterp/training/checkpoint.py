"""Training checkpoints in safetensors + JSON only: nothing is unpickled on resume.

A checkpoint folder ``step-00001000/`` holds

- ``models.safetensors``: every trained module's weights, keys prefixed by module name (``unet.conv_in.weight``);
- ``ema.safetensors``: the exponential moving average of those weights, same keys;
- ``optimizer.safetensors`` + ``optimizer.json``: the optimiser's tensors, and its param groups and scalars (with
  several optimisers, a GAN's say, one pair each: ``optimizer.NAME.safetensors`` + ``optimizer.NAME.json``);
- ``rng.safetensors``: torch's CPU and CUDA generator states (dropout draws from them);
- ``state.json``: step, epoch, batches done in that epoch, and the config it was trained with.

The folder is written under a temporary name and renamed into place, so an interrupted save leaves no checkpoint
that looks complete. A file damaged later (a disk that filled up, a crash of the machine, a hand edit) is found by
`read_checkpoint`, which reads and checks every file before anything is restored; `TrainingRun.restore` then skips
that checkpoint, saying which file and why, and resumes from the newest intact one.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from melinterp.utils import read_json_file, save_safetensors

CHECKPOINT_PATTERN = re.compile(r"^step-(\d+)$")


def flatten_optimizer_state(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and the rest (for JSON)."""
    tensors, scalars = {}, {}
    for index, param_state in state_dict["state"].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> dict[str, torch.Tensor]:
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for device, state in enumerate(torch.cuda.get_rng_state_all()):
            states[f"cuda.{device}"] = state
    return states


def set_rng_state(states: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(states["cpu"])
    cuda = [states[key] for key in sorted(k for k in states if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _optimizer_files(optimizer) -> dict[str, torch.optim.Optimizer]:
    """File stem -> optimiser: ``optimizer`` for one, ``optimizer.NAME`` for each of a dict of them."""
    if isinstance(optimizer, dict):
        return {f"optimizer.{name}": value for name, value in optimizer.items()}
    return {"optimizer": optimizer}


def save_checkpoint(directory: Path, *, models: dict[str, torch.nn.Module], ema: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer | dict[str, torch.optim.Optimizer], state: dict[str, Any],
                    keep: int | None = None) -> Path:
    """Write ``directory/step-XXXXXXXX`` atomically and prune older checkpoints beyond ``keep``."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{state['step']:08d}"
    partial = directory / f".{final.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    weights = {f"{name}.{key}": value.detach().cpu().contiguous()
               for name, module in models.items() for key, value in module.state_dict().items()}
    save_safetensors(weights, partial / "models.safetensors")
    save_safetensors({key: value.detach().cpu().contiguous() for key, value in ema.items()},
                     partial / "ema.safetensors")
    for stem, each in _optimizer_files(optimizer).items():
        optim_tensors, optim_meta = flatten_optimizer_state(each.state_dict())
        save_safetensors(optim_tensors, partial / f"{stem}.safetensors")
        (partial / f"{stem}.json").write_text(json.dumps(optim_meta, indent=1))
    save_safetensors(rng_state(), partial / "rng.safetensors")
    (partial / "state.json").write_text(json.dumps(state, indent=1, default=str))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    if keep is not None:
        for old in list_checkpoints(directory)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and CHECKPOINT_PATTERN.match(p.name)]
    return sorted(found, key=lambda p: int(CHECKPOINT_PATTERN.match(p.name).group(1)))


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read back (missing, truncated, not JSON, the wrong shape); names the file."""


@dataclass
class CheckpointContents:
    """Everything a checkpoint holds, read and checked, nothing restored yet."""

    weights: dict[str, dict[str, torch.Tensor]]  # module name -> its state dict
    ema: dict[str, torch.Tensor]
    optimizers: dict[str, dict[str, Any]]  # file stem -> optimizer.state_dict()
    rng: dict[str, torch.Tensor]
    state: dict[str, Any]


def read_checkpoint(path: Path, *, models: dict[str, torch.nn.Module],
                    optimizer: torch.optim.Optimizer | dict[str, torch.optim.Optimizer],
                    state_keys: tuple[str, ...] = ("step",), device: torch.device | str = "cpu") -> CheckpointContents:
    """Read every file of the checkpoint ``path`` and check it fits ``models`` and ``optimizer``; change nothing.

    Raises:
        CheckpointError: a file is missing, truncated, not JSON or not of the shape written by `save_checkpoint`
            (``state.json`` must hold an object with ``state_keys``); the message names the file.
        ValueError: the weights are intact but do not fit the configured models (another config, not damage).
    """
    weights = _read_tensors(path / "models.safetensors", device)
    by_module = {}
    for name, module in models.items():
        prefix = f"{name}."
        by_module[name] = {key[len(prefix):]: value for key, value in weights.items() if key.startswith(prefix)}
        check_state_fits(module, by_module[name], f"checkpoint {path} ({name})")
    optimizers = {stem: _read_optimizer_state(path, stem, each, device)
                  for stem, each in _optimizer_files(optimizer).items()}
    rng = _read_tensors(path / "rng.safetensors", "cpu")
    if "cpu" not in rng:
        raise CheckpointError(f"{path / 'rng.safetensors'} holds no CPU generator state")
    state = _read_json(path / "state.json")
    missing = [key for key in state_keys if key not in state]
    if missing or not isinstance(state.get("step"), int):
        raise CheckpointError(f"{path / 'state.json'} lacks {', '.join(missing) or 'an integer step'}")
    return CheckpointContents(by_module, _read_tensors(path / "ema.safetensors", device), optimizers, rng, state)


def load_checkpoint(path: Path, *, models: dict[str, torch.nn.Module],
                    optimizer: torch.optim.Optimizer | dict[str, torch.optim.Optimizer],
                    device: torch.device | str = "cpu",
                    state_keys: tuple[str, ...] = ("step",)) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore models, optimiser and RNG in place; return (ema tensors, trainer state).

    Every file is read and checked (`read_checkpoint`, whose errors this raises) before anything is restored, so a
    broken checkpoint leaves the models and optimisers as they were.
    """
    contents = read_checkpoint(path, models=models, optimizer=optimizer, state_keys=state_keys, device=device)
    for name, module in models.items():
        module.load_state_dict(contents.weights[name], strict=True)
    for stem, each in _optimizer_files(optimizer).items():
        each.load_state_dict(contents.optimizers[stem])
    set_rng_state(contents.rng)
    return contents.ema, contents.state


def _read_tensors(file: Path, device: torch.device | str) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise CheckpointError(f"{file} is missing")
    try:
        return load_file(str(file), device=str(device))
    except SafetensorError as error:
        raise CheckpointError(f"{file} is truncated or not a safetensors file ({error})") from None
    except OSError as error:
        raise CheckpointError(f"{file} cannot be read ({error.strerror})") from None


def _read_json(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise CheckpointError(f"{file} is missing")
    try:
        return read_json_file(file, "checkpoint file")
    except ValueError as error:
        raise CheckpointError(str(error)) from None


def _read_optimizer_state(path: Path, stem: str, optimizer: torch.optim.Optimizer,
                          device: torch.device | str) -> dict[str, Any]:
    """``optimizer.state_dict()`` as saved in ``STEM.json`` + ``STEM.safetensors``, checked to fit ``optimizer``."""
    meta_file = path / f"{stem}.json"
    meta = _read_json(meta_file)
    groups, scalars = meta.get("param_groups"), meta.get("scalars")
    if not (isinstance(groups, list) and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
            and isinstance(scalars, dict)):
        raise CheckpointError(f"{meta_file} does not hold an optimiser state (expected an object with param_groups, "
                              "each with params, and scalars)")
    expected, found = [len(g["params"]) for g in optimizer.param_groups], [len(g["params"]) for g in groups]
    if found != expected:
        raise CheckpointError(f"{meta_file} holds parameter groups of {found} parameters; the optimiser has "
                              f"{expected}")
    tensors = _read_tensors(path / f"{stem}.safetensors", device)
    try:
        return unflatten_optimizer_state(tensors, meta)
    except (ValueError, AttributeError) as error:
        raise CheckpointError(f"{meta_file} and {stem}.safetensors do not fit together ({error})") from None


def check_state_fits(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Raise a ValueError naming ``where`` and the first few missing, unexpected and differently shaped keys,
    unless ``state`` has exactly ``model``'s keys and shapes."""
    own = model.state_dict()
    missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    wrong = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(f"{where} does not fit the configured model: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}, other shapes {wrong[:5]}")


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``model`` (cast to its dtypes) after checking that the keys and shapes fit exactly.

    Raises:
        ValueError: as `check_state_fits`.
    """
    check_state_fits(model, state, where)
    own = model.state_dict()
    model.load_state_dict({key: value.to(own[key].dtype) for key, value in state.items()})
