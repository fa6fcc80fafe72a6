"""zoopt.minimize: the loop's contract, options and errors on bad input."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

import zoopt
from zoopt.objectives import sphere


def test_result_fields_and_history():
    r = zoopt.minimize(sphere, torch.ones(5), estimator="es", steps=30, seed=1)
    assert r.x.shape == r.best_x.shape == (5,)
    assert r.loss == pytest.approx(float(sphere(r.x[None])[0]))
    assert r.best_loss <= min(r.history["loss"])
    assert r.steps == 30 and r.stop_reason == "steps"
    for key in zoopt.result.HISTORY_KEYS:
        assert len(r.history[key]) == 30, key
    ev = r.history["evaluations"]
    assert all(b > a for a, b in zip(ev, ev[1:], strict=False))
    # K = 4 + ⌊3 ln 5⌋ = 8 candidates (es's default at D ≤ 20) per step, the centre at
    # steps 1, 11 and 21, and the final evaluation
    assert r.evaluations == 30 * 8 + 3 + 1


def test_same_seed_same_result_different_seed_different():
    a = zoopt.minimize(sphere, torch.ones(5), steps=25, seed=4)
    b = zoopt.minimize(sphere, torch.ones(5), steps=25, seed=4)
    c = zoopt.minimize(sphere, torch.ones(5), steps=25, seed=5)
    assert torch.equal(a.x, b.x) and a.history["loss"] == b.history["loss"]
    assert not torch.equal(a.x, c.x)


def test_module_parameters_are_optimised_in_place():
    model = nn.Linear(3, 1)
    target = torch.tensor([1.0, -2.0, 0.5, 0.25])

    def distance(X):
        return ((X - target) ** 2).sum(-1)

    r = zoopt.minimize(distance, model, estimator="es", steps=300, lr=0.05)
    flat = nn.utils.parameters_to_vector(model.parameters())
    assert torch.equal(flat.detach(), r.x)
    assert r.loss < 1e-2


def test_any_torch_optimizer_by_name_or_class_and_schedules():
    r1 = zoopt.minimize(
        sphere, torch.ones(4), estimator="gradient", steps=50, optimizer="SGD", lr=0.1
    )
    r2 = zoopt.minimize(
        sphere, torch.ones(4), estimator="gradient", steps=50, optimizer=torch.optim.SGD, lr=0.1
    )
    assert torch.equal(r1.x, r2.x)
    r = zoopt.minimize(
        sphere,
        torch.ones(4),
        estimator="gradient",
        steps=20,
        optimizer="adamw",
        lr=0.1,
        schedule="cosine",
        warmup_steps=5,
    )
    lrs = r.history["lr"]  # the rate each step used
    assert lrs[0] == pytest.approx(0.1 / 6)  # LinearLR warm-up starts at 1/(warmup + 1)
    assert lrs[0] < lrs[4] < lrs[5] == pytest.approx(0.1, rel=1e-6)  # rises to the base lr
    assert lrs[-1] < 0.02  # then decays


def test_clipping_bounds_the_update():
    x0 = torch.ones(4, dtype=torch.float64)
    r = zoopt.minimize(
        lambda X: 1e6 * sphere(X),
        x0,
        estimator="gradient",
        steps=5,
        optimizer="sgd",
        lr=1.0,
        max_step_norm=0.01,
    )
    assert max(r.history["update_norm"]) <= 0.01 + 1e-9
    r = zoopt.minimize(
        lambda X: 1e6 * sphere(X),
        x0,
        estimator="gradient",
        steps=5,
        optimizer="sgd",
        lr=1e-3,
        max_grad_norm=1.0,
    )
    assert max(r.history["update_norm"]) <= 1e-3 + 1e-12


def test_max_evaluations_and_callback_stop_early():
    r = zoopt.minimize(sphere, torch.ones(4), estimator="es", steps=100, max_evaluations=100)
    # 8 candidates a step, + the centre at steps 1 and 11: 13 steps reach 100 evaluations
    assert r.stop_reason == "max_evaluations" and r.steps == 13
    seen = []
    r = zoopt.minimize(
        sphere,
        torch.ones(4),
        steps=100,
        callback=lambda row: seen.append(row["step"]) or row["step"] >= 3,
    )
    assert r.stop_reason == "callback" and r.steps == 3 and seen == [1, 2, 3]


def test_parameters_never_go_nan():
    with pytest.raises(zoopt.NonFiniteError, match="step 1") as info:
        zoopt.minimize(
            lambda X: 1e30 * sphere(X) ** 4,
            torch.ones(3) * 1e3,
            estimator="gradient",
            optimizer="sgd",
            lr=1e30,
            steps=3,
        )
    assert torch.isfinite(info.value.result.x).all()


def test_whole_population_failing_names_the_step():
    calls = {"n": 0}

    def dies_later(X):
        calls["n"] += 1
        out = sphere(X)
        return out * math.nan if calls["n"] > 1 else out  # one call per step, θ included

    with pytest.raises(zoopt.NonFiniteError, match=r"step 2: .*all 8 losses"):
        zoopt.minimize(dies_later, torch.ones(3), estimator="es", steps=10)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(estimator="nope"), ValueError, r"estimator must be one of .*'es'"),
        (dict(estimator="sampl"), ValueError, "Did you mean 'sampling'"),
        (dict(optimizer="adamm"), ValueError, "Did you mean 'adam'"),
        (dict(sigma=0.0), ValueError, "sigma must be a number > 0"),
        (dict(sigma=-1.0, estimator="es"), ValueError, "sigma"),
        (dict(estimator="sampling", alpha=0.0), ValueError, "alpha must be a number > 0"),
        (dict(estimator="sampling", alpha=-2.0), ValueError, "alpha"),
        (dict(population=1), ValueError, "population must be an int >= 2"),
        (dict(estimator="snes", population=7), ValueError, "population must be even"),
        (dict(population=2.5), TypeError, "population must be an int"),
        (dict(lr=0.0), ValueError, "lr must be a positive number"),
        (dict(steps=0), ValueError, "steps must be a positive int"),
        (dict(estimator="sampling", ess_fraction=2.0), ValueError, "ess_fraction"),
        (dict(shaping="bogus", estimator="es"), ValueError, "shaping must be one of"),
        (dict(bogus_option=1), TypeError, "Its options are"),
        (dict(schedule="wiggly"), ValueError, "schedule must be one of"),
        (dict(max_grad_norm=-1), ValueError, "max_grad_norm"),
    ],
)
def test_bad_options_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        zoopt.minimize(sphere, torch.ones(3), **{"steps": 2, **kwargs})


@pytest.mark.parametrize(
    ("x0", "error", "match"),
    [
        (torch.tensor([1.0, float("nan")]), ValueError, "x0 must be finite"),
        (torch.ones(2, 2), ValueError, r"x0 must be a non-empty 1-D tensor \(D,\)"),
        (torch.ones(0), ValueError, "x0 must be a non-empty"),
        ("abc", TypeError, "x0 must be a 1-D tensor"),
        (nn.ReLU(), ValueError, "no parameters"),
    ],
)
def test_bad_x0(x0, error, match):
    with pytest.raises(error, match=match):
        zoopt.minimize(sphere, x0, steps=2)


@pytest.mark.parametrize(
    ("fn", "error", "match"),
    [
        # the population (snes's default K = 8 rows at D = 3) and θ go in one call
        (lambda X: X, ValueError, r"shape \(9,\) .*got shape \(9, 3\).*batched=False"),
        (lambda X: X.sum(), ValueError, r"got shape \(\)"),
        (lambda X: [0.0] * len(X), TypeError, "must return a Tensor"),
        (lambda X: (X > 0).all(-1), TypeError, "floating-point"),
    ],
)
def test_objective_returning_wrong_shape_or_dtype(fn, error, match):
    with pytest.raises(error, match=match):
        zoopt.minimize(fn, torch.ones(3), estimator="snes", steps=2)


def test_objective_that_is_not_callable():
    with pytest.raises(TypeError, match="objective must be"):
        zoopt.minimize(42, torch.ones(3), steps=2)


def test_estimator_object_for_full_control():
    est = zoopt.get_estimator("es", sigma=0.05, population=8)
    r = zoopt.minimize(sphere, torch.ones(3), estimator=est, steps=10)
    assert r.evaluations == 10 * 8 + 1 + 1  # the centre at step 1 and at the end
    with pytest.raises(TypeError, match="options"):
        zoopt.minimize(sphere, torch.ones(3), estimator=est, sigma=0.1, steps=2)


def test_run_can_be_called_again_to_continue():
    m = zoopt.Minimizer(sphere, torch.ones(3), estimator="es", steps=10)
    assert m.run(4).steps == 4
    assert m.run(10).steps == 10
    whole = zoopt.minimize(sphere, torch.ones(3), estimator="es", steps=10)
    assert torch.equal(m.x, whole.x)


def test_local_evaluator_refuses_an_empty_population():
    empty = zoopt.ExplicitPopulation(torch.ones(0, 3))
    with pytest.raises(ValueError, match="at least one candidate"):
        zoopt.LocalEvaluator().evaluate(zoopt.FunctionObjective(sphere), empty, 0)


# ---------------------------------------------------------------------------------------
# the centre schedule and its counting
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ars", "pgpe", "snes"])
def test_population_estimators_evaluate_the_centre_every_tenth_step_and_count_it_apart(name):
    from zoopt.objectives import GymObjective

    objective = GymObjective("CartPole-v1", episodes=2)
    k = 4
    r = zoopt.minimize(
        objective, torch.zeros(objective.dim), estimator=name, steps=12, seed=1, population=k
    )
    evaluated = [i + 1 for i, v in enumerate(r.history["loss"]) if not math.isnan(v)]
    assert evaluated == [1, 11]  # steps 1, 11, … (the final one comes after)
    assert r.history["center_evaluations"][-1] == 2
    assert r.center_evaluations == 3 and r.evaluations == 12 * k + 3  # with the final one
    assert r.history["training_episodes"][-1] == 12 * k * 2
    assert r.history["center_episodes"][-1] == 2 * 2
    assert objective.episodes_played == (12 * k + 3) * 2  # every episode played is counted


def test_centre_schedule_is_an_option_and_gradient_estimators_keep_every_step():
    every = zoopt.minimize(sphere, torch.ones(3), estimator="es", steps=3, evaluate_center=True)
    assert not any(math.isnan(v) for v in every.history["loss"])
    assert every.history["center_evaluations"] == [1, 2, 3]
    es = zoopt.minimize(sphere, torch.ones(3), estimator="es", steps=3, population=4)
    assert es.history["center_evaluations"] == [1, 1, 1]
    assert "training_episodes" not in es.history  # not an episodic objective
    grad = zoopt.minimize(sphere, torch.ones(3), estimator="gradient", steps=3)
    assert grad.history["center_evaluations"] == [1, 2, 3]
    # cmaes without a surrogate as the others; with one, never (its steps are increments)
    cma = zoopt.minimize(sphere, torch.ones(3), estimator="cmaes", steps=12, seed=0)
    assert cma.history["center_evaluations"][-1] == 2
    lq = zoopt.minimize(sphere, torch.ones(3), estimator="cmaes", surrogate=True, steps=5)
    assert lq.history["center_evaluations"][-1] == 0


def test_an_estimator_that_owns_its_mean_never_builds_the_optimizer():
    """CMA-ES steps its own mean: no torch.optim optimizer is built, so the run does not pay
    the import of torch._dynamo that the first one in a process costs (seconds)."""
    code = (
        "import sys, torch, zoopt\n"
        "r = zoopt.minimize(lambda x: (x ** 2).sum(-1), torch.ones(4), estimator='cmaes',\n"
        "                   max_evaluations=200, progress=False)\n"
        "print(r.loss < 1e-2, 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True
    )
    assert out.stdout.split() == ["True", "False"]


def test_optimizer_options_are_checked_even_when_the_optimizer_is_built_late():
    f = zoopt.FunctionObjective(lambda x: (x**2).sum(-1))
    with pytest.raises(TypeError, match="optimizer_options do not fit Adam.*betaz"):
        zoopt.Minimizer(f, torch.ones(3), estimator="cmaes", optimizer_options={"betaz": 1})
    m = zoopt.Minimizer(f, torch.ones(3), estimator="es", lr=0.05, optimizer="sgd", seed=0)
    m.step()
    assert isinstance(m.optimizer, torch.optim.SGD)
    assert m.optimizer.param_groups[0]["lr"] == 0.05


class _Scripted(zoopt.estimators.Estimator):
    """Proposes the parameters (or the pseudo-gradients) it is given, one per step."""

    name = "scripted"

    def __init__(self, steps: list[dict]):
        self.steps = steps

    def estimate(self, objective, x, evaluator, seed):
        return zoopt.estimators.Estimate(**self.steps.pop(0), evaluations=1)


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        ([{"x": torch.tensor([1.0, math.nan])}], "step 1: scripted proposed NaN/Inf"),
        ([{"x": torch.ones(2)}, {"x": torch.tensor([math.inf, 0.0])}], "step 2: scripted"),
        ([{"grad": torch.tensor([0.0, -math.inf])}], "step 1: scripted produced a NaN/Inf"),
        ([{"grad": torch.tensor([-3e38, 0.0])}], "step 1: parameters became NaN/Inf"),
    ],
)
def test_non_finite_steps_are_caught_whatever_their_norm(steps, match):
    """The finiteness checks read a norm first: a NaN/Inf entry still fails the step and
    keeps the last finite parameters."""
    x0 = torch.tensor([3e38, 0.0])
    with pytest.raises(zoopt.NonFiniteError, match=match) as info:
        zoopt.minimize(
            sphere, x0, estimator=_Scripted(steps), optimizer="sgd", lr=1.0, steps=3,
            evaluate_center=False,
        )  # fmt: skip
    assert torch.isfinite(info.value.result.x).all()


def test_finite_parameters_whose_step_norm_overflows_are_kept():
    """A finite proposal whose distance from θ overflows float32 is a step, not a failure."""
    far = torch.tensor([-3e38, 3e38])
    m = zoopt.Minimizer(
        sphere, torch.tensor([3e38, -3e38]), estimator=_Scripted([{"x": far}]), steps=1,
        evaluate_center=False,
    )  # fmt: skip
    row = m.step()
    assert torch.equal(m.theta, far) and row["update_norm"] == math.inf
