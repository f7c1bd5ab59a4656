"""GAN training of the neural vocoder (`melinterp.models.vocos.VocosVocoder`, or a
`melinterp.models.hifigan.HiFiGANGenerator` with ``model.class``) with accelerate, in resumable pieces.

Recipe (HiFi-GAN's losses, Vocos's generator by default):

- the generator turns the log-mel of a random audio segment into a waveform; its loss is 45 x L1 between the
  log-mels of the output and of the real segment, plus the least-squares adversarial loss and 2 x feature matching
  against a multi-period and a multi-resolution discriminator (`melinterp.training.discriminators`);
- optionally (``optim.ip_weight``, ``gd_weight``, ``ptd_weight``, ``magnitude_weight``), APNet's phase and
  log-magnitude losses between the STFTs of the output and of the real segment, and (``complex_weight``) the L1 of
  the two STFTs with compressed magnitudes (`melinterp.training.phase_loss`), at the front end's framing or averaged
  over several (``optim.spectral_resolutions``);
- the discriminators learn real segments against the generator's (detached) output; with ``optim.adversarial``
  false (distillation only: the target is a teacher's waveform of the input mel, one right answer) there are none,
  and the generator learns by the mel and STFT terms alone at under half the cost a step;
- AdamW (betas 0.8, 0.99) for both, warm-up then cosine or constant learning rate.

Three kinds of input mel, two config keys apart:

- ``data.model_mels`` unset: the mel of the real segment itself (training on recordings);
- ``data.model_mels`` a safetensors file written by `melinterp.training.vocoder_mels`: for each listed recording,
  the acoustic model's own mel on the recording's frame grid (teacher-forced: aligned by monotonic alignment search
  to the recording). The generator learns to turn the model's mels into the real audio: the usual fine-tuning
  against the mismatch between the mels it was trained on and the mels it will be given (on the bundled model it
  has made the vocoder worse on them: the model card has the runs);
- both, and ``data.model_mel_fraction`` a number p: every recording of the filelist, each segment drawn from the
  model's mel with probability p where its recording has one, else from the recording's own mel. One run learns
  the recordings' mels (what `melinterp evaluate` vocodes as ground truth) and the model's (what a user hears).

``data.teacher`` (a vocoder folder, say an official HiFi-GAN converted by ``melinterp convert-hifigan``) changes what
a model-mel segment is trained towards: the teacher's waveform of that model mel instead of the recording. A model
mel is one draw of a sampler, and two draws of one recording differ almost as much as either differs from the
recording, so a loss against the recording asks the generator to average the draws; against the teacher's output of
the very mel it is given, the target is a function of the input (distillation). The teacher renders each whole
model mel once, when the data is loaded; recording segments keep the recording as their target.

With a teacher and no ``data.train_filelist``, the run distils the teacher on mels alone: every mel of the
``data.model_mels`` files (the model's, and the recordings' own written by ``melinterp vocoder-mels --own``) is
trained towards the teacher's waveform of it, and no recording is loaded but the validation ones.

Data: every recording of the filelists is loaded once and kept on the training device (int16, about 160 MB an
hour), so a step draws its batch with no loader. Each step's draws (items and offsets) come from a generator
seeded by (seed, step, process): a run stopped and resumed repeats an uninterrupted one step for step. Checkpoints
(`melinterp.training.checkpoint`: safetensors + JSON) hold the generator, both discriminators and both optimisers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from melinterp.training.checkpoint import load_state_strict
from melinterp.training.config import _build, read_config_json
from melinterp.training.phase_loss import PHASE_TERMS, complex_loss, magnitude_loss, phase_losses
from melinterp.training.run import TrainingRun
from melinterp.training.trainer import learning_rate_at
from melinterp.utils import check_number

MODEL_NAMES = ("generator", "mpd", "mrd")
TIME_CHECK_EVERY = 10  # steps between checks of --max-minutes


@dataclass
class VocoderDataConfig:
    train_filelist: str | None = None  # None only with a teacher: distillation on the model_mels alone
    val_filelist: str | None = None
    # safetensors file(s) of teacher-forced mels (`melinterp vocoder-mels`): fine-tuning on the model's mels
    model_mels: str | list[str] | None = None
    # None: only the recordings with a model mel, every segment from it; p in [0, 1]: every recording, a segment from
    # its model mel with probability p (where it has one), else from its own mel
    model_mel_fraction: float | None = None
    # a vocoder folder: model-mel segments are trained towards its output on their model mel, not the recording
    teacher: str | None = None
    segment_frames: int = 64  # frames per training segment (x hop_length samples)
    batch_size: int = 16
    val_items: int = 4  # validation recordings vocoded whole at each validation


@dataclass
class VocoderOptimConfig:
    learning_rate: float = 5e-4
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_schedule: str = "cosine"  # "constant" or "cosine" (after warm-up)
    max_steps: int = 100_000
    grad_clip: float = 1000.0
    mel_weight: float = 45.0
    feature_matching_weight: float = 2.0
    mrd_weight: float = 1.0  # weight of the multi-resolution discriminator's adversarial and matching terms
    # phase losses of the generator's output against the recording, on their STFTs (melinterp.training.phase_loss):
    # instantaneous phase, group delay, phase time difference; 0 leaves a term out (APNet weighs each 100 / 45 of
    # its mel weight's scale)
    ip_weight: float = 0.0
    gd_weight: float = 0.0
    ptd_weight: float = 0.0
    # log-magnitude L1 of the same STFTs, every bin (APNet's amplitude loss); 0 leaves it out
    magnitude_weight: float = 0.0
    # L1 of the same STFTs with magnitudes compressed to the power 0.3 (phase and magnitude at once; for a teacher's
    # targets, which are a function of the input mel); 0 leaves it out
    complex_weight: float = 0.0
    # STFT framings [n_fft, hop] (Hann window of n_fft) the terms above are averaged over; null: the front end's
    # own (1024/256) alone. Several let one run charge both time smearing (short windows) and blurred harmonics
    # (long ones), as a multi-resolution STFT loss does
    spectral_resolutions: list[list[int]] | None = None
    # false: no discriminators at all, the generator trained by the mel and STFT terms alone. Right only where the
    # target is a function of the input (a teacher's waveform of the mel, ``data.teacher``): against recordings
    # it learns the average of what the mel leaves open, and blurs
    adversarial: bool = True
    mixed_precision: str = "no"  # "no" or "bf16" (accelerate); the STFTs and mel losses stay float32
    seed: int = 0


def _spectral_resolutions(value) -> list[list[int]]:
    """``optim.spectral_resolutions`` checked: a non-empty list of [n_fft, hop] integers, 0 < hop <= n_fft."""
    pairs = value if isinstance(value, (list, tuple)) else None
    if not pairs or not all(isinstance(pair, (list, tuple)) and len(pair) == 2
                            and all(isinstance(n, int) and not isinstance(n, bool) for n in pair)
                            and 0 < pair[1] <= pair[0] for pair in pairs):
        raise ValueError(f"optim.spectral_resolutions must be a non-empty list of [n_fft, hop] integers with "
                         f"0 < hop <= n_fft (or null: the front end's framing), got {value!r}")
    return [list(pair) for pair in pairs]


@dataclass
class VocoderLogConfig:
    log_every: int = 100
    val_every: int = 2000
    checkpoint_every: int = 2000
    keep_checkpoints: int = 2


@dataclass
class VocoderTrainingConfig:
    data: VocoderDataConfig
    # the generator (`build_generator`): VocosVocoder arguments, or "class": "HiFiGANGenerator" and its own
    model: dict[str, Any] = field(default_factory=dict)
    # MultiPeriodDiscriminator / MultiResolutionDiscriminator arguments
    mpd: dict[str, Any] = field(default_factory=dict)
    mrd: dict[str, Any] = field(default_factory=dict)
    optim: VocoderOptimConfig = field(default_factory=VocoderOptimConfig)
    log: VocoderLogConfig = field(default_factory=VocoderLogConfig)
    source: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base_dir: Path | None = None) -> "VocoderTrainingConfig":
        raw = {key: value for key, value in raw.items() if not key.startswith("_")}
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown vocoder training config sections: {sorted(unknown)}")
        if "data" not in raw:
            raise ValueError("vocoder training config has no 'data' section")
        data = _build(VocoderDataConfig, raw["data"], "data")
        if isinstance(data.model_mels, str):
            data.model_mels = [data.model_mels]
        if data.model_mel_fraction is not None:
            check_number("data.model_mel_fraction", data.model_mel_fraction, lambda p: 0 <= p <= 1,
                         "a number in [0, 1] (or null: every segment from a model mel)")
            if not data.model_mels:
                raise ValueError("data.model_mel_fraction needs data.model_mels: the model's mels to draw from")
        if data.teacher is not None and not data.model_mels:
            raise ValueError("data.teacher needs data.model_mels: the teacher vocodes the model's mels (recording "
                             "segments keep the recording as their target)")
        if data.train_filelist is None:
            if data.teacher is None:
                raise ValueError("data.train_filelist is required (it may be left out only with data.teacher, to "
                                 "distil the teacher on the data.model_mels alone)")
            if data.model_mel_fraction is not None:
                raise ValueError("data.model_mel_fraction mixes recordings with their model mels: it needs "
                                 "data.train_filelist")
        if base_dir is not None:
            resolve = lambda value: value if Path(value).is_absolute() else str((base_dir / value).resolve())  # noqa
            for name in ("train_filelist", "val_filelist"):
                if getattr(data, name) is not None:
                    setattr(data, name, resolve(getattr(data, name)))
            if data.model_mels is not None:
                data.model_mels = [resolve(value) for value in data.model_mels]
            if data.teacher is not None:
                data.teacher = resolve(data.teacher)
        model = dict(raw.get("model", {}))
        if not isinstance(model.get("weight_norm", False), bool):
            raise ValueError(f"model.weight_norm must be true or false, got {model['weight_norm']!r}")
        optim = _build(VocoderOptimConfig, raw.get("optim", {}), "optim")
        optim.betas = tuple(optim.betas)
        for term in (*PHASE_TERMS, "magnitude", "complex"):
            check_number(f"optim.{term}_weight", getattr(optim, f"{term}_weight"), lambda weight: weight >= 0,
                         "a number >= 0 (0 leaves the term out)")
        if not isinstance(optim.adversarial, bool):
            raise ValueError(f"optim.adversarial must be true or false, got {optim.adversarial!r}")
        if not optim.adversarial and (data.teacher is None or data.model_mel_fraction is not None):
            raise ValueError("optim.adversarial false trains without discriminators, which only a teacher's targets "
                             "allow (data.teacher, and no data.model_mel_fraction: every segment a model mel): "
                             "against recordings the generator would learn to blur")
        if optim.spectral_resolutions is not None:
            optim.spectral_resolutions = _spectral_resolutions(optim.spectral_resolutions)
        if optim.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"optim.mixed_precision must be 'no' or 'bf16' for the vocoder, got "
                             f"{optim.mixed_precision!r}")
        return cls(data=data, model=model, mpd=dict(raw.get("mpd", {})),
                   mrd=dict(raw.get("mrd", {})), optim=optim,
                   log=_build(VocoderLogConfig, raw.get("log", {}), "log"), source=raw.get("source"))

    @classmethod
    def from_file(cls, path: str | Path) -> "VocoderTrainingConfig":
        path = Path(path)
        return cls.from_dict(read_config_json(path, "vocoder training config"), base_dir=path.parent)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------------------------
# Data: every recording on the device, segments drawn per step
# --------------------------------------------------------------------------------------------------------------

class Segments(NamedTuple):
    """One step's draw: ``mel`` (B, n_mels, F) the model mels there (None without model mels), ``audio`` (B, F * hop)
    the target (the teacher's output on the model mel in a ``from_model`` row of a bank with a teacher, else the
    recording), ``from_model`` (B,) bool: which rows take ``mel`` as their input (the others take the recording's own
    mel, which is the mel of ``audio`` there)."""

    mel: torch.Tensor | None
    audio: torch.Tensor
    from_model: torch.Tensor | None


class SegmentBank:
    """Recordings (and optionally their model mels) held on one device; draws aligned (mel, audio) segments.

    Args:
        waves: float waveforms (N_i,) at the feature sample rate.
        mels: None, or per waveform its log-mel (n_mels, N_i // hop) on that waveform's frame grid, or None where
            it has none (only with ``model_mel_fraction``).
        hop_length: samples per frame.
        device: where the bank lives.
        model_mel_fraction: None: every segment from its model mel; p: a segment from its model mel with
            probability p where its recording has one.
        teacher_waves: None, or per model mel a teacher's waveform of it (at least its frames x hop samples), None
            where there is no mel: the target of the segments drawn from that mel.
    """

    def __init__(self, waves: list[np.ndarray], mels: list[torch.Tensor | None] | None, hop_length: int, device,
                 model_mel_fraction: float | None = None, teacher_waves: list[np.ndarray | None] | None = None):
        self.hop_length = hop_length
        self.model_mel_fraction = model_mel_fraction
        self.frames = torch.tensor([len(w) // hop_length for w in waves], dtype=torch.long)
        self.audio = _pcm_bank(waves, self.frames, hop_length).to(device)  # (sum N_i,) int16
        self.audio_start = torch.cumsum(torch.cat([torch.zeros(1, dtype=torch.long), self.frames[:-1]]), 0)
        self.mels = self.has_mel = self.teacher_audio = None
        if teacher_waves is not None:
            if mels is None or len(teacher_waves) != len(mels) or any(
                    (wave is None) != (mel is None) for wave, mel in zip(teacher_waves, mels)):
                raise ValueError("teacher_waves needs one waveform for each model mel (and None where there is none)")
            for i, (wave, n) in enumerate(zip(teacher_waves, self.frames.tolist())):
                if wave is not None and len(wave) < n * hop_length:
                    raise ValueError(f"teacher waveform {i} has {len(wave)} samples but its model mel needs "
                                     f"{n * hop_length}")
            # the recordings' own audio where there is no mel: never drawn as a teacher target
            self.teacher_audio = _pcm_bank([wave if wave is not None else own for wave, own in
                                            zip(teacher_waves, waves)], self.frames, hop_length).to(device)
        if mels is not None:
            self.has_mel = torch.tensor([mel is not None for mel in mels])
            if not self.has_mel.any():
                raise ValueError("no recording has a model mel: pass mels=None to train on the recordings' own")
            if not self.has_mel.all() and model_mel_fraction is None:
                raise ValueError("every recording needs a model mel unless model_mel_fraction is set")
            n_mels = next(mel.shape[0] for mel in mels if mel is not None)
            for i, (mel, n) in enumerate(zip(mels, self.frames.tolist())):
                if mel is not None and mel.shape[-1] != n:
                    raise ValueError(f"model mel {i} has {mel.shape[-1]} frames but its recording has {n}")
            self.mels = torch.cat([torch.zeros(n_mels, n) if mel is None else mel
                                   for mel, n in zip(mels, self.frames.tolist())], dim=-1).to(device, torch.float16)

    def __len__(self) -> int:
        return len(self.frames)

    def draw(self, batch_size: int, segment_frames: int, generator: torch.Generator) -> Segments:
        """Random items at random frame offsets, and which of them take their model mel."""
        eligible = torch.nonzero(self.frames >= segment_frames).flatten()
        if len(eligible) == 0:
            raise ValueError(f"no recording is at least {segment_frames} frames long: lower data.segment_frames")
        items = eligible[torch.randint(len(eligible), (batch_size,), generator=generator)]
        room = (self.frames[items] - segment_frames + 1).double()
        offsets = (torch.rand(batch_size, generator=generator, dtype=torch.float64) * room).long()
        first_frames = (self.audio_start[items] + offsets)  # (B,) frame index in the bank
        device = self.audio.device
        sample_index = (first_frames[:, None] * self.hop_length
                        + torch.arange(segment_frames * self.hop_length)[None]).to(device)
        audio = self.audio[sample_index].float() / 32767.0  # (B, F * hop)
        if self.mels is None:
            return Segments(None, audio, None)
        frame_index = (first_frames[:, None] + torch.arange(segment_frames)[None]).to(device)
        mel = self.mels[:, frame_index].permute(1, 0, 2).float()  # (B, n_mels, F)
        from_model = self.has_mel[items]
        if self.model_mel_fraction is not None:
            from_model = from_model & (torch.rand(batch_size, generator=generator) < self.model_mel_fraction)
        from_model = from_model.to(device)
        if self.teacher_audio is not None:
            teacher = self.teacher_audio[sample_index].float() / 32767.0
            audio = torch.where(from_model[:, None], teacher, audio)
        return Segments(mel, audio, from_model)


def _pcm_bank(waves: list[np.ndarray], frames: torch.Tensor, hop_length: int) -> torch.Tensor:
    """Waveforms cut to whole frames, as 16-bit PCM end to end: (sum frames_i * hop,) int16."""
    return torch.from_numpy(np.concatenate([np.round(np.clip(w[: n * hop_length], -1, 1) * 32767).astype(np.int16)
                                            for w, n in zip(waves, frames.tolist())]))


@torch.no_grad()
def render_teacher(teacher: torch.nn.Module, mels: list[torch.Tensor | None], device) -> list[np.ndarray | None]:
    """A teacher vocoder's waveform of each whole mel (n_mels, T) -> (T * hop,) float32, None for None; on ``device``
    in the teacher's dtype, one mel at a time (cuDNN's benchmark mode off: every length would be benchmarked anew)."""
    teacher = teacher.to(device).eval()
    waves = []
    with torch.backends.cudnn.flags(enabled=True, benchmark=False):
        for mel in mels:
            waves.append(None if mel is None else teacher(mel.to(device, torch.float32)[None])[0].cpu().numpy())
    return waves


def read_model_mels(path: str | Path) -> dict[str, torch.Tensor]:
    """Teacher-forced mels written by `melinterp.training.vocoder_mels`: recording path -> (n_mels, T) float16."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model mels not found: {path}")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except SafetensorError as error:
        raise ValueError(f"{path} is not a readable safetensors file ({error}): write it with `melinterp "
                         f"vocoder-mels`") from error
    names = json.loads(metadata.get("recordings", "null") or "null")
    if not isinstance(names, list):
        raise ValueError(f"{path} has no 'recordings' metadata: write it with `melinterp vocoder-mels`")
    from melinterp.training.vocoder_mels import normalize_key

    tensors = load_file(str(path))
    return {normalize_key(name): tensors[f"mel.{i}"] for i, name in enumerate(names)}


def load_bank(filelist: str, config: VocoderTrainingConfig, feature_config, device, *,
              model_mels: dict[str, torch.Tensor] | None = None,
              teacher: torch.nn.Module | None = None) -> tuple[SegmentBank, list[str]]:
    """A `SegmentBank` of a filelist's recordings (and, for fine-tuning, their model mels, and the ``teacher``'s
    waveforms of those mels as their targets); also the paths."""
    from melinterp.audio import load_audio
    from melinterp.data import read_filelist

    from melinterp.training.vocoder_mels import recording_key

    mixing = config.data.model_mel_fraction is not None
    waves, mels, paths = [], [] if model_mels is not None else None, []
    for utterance in read_filelist(filelist):
        key = recording_key(utterance)
        if model_mels is not None:
            if key not in model_mels and not mixing:
                continue  # fine-tuning uses only the recordings that have a model mel
            mels.append(model_mels.get(key))
        waves.append(load_audio(utterance.wav_path, target_sr=feature_config.sample_rate, min_duration=0.05))
        paths.append(key)
    if mels is not None and not any(mel is not None for mel in mels):
        raise ValueError(f"{filelist}: none of its recordings has a model mel in {config.data.model_mels}")
    if not waves:
        raise ValueError(f"{filelist}: no recordings")
    if teacher is not None and mels is None:
        raise ValueError("a teacher vocodes model mels: give model_mels too")
    teacher_waves = render_teacher(teacher, mels, device) if teacher is not None else None
    return SegmentBank(waves, mels, feature_config.hop_length, device, config.data.model_mel_fraction,
                       teacher_waves), paths


def load_teacher_bank(paths: list[str], teacher: torch.nn.Module, hop_length: int, device) -> SegmentBank:
    """A `SegmentBank` of every mel of the ``paths`` (files of `melinterp vocoder-mels`), each paired with the
    teacher's waveform of it: distillation on mels alone, every segment from its mel."""
    mels = [mel for path in paths for mel in read_model_mels(path).values()]
    if not mels:
        raise ValueError(f"data.model_mels {', '.join(map(str, paths))}: no mels to distil the teacher on")
    return SegmentBank(render_teacher(teacher, mels, device), mels, hop_length, device)


# --------------------------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------------------------

@dataclass
class VocoderTrainResult:
    step: int
    stopped_by: str  # "max_steps" or "time_budget"
    steps_per_second: float
    last_losses: dict[str, float]
    checkpoint: Path
    export_dir: Path | None


def build_generator(model: dict[str, Any]) -> torch.nn.Module:
    """The ``model`` section's generator: ``class`` (default ``"VocosVocoder"``, or ``"HiFiGANGenerator"``) and that
    class's arguments; a HiFi-GAN may name one of the authors' configurations instead (``"preset": "v2"``, the rest
    overriding it). ``weight_norm`` (the trainer's, `add_weight_norm`) is not the class's and is left out here.

    Raises:
        ValueError: an unknown class or preset, or arguments the class does not take.
    """
    from melinterp.models.hifigan import HiFiGANGenerator
    from melinterp.models.vocos import VocosVocoder

    arguments = {key: value for key, value in model.items() if key not in ("class", "weight_norm")}
    name = model.get("class", "VocosVocoder")
    classes = {"VocosVocoder": VocosVocoder, "HiFiGANGenerator": HiFiGANGenerator}
    if name not in classes:
        raise ValueError(f"vocoder training config section 'model': class {name!r} is not a trainable vocoder "
                         f"({', '.join(classes)})")
    preset = arguments.pop("preset", None)
    try:
        if preset is None:
            return classes[name](**arguments)
        if name != "HiFiGANGenerator":
            raise ValueError(f"'preset' is HiFi-GAN's (the authors' v1, v2, v3), not {name}'s")
        return HiFiGANGenerator.from_preset(preset, **arguments)
    except (TypeError, ValueError) as error:  # an unknown key or a bad value: name the section
        raise ValueError(f"vocoder training config section 'model': {error}") from None


def add_weight_norm(generator: torch.nn.Module) -> torch.nn.Module:
    """Every convolution of ``generator`` reparametrised as direction times norm (weight normalisation, as the
    HiFi-GAN authors train), in place; `folded` takes it out again for saving a plain vocoder folder."""
    from torch.nn.utils.parametrizations import weight_norm

    for module in list(generator.modules()):  # listed first: each call adds a child to the module it changes
        if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
            weight_norm(module)
    return generator


def folded(generator: torch.nn.Module) -> torch.nn.Module:
    """A new generator of ``generator``'s config holding its weight-normalised convolutions' weights as plain ones
    (the module itself when it has none): what a vocoder folder holds. (A deep copy would not do: removing a
    parametrisation edits a class the copy shares with the original.)"""
    from torch.nn.utils import parametrize

    normalised = {name: module for name, module in generator.named_modules()
                  if parametrize.is_parametrized(module, "weight")}
    if not normalised:
        return generator
    state = {key: value for key, value in generator.state_dict().items() if ".parametrizations." not in key}
    with torch.no_grad():
        state.update({f"{name}.weight": module.weight.detach().clone() for name, module in normalised.items()})
    plain = type(generator).from_config(generator.config)
    plain.load_state_dict(state)
    return plain.to(next(generator.parameters()).device)


def build_vocoder_models(config: VocoderTrainingConfig) -> dict[str, torch.nn.Module]:
    from melinterp.training.discriminators import MultiPeriodDiscriminator, MultiResolutionDiscriminator

    torch.manual_seed(config.optim.seed)
    mpd = dict(config.mpd)
    for key in ("periods", "channels"):
        if key in mpd:
            mpd[key] = tuple(mpd[key])
    mrd = dict(config.mrd)
    if "resolutions" in mrd:
        mrd["resolutions"] = tuple(tuple(r) for r in mrd["resolutions"])
    models = {"generator": build_generator(config.model)}
    for name, section, kind, arguments in (("mpd", "mpd", MultiPeriodDiscriminator, mpd),
                                           ("mrd", "mrd", MultiResolutionDiscriminator, mrd)):
        try:
            models[name] = kind(**arguments)
        except TypeError as error:  # an unknown key: name the section, as `_build` does for the others
            raise ValueError(f"vocoder training config section '{section}': {error}") from None
    return models


class VocoderTrainer(TrainingRun):
    def __init__(self, config: VocoderTrainingConfig, output_dir: str | Path, *, resume: bool = False,
                 init_from: str | Path | None = None, max_minutes: float | None = None,
                 max_steps: int | None = None, export: bool = True, progress: bool = True, accelerator=None):
        from melinterp.audio import FeatureConfig, MelSpectrogram

        self._init_run(config, output_dir, resume=resume, export=export, progress=progress, max_minutes=max_minutes,
                       max_steps=max_steps, accelerator=accelerator)
        device = self.accelerator.device
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed segment shapes: let cuDNN pick the fastest convolutions

        models = build_vocoder_models(config)
        generator_config, defaults = models["generator"].config, FeatureConfig()
        # a HiFi-GAN has no STFT of its own: the losses' framing is then the front end's default (HiFi-GAN's)
        self.feature_config = FeatureConfig(
            sample_rate=generator_config.sample_rate, n_mels=generator_config.n_mels,
            hop_length=generator_config.hop_length, n_fft=getattr(generator_config, "n_fft", defaults.n_fft),
            win_length=getattr(generator_config, "win_length", defaults.win_length))
        self.mel = MelSpectrogram(self.feature_config).to(device)
        segment = config.data.segment_frames * self.feature_config.hop_length
        longest = max((n_fft for n_fft, _ in config.optim.spectral_resolutions or ()), default=0)
        if longest > segment:
            raise ValueError(f"optim.spectral_resolutions: an n_fft of {longest} is longer than a training segment "
                             f"({config.data.segment_frames} frames x {self.feature_config.hop_length} = {segment} "
                             "samples, data.segment_frames): lower it or lengthen the segments")
        # the Hann window of each of optim.spectral_resolutions' framings, made once rather than every step
        self._spectral_windows = {n_fft: torch.hann_window(n_fft, device=device)
                                  for n_fft, _ in config.optim.spectral_resolutions or ()}
        if init_from is not None:
            load_vocoder_weights(models, Path(init_from))
        if config.model.get("weight_norm", False):  # after the plain weights of --init-from, before a resume's
            add_weight_norm(models["generator"])
        model_mels = None
        if config.data.model_mels:
            model_mels = {key: mel for path in config.data.model_mels for key, mel in read_model_mels(path).items()}
        self.teacher = load_teacher(config.data.teacher, self.feature_config) if config.data.teacher else None
        if config.data.train_filelist is None:  # distillation on mels alone
            self.train_bank = load_teacher_bank(config.data.model_mels, self.teacher, self.feature_config.hop_length,
                                                device)
        else:
            self.train_bank, _ = load_bank(config.data.train_filelist, config, self.feature_config, device,
                                           model_mels=model_mels, teacher=self.teacher)
        self.val_items = []
        if config.data.val_filelist:  # mixing and distillation on mels alone validate on the recordings' own mels
            own = config.data.model_mel_fraction is not None or config.data.train_filelist is None
            self.val_items = self._validation_items(config.data.val_filelist, None if own else model_mels)
        self.teacher = None  # every target it makes is rendered: free its weights for the run

        optim = config.optim
        make = lambda params: torch.optim.AdamW(params, lr=optim.learning_rate, betas=optim.betas,  # noqa: E731
                                                weight_decay=optim.weight_decay)
        optimizers = {"generator": make(models["generator"].parameters()),
                      "discriminators": make([*models["mpd"].parameters(), *models["mrd"].parameters()])}
        prepared = self.accelerator.prepare(*models.values(), *optimizers.values())
        self.models = dict(zip(MODEL_NAMES, prepared[:3]))
        self.optimizers = dict(zip(optimizers, prepared[3:]))
        self.step = 0
        self._step_losses: dict[str, torch.Tensor] = {}

    def _validation_items(self, filelist: str, model_mels) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(input mel (n_mels, T), target audio (T * hop,)) of the first ``val_items`` validation recordings: the
        recording, or with a teacher and model mels, the teacher's output on the model mel."""
        from melinterp.audio import load_audio
        from melinterp.data import read_filelist
        from melinterp.training.vocoder_mels import recording_key

        items = []
        for utterance in read_filelist(filelist):
            if len(items) >= self.config.data.val_items:
                break
            audio = load_audio(utterance.wav_path, target_sr=self.feature_config.sample_rate, min_duration=0.05)
            audio = torch.from_numpy(audio[: len(audio) // self.feature_config.hop_length
                                           * self.feature_config.hop_length])
            key = recording_key(utterance)
            if model_mels is not None:
                if key not in model_mels:
                    continue
                mel = model_mels[key].float()
                if self.teacher is not None:
                    audio = torch.from_numpy(render_teacher(self.teacher, [mel], self.accelerator.device)[0])
            else:
                mel = self.mel(audio.to(self.accelerator.device)).cpu()
            items.append((mel, audio))
        return items

    def _checkpoint_extras(self) -> tuple[dict, dict[str, torch.optim.Optimizer], dict]:
        return {}, self.optimizers, {"step": self.step, "config": self.config.to_dict()}

    def _restore_extras(self, ema: dict, state: dict) -> None:
        self.step = int(state["step"])

    def _step_generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self._step_seed())  # the draws index CPU tensors

    def train(self) -> VocoderTrainResult:
        accelerator, config = self.accelerator, self.config
        self._start_run()
        start = window_start = time.monotonic()
        first_step, window_steps, stopped_by, last = self.step, 0, "max_steps", {}
        bar = None
        if self.progress and accelerator.is_main_process:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.max_steps, initial=self.step, desc="train-vocoder", unit="step")
        while self.step < self.max_steps:
            self._train_step()
            window_steps += 1
            if bar is not None:
                bar.update(1)
            if self.step % config.log.log_every == 0 or self.step == self.max_steps:
                elapsed = time.monotonic() - window_start
                last = {"step": self.step, "minutes": round((time.monotonic() - start) / 60, 3),
                        "lr": self.optimizers["generator"].param_groups[0]["lr"], **self._last_losses,
                        "steps_per_s": round(window_steps / elapsed, 2)}
                self._log_row("train", last)
                if bar is not None:
                    bar.set_postfix(mel=f"{last['mel']:.3f}", sps=f"{last['steps_per_s']:.1f}")
                window_steps, window_start = 0, time.monotonic()
            if self.val_items and self.step % config.log.val_every == 0:
                self.validate()
            if self.step % config.log.checkpoint_every == 0:
                self.save()
            if self.step % TIME_CHECK_EVERY == 0 and self._time_is_up(start):  # each check waits for the device
                stopped_by = "time_budget"
                break
        if bar is not None:
            bar.close()
        elapsed = time.monotonic() - start
        if self.val_items and self.step % config.log.val_every != 0:  # the last step's validation, once
            self.validate()
        checkpoint = self.save()
        export_dir = self.export_folder(self.output_dir / "final") if self.export else None
        return VocoderTrainResult(step=self.step, stopped_by=stopped_by,
                                  steps_per_second=(self.step - first_step) / elapsed if elapsed > 0 else 0.0,
                                  last_losses=last, checkpoint=checkpoint, export_dir=export_dir)

    def _train_step(self) -> None:
        from melinterp.training.discriminators import (
            discriminator_loss,
            feature_matching_loss,
            generator_adversarial_loss,
        )

        accelerator, optim = self.accelerator, self.config.optim
        generator, mpd, mrd = self.models["generator"], self.models["mpd"], self.models["mrd"]
        lr = learning_rate_at(self.step, optim)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr
        for model in self.models.values():
            model.train()

        segments = self.train_bank.draw(self.config.data.batch_size, self.config.data.segment_frames,
                                        self._step_generator())
        real = segments.audio
        with torch.no_grad():
            real_spectrum = self.mel.stft(real)  # (B, n_freq, F), the front end's framing, float32
            real_mel = self.mel.log_mel(real_spectrum)  # (B, n_mels, F)
        mel_in = real_mel
        if segments.mel is not None:
            mel_in = torch.where(segments.from_model[:, None, None], segments.mel, real_mel)
        spectral_weights = self._spectral_weights
        with accelerator.autocast():
            fake = _unwrap(generator).waveform(mel_in)  # (B, F * hop)
        gan_terms = {}  # the adversarial terms to log: none without discriminators
        if optim.adversarial:  # discriminators: real against the detached output
            with accelerator.autocast():
                (real_mpd, _), (fake_mpd, _) = mpd(real), mpd(fake.detach())
                (real_mrd, _), (fake_mrd, _) = mrd(real), mrd(fake.detach())
                loss_d = (discriminator_loss(real_mpd, fake_mpd)
                          + optim.mrd_weight * discriminator_loss(real_mrd, fake_mrd))
            self.optimizers["discriminators"].zero_grad(set_to_none=True)
            accelerator.backward(loss_d)
            grad_norm_d = accelerator.clip_grad_norm_([*mpd.parameters(), *mrd.parameters()], optim.grad_clip)
            self.optimizers["discriminators"].step()

        # outside autocast: its matmul would make the filterbank product (and so the loss) bfloat16. The spectral
        # terms compare the output's STFT, not the frames the generator predicts: those need not be a consistent STFT
        # (the bundled Vocos's carry about twice the recording's energy, which its overlap-add cancels), and what is
        # heard is the output
        fake_spectrum = self.mel.stft(fake.float())  # (B, n_freq, F)
        loss_mel = F.l1_loss(self.mel.log_mel(fake_spectrum), real_mel)
        spectral = self._spectral_terms(fake.float(), real, fake_spectrum, real_spectrum) if spectral_weights else {}
        loss_g = optim.mel_weight * loss_mel
        if optim.adversarial:
            # the generator's step: the discriminators are frozen (no weight gradients) and called unwrapped (a DDP
            # wrapper would wait for gradients that never come); the real features need no graph at all
            mpd, mrd = _unwrap(mpd), _unwrap(mrd)
            with _frozen(mpd, mrd), accelerator.autocast():
                with torch.no_grad():
                    (_, real_features_mpd), (_, real_features_mrd) = mpd(real), mrd(real)
                (fake_mpd, fake_features_mpd), (fake_mrd, fake_features_mrd) = mpd(fake), mrd(fake)
                loss_adv = (generator_adversarial_loss(fake_mpd)
                            + optim.mrd_weight * generator_adversarial_loss(fake_mrd))
                loss_fm = (feature_matching_loss(real_features_mpd, fake_features_mpd)
                           + optim.mrd_weight * feature_matching_loss(real_features_mrd, fake_features_mrd))
                loss_g = loss_adv + optim.feature_matching_weight * loss_fm + loss_g
            gan_terms = {"adversarial": loss_adv, "feature_matching": loss_fm, "discriminator": loss_d}
        for name, weight in spectral_weights.items():
            loss_g = loss_g + weight * spectral[name]
        self.optimizers["generator"].zero_grad(set_to_none=True)
        accelerator.backward(loss_g)
        grad_norm_g = accelerator.clip_grad_norm_(generator.parameters(), optim.grad_clip)
        self.optimizers["generator"].step()
        self.step += 1
        # kept on the device: reading them back every step would stall the GPU; `_last_losses` reads them when logged
        losses = {"generator": loss_g, "mel": loss_mel, **gan_terms, "grad_norm_g": torch.as_tensor(grad_norm_g)}
        if optim.adversarial:
            losses["grad_norm_d"] = torch.as_tensor(grad_norm_d)
        self._step_losses = {name: value.detach() for name, value in {**losses, **spectral}.items()}

    def _spectral_terms(self, fake: torch.Tensor, real: torch.Tensor, fake_spectrum: torch.Tensor,
                        real_spectrum: torch.Tensor) -> dict[str, torch.Tensor]:
        """The STFT terms of `_spectral_weights` (all three phase terms when one is weighted, for the log), each the
        mean over ``optim.spectral_resolutions`` (the front end's framing, whose spectra are given, when unset)."""
        weights, resolutions = self._spectral_weights, self.config.optim.spectral_resolutions
        if resolutions is None:
            pairs = [(fake_spectrum, real_spectrum)]
        else:
            def spectrum(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
                window = self._spectral_windows[n_fft].to(audio.device)
                return torch.stft(audio, n_fft, hop_length=hop, window=window, return_complex=True)

            pairs = [(spectrum(fake, n_fft, hop), spectrum(real, n_fft, hop)) for n_fft, hop in resolutions]
        terms: dict[str, list[torch.Tensor]] = {}
        for predicted, target in pairs:
            if any(name.startswith("phase_") for name in weights):
                for term, value in phase_losses(predicted, target).items():
                    terms.setdefault(f"phase_{term}", []).append(value)
            if "magnitude" in weights:
                terms.setdefault("magnitude", []).append(magnitude_loss(predicted, target))
            if "complex" in weights:
                terms.setdefault("complex", []).append(complex_loss(predicted, target))
        return {name: torch.stack(values).mean() for name, values in terms.items()}

    @property
    def _spectral_weights(self) -> dict[str, float]:
        """The STFT terms this run trains with, by their logged names (``phase_ip``, ``phase_gd``, ``phase_ptd``,
        ``magnitude``, ``complex``) -> weight, none at 0."""
        optim = self.config.optim
        weights = {**{f"phase_{term}": getattr(optim, f"{term}_weight") for term in PHASE_TERMS},
                   "magnitude": optim.magnitude_weight, "complex": optim.complex_weight}
        return {name: weight for name, weight in weights.items() if weight > 0}

    @property
    def _last_losses(self) -> dict[str, float]:
        """The last step's losses and gradient norms as numbers (one read-back from the device)."""
        values = torch.stack([value.to(self.accelerator.device).float().reshape(())
                              for value in self._step_losses.values()]).tolist()
        return {name: round(value, 5) for name, value in zip(self._step_losses, values)}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Vocode the validation recordings whole: mel L1 of the output against the real audio's mel, one wav and
        one PNG (real mel over the output's mel) in ``logs/``."""
        generator = self._unwrapped()["generator"].eval()
        device = self.accelerator.device
        errors, first = [], None
        for mel_in, real in self.val_items:
            fake = generator.waveform(mel_in[None].to(device))[0]
            real_mel, fake_mel = self.mel(real.to(device)), self.mel(fake)
            errors.append(float(F.l1_loss(fake_mel, real_mel)))
            if first is None:  # the one that is plotted and written
                first = (real_mel.cpu(), fake_mel.cpu(), fake.cpu())
        means = {"step": self.step, "val_mel_l1": round(float(np.mean(errors)), 5)}
        self._log_row("val", means)
        if self.accelerator.is_main_process and first is not None:
            from melinterp.training.validation import plot_vocoder_validation

            real_mel, fake_mel, fake = first
            stem = self.output_dir / "logs" / f"val-step-{self.step:08d}"
            write_wav(stem.with_suffix(".wav"), fake.numpy(), self.feature_config.sample_rate)
            plot_vocoder_validation(real_mel, fake_mel, stem.with_suffix(".png"), step=self.step,
                                    mel_l1=errors[0])
        return means

    def export_folder(self, directory: Path) -> Path:
        """The generator as a loadable vocoder folder (config.json + safetensors), and the discriminators beside it
        in ``discriminators.safetensors`` (for fine-tuning with ``--init-from``)."""
        if self.accelerator.is_main_process:
            from melinterp.utils import save_safetensors

            models = self._unwrapped()
            folded(models["generator"]).to("cpu").save_pretrained(directory)
            models["generator"].to(self.accelerator.device)
            weights = {f"{name}.{key}": value.detach().cpu().contiguous()
                       for name in ("mpd", "mrd") for key, value in models[name].state_dict().items()}
            save_safetensors(weights, directory / "discriminators.safetensors")
        self.accelerator.wait_for_everyone()
        return directory


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP wrapper, or the module itself."""
    return getattr(model, "module", model)


@contextlib.contextmanager
def _frozen(*models: torch.nn.Module):
    """Parameters that take no gradient inside the block (gradients still flow through them to the input)."""
    params = [p for model in models for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def load_vocoder_weights(models: dict[str, torch.nn.Module], folder: Path) -> None:
    """Start from a vocoder folder (an export of this trainer or a bundled ``vocoder/``); its discriminators too
    when ``discriminators.safetensors`` is there, else they start fresh.

    Raises:
        ValueError: the folder has no generator weights, or they do not fit the configured model.
    """
    from safetensors.torch import load_file

    weights = folder / "diffusion_pytorch_model.safetensors"
    if not weights.is_file():
        raise ValueError(f"--init-from {folder}: no diffusion_pytorch_model.safetensors (expected a vocoder folder "
                         f"written by `melinterp train-vocoder` or a pipeline's vocoder/)")
    load_state_strict(models["generator"], load_file(str(weights)), f"--init-from {weights}")
    discriminators = folder / "discriminators.safetensors"
    if discriminators.is_file():
        state = load_file(str(discriminators))
        for name in ("mpd", "mrd"):
            prefix = f"{name}."
            load_state_strict(models[name], {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                              f"--init-from {discriminators} ({name})")


def load_teacher(folder: str | Path, feature_config) -> torch.nn.Module:
    """``data.teacher``: a vocoder folder (`load_vocoder_folder`) whose mels and hop are the run's.

    Raises:
        ValueError: not a vocoder folder, or its n_mels, sample rate or hop length differ from the generator's.
    """
    from melinterp.models.vocoder import feature_mismatch, load_vocoder_folder

    if not Path(folder).is_dir():
        raise ValueError(f"data.teacher {folder}: not a folder (expected a vocoder folder, e.g. one written by "
                         f"`melinterp convert-hifigan`)")
    teacher = load_vocoder_folder(folder, torch_dtype=torch.float32)  # a float16 upload runs in float32
    mismatch = feature_mismatch(teacher, feature_config)
    if mismatch is not None:
        name, have, want = mismatch
        raise ValueError(f"data.teacher {folder}: its {name} is {have} but the generator's is {want}")
    return teacher


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> Path:
    """16-bit PCM mono wav through the standard library (training machines may lack soundfile), atomically."""
    import wave

    from melinterp.utils import atomic_path

    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with atomic_path(path) as tmp:
        with wave.open(str(tmp), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(int(sample_rate))
            handle.writeframes(pcm.tobytes())
    return Path(path)
