"""Saving and loading melinterp pipelines: `MelinterpPipeline`, the `DiffusionPipeline` they derive from.

- Every component is recorded in ``model_index.json`` as ``["melinterp", ClassName]`` and `from_pretrained` resolves
  it in the ``melinterp`` package (diffusers' own loader looks load methods up by base class among its known
  libraries, which neither front end, `TextProcessor` and `FeatureConfig`, is).
- Weights load from safetensors only, unless ``allow_pickle=True``; components whose sizes do not fit together are
  refused by `check_compatible` (the pipeline calls it when it is built).
- `MelinterpPipeline.from_training_output` reads the folder a trainer exports (no ``model_index.json``).
- `one_call_at_a_time`: a pipeline object may be shared by threads (a web server's workers); its calls queue up.

`melinterp.pipelines.hub` has the model card, the upload and the command-line loader beside it.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading

import torch
from diffusers import DiffusionPipeline
from diffusers.models.modeling_utils import ModelMixin

from melinterp.audio import FeatureConfig
from melinterp.models.style_encoder import StyleEncoder
from melinterp.models.text_encoder import TextEncoder
from melinterp.models.unet_mel import MelUNet2DConditionModel
from melinterp.models.vocoder import GriffinLimVocoder
from melinterp.text import TextConfig, TextProcessor

# libraries a model_index.json entry may name: importing them runs only code this process already trusts
_LOADABLE_LIBRARIES = ("melinterp", "diffusers")


def _exported_name(module) -> str | None:
    """The class name under which ``melinterp`` exports ``module``'s class, or None."""
    import melinterp

    class_name = type(module).__name__
    return class_name if module is not None and getattr(melinterp, class_name, None) is type(module) else None


def one_call_at_a_time(method):
    """Run ``method`` under the pipeline's lock: calls from several threads queue up instead of sharing the
    scheduler mid-loop (its timesteps and solver history), and each returns what it would have returned alone."""

    @functools.wraps(method)
    def serialized(self, *args, **kwargs):
        with self._call_lock:
            return method(self, *args, **kwargs)

    return serialized


class MelinterpPipeline(DiffusionPipeline):
    """`DiffusionPipeline` with melinterp's saving, loading and device checks (module docstring)."""

    def __init__(self):
        super().__init__()
        self._call_lock = threading.RLock()  # see `one_call_at_a_time`

    def to(self, *args, **kwargs) -> MelinterpPipeline:
        """`DiffusionPipeline.to` (``to(device)``, ``to(dtype)``, ``to(device, dtype)``, keywords ``device=``,
        ``dtype=``), refusing a CUDA device when torch has none, before any component moves."""
        device = kwargs.get("device", args[0] if args and not isinstance(args[0], torch.dtype) else None)
        if isinstance(device, (str, torch.device)) and torch.device(device).type == "cuda" \
                and not torch.cuda.is_available():
            build = "without CUDA" if torch.version.cuda is None else f"with CUDA {torch.version.cuda} but sees no GPU"
            raise ValueError(f"cannot move the pipeline to {str(device)!r}: no CUDA device is available (torch "
                             f"{torch.__version__} was built {build}); use 'cpu', or a CUDA build of torch on a "
                             f"machine with an NVIDIA GPU")
        return super().to(*args, **kwargs)

    def register_modules(self, **kwargs):
        """Record every component as ``["melinterp", ClassName]`` when the package exports its class."""
        for name, module in kwargs.items():
            if _exported_name(module) is not None:
                self.register_to_config(**{name: ("melinterp", _exported_name(module))})
                setattr(self, name, module)
            else:
                super().register_modules(**{name: module})

    def __setattr__(self, name: str, value) -> None:
        """``pipe.vocoder = VocosVocoder(...)`` records ``["melinterp", "VocosVocoder"]`` in model_index.json, as
        the constructor does (diffusers would record the defining module, ``melinterp.models.vocos``)."""
        super().__setattr__(name, value)
        config = self.__dict__.get("_internal_dict")  # absent until the first component is registered
        if config is not None and isinstance(config.get(name), (tuple, list)) and _exported_name(value):
            self.register_to_config(**{name: ("melinterp", _exported_name(value))})

    def save_pretrained(self, save_directory: str | os.PathLike, safe_serialization: bool = True,
                        variant: str | None = None, push_to_hub: bool = False, **kwargs) -> None:
        """Write ``model_index.json`` and one subfolder per component (weights as safetensors, configs as json).

        With ``push_to_hub=True`` the folder is then uploaded by `push_to_hub` (``kwargs``: ``repo_id`` (default:
        the folder's name), ``commit_message``, ``private``, ``token``, ``create_pr``).
        """
        os.makedirs(save_directory, exist_ok=True)
        for name, component in self.components.items():
            if component is None:
                continue
            folder = os.path.join(save_directory, name)
            if isinstance(component, ModelMixin):
                component.save_pretrained(folder, safe_serialization=safe_serialization, variant=variant)
            elif hasattr(component, "save_pretrained"):
                component.save_pretrained(folder)  # schedulers, TextProcessor
            else:
                component.save_config(folder)  # ConfigMixin-only: FeatureConfig
        self.save_config(save_directory)
        if push_to_hub:
            repo_id = kwargs.pop("repo_id", os.path.basename(os.path.normpath(save_directory)))
            self.push_to_hub(repo_id, safe_serialization=safe_serialization, variant=variant, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *,
                        torch_dtype: torch.dtype | None = None, revision: str | None = None,
                        cache_dir: str | None = None, token: str | None = None, local_files_only: bool = False,
                        allow_pickle: bool = False, **components) -> MelinterpPipeline:
        """Load a pipeline from a folder written by `save_pretrained`, or a Hub repository id ("user/repo").

        Args:
            torch_dtype: cast the neural components to this dtype.
            revision, cache_dir, token, local_files_only: for the Hub download (`huggingface_hub.snapshot_download`).
            allow_pickle: also load weights saved as pickle (``.bin``) when a component has no ``.safetensors``.
                Off by default: unpickling a file can run any code it holds, so only allow it for files you trust.
            components: components to use instead of the saved ones, e.g. ``scheduler=...``.

        Raises:
            FileNotFoundError: a local path (``./x``, ``../x``, ``/x``, ``~/x``, ``a/b/c``, ...) that does not exist.
            ValueError: a component without safetensors weights (unless ``allow_pickle``), or components whose sizes
                do not fit together (e.g. a U-Net taken from another model).
        """
        from melinterp.pipelines.hub import looks_like_local_path

        folder = str(pretrained_model_name_or_path)
        if not os.path.isdir(folder):
            if looks_like_local_path(folder):
                raise FileNotFoundError(f"{folder}: no such folder (expected a folder saved by save_pretrained, or a "
                                        f"Hub id 'user/name')")
            from huggingface_hub import snapshot_download

            folder = snapshot_download(folder, revision=revision, cache_dir=cache_dir, token=token,
                                       local_files_only=local_files_only)
        config = cls.load_config(folder)
        expected = set(cls._get_signature_keys(cls)[0])
        unknown = set(components) - expected
        if unknown:
            raise ValueError(f"unknown components {sorted(unknown)}: expected some of {sorted(expected)}")
        for name in sorted(expected - set(components)):
            if name not in config:
                raise ValueError(f"{folder}/model_index.json has no entry for component {name!r}")
            library, class_name = config[name]
            components[name] = _load_component(folder, name, library, class_name, torch_dtype, allow_pickle)
        return cls(**components)

    def push_to_hub(self, repo_id: str, *, private: bool = False, token: str | None = None,
                    commit_message: str = "Upload melinterp pipeline", training_log=None, metrics=None,
                    api=None) -> str:
        """Upload every component and a generated model card to the Hub repository ``repo_id`` ("user/name").

        See `melinterp.pipelines.hub.push_pipeline_to_hub`; ``training_log`` (a trainer's ``logs/train.csv``) and
        ``metrics`` go into the card. Returns the repository's URL.
        """
        from melinterp.pipelines.hub import push_pipeline_to_hub

        return push_pipeline_to_hub(self, repo_id, private=private, token=token, commit_message=commit_message,
                                    training_log=training_log, metrics=metrics, api=api)

    @classmethod
    def from_training_output(cls, directory: str | os.PathLike, *, vocoder: torch.nn.Module | None = None,
                             **components) -> MelinterpPipeline:
        """Load the folder `Trainer.export_pipeline_folder` writes (text_encoder, style_encoder, unet, scheduler,
        feature_config, text_config; no model_index.json). The vocoder defaults to Griffin-Lim for its features.
        """
        from melinterp.schedulers import SCHEDULERS, GradTTSScheduler

        directory = str(directory)
        if not os.path.isdir(directory):
            raise ValueError(f"directory must be a training export folder, {directory!r} is not a directory")
        feature_config = components.pop("feature_config", None) or FeatureConfig.from_config(
            FeatureConfig.load_config(directory, subfolder="feature_config"))
        if "scheduler" not in components:
            scheduler_config = GradTTSScheduler.load_config(directory, subfolder="scheduler")
            scheduler_class = {cls.__name__: cls for cls in SCHEDULERS.values()}.get(
                scheduler_config.get("_class_name"), GradTTSScheduler)
            components["scheduler"] = scheduler_class.from_config(scheduler_config)
        loaders = {
            "text_encoder": lambda: TextEncoder.from_pretrained(directory, subfolder="text_encoder"),
            "style_encoder": lambda: StyleEncoder.from_pretrained(directory, subfolder="style_encoder"),
            "unet": lambda: MelUNet2DConditionModel.from_pretrained(directory, subfolder="unet"),
            "text_processor": lambda: TextProcessor(TextConfig.from_config(
                TextConfig.load_config(directory, subfolder="text_config"))),
        }
        for name, load in loaders.items():
            if name not in components:
                components[name] = load()
        vocoder = vocoder if vocoder is not None else GriffinLimVocoder.from_feature_config(feature_config)
        return cls(vocoder=vocoder, feature_config=feature_config, **components)


def _load_component(folder: str, name: str, library: str | None, class_name: str | None, torch_dtype,
                    allow_pickle: bool = False):
    if library is None:
        return None
    if library.split(".")[0] not in _LOADABLE_LIBRARIES:
        raise ValueError(f"component {name!r} names library {library!r}; only {', '.join(_LOADABLE_LIBRARIES)} "
                         f"components load (pass other components to from_pretrained yourself)")
    component_class = getattr(importlib.import_module(library), class_name, None)
    if component_class is None:
        raise ValueError(f"component {name!r}: {library} has no class {class_name!r}")
    if issubclass(component_class, ModelMixin):
        subfolder = os.path.join(folder, name)
        files = sorted(os.listdir(subfolder)) if os.path.isdir(subfolder) else []
        pickles = [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt"))]
        if not allow_pickle and pickles and not any(f.endswith(".safetensors") for f in files):
            # with no weights at all, diffusers' "no file named ..." below says what is missing
            raise ValueError(f"component {name!r}: {subfolder} has no .safetensors weights, only pickle weights "
                             f"({', '.join(pickles)}); only safetensors weights are loaded, since "
                             f"unpickling a file can run code: re-save the component with save_pretrained, or pass "
                             f"allow_pickle=True to from_pretrained if you trust the file")
        return component_class.from_pretrained(folder, subfolder=name, torch_dtype=torch_dtype,
                                               use_safetensors=None if allow_pickle else True)
    if hasattr(component_class, "from_pretrained"):
        return component_class.from_pretrained(folder, subfolder=name)  # schedulers, TextProcessor
    return component_class.from_config(component_class.load_config(folder, subfolder=name))  # FeatureConfig


def _config_value(component, key: str):
    """``component.config[key]``, or None for a component without that setting (a custom vocoder, None)."""
    config = getattr(component, "config", None)
    return config.get(key) if isinstance(config, dict) else getattr(config, key, None)


def check_compatible(*, text_encoder, style_encoder, unet, vocoder, feature_config) -> None:
    """Raise a ValueError listing every size two components must share but do not (e.g. a U-Net copied in from
    another model), instead of a shape error deep inside the first synthesis."""
    problems = []
    token_channels = _config_value(style_encoder, "hidden_channels")
    cross_attention_dim = _config_value(unet, "cross_attention_dim")
    for dim in cross_attention_dim if isinstance(cross_attention_dim, (list, tuple)) else [cross_attention_dim]:
        if None not in (token_channels, dim) and dim != token_channels:
            problems.append(f"style_encoder makes style tokens of {token_channels} channels but "
                            f"unet.config.cross_attention_dim is {cross_attention_dim}")
            break
    style_dim = _config_value(style_encoder, "style_dim")
    takers = [("text_encoder.config.style_dim", _config_value(text_encoder, "style_dim"))]
    if _config_value(unet, "class_embed_type") == "projection":  # the style vector is the U-Net's class label
        takers.append(("unet.config.projection_class_embeddings_input_dim",
                       _config_value(unet, "projection_class_embeddings_input_dim")))
    mismatched = [f"{where} is {dim}" for where, dim in takers if None not in (style_dim, dim) and dim != style_dim]
    if mismatched:
        problems.append(f"style_encoder.config.style_dim is {style_dim} but {' and '.join(mismatched)}")
    n_mels = _config_value(feature_config, "n_mels")
    for name, component in (("text_encoder", text_encoder), ("style_encoder", style_encoder), ("vocoder", vocoder)):
        component_n_mels = _config_value(component, "n_mels")
        if None not in (n_mels, component_n_mels) and component_n_mels != n_mels:
            problems.append(f"{name}.config.n_mels is {component_n_mels} but feature_config.n_mels is {n_mels}")
    if problems:
        raise ValueError("the pipeline's components do not fit together (were some taken from another model?): "
                         + "; ".join(problems))
