"""Training checkpoints in safetensors + JSON only: nothing is unpickled on resume.

A checkpoint folder ``step-00001000/`` holds

- ``models.safetensors``: every trained module's weights, keys prefixed by module name (``unet.conv_in.weight``);
- ``ema.safetensors``: the exponential moving average of those weights, same keys;
- ``optimizer.safetensors`` + ``optimizer.json``: the optimiser's tensors, and its param groups and scalars (with
  several optimisers, a GAN's say, one pair each: ``optimizer.NAME.safetensors`` + ``optimizer.NAME.json``);
- ``rng.safetensors``: torch's CPU and CUDA generator states (dropout draws from them);
- ``state.json``: step, epoch, batches done in that epoch, and the config it was trained with.

The folder is written under a temporary name and renamed into place, so an interrupted save leaves no checkpoint
that looks complete.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from melinterp.utils import save_safetensors

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


def load_checkpoint(path: Path, *, models: dict[str, torch.nn.Module],
                    optimizer: torch.optim.Optimizer | dict[str, torch.optim.Optimizer],
                    device: torch.device | str = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore models, optimiser and RNG in place; return (ema tensors, trainer state)."""
    weights = load_file(str(path / "models.safetensors"), device=str(device))
    for name, module in models.items():
        prefix = f"{name}."
        own = {key[len(prefix):]: value for key, value in weights.items() if key.startswith(prefix)}
        try:
            module.load_state_dict(own, strict=True)
        except RuntimeError as error:
            raise ValueError(f"checkpoint {path} does not match the configured '{name}': {error}") from None
    for stem, each in _optimizer_files(optimizer).items():
        optim_meta = json.loads((path / f"{stem}.json").read_text())
        each.load_state_dict(unflatten_optimizer_state(load_file(str(path / f"{stem}.safetensors")), optim_meta))
    set_rng_state(load_file(str(path / "rng.safetensors")))
    ema = load_file(str(path / "ema.safetensors"), device=str(device))
    state = json.loads((path / "state.json").read_text())
    return ema, state


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``model`` (cast to its dtypes) after checking that the keys and shapes fit exactly.

    Raises:
        ValueError: names ``where`` and the first few missing, unexpected and differently shaped keys.
    """
    own = model.state_dict()
    missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    wrong = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(f"{where} does not fit the configured model: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}, other shapes {wrong[:5]}")
    model.load_state_dict({key: value.to(own[key].dtype) for key, value in state.items()})
