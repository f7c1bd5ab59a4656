"""Grad-TTS's VP-SDE with a data-dependent prior mean, solved by Euler steps (ODE) or Euler-Maruyama (SDE).

Forward process (Popov et al. 2021), t in [0, 1]:

    dX_t = 1/2 beta_t (mu - X_t) dt + sqrt(beta_t) dW_t,      beta_t = beta_min + (beta_max - beta_min) t

    X_t | X_0 ~ N(a_t X_0 + (1 - a_t) mu, sigma_t^2 I),  a_t = exp(-1/2 int_0^t beta_s ds),  sigma_t^2 = 1 - a_t^2

The model predicts the score of p_t. Sampling starts from the prior X_1 = mu + eps / temperature (Grad-TTS's
convention) and integrates backwards, either the probability-flow ODE  dX = 1/2 beta_t (mu - X - score) dt  or
the reverse SDE  dX = (1/2 (mu - X) - score) beta_t dt + sqrt(beta_t) dW-bar.

Timestep grid: left-end rule t_i = 1 - i / N, i = 0 .. N-1 (1, ..., 1/N); step i moves the sample from t_i to
t_i - 1/N with the score evaluated where the sample is. Grad-TTS's own grid, the midpoint rule t_i = 1 - (i + 0.5) / N,
feeds the network a time 1/(2N) nearer 0 than the sample's, which costs accuracy: on an analytic Gaussian score
(tests/test_schedulers.py) the ODE needs 32 steps with the left-end rule and 45 with the midpoint rule to reach
mean within 0.05 and std within 5 %. (The reverse SDE happens to favour the midpoint rule, 20 against 30 steps; the
ODE is the default, so the grid follows it.)

Nothing here imports from the rest of melinterp: schedulers are self-contained.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

TimestepLike = float | torch.Tensor

#: every scheduler by name (``melinterp synthesize --scheduler NAME``, the benchmarks, a training export's
#: ``_class_name``), filled by `register_scheduler`: a new scheduler is one new file in this folder
SCHEDULERS: dict[str, type] = {}


def register_scheduler(name: str):
    """Class decorator: list a scheduler class in `SCHEDULERS` under ``name``."""

    def register(scheduler_class: type) -> type:
        SCHEDULERS[name] = scheduler_class
        return scheduler_class

    return register


@dataclass
class GradTTSSchedulerOutput(BaseOutput):
    """Output of a Grad-TTS scheduler's `step`.

    Args:
        prev_sample: the sample moved one step towards t = 0, same shape as `sample` (e.g. `(B, n_mels, T)`).
        pred_original_sample: the data prediction E[X_0 | X_t] = mu + (y_t + sigma_t^2 score) / a_t, y_t = X_t - mu
            (useful for previews and guidance).
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None = None


class GradTTSProcessMixin:
    """The forward process both Grad-TTS solvers share: noise schedule, marginals, prior, training noise.

    Reads `self.config.beta_min` and `self.config.beta_max`.
    """

    init_noise_sigma = 1.0  # the prior's std at temperature 1 (samples are mu + eps / temperature)
    order = 1  # score evaluations per step, as diffusers pipelines count it

    @classmethod
    def _get_compatibles(cls):
        # diffusers looks `_compatibles` up in its own namespace; our solvers live here. Listing them all lets
        # `from_config` swap any two without "unexpected config attribute" warnings.
        return list(SCHEDULERS.values())

    @staticmethod
    def _check_schedule(beta_min: float, beta_max: float) -> None:
        if not beta_min >= 0.0:
            raise ValueError(f"beta_min must be >= 0, got beta_min={beta_min}.")
        if not (beta_max >= beta_min and beta_max > 0.0):
            raise ValueError(f"beta_max must be > 0 and >= beta_min={beta_min}, got beta_max={beta_max}.")

    def beta(self, t: TimestepLike) -> torch.Tensor:
        """Noise rate beta_t = beta_min + (beta_max - beta_min) t (per unit time)."""
        t = self._as_time_tensor(t)
        return self.config.beta_min + (self.config.beta_max - self.config.beta_min) * t

    def integral_beta(self, t: TimestepLike) -> torch.Tensor:
        """int_0^t beta_s ds = beta_min t + 1/2 (beta_max - beta_min) t^2."""
        t = self._as_time_tensor(t)
        return self.config.beta_min * t + 0.5 * (self.config.beta_max - self.config.beta_min) * t**2

    def marginal(self, t: TimestepLike) -> tuple[torch.Tensor, torch.Tensor]:
        """Coefficients of X_t | X_0 ~ N(a_t X_0 + (1 - a_t) mu, sigma_t^2 I).

        Args:
            t: time in [0, 1], a float or a tensor of any shape.

        Returns:
            `(mean_coef, std)` = (a_t, sigma_t), tensors shaped like `t` (float64 when `t` is a Python float).
        """
        integral = self.integral_beta(t)
        mean_coef = torch.exp(-0.5 * integral)
        std = torch.sqrt(-torch.expm1(-integral))  # = sqrt(1 - a_t^2), accurate near t = 0
        return mean_coef, std

    def half_log_snr(self, t: TimestepLike) -> torch.Tensor:
        """DPM-Solver's lambda_t = log(a_t / sigma_t) = -1/2 log(exp(int_0^t beta) - 1); +inf at t = 0."""
        return -0.5 * torch.log(torch.expm1(self.integral_beta(t)))

    def time_from_half_log_snr(self, half_log_snr: TimestepLike) -> torch.Tensor:
        """Inverse of `half_log_snr`: the t in [0, 1] with log(a_t / sigma_t) = lambda."""
        integral = torch.log1p(torch.exp(-2.0 * self._as_time_tensor(half_log_snr)))
        beta_min, beta_max = self.config.beta_min, self.config.beta_max
        # Root of 1/2 (beta_max - beta_min) t^2 + beta_min t - integral = 0, in the form that stays exact as the
        # quadratic term vanishes.
        return 2.0 * integral / (beta_min + torch.sqrt(beta_min**2 + 2.0 * (beta_max - beta_min) * integral))

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: TimestepLike, mu: torch.Tensor
    ) -> torch.Tensor:
        """Sample X_t | X_0 for training: a_t X_0 + (1 - a_t) mu + sigma_t noise.

        Args:
            original_samples: X_0, `(B, n_mels, T)` or `(B, 1, n_mels, T)`.
            noise: standard normal noise, same shape.
            timesteps: t in [0, 1], a float or a `(B,)` tensor (one time per item).
            mu: prior mean mu_y, broadcastable to `original_samples`.

        Returns:
            X_t, shaped like `original_samples`.
        """
        if noise.shape != original_samples.shape:
            raise ValueError(
                f"noise must have the shape of original_samples {tuple(original_samples.shape)}, "
                f"got {tuple(noise.shape)}."
            )
        self._check_mu(mu, original_samples)
        t = self._timestep_for(timesteps, original_samples, name="timesteps")
        mean_coef, std = self.marginal(t)
        mean_coef, std = mean_coef.to(original_samples.dtype), std.to(original_samples.dtype)
        return mean_coef * original_samples + (1.0 - mean_coef) * mu + std * noise

    def sample_prior(
        self, mu: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw X_1 = mu + eps / temperature (Grad-TTS's convention; the std is 1 / temperature).

        Args:
            mu: prior mean mu_y, e.g. `(B, n_mels, T)`.
            temperature: > 0; larger is less noisy.
            generator: torch generator (or one per item) for reproducible noise.
        """
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got temperature={temperature}.")
        eps = randn_tensor(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps / temperature

    def scale_model_input(self, sample: torch.Tensor, timestep: TimestepLike | None = None) -> torch.Tensor:
        """Identity: the Grad-TTS estimator takes X_t unscaled (kept for diffusers pipelines)."""
        return sample

    def data_prediction(
        self, score: torch.Tensor, timestep: TimestepLike, sample: torch.Tensor, mu: torch.Tensor
    ) -> torch.Tensor:
        """E[X_0 | X_t] from the score (Tweedie): mu + (y_t + sigma_t^2 score) / a_t with y_t = X_t - mu."""
        return self._data_prediction(score, self._timestep_for(timestep, sample), sample, mu)

    def _data_prediction(
        self, score: torch.Tensor, t: torch.Tensor, sample: torch.Tensor, mu: torch.Tensor
    ) -> torch.Tensor:
        mean_coef, std = self.marginal(t)  # t already shaped to broadcast over sample
        return mu + (sample - mu + std.to(sample.dtype) ** 2 * score) / mean_coef.to(sample.dtype)

    # ----- argument checks shared by both solvers -----

    @staticmethod
    def _as_time_tensor(t: TimestepLike) -> torch.Tensor:
        if isinstance(t, torch.Tensor):
            return t if t.is_floating_point() else t.double()
        return torch.tensor(float(t), dtype=torch.float64)

    @staticmethod
    def _check_num_inference_steps(num_inference_steps: int) -> int:
        try:
            if isinstance(num_inference_steps, bool):
                raise TypeError
            steps = operator.index(num_inference_steps)
        except TypeError:
            raise ValueError(
                f"num_inference_steps must be a positive integer, got {num_inference_steps!r}."
            ) from None
        if steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got num_inference_steps={steps}.")
        return steps

    @staticmethod
    def _check_mu(mu: torch.Tensor, sample: torch.Tensor) -> None:
        try:
            broadcast = torch.broadcast_shapes(mu.shape, sample.shape)
        except RuntimeError:
            broadcast = None
        if broadcast != sample.shape:
            raise ValueError(
                f"mu must broadcast to the sample's shape {tuple(sample.shape)}, got mu of shape {tuple(mu.shape)}."
            )

    @staticmethod
    def _timestep_for(timestep: TimestepLike, sample: torch.Tensor, name: str = "timestep") -> torch.Tensor:
        """A float, a 0-d tensor or a `(B,)` tensor of times in [0, 1], shaped to broadcast over `sample`."""
        if isinstance(timestep, torch.Tensor):
            t = timestep.to(device=sample.device, dtype=sample.dtype)
            if t.ndim == 1 and t.numel() == sample.shape[0]:
                t = t.view(-1, *([1] * (sample.ndim - 1)))  # (B, 1, ..., 1)
            elif t.numel() == 1:
                t = t.reshape(())
            else:
                raise ValueError(
                    f"{name} must be a float, a 0-d tensor or a (B,) tensor with B = {sample.shape[0]}, "
                    f"got a tensor of shape {tuple(timestep.shape)}."
                )
        else:
            t = torch.tensor(float(timestep), device=sample.device, dtype=sample.dtype)
        # checked where it is free: on an accelerator the check would wait for the queued work at every step
        if t.device.type == "cpu" and bool(((t < 0) | (t > 1)).any()):
            raise ValueError(f"{name} must lie in [0, 1] (continuous time), got {timestep}.")
        return t


@register_scheduler("euler")
class GradTTSScheduler(GradTTSProcessMixin, SchedulerMixin, ConfigMixin):
    """First-order Grad-TTS sampler: Euler on the probability-flow ODE, or Euler-Maruyama on the reverse SDE.

    Usage (the model returns the score of p_t)::

        scheduler.set_timesteps(50)
        x_t = scheduler.sample_prior(mu_y, temperature=1.5, generator=generator)
        for t in scheduler.timesteps:
            score = estimator(x_t, mu_y, t)
            x_t = scheduler.step(score, t, x_t, mu=mu_y).prev_sample

    Args:
        beta_min: beta_t at t = 0 (Grad-TTS: 0.05).
        beta_max: beta_t at t = 1 (Grad-TTS: 20).
        stochastic: False for the probability-flow ODE (deterministic given the prior sample), True for the
            reverse SDE (fresh noise every step; needs `generator` for reproducibility).
    """

    config_name = "scheduler_config.json"

    @register_to_config
    def __init__(self, beta_min: float = 0.05, beta_max: float = 20.0, stochastic: bool = False):
        self._check_schedule(beta_min, beta_max)
        self.num_inference_steps: int | None = None
        self.timesteps: torch.Tensor | None = None

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Set the grid t_i = 1 - i / N, i = 0 .. N-1: N descending times in (0, 1], one score evaluation each."""
        steps = self._check_num_inference_steps(num_inference_steps)
        self.num_inference_steps = steps
        self.timesteps = (1.0 - torch.arange(steps, dtype=torch.float64) / steps).to(
            device=device, dtype=torch.float32
        )

    def step(
        self,
        model_output: torch.Tensor,
        timestep: TimestepLike,
        sample: torch.Tensor,
        mu: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> GradTTSSchedulerOutput | tuple[torch.Tensor]:
        """Move `sample` from t to t - 1/N.

        Args:
            model_output: the score of p_t at `sample`, same shape as `sample`.
            timestep: current t (a float, 0-d tensor, or `(B,)` tensor), normally an entry of `self.timesteps`.
            sample: X_t, `(B, n_mels, T)` or `(B, 1, n_mels, T)`.
            mu: prior mean mu_y, broadcastable to `sample`.
            generator: noise source for the SDE (ignored by the ODE).
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
        score = model_output
        t = self._timestep_for(timestep, sample)
        dt = 1.0 / self.num_inference_steps
        beta_t = self.beta(t)

        if self.config.stochastic:
            # Euler-Maruyama on dX = (1/2 (mu - X) - score) beta_t dt + sqrt(beta_t) dW-bar, with dt < 0
            drift = (0.5 * (mu - sample) - score) * beta_t
            noise = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
            prev_sample = sample - drift * dt + torch.sqrt(beta_t * dt) * noise
        else:
            # Euler on the probability-flow ODE dX = 1/2 beta_t (mu - X - score) dt, with dt < 0
            drift = 0.5 * (mu - sample - score) * beta_t
            prev_sample = sample - drift * dt

        pred_original_sample = self._data_prediction(score, t, sample, mu)
        if not return_dict:
            return (prev_sample,)
        return GradTTSSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)


__all__ = ["SCHEDULERS", "GradTTSProcessMixin", "GradTTSScheduler", "GradTTSSchedulerOutput", "register_scheduler"]
