"""DPM-Solver(2M) and DPM-Solver++(2M) for Grad-TTS: second-order multistep solvers on y = X - mu.

y_t = X_t - mu is a standard zero-mean VP process, y_t | y_0 ~ N(alpha_t y_0, sigma_t^2 I) with alpha_t = a_t and
sigma_t = sqrt(1 - a_t^2), so DPM-Solver (Lu et al. 2022) applies unchanged, with lambda_t = log(alpha_t / sigma_t),
the noise and the data predictions

    eps_hat = -sigma_t score,        y0_hat = (y_t + sigma_t^2 score) / alpha_t

and one step from s to t, h = lambda_t - lambda_s, r = h_prev / h (first order, r = inf, on the first step):

    "dpmsolver"   (noise):  y_t = (alpha_t / alpha_s) y_s - sigma_t (e^h - 1) E,
                            E = (1 + 1/(2r)) eps_hat_s - 1/(2r) eps_hat_prev
    "dpmsolver++" (data):   y_t = (sigma_t / sigma_s) y_s + alpha_t (1 - e^-h) D,
                            D = (1 + 1/(2r)) y0_hat_s - 1/(2r) y0_hat_prev

Both are DDIM at first order; they differ in what the 2M rule extrapolates. `stochastic=True` is SDE-DPM-Solver++(2M)

    y_t = (sigma_t / sigma_s) e^-h y_s + alpha_t (1 - e^-2h) D + sigma_t sqrt(1 - e^-2h) z

whatever `algorithm_type` (in noise form the SDE solver diverges at few steps: std +1200 % on the Gaussian below at
3-6 steps). Grid: N times uniform in lambda from t = 1 down to t = `t_end`, then a last step to t = 0, where sigma = 0
and the step returns the data prediction at t_end.

Why the ODE default is "dpmsolver" with t_end = 0.02 (melinterp issue 7). With the bundled model, the 3 texts of
examples/benchmarks/bench.py, ref high_f4.wav, seed 0, mel-MCD (dB) to the 100-step Euler output; Euler reaches
3.99 / 2.34 / 1.19 / 0.45 at 4 / 10 / 25 / 50 steps::

    N                               5      6      7      8     10     15     20
    dpmsolver++, t_end = 1e-3    57.8   19.0     -    6.34   3.30   1.43   1.00    (the old default)
    dpmsolver++, t_end = 0.02      -     7.02    -    3.02   1.82   1.02   0.80
    dpmsolver,   t_end = 1e-3    22.4    6.27    -    1.42   0.81   0.61   0.59
    dpmsolver,   t_end = 0.02     5.59   2.20   1.14   0.88   0.66   0.60   0.61    (the default: beats Euler-25 from 7;
                                                                                 0.56 at 50)

- Every variant converges to Euler's limit (200 steps: DPM-Solver++ to Euler 0.28 dB, Euler 100 to 200 steps 0.26 dB);
  the defect is few-step only.
- The network's data prediction at t ~ 1 is noise: alpha_1 = 0.0067 turns a small score error into y0_hat 167 dB
  from the final mel (values -55..+48 against a log-mel range of about -15..+2.5), and it stays poor until t ~ 0.6
  (22 dB at 0.75). DPM-Solver++'s 2M step extrapolates y0_hat from the previous grid point, so at few steps it
  carries that error with a weight alpha_t (1 - e^-h) / (2r) ~ 0.5 into a step that lands near t = 0 (4 steps: mels
  -41..+16). The noise prediction has no 1/alpha factor and is smooth at high noise, so extrapolating it is safe.
- Below t ~ 0.02 (lambda > 2.65) the score net no longer denoises (trained with Grad-TTS's sigma^2 loss weight:
  forward-noised mels come back unchanged), so the old t_end = 1e-3 spent 22 % of the lambda range, and of the
  steps, where nothing happens; t_end = 0.02 (0.01: 1.33 at 7, 1.08 at 8; 0.03: 1.23 at 7) puts them where the
  mel forms. Euler's own last evaluation is at t = 1/N (0.01 at 100 steps).
- Tried and dropped: first-order steps where the history is unsafe (second step first order: dpmsolver++ 4.87 at 6,
  3.25 at 8; last step first order: no change); grids uniform in t, in sigma^(1/7) (Karras) or blends of t and
  lambda (worse for both algorithms at every N); clipping y0_hat to the log-mel range [-11.5, 3] (helps
  dpmsolver++ at 3-5 steps, but the model's mels reach -15: 1.04 -> 1.61 dB at 20 steps); treating the prior
  sample as x at t < 1 (diffusers' lambda_min_clipped: 1.3 dB from the Euler limit at t = 0.95); one more step
  from t_end to t = 1e-3 instead of returning y0_hat (does not converge as N grows: its h stays fixed).

The analytic Gaussian of tests/test_schedulers.py (mean within 0.05, std within 5 %) ranks them the other way: its
data prediction is exact and smooth, and its std needs the steps near t = 0 that the model does not use. There
"dpmsolver++" with t_end = 1e-3 passes from N = 7 (std error -2 % at 7, +0.6 % at 8, +3 % at 10), "dpmsolver" with
t_end = 0.02 from N = 16 (-4.4 %; returning y0_hat at t = 0.02 shrinks the std by 2.7 % at any N), the SDE from
N = 10, Euler's ODE from 32. A grid uniform in t instead of lambda fails there too (std +15 % at 8, +36 % at 16:
its last steps are huge in lambda and the 2M extrapolation overshoots).
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from .scheduling_grad_tts import GradTTSProcessMixin, GradTTSSchedulerOutput, TimestepLike, register_scheduler

ALGORITHM_TYPES = ("dpmsolver", "dpmsolver++")  # extrapolate the noise prediction / the data prediction
DEFAULT_T_END_NOISE, DEFAULT_T_END_DATA = 0.02, 1e-3  # t_end=None picks one (module docstring)


@register_scheduler("dpm")
class GradTTSDPMSolverScheduler(GradTTSProcessMixin, SchedulerMixin, ConfigMixin):
    """DPM-Solver(2M) / DPM-Solver++(2M) sampler for Grad-TTS, a drop-in for `GradTTSScheduler` with ~3x fewer steps.

    Swap diffusers-style: `GradTTSDPMSolverScheduler.from_config(euler_scheduler.config)`.

    Call `step` once per entry of `timesteps`, in order (it keeps the previous prediction); batch several
    samples along B instead of stepping them separately. `set_timesteps` resets that state.

    Args:
        beta_min: beta_t at t = 0 (Grad-TTS: 0.05).
        beta_max: beta_t at t = 1 (Grad-TTS: 20).
        stochastic: False for the probability-flow ODE, True for SDE-DPM-Solver++(2M) (data prediction always).
        t_end: the last time the score is evaluated at, in (0, 1); the final step goes from there to t = 0. None
            (default): 0.02 for "dpmsolver" on the ODE, 1e-3 for "dpmsolver++" and the SDE (module docstring).
        algorithm_type: what the ODE's 2M rule extrapolates: "dpmsolver" (default) the noise prediction,
            "dpmsolver++" the data prediction (with t_end=None, the solver of melinterp <= issue 7).
    """

    config_name = "scheduler_config.json"

    @register_to_config
    def __init__(
        self,
        beta_min: float = 0.05,
        beta_max: float = 20.0,
        stochastic: bool = False,
        t_end: float | None = None,
        algorithm_type: str = "dpmsolver",
    ):
        self._check_schedule(beta_min, beta_max)
        if algorithm_type not in ALGORITHM_TYPES:
            raise ValueError(
                f"algorithm_type must be one of {', '.join(map(repr, ALGORITHM_TYPES))}, got {algorithm_type!r}."
            )
        if t_end is not None and not 0.0 < t_end < 1.0:
            raise ValueError(f"t_end must lie in (0, 1) or be None (the solver's default), got t_end={t_end}.")
        self.num_inference_steps: int | None = None
        self.timesteps: torch.Tensor | None = None
        self._reset_grid([])

    def _reset_grid(self, times: list[float]) -> None:
        self._times = times  # N + 1 float64 times, the last one 0
        self._half_log_snrs = [float(self.half_log_snr(t)) for t in times]  # lambda_i; +inf at t = 0
        self._prev_prediction: torch.Tensor | None = None  # eps_hat or y0_hat at the previous grid point
        self._prev_index: int | None = None

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Set N descending times in (0, 1], uniform in lambda_t from t = 1 to t = t_end; clears solver state."""
        steps = self._check_num_inference_steps(num_inference_steps)
        lambda_start, lambda_end = self.half_log_snr(1.0), self.half_log_snr(self.t_end)
        half_log_snrs = torch.linspace(float(lambda_start), float(lambda_end), steps, dtype=torch.float64)
        times = self.time_from_half_log_snr(half_log_snrs).tolist()
        times[0] = 1.0  # exact, not the round trip through lambda
        self.num_inference_steps = steps
        self._reset_grid(times + [0.0])
        self.timesteps = torch.tensor(times, dtype=torch.float32, device=device)

    def _index_for_timestep(self, timestep: TimestepLike) -> int:
        """Position of `timestep` on the grid (the whole batch shares one time).

        A timestep on an accelerator is taken to be the next grid point, unchecked: reading it back would wait for
        all queued work at every step (diffusers' multistep schedulers count steps the same way).
        """
        if isinstance(timestep, torch.Tensor) and timestep.device.type != "cpu":
            index = 0 if self._prev_index is None else self._prev_index + 1
            if index >= self.num_inference_steps:
                raise ValueError(f"step() was called more than num_inference_steps={self.num_inference_steps} times "
                                 "since set_timesteps: call set_timesteps again before a new run.")
            return index
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
        # what the multistep rule extrapolates: the noise prediction (no 1/alpha_s: well conditioned at t ~ 1) or y0_hat
        prediction = -sigma_s * model_output if self.noise_prediction else y0_hat

        if t == 0.0:
            # sigma_t = 0, lambda_t = +inf: every update rule reduces to the data prediction
            y_t = y0_hat
        else:
            h = lambda_t - lambda_s
            if self._prev_prediction is not None and self._prev_index == i - 1:
                r = (lambda_s - self._half_log_snrs[i - 1]) / h
                D = (1 + 1 / (2 * r)) * prediction - 1 / (2 * r) * self._prev_prediction
            else:
                D = prediction  # first step: no history yet, first order
            if self.config.stochastic:
                z = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
                decay = -math.expm1(-2.0 * h)  # 1 - e^-2h
                y_t = (sigma_t / sigma_s) * math.exp(-h) * y_s + alpha_t * decay * D + sigma_t * decay**0.5 * z
            elif self.noise_prediction:
                y_t = (alpha_t / alpha_s) * y_s - sigma_t * math.expm1(h) * D  # D: noise
            else:
                y_t = (sigma_t / sigma_s) * y_s - alpha_t * math.expm1(-h) * D  # D: data

        self._prev_prediction, self._prev_index = prediction, i
        prev_sample = mu + y_t
        if not return_dict:
            return (prev_sample,)
        return GradTTSSchedulerOutput(prev_sample=prev_sample, pred_original_sample=mu + y0_hat)

    @property
    def noise_prediction(self) -> bool:
        """True where steps extrapolate the noise prediction (DPM-Solver, the ODE default), False for the data
        prediction (DPM-Solver++; always for the SDE)."""
        return self.config.algorithm_type == "dpmsolver" and not self.config.stochastic

    @property
    def t_end(self) -> float:
        """The last time the score is evaluated at: `config.t_end`, or when None, 0.02 for DPM-Solver's ODE and
        1e-3 for DPM-Solver++ and the SDE (module docstring)."""
        if self.config.t_end is not None:
            return float(self.config.t_end)
        return DEFAULT_T_END_NOISE if self.noise_prediction else DEFAULT_T_END_DATA


__all__ = ["ALGORITHM_TYPES", "GradTTSDPMSolverScheduler"]
