"""DPM-Solver++(2M) for Grad-TTS: a second-order multistep solver on y = X - mu.

y_t = X_t - mu is a standard zero-mean VP process, y_t | y_0 ~ N(alpha_t y_0, sigma_t^2 I) with alpha_t = a_t and
sigma_t = sqrt(1 - a_t^2), so DPM-Solver++ (Lu et al. 2022) applies unchanged with the data prediction

    y0_hat = (y_t + sigma_t^2 score) / alpha_t

and lambda_t = log(alpha_t / sigma_t). One step from s to t, h = lambda_t - lambda_s:

    first order (DDIM):  y_t = (sigma_t / sigma_s) y_s + alpha_t (1 - e^-h) y0_hat_s
    2M:                  the same with D = (1 + 1/(2r)) y0_hat_s - 1/(2r) y0_hat_prev,  r = h_prev / h

and, with `stochastic=True`, SDE-DPM-Solver++(2M):

    y_t = (sigma_t / sigma_s) e^-h y_s + alpha_t (1 - e^-2h) D + sigma_t sqrt(1 - e^-2h) z

Grid: N times uniform in lambda from t = 1 down to t = `t_end`, then a last step to t = 0, where sigma = 0 and the
step returns the data prediction (first order at the start, first order at the end). Measured on the analytic
Gaussian test (mean within 0.05, std within 5 %): uniform in lambda passes from N = 7 on (std error -2 % at 7,
+0.6 % at 8, +3 % at 10, +1.5 % at 20); uniform in t over the same range passes at N = 7 only by a sign change and
then diverges (std error +15 % at 8, +36 % at 16: its last steps are huge in lambda and the 2M extrapolation
overshoots), and needs >= 31 steps once its final steps are made first order. The Euler ODE needs 32.
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from .scheduling_grad_tts import GradTTSProcessMixin, GradTTSSchedulerOutput, TimestepLike


class GradTTSDPMSolverScheduler(GradTTSProcessMixin, SchedulerMixin, ConfigMixin):
    """DPM-Solver++(2M) sampler for Grad-TTS, a drop-in for `GradTTSScheduler` with ~4x fewer steps.

    Swap diffusers-style: `GradTTSDPMSolverScheduler.from_config(euler_scheduler.config)`.

    Call `step` once per entry of `timesteps`, in order (it keeps the previous data prediction); batch several
    samples along B instead of stepping them separately. `set_timesteps` resets that state.

    Args:
        beta_min: beta_t at t = 0 (Grad-TTS: 0.05).
        beta_max: beta_t at t = 1 (Grad-TTS: 20).
        stochastic: False for DPM-Solver++(2M) on the probability-flow ODE, True for SDE-DPM-Solver++(2M).
        t_end: the last time the score is evaluated at, in (0, 1); the final step goes from there to t = 0.
    """

    config_name = "scheduler_config.json"

    @register_to_config
    def __init__(self, beta_min: float = 0.05, beta_max: float = 20.0, stochastic: bool = False, t_end: float = 1e-3):
        self._check_schedule(beta_min, beta_max)
        if not 0.0 < t_end < 1.0:
            raise ValueError(f"t_end must lie in (0, 1), got t_end={t_end}.")
        self.num_inference_steps: int | None = None
        self.timesteps: torch.Tensor | None = None
        self._reset_grid([])

    def _reset_grid(self, times: list[float]) -> None:
        self._times = times  # N + 1 float64 times, the last one 0
        self._half_log_snrs = [float(self.half_log_snr(t)) for t in times]  # lambda_i; +inf at t = 0
        self._prev_data_prediction: torch.Tensor | None = None  # y0_hat at the previous grid point
        self._prev_index: int | None = None

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Set N descending times in (0, 1], uniform in lambda_t from t = 1 to t = t_end; clears solver state."""
        steps = self._check_num_inference_steps(num_inference_steps)
        lambda_start, lambda_end = self.half_log_snr(1.0), self.half_log_snr(self.config.t_end)
        half_log_snrs = torch.linspace(float(lambda_start), float(lambda_end), steps, dtype=torch.float64)
        times = self.time_from_half_log_snr(half_log_snrs).tolist()
        times[0] = 1.0  # exact, not the round trip through lambda
        self.num_inference_steps = steps
        self._reset_grid(times + [0.0])
        self.timesteps = torch.tensor(times, dtype=torch.float32, device=device)

    def _index_for_timestep(self, timestep: TimestepLike) -> int:
        """Position of `timestep` on the grid (the whole batch shares one time)."""
        if isinstance(timestep, torch.Tensor):
            if timestep.numel() == 0 or bool((timestep != timestep.reshape(-1)[0]).any()):
                raise ValueError(
                    "GradTTSDPMSolverScheduler steps the whole batch on one time grid; got per-item timesteps "
                    f"{timestep.tolist()}. Use GradTTSScheduler for per-item times."
                )
            timestep = timestep.reshape(-1)[0].item()
        grid = torch.tensor(self._times[:-1], dtype=torch.float64)
        index = int(torch.argmin((grid - float(timestep)).abs()))
        if abs(self._times[index] - float(timestep)) > 1e-6 + 1e-5 * self._times[index]:
            raise ValueError(
                f"timestep {float(timestep):.6g} is not on the grid set by set_timesteps({self.num_inference_steps}); "
                "a multistep solver steps between grid points only: iterate over scheduler.timesteps."
            )
        return index

    def step(
        self,
        model_output: torch.Tensor,
        timestep: TimestepLike,
        sample: torch.Tensor,
        mu: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> GradTTSSchedulerOutput | tuple[torch.Tensor]:
        """Move `sample` from the grid time `timestep` to the next grid time (0 after the last).

        Args:
            model_output: the score of p_t at `sample`, same shape as `sample`.
            timestep: an entry of `self.timesteps` (float, 0-d tensor, or `(B,)` tensor of equal values).
            sample: X_t, `(B, n_mels, T)` or `(B, 1, n_mels, T)`.
            mu: prior mean mu_y, broadcastable to `sample`.
            generator: noise source for `stochastic=True` (ignored otherwise).
            return_dict: return a `GradTTSSchedulerOutput` (True) or a tuple `(prev_sample,)`.
        """
        if self.num_inference_steps is None:
            raise ValueError("num_inference_steps is not set: call scheduler.set_timesteps(N) before step().")
        if model_output.shape != sample.shape:
            raise ValueError(
                f"model_output (the score) must have the sample's shape {tuple(sample.shape)}, "
                f"got {tuple(model_output.shape)}."
            )
        self._check_mu(mu, sample)
        i = self._index_for_timestep(timestep)
        s, t = self._times[i], self._times[i + 1]
        alpha_s, sigma_s = (float(c) for c in self.marginal(s))
        alpha_t, sigma_t = (float(c) for c in self.marginal(t))
        lambda_s, lambda_t = self._half_log_snrs[i], self._half_log_snrs[i + 1]

        y_s = sample - mu
        y0_hat = (y_s + sigma_s**2 * model_output) / alpha_s  # data prediction, (B, ..., n_mels, T)

        if t == 0.0:
            # sigma_t = 0, lambda_t = +inf: both update rules reduce to the data prediction
            y_t = y0_hat
        else:
            h = lambda_t - lambda_s
            if self._prev_data_prediction is not None and self._prev_index == i - 1:
                r = (lambda_s - self._half_log_snrs[i - 1]) / h
                D = (1 + 1 / (2 * r)) * y0_hat - 1 / (2 * r) * self._prev_data_prediction
            else:
                D = y0_hat  # first step: no history yet, first order
            if self.config.stochastic:
                z = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
                decay = -math.expm1(-2.0 * h)  # 1 - e^-2h
                y_t = (sigma_t / sigma_s) * math.exp(-h) * y_s + alpha_t * decay * D + sigma_t * decay**0.5 * z
            else:
                decay = -math.expm1(-h)  # 1 - e^-h
                y_t = (sigma_t / sigma_s) * y_s + alpha_t * decay * D

        self._prev_data_prediction, self._prev_index = y0_hat, i
        prev_sample = mu + y_t
        if not return_dict:
            return (prev_sample,)
        return GradTTSSchedulerOutput(prev_sample=prev_sample, pred_original_sample=mu + y0_hat)


__all__ = ["GradTTSDPMSolverScheduler"]
