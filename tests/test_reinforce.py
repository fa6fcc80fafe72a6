"""The "reinforce" estimator and the categorical bandit it is checked against."""

from __future__ import annotations

import math

import pytest
import torch

import zoopt
from zoopt.estimators.reinforce import Reinforce, row_tilt_weights
from zoopt.minimize import NonFiniteError
from zoopt.objectives import CategoricalBandit, OutputSamples, sphere
from zoopt.weights import solve_alpha, tilt_weights

ARMS = torch.tensor([1.0, 0.5, 0.2, 0.8, 0.0], dtype=torch.float64)
X = torch.tensor([0.3, -0.2, 0.5, 0.1, -0.4], dtype=torch.float64)
#: independent estimates averaged in the Monte-Carlo tests (each with N = 4 inputs)
SEEDS = 800


def bandit(**kw) -> CategoricalBandit:
    return CategoricalBandit(ARMS, **kw)


def estimates(est: Reinforce, objective, x: torch.Tensor, seeds: range) -> torch.Tensor:
    est.setup(objective, x)
    return torch.stack([est.estimate(objective, x, None, s).grad for s in seeds])


def within_se(g: torch.Tensor, expected: torch.Tensor, k: float = 4.0) -> bool:
    """Whether the mean of ``g (S, D)`` is within k standard errors of ``expected``."""
    se = g.std(0) / math.sqrt(len(g))
    return bool(((g.mean(0) - expected).abs() <= k * se + 1e-12).all())


# -- unbiasedness at α = ∞ ------------------------------------------------------------------
def test_mean_baseline_estimates_the_gradient_times_one_minus_one_over_m() -> None:
    b, m = bandit(rounds=4), 8
    g = estimates(Reinforce(samples=m), b, X, range(SEEDS))
    assert within_se(g, (1 - 1 / m) * b.gradient(X))


def test_mean_baseline_bias_is_detectable() -> None:
    """With M = 2 the mean baseline halves the gradient: the SE test above has the power."""
    b = bandit(rounds=4)
    g = estimates(Reinforce(samples=2), b, X, range(SEEDS))
    assert within_se(g, 0.5 * b.gradient(X))
    assert not within_se(g, b.gradient(X))


@pytest.mark.parametrize("m", [2, 8])
def test_leave_one_out_baseline_is_unbiased(m: int) -> None:
    b = bandit(noise=0.3, rounds=4)
    g = estimates(Reinforce(samples=m, baseline="leave_one_out"), b, X, range(SEEDS))
    assert within_se(g, b.gradient(X))


def test_estimate_is_the_linear_formula_on_its_draws() -> None:
    """g = (1/N) Σ_n (1/M) Σ_j (ℓ_nj − ℓ̄_n) ∇log p(y_nj), recomputed from the same draws."""
    b = bandit(noise=0.5, rounds=3)
    est = Reinforce(samples=6)
    est.setup(b, X)
    g = est.estimate(b, X, None, seed=11).grad
    gen = torch.Generator()
    gen.manual_seed(11)
    xg = X.clone().requires_grad_(True)
    out = b.sample_outputs(xg, 6, gen, 11)
    ell = out.losses
    surrogate = ((ell - ell.mean(1, keepdim=True)) * out.log_probs).sum() / (3 * 6)
    (expected,) = torch.autograd.grad(surrogate, xg)
    assert torch.allclose(g, expected, rtol=1e-12, atol=1e-15)


# -- temperature ------------------------------------------------------------------------------
@pytest.mark.parametrize("baseline", ["mean", "leave_one_out"])
def test_large_alpha_matches_infinite_alpha_on_the_same_draws(baseline: str) -> None:
    b = bandit(noise=0.5, rounds=3)
    for seed in range(5):
        g_inf = estimates(Reinforce(samples=8, baseline=baseline), b, X, range(seed, seed + 1))
        g_big = estimates(
            Reinforce(samples=8, alpha=1e6, baseline=baseline), b, X, range(seed, seed + 1)
        )
        assert torch.allclose(g_big, g_inf, rtol=1e-4, atol=1e-9)
    g_small = estimates(Reinforce(samples=8, alpha=0.1), b, X, range(1))
    assert not torch.allclose(g_small, g_inf, rtol=1e-2)


def test_small_alpha_puts_all_weight_on_the_best_draw() -> None:
    losses = torch.tensor([[0.3, 0.1, 0.7, 0.2], [2.0, 5.0, 1.5, 1.6]], dtype=torch.float64)
    alpha = 1e-9
    est = Reinforce(samples=4, alpha=alpha)
    a, used_alpha, ess = est.coefficients(losses)
    assert used_alpha == alpha and ess == pytest.approx(1.0)
    w = -a / alpha + 1 / 4  # a = −α(w − 1/M)
    best = torch.nn.functional.one_hot(losses.argmin(1), 4).to(losses)
    assert torch.allclose(w, best, atol=1e-12)


def test_row_tilt_weights_equal_tilt_weights_row_by_row() -> None:
    g = torch.Generator().manual_seed(0)
    losses = torch.randn(6, 9, generator=g, dtype=torch.float64) * 3
    losses[1, 2] = math.nan
    losses[4, ::2] = math.inf
    alphas = torch.tensor([0.01, 0.5, 1.0, 3.0, math.inf, 1e6], dtype=torch.float64)
    w = row_tilt_weights(losses, alphas)
    for n in range(6):
        assert torch.allclose(w[n], tilt_weights(losses[n], float(alphas[n])), atol=1e-15)
    assert torch.equal(row_tilt_weights(torch.full((1, 3), math.nan), 1.0), torch.zeros(1, 3))


def test_auto_alpha_reaches_the_target_ess_per_input() -> None:
    gen = torch.Generator().manual_seed(1)
    losses = torch.randn(4, 16, generator=gen, dtype=torch.float64) * torch.tensor(
        [[0.01], [1.0], [10.0], [1000.0]], dtype=torch.float64
    )
    est = Reinforce(samples=16, alpha="auto", ess_fraction=0.25)
    a, alpha, ess = est.coefficients(losses)
    assert ess == pytest.approx(0.25 * 16, rel=1e-2)
    alphas = [solve_alpha(row, 0.25) for row in losses]
    assert alpha == pytest.approx(sum(alphas) / 4)
    # each input's coefficients are scale-free in its own loss scale: the row with 1e5 times
    # the spread gets (1e5 times) larger coefficients, but the same weights
    w = [row_tilt_weights(losses[n : n + 1], alphas[n]) for n in range(4)]
    assert all(abs(float(wi.sum()) - 1) < 1e-12 for wi in w)
    assert torch.allclose(a[1], -alphas[1] * (w[1][0] - 1 / 16))


# -- entropy bonus ----------------------------------------------------------------------------
def test_entropy_bonus_moves_the_step_along_the_entropy_gradient() -> None:
    b, c = bandit(rounds=2), 0.3
    g0 = estimates(Reinforce(samples=8), b, X, range(4, 5))[0]
    g1 = estimates(Reinforce(samples=8, entropy_coef=c), b, X, range(4, 5))[0]
    xg = X.clone().requires_grad_(True)
    p = torch.softmax(xg, 0)
    (grad_h,) = torch.autograd.grad(-(p * p.log()).sum(), xg)
    assert torch.allclose(g1 - g0, -c * grad_h, atol=1e-12)
    # a descent step x − lr·g1 raises the entropy more than x − lr·g0
    assert float((g1 - g0) @ grad_h) < 0


def test_entropy_bonus_needs_an_entropy() -> None:
    class NoEntropy(CategoricalBandit):
        def sample_outputs(self, x, num_samples, generator, seed=0):
            out = super().sample_outputs(x, num_samples, generator, seed)
            return OutputSamples(out.log_probs, out.losses)

    with pytest.raises(TypeError, match="entropy_coef=0.1 needs the entropy"):
        zoopt.minimize(NoEntropy(ARMS), X, estimator="reinforce", steps=1, seed=0, entropy_coef=0.1)


# -- the loop ---------------------------------------------------------------------------------
def test_solves_the_bandit_through_minimize() -> None:
    b = CategoricalBandit(torch.tensor([1.0, 0.5, 0.2, 0.8, 0.1]), noise=0.5, rounds=4)
    r = zoopt.minimize(b, torch.zeros(5), estimator="reinforce", steps=300, seed=0, lr=0.1)
    assert r.loss < 0.15, r  # the best arm's loss is 0.1, the runner-up's 0.2
    assert int(torch.argmax(r.x)) == 4
    # M = 16 draws per step (each scores all N = 4 rounds), plus the loop's evaluation of x
    assert r.evaluations == 300 * 16 + 301
    assert {"sample_loss", "entropy"} <= set(r.history)
    assert r.history["entropy"][-1] < r.history["entropy"][0]


@pytest.mark.parametrize("alpha", ["auto", 0.05])
def test_tilted_variants_solve_the_bandit(alpha) -> None:
    b = CategoricalBandit(torch.tensor([1.0, 0.5, 0.2, 0.8, 0.1]), noise=0.5, rounds=4)
    r = zoopt.minimize(
        b, torch.zeros(5), estimator="reinforce", steps=300, seed=0, lr=0.1, alpha=alpha
    )
    assert r.loss < 0.15, r


def test_non_sampling_objective_is_refused_at_setup() -> None:
    with pytest.raises(TypeError, match=r"'sphere'.*sample_outputs\(x, num_samples"):
        zoopt.Minimizer(sphere, torch.ones(3), estimator="reinforce", steps=1)


def test_nan_losses_follow_the_weights_rule() -> None:
    class Flaky(CategoricalBandit):
        def sample_outputs(self, x, num_samples, generator, seed=0):
            out = super().sample_outputs(x, num_samples, generator, seed)
            losses = out.losses.clone()
            losses[:, ::3] = math.nan
            return OutputSamples(out.log_probs, losses, out.entropy)

    losses = torch.tensor([[0.5, math.nan, 0.1, 0.3]], dtype=torch.float64)
    a_lin, _, _ = Reinforce(samples=4).coefficients(losses)
    filled = torch.tensor([[0.5, 0.5, 0.1, 0.3]], dtype=torch.float64)  # failed → worst
    assert torch.allclose(a_lin, (filled - filled.mean()) / 4)
    a_tilt, _, ess = Reinforce(samples=4, alpha=1.0).coefficients(losses)
    assert a_tilt[0, 1] == 0 and ess <= 3  # the tilt drops the failed draw
    assert float(a_tilt.sum()) == pytest.approx(0.0, abs=1e-15)
    with pytest.warns(RuntimeWarning, match="NaN"):
        r = zoopt.minimize(Flaky(ARMS), X, estimator="reinforce", steps=30, seed=0, lr=0.2)
    assert torch.isfinite(r.x).all() and r.loss < bandit().evaluate(X[None])[0]

    class Broken(CategoricalBandit):
        def sample_outputs(self, x, num_samples, generator, seed=0):
            out = super().sample_outputs(x, num_samples, generator, seed)
            return OutputSamples(out.log_probs, torch.full_like(out.losses, math.nan))

    with pytest.raises(NonFiniteError, match="step 1: all 16 sampled losses"):
        zoopt.minimize(Broken(ARMS), X, estimator="reinforce", steps=3, seed=0)


def test_malformed_samples_are_named() -> None:
    class Detached(CategoricalBandit):
        def sample_outputs(self, x, num_samples, generator, seed=0):
            return super().sample_outputs(x.detach(), num_samples, generator, seed)

    class Transposed(CategoricalBandit):
        def sample_outputs(self, x, num_samples, generator, seed=0):
            out = super().sample_outputs(x, num_samples, generator, seed)
            return OutputSamples(out.log_probs.T, out.losses.T)

    with pytest.raises(TypeError, match="log_probs carry no gradient"):
        zoopt.minimize(Detached(ARMS), X, estimator="reinforce", steps=1, seed=0)
    with pytest.raises(ValueError, match=r"log_probs must have shape \(N, 16\)"):
        zoopt.minimize(Transposed(ARMS, rounds=2), X, estimator="reinforce", steps=1, seed=0)


@pytest.mark.parametrize("losses", [[[0.0] * 16], None, object()], ids=["list", "None", "object"])
def test_losses_of_the_wrong_type_name_the_expected_form(losses) -> None:
    class WrongType(CategoricalBandit):
        def sample_outputs(self, x, num_samples, generator, seed=0):
            out = super().sample_outputs(x, num_samples, generator, seed)
            return OutputSamples(out.log_probs, losses)

    form = r"losses must be a tensor of shape \(N, 16\) \(N inputs, 16 draws each\)"
    with pytest.raises(TypeError, match=form) as e:
        zoopt.minimize(WrongType(ARMS), X, estimator="reinforce", steps=1, seed=0)
    assert f"got {type(losses).__name__}" in str(e.value)
    assert "0x" not in str(e.value)  # the type, not the printed object


@pytest.mark.parametrize(
    "options, error, match",
    [
        (dict(samples=1), ValueError, "samples"),
        (dict(samples=4.0), TypeError, "samples"),
        (dict(alpha=0.0), ValueError, "alpha"),
        (dict(alpha=-1.0), ValueError, "alpha"),
        (dict(alpha="hot"), TypeError, "alpha"),
        (dict(ess_fraction=0.0), ValueError, "ess_fraction"),
        (dict(baseline="median"), ValueError, "baseline must be one of"),
        (dict(entropy_coef=-0.1), ValueError, "entropy_coef"),
    ],
)
def test_bad_options_are_named(options: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        zoopt.get_estimator("reinforce", **options)


# -- the bandit -------------------------------------------------------------------------------
def test_bandit_expected_loss_and_gradient() -> None:
    b = bandit()
    p = torch.softmax(X, 0)
    Xs = torch.stack([X, torch.zeros(5, dtype=torch.float64)])
    assert torch.allclose(b.evaluate(Xs), torch.stack([p @ ARMS, ARMS.mean()]))
    xg = X.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(b.surrogate(xg), xg)
    assert torch.allclose(auto, b.gradient(X))
    assert b.best_loss() == 0.0


def test_bandit_draws_follow_the_softmax() -> None:
    b = bandit(rounds=4000)
    gen = torch.Generator().manual_seed(0)
    out = b.sample_outputs(X, 5, gen)
    assert out.log_probs.shape == out.losses.shape == (4000, 5)
    assert out.entropy.shape == (4000,)
    p = torch.softmax(X, 0)
    freq = torch.stack([(out.losses == ell).double().mean() for ell in ARMS])
    se = (p * (1 - p) / out.losses.numel()).sqrt()
    assert ((freq - p).abs() < 4 * se).all()
    again = b.sample_outputs(X, 5, torch.Generator().manual_seed(0))
    assert torch.equal(again.losses, out.losses)


@pytest.mark.parametrize(
    "args, match",
    [
        (dict(losses=torch.ones(2, 2)), "losses must be a 1-D tensor"),
        (dict(losses=torch.ones(1)), "A >= 2"),
        (dict(losses=torch.tensor([0.0, math.nan])), "finite"),
        (dict(losses=ARMS, noise=-1.0), "noise"),
        (dict(losses=ARMS, rounds=0), "rounds"),
    ],
)
def test_bandit_bad_input(args: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CategoricalBandit(**args)


def test_bandit_wrong_parameter_count() -> None:
    with pytest.raises(ValueError, match="5 arms"):
        bandit().evaluate(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="x0 has 3 parameters but the objective expects 5"):
        zoopt.minimize(bandit(), torch.zeros(3), estimator="reinforce", steps=1)
