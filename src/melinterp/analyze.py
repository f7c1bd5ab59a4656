"""``melinterp analyze``: run the audio and text front ends on one recording and show what they see.

Prints the mel-spectrogram shape, the f0 statistics, the energy range, the pitch-mask bins and, when text is
given, its phonemes and ids; ``--plot`` writes the mel with the f0 track and both pitch masks as a PNG.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", type=Path, help="a recording (wav, flac, ogg, ...)")
    parser.add_argument("--text", help="text to phonemise alongside the recording")
    parser.add_argument("--language", default="en-us", help="espeak-ng language of --text (default: en-us)")
    parser.add_argument("--f0-method", choices=("harvest", "dio"), default="harvest", help="pyworld f0 estimator")
    parser.add_argument("--plot", type=Path, help="write a PNG of the mel, f0 track and pitch masks here")


@dataclass
class Analysis:
    """Front-end features of one recording, all on the mel frame grid (T frames)."""

    duration: float  # seconds
    mel: np.ndarray  # (n_mels, T), natural-log magnitude
    f0: np.ndarray  # (T,) Hz, 0 = unvoiced
    energy: np.ndarray  # (T,)
    band_mask: np.ndarray  # (n_mels, T)
    harmonic_mask: np.ndarray  # (n_mels, T)
    phonemes: str | None = None
    phoneme_ids: list[int] | None = None


def analyze(audio, *, sr: int | None = None, text: str | None = None, language: str = "en-us",
            f0_method: str = "harvest") -> Analysis:
    """Run every front end on ``audio`` (a path or an array with its sample rate ``sr``)."""
    from melinterp.audio import FeatureConfig, extract_f0, frame_energy, load_audio, mel_spectrogram, pitch_mask

    config = FeatureConfig()
    wav = load_audio(audio, sr=sr, target_sr=config.sample_rate)
    mel = mel_spectrogram(wav, config).numpy()
    f0 = extract_f0(wav, config, method=f0_method)
    frames = mel.shape[-1]
    analysis = Analysis(
        duration=len(wav) / config.sample_rate,
        mel=mel,
        f0=f0,
        energy=frame_energy(wav, config),
        band_mask=pitch_mask(f0, config, kind="band", num_frames=frames).numpy(),
        harmonic_mask=pitch_mask(f0, config, kind="harmonic", num_frames=frames).numpy(),
    )
    if text is not None:
        from melinterp.text import TextConfig, TextProcessor

        processor = TextProcessor(TextConfig(language=language))
        analysis.phonemes = processor.phonemize(text)
        analysis.phoneme_ids = processor.encode(text)
    return analysis


def summary(analysis: Analysis) -> str:
    voiced = analysis.f0[analysis.f0 > 0]
    band_bins = np.flatnonzero(analysis.band_mask.max(axis=1) > 0.5)
    lines = [
        f"duration      {analysis.duration:.2f} s",
        f"mel           {analysis.mel.shape[0]} bins x {analysis.mel.shape[1]} frames, "
        f"log-magnitude {analysis.mel.min():.2f} .. {analysis.mel.max():.2f}",
    ]
    if voiced.size:
        lines.append(f"f0            median {np.median(voiced):.1f} Hz, "
                     f"range {voiced.min():.1f} .. {voiced.max():.1f} Hz, "
                     f"{voiced.size / analysis.f0.size:.0%} of frames voiced")
    else:
        lines.append("f0            no voiced frames")
    lines.append(f"energy        {analysis.energy.min():.3f} .. {analysis.energy.max():.3f}")
    lines.append(f"band mask     {band_bins.size} of {analysis.band_mask.shape[0]} mel bins: {_ranges(band_bins)}")
    if analysis.phonemes is not None:
        lines.append(f"phonemes      {analysis.phonemes}")
        lines.append(f"phoneme ids   {len(analysis.phoneme_ids)} ids (blank-interspersed): {analysis.phoneme_ids[:24]}"
                     + (" ..." if len(analysis.phoneme_ids) > 24 else ""))
    return "\n".join(lines)


def _ranges(indices: np.ndarray) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'."""
    if indices.size == 0:
        return "none"
    runs, start = [], indices[0]
    for previous, current in zip(indices[:-1], indices[1:]):
        if current != previous + 1:
            runs.append((start, previous))
            start = current
    runs.append((start, indices[-1]))
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)


def plot(analysis: Analysis, path: Path, title: str = "") -> Path:
    """Write the mel with its f0 track (as fractional mel bins) and both pitch masks side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from melinterp.audio import hz_to_mel_bin
    from melinterp.utils import save_figure

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), sharey=True)
    axes[0].imshow(analysis.mel, origin="lower", aspect="auto", cmap="magma")
    f0_bins = np.where(analysis.f0 > 0, hz_to_mel_bin(np.maximum(analysis.f0, 1.0)), np.nan)
    axes[0].plot(f0_bins, color="cyan", linewidth=1.2, label="f0")
    axes[0].legend(loc="upper right")
    axes[0].set_title("log-mel and f0")
    axes[1].imshow(analysis.band_mask, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1)
    axes[1].set_title('pitch mask "band"')
    axes[2].imshow(analysis.harmonic_mask, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1)
    axes[2].set_title('pitch mask "harmonic"')
    axes[0].set_ylabel("mel bin")
    for ax in axes:
        ax.set_xlabel("frame")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def run(args: argparse.Namespace) -> int:
    if args.plot is not None:
        from melinterp.utils import check_writable_file

        check_writable_file("--plot", args.plot, "a .png")
    analysis = analyze(args.audio, text=args.text, language=args.language, f0_method=args.f0_method)
    print(summary(analysis))
    if args.plot is not None:
        print(f"plot          {plot(analysis, args.plot, title=str(args.audio))}")
    return 0
