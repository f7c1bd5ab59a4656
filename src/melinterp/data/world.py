"""New voices from a rendered one by WORLD analysis and resynthesis: a warped spectral envelope and scaled f0.

A waveform is taken apart once by pyworld (harvest f0, cheaptrick spectral envelope, d4c aperiodicity) and put
back together as often as needed, each time with

- the f0 contour multiplied by a factor (the pitch);
- the envelope's frequency axis scaled by a *vocal-tract-length factor* ``vtl``: the new envelope at ``f`` is the
  old one at ``vtl * f``, so a formant at F Hz moves to F / vtl, as formants scale inversely with the length of
  the tube (``vtl`` 1.2: a tract 20 % longer, formants 17 % lower, a larger speaker; 0.85: a smaller one). The
  aperiodicity is warped the same way, so the noise bands follow the formants;
- optionally a spectral tilt of ``tilt`` dB per octave about 1 kHz (positive: brighter, negative: darker), the
  slope of the glottal source, which speaker encoders hear as another voice (measured with resemblyzer:
  ``@tilt+3`` and ``@tilt-3`` of one warp are each identified as themselves).

A *warp voice* is named ``SOURCE@vtlF`` or ``SOURCE@vtlF@tiltD`` (``joe@vtl0.88``, ``slt@vtl1.10@tilt-3``): the
source voice of an engine, rendered at its neutral pitch, then warped. Its own f0 goes with its length: the source's
f0 divided by ``vtl ** F0_PER_VTL`` (a longer tract, a lower voice), and a pitch setting multiplies that.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FRAME_PERIOD = 5.0  # ms, WORLD's analysis hop
F0_FLOOR, F0_CEIL = 60.0, 800.0  # Hz, harvest's search range
F0_PER_VTL = 1.0  # a warp's own f0 is the source's / vtl ** F0_PER_VTL
TILT_PIVOT_HZ = 1000.0  # the tilt leaves this frequency's level unchanged
TILT_FLOOR_HZ = 100.0  # below this the tilt's gain stays at its value here (no boost towards 0 Hz)
VTL_RANGE = (0.5, 2.0)  # warps outside this are refused: the envelope would be mostly extrapolated

_WARP_VOICE = re.compile(r"^(?P<source>[^@]+)@vtl(?P<vtl>\d+(?:\.\d+)?)(?:@tilt(?P<tilt>[+-]\d+(?:\.\d+)?))?$")


def _pyworld():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # raised by pyworld's import
        import pyworld
    return pyworld


@dataclass(frozen=True)
class VoiceWarp:
    """How a warp voice differs from its source: vocal-tract-length factor and spectral tilt (dB per octave)."""

    vtl: float = 1.0
    tilt: float = 0.0

    @property
    def f0_factor(self) -> float:
        """The warp's own f0 relative to its source's."""
        return self.vtl ** -F0_PER_VTL

    def suffix(self) -> str:
        """The part of a voice name after the source: ``@vtl0.88`` or ``@vtl1.10@tilt-3``."""
        text = f"@vtl{self.vtl:.2f}"
        return text + (f"@tilt{self.tilt:+g}" if self.tilt else "")


def parse_voice(voice: str) -> tuple[str, VoiceWarp | None]:
    """Split ``"joe@vtl0.88@tilt+3"`` into ``("joe", VoiceWarp(0.88, 3.0))``; a plain voice gives ``(voice, None)``.

    Raises:
        ValueError: the name has an ``@`` but is not ``SOURCE@vtlF[@tiltD]``, or the factor is out of range.
    """
    if "@" not in voice:
        return voice, None
    match = _WARP_VOICE.match(voice)
    if match is None:
        raise ValueError(f"warp voice {voice!r} must read SOURCE@vtlFACTOR or SOURCE@vtlFACTOR@tilt+DB, "
                         "e.g. joe@vtl0.88 or slt@vtl1.10@tilt-3")
    vtl = float(match["vtl"])
    low, high = VTL_RANGE
    if not low <= vtl <= high:
        raise ValueError(f"warp voice {voice!r}: vocal-tract-length factor must be in {low}..{high}, got {vtl}")
    tilt = float(match["tilt"]) if match["tilt"] else 0.0
    if abs(tilt) > 12:
        raise ValueError(f"warp voice {voice!r}: tilt must be within +-12 dB per octave, got {tilt:+g}")
    return match["source"], VoiceWarp(vtl, tilt)


def warp_frequency_axis(spectrum: np.ndarray, vtl: float) -> np.ndarray:
    """Scale the frequency axis of frame-wise spectra (frames, bins), linear-frequency bins from 0 to Nyquist.

    The result at bin k is the input at bin ``vtl * k`` (interpolated linearly in log magnitude, held at the last
    bin beyond Nyquist), so a peak at bin K moves to K / vtl.
    """
    if vtl == 1.0:
        return spectrum
    bins = spectrum.shape[1]
    position = np.minimum(np.arange(bins) * vtl, bins - 1)
    lower = np.floor(position).astype(int)
    upper = np.minimum(lower + 1, bins - 1)
    weight = position - lower
    log_spectrum = np.log(np.maximum(spectrum, 1e-30))
    return np.exp(log_spectrum[:, lower] * (1 - weight) + log_spectrum[:, upper] * weight)


def tilt_gain(bins: int, sample_rate: int, tilt_db: float) -> np.ndarray:
    """Power gain per bin (bins,) of a tilt of ``tilt_db`` dB per octave about :data:`TILT_PIVOT_HZ`."""
    frequency = np.maximum(np.linspace(0.0, sample_rate / 2, bins), TILT_FLOOR_HZ)
    return 10.0 ** (tilt_db * np.log2(frequency / TILT_PIVOT_HZ) / 10.0)


@dataclass(frozen=True)
class WorldAnalysis:
    """A waveform taken apart by WORLD, ready to be resynthesised with another pitch, length and tilt.

    Attributes:
        f0: (frames,) Hz, 0 where unvoiced (harvest).
        envelope: (frames, fft_size // 2 + 1) spectral envelope, power (cheaptrick).
        aperiodicity: (frames, fft_size // 2 + 1) in [0, 1] (d4c).
        sample_rate: Hz.
        frame_period: ms between frames.
    """

    f0: np.ndarray
    envelope: np.ndarray
    aperiodicity: np.ndarray
    sample_rate: int
    frame_period: float = FRAME_PERIOD

    @classmethod
    def of(cls, audio: np.ndarray, sample_rate: int, *, f0_floor: float = F0_FLOOR, f0_ceil: float = F0_CEIL,
           frame_period: float = FRAME_PERIOD) -> WorldAnalysis:
        """Analyse a mono waveform (N,) at ``sample_rate`` Hz."""
        pyworld = _pyworld()
        signal = np.ascontiguousarray(audio, dtype=np.float64)
        if signal.ndim != 1 or signal.size == 0:
            raise ValueError(f"WORLD analysis needs a non-empty mono waveform (N,), got shape {signal.shape}")
        f0, times = pyworld.harvest(signal, sample_rate, f0_floor=f0_floor, f0_ceil=f0_ceil,
                                    frame_period=frame_period)
        envelope = pyworld.cheaptrick(signal, f0, times, sample_rate)
        aperiodicity = pyworld.d4c(signal, f0, times, sample_rate)
        return cls(f0, envelope, aperiodicity, sample_rate, frame_period)

    def synthesize(self, *, f0_factor: float = 1.0, vtl: float = 1.0, tilt: float = 0.0) -> np.ndarray:
        """Resynthesise: f0 times ``f0_factor``, envelope and aperiodicity warped by ``vtl``, tilted by ``tilt`` dB
        per octave. Returns (N',) float32 at :attr:`sample_rate`, N' within one frame of the analysed length."""
        if not (f0_factor > 0 and math.isfinite(f0_factor)):
            raise ValueError(f"pitch factor must be > 0, got {f0_factor}")
        if not vtl > 0:
            raise ValueError(f"vocal-tract-length factor must be > 0, got {vtl}")
        envelope = warp_frequency_axis(self.envelope, vtl)
        aperiodicity = np.clip(warp_frequency_axis(self.aperiodicity, vtl), 0.0, 1.0)
        if tilt:
            envelope = envelope * tilt_gain(envelope.shape[1], self.sample_rate, tilt)
        audio = _pyworld().synthesize(self.f0 * f0_factor, np.ascontiguousarray(envelope),
                                      np.ascontiguousarray(aperiodicity), self.sample_rate,
                                      frame_period=self.frame_period)
        return audio.astype(np.float32)

    def render(self, warp: VoiceWarp | None, pitch: float) -> np.ndarray:
        """The warp voice (or the source itself, ``warp=None``) at pitch factor ``pitch`` on its own f0."""
        warp = warp or VoiceWarp()
        return self.synthesize(f0_factor=pitch * warp.f0_factor, vtl=warp.vtl, tilt=warp.tilt)


# --------------------------------------------------------------------------------------------------------------
# f0 tracks: the contour a WORLD-made recording was made with, kept beside its wav
# --------------------------------------------------------------------------------------------------------------

TRACK_SUFFIX = ".f0.npy"  # t01234.wav -> t01234.f0.npy: float32 Hz, frame k at k * FRAME_PERIOD ms of the wav


def shift_track(contour: np.ndarray, start_s: float, duration_s: float,
                frame_period: float = FRAME_PERIOD) -> np.ndarray:
    """A contour (frames at k * ``frame_period`` ms) seen from ``start_s`` seconds on, for ``duration_s`` seconds:
    frame k of the result is the contour's nearest frame to ``start_s + k * period`` (0 outside it)."""
    period = frame_period / 1000.0
    frames = int(math.floor(duration_s / period)) + 1
    index = np.round(start_s / period + np.arange(frames)).astype(int)
    inside = (index >= 0) & (index < len(contour))
    return np.where(inside, np.asarray(contour, dtype=np.float32)[np.clip(index, 0, len(contour) - 1)],
                    0.0).astype(np.float32)


def track_path(wav_path) -> Path:
    """Where the f0 track of a wav lies."""
    wav_path = Path(wav_path)
    return wav_path.with_name(wav_path.stem + TRACK_SUFFIX)


def read_track(wav_path) -> np.ndarray | None:
    """The f0 track beside ``wav_path`` (float32 Hz at :data:`FRAME_PERIOD` ms frames), or None."""
    path = track_path(wav_path)
    if not path.is_file():
        return None
    track = np.load(path, allow_pickle=False)
    if track.ndim != 1 or not np.all(np.isfinite(track)) or np.any(track < 0):
        raise ValueError(f"{path}: expected a 1-D float array of f0 in Hz (0 = unvoiced), got shape {track.shape}")
    return track.astype(np.float32)


def track_at(track: np.ndarray, times_s: np.ndarray, frame_period: float = FRAME_PERIOD) -> np.ndarray:
    """The track's value at each time (nearest frame; 0 past its end)."""
    index = np.round(np.asarray(times_s) / (frame_period / 1000.0)).astype(int)
    inside = (index >= 0) & (index < len(track))
    return np.where(inside, track[np.clip(index, 0, len(track) - 1)], 0.0).astype(np.float32)
