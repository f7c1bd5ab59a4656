"""Phase and magnitude losses for a vocoder: the STFT of its output against the recording's, as APNet trains its
phases (Ai & Ling 2023), weighted by the recording's magnitude.

A GAN vocoder learns phase only through the discriminators, slowly; `melinterp evaluate`'s quality section shows
that the bundled Vocos's phases cost more naturalness than its magnitudes. Three anti-wrapped errors (each
``|d - 2 pi round(d / 2 pi)|``, in [0, pi], so a phase off by 2 pi is no error) supervise them directly:

- ``ip``, instantaneous phase: the phase of each cell;
- ``gd``, group delay: the phase difference between neighbouring frequency bins of a frame (where a pulse sits in
  the frame);
- ``ptd``, phase time difference: the difference between neighbouring frames of a bin (the instantaneous
  frequency).

An absolute phase cannot be told from a mel, but its differences mostly can: the cells are weighted by the
recording's magnitude (and zero below ``floor_db`` of the segment's peak), so the errors count
where there is something to hear, and the silent cells, whose phase is noise, count for nothing.

`magnitude_loss` is APNet's amplitude loss beside them: the mel loss sees the magnitudes only through the
filterbank, which averages away the harmonics above a few kHz; this one compares every bin of the STFT.

`complex_loss` supervises phase and magnitude at once: the mean distance between the two STFTs after each cell's
magnitude is compressed (``|X| ** 0.3 * exp(i angle(X))``, as speech enhancement compares spectra). A cell's
phase error costs in proportion to its compressed magnitude, so quiet cells count a little and silent ones not at
all. It asks for the target's absolute phase, which is right only where the target is a function of the input:
distilling a teacher's waveform of a mel (``data.teacher``), not a recording.

The trainer (``optim.ip_weight``, ``gd_weight``, ``ptd_weight``, ``magnitude_weight``) applies them to the STFT of
the generator's waveform, not to the frames an STFT-frame generator predicts: APNet predicts a consistent STFT,
but a Vocos trained by the GAN alone predicts frames its overlap-add partly cancels (the bundled one's carry about
twice the recording's energy, with group delays no nearer the recording's than chance), and what is heard is the
output.
"""

from __future__ import annotations

import math

import torch

PHASE_TERMS = ("ip", "gd", "ptd")


def anti_wrapped(difference: torch.Tensor) -> torch.Tensor:
    """``abs(d - 2 pi round(d / 2 pi))``: the distance of a phase difference d to the nearest multiple of 2 pi, in
    [0, pi]."""
    return torch.abs(difference - 2 * math.pi * torch.round(difference / (2 * math.pi)))


def phase_losses(predicted: torch.Tensor, target: torch.Tensor, *, floor_db: float = -60.0) -> dict[str, torch.Tensor]:
    """``{"ip", "gd", "ptd"}`` magnitude-weighted mean anti-wrapped errors (radians) of ``predicted``'s phases
    against ``target``'s: complex STFT frames (B, n_freq, T), the same framing; float32 scalars with gradients
    through ``predicted``.

    Raises:
        ValueError: the two are not complex tensors of one shape (B, n_freq, T) with n_freq and T of at least 2.
    """
    if not (predicted.is_complex() and target.is_complex()) or predicted.shape != target.shape \
            or predicted.dim() != 3 or min(predicted.shape[1:]) < 2:
        raise ValueError(f"phase_losses needs two complex STFTs of one shape (B, n_freq >= 2, T >= 2), got "
                         f"{predicted.dtype} {tuple(predicted.shape)} and {target.dtype} {tuple(target.shape)}")
    magnitude = target.abs().float()
    audible = magnitude > magnitude.amax(dim=(1, 2), keepdim=True) * 10.0 ** (floor_db / 20.0)
    weight = magnitude * audible  # (B, n_freq, T); each error below is a weighted mean, so the scale cancels
    phase, truth = torch.angle(predicted), torch.angle(target)

    def weighted(errors: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        return (errors * cells).sum() / cells.sum().clamp(min=1e-8)

    return {"ip": weighted(anti_wrapped(phase - truth), weight),
            "gd": weighted(anti_wrapped(torch.diff(phase, dim=1) - torch.diff(truth, dim=1)),
                           torch.minimum(weight[:, 1:], weight[:, :-1])),
            "ptd": weighted(anti_wrapped(torch.diff(phase, dim=2) - torch.diff(truth, dim=2)),
                            torch.minimum(weight[..., 1:], weight[..., :-1]))}


def magnitude_loss(predicted: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-5) -> torch.Tensor:
    """Mean absolute difference of the log magnitudes (``log(|X| + eps)``) of two complex STFTs of one shape
    (B, n_freq, T): a float32 scalar with gradients through ``predicted``.

    Raises:
        ValueError: the two are not complex tensors of one shape.
    """
    if not (predicted.is_complex() and target.is_complex()) or predicted.shape != target.shape:
        raise ValueError(f"magnitude_loss needs two complex STFTs of one shape, got {predicted.dtype} "
                         f"{tuple(predicted.shape)} and {target.dtype} {tuple(target.shape)}")
    return (torch.log(predicted.abs().float() + eps) - torch.log(target.abs().float() + eps)).abs().mean()


def complex_loss(predicted: torch.Tensor, target: torch.Tensor, *, power: float = 0.3,
                 eps: float = 1e-2) -> torch.Tensor:
    """Mean absolute difference of two complex STFTs of one shape (B, n_freq, T) whose magnitudes are compressed by
    ``power`` (each cell ``X * (|X| + eps) ** (power - 1)``): a float32 scalar with gradients through ``predicted``.

    ``eps`` bounds the compression's gain near silence (``(|X| + eps) ** (power - 1)`` grows without bound as
    ``|X|`` goes to 0): with the front end's Hann window of 1024, a full-scale sine peaks at 256, speech at tens,
    and 1e-2 lies some 70 dB below speech, where nothing is heard and the gain is at most 25.

    Raises:
        ValueError: the two are not complex tensors of one shape.
    """
    if not (predicted.is_complex() and target.is_complex()) or predicted.shape != target.shape:
        raise ValueError(f"complex_loss needs two complex STFTs of one shape, got {predicted.dtype} "
                         f"{tuple(predicted.shape)} and {target.dtype} {tuple(target.shape)}")

    def compressed(spectrum: torch.Tensor) -> torch.Tensor:
        spectrum = spectrum.to(torch.complex64)
        return spectrum * (spectrum.abs() + eps) ** (power - 1.0)

    return (compressed(predicted) - compressed(target)).abs().mean()
