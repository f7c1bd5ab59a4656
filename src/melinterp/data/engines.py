"""The speech engines behind the synthetic corpus: espeak-ng and flite, run as command-line programs.

Each engine turns text into a float32 waveform at 22050 Hz with three controls:

- espeak: voice ``language+variant`` (``en-us+m3``); pitch = ``-p`` 0..99 (50 = the voice's own pitch);
  rate = ``-s`` words per minute.
- flite: voice ``kal16``, ``awb``, ``rms`` or ``slt``; pitch = a factor on the voice's own f0 (1.0 = its own);
  rate = ``duration_stretch`` (> 1 is slower).

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

1. explicit paths (``--espeak-bin``, ``--espeak-data``, ``--flite-bin``);
2. an unpacked Debian package tree (``--deb-root DIR``: ``dpkg -x pkg.deb DIR`` for each of :data:`DEB_PACKAGES`),
   whose library folders also go on ``LD_LIBRARY_PATH``, so the engines run on a machine without a package
   manager (checked on a bare Ubuntu 24.04 image with Debian 12 packages);
3. the environment variables ``MELINTERP_ESPEAK``, ``MELINTERP_ESPEAK_DATA``, ``MELINTERP_FLITE``;
4. ``espeak-ng`` and ``flite`` on ``PATH``.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import wave
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
    library_path: tuple[str, ...] = ()
    origin: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def resolve(cls, *, espeak_bin: str | os.PathLike | None = None, espeak_data: str | os.PathLike | None = None,
                flite_bin: str | os.PathLike | None = None, deb_root: str | os.PathLike | None = None,
                environ: dict[str, str] | None = None) -> EnginePaths:
        """Find the programs: explicit arguments, then ``deb_root``, then env variables, then ``PATH``."""
        environ = os.environ if environ is None else environ
        found: dict[str, str | None] = {"espeak_bin": None, "espeak_data": None, "flite_bin": None}
        origin: dict[str, str] = {}
        library_path: tuple[str, ...] = ()

        def offer(key, value, where):
            if found[key] is None and value:
                found[key] = str(value)
                origin[key] = where

        offer("espeak_bin", espeak_bin, "--espeak-bin")
        offer("espeak_data", espeak_data, "--espeak-data")
        offer("flite_bin", flite_bin, "--flite-bin")
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
        offer("espeak_bin", shutil.which("espeak-ng"), "PATH")
        offer("flite_bin", shutil.which("flite"), "PATH")
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
        binary = {"espeak": self.espeak_bin, "flite": self.flite_bin}[engine]
        key = f"{engine}_bin"
        program = {"espeak": "espeak-ng", "flite": "flite"}[engine]
        if binary is None:
            raise EngineNotFoundError(f"{program} was not found on PATH. {INSTALL_HINT}")
        if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
            raise EngineNotFoundError(
                f"{program} not found at {binary} (from {self.origin.get(key, '?')}): no executable file there. "
                f"{INSTALL_HINT}"
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


def trim_silence(audio: np.ndarray, sample_rate: int, *, threshold_db: float = -40.0,
                 margin: float = SILENCE_MARGIN, pad: bool = True) -> np.ndarray:
    """Keep the speech plus ``margin`` seconds each side; with ``pad``, pad with zeros where the engine left less.

    Speech is where the 10 ms frame RMS is within ``threshold_db`` of the loudest frame.
    """
    frame = max(1, int(0.01 * sample_rate))
    n_frames = len(audio) // frame
    if n_frames == 0:
        return audio
    rms = np.sqrt(np.mean(audio[: n_frames * frame].reshape(n_frames, frame).astype(np.float64) ** 2, axis=1))
    level = 20 * np.log10(rms + 1e-10)
    loud = np.flatnonzero(level > level.max() + threshold_db)
    start, stop = loud[0] * frame, min(len(audio), (loud[-1] + 1) * frame)
    keep = int(round(margin * sample_rate))
    kept = audio[max(0, start - keep): stop + keep]
    if not pad:
        return kept.astype(np.float32)
    return np.pad(kept, (max(0, keep - start), max(0, stop + keep - len(audio)))).astype(np.float32)


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
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # raised by pyworld's import
        import pyworld

    if factor <= 0:
        raise ValueError(f"pitch factor must be > 0, got {factor}")
    signal = np.ascontiguousarray(audio, dtype=np.float64)
    f0, times = pyworld.harvest(signal, sample_rate, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=frame_period)
    envelope = pyworld.cheaptrick(signal, f0, times, sample_rate)
    aperiodicity = pyworld.d4c(signal, f0, times, sample_rate)
    shifted = pyworld.synthesize(f0 * factor, envelope, aperiodicity, sample_rate, frame_period=frame_period)
    return shifted.astype(np.float32)


# --------------------------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------------------------


class SpeechEngine:
    """Common interface: ``synthesize`` returns float32 audio at :data:`SAMPLE_RATE`."""

    name: str = ""

    def __init__(self, paths: EnginePaths | None = None):
        self.paths = paths if paths is not None else EnginePaths.resolve()
        self.paths.require(self.name)

    def version(self) -> str:
        raise NotImplementedError

    def voices(self) -> list[str]:
        raise NotImplementedError

    def render(self, text: str, voice: str, *, pitch: float, rate: float) -> np.ndarray:
        """Raw engine output, resampled to :data:`SAMPLE_RATE` (no trimming, normalisation or gain)."""
        raise NotImplementedError

    def synthesize(self, text: str, voice: str, *, pitch: float, rate: float, gain_db: float = 0.0) -> np.ndarray:
        """Speak ``text``: (N,) float32 at 22050 Hz, silences trimmed to 0.1 s, peak-normalised, then ``gain_db``."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text to synthesise must be a non-empty string, got {text!r}")
        audio = self.render(text, voice, pitch=pitch, rate=rate)
        return apply_gain(trim_silence(audio, SAMPLE_RATE), gain_db)

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
    AMPLITUDE = 50

    def __init__(self, paths: EnginePaths | None = None):
        super().__init__(paths)
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

    def render(self, text: str, voice: str, *, pitch: float = 50, rate: float = 175) -> np.ndarray:
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

    def render(self, text: str, voice: str, *, pitch: float = 1.0, rate: float = 1.0) -> np.ndarray:
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


ENGINES: dict[str, type[SpeechEngine]] = {"espeak": EspeakEngine, "flite": FliteEngine}


def make_engine(name: str, paths: EnginePaths | None = None) -> SpeechEngine:
    """The engine called ``name`` (``"espeak"`` or ``"flite"``); raises if its program is missing."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; expected one of: {', '.join(ENGINES)}")
    return ENGINES[name](paths)


def pitch_control(engine: str, voice: str) -> str:
    """How the pitch setting acts for this voice: ``"engine"`` (the engine's own knob) or ``"world"``."""
    if engine == "flite":
        return FLITE_VOICES[voice].pitch_control if voice in FLITE_VOICES else "engine"
    return "engine"
