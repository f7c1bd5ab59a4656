"""Feature cache: mel, f0, energy and phoneme ids computed once per utterance, stored as safetensors.

Training reads features, it never recomputes them. A cache folder holds::

    feature_config.json     the FeatureConfig every entry was computed with
    text_config.json        the TextConfig of the phoneme ids
    cache_config.json       the cache format, the f0 method ("harvest" or "dio") and the silence trim (trim_db)
    index.json              key -> {speaker, text, frames, phonemes, wav, sha1}
    entries/ab/ab12....safetensors   one file per utterance: mel (n_mels, T) float32, f0 (T,) Hz,
                                     energy (T,), phoneme_ids (L,) int64

Before any feature is computed, leading and trailing silence longer than ``TRIM_MARGIN`` seconds is cut to that
(nothing is added where there is less): frames more than
``trim_db`` (default 40 dB) below the loudest 10 ms frame count as silence (``trim_db`` 0 keeps recordings whole;
caches written before this setting existed are untrimmed). Recordings of any rate and of any format soundfile
reads (wav, flac, ...) are resampled to the feature sample rate.

An entry's key is the sha1 of the absolute wav path, its size and mtime, the text and both configs, so an edited
wav or text gets a new entry. A cache copied to another machine (new paths, new mtimes) still serves its entries:
there an utterance is found through ``index.json`` by its wav path relative to the cache folder and its text,
and, where the wav is present, by the sha1 of its bytes.

Reading needs only torch, safetensors and numpy; computing imports the audio and text front ends
(librosa, pyworld, phonemizer) inside the functions that need them, so a GPU machine without those can train
from a cache built elsewhere.

The ``melinterp preprocess`` command (:func:`add_arguments`, :func:`run`) builds a cache for filelists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from melinterp.data.filelists import Utterance, read_filelist
from melinterp.utils import check_writable_folder, save_safetensors, write_json

CACHE_FORMAT = 1
# melinterp.audio's trackers (not imported from there: reading must stay light), and the same with "+track": the f0
# track make-corpus keeps beside a WORLD-made recording (the contour it was made with, melinterp.data.world) where
# there is one, the tracker elsewhere
F0_TRACKERS = ("harvest", "dio")
F0_METHODS = F0_TRACKERS + tuple(f"{tracker}+track" for tracker in F0_TRACKERS)
FEATURE_CONFIG_FILE = "feature_config.json"
TEXT_CONFIG_FILE = "text_config.json"
CACHE_CONFIG_FILE = "cache_config.json"
INDEX_FILE = "index.json"
DEFAULT_TRIM_DB = 40.0  # silence: frames this far below the loudest one, at the ends of a recording
TRIM_MARGIN = 0.1  # seconds of silence kept at each end


def config_to_dict(config) -> dict[str, Any]:
    """A ConfigMixin's settings as plain JSON values, without diffusers' bookkeeping keys (``_class_name`` ...)."""
    return _public(json.loads(config.to_json_string()))


def _public(config: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in config.items() if not name.startswith("_")}


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _config_differences(stored: dict[str, Any], requested: dict[str, Any]) -> str:
    names = sorted(set(stored) | set(requested))
    return ", ".join(f"{name}: cache has {stored.get(name)!r}, requested {requested.get(name)!r}"
                     for name in names if stored.get(name) != requested.get(name))


class FeatureCache:
    """A folder of per-utterance features (see the module docstring for the layout).

    Args:
        cache_dir: the cache folder (created when the first entry is stored).
        feature_config: the ``melinterp.audio.FeatureConfig`` of the features. ``None``: the one stored in the
            cache, or the default for a new cache.
        text_config: the ``melinterp.text.TextConfig`` of the phoneme ids; ``None`` as above.
        f0_method: ``"harvest"`` (accurate) or ``"dio"`` (fast), each optionally ``+track`` (a wav's f0 track
            where it has one: see :data:`F0_METHODS`); ``None`` as above (default ``"harvest"``).
        trim_db: silence threshold of the end trim in dB below the loudest frame, 0 for no trim; ``None`` as above
            (default `DEFAULT_TRIM_DB`).


    Raises:
        ValueError: the cache holds features of other configs, another f0 method or another trim than those
            requested (a cache never mixes settings), ``f0_method`` is unknown or ``trim_db`` is negative.
    """

    def __init__(self, cache_dir: str | os.PathLike, feature_config=None, text_config=None, *,
                 f0_method: str | None = None, trim_db: float | None = None):
        self.cache_dir = Path(os.path.abspath(cache_dir))
        if f0_method is not None and f0_method not in F0_METHODS:
            raise ValueError(f"unknown f0_method {f0_method!r}; expected one of {', '.join(F0_METHODS)}")
        if trim_db is not None and not trim_db >= 0:
            raise ValueError(f"trim_db must be >= 0 dB (0: no trim), got {trim_db}")
        cache_settings = {"f0_method": f0_method, "trim_db": None if trim_db is None else float(trim_db)}
        requested = {
            FEATURE_CONFIG_FILE: None if feature_config is None else config_to_dict(feature_config),
            TEXT_CONFIG_FILE: None if text_config is None else config_to_dict(text_config),
            # only the settings asked for are compared with a stored cache's
            CACHE_CONFIG_FILE: {"format": CACHE_FORMAT, **{k: v for k, v in cache_settings.items() if v is not None}},
        }

        settings = {}
        for file_name, wanted in requested.items():
            stored_path = self.cache_dir / file_name
            stored = _public(_read_json(stored_path)) if stored_path.is_file() else None
            if file_name == CACHE_CONFIG_FILE:
                if stored is not None:
                    stored.setdefault("trim_db", 0.0)  # written before the trim existed: recordings kept whole
                    wanted = {name: value for name, value in stored.items() if name not in wanted} | wanted
                else:
                    wanted = {"f0_method": "harvest", "trim_db": DEFAULT_TRIM_DB} | wanted
            if stored is not None and wanted is not None and stored != wanted:
                raise ValueError(
                    f"the cache {self.cache_dir} was built with other settings ({file_name}: "
                    f"{_config_differences(stored, wanted)}); use another --cache-dir or delete this one"
                )
            settings[file_name] = stored if stored is not None else wanted
        self._settings = settings
        self._feature_config = feature_config
        self._text_config = text_config
        self._index_by_source: dict[tuple[str, str], tuple[str, dict]] | None = None
        self._digest: str | None = None

    # -- settings ---------------------------------------------------------------------------------------------

    def _build_config(self, file_name: str, config_class):
        """The stored settings of ``file_name`` as a ``config_class`` (its defaults for a new cache)."""
        stored = self._settings[file_name]
        config = config_class() if stored is None else config_class.from_config(stored)
        self._settings[file_name] = config_to_dict(config)
        return config

    @property
    def feature_config(self):
        """The ``FeatureConfig`` of this cache (imports ``melinterp.audio`` on first use)."""
        if self._feature_config is None:
            from melinterp.audio import FeatureConfig

            self._feature_config = self._build_config(FEATURE_CONFIG_FILE, FeatureConfig)
        return self._feature_config

    @property
    def text_config(self):
        """The ``TextConfig`` of this cache (imports ``melinterp.text`` on first use)."""
        if self._text_config is None:
            from melinterp.text import TextConfig

            self._text_config = self._build_config(TEXT_CONFIG_FILE, TextConfig)
        return self._text_config

    @property
    def f0_method(self) -> str:
        return self._settings[CACHE_CONFIG_FILE]["f0_method"]

    @property
    def trim_db(self) -> float:
        """The end-silence threshold in dB below the loudest frame (0: recordings are kept whole)."""
        return self._settings[CACHE_CONFIG_FILE]["trim_db"]

    def write_settings(self) -> None:
        """Store the configs and the f0 method in the cache folder (done before the first entry is written)."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        files = {
            FEATURE_CONFIG_FILE: config_to_dict(self.feature_config),
            TEXT_CONFIG_FILE: config_to_dict(self.text_config),
            CACHE_CONFIG_FILE: self._settings[CACHE_CONFIG_FILE],
        }
        for file_name, settings in files.items():
            if not (self.cache_dir / file_name).is_file():
                write_json(self.cache_dir / file_name, settings)

    # -- keys and lookup --------------------------------------------------------------------------------------

    def key(self, utterance: Utterance) -> str:
        """sha1 of the wav's absolute path, size and mtime, the text and the cache settings.

        Raises:
            FileNotFoundError: the wav does not exist (names the filelist line).
        """
        try:
            stat = utterance.wav_path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"{utterance.origin}: wav file not found: {utterance.wav_path}") from None
        identity = {"wav": str(utterance.wav_path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                    "text": utterance.text, "settings": self._settings_digest()}
        return hashlib.sha1(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def _settings_digest(self) -> str:
        """sha1 of both configs and the f0 method, computed once (keys are made for every utterance)."""
        if self._digest is None:
            settings = {
                # the stored dicts where there are some: finding an entry must not import the front ends
                "feature_config": self._settings[FEATURE_CONFIG_FILE] or config_to_dict(self.feature_config),
                "text_config": self._settings[TEXT_CONFIG_FILE] or config_to_dict(self.text_config),
                "f0_method": self.f0_method,
            }
            if self.trim_db:  # absent when untrimmed: the keys of caches from before the trim stay valid
                settings["trim_db"] = self.trim_db
            self._digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        return self._digest

    def entry_path(self, key: str) -> Path:
        return self.cache_dir / "entries" / key[:2] / f"{key}.safetensors"

    def _relative_wav(self, utterance: Utterance) -> str:
        return Path(os.path.relpath(utterance.wav_path, self.cache_dir)).as_posix()

    def index(self) -> dict[str, dict]:
        """The contents of ``index.json`` (empty when there is none)."""
        path = self.cache_dir / INDEX_FILE
        return _read_json(path) if path.is_file() else {}

    def find(self, utterance: Utterance) -> str | None:
        """The key of a stored entry for ``utterance``, or ``None`` if the cache has none.

        Tries the exact key first. Failing that (the wav was copied or moved along with the cache, or is absent
        on this machine), looks the utterance up in ``index.json`` by wav path relative to the cache folder and
        text, and accepts the entry when the wav is absent or has the recorded sha1.
        """
        if utterance.wav_path.is_file():
            key = self.key(utterance)
            if self.entry_path(key).is_file():
                return key
        if self._index_by_source is None:
            self._index_by_source = {(record["wav"], record["text"]): (key, record)
                                     for key, record in self.index().items()}
        found = self._index_by_source.get((self._relative_wav(utterance), utterance.text))
        if found is None:
            return None
        key, record = found
        if not self.entry_path(key).is_file():
            return None
        if utterance.wav_path.is_file() and _file_sha1(utterance.wav_path) != record["sha1"]:
            return None
        return key

    # -- reading ----------------------------------------------------------------------------------------------

    def load(self, key: str) -> dict[str, torch.Tensor]:
        """The stored features of entry ``key``: ``mel`` (n_mels, T), ``f0`` (T,), ``energy`` (T,),
        ``phoneme_ids`` (L,) int64."""
        from safetensors.torch import load_file

        return load_file(self.entry_path(key))

    def record(self, key: str) -> dict[str, Any]:
        """The index record of entry ``key``, read from the entry file's header."""
        from safetensors import safe_open

        with safe_open(self.entry_path(key), framework="pt") as entry:
            metadata = entry.metadata()
        return {"speaker": metadata["speaker"], "text": metadata["text"], "frames": int(metadata["frames"]),
                "phonemes": int(metadata["phonemes"]), "wav": metadata["wav"], "sha1": metadata["sha1"]}

    def get(self, utterance: Utterance) -> dict[str, torch.Tensor]:
        """The features of ``utterance``: loaded when cached, else computed and stored."""
        key = self.find(utterance)
        if key is not None:
            return self.load(key)
        features = self.compute(utterance)
        self.store(utterance, features)
        return features

    # -- computing and writing --------------------------------------------------------------------------------

    def compute(self, utterance: Utterance) -> dict[str, torch.Tensor]:
        """Compute every feature of ``utterance`` (audio and phoneme ids), without storing it."""
        from melinterp.text import TextProcessor

        features = self.compute_audio(utterance)
        features["phoneme_ids"] = torch.tensor(TextProcessor(self.text_config).encode(utterance.text),
                                               dtype=torch.long)
        return features

    def compute_audio(self, utterance: Utterance) -> dict[str, torch.Tensor]:
        """``mel`` (n_mels, T) log-mel, ``f0`` (T,) Hz (0 = unvoiced) and ``energy`` (T,) of the wav."""
        from melinterp.audio import frame_energy, load_audio, mel_spectrogram
        from melinterp.data.engines import speech_span

        config = self.feature_config
        audio = load_audio(utterance.wav_path, target_sr=config.sample_rate, min_duration=config.min_duration,
                           silence_db=config.silence_db)  # (N,)
        start = 0  # samples cut from the front (an f0 track is on the untrimmed timeline)
        if self.trim_db:
            begin, end = speech_span(audio, config.sample_rate, threshold_db=-self.trim_db, margin=TRIM_MARGIN)
            start = max(0, begin)
            audio = audio[start:end]
        mel = torch.as_tensor(mel_spectrogram(audio, config), dtype=torch.float32)  # (n_mels, T)
        f0 = torch.as_tensor(self._f0(audio, utterance, start / config.sample_rate), dtype=torch.float32)  # (T,)
        energy = torch.as_tensor(frame_energy(audio, config), dtype=torch.float32)  # (T,)
        if not mel.shape[1] == f0.shape[0] == energy.shape[0]:
            raise RuntimeError(f"{utterance.origin}: feature lengths disagree: mel {mel.shape[1]} frames, "
                               f"f0 {f0.shape[0]}, energy {energy.shape[0]}")
        return {"mel": mel, "f0": f0, "energy": energy}

    def _f0(self, audio, utterance: Utterance, offset: float = 0.0):
        """f0 on the mel frame grid: the wav's f0 track for a ``+track`` method where there is one (read from
        ``offset`` seconds into the wav, where the trimmed audio begins), else tracked."""
        from melinterp.audio import _world_to_mel_frames, extract_f0

        config = self.feature_config
        tracker, _, use_track = self.f0_method.partition("+")
        if use_track:
            from melinterp.data.world import read_track, track_at

            track = read_track(utterance.wav_path)
            if track is not None:  # sampled where extract_f0's WORLD frames lie (k * hop), then on mel frames
                num_frames = config.num_frames(len(audio))
                times = offset + np.arange(num_frames + 1) * config.hop_length / config.sample_rate
                return _world_to_mel_frames(track_at(track, times), num_frames)
        return extract_f0(audio, config, method=tracker)

    def store(self, utterance: Utterance, features: dict[str, torch.Tensor], key: str | None = None) -> str:
        """Write ``features`` as the entry of ``utterance`` (atomically) and return its key."""
        key = key or self.key(utterance)
        self.write_settings()
        metadata = {
            "speaker": utterance.speaker, "text": utterance.text, "frames": str(features["mel"].shape[1]),
            "phonemes": str(features["phoneme_ids"].shape[0]), "wav": self._relative_wav(utterance),
            "sha1": _file_sha1(utterance.wav_path),
        }
        save_safetensors({name: tensor.contiguous() for name, tensor in features.items()}, self.entry_path(key),
                         metadata)
        return key


# -- building a cache -----------------------------------------------------------------------------------------


@dataclass
class CacheBuildReport:
    """What :func:`build_cache` did: entries computed and reused, and the utterances skipped with their error."""

    computed: int = 0
    reused: int = 0
    bad: list[tuple[Utterance, str]] = field(default_factory=list)


def _phoneme_ids(utterances: Sequence[Utterance], text_config, batch_size: int, progress: bool
                 ) -> tuple[dict[str, list[int]], dict[str, str]]:
    """Phoneme ids of every distinct text, phonemised in batches (one backend call per batch).

    Returns ``(ids by text, error by text)``; a batch that fails is redone text by text to find the culprit.
    """
    from tqdm.auto import tqdm

    from melinterp.text import TextProcessor

    processor = TextProcessor(text_config)
    texts = list(dict.fromkeys(utterance.text for utterance in utterances))
    ids, errors = {}, {}
    for start in tqdm(range(0, len(texts), batch_size), desc="phonemising", unit="batch",
                      disable=not (progress and texts), file=sys.stderr):
        batch = texts[start:start + batch_size]
        try:
            phonemes = processor.phonemize_batch(batch)
            ids.update((text, processor.encode_phonemes(p)) for text, p in zip(batch, phonemes, strict=True))
        except ValueError:
            for text in batch:
                try:
                    ids[text] = processor.encode(text)
                except ValueError as error:
                    errors[text] = str(error)
    return ids, errors


def _compute_entry(cache: FeatureCache, task: tuple[Utterance, str, list[int]]
                   ) -> tuple[dict | None, str | None]:
    """Compute and store one entry; returns ``(index record, None)`` or ``(None, error message)``."""
    utterance, key, phoneme_ids = task
    try:
        features = cache.compute_audio(utterance)
        features["phoneme_ids"] = torch.tensor(phoneme_ids, dtype=torch.long)
        cache.store(utterance, features, key)
        return cache.record(key), None
    except (ValueError, OSError, RuntimeError) as error:
        return None, f"{type(error).__name__}: {error}"


_worker_cache: FeatureCache | None = None


def _start_worker(cache_dir: Path, feature_config, text_config, f0_method: str, trim_db: float) -> None:
    global _worker_cache
    torch.set_num_threads(1)  # one process per core already
    _worker_cache = FeatureCache(cache_dir, feature_config, text_config, f0_method=f0_method, trim_db=trim_db)


def _compute_entry_in_worker(task: tuple[Utterance, str, list[int]]) -> tuple[dict | None, str | None]:
    return _compute_entry(_worker_cache, task)


def build_cache(utterances: Sequence[Utterance], cache_dir: str | os.PathLike, feature_config=None,
                text_config=None, *, f0_method: str | None = None, trim_db: float | None = None,
                jobs: int | None = None, progress: bool = True, skip_bad: bool = False,
                phonemize_batch_size: int = 500) -> CacheBuildReport:
    """Compute and store the features of every utterance not cached yet, and update ``index.json``.

    Phonemisation runs in this process, in batches; audio features (mel, f0, energy) run in ``jobs`` worker
    processes (default: all cores; 1 computes in this process). Finished entries are kept, so an interrupted
    run continues where it stopped.

    Args:
        utterances: what to cache (e.g. from :func:`read_filelist`).
        cache_dir, feature_config, text_config, f0_method, trim_db: as for :class:`FeatureCache`.
        jobs: worker processes for the audio features.
        progress: show a tqdm bar on stderr.
        skip_bad: collect failing utterances in the report instead of raising at the first one.
        phonemize_batch_size: texts per phonemizer call.

    Raises:
        ValueError: an utterance fails (its wav is missing, unreadable, too short or silent, or its text cannot be
            phonemised; the message names the filelist line) and ``skip_bad`` is off; or the cache has other
            settings (see :class:`FeatureCache`).
    """
    from tqdm.auto import tqdm

    cache = FeatureCache(cache_dir, feature_config, text_config, f0_method=f0_method, trim_db=trim_db)
    cache.write_settings()
    report = CacheBuildReport()
    index = cache.index()

    def fail(utterance: Utterance, message: str) -> None:
        if not skip_bad:
            raise ValueError(f"{utterance.origin}: {message} (--skip-bad / skip_bad=True skips failing utterances)")
        report.bad.append((utterance, message))

    todo: dict[str, Utterance] = {}  # key -> utterance; an utterance listed twice is computed once
    for utterance in utterances:
        if not utterance.wav_path.is_file():
            fail(utterance, f"wav file not found: {utterance.wav_path}")
            continue
        key = cache.find(utterance)
        if key is None:
            todo.setdefault(cache.key(utterance), utterance)
        else:
            if key not in index:  # stored by FeatureCache.get, not by a build
                index[key] = cache.record(key)
            report.reused += 1

    phoneme_ids, text_errors = _phoneme_ids(list(todo.values()), cache.text_config, phonemize_batch_size,
                                            progress)
    tasks = []
    for key, utterance in todo.items():
        if utterance.text in text_errors:
            fail(utterance, f"cannot encode the text: {text_errors[utterance.text]}")
        else:
            tasks.append((utterance, key, phoneme_ids[utterance.text]))

    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    pool = None
    if jobs == 1:
        results = (_compute_entry(cache, task) for task in tasks)
    else:
        import multiprocessing

        # fork: workers start at once and inherit the imported front ends; each writes its own entries
        pool = multiprocessing.get_context("fork").Pool(
            jobs, initializer=_start_worker,
            initargs=(cache.cache_dir, cache.feature_config, cache.text_config, cache.f0_method, cache.trim_db))
        results = pool.imap(_compute_entry_in_worker, tasks, chunksize=4)
    try:
        with tqdm(total=len(tasks), desc="computing features", unit="utt", disable=not (progress and tasks),
                  file=sys.stderr) as bar:
            for (utterance, key, _), (record, error) in zip(tasks, results):
                if error is not None:
                    fail(utterance, error)
                else:
                    index[key] = record
                    report.computed += 1
                bar.update()
    finally:
        if pool is not None:
            pool.terminate()
        write_json(cache.cache_dir / INDEX_FILE, index)
    return report


# -- the `melinterp preprocess` command -----------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filelist", action="append", required=True, metavar="FILE",
                        help="a wav_path|speaker|text filelist (repeat for several)")
    parser.add_argument("--cache-dir", required=True, metavar="DIR", help="the feature cache folder")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes for the audio features (default: all cores)")
    parser.add_argument("--f0-method", choices=F0_METHODS, default="harvest",
                        help="pyworld f0 estimator: harvest (accurate, default) or dio (fast); with +track, the "
                             "f0 track make-corpus keeps beside a WORLD-made wav wherever there is one")
    parser.add_argument("--language", default="en-us", help="espeak-ng language of the texts (default: en-us)")
    parser.add_argument("--trim-db", type=float, metavar="DB",
                        help="cut silence at both ends of each recording down to 0.1 s, counting as silence what is "
                             f"DB below its loudest 10 ms (default {DEFAULT_TRIM_DB:g} for a new cache, the cache's "
                             "own for an existing one; 0 keeps recordings whole)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip utterances that fail and list them at the end instead of stopping")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from melinterp.audio import FeatureConfig
    from melinterp.text import TextConfig

    check_writable_folder("--cache-dir", args.cache_dir)
    utterances = [utterance for filelist in args.filelist for utterance in read_filelist(filelist)]
    report = build_cache(utterances, args.cache_dir, FeatureConfig(), TextConfig(language=args.language),
                         f0_method=args.f0_method, trim_db=args.trim_db, jobs=args.jobs, progress=not args.quiet,
                         skip_bad=args.skip_bad)
    print(f"cache {args.cache_dir}: {report.computed} computed, {report.reused} already cached, "
          f"{len(report.bad)} skipped")
    for utterance, message in report.bad:
        print(f"  skipped {utterance.origin}: {message}", file=sys.stderr)
    return 0
