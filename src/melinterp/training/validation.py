"""Validation picture: a target mel beside the model's own synthesis of the same text in the same style."""

from __future__ import annotations

from pathlib import Path

import torch

from melinterp.models.length_regulator import durations_from_log, expand, generate_path


@torch.no_grad()
def synthesize_mel(models: dict[str, torch.nn.Module], scheduler, phoneme_ids: torch.Tensor, ref_mel: torch.Tensor,
                   pitch: torch.Tensor | None = None, *, num_steps: int = 10, temperature: float = 1.5, seed: int = 0) -> torch.Tensor:
    """Text + reference (+ pitch (2,), for encoders with a pitch condition) -> mel (n_mels, T) with
    ``num_steps`` reverse-ODE steps; one utterance, no guidance."""
    text_encoder, style_encoder, unet = models["text_encoder"], models["style_encoder"], models["unet"]
    device = next(unet.parameters()).device
    ids = phoneme_ids.to(device)[None]  # (1, L)
    ref = ref_mel.to(device)[None]  # (1, n_mels, T_ref)
    style = style_encoder(ref, torch.ones(1, 1, ref.shape[-1], device=device))
    pitch = pitch.to(device)[None] if text_encoder.config.pitch_dim else None  # (1, 2)
    mu_x, log_durations, x_mask = text_encoder(ids, torch.tensor([ids.shape[1]], device=device), style.style_vector,
                                               pitch)
    durations = durations_from_log(log_durations, x_mask)  # (1, L)
    y_mask = torch.ones(1, 1, int(durations.sum()), device=device)
    mu_y = expand(mu_x, generate_path(durations, y_mask))  # (1, n_mels, T)
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from melinterp.utils import save_figure

    generated = synthesize_mel(models, scheduler, item["phoneme_ids"], item["ref_mel"], item.get("pitch"))
    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    for ax, mel, title in ((axes[0], item["mel"], "target"), (axes[1], generated, f"synthesis, step {step}")):
        ax.imshow(mel.float().cpu().numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-11.5, vmax=2.0)
        ax.set_title(title)
        ax.set_ylabel("mel bin")
    axes[1].set_xlabel("frame")
    fig.tight_layout()
    return save_figure(fig, path, dpi=80)
