"""estimator="auto": every branch of the rule, and what a run reports about its choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import zoopt
from zoopt.config import validate
from zoopt.estimators.auto import (
    ADAPTIVE_MIN_DIM,
    CMAES_MAX_DIM,
    PROBE_DRAWS,
    RESTART_MIN_EVALUATIONS_PER_D,
    SURROGATE_MAX_DIM,
    choose_estimator,
)
from zoopt.objectives import rosenbrock, sphere
from zoopt.proposal import default_population

LQ = {"surrogate": True}
LQ_IPOP = {"surrogate": True, "restarts": 9}
ADAPTIVE_IPOP = {"surrogate": "adaptive", "restarts": 9}
BIPOP = {"restarts": 9, "bipop": True}
LOW = RESTART_MIN_EVALUATIONS_PER_D * 10 - 1  # just too few evaluations to restart at D = 10


@pytest.mark.parametrize(
    ("kwargs", "estimator", "options", "label"),
    [
        # small and smooth, budget for restarts: lq-CMA-ES with IPOP; from ADAPTIVE_MIN_DIM
        # on, a run whose model was rarely trusted hands the later runs to plain CMA-ES
        (dict(dim=ADAPTIVE_MIN_DIM - 1, budget=20_000), "cmaes", LQ_IPOP, "cmaes+surrogate+ipop"),
        (dict(dim=ADAPTIVE_MIN_DIM, budget=20_000), "cmaes", ADAPTIVE_IPOP,
         "cmaes+adaptive-surrogate+ipop"),
        # small and smooth, too little budget for a second run: no restarts
        (dict(dim=10, budget=LOW), "cmaes", LQ, "cmaes+surrogate"),
        # only steps known: restarts (they happen only when a run ends)
        (dict(dim=ADAPTIVE_MIN_DIM - 1, steps=300), "cmaes", LQ_IPOP, "cmaes+surrogate+ipop"),
        # too many coefficients for the model: CMA-ES with BIPOP
        (dict(dim=SURROGATE_MAX_DIM + 1, budget=10**6), "cmaes", BIPOP, "cmaes+bipop"),
        (dict(dim=SURROGATE_MAX_DIM + 1, budget=100), "cmaes", {}, "cmaes"),
        # integer coordinates: pycma's integer handling, no model
        (dict(dim=4, budget=10**5, integer=True), "cmaes", BIPOP, "cmaes+bipop"),
        # large D, noise, or no pycma: snes
        (dict(dim=CMAES_MAX_DIM + 1, budget=10**6), "snes", {}, "snes"),
        (dict(dim=5, budget=10**4, noisy=True), "snes", {}, "snes"),
        (dict(dim=5, budget=10**4, cmaes_available=False), "snes", {}, "snes"),
    ],
)  # fmt: skip
def test_every_branch_of_the_rule(kwargs, estimator, options, label):
    choice = choose_estimator(**kwargs)
    assert (choice.estimator, choice.options, choice.label) == (estimator, options, label)
    assert choice.reason.startswith(f"auto chose {label}: D = {kwargs['dim']}, budget")


def test_the_reason_names_the_facts():
    c = choose_estimator(8, 20_000, bounds=True)
    assert c.reason == "auto chose cmaes+adaptive-surrogate+ipop: D = 8, budget 20,000, bounds"
    assert "noisy losses" in choose_estimator(10, 1000, noisy=True).reason
    assert "pycma not installed" in choose_estimator(3, cmaes_available=False).reason


def test_a_steps_only_budget_is_read_as_generations_under_the_surrogate():
    c = choose_estimator(10, steps=500)
    assert c.max_evaluations == 500 * default_population(10, antithetic=False) == 5000
    assert c.reason == (
        "auto chose cmaes+adaptive-surrogate+ipop: D = 10, budget 500 steps read as 5,000 "
        "evaluations (500 generations of λ = 10)"
    )
    # a budget in evaluations, or a choice without the model, keeps the steps as they are
    assert choose_estimator(10, 20_000, steps=500).max_evaluations is None
    assert choose_estimator(30, steps=500).max_evaluations is None
    m = zoopt.Minimizer(sphere, torch.ones(4, dtype=torch.float64), steps=3, seed=0)
    lam = default_population(4, antithetic=False)
    assert (m.max_evaluations, m.steps) == (3 * lam, 3 * lam)
    r = m.run()
    assert r.stop_reason == "max_evaluations" and 3 * lam <= r.evaluations < 4 * lam
    assert r.steps > 3  # a surrogate step evaluates 1 to λ candidates


def test_user_options_take_precedence():
    c = choose_estimator(10, 20_000, options={"restarts": 2, "sigma": 0.3})
    assert c.options == {"surrogate": "adaptive", "restarts": 2, "sigma": 0.3}
    c = choose_estimator(10, 20_000, options={"surrogate": True})
    assert c.options == {"surrogate": True, "restarts": 9}


@pytest.mark.parametrize(
    ("options", "label"),
    [
        ({"bipop": True}, "cmaes+adaptive-surrogate+bipop"),
        ({"restarts": 0}, "cmaes+surrogate"),  # no later run for the model to hand over
        ({"surrogate": False}, "cmaes+ipop"),
        ({"surrogate": "adaptive"}, "cmaes+adaptive-surrogate+ipop"),
    ],
)
def test_the_label_names_what_the_users_options_build(options, label):
    c = choose_estimator(10, 20_000, options=options)
    assert c.label == label and c.reason.startswith(f"auto chose {label}: ")


@pytest.mark.parametrize(("dim", "budget"), [(0, None), (3, 0), (3, 1.5)])
def test_bad_input_is_named(dim, budget):
    with pytest.raises(ValueError, match="dim must be|budget must be"):
        choose_estimator(dim, budget)


def test_minimize_defaults_to_auto_and_reports_the_choice():
    r = zoopt.minimize(sphere, torch.ones(6, dtype=torch.float64), max_evaluations=1000, seed=0)
    assert r.estimator == "cmaes"
    assert r.notes[0] == "auto chose cmaes+adaptive-surrogate+ipop: D = 6, budget 1,000"
    assert r.best_loss < 1e-6  # a quadratic: the model finds it in a few dozen evaluations


def test_noise_is_probed_and_counted():
    calls = []

    def noisy(X):
        calls.append(len(X))
        return sphere(X) + 0.1 * torch.rand(len(X), dtype=X.dtype)

    m = zoopt.Minimizer(noisy, torch.ones(3), steps=2, seed=0)
    assert m.estimator.name == "snes" and "noisy losses" in m.notes[0]
    assert m.evaluations == 2 == sum(calls)  # the probe's two evaluations are counted
    m.run()
    assert m.evaluations == sum(calls)


def test_a_degenerate_start_is_probed_again_at_a_draw():
    # a zero policy: every episode plays one action, so x0's returns agree across seeds,
    # and only the second point shows the noise
    def returns(X):
        noise = 0.1 * torch.rand(len(X), dtype=X.dtype)
        return torch.where(
            X.abs().sum(1) > 0, sphere(X) + noise, torch.zeros(len(X), dtype=X.dtype)
        )

    m = zoopt.Minimizer(returns, torch.zeros(3), steps=2, seed=0)
    assert m.estimator.name == "snes" and "noisy losses" in m.notes[0]
    assert m.evaluations == 4  # two pairs
    m = zoopt.Minimizer(sphere, torch.zeros(3), steps=2, seed=0)  # deterministic: 3 pairs
    assert m.estimator.name == "cmaes" and m.evaluations == 2 * (1 + PROBE_DRAWS)
    m = zoopt.Minimizer(returns, torch.zeros(101), steps=2, seed=0)  # snes whatever the noise
    assert m.estimator.name == "snes" and m.evaluations == 0


def test_the_probe_evaluations_seed_the_surrogate_and_the_best_point():
    m = zoopt.Minimizer(sphere, torch.full((4,), 0.5, dtype=torch.float64), steps=3, seed=0)
    probe = m.auto_choice.probe
    assert not probe.noisy and probe.points.shape == (1 + PROBE_DRAWS, 4)
    assert torch.equal(probe.points[0], torch.full((4,), 0.5, dtype=torch.float64))
    assert probe.losses.tolist() == sphere(probe.points).tolist()
    assert m.best_loss == min(probe.losses.tolist())  # x0 and the draws count as evaluated
    m.step()
    model = m.estimator._screen.model  # pycma's LQModel: the probe's points are in it
    archived = {tuple(x) for x in np.asarray(model.X).tolist()}
    assert {tuple(x) for x in probe.points.tolist()} <= archived
    # inside a box the loss belongs to the repaired point: nothing is reused
    boxed = zoopt.Minimizer(sphere, torch.zeros(4), bounds=(-1, 1), steps=3, seed=0)
    assert boxed.auto_choice.probe is None


def test_integer_and_ask_tell():
    m = zoopt.Minimizer(sphere, torch.ones(4), integer=[0], bounds=(-3, 3), steps=3)
    assert m.estimator.name == "cmaes" and not m.estimator.surrogate
    assert m.notes[0].endswith("bounds, integer coordinates")
    m = zoopt.Minimizer(None, torch.ones(4), steps=3)  # ask/tell: noise is not probed
    assert m.estimator.name == "cmaes" and m.evaluations == 0


def test_configs_default_to_auto():
    cfg = validate({"objective": {"kind": "function", "function": "sphere", "dim": 3}})
    assert cfg["estimator"] == "auto"


def test_a_state_from_another_choice_of_auto_is_refused_by_name() -> None:
    """auto's noise probe can choose differently when the objective's noise is not seeded:
    a state that ``cmaes`` wrote is not silently read by ``snes`` (nothing is restored)."""
    x0 = torch.full((6,), 0.5, dtype=torch.float64)
    a = zoopt.Minimizer(rosenbrock, x0, seed=1, progress=False)
    for _ in range(5):
        a.step()
    gen = torch.Generator().manual_seed(0)

    def noisy(X: torch.Tensor) -> torch.Tensor:  # noise the probe sees, outside its seeds
        return rosenbrock(X) + 0.01 * torch.rand(X.shape[0], generator=gen, dtype=X.dtype)

    b = zoopt.Minimizer(noisy, x0, seed=1, progress=False)
    assert (a.estimator.name, b.estimator.name) == ("cmaes", "snes")
    theta = b.theta.clone()
    with pytest.raises(ValueError, match=r"written by estimator 'cmaes' \(auto chose cmaes"):
        b.load_state_dict(a.state_dict())
    assert torch.equal(b.theta, theta) and b.step_count == 0
    c = zoopt.Minimizer(rosenbrock, x0, seed=1, progress=False)
    c.load_state_dict(a.state_dict())  # the same choice: resumes
    assert c.step_count == 5


def test_a_given_verdict_on_noise_skips_the_probe() -> None:
    calls = []

    def noisy(X):
        calls.append(len(X))
        return sphere(X) + 0.1 * torch.rand(len(X), dtype=X.dtype)

    m = zoopt.Minimizer(noisy, torch.ones(3), steps=2, seed=0, noisy=True)
    assert m.estimator.name == "snes" and "noisy losses" in m.notes[0]
    assert m.evaluations == 0 == sum(calls) and m.auto_choice.probe is None
    m = zoopt.Minimizer(noisy, torch.ones(3), steps=2, seed=0, noisy=False)
    assert m.estimator.name == "cmaes" and m.evaluations == 0 == sum(calls)
    with pytest.raises(TypeError, match=r"noisy must be True, False or None"):
        zoopt.Minimizer(sphere, torch.ones(3), steps=2, noisy="yes")


def test_a_state_keeps_the_verdict_and_a_rebuilt_run_resumes_without_probing() -> None:
    """Noise that is not seeded can make a second probe choose otherwise; the state keeps
    the first verdict, and a run rebuilt with it makes the same choice and spends nothing."""
    gen = torch.Generator().manual_seed(0)
    calls = []

    def noisy(X: torch.Tensor) -> torch.Tensor:
        calls.append(len(X))
        return rosenbrock(X) + 0.01 * torch.rand(X.shape[0], generator=gen, dtype=X.dtype)

    x0 = torch.full((6,), 0.5, dtype=torch.float64)
    a = zoopt.Minimizer(noisy, x0, seed=1, progress=False)
    for _ in range(3):
        a.step()
    state = a.state_dict()
    assert state["auto_noisy"] is True and state["estimator_name"] == "snes"
    calls.clear()
    b = zoopt.Minimizer(noisy, x0, seed=1, progress=False, noisy=state["auto_noisy"])
    assert sum(calls) == 0 and b.estimator.name == "snes"
    b.load_state_dict(state)
    assert b.step_count == 3 and b.evaluations == a.evaluations
    # ask/tell knows no verdict
    assert zoopt.Minimizer(None, x0, steps=2).state_dict()["auto_noisy"] is None
