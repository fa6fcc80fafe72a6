"""The quadratic metamodel: it recovers an exact quadratic, ranks by Kendall τ, steps to the
minimiser only while it ranks well, and its archive resumes exactly."""

from __future__ import annotations

import math

import pytest
import torch

import zoopt
from zoopt.metamodel import (
    QuadraticModel,
    fit_quadratic,
    kendall_tau,
    make_metamodel,
    model_kind,
    predict,
    terms,
)
from zoopt.objectives import rastrigin, rosenbrock, sphere


def _quadratic(d: int, seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(d, d, generator=g, dtype=torch.float64)
    h = q @ q.T + 0.5 * torch.eye(d, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    return 1.5, b, h


@pytest.mark.parametrize("kind", ["full", "diagonal"])
def test_fit_recovers_an_exact_quadratic(kind):
    d = 5
    c, b, h = _quadratic(d)
    if kind == "diagonal":
        h = torch.diag(torch.diag(h))
    u = torch.randn(terms(d, kind) + 3, d, generator=torch.Generator().manual_seed(1)).double()
    y = predict(u, (c, b, h))
    c2, b2, h2 = fit_quadratic(u, y, kind)
    assert abs(c2 - c) < 1e-9
    assert torch.allclose(b2, b, atol=1e-9) and torch.allclose(h2, h, atol=1e-9)


def test_model_grows_with_the_data():
    assert model_kind(10, 10) is None
    assert model_kind(10, 11) == "linear"
    assert model_kind(10, 21) == "diagonal"
    assert model_kind(10, 66) == "full"
    assert model_kind(40, 10_000) == "diagonal"  # full only up to MAX_FULL_DIM


def test_kendall_tau_by_hand():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert kendall_tau(a, a) == 1.0
    assert kendall_tau(a, -a) == -1.0
    # one swapped neighbour pair: 5 concordant, 1 discordant of 6
    assert math.isclose(kendall_tau(a, torch.tensor([2.0, 1.0, 3.0, 4.0])), 4 / 6)


def test_model_steps_to_the_minimiser_of_an_exact_quadratic():
    d = 4
    c, b, h = _quadratic(d, seed=3)
    x_star = -torch.linalg.solve(h, b)

    def f(x):
        return predict(x, (c, b, h))

    model = QuadraticModel(radius=100.0)
    x = torch.zeros(d, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    step = None
    for _ in range(6):
        rows = x + 0.5 * torch.randn(8, d, generator=g, dtype=torch.float64)
        step = model.observe(x, 0.5, None, rows, f(rows), size=8)
    assert model.last_tau == 1.0
    assert step is not None and torch.allclose(x + step, x_star, atol=1e-8)


def test_no_step_when_the_model_ranks_badly():
    model = QuadraticModel()
    x = torch.zeros(3, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        rows = torch.randn(6, 3, generator=g, dtype=torch.float64)
        noise = torch.randn(6, generator=g, dtype=torch.float64)  # losses unrelated to x
        step = model.observe(x, 1.0, None, rows, noise, size=6)
    assert step is None and model.last_tau < 0.85


def test_metamodel_solves_the_sphere_in_few_evaluations():
    m = zoopt.Minimizer(
        sphere,
        torch.full((10,), 3.0, dtype=torch.float64),
        estimator="snes",
        metamodel=True,
        sigma=2.0,
        seed=0,
        evaluate_center=False,
    )
    while float(sphere(m.theta.detach()[None])[0]) > 1e-8 and m.evaluations < 1000:
        m.step()
    assert m.evaluations <= 300  # snes alone needs ~2,000 (benchmarks/bench_peers.py)
    assert m.history["metamodel_step"][-1] == 1.0 and m.history["metamodel_tau"][-1] >= 0.85


def test_metamodel_falls_back_on_a_rugged_loss():
    m = zoopt.Minimizer(
        rastrigin,
        torch.full((4,), 2.0, dtype=torch.float64),
        estimator="snes",
        metamodel=True,
        sigma=0.3,
        seed=0,
        steps=40,
    )
    m.run()
    used = m.history["metamodel_step"]
    assert all(v in (0.0, 1.0) for v in used if not math.isnan(v))
    assert sum(used) < len(used)  # the natural-gradient step was taken where τ was low


@pytest.mark.parametrize("name", ["snes", "xnes", "sampling"])
def test_resume_with_an_archive_equals_an_uninterrupted_run(name):
    opts = dict(metamodel=True, sigma=0.3, seed=2)
    if name == "sampling":
        opts.update(covariance="diagonal", eta_mean=1.0, population=None)
    x0 = torch.full((3,), -0.5, dtype=torch.float64)
    a = zoopt.Minimizer(rosenbrock, x0.clone(), estimator=name, steps=14, **opts)
    ra = a.run()
    b = zoopt.Minimizer(rosenbrock, x0.clone(), estimator=name, steps=14, **opts)
    for _ in range(7):
        b.step()
    state = b.state_dict()
    assert state["estimator"]["metamodel"]["rows"].shape[1] == 3
    c = zoopt.Minimizer(rosenbrock, x0.clone(), estimator=name, steps=14, **opts)
    c.load_state_dict(state)
    rc = c.run()
    assert torch.equal(ra.x, rc.x)
    assert ra.history["metamodel_tau"] == rc.history["metamodel_tau"] or all(
        (p == q) or (math.isnan(p) and math.isnan(q))
        for p, q in zip(ra.history["metamodel_tau"], rc.history["metamodel_tau"], strict=True)
    )


def test_metamodel_needs_an_estimator_that_owns_its_mean():
    with pytest.raises(ValueError, match="eta_mean"):
        zoopt.get_estimator("es", metamodel=True, eta_mean=None)
    with pytest.raises(ValueError, match="eta_mean"):  # the fixed proposal above D = 20
        zoopt.Minimizer(sphere, torch.ones(21), estimator="es", metamodel=True, steps=1)
    with pytest.raises(TypeError, match="metamodel"):
        zoopt.get_estimator("snes", metamodel="yes")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda s: s.update(rows=s["rows"][:, :2]), r"rows have 2 coordinates, this run's .* 3"),
        (lambda s: s.update(losses=s["losses"][:-1]), r"must hold the same points"),
        (lambda s: s.update(rows=s["rows"][0]), r"rows must be a float tensor of 2 dim"),
        (lambda s: s.update(predicted=[0.0]), r"predicted must be a float tensor"),
    ],
)
def test_a_damaged_archive_is_refused_before_it_is_used(damage, message):
    """A checkpoint's archive that does not hold n points of D coordinates is named at load,
    not found by an index error steps later; nothing is restored."""
    model = make_metamodel(True, True, 3)
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(3, dtype=torch.float64)
    rows = torch.randn(6, 3, generator=g, dtype=torch.float64)
    model.observe(x, 1.0, None, rows, sphere(rows), size=6)
    state = model.state_dict()
    damage(state)
    fresh = make_metamodel(True, True, 3)
    with pytest.raises(ValueError, match=message):
        fresh.load_state_dict(state)
    assert fresh.archive is None
