"""The Grad-TTS training objective with a reference-style condition.

One call turns a collated batch into the three Grad-TTS losses:

1. style:    reference mel -> style tokens (B, S, C) + global style vector (B, C)
2. text:     phoneme ids + style vector -> mu_x (B, n_mels, L), log-durations (B, 1, L)
3. align:    monotonic alignment search between mu_x and the target mel (no gradient) -> path (B, L, T)
4. losses:   duration (log-durations vs the path's), prior (target mel vs mu_y = path-expanded mu_x),
             score matching on a random segment, with some items conditioned on the learned null style
             (classifier-free guidance).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from melinterp.models.length_regulator import expand
from melinterp.training.alignment import alignment_log_likelihood, maximum_path
from melinterp.training.losses import (
    duration_loss,
    prior_loss,
    random_segments,
    score_matching_loss,
    style_dropout,
)

# Diffusion times are drawn from [T_EPS, 1]: at t -> 0 the marginal std vanishes and the score target explodes.
T_EPS = 1e-5


@dataclass
class Losses:
    duration: torch.Tensor
    prior: torch.Tensor
    diffusion: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.duration + self.prior + self.diffusion

    def as_floats(self) -> dict[str, float]:
        return {"loss": self.total.item(), "duration": self.duration.item(), "prior": self.prior.item(),
                "diffusion": self.diffusion.item()}


def compute_losses(text_encoder, style_encoder, unet, scheduler, batch: dict[str, torch.Tensor], *,
                   segment_frames: int, style_dropout_prob: float, generator: torch.Generator) -> Losses:
    phoneme_ids, phoneme_lengths = batch["phoneme_ids"], batch["phoneme_lengths"]
    y, y_mask = batch["mel"], batch["mel_mask"]  # (B, n_mels, T), (B, 1, T)
    batch_size = y.shape[0]

    # 1. style of the reference (another utterance of the same speaker); some items see the null style instead
    drop = style_dropout(style_dropout_prob, batch_size, generator).to(y.device)
    style = style_encoder(batch["ref_mel"], batch["ref_mask"], drop=drop)

    # 2. text -> prior mean in mel space and durations, always from the reference's own style, at the target's
    #    pitch when the encoder takes a pitch condition
    takes_pitch = getattr(text_encoder, "module", text_encoder).config.pitch_dim > 0  # DDP wraps it in .module
    pitch = batch["pitch"].to(y.dtype) if takes_pitch else None
    mu_x, log_durations, x_mask = text_encoder(phoneme_ids, phoneme_lengths, style.reference_vector, pitch)

    # 3. monotonic alignment, in float32 whatever the autocast
    with torch.no_grad():
        grid = alignment_log_likelihood(mu_x.float(), y.float())
        path_mask = x_mask.transpose(1, 2) * y_mask  # (B, L, T)
        path = maximum_path(grid, path_mask).detach()  # (B, L, T)
    target_log_durations = torch.log(1e-8 + path.sum(-1, keepdim=True).transpose(1, 2)) * x_mask  # (B, 1, L)

    # 4. losses
    loss_duration = duration_loss(log_durations, target_log_durations, x_mask)
    mu_y = expand(mu_x, path)  # (B, n_mels, T)
    loss_prior = prior_loss(y, mu_y, y_mask)

    y_seg, mu_seg, mask_seg = random_segments(y, mu_y, y_mask, segment_frames, generator=generator)

    t = torch.rand(batch_size, generator=generator, device=generator.device).to(y.device)
    t = t.clamp(min=T_EPS)
    noise = torch.randn(y_seg.shape, generator=generator, device=generator.device).to(y.device)
    x_t = scheduler.add_noise(y_seg, noise, t, mu_seg) * mask_seg
    _, std = scheduler.marginal(t)
    std = std.view(-1, 1, 1).to(y.dtype)
    sample = torch.stack([x_t, mu_seg], dim=1)  # (B, 2, n_mels, T_seg)
    score = unet(sample, t * 1000, encoder_hidden_states=style.style_tokens, encoder_attention_mask=style.token_mask,
                 class_labels=style.style_vector, mask=mask_seg).sample[:, 0]  # (B, n_mels, T_seg)
    loss_diffusion = score_matching_loss(score, noise, std, mask_seg)
    return Losses(duration=loss_duration, prior=loss_prior, diffusion=loss_diffusion)
