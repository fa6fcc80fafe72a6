"""The user-facing loop: ask/tell, scalar objectives, bounds, results in x0's type, schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import zoopt
from zoopt.estimators import ESTIMATORS, PopulationEstimator
from zoopt.objectives import sphere

#: estimators that search parameter space (ask/tell, scalar objectives, bounds)
PARAMETER_SPACE = [
    n for n in zoopt.available_estimators() if issubclass(ESTIMATORS[n], PopulationEstimator)
]

#: small, quick settings per estimator
OPTIONS = {"cmaes": {"sigma": 0.3}}


def options(name: str) -> dict:
    return OPTIONS.get(name, {"population": 8, "sigma": 0.1})


def np_sphere(x: np.ndarray) -> float:
    """The pycma/Nevergrad way: one numpy vector in, one float out."""
    assert isinstance(x, np.ndarray) and x.ndim == 1
    return float(np.sum((x - 0.5) ** 2))


def torch_sphere(x: torch.Tensor) -> float:
    assert isinstance(x, torch.Tensor) and x.ndim == 1
    return float(((x - 0.5) ** 2).sum())


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True)
    )


# ---------------------------------------------------------------------------------------
# ask / tell
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PARAMETER_SPACE)
def test_ask_tell_reproduces_minimize(name):
    x0 = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)
    # every step's rows include the centre (ars and pgpe would evaluate it every 10th)
    kw = dict(estimator=name, seed=3, evaluate_center=True, **options(name))
    ref = zoopt.minimize(sphere, x0, steps=6, **kw)
    # the same rows (the centre included) and losses by hand give the same run, exactly
    m = zoopt.Minimizer(None, x0, **kw)
    for _ in range(6):
        X = m.ask()
        m.tell(sphere(X))
    res = m.result()  # no objective: the final x is not evaluated, unlike minimize's
    assert torch.equal(res.x, ref.x) and res.evaluations == ref.evaluations - 1
    assert res.best_loss == ref.history["best_loss"][-1]
    stepped = zoopt.Minimizer(sphere, x0, **kw)
    for _ in range(6):
        stepped.step()
    assert torch.equal(res.best_x, stepped.result(evaluate_final=False).best_x)
    for key in zoopt.result.HISTORY_KEYS:
        if key != "seconds":
            assert _same(res.history[key], ref.history[key]), key
    # without the centre: K rows a step, the same trajectory of θ
    bare = zoopt.Minimizer(None, x0, **{**kw, "evaluate_center": None})
    m = zoopt.Minimizer(None, x0, **kw)
    for _ in range(6):
        X = bare.ask()
        assert len(X) == len(m.ask()) - 1
        m.tell(sphere(m.ask()))
        bare.tell(sphere(X).numpy())
        assert torch.equal(bare.x, m.x)
    assert math.isnan(bare.history["loss"][0])  # no centre evaluated, none reported
    assert not torch.equal(ref.x, x0)


def test_ask_tell_numpy_user_loop_and_state_dict():
    x0 = np.array([1.0, -2.0, 0.5])
    m = zoopt.Minimizer(None, x0, estimator="es", seed=1, population=6, sigma=0.2)
    X = m.ask()
    assert isinstance(X, np.ndarray) and X.shape == (6, 3)
    assert np.array_equal(m.ask(), X)  # asking again before tell: the same rows
    m.tell([np_sphere(x) for x in X])  # a plain list of floats
    state = m.state_dict()
    twin = zoopt.Minimizer(None, x0, estimator="es", seed=1, population=6, sigma=0.2)
    twin.load_state_dict(state)
    for mm in (m, twin):
        for _ in range(3):
            mm.tell(torch.tensor([np_sphere(x) for x in mm.ask()]))
    assert isinstance(m.x, np.ndarray) and isinstance(m.best_x, np.ndarray)
    assert np.array_equal(m.x, twin.x) and m.best_loss == twin.best_loss
    res = m.result()
    assert isinstance(res.x, np.ndarray) and math.isnan(res.loss)  # no objective to evaluate
    assert res.best_loss < np_sphere(x0)


def test_ask_tell_errors():
    m = zoopt.Minimizer(None, torch.zeros(3), estimator="es", population=4)
    with pytest.raises(RuntimeError, match="tell\\(\\) needs a pending ask\\(\\)"):
        m.tell([0.0] * 4)
    m.ask()
    with pytest.raises(ValueError, match="expected 4 losses, one per row of ask\\(\\)"):
        m.tell([0.0] * 5)
    with pytest.raises(TypeError, match="expected 4 real numbers"):
        m.tell(["a"] * 4)
    m.tell([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(RuntimeError, match="pending ask"):
        m.tell([1.0, 2.0, 3.0, 4.0])  # told twice
    with pytest.raises(RuntimeError, match="objective=None.*ask\\(\\) and tell\\(\\)"):
        m.step()
    for name in ("gradient", "reinforce"):
        with pytest.raises(TypeError, match=f"{name!r} evaluates the objective itself"):
            zoopt.Minimizer(None, torch.zeros(3), estimator=name)
    m = zoopt.Minimizer(sphere, torch.zeros(3), estimator="gradient")
    with pytest.raises(TypeError, match="no ask\\(\\)/tell\\(\\)"):
        m.ask()


def test_ask_tell_all_failed_losses_name_the_step():
    m = zoopt.Minimizer(None, torch.zeros(3), estimator="es", population=4)
    m.tell([1.0] * len(m.ask()))
    m.ask()
    with pytest.raises(zoopt.NonFiniteError, match="step 2: es: all 4 losses"):
        m.tell([math.nan] * 4)


@pytest.mark.parametrize(
    ("every", "sizes", "finite"),
    [(True, [9] * 6, [1] * 6), (False, [8] * 6, [0] * 6), (3, [9, 8, 8, 9, 8, 8], [1, 0, 0] * 2)],
)
def test_centre_rides_in_the_population_call(every, sizes, finite):
    calls = []

    class Counting(zoopt.LocalEvaluator):
        def evaluate(self, objective, population, seed):
            calls.append(len(population))
            return super().evaluate(objective, population, seed)

    res = zoopt.minimize(
        sphere, torch.ones(3), estimator="es", population=8, steps=6, evaluator=Counting(),
        evaluate_center=every,
    )  # fmt: skip
    assert calls == [*sizes, 1]  # one call a step; the final θ alone at the end
    assert [int(math.isfinite(v)) for v in res.history["loss"]] == finite
    assert res.evaluations == sum(calls)
    # θ's loss in the batch is the loss it has alone
    x = torch.ones(3)
    assert res.history["loss"][0] == float(sphere(x[None])[0]) if every else True


# ---------------------------------------------------------------------------------------
# scalar objectives
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PARAMETER_SPACE)
def test_scalar_numpy_and_tensor_functions(name):
    x0 = np.zeros(4)
    res = zoopt.minimize(np_sphere, x0, batched=False, steps=25, seed=0, lr=0.05, **options(name))
    assert isinstance(res.x, np.ndarray) and isinstance(res.best_x, np.ndarray)
    assert res.best_loss < np_sphere(x0) and res.loss == pytest.approx(np_sphere(res.x))
    # a list x0 is numpy too; a tensor x0 hands f tensors and returns tensors
    as_list = zoopt.minimize(np_sphere, [0.0] * 4, batched=False, steps=2, **options(name))
    assert isinstance(as_list.x, np.ndarray)
    t = zoopt.minimize(torch_sphere, torch.zeros(4), batched=False, steps=2, **options(name))
    assert isinstance(t.x, torch.Tensor)
    # the same numbers as the batched function
    batched = zoopt.minimize(
        lambda X: ((X - 0.5) ** 2).sum(-1), torch.zeros(4, dtype=torch.float64), steps=3
    )
    x0 = torch.zeros(4, dtype=torch.float64)
    scalar = zoopt.minimize(torch_sphere, x0, batched=False, steps=3)
    assert torch.equal(batched.x, scalar.x)


def test_scalar_functions_on_ray(ray_address):
    import sys

    import ray

    from zoopt.evaluators.ray import RayEvaluator

    # workers import nothing from this file: ship its functions by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with RayEvaluator(num_workers=2, num_cpus_per_worker=0.5) as ev:
        for name in PARAMETER_SPACE:
            for fn, x0 in ((np_sphere, np.ones(3)), (torch_sphere, torch.ones(3))):
                kw = dict(batched=False, estimator=name, steps=3, seed=2, **options(name))
                local = zoopt.minimize(fn, x0, **kw)
                remote = zoopt.minimize(fn, x0, evaluator=ev, **kw)
                assert type(remote.x) is type(x0)
                assert np.array_equal(np.asarray(local.x), np.asarray(remote.x)), name
                assert _same(local.history["loss"], remote.history["loss"]), name
                assert local.best_loss == remote.best_loss < fn(x0), name
        # bounds around a factory: the workers build both, the box still holds
        factory = zoopt.ObjectiveFactory(zoopt.FunctionObjective, strict_box)
        kw = dict(estimator="es", bounds=(LOWER, UPPER), steps=3, seed=1, sigma=0.5, population=6)
        local = zoopt.minimize(factory, torch.zeros(3, dtype=torch.float64), **kw)
        remote = zoopt.minimize(factory, torch.zeros(3, dtype=torch.float64), evaluator=ev, **kw)
        assert torch.equal(local.x, remote.x) and local.best_loss == remote.best_loss


def test_batched_call_failure_explains_batched_false():
    with pytest.raises(Exception) as info:  # numpy's own error, with a note
        zoopt.minimize(lambda x: float(np.sum(np.asarray(x) ** 2)), np.zeros(3), steps=1)
    text = str(info.value) + "".join(getattr(info.value, "__notes__", []))
    assert "(K, D)" in text and "batched=False" in text
    with pytest.raises(TypeError, match=r"\(K, D\).*batched=False"):
        zoopt.minimize(lambda X: 1.0, torch.zeros(3), steps=1)


def test_scalar_function_bad_return():
    with pytest.raises(TypeError, match="must return one real number.*shape \\(3,\\)"):
        zoopt.minimize(lambda x: x, np.zeros(3), batched=False, steps=1)
    with pytest.raises(ValueError, match="batched=False applies to plain functions"):
        zoopt.minimize(zoopt.FunctionObjective(sphere), np.zeros(3), batched=False, steps=1)


# ---------------------------------------------------------------------------------------
# bounds
# ---------------------------------------------------------------------------------------
LOWER = np.array([-1.0, 0.0, -np.inf])
UPPER = np.array([0.5, 2.0, 0.25])


def strict_box(X: torch.Tensor) -> torch.Tensor:
    """Raises for any point outside the box; the optimum lies outside (at 1, -1, 1)."""
    lo, hi = torch.as_tensor(LOWER).to(X), torch.as_tensor(UPPER).to(X)
    if bool(((X < lo) | (X > hi)).any()):
        raise AssertionError("evaluated outside the box")
    return ((X - torch.tensor([1.0, -1.0, 1.0]).to(X)) ** 2).sum(-1)


@pytest.mark.parametrize("name", PARAMETER_SPACE)
def test_bounds_never_violated(name):
    x0 = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    res = zoopt.minimize(
        strict_box, x0, estimator=name, bounds=(LOWER, UPPER), steps=30, seed=0, lr=0.1,
        **{**options(name), "sigma": 0.5},
    )  # fmt: skip
    for x in (res.x, res.best_x):
        assert bool((x >= torch.as_tensor(LOWER)).all() and (x <= torch.as_tensor(UPPER)).all())
    assert res.best_loss < float(strict_box(x0[None])[0])
    # ask/tell rows lie inside the box too; integer coordinates come rounded
    m = zoopt.Minimizer(None, x0, estimator=name, bounds=(-1, 1), integer=[1], seed=0, sigma=2.0)
    for _ in range(3):
        X = m.ask()
        assert float(X.abs().max()) <= 1.0 and torch.equal(X[:, 1], X[:, 1].round())
        m.tell(sphere(X))


def test_bounds_with_gradient_and_scalar_numpy():
    res = zoopt.minimize(strict_box, torch.zeros(3), estimator="gradient", bounds=(LOWER, UPPER))
    assert torch.allclose(res.x, torch.tensor([0.5, 0.0, 0.25]), atol=1e-3)
    res = zoopt.minimize(
        lambda x: np_sphere(x) if abs(x).max() <= 0.1 else math.nan,
        np.zeros(2), batched=False, bounds=(-0.1, 0.1), estimator="es", steps=20, lr=0.05,
    )  # fmt: skip
    assert np.abs(res.x).max() <= 0.1 and np.allclose(res.x, 0.1, atol=0.02)


@pytest.mark.parametrize(
    ("bounds", "integer", "match"),
    [
        ((0, 1, 2), None, "bounds must be \\(lower, upper\\)"),
        ((np.zeros(2), 1), None, "shape \\(2,\\)"),
        ((1, 0), None, "lower > upper at coordinates \\[0, 1, 2\\]"),
        ((0.5, 1), None, "x0 lies outside bounds at coordinates \\[0, 1, 2\\]"),
        ((math.nan, 1), None, "got NaN"),
        (None, [3], "integer must be a list of coordinate indices in \\[0, 3\\)"),
        (None, [0.5], "integer must be"),
    ],
)
def test_bad_bounds(bounds, integer, match):
    with pytest.raises(ValueError, match=match):
        zoopt.Minimizer(sphere, torch.zeros(3), bounds=bounds, integer=integer)


# ---------------------------------------------------------------------------------------
# frictions
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_schedule_follows_max_evaluations(schedule):
    # 8 evaluations a step, + the centre at step 1: max_evaluations=81 ends the run after 10
    # of the 500 steps
    res = zoopt.minimize(
        sphere, torch.ones(3), estimator="es", population=8, schedule=schedule,
        max_evaluations=81, lr=0.1, covariance="none", eta_mean=None,  # the optimizer's step
    )  # fmt: skip
    assert res.stop_reason == "max_evaluations" and res.steps == 10
    lrs = res.history["lr"]
    assert lrs[0] == 0.1 and lrs[-1] < 0.02  # decays to its end, not 2% of the way
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_schedule_resumes_with_its_horizon():
    kw = dict(estimator="es", population=8, schedule="cosine", max_evaluations=90, lr=0.1,
              covariance="none", eta_mean=None)  # fmt: skip
    whole = zoopt.minimize(sphere, torch.ones(3), **kw)
    a = zoopt.Minimizer(sphere, torch.ones(3), **kw)
    a.run(4)
    b = zoopt.Minimizer(sphere, torch.ones(3), **kw)
    b.load_state_dict(a.state_dict())
    rest = b.run()
    assert rest.history["lr"] == whole.history["lr"] and torch.equal(rest.x, whole.x)


def test_callback_row_has_best_metric():
    rows = []
    zoopt.minimize(sphere, torch.ones(3), steps=3, callback=rows.append)
    assert [r["best_metric"] for r in rows] == [r["best_loss"] for r in rows]


# ---------------------------------------------------------------------------------------
# update rules
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["adamw", "AdaBound", "amsbound", "lion"])
def test_optimizers_by_name(name):
    if name != "adamw":
        pytest.importorskip("pytorch_optimizer")
    m = zoopt.Minimizer(sphere, torch.ones(3), estimator="es", optimizer=name, lr=0.05, steps=15)
    res = m.run()
    assert res.best_loss < 3.0
    if name == "amsbound":
        assert m.optimizer.defaults["ams_bound"] is True


@pytest.mark.parametrize("optimizer", ["muon", "Muon", "normuon", torch.optim.Muon])
def test_muon_is_refused_by_name(optimizer):
    with pytest.raises(ValueError, match="Muon.*needs 2-D weight matrices.*flat parameter"):
        zoopt.minimize(sphere, torch.ones(3), optimizer=optimizer, steps=1)


def test_unknown_optimizer_suggests_a_name():
    pytest.importorskip("pytorch_optimizer")
    with pytest.raises(ValueError, match="pytorch-optimizer.*Did you mean 'adabound'"):
        zoopt.minimize(sphere, torch.ones(3), optimizer="adabund", steps=1)


# ---------------------------------------------------------------------------------------
# nn.Module x0 with a plain function
# ---------------------------------------------------------------------------------------
def _bn_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(), torch.nn.Linear(4, 1)
    )
    with torch.no_grad():  # running statistics that differ from the defaults
        model[1].running_mean.fill_(0.3)
        model[1].running_var.fill_(2.0)
    return model


def test_batched_forward_matches_the_module_row_by_row():
    model = _bn_model().eval()
    forward = zoopt.batched_forward(model)
    inputs = torch.randn(5, 3)
    flat = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    X = torch.stack([flat, flat + 0.1, flat - 0.2])
    out = forward(X, inputs)
    assert out.shape == (3, 5, 1)
    for row, got in zip(X, out, strict=True):
        torch.nn.utils.vector_to_parameters(row, model.parameters())
        assert torch.allclose(model(inputs), got, atol=1e-6)
    with pytest.raises(ValueError, match=r"X must be \(K, 29\) flat parameter rows"):
        forward(torch.zeros(2, 5), inputs)


@pytest.mark.parametrize("name", ["gradient", "es"])
def test_module_x0_with_plain_function_keeps_batchnorm_statistics(name):
    model = _bn_model().train()  # in training mode, as a user leaves it
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    forward = zoopt.batched_forward(model)
    inputs, targets = torch.randn(16, 3), torch.randn(16, 1)

    def mse(X):
        return ((forward(X, inputs) - targets) ** 2).mean((-1, -2))

    start = float(mse(torch.nn.utils.parameters_to_vector(model.parameters()).detach()[None]))
    res = zoopt.minimize(mse, model, estimator=name, steps=20, lr=0.05, seed=0)
    assert res.best_loss < start  # it learned
    for k, v in before.items():
        assert torch.equal(model.state_dict()[k], v), k  # and trained no running statistics
    assert model.training  # the module's own mode is left as it was


# ---------------------------------------------------------------------------------------
# the guide's first examples (docs/python.md) run as written
# ---------------------------------------------------------------------------------------
def _readme_blocks(section: str) -> list[str]:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "python.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [b.split("```", 1)[0] for b in body.split("```python\n")[1:]]


def test_readme_scalar_and_ask_tell_examples(capsys):
    blocks = _readme_blocks("Your function, your loop")
    assert len(blocks) == 2
    scalar, ask_tell = ({}, {})
    exec(compile(blocks[0], "docs/python.md scalar example", "exec"), scalar)
    res = scalar["result"]
    assert isinstance(res.x, np.ndarray) and np.abs(res.x).max() <= 1.0
    assert np.allclose(res.x, 1.0, atol=0.05)  # the optimum in the box is its corner
    exec(compile(blocks[1], "docs/python.md ask/tell example", "exec"), ask_tell)
    m = ask_tell["m"]
    assert m.step_count == 8 and -m.best_loss > 100  # it learned to balance a while
    assert "[" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------
# [objective] bounds in configs
# ---------------------------------------------------------------------------------------
def test_config_bounds(tmp_path):
    from zoopt.config import ConfigError, load_config
    from zoopt.experiment import run_experiment

    path = tmp_path / "boxed.toml"
    path.write_text(
        'seed = 0\nestimator = "es"\n[objective]\nkind = "function"\nfunction = "sphere"\n'
        "dim = 3\nx0 = 0.5\nbounds = [[0.25, 0.0, -inf], 1.0]\n"
        "[estimators.es]\nsigma = 0.3\npopulation = 8\n[budget]\nsteps = 20\n"
        '[output]\nprogress = "none"\n'
    )
    cfg = load_config(path)
    assert cfg["objective"]["bounds"] == [[0.25, 0.0, -math.inf], 1.0]
    summary = run_experiment(cfg, run_dir=tmp_path / "run")
    best, last = (torch.load(summary.files[k], weights_only=True) for k in ("best", "last"))
    for x in (best, last):
        assert float(x[0]) >= 0.25 and float(x[1]) >= 0.0 and float(x.max()) <= 1.0
    assert float(last[0]) == pytest.approx(0.25, abs=0.05)  # pressed against its bound
    good = "bounds = [[0.25, 0.0, -inf], 1.0]"
    text = path.read_text()
    for bad in ("[1.0]", "[0.0, nan]", '["a", 1]', "[[], 1]"):
        path.write_text(text.replace(good, f"bounds = {bad}"))
        with pytest.raises(ConfigError, match=r"objective.bounds: must be \[lower, upper\]"):
            load_config(path)
