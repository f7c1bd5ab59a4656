"""Validation pictures: a target mel beside the model's own synthesis of the same text in the same style, and a
recording's mel beside its vocoded mel; `synthesize_mel` also makes the teacher-forced mels of vocoder fine-tuning."""

from __future__ import annotations

from pathlib import Path

import torch

from melinterp.models.length_regulator import durations_from_log, expand, generate_path
from melinterp.training.alignment import alignment_log_likelihood, maximum_path


@torch.no_grad()
def synthesize_mel(models: dict[str, torch.nn.Module], scheduler, phoneme_ids: torch.Tensor, ref_mel: torch.Tensor,
                   pitch: torch.Tensor | None = None, *, num_steps: int = 10, temperature: float = 1.5, seed: int = 0,
                   align_to: torch.Tensor | None = None) -> torch.Tensor:
    """Text + reference (+ pitch (2,), for encoders with a pitch condition) -> mel (n_mels, T) with
    ``num_steps`` reverse-ODE steps; one utterance, no guidance.

    With ``align_to`` (a recording's mel (n_mels, T)) the durations are not predicted but found by monotonic
    alignment search of the prior against that mel, as in training: the synthesis lies on the recording's frame
    grid, T frames (teacher forcing).
    """
    text_encoder, style_encoder, unet = models["text_encoder"], models["style_encoder"], models["unet"]
    device = next(unet.parameters()).device
    ids = phoneme_ids.to(device)[None]  # (1, L)
    ref = ref_mel.to(device)[None]  # (1, n_mels, T_ref)
    style = style_encoder(ref, torch.ones(1, 1, ref.shape[-1], device=device))
    pitch = pitch.to(device)[None] if text_encoder.config.pitch_dim else None  # (1, 2)
    mu_x, log_durations, x_mask = text_encoder(ids, torch.tensor([ids.shape[1]], device=device), style.style_vector,
                                               pitch)
    if align_to is None:
        durations = durations_from_log(log_durations, x_mask)  # (1, L)
        y_mask = torch.ones(1, 1, int(durations.sum()), device=device)
        path = generate_path(durations, y_mask)  # (1, L, T)
    else:
        target = align_to.to(device, mu_x.dtype)[None]  # (1, n_mels, T)
        y_mask = torch.ones(1, 1, target.shape[-1], device=device)
        path = maximum_path(alignment_log_likelihood(mu_x.float(), target.float()), x_mask.transpose(1, 2) * y_mask)
    mu_y = expand(mu_x, path.to(mu_x.dtype))  # (1, n_mels, T)
    generator = torch.Generator(device=device).manual_seed(seed)
    x = scheduler.sample_prior(mu_y, temperature=temperature, generator=generator)
    scheduler.set_timesteps(num_steps, device=device)
    for t in scheduler.timesteps:
        score = unet(torch.stack([x, mu_y], dim=1), (t * 1000).expand(1), encoder_hidden_states=style.style_tokens,
                     encoder_attention_mask=style.token_mask, class_labels=style.style_vector,
                     mask=y_mask).sample[:, 0]
        x = scheduler.step(score, t, x, mu_y).prev_sample
    return x[0].float().cpu()


def plot_validation_mel(models, scheduler, item: dict[str, torch.Tensor], path: Path, step: int) -> Path:
    generated = synthesize_mel(models, scheduler, item["phoneme_ids"], item["ref_mel"], item.get("pitch"))
    return plot_mel_pair(item["mel"], "target", generated, f"synthesis, step {step}", path)


def plot_vocoder_validation(real_mel: torch.Tensor, vocoded_mel: torch.Tensor, path: Path, step: int,
                            mel_l1: float) -> Path:
    """A recording's mel (n_mels, T) over the mel of the vocoder's output for it, as a PNG."""
    return plot_mel_pair(real_mel, "recording", vocoded_mel, f"vocoded, step {step} (mel L1 {mel_l1:.3f})", path)


def plot_mel_pair(top: torch.Tensor, top_title: str, bottom: torch.Tensor, bottom_title: str, path: Path) -> Path:
    """Two log-mels (n_mels, T), one over the other on the same colour scale, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from melinterp.utils import save_figure

    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    for ax, mel, title in ((axes[0], top, top_title), (axes[1], bottom, bottom_title)):
        ax.imshow(mel.float().cpu().numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-11.5, vmax=2.0)
        ax.set_title(title)
        ax.set_ylabel("mel bin")
    axes[1].set_xlabel("frame")
    fig.tight_layout()
    return save_figure(fig, path, dpi=80)
