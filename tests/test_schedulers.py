"""Grad-TTS schedulers against an analytic score.

Data X_0 ~ N(m0, s0^2) elementwise, prior mean mu. Then X_t ~ N(m_t, v_t) with m_t = a_t m0 + (1 - a_t) mu and
v_t = a_t^2 s0^2 + 1 - a_t^2, and the exact score is -(x - m_t) / v_t: a solver started from the prior must land
on N(m0, s0^2).
"""

from __future__ import annotations

import math

import pytest
import torch

from melinterp.schedulers import GradTTSDPMSolverScheduler, GradTTSScheduler, GradTTSSchedulerOutput

M0, S0 = 1.5, 0.3
SHAPE = (5, 80, 250)  # (B, n_mels, T): 100k elements
MEAN_TOL, STD_REL_TOL = 0.05, 0.05
STEP_CANDIDATES = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24, 28, 32, 40, 48, 64, 96, 128, 192, 256]


def analytic_score(scheduler, x: torch.Tensor, t, mu: torch.Tensor) -> torch.Tensor:
    mean_coef, _ = scheduler.marginal(t)
    mean_coef = mean_coef.to(x.dtype)
    m_t = mean_coef * M0 + (1 - mean_coef) * mu
    v_t = mean_coef**2 * S0**2 + 1 - mean_coef**2
    return -(x - m_t) / v_t


def sample(scheduler, num_steps: int, mu: torch.Tensor, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    scheduler.set_timesteps(num_steps)
    x = scheduler.sample_prior(mu, generator=generator)
    for t in scheduler.timesteps:
        score = analytic_score(scheduler, x, t, mu)
        x = scheduler.step(score, t, x, mu, generator=generator).prev_sample
    return x


def matches_data(x: torch.Tensor) -> bool:
    return abs(x.mean().item() - M0) <= MEAN_TOL and abs(x.std().item() / S0 - 1) <= STD_REL_TOL


def fewest_steps(scheduler, mu: torch.Tensor) -> int | None:
    for num_steps in STEP_CANDIDATES:
        if matches_data(sample(scheduler, num_steps, mu)):
            return num_steps
    return None


def per_element_mu() -> torch.Tensor:
    return torch.rand(SHAPE, generator=torch.Generator().manual_seed(7)) * 2 - 1  # uniform in [-1, 1]


SOLVERS = {
    "euler_ode": lambda: GradTTSScheduler(),
    "euler_sde": lambda: GradTTSScheduler(stochastic=True),
    "dpm_ode": lambda: GradTTSDPMSolverScheduler(),
    "dpmpp_ode": lambda: GradTTSDPMSolverScheduler(algorithm_type="dpmsolver++"),
    "dpm_sde": lambda: GradTTSDPMSolverScheduler(stochastic=True),
}


@pytest.fixture(scope="module")
def step_counts() -> dict[str, int | None]:
    """Fewest steps (among STEP_CANDIDATES) each solver needs from the prior with mu = -0.5 everywhere."""
    mu = torch.full(SHAPE, -0.5)
    return {name: fewest_steps(make(), mu) for name, make in SOLVERS.items()}


@pytest.mark.slow
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_every_solver_reaches_the_data_distribution(step_counts, solver):
    num_steps = step_counts[solver]
    assert num_steps is not None, f"{solver} never matched N({M0}, {S0}^2) within 256 steps"
    # the same step count also works when mu differs from element to element
    assert matches_data(sample(SOLVERS[solver](), num_steps, per_element_mu()))


@pytest.mark.slow
def test_fast_solver_needs_far_fewer_steps(step_counts):
    # measured: euler_ode 32, euler_sde 28, dpmpp_ode 7, dpm_ode 16, dpm_sde 10. The default ODE solver ("dpmsolver",
    # t_end = 0.02) is tuned for the real score net, whose data prediction is noise near t = 1 and which does not
    # denoise below t = 0.02; this exact, smooth Gaussian score favours DPM-Solver++ to t_end = 1e-3 (module docstring)
    print("fewest steps:", step_counts)
    assert 20 <= step_counts["euler_ode"] <= 48
    assert step_counts["dpmpp_ode"] <= step_counts["euler_ode"] // 4
    assert step_counts["dpm_ode"] <= step_counts["euler_ode"] // 2
    assert step_counts["dpm_sde"] <= step_counts["euler_sde"] // 2


def test_euler_ode_step_by_hand():
    scheduler = GradTTSScheduler()
    scheduler.set_timesteps(4)
    x, mu, score = torch.tensor([[2.0]]), torch.tensor([[-0.5]]), torch.tensor([[0.25]])
    prev = scheduler.step(score, 0.75, x, mu).prev_sample
    beta = 0.05 + (20.0 - 0.05) * 0.75
    assert prev.item() == pytest.approx(2.0 - 0.5 * beta * (-0.5 - 2.0 - 0.25) * 0.25, rel=1e-6)


def test_data_prediction_is_the_posterior_mean():
    scheduler = GradTTSScheduler()
    mu, t = torch.full((1000,), -0.5, dtype=torch.float64), 0.3
    x = torch.linspace(-3, 3, 1000, dtype=torch.float64)
    a_t = math.exp(-0.5 * (0.05 * t + 0.5 * 19.95 * t**2))
    m_t, v_t = a_t * M0 + (1 - a_t) * mu, a_t**2 * S0**2 + 1 - a_t**2
    posterior_mean = M0 + a_t * S0**2 / v_t * (x - m_t)  # Gaussian E[X_0 | X_t = x]
    predicted = scheduler.data_prediction(analytic_score(scheduler, x, t, mu), t, x, mu)
    torch.testing.assert_close(predicted, posterior_mean)


def test_marginal_known_values():
    scheduler = GradTTSScheduler(beta_min=0.05, beta_max=20.0)
    mean_coef, std = scheduler.marginal(1.0)
    assert mean_coef.item() == pytest.approx(math.exp(-0.5 * (0.05 + 0.5 * 19.95)))
    assert (mean_coef**2 + std**2).item() == pytest.approx(1.0)
    mean_coef, std = scheduler.marginal(torch.tensor([0.0, 1e-6]))
    assert mean_coef[0].item() == 1.0 and std[0].item() == 0.0
    assert std[1].item() == pytest.approx(math.sqrt(0.05e-6), rel=1e-3)  # expm1 keeps tiny sigma accurate


def test_half_log_snr_round_trip():
    scheduler = GradTTSDPMSolverScheduler()
    t = torch.tensor([1e-3, 0.1, 0.5, 1.0], dtype=torch.float64)
    mean_coef, std = scheduler.marginal(t)
    torch.testing.assert_close(scheduler.half_log_snr(t), torch.log(mean_coef / std))
    torch.testing.assert_close(scheduler.time_from_half_log_snr(scheduler.half_log_snr(t)), t)


def test_add_noise_has_the_marginal_moments():
    scheduler = GradTTSScheduler()
    generator = torch.Generator().manual_seed(0)
    t = torch.tensor([0.0, 0.1, 0.4, 1.0])
    x0 = M0 + S0 * torch.randn(4, 80, 500, generator=generator)
    mu = torch.full((4, 80, 500), -0.5)
    x_t = scheduler.add_noise(x0, torch.randn(x0.shape, generator=generator), t, mu)
    for i, t_i in enumerate(t.tolist()):
        a_t = math.exp(-0.5 * (0.05 * t_i + 0.5 * 19.95 * t_i**2))
        assert x_t[i].mean().item() == pytest.approx(a_t * M0 + (1 - a_t) * -0.5, abs=0.01)
        assert x_t[i].std().item() == pytest.approx(math.sqrt(a_t**2 * S0**2 + 1 - a_t**2), rel=0.01)


def test_add_noise_broadcasts_over_4d_samples_and_float_times():
    scheduler = GradTTSScheduler()
    x0, noise, mu = torch.ones(2, 1, 3, 4), torch.zeros(2, 1, 3, 4), torch.zeros(2, 1, 3, 4)
    x_t = scheduler.add_noise(x0, noise, torch.tensor([0.0, 1.0]), mu)
    assert x_t.shape == (2, 1, 3, 4)
    assert torch.all(x_t[0] == 1.0)
    assert x_t[1, 0, 0, 0].item() == pytest.approx(scheduler.marginal(1.0)[0].item())
    torch.testing.assert_close(scheduler.add_noise(x0, noise, 0.5, mu)[0], scheduler.add_noise(x0, noise, 0.5, mu)[1])


def test_sample_prior_mean_and_temperature():
    scheduler = GradTTSScheduler()
    mu = torch.full((4, 80, 300), 2.0)
    x1 = scheduler.sample_prior(mu, temperature=2.0, generator=torch.Generator().manual_seed(0))
    assert x1.mean().item() == pytest.approx(2.0, abs=0.01)
    assert x1.std().item() == pytest.approx(0.5, rel=0.01)


def test_euler_timesteps_left_end_grid():
    scheduler = GradTTSScheduler()
    scheduler.set_timesteps(4)
    torch.testing.assert_close(scheduler.timesteps, torch.tensor([1.0, 0.75, 0.5, 0.25]))
    assert scheduler.timesteps.dtype == torch.float32
    scheduler.set_timesteps(1)
    assert scheduler.timesteps.tolist() == [1.0]


def test_dpm_timesteps_uniform_in_lambda():
    scheduler = GradTTSDPMSolverScheduler(t_end=1e-3)
    scheduler.set_timesteps(6)
    t = scheduler.timesteps.double()
    assert t.shape == (6,) and t[0].item() == 1.0 and t[-1].item() == pytest.approx(1e-3, rel=1e-5)
    assert torch.all(t[1:] < t[:-1]) and torch.all(t > 0)
    lambda_steps = torch.diff(scheduler.half_log_snr(t))
    equal_steps = torch.full_like(lambda_steps, lambda_steps.mean().item())
    torch.testing.assert_close(lambda_steps, equal_steps, rtol=1e-4, atol=0)
    scheduler.set_timesteps(1)
    assert scheduler.timesteps.tolist() == [1.0]


def test_dpm_default_t_end_follows_the_algorithm():
    assert GradTTSDPMSolverScheduler().t_end == 0.02  # DPM-Solver (noise prediction) on the ODE
    assert GradTTSDPMSolverScheduler(algorithm_type="dpmsolver++").t_end == 1e-3
    assert GradTTSDPMSolverScheduler(stochastic=True).t_end == 1e-3  # the SDE extrapolates the data prediction
    assert GradTTSDPMSolverScheduler(t_end=0.05).t_end == 0.05
    scheduler = GradTTSDPMSolverScheduler()
    scheduler.set_timesteps(5)
    assert scheduler.timesteps[-1].item() == pytest.approx(0.02, rel=1e-5)


def test_dpm_few_steps_tolerate_score_error_at_high_noise():
    """A score error of 0.03 where t > 0.5 (the bundled net's data prediction is noise there: alpha_1 = 0.0067)
    moves 5- and 6-step DPM-Solver++ outputs by 2.0 and 1.0 (its 2M rule extrapolates y0_hat = (y + sigma^2 score) /
    alpha); the default, which extrapolates the noise prediction, moves them by 0.02 and 0.05."""
    shape = (2, 80, 50)
    mu = torch.full(shape, -0.5)
    score_error = 0.03 * torch.randn(shape, generator=torch.Generator().manual_seed(1))

    def run(scheduler, num_steps, error):
        scheduler.set_timesteps(num_steps)
        x = scheduler.sample_prior(mu, temperature=1.5, generator=torch.Generator().manual_seed(0))
        for t in scheduler.timesteps:
            score = analytic_score(scheduler, x, t, mu) + (error if t > 0.5 else 0.0)
            x = scheduler.step(score, t, x, mu).prev_sample
        return x

    for num_steps in (5, 6):
        moved = {
            algorithm: (run(make(), num_steps, score_error) - run(make(), num_steps, 0.0)).abs().max().item()
            for algorithm, make in [
                ("dpmsolver", GradTTSDPMSolverScheduler),
                ("dpmsolver++", lambda: GradTTSDPMSolverScheduler(algorithm_type="dpmsolver++")),
            ]
        }
        assert moved["dpmsolver"] < 0.1 < 0.5 < moved["dpmsolver++"], moved


@pytest.mark.parametrize("make", [GradTTSScheduler, GradTTSDPMSolverScheduler])
def test_config_round_trip(make, tmp_path):
    scheduler = make(beta_min=0.1, beta_max=10.0, stochastic=True)
    scheduler.save_config(tmp_path)
    assert (tmp_path / "scheduler_config.json").exists()
    loaded = make.from_config(make.load_config(tmp_path))
    reloaded = make.from_pretrained(tmp_path)
    for key in ["beta_min", "beta_max", "stochastic"]:
        assert loaded.config[key] == reloaded.config[key] == scheduler.config[key]


def test_swap_solvers_through_config():
    euler = GradTTSScheduler(beta_min=0.1, beta_max=15.0)
    dpm = GradTTSDPMSolverScheduler.from_config(euler.config)
    back = GradTTSScheduler.from_config(dpm.config)
    assert isinstance(dpm, GradTTSDPMSolverScheduler) and isinstance(back, GradTTSScheduler)
    assert (dpm.config.beta_min, dpm.config.beta_max) == (back.config.beta_min, back.config.beta_max) == (0.1, 15.0)
    assert set(euler.compatibles) == {GradTTSScheduler, GradTTSDPMSolverScheduler}
    assert (dpm.config.algorithm_type, dpm.config.t_end, dpm.t_end) == ("dpmsolver", None, 0.02)  # new keys' defaults
    # both solve the same process, so they agree on its marginals
    torch.testing.assert_close(dpm.marginal(0.3)[1], euler.marginal(0.3)[1])


@pytest.mark.parametrize("make", [GradTTSScheduler, GradTTSDPMSolverScheduler])
def test_sde_is_deterministic_given_a_generator(make):
    scheduler, mu = make(stochastic=True), torch.zeros(2, 8, 10)
    first, again, other = (sample(scheduler, 5, mu, seed=seed) for seed in (3, 3, 4))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, other)


def test_dpm_state_is_reset_by_set_timesteps():
    scheduler, mu = GradTTSDPMSolverScheduler(), torch.zeros(2, 8, 10)
    torch.testing.assert_close(sample(scheduler, 6, mu, seed=1), sample(scheduler, 6, mu, seed=1), rtol=0, atol=0)


@pytest.mark.parametrize("make", [GradTTSScheduler, GradTTSDPMSolverScheduler])
def test_3d_and_4d_samples_agree(make):
    scheduler, mu = make(), torch.randn(2, 8, 10, generator=torch.Generator().manual_seed(0))
    flat = sample(scheduler, 4, mu, seed=5)
    image = sample(scheduler, 4, mu.unsqueeze(1), seed=5)  # (B, 1, n_mels, T), as the U-Net sees it
    torch.testing.assert_close(image.squeeze(1), flat)


@pytest.mark.parametrize("make", [GradTTSScheduler, GradTTSDPMSolverScheduler])
def test_batched_timestep_tensor_equals_scalar(make):
    scheduler = make()
    scheduler.set_timesteps(3)
    x, mu = torch.randn(2, 8, 10, generator=torch.Generator().manual_seed(0)), torch.zeros(2, 8, 10)
    t = scheduler.timesteps[0]
    out = scheduler.step(analytic_score(scheduler, x, t, mu), t.repeat(2), x, mu)
    assert isinstance(out, GradTTSSchedulerOutput)
    scheduler.set_timesteps(3)
    (scalar,) = scheduler.step(analytic_score(scheduler, x, t, mu), float(t), x, mu, return_dict=False)
    torch.testing.assert_close(out.prev_sample, scalar)


def test_euler_accepts_per_item_times():
    scheduler = GradTTSScheduler()
    scheduler.set_timesteps(4)
    x, mu = torch.ones(2, 3, 5), torch.zeros(2, 3, 5)
    t = torch.tensor([1.0, 0.5])
    both = scheduler.step(torch.zeros_like(x), t, x, mu).prev_sample
    first = scheduler.step(torch.zeros_like(x[:1]), 1.0, x[:1], mu[:1]).prev_sample
    second = scheduler.step(torch.zeros_like(x[1:]), 0.5, x[1:], mu[1:]).prev_sample
    torch.testing.assert_close(both, torch.cat([first, second]))


@pytest.mark.parametrize("make", [GradTTSScheduler, GradTTSDPMSolverScheduler])
def test_bad_arguments_raise(make):
    with pytest.raises(ValueError, match="beta_min"):
        make(beta_min=-0.1)
    with pytest.raises(ValueError, match="beta_max"):
        make(beta_min=1.0, beta_max=0.5)
    scheduler = make()
    x = torch.zeros(2, 8, 10)
    with pytest.raises(ValueError, match="set_timesteps"):
        scheduler.step(x, 1.0, x, x)
    with pytest.raises(ValueError, match="num_inference_steps"):
        scheduler.set_timesteps(0)
    with pytest.raises(ValueError, match="num_inference_steps"):
        scheduler.set_timesteps(2.5)
    with pytest.raises(ValueError, match="temperature"):
        scheduler.sample_prior(x, temperature=0.0)
    scheduler.set_timesteps(4)
    with pytest.raises(ValueError, match="model_output"):
        scheduler.step(torch.zeros(2, 8, 9), 1.0, x, x)
    with pytest.raises(ValueError, match="mu must broadcast"):
        scheduler.step(x, 1.0, x, torch.zeros(3, 8, 10))
    with pytest.raises(ValueError, match="timesteps must lie in"):
        scheduler.add_noise(x, x, torch.tensor([0.5, 1.5]), x)
    with pytest.raises(ValueError, match=r"\(B,\) tensor with B = 2"):
        scheduler.add_noise(x, x, torch.tensor([0.5, 0.5, 0.5]), x)


def test_dpm_specific_bad_arguments_raise():
    with pytest.raises(ValueError, match="t_end"):
        GradTTSDPMSolverScheduler(t_end=0.0)
    with pytest.raises(ValueError, match=r"algorithm_type must be one of 'dpmsolver', 'dpmsolver\+\+', got 'heun'"):
        GradTTSDPMSolverScheduler(algorithm_type="heun")
    scheduler = GradTTSDPMSolverScheduler()
    scheduler.set_timesteps(4)
    x = torch.zeros(2, 8, 10)
    with pytest.raises(ValueError, match="not on the grid"):
        scheduler.step(x, 0.37, x, x)
    with pytest.raises(ValueError, match="one time grid"):
        scheduler.step(x, torch.tensor([1.0, 0.5]), x, x)
