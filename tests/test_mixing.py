"""Importance mixing: the mixed generation is distributed as fresh draws, only new draws are
counted, a resumed run reuses the same draws, Ray evaluates only the new ones."""

from __future__ import annotations

import math

import pytest
import torch

import zoopt
from zoopt.checkpoint import load_tensor
from zoopt.config import validate
from zoopt.experiment import resume_experiment, run_experiment
from zoopt.mixing import ImportanceMixing
from zoopt.objectives import rosenbrock, sphere
from zoopt.proposal import GaussianProposal
from zoopt.weights import nes_utilities

D, K, SIGMA = 3, 8, 0.5
W = torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64)


def quadratic(x: torch.Tensor) -> torch.Tensor:
    return ((x - 0.3) ** 2 * W).sum(-1)


def _proposals() -> tuple:
    """π_old and π_new one SNES-like step apart (shifted centre, rescaled shape)."""
    old, new = GaussianProposal(SIGMA, "diagonal"), GaussianProposal(SIGMA, "diagonal")
    x0 = torch.zeros(D, dtype=torch.float64)
    old.setup(x0), new.setup(x0)
    old.scale = torch.tensor([1.0, 0.8, 1.2], dtype=torch.float64)
    new.scale = torch.tensor([0.9, 0.8, 1.4], dtype=torch.float64)
    return old, new, torch.tensor([0.2, -0.1, 0.0], dtype=torch.float64)


def _statistics(z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Per generation: mean loss, the mean step Σ uᵢ zᵢ and the shape step Σ uᵢ (zᵢ² − 1)."""
    losses = quadratic(rows)
    u = nes_utilities(losses)
    return torch.cat([losses.mean()[None], u @ z, u @ (z * z - 1)])


def _generations(seeds: int, mix: str) -> tuple[torch.Tensor, float]:
    """Statistics of the generation under π_new for ``seeds`` independent trials: mixed by the
    rule (``"mixing"``), all-fresh (``"fresh"``) or naively reused (``"keep_all"``)."""
    old, new, theta = _proposals()
    stats, fresh = [], 0
    for s in range(seeds):
        g = torch.Generator().manual_seed(10_000 + s)
        z_old = torch.randn(K, D, generator=g, dtype=torch.float64)
        rows_old = SIGMA * z_old * old.scale  # the previous generation, iid π_old around 0
        if mix == "fresh":
            z = torch.randn(K, D, generator=g, dtype=torch.float64)
            rows, n = theta + SIGMA * z * new.scale, K
        elif mix == "keep_all":
            rows, n = rows_old, 0
            z = (rows - theta) / (SIGMA * new.scale)
        else:
            m = ImportanceMixing(0.1)
            m.kept = {
                "center": torch.zeros(D, dtype=torch.float64),
                "scale": old.scale.clone(),
                "sigma": SIGMA,
                "rows": rows_old,
                "losses": quadratic(rows_old),
            }
            pop = m.ask(new, theta, seed=s, size=K)
            n = len(pop)
            z, losses = m.tell(quadratic(pop.materialize()))
            rows = theta + SIGMA * z * new.scale
            # the kept draws carry their own losses
            assert torch.allclose(losses, quadratic(rows))
        stats.append(_statistics(z, rows))
        fresh += n
    return torch.stack(stats), fresh / (seeds * K)


def test_mixed_generation_is_distributed_as_fresh_draws():
    n = 3000
    mixed, fresh_fraction = _generations(n, "mixing")
    fresh, _ = _generations(n, "fresh")
    naive, _ = _generations(n, "keep_all")
    # the draws were reused: most slots cost no evaluation
    assert 0.1 < fresh_fraction < 0.6
    se = torch.sqrt(mixed.var(0) / n + fresh.var(0) / n)
    gap = (mixed.mean(0) - fresh.mean(0)).abs() / se
    assert float(gap.max()) < 4.5, gap
    # the same test sees the bias of reusing the old draws unweighted
    naive_gap = (naive.mean(0) - fresh.mean(0)).abs() / torch.sqrt(
        naive.var(0) / n + fresh.var(0) / n
    )
    assert float(naive_gap.max()) > 10, naive_gap


def test_only_new_draws_are_evaluated_and_counted():
    calls = []

    def counted(X):
        calls.append(X.shape[0])
        return sphere(X)

    m = zoopt.Minimizer(
        counted,
        torch.full((6,), 2.0),
        estimator="snes",
        importance_mixing=0.1,
        antithetic=False,
        sigma=1.0,
        seed=4,
        evaluate_center=False,
        max_evaluations=400,
    )
    res = m.run()
    assert res.evaluations == sum(calls) == m.history["evaluations"][-1] + 1  # + final x
    k = m.estimator._size
    per_step = torch.diff(torch.tensor([0] + m.history["evaluations"]))
    assert int(per_step.min()) >= 1 and int(per_step.max()) <= k
    assert float(per_step.float().mean()) < 0.75 * k  # draws were reused
    assert m.history["evaluations"][-1] >= 400 > m.history["evaluations"][-2]


def test_mixing_saves_evaluations_on_sphere():
    def evals(**opts):
        out = []
        for seed in range(2):
            m = zoopt.Minimizer(
                sphere,
                torch.full((10,), 3.0, dtype=torch.float64),
                estimator="snes",
                antithetic=False,
                metamodel=False,  # mixing alone
                sigma=2.0,
                seed=seed,
                evaluate_center=False,
                **opts,
            )
            while float(sphere(m.theta.detach()[None])[0]) > 1e-6:
                m.step()
            out.append(m.evaluations)
        return sum(out)

    assert evals(importance_mixing=0.1) < 0.8 * evals()


@pytest.mark.parametrize("name", ["snes", "xnes", "sampling", "es"])
def test_resume_with_kept_draws_equals_an_uninterrupted_run(name):
    opts = dict(importance_mixing=0.1, antithetic=False, sigma=0.3, population=8, seed=2)
    if name == "sampling":
        opts.update(covariance="diagonal", eta_mean=1.0)
    if name == "es":
        opts.update(covariance="diagonal", eta_mean=1.0, shaping="centered_ranks")
    x0 = torch.full((4,), -0.5, dtype=torch.float64)
    a = zoopt.Minimizer(rosenbrock, x0.clone(), estimator=name, steps=12, **opts)
    ra = a.run()
    b = zoopt.Minimizer(rosenbrock, x0.clone(), estimator=name, steps=12, **opts)
    for _ in range(6):
        b.step()
    state = b.state_dict()
    assert state["estimator"]["mixing"]["rows"].shape == (8, 4)
    c = zoopt.Minimizer(rosenbrock, x0.clone(), estimator=name, steps=12, **opts)
    c.load_state_dict(state)
    rc = c.run()
    assert torch.equal(ra.x, rc.x)
    assert ra.history["population_loss"] == rc.history["population_loss"]
    assert ra.evaluations == rc.evaluations


def test_checkpointed_experiment_resumes_exactly(tmp_path):
    cfg = validate(
        {
            "seed": 3,
            "estimator": "snes",
            "objective": {"kind": "function", "function": "rosenbrock", "dim": 4, "x0": -0.5},
            "estimators": {"snes": {"importance_mixing": 0.2, "antithetic": False}},
            "budget": {"steps": 10},
            "output": {"tensorboard": False, "plot": False, "progress": "none"},
        }
    )
    full = run_experiment(cfg, tmp_path / "full")
    run_experiment(cfg, tmp_path / "half", until=5)
    resumed = resume_experiment(tmp_path / "half", steps=10)
    assert resumed.evaluations == full.evaluations
    assert torch.equal(
        load_tensor(tmp_path / "full" / "last.pt"), load_tensor(tmp_path / "half" / "last.pt")
    )


def test_ray_evaluates_only_the_new_draws(ray_address):
    from zoopt.evaluators.ray import RayEvaluator

    ev = RayEvaluator(num_workers=2, num_cpus_per_worker=0.5)
    try:
        kw = dict(estimator="snes", steps=6, seed=11, sigma=0.4, importance_mixing=0.1)
        kw.update(antithetic=False, evaluate_center=False)
        local = zoopt.minimize(rosenbrock, torch.linspace(-1.0, 1.5, 6), **kw)
        remote = zoopt.minimize(rosenbrock, torch.linspace(-1.0, 1.5, 6), evaluator=ev, **kw)
        assert torch.equal(local.x, remote.x)
        assert local.evaluations == remote.evaluations < 6 * 10 + 1
    finally:
        ev.close()


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, math.nan, "yes", True])
def test_bad_refresh_rate_names_the_option(bad):
    with pytest.raises(ValueError, match="importance_mixing"):
        zoopt.get_estimator("snes", importance_mixing=bad, antithetic=False)


def test_mixing_with_antithetic_pairs_is_refused():
    with pytest.raises(ValueError, match="antithetic=False"):
        zoopt.get_estimator("xnes", importance_mixing=0.1)
    with pytest.raises(ValueError, match="guided"):
        zoopt.get_estimator("sampling", importance_mixing=0.1, antithetic=False, guided=True)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda s: s.update(rows=s["rows"][:, :2]), r"center \(D,\), rows \(n, D\) and losses"),
        (lambda s: s.update(losses=s["losses"][:-1]), r"disagree"),
        (lambda s: s.update(center=[0.0]), r"center must be a float tensor"),
        (lambda s: s.update(sigma=-1.0), r"sigma must be > 0"),
        (lambda s: s.update(sigma="x"), r"sigma must be a number"),
        (lambda s: s.update(sigma=torch.ones(2)), r"sigma must be a number"),
    ],
)
def test_a_damaged_kept_generation_is_refused_before_it_is_used(damage, message):
    opts = dict(importance_mixing=0.1, antithetic=False, population=8, steps=4)
    m = zoopt.Minimizer(rosenbrock, torch.full((4,), -0.5, dtype=torch.float64), **opts,
                        estimator="snes")  # fmt: skip
    m.step()
    state = m.state_dict()["estimator"]["mixing"]
    damage(state)
    fresh = ImportanceMixing(0.1)
    with pytest.raises(ValueError, match=message):
        fresh.load_state_dict(state)
    assert fresh.kept is None
