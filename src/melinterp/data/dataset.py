"""The training dataset: cached features of an utterance plus a style reference from the same speaker.

Each item pairs an utterance with the mel of ANOTHER utterance of the same speaker, so the style encoder learns
the voice, never the content: the reference says nothing about the words to be spoken. Which utterance serves
as reference is drawn afresh for every (seed, epoch, index), reproducibly (call :meth:`set_epoch` each epoch).

With ``reference_group_pattern`` the reference comes from a wider group: speakers whose names are equal once the
pattern is removed. A corpus from ``melinterp make-corpus`` names its speakers ``<voice>_p<pitch>_s<rate>``, so
the pattern ``_p[^_]+`` makes the reference the same voice at the same rate but at *any* of its pitches, while
the item's ``pitch`` (`melinterp.audio.pitch_features` of the utterance itself) says which pitch to speak at. The
model then has to take its pitch from ``pitch`` and its timbre from the reference: the two come apart, which is
what mode "freq" asks of it.

Items come from a feature cache built by ``melinterp preprocess`` (see :mod:`melinterp.data.features`); reading
needs only torch, safetensors and numpy. :class:`SpeechStyleCollate` pads a list of items into a batch whose
masks say which frames are real.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from melinterp.audio import pitch_features
from melinterp.data.features import FeatureCache
from melinterp.data.filelists import Utterance, read_filelist
from melinterp.utils import atomic_path, read_json_file

UNKNOWN_SPEAKER_ID = -1


def write_speakers(path: str | os.PathLike, speakers: Sequence[str]) -> None:
    """Save a speaker list (id = position) as JSON, so validation and held-out sets reuse the training ids."""
    with atomic_path(path) as temp_path:
        temp_path.write_text(json.dumps(list(speakers), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_speakers(path: str | os.PathLike) -> list[str]:
    """Load a speaker list written by :func:`write_speakers`."""
    speakers = read_json_file(path, "speaker list", kind=list)
    if not all(isinstance(name, str) for name in speakers):
        raise ValueError(f"{path}: expected a JSON list of speaker names, got {type(speakers).__name__}")
    return speakers


class SpeechStyleDataset(torch.utils.data.Dataset):
    """Utterances of a filelist with their cached features and a same-speaker style reference.

    An item is a dict:

    - ``phoneme_ids`` (L,) int64, interspersed with blanks as ``TextProcessor.encode`` gives them
    - ``mel`` (n_mels, T) float32 log-mel, ``f0`` (T,) float32 Hz (0 = unvoiced), ``energy`` (T,) float32
    - ``speaker_id`` int: position of the speaker in :attr:`speakers` (-1 for an unknown speaker, if allowed)
    - ``pitch`` (2,) float32: `melinterp.audio.pitch_features` of the utterance's f0
    - ``ref_mel`` (n_mels, T_ref) float32: mel of another utterance of the same speaker (or reference group),
      randomly cropped to ``max_ref_frames`` when longer
    - ``index``, ``ref_index`` int: dataset positions of the utterance and of its reference

    Args:
        filelist_or_utterances: a ``wav_path|speaker|text`` filelist or a sequence of :class:`Utterance`.
        cache_dir: the feature cache (``melinterp preprocess --filelist ... --cache-dir ...``).
        feature_config, text_config, f0_method: the settings the cache must have; ``None`` takes the cache's.
        speakers: the speaker list that defines ids (a list, or a JSON file from :func:`write_speakers`);
            ``None``: the sorted speakers of this set. Pass the training list to validation and held-out sets.
        allow_unknown_speakers: give speakers missing from ``speakers`` id -1 instead of raising.
        seed: seed of the reference choice and crop.
        max_ref_frames: longest reference, frames; ``None`` keeps whole references.
        compute_missing: compute (and store) features missing from the cache instead of raising; needs the
            audio and text front ends.
        reference_group_pattern: a regular expression; references come from any speaker whose name equals this
            one's once every match is removed (module docstring). ``None``: the same speaker.

    Speakers (or groups) with a single utterance cannot give a distinct reference: they are left out with a
    warning.

    Raises:
        ValueError: nothing is left, a speaker is unknown, or the cache has other settings.
        FileNotFoundError: an utterance has no cache entry (and ``compute_missing`` is off).
    """

    def __init__(self, filelist_or_utterances: str | os.PathLike | Sequence[Utterance],
                 cache_dir: str | os.PathLike, *, feature_config=None, text_config=None,
                 f0_method: str | None = None, speakers: Sequence[str] | str | os.PathLike | None = None,
                 allow_unknown_speakers: bool = False, seed: int = 0, max_ref_frames: int | None = None,
                 compute_missing: bool = False, reference_group_pattern: str | None = None):
        if isinstance(filelist_or_utterances, (str, os.PathLike)):
            utterances = read_filelist(filelist_or_utterances)
        else:
            utterances = list(filelist_or_utterances)
        if max_ref_frames is not None and (not isinstance(max_ref_frames, int) or max_ref_frames < 1):
            raise ValueError(f"max_ref_frames must be a positive number of frames or None, got {max_ref_frames!r}")

        try:
            pattern = None if reference_group_pattern is None else re.compile(reference_group_pattern)
        except re.error as error:
            raise ValueError(f"reference_group_pattern {reference_group_pattern!r} is not a regular expression: "
                             f"{error}") from None
        self._reference_group = (lambda name: name) if pattern is None else (lambda name: pattern.sub("", name))
        utterances = self._drop_single_utterance_speakers(utterances, self._reference_group)
        if isinstance(speakers, (str, os.PathLike)):
            speakers = read_speakers(speakers)
        self.speakers: list[str] = sorted({u.speaker for u in utterances}) if speakers is None else list(speakers)
        if len(set(self.speakers)) != len(self.speakers):
            raise ValueError(f"speakers must be unique, got {self.speakers}")
        speaker_ids = {name: speaker_id for speaker_id, name in enumerate(self.speakers)}
        unknown = sorted({u.speaker for u in utterances} - speaker_ids.keys())
        if unknown and not allow_unknown_speakers:
            raise ValueError(f"speakers not in the speaker list: {', '.join(unknown)}; pass the list they belong "
                             f"to, or allow_unknown_speakers=True to give them id {UNKNOWN_SPEAKER_ID}")

        self.utterances = utterances
        self.speaker_ids = [speaker_ids.get(u.speaker, UNKNOWN_SPEAKER_ID) for u in utterances]
        self.seed = seed
        self.epoch = 0
        self.max_ref_frames = max_ref_frames
        self.compute_missing = compute_missing
        self.cache = FeatureCache(cache_dir, feature_config, text_config, f0_method=f0_method)

        # reference groups (the speaker, or the pattern's wider group): item i's references are the other members
        groups = defaultdict(list)
        self._position = []  # of each utterance in its group
        for index, utterance in enumerate(utterances):
            group = self._reference_group(utterance.speaker)
            self._position.append(len(groups[group]))
            groups[group].append(index)
        self._group = [groups[self._reference_group(u.speaker)] for u in utterances]

        self._keys = [self.cache.find(utterance) for utterance in utterances]
        missing = [u for u, key in zip(utterances, self._keys) if key is None]
        if missing and not compute_missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(utterances)} utterances have no entry in the feature cache "
                f"{self.cache.cache_dir} (first: {missing[0].origin}); {self._preprocess_hint(missing[0])}"
            )

    @staticmethod
    def _drop_single_utterance_speakers(utterances: list[Utterance], group_of) -> list[Utterance]:
        if not utterances:
            raise ValueError("the dataset got no utterances")
        counts = defaultdict(int)
        for utterance in utterances:
            counts[group_of(utterance.speaker)] += 1
        lonely = sorted(name for name, count in counts.items() if count == 1)
        if lonely:
            warnings.warn(f"speakers (reference groups) with a single utterance cannot give a distinct style "
                          f"reference and are left out: {', '.join(lonely)}", stacklevel=3)
        kept = [u for u in utterances if counts[group_of(u.speaker)] > 1]
        if not kept:
            raise ValueError(f"no speaker has two or more utterances ({len(utterances)} utterances, "
                             f"{len(counts)} speakers): a style reference must be another utterance of the "
                             f"same speaker")
        return kept

    def _preprocess_hint(self, utterance: Utterance) -> str:
        filelist = utterance.filelist or "FILELIST"
        return (f"run `melinterp preprocess --filelist {filelist} --cache-dir {self.cache.cache_dir}` first "
                f"(or pass compute_missing=True)")

    def set_epoch(self, epoch: int) -> None:
        """Draw new references (and crops) for a new epoch; the same (seed, epoch) gives the same draws.

        DataLoader workers hold copies of the dataset: call this before the loader starts its workers for the
        epoch (``persistent_workers=False``, the default), or the workers keep the old epoch.
        """
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utterances)

    def _features(self, index: int) -> dict[str, torch.Tensor]:
        utterance, key = self.utterances[index], self._keys[index]
        if key is not None:
            try:
                return self.cache.load(key)
            except FileNotFoundError:
                if not self.compute_missing:
                    raise FileNotFoundError(f"{utterance.origin}: feature cache entry {self.cache.entry_path(key)} "
                                            f"is gone; {self._preprocess_hint(utterance)}") from None
        features = self.cache.compute(utterance)  # only reached with compute_missing
        self._keys[index] = self.cache.store(utterance, features)
        return features

    def _generator(self, index: int) -> torch.Generator:
        # SeedSequence mixes (seed, epoch, index) into independent streams, unlike seed + epoch + index
        state = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1, dtype=np.uint64)[0]
        return torch.Generator().manual_seed(int(state))

    def reference_index(self, index: int, generator: torch.Generator) -> int:
        """A random other utterance of the same speaker (reference group) as ``index``."""
        group = self._group[index]
        draw = int(torch.randint(len(group) - 1, (1,), generator=generator))
        return group[draw + (draw >= self._position[index])]  # skip the utterance itself

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} utterances")
        index = index % len(self)
        features = self._features(index)
        generator = self._generator(index)
        ref_index = self.reference_index(index, generator)
        ref_mel = self._features(ref_index)["mel"]  # (n_mels, T_ref)
        if self.max_ref_frames is not None and ref_mel.shape[1] > self.max_ref_frames:
            start = int(torch.randint(ref_mel.shape[1] - self.max_ref_frames + 1, (1,), generator=generator))
            ref_mel = ref_mel[:, start:start + self.max_ref_frames]
        return {
            "phoneme_ids": features["phoneme_ids"],  # (L,)
            "mel": features["mel"],  # (n_mels, T)
            "f0": features["f0"],  # (T,)
            "energy": features["energy"],  # (T,)
            "pitch": torch.from_numpy(pitch_features(features["f0"])),  # (2,)
            "speaker_id": self.speaker_ids[index],
            "ref_mel": ref_mel,  # (n_mels, T_ref)
            "index": index,
            "ref_index": ref_index,
        }


def sequence_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(B,) lengths -> (B, 1, max_length) float mask, 1 on the first ``length`` positions."""
    return (torch.arange(max_length)[None, :] < lengths[:, None]).unsqueeze(1).float()


def _pad_stack(tensors: Sequence[torch.Tensor], length: int) -> torch.Tensor:
    """Stack tensors (..., T_i) into (B, ..., length), zeros after each T_i."""
    batch = tensors[0].new_zeros((len(tensors), *tensors[0].shape[:-1], length))
    for row, tensor in zip(batch, tensors):
        row[..., :tensor.shape[-1]] = tensor
    return batch


class SpeechStyleCollate:
    """Pad :class:`SpeechStyleDataset` items into a batch.

    Returns ``phoneme_ids`` (B, L) with ``phoneme_lengths`` (B,) and ``phoneme_mask`` (B, 1, L); ``mel``
    (B, n_mels, T), ``f0`` and ``energy`` (B, T) with ``mel_lengths`` (B,) and ``mel_mask`` (B, 1, T); ``pitch``
    (B, 2); ``ref_mel``
    (B, n_mels, T_ref) with ``ref_lengths`` and ``ref_mask`` (B, 1, T_ref); ``speaker_id``, ``index`` and
    ``ref_index`` (B,). Masks are float; padded positions are 0 everywhere (0 is also the pad id).

    Args:
        pad_multiple: round T up to a multiple of this (the U-Net's down-sampling factor in time); the
            reference and the phonemes are padded to their batch maximum only.
    """

    def __init__(self, pad_multiple: int = 1):
        if not isinstance(pad_multiple, int) or pad_multiple < 1:
            raise ValueError(f"pad_multiple must be a positive integer, got {pad_multiple!r}")
        self.pad_multiple = pad_multiple

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        if not items:
            raise ValueError("cannot collate an empty list of items")
        phoneme_lengths = torch.tensor([item["phoneme_ids"].shape[0] for item in items])
        mel_lengths = torch.tensor([item["mel"].shape[1] for item in items])
        ref_lengths = torch.tensor([item["ref_mel"].shape[1] for item in items])
        max_frames = -(-int(mel_lengths.max()) // self.pad_multiple) * self.pad_multiple

        return {
            "phoneme_ids": _pad_stack([item["phoneme_ids"] for item in items], int(phoneme_lengths.max())),
            "phoneme_lengths": phoneme_lengths,
            "phoneme_mask": sequence_mask(phoneme_lengths, int(phoneme_lengths.max())),  # (B, 1, L)
            "mel": _pad_stack([item["mel"] for item in items], max_frames),  # (B, n_mels, T)
            "f0": _pad_stack([item["f0"] for item in items], max_frames),  # (B, T)
            "energy": _pad_stack([item["energy"] for item in items], max_frames),  # (B, T)
            "pitch": torch.stack([item["pitch"] for item in items]),  # (B, 2)
            "mel_lengths": mel_lengths,
            "mel_mask": sequence_mask(mel_lengths, max_frames),  # (B, 1, T)
            "ref_mel": _pad_stack([item["ref_mel"] for item in items], int(ref_lengths.max())),
            "ref_lengths": ref_lengths,
            "ref_mask": sequence_mask(ref_lengths, int(ref_lengths.max())),  # (B, 1, T_ref)
            "speaker_id": torch.tensor([item["speaker_id"] for item in items]),
            "index": torch.tensor([item["index"] for item in items]),
            "ref_index": torch.tensor([item["ref_index"] for item in items]),
        }


collate_fn = SpeechStyleCollate()
