"""`MelStyleInterpolationPipeline`: text + one or two reference recordings -> speech whose voice is interpolated.

Modes (see DESIGN.md and `melinterp.guidance`):

| mode           | strategy                                                                            |
| -------------- | ----------------------------------------------------------------------------------- |
| ``"none"``     | ref1's style only                                                                   |
| ``"mix"``      | ``(1 - alpha) s1 + alpha s2``                                                       |
| ``"temporal"`` | cross-attention routed to ref1 before ``boundary``, to ref2 after                  |
| ``"freq"``     | ref1's pitch (f0 and harmonics), everything else ref2's; ``freq_guidance`` picks how |
| ``"dual_noise"`` | a temporal or frequency routing map composing two scores in mel space            |

Components, saved one subfolder each by `save_pretrained` with a ``model_index.json``: ``text_encoder``,
``style_encoder``, ``unet``, ``scheduler``, ``vocoder`` and the front ends ``text_processor`` (a
`melinterp.text.TextProcessor`, saved as its ``text_config.json``) and ``feature_config`` (a
`melinterp.audio.FeatureConfig`). ``model_index.json`` names each component ``["melinterp", ClassName]``, and
`from_pretrained` resolves it in the ``melinterp`` package (diffusers' own loader looks load methods up by base
class among its known libraries, which neither front end is).

Batches: items whose utterances have the same number of frames T are denoised together; items of different
length are denoised one group after another, because the U-Net's GroupNorm statistics span the whole image, so
padding one item to another's length would change it. Each item draws its prior noise from its own generator, so a
batch gives the same speech as the same items one by one.

Long text: with ``split_sentences=True`` (the default) each text is split into its sentences
(`melinterp.text.split_sentences`), the sentences of every text are synthesised as one batch and each text's
sentences are joined again, ``sentence_pause`` seconds of silence apart. Since items are denoised in groups of equal
length, memory is bounded by the longest sentence, not by the whole text.
"""

from __future__ import annotations

import functools
import importlib
import numbers
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from melinterp.audio import AudioError, FeatureConfig, load_audio, mel_spectrogram, pitch_features
from melinterp.guidance import (
    DUAL_NOISE_MAPS,
    PITCH_MASK_KINDS,
    DualNoise,
    FrequencyRouting,
    GuidanceState,
    GuidanceStrategy,
    MixGuidance,
    NoiseTuning,
    NoiseTuningConfig,
    PhonemeTiming,
    SingleReference,
    TemporalRouting,
    VoiceWeights,
    parse_boundary,
)
from melinterp.models.attention_processors import AttentionStore, install_processors
from melinterp.models.length_regulator import durations_from_log, expand, generate_path, sequence_mask
from melinterp.models.style_encoder import StyleEncoder, StyleEncoderOutput
from melinterp.models.text_encoder import TextEncoder
from melinterp.models.unet_mel import MelUNet2DConditionModel
from melinterp.models.vocoder import GriffinLimVocoder
from melinterp.text import TextConfig, TextProcessor
from melinterp.text import split_sentences as sentences_of
from melinterp.text.errors import check_text

MODES = ("none", "mix", "temporal", "freq", "dual_noise")
FREQ_GUIDANCE = ("mask", "noise_tuning", "none")
OUTPUT_TYPES = ("np", "pt", "mel")
TWO_REFERENCE_MODES = tuple(m for m in MODES if m != "none")
REFERENCE_F0_METHOD = "dio"  # fast, and what `melinterp preprocess --f0-method dio` caches for training
# libraries a model_index.json entry may name: importing them runs only code this process already trusts
_LOADABLE_LIBRARIES = ("melinterp", "diffusers")


def _exported_name(module) -> str | None:
    """The class name under which ``melinterp`` exports ``module``'s class, or None."""
    import melinterp

    class_name = type(module).__name__
    return class_name if module is not None and getattr(melinterp, class_name, None) is type(module) else None


def _one_call_at_a_time(method):
    """Run ``method`` under the pipeline's lock: calls from several threads (a web server's workers) queue up
    instead of sharing the scheduler mid-loop, and each returns what it would have returned alone."""

    @functools.wraps(method)
    def serialized(self, *args, **kwargs):
        with self._call_lock:
            return method(self, *args, **kwargs)

    return serialized


@dataclass
class MelStyleInterpolationPipelineOutput(BaseOutput):
    """What the pipeline returns. Items of a batch are padded to the longest; ``lengths`` gives each one's frames.

    Args:
        audios: (B, N_max) waveforms (np.ndarray for output_type "np", torch for "pt", None for "mel"); item b
            has ``lengths[b] * hop_length`` samples, zeros after.
        mels: (B, n_mels, T_max) natural-log mels, padded with ln(log_clamp) (silence) after ``lengths[b]``.
        lengths: (B,) frames per item.
        sample_rate: Hz of `audios`.
        routing_map: (B, n_mels, T_max) weight of ref1 per cell (temporal, freq, dual_noise), else None.
        pitch_mask: (B, n_mels, T_max) ref1's pitch mask (freq, dual_noise with the frequency map), else None.
        ref1_mass: (B, n_mels, T_max) share of attention each cell gave to ref1's tokens, averaged over the
            cross-attention layers, heads and steps (``return_attention=True`` in modes whose keys are
            [ref1 ; ref2]: temporal and freq), else None.
    """

    audios: Any = None
    mels: Any = None
    lengths: Any = None
    sample_rate: int | None = None
    routing_map: Any = None
    pitch_mask: Any = None
    ref1_mass: Any = None


@dataclass
class ReferenceEncoding:
    """A reference recording analysed once by `MelStyleInterpolationPipeline.encode_reference`, to pass as ref1 or
    ref2 in any number of calls (as diffusers pipelines take ``prompt_embeds``): loading, resampling, the style
    encoder and the f0 analysis then run once instead of in every call.

    Args:
        style_tokens: (1, S, C) the style encoder's tokens.
        token_mask: (1, S) True on real tokens.
        style_vector: (1, style_dim) the global style.
        f0: (T_ref,) the recording's f0 contour in Hz (0 = unvoiced), by the pipeline's reference estimator.
    """

    style_tokens: torch.Tensor
    token_mask: torch.Tensor
    style_vector: torch.Tensor
    f0: np.ndarray


class MelStyleInterpolationPipeline(DiffusionPipeline):
    """Diffusion TTS whose voice is interpolated between two references, cell by cell of the mel-spectrogram.

    Args:
        text_encoder: `TextEncoder` (phoneme ids + style vector -> mu_x, log-durations).
        style_encoder: `StyleEncoder` (reference mel -> style tokens + style vector).
        unet: `MelUNet2DConditionModel` (the score model); `MelAttnProcessor`s are installed on it.
        scheduler: `GradTTSScheduler` or `GradTTSDPMSolverScheduler`.
        vocoder: any module log-mel (B, n_mels, T) -> waveform (B, T * hop): `VocosVocoder` (trained; the bundled
            model's), `HiFiGANGenerator` (official checkpoints, `melinterp convert-hifigan`) or `GriffinLimVocoder`
            (no weights, the fallback).
        text_processor: `TextProcessor` (text -> phoneme ids).
        feature_config: `FeatureConfig` (sample rate, STFT and mel settings of the references and the output).
    """

    model_cpu_offload_seq = "text_encoder->style_encoder->unet->vocoder"

    def __init__(self, text_encoder: TextEncoder, style_encoder: StyleEncoder, unet: MelUNet2DConditionModel,
                 scheduler, vocoder: torch.nn.Module, text_processor: TextProcessor,
                 feature_config: FeatureConfig):
        super().__init__()
        # one synthesis at a time: the scheduler's timesteps and solver history live on the shared scheduler
        self._call_lock = threading.RLock()
        _check_compatible(text_encoder=text_encoder, style_encoder=style_encoder, unet=unet, vocoder=vocoder,
                          feature_config=feature_config)
        install_processors(unet)  # routing and capture need MelAttnProcessor on every attention layer
        self.register_modules(text_encoder=text_encoder, style_encoder=style_encoder, unet=unet,
                              scheduler=scheduler, vocoder=vocoder, text_processor=text_processor,
                              feature_config=feature_config)

    def to(self, *args, **kwargs) -> MelStyleInterpolationPipeline:
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

    # ------------------------------------------------------------------------------------------------------------
    # Saving and loading
    # ------------------------------------------------------------------------------------------------------------

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
                        allow_pickle: bool = False, **components) -> MelStyleInterpolationPipeline:
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
                             **components) -> MelStyleInterpolationPipeline:
        """Load the folder `Trainer.export_pipeline_folder` writes (text_encoder, style_encoder, unet, scheduler,
        feature_config, text_config; no model_index.json). The vocoder defaults to Griffin-Lim for its features.
        """
        from melinterp.schedulers import GradTTSDPMSolverScheduler, GradTTSScheduler

        directory = str(directory)
        if not os.path.isdir(directory):
            raise ValueError(f"directory must be a training export folder, {directory!r} is not a directory")
        feature_config = components.pop("feature_config", None) or FeatureConfig.from_config(
            FeatureConfig.load_config(directory, subfolder="feature_config"))
        if "scheduler" not in components:
            scheduler_config = GradTTSScheduler.load_config(directory, subfolder="scheduler")
            scheduler_class = {"GradTTSDPMSolverScheduler": GradTTSDPMSolverScheduler}.get(
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

    # ------------------------------------------------------------------------------------------------------------
    # Generation
    # ------------------------------------------------------------------------------------------------------------

    @_one_call_at_a_time
    @torch.no_grad()
    def __call__(
        self,
        text: str | list[str],
        ref1,
        ref2=None,
        mode: str = "none",
        *,
        alpha: float = 0.5,
        boundary: float | int | str = 0.5,
        crossfade: float = 0.1,
        pitch_mask: str = "band",
        freq_guidance: str = "mask",
        routing_strength: float = 1.0,
        tuning: NoiseTuningConfig | None = None,
        dual_noise_map: str = "freq",
        dual_noise_merge_step: int = 0,
        num_inference_steps: int = 10,
        temperature: float = 1.5,
        guidance_scale: float = 1.0,
        length_scale: float = 1.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "np",
        return_attention: bool = False,
        callback_on_step_end: Callable | None = None,
        return_dict: bool = True,
        split_sentences: bool = True,
        sentence_pause: float = 0.25,
    ) -> MelStyleInterpolationPipelineOutput | tuple:
        """Synthesise `text` in a voice taken from, or interpolated between, `ref1` and `ref2`.

        Args:
            text: a str, or a list of str (a batch).
            ref1, ref2: reference recordings, each a file path, an ``(array, sample_rate)`` pair, a 1-D waveform
                tensor at ``feature_config.sample_rate`` or a `ReferenceEncoding` (`encode_reference`: analysed
                once, reused in many calls); or a list of those, one per text. ref2 is required by
                every mode but "none", and refused by "none".
            mode: "none", "mix", "temporal", "freq" or "dual_noise" (module docstring).
            alpha: mix weight of ref2 in [0, 1] (mode "mix").
            boundary: where temporal routing switches from ref1 to ref2: a float in [0, 1] is a fraction of the
                utterance, an int k a phoneme index (symbol k of ``text_processor.phonemize(text)``), a str such as
                "0.8s" seconds (modes "temporal", and "dual_noise" with ``dual_noise_map="temporal"``). With
                ``split_sentences`` the utterance is each sentence: every sentence of a text switches at its own
                boundary (pass ``split_sentences=False`` for one switch over the whole text).
            crossfade: width of the temporal crossfade, seconds.
            pitch_mask: "band" or "harmonic" (`melinterp.guidance.frequency`).
            freq_guidance: "mask" (routing bias), "noise_tuning" (gradient steps on x_t) or "none" (both
                references' keys, no routing: the ablation baseline), for mode "freq".
            routing_strength: multiplies the routing log-weight bias (> 1 routes harder).
            tuning: `NoiseTuningConfig` for ``freq_guidance="noise_tuning"`` (default: its defaults).
            dual_noise_map: "freq" or "temporal", the map that composes the two scores (mode "dual_noise").
            dual_noise_merge_step: k > 0 starts from two prior samples merged at step k (mode "dual_noise").
            num_inference_steps: denoising steps (score evaluations of the scheduler), >= 1.
            temperature: the prior is mu_y + eps / temperature, > 0.
            guidance_scale: classifier-free guidance against the learned null style; 1 = none.
            length_scale: > 1 speaks slower.
            generator: a torch.Generator, or one per text; each item's noise is drawn from its own generator
                (seeded from the given one), so batching does not change results.
            output_type: "np" or "pt" (waveforms and mels as numpy / torch), or "mel" (no vocoder, audios None).
            return_attention: also return `ref1_mass`, the attention mass on ref1 per mel cell (modes with both
                references' keys; it rides in the fused attention call, so it costs about nothing).
            callback_on_step_end: ``fn(pipe, i, t, {"latents": x}) -> dict | None`` after each step; a returned
                "latents" replaces x. For a batch of different lengths it runs once a step per length group.
            return_dict: return a `MelStyleInterpolationPipelineOutput` rather than a tuple.
            split_sentences: split each text into sentences (`melinterp.text.split_sentences`), synthesise them as
                items of one batch and join each text's sentences back into one output item. Memory is then
                bounded by the longest sentence (items are denoised in groups of equal length). A text of one
                sentence gives exactly what ``split_sentences=False`` gives. Each sentence of a text draws its noise
                from a generator seeded from that text's generator.
            sentence_pause: seconds of silence between joined sentences, >= 0; rounded to whole frames,
                ``round(sentence_pause * sample_rate / hop_length)``, that are ln(log_clamp) in `mels`, zeros in
                `audios` and 0 in the per-cell maps.
        """
        # 1. Check inputs; split each text into its sentences: the items of the batch from here to step 9 are the
        #    sentences, text b's being `spans[b]` (its generator seeds theirs), joined back into one item in step 10
        texts = [text] if isinstance(text, str) else text
        self.check_inputs(texts, ref1, ref2, mode, alpha, boundary, crossfade, pitch_mask, freq_guidance,
                          routing_strength, dual_noise_map, num_inference_steps, temperature, guidance_scale,
                          length_scale, output_type, split_sentences, sentence_pause)
        num_texts = len(texts)
        strategy = self.guidance_strategy(mode, alpha=alpha, boundary=boundary, crossfade=crossfade,
                                          pitch_mask=pitch_mask, freq_guidance=freq_guidance,
                                          routing_strength=routing_strength, tuning=tuning,
                                          dual_noise_map=dual_noise_map, dual_noise_merge_step=dual_noise_merge_step)
        sentences, spans = _split_texts(texts, split_sentences)
        owners = [b for b, span in enumerate(spans) for _ in span]  # the text of each sentence
        batch_size = len(sentences)
        generators = _sentence_generators(self._item_generators(generator, num_texts), spans)
        device, dtype = self._execution_device, self.unet.dtype
        owner_index = torch.tensor(owners, device=device)

        # 2. Encode text
        phonemes = self.text_processor.phonemize_batch(sentences)  # TextError names an empty item
        phoneme_ids = [self.text_processor.encode_phonemes(p) for p in phonemes]
        id_lengths = torch.tensor([len(ids) for ids in phoneme_ids], device=device)  # (B,)
        ids = torch.zeros(batch_size, int(id_lengths.max()), dtype=torch.long, device=device)  # (B, L)
        for b, item_ids in enumerate(phoneme_ids):
            ids[b, : len(item_ids)] = torch.tensor(item_ids)

        # 3. Encode references, one per text, then repeat each for the text's sentences: style tokens (B, S, C),
        #    token masks (B, S), style vectors (B, style_dim); f0
        takes_pitch = self.text_encoder.config.pitch_dim > 0
        ref1_style, ref1_f0 = self._analyse_references(ref1, "ref1", num_texts, strategy.needs_f0 or takes_pitch)
        ref1_style = _select(ref1_style, owner_index)
        ref2_style = ref2_f0 = None
        if strategy.num_references == 2:
            ref2_style, ref2_f0 = self._analyse_references(ref2, "ref2", num_texts, takes_pitch)
            ref2_style = _select(ref2_style, owner_index)
        null_style = self.style_encoder.null_style(batch_size, 1)
        pitch1 = pitch2 = None
        if takes_pitch:
            pitch1 = self._pitch_condition(ref1_f0, "ref1")[owner_index]
            if ref2_f0 is not None:
                pitch2 = self._pitch_condition(ref2_f0, "ref2")[owner_index]
        if ref1_f0 is not None:
            ref1_f0 = [ref1_f0[b] for b in owners]

        # 4. Durations -> mu_y (B, n_mels, T_max), frame mask (B, 1, T_max). The text encoder hears the voice the
        #    strategy asks for (style vector and pitch condition, each a blend of the two references). A strategy
        #    whose voice changes in time gets per-phoneme weights from the first pass's durations, and then each
        #    phoneme's prior mean is the weighted sum of the encoder's output under ref1 alone and under ref2 alone
        #    (blending the outputs, not the conditions, keeps the encoder's self-attention from carrying one voice
        #    into the other's phonemes); the durations stay those of the first pass.
        def encode_text(style_weight, pitch_weight):
            style_vector = _blend(style_weight, ref1_style.style_vector,
                                  None if ref2_style is None else ref2_style.style_vector)
            pitch = None if pitch1 is None else _blend(pitch_weight, pitch1, pitch2)
            return self.text_encoder(ids, id_lengths, style_vector, pitch)

        weights = strategy.voice_weights()
        mu_x, log_durations, x_mask = encode_text(weights.style, weights.pitch)
        durations = durations_from_log(log_durations, x_mask, length_scale)  # (B, L) frames per phoneme id
        lengths = durations.sum(1)  # (B,)
        if strategy.weights_follow_time:
            timing = PhonemeTiming(durations, lengths, [len(p) for p in phonemes],
                                   bool(self.text_processor.config.config.add_blank),
                                   self.feature_config.sample_rate / self.feature_config.hop_length)
            weight = strategy.voice_weights(timing).style.to(mu_x).unsqueeze(1)  # (B, 1, L) weight of ref1
            mu_x_ref1, mu_x_ref2 = self.text_encoder(  # both voices in one call of 2B
                ids.repeat(2, 1), id_lengths.repeat(2),
                torch.cat([ref1_style.style_vector, ref2_style.style_vector]),
                None if pitch1 is None else torch.cat([pitch1, pitch2]),
            )[0].chunk(2)  # (B, n_mels, L) each
            mu_x = weight * mu_x_ref1 + (1.0 - weight) * mu_x_ref2
        y_mask = sequence_mask(lengths).unsqueeze(1).to(dtype)  # (B, 1, T_max)
        mu_y = expand(mu_x, generate_path(durations, y_mask))  # (B, n_mels, T_max)

        groups = _equal_length_groups(lengths)
        results = {}  # item -> (mel (n_mels, T), routing_map, pitch_mask, ref1_mass)
        with self.progress_bar(total=len(groups) * num_inference_steps) as progress_bar:
            for items, num_frames in groups:
                index = torch.tensor(items, device=device)
                state = GuidanceState(
                    unet=self.unet, scheduler=self.scheduler, mu_y=mu_y[index, :, :num_frames],
                    y_mask=y_mask[index, :, :num_frames], ref1=_select(ref1_style, index),
                    ref2=None if ref2_style is None else _select(ref2_style, index),
                    null_style=_select(null_style, index), feature_config=self.feature_config,
                    durations=durations[index], phoneme_counts=[len(phonemes[b]) for b in items],
                    add_blank=bool(self.text_processor.config.config.add_blank),
                    ref1_f0=None if ref1_f0 is None else [ref1_f0[b] for b in items],
                    capture=AttentionStore(detach=True) if return_attention and strategy.captures_ref1_mass else None,
                )
                group_generators = [generators[b] for b in items]

                # 5. Routing map / pitch mask and keys, via the strategy
                strategy.prepare(state)

                # 6. Timesteps
                self.scheduler.set_timesteps(num_inference_steps, device=device)
                timesteps = self.scheduler.timesteps

                # 7. Prior sample x_1 = mu_y + eps / temperature, eps from each item's own generator
                x = state.mu_y + self._item_noise(group_generators, state.mu_y) / temperature
                if strategy.needs_second_noise:
                    state.second_noise = state.mu_y + self._item_noise(group_generators, state.mu_y) / temperature

                # 8. Denoising loop
                for i, t in enumerate(timesteps):
                    if state.capture is not None:
                        state.capture.step = i
                    x = strategy.adjust_sample(state, x, t, i)  # noise tuning acts here
                    score = strategy.score(state, x, t, i)  # mix and dual noise act here
                    if guidance_scale != 1.0:  # classifier-free guidance against the null style
                        score_uncond = strategy.unconditional_score(state, x, t)
                        score = score_uncond + guidance_scale * (score - score_uncond)
                    x = self.scheduler.step(score, t, x, state.mu_y, generator=group_generators).prev_sample
                    if callback_on_step_end is not None:
                        callback_outputs = callback_on_step_end(self, i, t, {"latents": x}) or {}
                        x = callback_outputs.get("latents", x)
                    progress_bar.update()

                ref1_mass = None
                if state.capture is not None:
                    ref1_mass = state.capture.ref1_mass(size=state.padded_size)[..., :num_frames]  # (B, n_mels, T)
                for j, b in enumerate(items):
                    results[b] = tuple(None if v is None else v[j] for v in
                                       (x, state.routing_map, state.pitch_mask, ref1_mass))

        # 9. Vocoder, one length group at a time
        waveforms = {}  # item -> (T * hop,)
        if output_type != "mel":
            # a log-mel of real audio lies within +-ln(log_clamp) (about +-11.5); an untrained or diverging model can
            # leave that range, and exp() of such values would overflow the vocoder's spectra
            log_floor = float(np.log(self.feature_config.log_clamp))
            for items, num_frames in groups:
                mels = torch.stack([results[b][0] for b in items]).clamp(log_floor, -log_floor)  # (B_g, n_mels, T)
                waveforms.update(zip(items, self.vocoder(mels)))  # (T * hop,) each

        # 10. Output: each text's sentences joined, `pause_frames` of silence apart, the texts padded to the longest
        hop_length = self.feature_config.hop_length
        pause_frames = round(sentence_pause * self.feature_config.sample_rate / hop_length)
        silence = float(np.log(self.feature_config.log_clamp))

        def join_each_text(per_item, pause: int, fill: float) -> list:
            """per_item[b] (..., T_b) of every sentence b -> one (..., T_text) per text (None where any is None)."""
            return [_join_sentences([per_item[b] for b in span], pause, fill) for span in spans]

        mels, routing_map, pitch_mask_out, ref1_mass = (
            join_each_text([results[b][k] for b in range(batch_size)], pause_frames, fill)
            for k, fill in ((0, silence), (1, 0.0), (2, 0.0), (3, 0.0))
        )
        lengths = torch.tensor([mel.shape[-1] for mel in mels], device=device)  # (B_text,) frames
        mels, routing_map, pitch_mask_out, ref1_mass = (
            _pad_items(items, int(lengths.max()), fill)
            for items, fill in ((mels, silence), (routing_map, 0.0), (pitch_mask_out, 0.0), (ref1_mass, 0.0))
        )
        audios = None
        if output_type != "mel":
            audios = torch.zeros(num_texts, int(lengths.max()) * hop_length, device=device)  # (B_text, N_max)
            for b, waveform in enumerate(join_each_text(waveforms, pause_frames * hop_length, 0.0)):
                audios[b, : waveform.shape[-1]] = waveform.to(audios.dtype)
        if output_type != "pt":
            audios, mels, routing_map, pitch_mask_out, ref1_mass = (
                None if v is None else v.float().cpu().numpy() for v in (audios, mels, routing_map, pitch_mask_out,
                                                                         ref1_mass))
            lengths = lengths.cpu().numpy()
        self.maybe_free_model_hooks()
        if not return_dict:
            return audios, mels
        return MelStyleInterpolationPipelineOutput(
            audios=audios, mels=mels, lengths=lengths, sample_rate=int(self.feature_config.sample_rate),
            routing_map=routing_map, pitch_mask=pitch_mask_out, ref1_mass=ref1_mass,
        )

    # ------------------------------------------------------------------------------------------------------------
    # Steps' helpers
    # ------------------------------------------------------------------------------------------------------------

    def check_inputs(self, texts, ref1, ref2, mode, alpha, boundary, crossfade, pitch_mask, freq_guidance,
                     routing_strength, dual_noise_map, num_inference_steps, temperature, guidance_scale,
                     length_scale, output_type, split_sentences=True, sentence_pause=0.25) -> None:
        """Raise a ValueError naming the first bad argument (text errors are `TextError`s, from step 2)."""
        if not isinstance(texts, (list, tuple)) or not texts:
            raise ValueError(f"text must be a str or a non-empty list of str, got {texts!r:.80}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
        if ref1 is None:
            raise ValueError("ref1 is required: a path, an (array, sample_rate) pair, a waveform tensor or a "
                             "ReferenceEncoding")
        if mode in TWO_REFERENCE_MODES and ref2 is None:
            raise ValueError(f"mode={mode!r} interpolates between two voices and needs ref2; for one voice use "
                             f"mode='none'")
        if mode == "none" and ref2 is not None:
            raise ValueError("ref2 was given but mode='none' uses ref1 only: pick a two-reference mode "
                             f"({', '.join(TWO_REFERENCE_MODES)}) or leave ref2 out")
        if not _is_real(alpha) or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be a weight of ref2 in [0, 1], got {alpha!r}")
        parse_boundary(boundary)
        if not _is_real(crossfade) or crossfade < 0:
            raise ValueError(f"crossfade must be a width >= 0 in seconds, got {crossfade!r}")
        if pitch_mask not in PITCH_MASK_KINDS:
            raise ValueError(f"pitch_mask must be one of {', '.join(map(repr, PITCH_MASK_KINDS))}, got {pitch_mask!r}")
        if freq_guidance not in FREQ_GUIDANCE:
            raise ValueError(
                f"freq_guidance must be one of {', '.join(map(repr, FREQ_GUIDANCE))}, got {freq_guidance!r}"
            )
        if dual_noise_map not in DUAL_NOISE_MAPS:
            raise ValueError(
                f"dual_noise_map must be one of {', '.join(map(repr, DUAL_NOISE_MAPS))}, got {dual_noise_map!r}"
            )
        if not _is_real(routing_strength) or routing_strength < 0:
            raise ValueError(f"routing_strength must be >= 0, got {routing_strength!r}")
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, numbers.Integral) \
                or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        if not _is_real(temperature) or temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        if not _is_real(guidance_scale):
            raise ValueError(f"guidance_scale must be a number (1 = no guidance), got {guidance_scale!r}")
        if not _is_real(length_scale) or length_scale <= 0:
            raise ValueError(f"length_scale must be > 0 (> 1 speaks slower), got {length_scale!r}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(map(repr, OUTPUT_TYPES))}, got {output_type!r}")
        if not isinstance(split_sentences, bool):
            raise ValueError(f"split_sentences must be True or False, got {split_sentences!r}")
        if not _is_real(sentence_pause) or sentence_pause < 0:
            raise ValueError(f"sentence_pause must be a pause >= 0 in seconds between sentences, got "
                             f"{sentence_pause!r}")

    @staticmethod
    def guidance_strategy(mode: str, *, alpha: float = 0.5, boundary=0.5, crossfade: float = 0.1,
                          pitch_mask: str = "band", freq_guidance: str = "mask", routing_strength: float = 1.0,
                          tuning: NoiseTuningConfig | None = None, dual_noise_map: str = "freq",
                          dual_noise_merge_step: int = 0) -> GuidanceStrategy:
        """The `melinterp.guidance` strategy that implements `mode`."""
        if mode == "none":
            return SingleReference()
        if mode == "mix":
            return MixGuidance(alpha)
        if mode == "temporal":
            return TemporalRouting(boundary, crossfade, routing_strength)
        if mode == "freq":
            if freq_guidance == "noise_tuning":
                return NoiseTuning(pitch_mask, tuning)
            return FrequencyRouting(pitch_mask, routing_strength, route=freq_guidance == "mask")
        if mode == "dual_noise":
            return DualNoise(dual_noise_map, pitch_mask, boundary, crossfade, dual_noise_merge_step)
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")

    @torch.no_grad()
    def encode_reference(self, ref) -> ReferenceEncoding:
        """Analyse one reference recording for reuse: ``enc = pipe.encode_reference("a.wav")``, then
        ``pipe(text, enc, ...)`` gives exactly what ``pipe(text, "a.wav", ...)`` gives, without redoing the work.

        Args:
            ref: a file path, an ``(array, sample_rate)`` pair or a 1-D waveform tensor at the feature sample rate.

        Returns:
            The `ReferenceEncoding`, on the pipeline's device and dtype (moved along if the pipeline moves).
        """
        (item,) = self._load_references(ref, "ref", 1)
        return item if isinstance(item, ReferenceEncoding) else self._encoding_of(item)

    def _encoding_of(self, wave: np.ndarray) -> ReferenceEncoding:
        style = self._encode_references([wave])
        (f0,) = self._extract_f0([wave])
        return ReferenceEncoding(style.style_tokens, style.token_mask, style.style_vector, f0)

    def _analyse_references(self, refs, name: str, batch_size: int,
                            need_f0: bool) -> tuple[StyleEncoderOutput, list[np.ndarray] | None]:
        """Style (B, S, C) of each item's reference, and its f0 contour when `need_f0`; `ReferenceEncoding`s are
        used as they are, recordings are loaded and encoded in one batch."""
        items = self._load_references(refs, name, batch_size)  # a waveform or a ReferenceEncoding per item
        if not any(isinstance(item, ReferenceEncoding) for item in items):
            return self._encode_references(items), self._extract_f0(items) if need_f0 else None
        encodings, cache = [], {}
        for item in items:
            if id(item) not in cache:
                cache[id(item)] = item if isinstance(item, ReferenceEncoding) else self._encoding_of(item)
            encodings.append(cache[id(item)])
        return _stack_encodings(encodings, self._execution_device, self.style_encoder.dtype), (
            [e.f0 for e in encodings] if need_f0 else None)

    def _load_references(self, refs, name: str, batch_size: int) -> list:
        """Waveforms (N,) at the feature sample rate, one per item (a single reference serves every item);
        `ReferenceEncoding`s pass through."""
        one_per_text = isinstance(refs, list)
        if one_per_text:
            if len(refs) != batch_size:
                raise ValueError(f"{name} is a list of {len(refs)} references but there are {batch_size} texts: give "
                                 f"one reference per text, or a single one for all")
        else:
            refs = [refs] * batch_size
        config = self.feature_config
        waves, loaded = [], {}
        for b, ref in enumerate(refs):
            if id(ref) in loaded:  # the same object for several items: load it once
                waves.append(loaded[id(ref)])
                continue
            if isinstance(ref, ReferenceEncoding):
                waves.append(ref)
                continue
            where = f"{name}[{b}]" if one_per_text and batch_size > 1 else name
            if isinstance(ref, (str, os.PathLike)):
                array, sr = ref, None
            elif isinstance(ref, tuple):
                if len(ref) != 2 or isinstance(ref[0], (str, os.PathLike)) or not isinstance(ref[1], numbers.Real):
                    raise ValueError(f"{where} as a tuple must be an (array, sample_rate) pair, got a tuple of "
                                     f"({', '.join(type(r).__name__ for r in ref)}); to give several references, "
                                     f"one per text, pass them in a list")
                array, sr = ref
            elif isinstance(ref, torch.Tensor):
                if ref.ndim != 1:
                    raise ValueError(f"{where} as a tensor must be a 1-D waveform (N,) at {config.sample_rate} Hz, got "
                                     f"shape {tuple(ref.shape)}")
                array, sr = ref, config.sample_rate
            else:
                raise ValueError(f"{where} must be a file path, an (array, sample_rate) pair, a 1-D waveform tensor "
                                 f"at {config.sample_rate} Hz or a ReferenceEncoding (pipe.encode_reference), got "
                                 f"{type(ref).__name__}")
            try:
                wave = load_audio(array, sr, target_sr=config.sample_rate, min_duration=config.min_duration,
                                  silence_db=config.silence_db)
            except AudioError as error:
                raise AudioError(f"{where}: {error}") from error
            loaded[id(ref)] = wave
            waves.append(wave)
        return waves

    def _encode_references(self, waves: list[np.ndarray]) -> StyleEncoderOutput:
        """Style of each waveform; mels padded to the longest with masks (the encoder ignores padding)."""
        device, dtype = self._execution_device, self.style_encoder.dtype
        mels = [mel_spectrogram(torch.from_numpy(w), self.feature_config) for w in waves]  # (n_mels, T_ref) each
        num_frames = max(m.shape[-1] for m in mels)
        ref_mel = torch.stack([F.pad(m, (0, num_frames - m.shape[-1])) for m in mels]).to(device, dtype)
        ref_mask = torch.stack([
            (torch.arange(num_frames) < m.shape[-1]).float().unsqueeze(0) for m in mels
        ]).to(device, dtype)  # (B, 1, T_ref)
        return self.style_encoder(ref_mel, ref_mask)

    def _extract_f0(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """f0 (T_ref,) of each reference, by WORLD's DIO + StoneMask (the estimator the training cache uses)."""
        from melinterp.audio import extract_f0

        cache = {}
        for wave in waves:
            if id(wave) not in cache:
                cache[id(wave)] = extract_f0(wave, self.feature_config, method=REFERENCE_F0_METHOD)
        return [cache[id(wave)] for wave in waves]

    def _pitch_condition(self, f0s: list[np.ndarray], name: str) -> torch.Tensor:
        """(B, 2) `pitch_features` of each reference; an AudioError when a reference has no voiced frame."""
        for b, f0 in enumerate(f0s):
            if not np.any(f0 > 0):
                where = f"{name}[{b}]" if len(f0s) > 1 else name
                raise AudioError(f"{where}: no voiced frame found, so its pitch cannot be taken: give a recording "
                                 f"of voiced speech (not whispered, not noise)")
        return torch.from_numpy(np.stack([pitch_features(f0) for f0 in f0s])).to(self._execution_device,
                                                                                 self.text_encoder.dtype)

    def _item_generators(self, generator, batch_size: int) -> list[torch.Generator]:
        """One generator per item, each seeded from the given generator(s) (or torch's global one)."""
        if isinstance(generator, list):
            if len(generator) != batch_size:
                raise ValueError(f"generator is a list of {len(generator)} but there are {batch_size} texts")
            sources = generator
        else:
            sources = [generator] * batch_size
        for b, source in enumerate(sources):
            if source is not None and not isinstance(source, torch.Generator):
                where = f"generator[{b}]" if isinstance(generator, list) else "generator"
                raise ValueError(f"generator must be a torch.Generator or a list of them, one per text (e.g. "
                                 f"torch.Generator().manual_seed(0)), but {where} is a {type(source).__name__}")
        item_generators = []
        for source in sources:
            device = source.device if source is not None else torch.device("cpu")
            seed = int(torch.randint(0, 2**62, (1,), generator=source, device=device))
            item_generators.append(torch.Generator(device=self._execution_device).manual_seed(seed))
        return item_generators

    @staticmethod
    def _item_noise(generators: list[torch.Generator], like: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) standard normal noise, item b drawn from generators[b] at its own size."""
        return torch.cat([randn_tensor((1, *like.shape[1:]), generator=g, device=like.device, dtype=like.dtype)
                          for g in generators])


# ----------------------------------------------------------------------------------------------------------------


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


def _check_compatible(*, text_encoder, style_encoder, unet, vocoder, feature_config) -> None:
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


def _equal_length_groups(lengths: torch.Tensor) -> list[tuple[list[int], int]]:
    """[(items, T)] with the items of each length T, in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for b, length in enumerate(lengths.tolist()):
        groups.setdefault(int(length), []).append(b)
    return [(items, length) for length, items in groups.items()]


def _split_texts(texts: list[str], split: bool) -> tuple[list[str], list[range]]:
    """(sentences, spans): every text's sentences in one flat list, and text b's as ``sentences[spans[b]]``.

    A text of one sentence (or any text when `split` is False) stays as written, so it is synthesised exactly as
    without splitting. Raises `TextError` naming the text if one is not a str or is blank.
    """
    sentences, spans = [], []
    for b, text in enumerate(texts):
        check_text(text, f" (item {b} of the batch)" if len(texts) > 1 else "")
        pieces = sentences_of(text) if split else []
        if len(pieces) < 2:
            pieces = [text]
        spans.append(range(len(sentences), len(sentences) + len(pieces)))
        sentences.extend(pieces)
    return sentences, spans


def _sentence_generators(text_generators: list[torch.Generator], spans: list[range]) -> list[torch.Generator]:
    """One generator per sentence: a text of one sentence keeps its own, a longer one seeds one per sentence."""
    generators = []
    for text_generator, span in zip(text_generators, spans):
        if len(span) == 1:
            generators.append(text_generator)
            continue
        for _ in span:
            seed = int(torch.randint(0, 2**62, (1,), generator=text_generator, device=text_generator.device))
            generators.append(torch.Generator(device=text_generator.device).manual_seed(seed))
    return generators


def _join_sentences(pieces: list[torch.Tensor | None], pause: int, fill: float) -> torch.Tensor | None:
    """One text's sentences (..., T_k) joined in time, with `pause` frames of `fill` between each two: (..., sum
    T_k + pause * (K - 1)). A single sentence is returned as it is; None if any piece is None."""
    if any(piece is None for piece in pieces):
        return None
    if len(pieces) == 1:
        return pieces[0]
    gap = pieces[0].new_full((*pieces[0].shape[:-1], pause), fill)
    joined = [pieces[0]]
    for piece in pieces[1:]:
        joined += [gap, piece]
    return torch.cat(joined, dim=-1)


def _stack_encodings(encodings: list[ReferenceEncoding], device, dtype) -> StyleEncoderOutput:
    """Per-item encodings as one batch: tokens padded to the longest S, padding masked."""
    num_tokens = max(e.style_tokens.shape[1] for e in encodings)
    tokens = torch.cat([F.pad(e.style_tokens.to(device, dtype), (0, 0, 0, num_tokens - e.style_tokens.shape[1]))
                        for e in encodings])  # (B, S, C)
    masks = torch.cat([F.pad(e.token_mask.to(device), (0, num_tokens - e.token_mask.shape[1]), value=False)
                       for e in encodings])  # (B, S)
    vectors = torch.cat([e.style_vector.to(device, dtype) for e in encodings])  # (B, style_dim)
    return StyleEncoderOutput(style_tokens=tokens, token_mask=masks, style_vector=vectors)


def _select(style: StyleEncoderOutput, index: torch.Tensor) -> StyleEncoderOutput:
    return StyleEncoderOutput(style_tokens=style.style_tokens[index], token_mask=style.token_mask[index],
                              style_vector=style.style_vector[index])


def _blend(weight: float, first: torch.Tensor, second: torch.Tensor | None) -> torch.Tensor:
    """``w * first + (1 - w) * second`` for (B, D) conditions; with no second reference, the first as it is."""
    if second is None:
        return first
    if weight == 1.0:
        return first
    if weight == 0.0:
        return second
    return weight * first + (1.0 - weight) * second


def _pad_items(items: list[torch.Tensor | None], num_frames: int, fill: float) -> torch.Tensor | None:
    """Stack (n_mels, T_b) tensors into (B, n_mels, num_frames), padding time with `fill`; None if any is None."""
    if any(item is None for item in items):
        return None
    return torch.stack([F.pad(item, (0, num_frames - item.shape[-1]), value=fill) for item in items])


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and bool(np.isfinite(value))
