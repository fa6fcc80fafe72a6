"""The mathematics of the sampling, ES and gradient estimators (DESIGN §2 limits)."""

from __future__ import annotations

import pytest
import torch

import zoopt
from zoopt.estimators.es import ES
from zoopt.estimators.sampling import Sampling
from zoopt.objectives import FunctionObjective
from zoopt.population import GaussianPopulation

D = 6
A = torch.linspace(0.5, 3.0, D, dtype=torch.float64)  # diagonal Hessian
B = torch.linspace(-1.0, 1.0, D, dtype=torch.float64)


def quadratic(X: torch.Tensor) -> torch.Tensor:
    """½ xᵀ diag(A) x + bᵀx, batched."""
    return 0.5 * (X * X * A).sum(-1) + X @ B


def true_grad(x: torch.Tensor) -> torch.Tensor:
    return A * x + B


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def draws(x, sigma, k, seed=0):
    pop = GaussianPopulation(x, sigma, seed, k, antithetic=True)
    z = pop.perturbations()
    return pop, z, quadratic(pop.materialize())


def test_large_alpha_sampling_equals_es_on_the_same_draws():
    x = torch.full((D,), 0.7, dtype=torch.float64)
    sigma = 0.1
    pop, z, losses = draws(x, sigma, 64)
    g_es = ES(sigma=sigma, population=64, shaping="raw").gradient(losses, z)
    g_big = Sampling(sigma=sigma, population=64, alpha=1e7).weigh(losses, sigma * z).grad
    g_inf = Sampling(sigma=sigma, population=64, alpha=float("inf")).weigh(losses, sigma * z).grad
    assert torch.allclose(g_big, g_es, rtol=1e-4, atol=1e-8)
    assert torch.allclose(g_inf, g_es, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("alpha", ["auto", 0.01, float("inf")])
def test_small_sigma_matches_the_true_gradient(alpha):
    x = torch.tensor([0.3, -0.2, 1.0, 0.5, -1.5, 0.1], dtype=torch.float64)
    sigma, k = 1e-3, 4000
    pop, z, losses = draws(x, sigma, k, seed=3)
    g = Sampling(sigma=sigma, population=k, alpha=alpha).weigh(losses, sigma * z).grad
    assert cosine(g, true_grad(x)) > 0.99
    g_es = ES(sigma=sigma, population=k).gradient(losses, z)
    assert cosine(g_es, true_grad(x)) > 0.99


def test_alpha_zero_is_greedy_selection():
    x = torch.zeros(D, dtype=torch.float64)
    sigma = 0.2
    pop, z, losses = draws(x, sigma, 32)
    alpha = 1e-12
    g = Sampling(sigma=sigma, population=32, alpha=alpha).weigh(losses, sigma * z).grad
    best = sigma * z[int(torch.argmin(losses))]
    # Δθ = Σ wᵢεᵢ → the best draw, so g = −(α/σ²)(ε_best − ε̄)
    expected = -(alpha / sigma**2) * (best - (sigma * z).mean(0))
    assert torch.allclose(g, expected, rtol=1e-6, atol=0)


def _tilted_target(x, sigma, alpha):
    """Exact pseudo-gradient of p(ε) ∝ N(0, σ²I)·exp(−ΔL(ε)/α) for the quadratic."""
    g = true_grad(x)
    precision = 1 / sigma**2 + A / alpha  # diagonal
    mean = -(g / alpha) / precision
    return -(alpha / sigma**2) * mean


def test_guided_proposal_is_unbiased_for_the_unguided_target():
    x = torch.tensor([1.0, -0.5, 0.8, 0.2, -1.0, 0.6], dtype=torch.float64)
    sigma, alpha, k = 0.3, 0.5, 2048
    obj = FunctionObjective(quadratic)
    target = _tilted_target(x, sigma, alpha)
    est = Sampling(sigma=sigma, population=k, alpha=alpha, guided=True, guide_scale=2.0)
    est.setup(obj, x)
    corrected, uncorrected, plain = [], [], []
    unguided = Sampling(sigma=sigma, population=k, alpha=alpha, covariance="none", eta_mean=None)
    for seed in range(40):
        pop = est.ask(x, seed)
        losses = obj.evaluate(pop.candidates)
        corrected.append(est.tell(x, pop, losses).grad)
        uncorrected.append(est.weigh(losses, pop.offsets, None).grad)
        gp = unguided.ask(x, seed)
        plain.append(unguided.tell(x, gp, obj.evaluate(gp.materialize())).grad)
    corrected, uncorrected, plain = (
        torch.stack(v).mean(0) for v in (corrected, uncorrected, plain)
    )
    err = lambda g: float((g - target).norm() / target.norm())  # noqa: E731
    assert err(plain) < 0.05  # the unguided estimator hits the exact target
    assert err(corrected) < 0.05  # so does the guided one, thanks to the log-ratio
    assert err(uncorrected) > 4 * err(corrected)  # and without it, it does not


def test_gradient_estimator_is_autograd():
    x = torch.tensor([0.3, -0.2, 1.0, 0.5, -1.5, 0.1], dtype=torch.float64)
    est = zoopt.get_estimator("gradient")
    obj = FunctionObjective(quadratic)
    e = est.estimate(obj, x, zoopt.LocalEvaluator(), 0)
    assert torch.allclose(e.grad, true_grad(x))


def test_gradient_on_non_differentiable_objective_is_a_clear_error():
    def accuracy_like(X):
        return (X > 0).float().mean(-1)  # no grad_fn

    with pytest.raises(TypeError, match="differentiable"):
        zoopt.minimize(accuracy_like, torch.ones(3), estimator="gradient", steps=2)

    def numpy_code(X):
        return torch.from_numpy((X.detach().numpy() ** 2).sum(-1))

    with pytest.raises(TypeError, match="grad_fn"):
        zoopt.minimize(numpy_code, torch.ones(3), estimator="gradient", steps=2)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_gradient_on_a_constant_non_finite_objective_names_the_value(value):
    """A NaN/Inf without a grad_fn is reported as NaN/Inf, not as a missing gradient."""

    def broken(X):
        return torch.full((X.shape[0],), value)

    with pytest.raises(zoopt.NonFiniteError, match=rf"step 1: the surrogate is {value}") as e:
        zoopt.minimize(broken, torch.ones(3), estimator="gradient", steps=2, progress=False)
    assert "differentiable" not in str(e.value)


def test_gradient_nan_surrogate_stops_with_the_step():
    with pytest.raises(zoopt.NonFiniteError, match="step 1"):
        zoopt.minimize(
            lambda X: X.sum(-1) * float("nan"), torch.ones(3), estimator="gradient", steps=3
        )


def test_auto_alpha_reaches_its_ess_target():
    r = zoopt.minimize(
        quadratic,
        torch.ones(D, dtype=torch.float64),
        estimator="sampling",
        steps=20,
        population=64,
        ess_fraction=0.25,
    )
    ess = torch.tensor(r.history["ess"])
    assert torch.allclose(ess / 64, torch.full_like(ess, 0.25), rtol=0.01)
    assert all(a > 0 for a in r.history["alpha"])


def test_guided_needs_a_surrogate():
    class Blackbox(zoopt.Objective):
        def evaluate(self, X, seed=0):
            return (X * X).sum(-1)

    with pytest.raises(ValueError, match="surrogate"):
        zoopt.minimize(Blackbox(), torch.ones(3), estimator="sampling", guided=True, steps=2)


def test_guided_linear_limit_matches_a_large_alpha_on_the_same_draws():
    """α → ∞ with importance weights: g = (1/σ²)Σ vᵢ(Lᵢ − ΣvⱼLⱼ)εᵢ, not zero."""
    x = torch.tensor([1.0, -0.5, 0.8, 0.2, -1.0, 0.6], dtype=torch.float64)
    obj = FunctionObjective(quadratic)
    est = Sampling(sigma=0.3, population=64, alpha=float("inf"), guided=True)
    est.setup(obj, x)
    pop = est.ask(x, 5)
    losses = obj.evaluate(pop.candidates)
    g_inf = est.tell(x, pop, losses).grad
    g_big = (
        Sampling(sigma=0.3, population=64, alpha=1e6).weigh(losses, pop.offsets, pop.log_ratio).grad
    )
    assert g_inf.norm() > 0
    assert torch.allclose(g_inf, g_big, rtol=1e-4, atol=1e-8)
    assert cosine(g_inf, true_grad(x)) > 0.5


def test_guided_auto_alpha_beyond_reach_takes_the_linear_limit():
    x = torch.tensor([1.0, -0.5, 0.8, 0.2, -1.0, 0.6], dtype=torch.float64)
    obj = FunctionObjective(quadratic)
    est = Sampling(sigma=0.3, population=64, alpha="auto", ess_fraction=1.0, guided=True)
    est.setup(obj, x)
    pop = est.ask(x, 5)
    e = est.tell(x, pop, obj.evaluate(pop.candidates))
    assert e.alpha == float("inf") and e.grad.norm() > 0
