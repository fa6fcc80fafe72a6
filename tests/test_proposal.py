"""The adapted Gaussian proposal: the natural-gradient rule by hand, its behaviour on sphere
and ellipsoid, exact resume, Ray parity, and bad options."""

from __future__ import annotations

import math

import pytest
import torch

import zoopt
from zoopt.estimators.es import ES
from zoopt.estimators.snes import SNES
from zoopt.estimators.xnes import XNES
from zoopt.objectives import rastrigin, sphere
from zoopt.optim import ClipUp
from zoopt.proposal import MAX_FULL_DIM, GaussianProposal, default_population, default_rates
from zoopt.weights import nes_utilities, top_pair_weights


def _utilities_by_hand(losses: list[float]) -> torch.Tensor:
    k = len(losses)
    raw = [max(0.0, math.log(k / 2 + 1) - math.log(r)) for r in range(1, k + 1)]
    table = [u / sum(raw) - 1 / k for u in raw]
    order = sorted(range(k), key=lambda i: losses[i])
    out = [0.0] * k
    for rank, i in enumerate(order):
        out[i] = table[rank]
    return torch.tensor(out, dtype=torch.float64)


def test_nes_utilities_by_hand_and_ties():
    losses = [3.0, 1.0, 2.0, 4.0, 0.5, 9.0]
    assert torch.allclose(
        nes_utilities(torch.tensor(losses, dtype=torch.float64)), _utilities_by_hand(losses)
    )
    tied = nes_utilities(torch.tensor([1.0, 1.0, 2.0, 3.0]))
    assert tied[0] == tied[1] and abs(float(tied.sum())) < 1e-7
    assert torch.equal(nes_utilities(torch.full((6,), 2.5)), torch.zeros(6))


def test_snes_step_matches_a_hand_computation_on_fixed_draws():
    d, sigma = 3, 0.7
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    est = SNES(sigma=sigma, population=6)
    pop = est.ask(x, seed=5)
    z = pop.perturbations()
    losses = torch.tensor([3.0, 1.0, 2.0, 4.0, 0.5, 9.0], dtype=torch.float64)
    u = _utilities_by_hand(losses.tolist())
    eta = (3 + math.log(d)) / (5 * math.sqrt(d))
    out = est.tell(x, pop, losses)
    mean = x + sigma * sum(u[i] * z[i] for i in range(6))
    scale = torch.exp(0.5 * eta * sum(u[i] * (z[i] ** 2 - 1) for i in range(6)))
    assert torch.allclose(out.x, mean)
    assert torch.allclose(est.state_dict()["scale"], scale)
    # the next population is drawn with the adapted scale
    nxt = est.ask(out.x, seed=6)
    assert torch.allclose(nxt.materialize(), out.x + sigma * nxt.perturbations() * scale)


def test_xnes_step_matches_a_hand_computation_on_fixed_draws():
    d, sigma, k = 3, 0.4, 8
    x = torch.zeros(d, dtype=torch.float64)
    est = XNES(sigma=sigma, population=k)
    pop = est.ask(x, seed=2)
    z = pop.perturbations()
    losses = torch.tensor([5.0, 2.0, 7.0, 1.0, 3.0, 8.0, 4.0, 6.0], dtype=torch.float64)
    u = _utilities_by_hand(losses.tolist())
    eta = 3 * (3 + math.log(d)) / (5 * d * math.sqrt(d))
    out = est.tell(x, pop, losses)
    g_m = sum(u[i] * (torch.outer(z[i], z[i]) - torch.eye(d)) for i in range(k))
    g_s = torch.trace(g_m) / d
    a = torch.linalg.matrix_exp(0.5 * (eta * g_s * torch.eye(d) + eta * (g_m - g_s * torch.eye(d))))
    assert torch.allclose(out.x, x + sigma * sum(u[i] * z[i] for i in range(k)))
    assert torch.allclose(est.state_dict()["scale"], a)


def test_defaults_follow_the_nes_papers():
    assert default_population(10) == 10 and default_population(2) == 6
    assert default_population(100, antithetic=False) == 4 + int(3 * math.log(100))
    assert default_population(7) % 2 == 0
    assert default_rates(10, "diagonal")[0] == pytest.approx((3 + math.log(10)) / (5 * 10**0.5))
    assert default_rates(10, "full")[1] == pytest.approx(3 * (3 + math.log(10)) / (5 * 10**1.5))


@pytest.mark.parametrize("name", ["snes", "xnes", "pgpe"])
def test_all_equal_losses_leave_the_scale_unchanged(name):
    est = zoopt.get_estimator(name, sigma=0.3)
    x = torch.ones(4)
    est.setup(zoopt.objectives.base.as_objective(sphere, dim=4), x)
    before = est.state_dict()["scale"].clone()
    pop = est.ask(x, seed=1)
    est.tell(x, pop, torch.full((len(pop),), 2.0))
    assert torch.equal(est.state_dict()["scale"], before)


def test_sampling_all_equal_losses_leave_the_scale_unchanged():
    est = zoopt.get_estimator("sampling", sigma=0.3, covariance="diagonal", population=8)
    x = torch.ones(4)
    pop = est.ask(x, seed=1)
    est.tell(x, pop, torch.full((8,), 2.0))
    assert torch.equal(est.state_dict()["scale"], torch.ones(4))


@pytest.mark.parametrize(
    "options",
    [
        {"estimator": "snes"},
        {"estimator": "xnes"},
        {"estimator": "sampling", "covariance": "diagonal", "eta_mean": 1.0, "population": 10},
    ],
)
def test_sigma_shrinks_geometrically_on_a_sphere(options):
    scales = []

    def record(row):
        scales.append(
            float(
                m.estimator.state_dict()["scale"].diagonal().mean()
                if m.estimator.state_dict()["scale"].ndim == 2
                else m.estimator.state_dict()["scale"].mean()
            )
        )

    m = zoopt.Minimizer(
        sphere, torch.ones(10), steps=300, seed=0, sigma=0.5, callback=record, **options
    )
    m.run()
    logs = [math.log(s) for s in scales]
    # log σ decreases at a steady rate: both halves shrink by a similar, large factor
    first, second = logs[0] - logs[149], logs[149] - logs[299]
    assert first > 2.0 and second > 2.0, (first, second)
    assert 0.5 < first / second < 2.0


def test_sigma_ratios_approach_sqrt_curvature_ratios_on_a_separable_ellipsoid():
    curv = torch.tensor([1.0, 4.0, 16.0, 64.0, 256.0], dtype=torch.float64)

    def ellipsoid(X):
        return (X * X * curv).sum(-1)

    m = zoopt.Minimizer(
        ellipsoid,
        torch.ones(5, dtype=torch.float64),
        steps=400,
        seed=1,
        estimator="snes",
        sigma=0.5,
    )
    logs = []
    for _ in range(400):
        m.step()
        if m.step_count > 200:
            logs.append(torch.log(m.estimator.state_dict()["scale"]))
    s = torch.stack(logs).mean(0)
    ratios = torch.exp(s[0] - s)  # σ₁/σᵢ, expected sqrt(curvᵢ/curv₁) = 1, 2, 4, 8, 16
    assert torch.allclose(ratios, curv.sqrt(), rtol=0.35), ratios


@pytest.mark.parametrize(
    "options",
    [{"estimator": "xnes"}, {"estimator": "pgpe"}, {"estimator": "sampling", "covariance": "full"}],
)
def test_resume_is_exact_with_adaptation_on(options):
    kw = dict(steps=12, seed=3, sigma=0.3, **options)
    a = zoopt.Minimizer(rastrigin, torch.full((4,), 0.8), **kw)
    for _ in range(6):
        a.step()
    b = zoopt.Minimizer(rastrigin, torch.full((4,), 0.8), **kw)
    b.load_state_dict(a.state_dict())
    ra, rb = a.run(), b.run()
    assert torch.equal(ra.x, rb.x) and ra.history["loss"] == rb.history["loss"]
    assert not torch.equal(a.estimator.state_dict()["scale"], torch.eye(4))


def test_ray_workers_regenerate_the_adapted_rows(ray_address):
    from zoopt.evaluators.ray import RayEvaluator

    ev = RayEvaluator(num_workers=2, num_cpus_per_worker=0.5)
    try:
        for name in ("snes", "xnes"):
            kw = dict(estimator=name, steps=5, seed=11, sigma=0.4)
            local = zoopt.minimize(rastrigin, torch.linspace(-1.0, 1.5, 6), **kw)
            remote = zoopt.minimize(rastrigin, torch.linspace(-1.0, 1.5, 6), evaluator=ev, **kw)
            assert torch.equal(local.x, remote.x), name
            assert local.history["population_loss"] == remote.history["population_loss"]
    finally:
        ev.close()


@pytest.mark.parametrize("option", ["eta_sigma", "eta_cov", "eta_mean"])
@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan")])
def test_non_positive_learning_rates_are_rejected(option, bad):
    with pytest.raises(ValueError, match=option):
        zoopt.get_estimator("xnes", **{option: bad})


def test_full_covariance_above_its_limit_names_the_option_and_the_limit():
    est = ES(shaping="utilities", covariance="full")
    with pytest.raises(ValueError, match=rf"covariance='full' supports D <= {MAX_FULL_DIM}"):
        est.setup(
            zoopt.objectives.base.as_objective(sphere, dim=MAX_FULL_DIM + 1),
            torch.zeros(MAX_FULL_DIM + 1),
        )
    with pytest.raises(ValueError, match="covariance must be one of"):
        GaussianProposal(0.1, covariance="dense")
    with pytest.raises(ValueError, match="scale-free"):
        ES(shaping="raw", covariance="diagonal")
    with pytest.raises(ValueError, match="finite alpha"):
        zoopt.get_estimator("sampling", alpha=float("inf"), covariance="diagonal")


def test_ars_weights_keep_the_best_pairs():
    losses = torch.tensor([1.0, 2.0, 5.0, 3.0, 0.0, 4.0])
    c = top_pair_weights(losses, 2)
    kept = torch.tensor([1.0, 2.0, 0.0, 4.0])
    std = float(kept.std(unbiased=False))
    assert torch.allclose(c, torch.tensor([1, -1, 0, 0, 4, -4]) / (2 * 2 * std))
    with pytest.raises(ValueError, match="top must be"):
        top_pair_weights(losses, 4)


def test_clipup_normalises_and_caps_the_speed():
    p = torch.zeros(3, requires_grad=True)
    opt = ClipUp([p], max_speed=0.2, momentum=0.9)
    for _ in range(20):
        p.grad = torch.tensor([1e6, 0.0, 0.0])
        before = p.detach().clone()
        opt.step()
        assert float((p.detach() - before).norm()) <= 0.2 + 1e-7
    assert (
        float(p.detach()[0]) < -2.0 and float(p.detach()[1]) == 0.0
    )  # moved against the gradient, at speed
    with pytest.raises(ValueError, match="max_speed"):
        ClipUp([p], max_speed=0.0)


@pytest.mark.parametrize("name", ["sampling", "es"])
def test_defaults_adapt_the_proposal_up_to_adapt_max_dim(name):
    from zoopt.proposal import ADAPT_MAX_DIM

    small = zoopt.Minimizer(sphere, torch.ones(ADAPT_MAX_DIM), estimator=name, steps=1)
    est = small.estimator
    assert (est.covariance, est.eta_mean, est.owns_mean) == ("diagonal", 1.0, True)
    assert est._size == default_population(ADAPT_MAX_DIM) and est._model is not None
    if name == "es":
        assert est.shaping == "utilities"
    # above the limit, or once the proposal is set, the fixed proposal's values
    for x0, options in [(torch.ones(ADAPT_MAX_DIM + 1), {}), (torch.ones(5), {"eta_mean": None})]:
        est = zoopt.Minimizer(sphere, x0, estimator=name, steps=1, **options).estimator
        assert (est.covariance, est.eta_mean, est._size, est._model) == ("none", None, 32, None)
    shape = {"covariance": "diagonal"}
    if name == "es":
        shape["shaping"] = "utilities"  # raw losses cannot adapt a shape
    est = zoopt.Minimizer(sphere, torch.ones(5), estimator=name, steps=1, **shape).estimator
    assert est.eta_mean is None  # as before: the pseudo-gradient for the optimizer


@pytest.mark.parametrize(
    "name, fixed",
    [
        ("sampling", dict(covariance="none", eta_mean=None, population=32, metamodel=False)),
        ("es", dict(shaping="raw", covariance="none", eta_mean=None, population=32)),
    ],
)
def test_a_checkpoint_of_the_fixed_proposal_resumes_with_it(name, fixed):
    """A state written when the defaults were the fixed proposal, loaded into an estimator
    whose defaults now adapt it, continues exactly as the run that wrote it."""
    kw = dict(estimator=name, steps=10, seed=1, sigma=0.3)
    a = zoopt.Minimizer(sphere, torch.ones(5), **kw, **fixed)
    for _ in range(3):
        a.step()
    state = a.state_dict()
    b = zoopt.Minimizer(sphere, torch.ones(5), **kw)
    assert b.estimator.covariance == "diagonal"
    b.load_state_dict(state)
    for _ in range(3):
        a.step()
        b.step()
    assert b.estimator.covariance == "none" and b.estimator.eta_mean is None
    assert torch.equal(a.x, b.x) and a.history["loss"] == b.history["loss"]
