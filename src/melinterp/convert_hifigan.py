"""``melinterp convert-hifigan``: an official HiFi-GAN generator checkpoint -> a `HiFiGANGenerator` folder.

    melinterp convert-hifigan generator_v1 hifigan_v1/ [--preset v1|v2|v3 | --config config.json] [--overwrite]

The input is what the authors' code (github.com/jik876/hifi-gan) and Grad-TTS ship: ``torch.save({"generator":
state_dict})`` with weight-normalised convolutions (``conv_pre.weight_g``, ``conv_pre.weight_v``, ``conv_pre.bias``,
``ups.0.weight_g``, ...; a state dict whose weight norm was already removed, with plain ``.weight``s, works too).
It is read with ``torch.load(weights_only=True)`` only, never unpickled in full: a file holding anything but tensors
and plain containers is refused, so a checkpoint cannot run code. Weight norm is folded (``weight = g * v / ||v||``,
the norm over every dimension but the first, as ``torch.nn.utils.weight_norm(dim=0)`` computes it for Conv1d and
ConvTranspose1d alike), the architecture is one of the authors' presets (inferred from the tensors, or ``--preset``)
or their config.json (``--config``), and the result is written with ``save_pretrained`` (config.json +
safetensors), atomically: a failure leaves no output folder.

torch and the model are imported inside functions, so ``melinterp --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path

# Kept here (not imported from the model) so that building the parser imports no torch; tests check they agree.
PRESETS = ("v1", "v2", "v3")
# what the authors' config.json calls our config arguments (the other keys there are training settings)
OFFICIAL_CONFIG_KEYS = {"resblock": "resblock", "upsample_rates": "upsample_rates",
                        "upsample_kernel_sizes": "upsample_kernel_sizes",
                        "upsample_initial_channel": "upsample_initial_channel",
                        "resblock_kernel_sizes": "resblock_kernel_sizes",
                        "resblock_dilation_sizes": "resblock_dilation_sizes", "num_mels": "n_mels",
                        "sampling_rate": "sample_rate", "hop_size": "hop_length"}
_REQUIRED_OFFICIAL_KEYS = ("resblock", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
                           "resblock_kernel_sizes", "resblock_dilation_sizes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, metavar="CKPT",
                        help='an official HiFi-GAN generator checkpoint, torch.save({"generator": state_dict}) '
                             "(e.g. generator_v1 of Grad-TTS, or g_02500000 of jik876/hifi-gan)")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the HiFiGANGenerator folder to write")
    parser.add_argument("--preset", metavar="NAME",
                        help=f"the authors' architecture: {', '.join(PRESETS)} (default: inferred from the tensors)")
    parser.add_argument("--config", type=Path, metavar="JSON",
                        help="the authors' config.json of the checkpoint, for architectures other than the presets")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists and is not empty")


def run(args: argparse.Namespace) -> int:
    out_dir, generator, label = _convert(args.checkpoint, args.out_dir, preset=args.preset, config=args.config,
                                         overwrite=args.overwrite)
    config = generator.config
    millions = sum(p.numel() for p in generator.parameters()) / 1e6
    files = ", ".join(sorted(p.name for p in out_dir.iterdir()))
    print(f"wrote {out_dir} ({label}, {millions:.2f} M parameters; {config.n_mels} mels at {config.sample_rate} Hz, "
          f"hop {config.hop_length}): {files}")
    print(f'use it as a pipeline\'s vocoder: pipe.vocoder = HiFiGANGenerator.from_pretrained("{out_dir}") '
          f"(from melinterp import HiFiGANGenerator), or copy the folder to a saved pipeline's vocoder/ subfolder "
          f'and set "vocoder" in its model_index.json to ["melinterp", "HiFiGANGenerator"]')
    return 0


def convert_hifigan(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, preset: str | None = None, *,
                    config: str | os.PathLike | Mapping | None = None, overwrite: bool = False) -> Path:
    """Convert an official HiFi-GAN generator checkpoint into a `HiFiGANGenerator` folder; returns ``out_dir``.

    Args:
        checkpoint: ``torch.save({"generator": state_dict})`` of the authors' Generator (weight norm or not).
        out_dir: the folder to write (config.json + diffusion_pytorch_model.safetensors), atomically.
        preset: "v1", "v2" or "v3"; by default inferred from the tensors (channels, upsamplers, ResBlock type).
        config: instead of a preset, the authors' config.json (a path, or its dict) for other architectures.
        overwrite: replace an existing non-empty ``out_dir`` (otherwise refused).

    Raises ValueError naming the problem (and FileNotFoundError for a missing checkpoint); nothing is written then.
    """
    return _convert(checkpoint, out_dir, preset=preset, config=config, overwrite=overwrite)[0]


def _convert(checkpoint, out_dir, *, preset, config, overwrite):
    """`convert_hifigan`, also returning the generator and a label of its architecture for the summary."""
    from melinterp.models.hifigan import HIFIGAN_PRESETS, HiFiGANGenerator
    from melinterp.utils import atomic_directory

    # 1. Cheap refusals first: nothing is loaded for a run that could not write its output
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(f"{out_dir} exists and is not empty: give --overwrite to replace it")
    if preset is not None and config is not None:
        raise ValueError("give --preset or --config, not both")
    if preset is not None and preset not in HIFIGAN_PRESETS:
        raise ValueError(f"--preset must be one of {', '.join(HIFIGAN_PRESETS)}, got {preset!r}")

    # 2. The weights, weight norm folded
    state = load_official_hifigan_state(checkpoint)

    # 3. The architecture: a config.json, a preset, or the preset the tensors fit
    if config is not None:
        kwargs, label = hifigan_config_from_official(config), "HiFi-GAN from its config.json"
    else:
        preset = preset or infer_hifigan_preset(state)
        kwargs, label = dict(HIFIGAN_PRESETS[preset]), f"HiFi-GAN {preset}"
    generator = HiFiGANGenerator(**kwargs)
    _check_fits(state, generator.state_dict(), label)
    generator.load_state_dict(state, strict=True)
    generator.eval()

    # 4. Written beside the target and renamed into place
    with atomic_directory(out_dir) as tmp:
        generator.save_pretrained(tmp, safe_serialization=True)
    return out_dir, generator, label


def load_official_hifigan_state(path: str | os.PathLike) -> dict:
    """The generator state dict of an official checkpoint, weight norm folded: name -> float32 tensor.

    Loads only with ``torch.load(path, map_location="cpu", weights_only=True)``. Raises ValueError when the file is
    not a torch checkpoint, holds objects other than tensors (it is not unpickled), is not a dict with a
    ``"generator"`` state dict of str -> tensor, or holds non-finite weights.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # the weights-only unpickler says why after "WeightsUnpickler error:"; bytes that are no pickle at all
        # make it report an unsupported operand
        reason = str(error).partition("WeightsUnpickler error:")[2].strip()
        if not reason or reason.startswith("Unsupported operand"):
            raise ValueError(f"{path} is not a readable torch checkpoint ({_first_line(reason or error)})") from None
        found = re.search(r"GLOBAL ([\w.]+)", reason)
        what = f" ({found.group(1) if found else _first_line(reason)})"
        raise ValueError(f"{path} holds objects other than tensors{what} and will not be unpickled: checkpoints are "
                         f"read with torch.load(weights_only=True) only, so that a file cannot run code; re-save it "
                         f'as torch.save({{"generator": generator.state_dict()}}, path) where you trust it') from None
    except Exception as error:  # torch.load reports a file of another format with any kind of error
        raise ValueError(f"{path} is not a readable torch checkpoint ({type(error).__name__}: "
                         f"{_first_line(error)})") from None
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{path} holds a {type(checkpoint).__name__}, not a dict: an official HiFi-GAN checkpoint is '
                         f'torch.save({{"generator": state_dict}})')
    if "generator" not in checkpoint:
        keys = ", ".join(repr(k) for k in list(checkpoint)[:5]) or "none"
        hint = " (a do_* file holds the discriminators; convert the g_* file)" if "mpd" in checkpoint else ""
        raise ValueError(f'{path} has no "generator" entry (its keys: {keys}){hint}: an official HiFi-GAN checkpoint '
                         f'is torch.save({{"generator": state_dict}})')
    state = checkpoint["generator"]
    if not isinstance(state, Mapping):
        raise ValueError(f'{path}: "generator" holds a {type(state).__name__}, not a state dict of tensors')
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(f'{path}: "generator" must map parameter names to tensors, but {key!r} holds a '
                             f"{type(value).__name__}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"{path}: {key} holds NaN or infinite values")
    return fold_weight_norm(state)


def fold_weight_norm(state: Mapping) -> dict:
    """Replace each ``X.weight_g``, ``X.weight_v`` pair by ``X.weight = g * v / ||v||`` (float32); keep the rest.

    The norm runs over every dimension but the first, for each index of it: what ``torch.nn.utils.weight_norm``
    computes with its default ``dim=0``, for Conv1d weights (out, in, k) and ConvTranspose1d weights (in, out, k)
    alike; ``g`` has that first dimension and ones elsewhere.
    """
    folded = {}
    for key, value in state.items():
        parameter = key.rpartition(".")[2]
        if parameter == "weight_g":
            if key[:-1] + "v" not in state:
                raise ValueError(f"{key} has no {key[:-1]}v beside it: weight norm stores both halves")
            continue
        if parameter != "weight_v":
            folded[key] = value.float() if value.is_floating_point() else value
            continue
        name, v = key[: -len("_v")], value.float()
        g = state.get(name + "_g")
        if g is None:
            raise ValueError(f"{key} has no {name}_g beside it: weight norm stores both halves")
        g = g.float()
        if v.dim() < 2 or tuple(g.shape) != (v.shape[0],) + (1,) * (v.dim() - 1):
            raise ValueError(f"{name}_g has shape {tuple(g.shape)}, {name}_v {tuple(v.shape)}: weight norm over "
                             f"dim 0 needs g of shape {(v.shape[0],) + (1,) * (v.dim() - 1)}")
        folded[name] = g * v / v.norm(dim=tuple(range(1, v.dim())), keepdim=True)
    return folded


def infer_hifigan_preset(state: Mapping) -> str:
    """The preset (v1, v2, v3) whose channels, number of upsamplers and residual block type the state dict has."""
    from melinterp.models.hifigan import HIFIGAN_PRESETS

    pre = state.get("conv_pre.weight")
    if pre is None or pre.dim() != 3:
        raise ValueError("the generator has no conv_pre weight of shape (channels, n_mels, 7): not a HiFi-GAN "
                         "generator state dict")
    channels = int(pre.shape[0])
    num_upsamples = len({key.split(".")[1] for key in state if key.startswith("ups.")})
    resblock = "1" if any(".convs1." in key for key in state) else "2" if any(".convs." in key for key in state) \
        else "?"
    for name, preset in HIFIGAN_PRESETS.items():
        if (preset["upsample_initial_channel"], len(preset["upsample_rates"]), preset["resblock"]) == \
                (channels, num_upsamples, resblock):
            return name
    known = "; ".join(f"{name}: {p['upsample_initial_channel']} channels, {len(p['upsample_rates'])} upsamplers, "
                      f"ResBlock{p['resblock']}" for name, p in HIFIGAN_PRESETS.items())
    raise ValueError(f"the generator ({channels} channels, {num_upsamples} upsamplers, ResBlock{resblock}) is none of "
                     f"the presets ({known}): give its config.json with --config")


def hifigan_config_from_official(config: str | os.PathLike | Mapping) -> dict:
    """`HiFiGANGenerator` arguments from the authors' config.json (a path or its dict); training keys are ignored."""
    if not isinstance(config, Mapping):
        from melinterp.utils import read_json_file

        config = read_json_file(config, "--config")
    missing = [key for key in _REQUIRED_OFFICIAL_KEYS if key not in config]
    if missing:
        raise ValueError(f"the HiFi-GAN config lacks {', '.join(missing)} (expected the authors' config.json keys)")
    kwargs = {ours: config[theirs] for theirs, ours in OFFICIAL_CONFIG_KEYS.items() if theirs in config}
    kwargs["resblock"] = str(kwargs["resblock"])
    return kwargs


def _check_fits(state: Mapping, expected: Mapping, label: str) -> None:
    """Raise a ValueError naming missing, unexpected and mis-shaped tensors of ``state`` against ``expected``."""
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mis_shaped = [f"{key} is {tuple(state[key].shape)} in the file, {tuple(expected[key].shape)} in {label}"
                  for key in expected if key in state and state[key].shape != expected[key].shape]
    problems = []
    if missing:
        problems.append(f"missing {_some(missing)}")
    if unexpected:
        problems.append(f"unexpected {_some(unexpected)}")
    if mis_shaped:
        problems.append(f"shapes differ: {_some(mis_shaped)}")
    if problems:
        raise ValueError(f"the checkpoint does not fit {label} (weight-norm pairs folded into .weight): "
                         + "; ".join(problems))


def _some(items: list[str], count: int = 3) -> str:
    shown = ", ".join(items[:count])
    return shown if len(items) <= count else f"{shown}, ... ({len(items)} in all)"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no message"
