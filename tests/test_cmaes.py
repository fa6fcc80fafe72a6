"""The "cmaes" estimator: pycma behind zoopt's loop, bit-for-bit, quiet and resumable."""

from __future__ import annotations

import io
import math
import warnings

import cma
import numpy as np
import pytest
import torch

import zoopt
from zoopt.estimators.cmaes import CMAES, DIAGONAL_ABOVE, MODEL_STEP_MAX_NORM
from zoopt.estimators.cmaes import MODEL_KEEP_FRACTION as CMAES_KEEP
from zoopt.evaluators.local import LocalEvaluator
from zoopt.minimize import step_seed
from zoopt.objectives import rastrigin, rosenbrock, sphere


class Recorder:
    """A batched objective that keeps every population it is asked to evaluate."""

    def __init__(self, fn):
        self.fn, self.populations = fn, []

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        # a generation and, as its last row, the mean (``evaluate_center=True``): keep the
        # generation
        if len(X) > 1:
            self.populations.append(X[:-1].clone())
        return self.fn(X)


def direct_strategy(est: CMAES, x0: np.ndarray, seed: int) -> cma.CMAEvolutionStrategy:
    """pycma driven directly with the options and generator the estimator documents."""
    rng = np.random.Generator(np.random.PCG64(step_seed(seed, 0)))
    opts = est.pycma_options(len(x0))
    opts["randn"] = lambda lam, dim: rng.standard_normal((lam, dim))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycma's notes on its default option strings
        return cma.CMAEvolutionStrategy(x0, est.sigma, opts)


def f64(fn):
    return lambda x: float(fn(torch.as_tensor(np.asarray(x), dtype=torch.float64)[None])[0])


def test_visits_the_points_of_pycma_driven_directly() -> None:
    rec = Recorder(rosenbrock)
    x0 = torch.zeros(8, dtype=torch.float64)
    m = zoopt.Minimizer(
        rec, x0, estimator="cmaes", steps=60, seed=5, sigma=0.3, evaluate_center=True
    )
    m.run()
    es = direct_strategy(m.estimator, x0.numpy(), seed=5)
    assert len(rec.populations) == 60
    for X_zoopt in rec.populations:
        X = es.ask()
        assert np.array_equal(np.asarray(X), X_zoopt.numpy())  # bit for bit
        es.tell(X, [f64(rosenbrock)(x) for x in X])
    assert np.array_equal(es.mean, m.x.numpy())
    assert m.history["sigma"][-1] == float(es.sigma)
    assert m.history["condition"][-1] == pytest.approx(es.sm.condition_number)


def test_float32_parameters_are_evaluated_in_their_dtype() -> None:
    seen = []

    def f(X):
        seen.append(X.dtype)
        return sphere(X)

    r = zoopt.minimize(f, torch.ones(5), estimator="cmaes", steps=5, seed=0)
    assert set(seen) == {torch.float32} and r.x.dtype == torch.float32


def test_solves_rosenbrock_10d_to_1e6() -> None:
    r = zoopt.minimize(rosenbrock, torch.zeros(10), estimator="cmaes", steps=3000, seed=0)
    assert r.loss < 1e-6, r
    assert torch.allclose(r.x, torch.ones(10), atol=1e-3)


def test_ipop_solves_rastrigin_10d_like_fmin2() -> None:
    """IPOP restarts reach the global minimum; same runs, evaluations and f as cma.fmin2."""
    x0 = 3.0 * torch.ones(10, dtype=torch.float64)
    options = {"ftarget": 1e-8}
    r = zoopt.minimize(
        rastrigin, x0, estimator="cmaes", steps=5000, seed=0, sigma=2.0, restarts=8,
        options=options,
    )  # fmt: skip
    assert r.best_loss < 1e-6, r
    assert r.stop_reason.startswith("ftarget")
    runs = int(r.history["restarts"][-1]) + 1
    assert runs > 1  # a single run with λ = 10 does not solve it

    # the same IPOP through pycma's own fmin2, with the generator the estimator documents
    def batched(X: list) -> list:  # a whole generation per call, as zoopt evaluates it
        return rastrigin(torch.from_numpy(np.asarray(X))).tolist()

    est = CMAES(sigma=2.0, restarts=8, options=options)
    rng = np.random.Generator(np.random.PCG64(step_seed(0, 0)))
    opts = est.pycma_options(10)
    opts["randn"] = lambda lam, dim: rng.standard_normal((lam, dim))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, es = cma.fmin2(
            None, x0.numpy(), 2.0, opts, restarts=8, incpopsize=2, parallel_objective=batched
        )
    # zoopt's best also covers the mean it evaluates every generation
    assert r.best_loss <= es.result.fbest < 1e-8
    # fmin2 also evaluates each run's final mean once (its option eval_final_mean)
    assert es.result.evaluations == sum(r.history["popsize"]) + runs
    assert es.popsize == r.history["popsize"][-1]


def test_diagonal_chosen_automatically_above_1000_parameters() -> None:
    assert DIAGONAL_ABOVE == 1000
    assert not CMAES().uses_diagonal(1000)
    assert CMAES().uses_diagonal(1001)
    assert CMAES(diagonal=True).uses_diagonal(10)
    assert not CMAES(diagonal=False).uses_diagonal(5000)
    m = zoopt.Minimizer(sphere, torch.ones(1001), estimator="cmaes", steps=3, seed=0)
    m.run()
    es = m.estimator.strategy
    assert es.opts["CMA_diagonal"] is True
    assert isinstance(es.sm, cma.sampler.GaussStandardConstant)  # sep-CMA: O(D) per draw
    small = zoopt.Minimizer(sphere, torch.ones(10), estimator="cmaes", steps=1, seed=0)
    small.run()
    assert isinstance(small.estimator.strategy.sm, cma.sampler.GaussFullSampler)


def test_diagonal_variant_learns_scaling() -> None:
    w = 10.0 ** torch.linspace(0, 3, 20, dtype=torch.float64)
    r = zoopt.minimize(
        lambda X: (w * X * X).sum(-1), torch.ones(20, dtype=torch.float64), estimator="cmaes",
        steps=400, seed=0, diagonal=True,
    )  # fmt: skip
    assert r.loss < 1e-8
    assert r.history["condition"][-1] > 100  # the diagonal adapted to the 1e3 ill-conditioning


def test_pycma_stop_reasons_end_the_run() -> None:
    r = zoopt.minimize(
        sphere, torch.ones(10), estimator="cmaes", steps=2000, seed=0, options={"tolfun": 1e-4}
    )
    assert r.stop_reason.startswith("tolfun=") and r.steps < 2000
    # with restarts the first termination restarts instead; the reasons come when none remain
    r2 = zoopt.minimize(
        sphere, torch.ones(10), estimator="cmaes", steps=2000, seed=0, restarts=2,
        options={"tolfun": 1e-4},
    )  # fmt: skip
    assert r2.stop_reason.startswith("tolfun=") and r2.steps > r.steps
    assert r2.history["restarts"][-1] == 2
    # λ = λ₀·2² with λ₀ = 4 + 3 ln D unrounded, as in cma.fmin2
    assert r2.history["popsize"][-1] == int((4 + 3 * math.log(10)) * 4)


def test_quiet_no_files_no_global_rng(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = np.random.get_state()[1].copy()
    zoopt.minimize(
        sphere, torch.ones(10), estimator="cmaes", steps=300, seed=0, restarts=1, progress=False
    )
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert list(tmp_path.iterdir()) == []  # no outcmaes/ or any other file
    assert np.array_equal(np.random.get_state()[1], before)  # numpy's global RNG untouched


def test_pycma_signals_file_is_not_read(tmp_path, monkeypatch) -> None:
    """pycma's default reads (and evaluates) options from ./cma_signals.in; not here."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cma_signals.in").write_text('{"maxiter": 2}')
    r = zoopt.minimize(sphere, torch.ones(4), estimator="cmaes", steps=10, seed=0)
    assert r.steps == 10 and r.stop_reason == "steps"


def test_one_evaluator_call_per_generation() -> None:
    class Counting(LocalEvaluator):
        sizes: list = []

        def evaluate(self, objective, population, seed):
            self.sizes.append(len(population))
            return super().evaluate(objective, population, seed)

    ev = Counting()
    r = zoopt.minimize(
        sphere, torch.ones(6), estimator="cmaes", steps=7, seed=0, evaluator=ev, population=12
    )
    # one batched call per generation, the mean as its 13th row at the first step (the
    # centre's schedule: every 10th), plus the final mean alone
    assert ev.sizes == [13] + [12] * 6 + [1]
    assert r.evaluations == sum(ev.sizes)


def _save_load(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # no code is executed to restore it


@pytest.mark.parametrize("diagonal", [False, True])
def test_checkpoint_resume_visits_the_same_points(diagonal: bool) -> None:
    """Interrupted after a restart, saved, loaded code-free, resumed: the same points."""
    opts = dict(
        estimator="cmaes", steps=400, seed=2, restarts=3, options={"tolfun": 1e-3},
        evaluate_center=True,
    )  # fmt: skip
    x0 = torch.ones(6, dtype=torch.float64)
    rec_a = Recorder(rastrigin)
    a = zoopt.Minimizer(rec_a, x0, diagonal=diagonal, **opts)
    while not a.history.get("restarts") or a.history["restarts"][-1] < 1:
        a.step()
    for _ in range(3):
        a.step()
    state = _save_load(a.state_dict())
    rec_b = Recorder(rastrigin)
    b = zoopt.Minimizer(rec_b, x0, diagonal=diagonal, **opts)
    b.load_state_dict(state)
    n = len(rec_a.populations)
    ra, rb = a.run(), b.run()
    assert ra.stop_reason == rb.stop_reason and ra.steps == rb.steps
    assert len(rec_a.populations) - n == len(rec_b.populations) > 10
    for pa, pb in zip(rec_a.populations[n:], rec_b.populations, strict=True):
        assert torch.equal(pa, pb)
    assert torch.equal(ra.x, rb.x)
    assert ra.history["sigma"] == rb.history["sigma"]


def test_state_dict_holds_only_plain_values() -> None:
    m = zoopt.Minimizer(rosenbrock, torch.zeros(5), estimator="cmaes", steps=5, seed=0)
    m.run()
    state = m.estimator.state_dict()

    def check(v, path="state"):
        if isinstance(v, dict):
            for k, u in v.items():
                assert isinstance(k, str), path
                check(u, f"{path}.{k}")
        elif isinstance(v, (list, tuple)):
            for i, u in enumerate(v):
                check(u, f"{path}[{i}]")
        else:
            assert v is None or type(v) in (bool, int, float, str, torch.Tensor), (path, v)

    check(state)
    pycma = state["pycma"]["attributes"]
    for key in ("sm.C", "sm.B", "sm.D", "adapt_sigma.ps", "pc", "sigma", "countiter"):
        assert key in pycma or key in state["pycma"]["aliases"], key
    assert CMAES().state_dict() == {"started": False}


@pytest.mark.parametrize(
    "options, error, match",
    [
        (dict(sigma=0.0), ValueError, "sigma"),
        (dict(sigma=-1.0), ValueError, "sigma"),
        (dict(sigma="big"), TypeError, "sigma"),
        (dict(population=1), ValueError, "population"),
        (dict(population=2.5), TypeError, "population"),
        (dict(diagonal="yes"), ValueError, "diagonal must be True, False or 'auto'"),
        (dict(diagonal=1), ValueError, "diagonal"),
        (dict(restarts=-1), ValueError, "restarts"),
        (dict(incpopsize=0.5), ValueError, "incpopsize"),
        (dict(options={"popsize": 20}), ValueError, "population"),
        (dict(options={"seed": 3}), ValueError, "seed"),
        (dict(options={"signals_filename": "s.in"}), ValueError, "signals_filename"),
        (dict(options={"tolfunn": 1e-3}), ValueError, "not pycma options"),
        (dict(options=[("tolfun", 1)]), TypeError, "options must be a dict"),
    ],
)
def test_bad_input_is_named(options: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        zoopt.get_estimator("cmaes", **options)


def test_with_restarts_the_result_is_the_best_runs() -> None:
    """Result.x (and the final loss) is never a worse last run's mean."""
    est = CMAES(sigma=2.0, restarts=4)
    x0 = 3.0 * torch.ones(10, dtype=torch.float64)
    r = zoopt.minimize(rastrigin, x0, estimator=est, steps=3000, seed=1)
    assert r.history["restarts"][-1] >= 2  # several runs finished
    finished_best = est._best_f  # the best loss of the runs that ended
    current = est.strategy.best.f
    assert r.loss == pytest.approx(float(rastrigin(r.x[None])[0]))
    if current is None or finished_best < current:
        assert r.loss == finished_best  # the earlier run's solution is reported
    assert r.loss <= finished_best + 1e-9


def test_with_restarts_a_run_cut_by_the_budget_reports_the_best_point() -> None:
    """As cma.fmin2 returns xbest: the budget cuts the last run while its mean is worse than
    the best point found (the surrogate's injected model optimum), so that point is the result.
    ``model_step=False``: the mean is left to CMA-ES (with the model's step it would be at the
    optimum itself)."""
    from zoopt.estimators.cmaes import _mean_phenotype

    def f(X):
        return ((X - 0.5) ** 2).sum(dim=1)

    est = CMAES(sigma=1.0, restarts=9, surrogate=True, model_step=False)
    x0 = torch.zeros(5, dtype=torch.float64)
    r = zoopt.minimize(f, x0, estimator=est, max_evaluations=200, seed=1, progress=False)
    mean = torch.from_numpy(_mean_phenotype(est.strategy))
    assert float(f(mean[None])[0]) > 10 * r.best_loss  # the final mean is the worse point
    assert torch.equal(r.x, r.best_x) and r.loss == r.best_loss
    assert r.loss == pytest.approx(float(f(r.x[None])[0]))
    # without restarts the result stays the final mean (the distribution's centre)
    r1 = zoopt.minimize(f, x0, estimator=CMAES(sigma=1.0, surrogate=True, model_step=False),
                        max_evaluations=200, seed=1, progress=False)  # fmt: skip
    assert r1.loss == pytest.approx(float(f(torch.as_tensor(r1.x)[None])[0]))
    assert r1.loss >= r1.best_loss


def test_bipop_interleaves_small_runs_and_resumes_exactly() -> None:
    kw = dict(estimator="cmaes", steps=1500, seed=0, sigma=2.0, restarts=6, bipop=True)
    x0 = 3.0 * torch.ones(6, dtype=torch.float64)
    r = zoopt.minimize(rastrigin, x0, **kw)
    sizes = r.history["popsize"]
    largest = [max(sizes[: i + 1]) for i in range(len(sizes))]
    assert max(sizes) > sizes[0]  # a large run happened
    assert any(s < m for s, m in zip(sizes, largest, strict=True))  # then a smaller one
    a = zoopt.Minimizer(rastrigin, x0, **kw)
    while not a.history.get("restarts") or a.history["restarts"][-1] < 2:
        a.step()
    b = zoopt.Minimizer(rastrigin, x0, **kw)
    b.load_state_dict(a.state_dict())
    for _ in range(30):
        a.step()
        b.step()
    assert torch.equal(a.x, b.x)
    with pytest.raises(TypeError, match="bipop"):
        CMAES(bipop="yes")


def test_bipop_visits_the_points_of_cma_fmin2(monkeypatch) -> None:
    """BIPOP restarts are cma.fmin2's (x0, σ₀·0.01^U, λ, maxiter, termination criteria and
    budget accounting of every run) when pycma draws from the estimator's generator; its
    small runs do not count against ``restarts``, so they run on after the 9th restart."""
    seed, budget = 2, 16_000
    x0 = np.full(3, 3.0)
    rng = np.random.Generator(np.random.PCG64(step_seed(seed, 0)))
    monkeypatch.setattr(np.random, "uniform", rng.uniform)  # fmin2's BIPOP draws
    fn, points = f64(rastrigin), []

    def objective(x):
        points.append(np.array(x))
        return fn(x)

    est = CMAES(sigma=2.0, restarts=9, bipop=True)
    opts = est.pycma_options(len(x0)) | dict(
        randn=lambda lam, dim: rng.standard_normal((lam, dim)), maxfevals=budget,
        eval_final_mean=False,  # zoopt evaluates no final mean (evaluate_center=False below)
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cma.fmin2(objective, x0, 2.0, opts, restarts=9, bipop=True)
    rec = []

    def batched(X: torch.Tensor) -> torch.Tensor:
        rec.extend(X.numpy().copy())
        return rastrigin(X)

    r = zoopt.minimize(
        batched, torch.from_numpy(x0.copy()), estimator=est, seed=seed, steps=10**9,
        max_evaluations=budget, evaluate_center=False, progress=False,
    )  # fmt: skip
    assert r.history["restarts"][-1] > 9  # small runs on top of the 9 large restarts
    assert r.stop_reason == "max_evaluations"
    assert len(rec) >= len(points) >= budget
    for a, b in zip(points, rec, strict=False):
        assert np.array_equal(a, b)


def test_a_bipop_checkpoint_in_a_small_run_loads_code_free() -> None:
    """A small run's σ₀·0.01^U is a plain float: the checkpoint loads with weights_only."""
    x0 = 3.0 * torch.ones(3, dtype=torch.float64)
    kw = dict(estimator="cmaes", steps=10**6, seed=2, sigma=2.0, restarts=9, bipop=True)
    a = zoopt.Minimizer(rastrigin, x0, **kw)
    while a.estimator.state_dict().get("budget", {}).get("small_runs", 0) < 1:
        a.step()
    state = _save_load(a.state_dict())
    assert type(state["estimator"]["run"]["sigma"]) is float
    b = zoopt.Minimizer(rastrigin, x0, **kw)
    b.load_state_dict(state)
    for _ in range(5):
        a.step()
        b.step()
    assert torch.equal(a.x, b.x)


def test_a_plateau_does_not_end_the_run() -> None:
    """All λ losses equal (a quantised metric far from its next level): no early stop."""

    def accuracy_like(X: torch.Tensor) -> torch.Tensor:
        return torch.floor(10 * torch.tanh((X - 3).norm(dim=1))) / 10

    with pytest.warns(zoopt.StalledSearchWarning, match="stalled search at step 10"):
        r = zoopt.minimize(accuracy_like, torch.zeros(5), estimator="cmaes", sigma=0.1, steps=60)
    assert r.stop_reason == "steps" and r.steps == 60  # the run says so, and goes on
    assert len(r.notes) == 1


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_ends_at_the_right_bound_in_every_seed(side: float) -> None:
    """Optimum outside the box: the mean reported is pycma's phenotype, on the near face.

    pycma's bound transform is a periodic reflection; its genotype mean can drift beyond
    the opposite face, and clipping that raw mean would report the wrong bound.
    """
    near = 0.3 if side > 0 else -0.2

    def f(X: torch.Tensor) -> torch.Tensor:
        return ((X - side) ** 2).sum(-1)

    x0 = torch.zeros(5, dtype=torch.float64)
    for seed in range(10):
        kw = dict(estimator="cmaes", bounds=(-0.2, 0.3), sigma=0.5, seed=seed)
        r = zoopt.minimize(f, x0, max_evaluations=500, **kw)
        assert torch.allclose(r.x, torch.full((5,), near, dtype=torch.float64), atol=1e-3), seed
        assert r.loss == pytest.approx(5 * (side - near) ** 2, rel=1e-3)
    es = zoopt.Minimizer(f, x0, steps=3, **kw)
    es.run()
    assert np.array_equal(es.x.numpy(), es.estimator.strategy.result.xfavorite)


# -- lq-CMA-ES (surrogate=True) ------------------------------------------------------------
class Evaluated:
    """A batched objective recording every row it evaluates, in order."""

    def __init__(self, fn):
        self.fn, self.rows = fn, []

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        self.rows += [x.clone() for x in X]
        return self.fn(X)


@pytest.mark.parametrize("model_fit", ["pinv", "qr"])
def test_surrogate_evaluates_the_points_of_pycmas_lq_cma_es(model_fit: str) -> None:
    """Batched increments evaluate what pycma's SurrogatePopulation evaluates, in order
    (``model_step=False``: the model's optimum only injected, as pycma does), with pycma's
    own model (``"pinv"``: ``cma.fmin_lq_surr2``'s points) or pycma's loop given the QR fit."""
    from cma import fitness_models

    from zoopt.estimators.lq_screen import _qr_model_class

    rec = Evaluated(rosenbrock)
    x0 = torch.zeros(5, dtype=torch.float64)
    kw = dict(estimator="cmaes", surrogate=True, model_step=False, steps=80, seed=3, sigma=0.5)
    kw["model_fit"] = model_fit
    m = zoopt.Minimizer(rec, x0, **kw)
    for _ in range(80):
        m.step()
    assert m.evaluate_center is False  # no mean evaluations beside the screened candidates
    es = direct_strategy(m.estimator, x0.numpy(), seed=3)
    seen = []

    def fitness(x):
        seen.append(np.array(x))
        return f64(rosenbrock)(x)

    model = _qr_model_class()() if model_fit == "qr" else None
    surrogate = fitness_models.SurrogatePopulation(fitness, model=model)
    while len(seen) < len(rec.rows):
        X = es.ask()
        es.tell(X, surrogate(X))
        es.countevals = surrogate.evaluations
        es.inject([surrogate.model.xopt])
    assert len(rec.rows) == m.evaluations > 40
    for a, b in zip(rec.rows, seen, strict=False):  # pycma's last generation may run on
        assert np.array_equal(a.numpy(), b)
    assert m.history["popsize"][-1] == es.popsize


def test_surrogate_needs_fewer_evaluations_on_an_ellipsoid() -> None:
    def elli(X: torch.Tensor) -> torch.Tensor:
        c = 1e6 ** (torch.arange(8, dtype=X.dtype) / 7)
        return (c * X**2).sum(-1)

    x0 = torch.ones(8, dtype=torch.float64)
    kw = dict(estimator="cmaes", steps=5000, seed=0, sigma=1.0, options={"ftarget": 1e-8})
    plain = zoopt.minimize(elli, x0, **kw)
    lq = zoopt.minimize(elli, x0, surrogate=True, **kw)
    assert lq.stop_reason == plain.stop_reason == "ftarget=1e-08"
    assert lq.evaluations < plain.evaluations / 5


def test_surrogate_resumes_exactly() -> None:
    """Saved after a restart, at the end of a generation, loaded code-free: same points."""
    kw = dict(estimator="cmaes", surrogate=True, steps=400, seed=1, sigma=1.0, restarts=3)
    kw["options"] = {"tolfun": 1e-2}
    x0 = torch.ones(4, dtype=torch.float64)
    rec_a = Evaluated(rastrigin)
    a = zoopt.Minimizer(rec_a, x0, **kw)
    while not a.history.get("restarts") or a.history["restarts"][-1] < 1:
        a.step()
    while a.estimator._screen.generation is not None:  # the generation is told
        a.step()
    state = _save_load(a.state_dict())
    rec_b = Evaluated(rastrigin)
    b = zoopt.Minimizer(rec_b, x0, **kw)
    b.load_state_dict(state)
    start = len(rec_a.rows)
    ra, rb = a.run(), b.run()
    assert len(rec_b.rows) == len(rec_a.rows) - start > 20
    for pa, pb in zip(rec_a.rows[start:], rec_b.rows, strict=True):
        assert torch.equal(pa, pb)
    assert torch.equal(ra.x, rb.x) and ra.best_loss == rb.best_loss


def _elli8(X: torch.Tensor) -> torch.Tensor:
    c = 1e6 ** (torch.arange(8, dtype=X.dtype) / 7)
    return (c * X**2).sum(-1)


def _evaluations_to_1e8(model_step: bool, seed: int, of: str = "mean") -> int:
    """Evaluations until the mean (``of="mean"``) or the best evaluated point reaches 1e-8."""
    kw = dict(estimator="cmaes", surrogate=True, sigma=1.0, steps=10**6)
    x0 = torch.ones(8, dtype=torch.float64)
    m = zoopt.Minimizer(_elli8, x0, model_step=model_step, seed=seed, **kw)

    def reached() -> bool:
        return (float(_elli8(m.x[None])[0]) if of == "mean" else m.best_loss) < 1e-8

    while not reached() and m.evaluations < 5000:
        m.step()
    return m.evaluations


@pytest.mark.parametrize("seed", [0, 1])
def test_model_step_puts_the_mean_on_a_quadratics_minimiser(seed: int) -> None:
    """Once the model is exact, a trusted generation moves the mean onto the minimiser of an
    ellipsoid (condition 1e6); with the optimum only injected CMA-ES takes many times longer.
    The optimum is then drawn at the new mean and evaluated first (one evaluation later)."""
    stepped, injected = _evaluations_to_1e8(True, seed), _evaluations_to_1e8(False, seed)
    assert stepped < 50 and injected > 4 * stepped
    assert _evaluations_to_1e8(True, seed, of="best") == stepped + 1


def _rosenbrock_run(model_step: bool, steps: int) -> tuple[zoopt.Minimizer, list]:
    rec = Evaluated(rosenbrock)
    x0 = torch.zeros(6, dtype=torch.float64)
    kw = dict(estimator="cmaes", surrogate=True, seed=0, sigma=1.0, steps=steps)
    m = zoopt.Minimizer(rec, x0, model_step=model_step, **kw)
    m.run()
    return m, rec.rows


def test_model_step_waits_for_a_model_that_predicts_the_new_points(monkeypatch) -> None:
    """On Rosenbrock the quadratic model predicts a generation's points to 1e-2 of its
    spread only near the optimum: until then the points are lq-CMA-ES's. Without that
    condition the mean would follow the model from early on, down the curved valley."""
    import zoopt.estimators.lq_screen as lq_screen

    stepped, rows = _rosenbrock_run(True, 200)
    _, injected = _rosenbrock_run(False, 200)
    flags = stepped.history["model_step"]
    first = flags.index(1.0)
    assert first >= 40 and set(flags) == {0.0, 1.0}
    n = int(stepped.history["evaluations"][first])  # evaluated up to the first step
    assert all(torch.equal(a, b) for a, b in zip(rows[:n], injected[:n], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(rows, injected, strict=False))
    monkeypatch.setattr(lq_screen, "MODEL_STEP_MAX_ERROR", math.inf)
    ungated, _ = _rosenbrock_run(True, 200)
    assert ungated.history["model_step"].index(1.0) < first // 2


def test_model_steps_resume_exactly() -> None:
    """Saved at a generation's end after the model's steps began: the same points and steps
    after loading; saved with a generation open: its prediction error rides along."""
    kw = dict(estimator="cmaes", surrogate=True, seed=0, sigma=1.0, steps=400)
    x0 = torch.zeros(6, dtype=torch.float64)
    rec_a = Evaluated(rosenbrock)
    a = zoopt.Minimizer(rec_a, x0, **kw)
    while sum(a.history.get("model_step", [])) < 2 or a.estimator._screen.generation is not None:
        a.step()
    rec_b = Evaluated(rosenbrock)
    b = zoopt.Minimizer(rec_b, x0, **kw)
    b.load_state_dict(_save_load(a.state_dict()))
    start, n = len(rec_a.rows), len(a.history["model_step"])
    for _ in range(60):
        a.step()
        b.step()
    assert len(rec_b.rows) == len(rec_a.rows) - start > 20
    assert all(torch.equal(p, q) for p, q in zip(rec_a.rows[start:], rec_b.rows, strict=True))
    assert a.history["model_step"][n:] == b.history["model_step"][n:]
    assert sum(a.history["model_step"][n:]) > 0
    while a.estimator._screen.generation is None:  # a generation left open
        a.step()
    c = zoopt.Minimizer(Evaluated(rosenbrock), x0, **kw)
    c.load_state_dict(_save_load(a.state_dict()))
    error = a.estimator._screen.generation["model_error"]
    assert c.estimator._screen.generation["model_error"] == error and math.isfinite(error)


@pytest.mark.parametrize("layout", ["current", "older"])
def test_a_checkpoint_saved_with_a_generation_open_resumes_exactly(layout: str) -> None:
    """Saved between two increments of a generation: the resumed run evaluates the same
    points (pycma's tell then reads the eigenvectors B that its ask decomposed, column-major
    as LAPACK returns them: restored row-major, the products differed in the last bits).
    ``older``: the layout of checkpoints that kept the run's best true loss and its screened
    generations' counts under ``"run"``."""
    kw = dict(estimator="cmaes", surrogate="adaptive", restarts=2, seed=3, sigma=1.0, steps=400)
    x0 = torch.zeros(6, dtype=torch.float64)
    rec_a = Evaluated(rosenbrock)
    a = zoopt.Minimizer(rec_a, x0, **kw)
    for _ in range(137):
        a.step()
    while a.estimator._screen.generation is None:
        a.step()
    state = _save_load(a.state_dict())
    if layout == "older":
        screen, run = state["estimator"]["surrogate"], state["estimator"]["run"]
        for key in ("best_f", "told", "trusted"):
            run[key] = screen.pop(key)
        assert run["told"] > 0
    rec_b = Evaluated(rosenbrock)
    b = zoopt.Minimizer(rec_b, x0, **kw)
    b.load_state_dict(state)
    sa, sb = a.estimator._screen, b.estimator._screen
    assert (sb.best_f, sb.told, sb.trusted) == (sa.best_f, sa.told, sa.trusted)
    assert sb.generation is not None
    start = len(rec_a.rows)
    for _ in range(150):
        a.step()
        b.step()
    assert len(rec_b.rows) == len(rec_a.rows) - start > 100
    assert all(torch.equal(p, q) for p, q in zip(rec_a.rows[start:], rec_b.rows, strict=True))


def test_pycma_state_keeps_the_memory_layout() -> None:
    from zoopt.estimators.pycma_state import from_plain, to_plain

    a = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    for x in (a, np.ascontiguousarray(a), np.arange(3.0)):
        y = from_plain(to_plain(x, "x", {}, {}))
        assert np.array_equal(x, y) and y.flags.f_contiguous == x.flags.f_contiguous
        assert y.flags.c_contiguous == x.flags.c_contiguous


def _fitted_model(f, center: np.ndarray, n: int = 60) -> object:
    """pycma's LQModel fitted to ``n`` points of ``f`` around ``center`` (full quadratic)."""
    from cma import fitness_models

    model = fitness_models.LQModel()
    rng = np.random.default_rng(0)
    for x in center + 0.5 * rng.standard_normal((n, len(center))):
        model.add_data_row(x, f(x))
    assert model.types  # enough data for a quadratic
    return model


def _strategy_after_a_step(**options) -> CMAES:
    est = CMAES(sigma=0.1, surrogate=True, **options)
    m = zoopt.Minimizer(sphere, torch.zeros(6, dtype=torch.float64), estimator=est, seed=0)
    m.step()
    return est


def _step_to(est: CMAES, model) -> None:
    """The model's step of ``est``'s strategy toward ``model``'s optimum."""
    est._screen.surrogate.model = model
    est._screen.step_to_model(est.strategy)


def test_model_step_is_capped_in_the_mahalanobis_norm() -> None:
    est = _strategy_after_a_step()
    es = est.strategy
    mean = es.mean.copy()
    model = _fitted_model(lambda x: float(((x - 100.0) ** 2).sum()), mean)
    toward = np.asarray(model.xopt) - mean
    assert es.mahalanobis_norm(toward) > 10 * MODEL_STEP_MAX_NORM * 2  # far beyond the cap
    _step_to(est, model)
    moved = es.mean - mean
    assert es.mahalanobis_norm(moved) == pytest.approx(MODEL_STEP_MAX_NORM * math.sqrt(6))
    cos = moved @ toward / (np.linalg.norm(moved) * np.linalg.norm(toward))
    assert cos == pytest.approx(1.0)


@pytest.mark.parametrize("case", ["saddle", "bounds"])
def test_model_step_leaves_the_mean_where_it_does_not_apply(case: str) -> None:
    """An indefinite model has no minimiser; inside pycma's bounds the optimum is only
    injected (pycma repairs what leaves the box)."""
    options = {"bounds": [-1.0, 1.0]} if case == "bounds" else {}
    est = _strategy_after_a_step(options=options)
    mean = est.strategy.mean.copy()
    if case == "saddle":
        model = _fitted_model(lambda x: float(x[0] ** 2 - x[1] ** 2 + (x[2:] ** 2).sum()), mean)
    else:
        model = _fitted_model(lambda x: float(((x - 0.5) ** 2).sum()), mean)
    assert not np.allclose(model.xopt, mean)  # a step would move it
    _step_to(est, model)
    assert np.array_equal(est.strategy.mean, mean)


def test_no_model_step_below_its_dimension() -> None:
    """At D = 2 (below MODEL_STEP_MIN_DIM) the optimum is only injected: the run is
    lq-CMA-ES's and ends by pycma's tolerances, as without the step."""

    def quad(X):
        return ((X - 0.3) ** 2).sum(-1)

    kw = dict(estimator="cmaes", surrogate=True, max_evaluations=3000, seed=1, progress=False)
    x0 = torch.full((2,), 0.5, dtype=torch.float64)
    on = zoopt.minimize(quad, x0, model_step=True, **kw)
    off = zoopt.minimize(quad, x0, model_step=False, **kw)
    assert set(on.history["model_step"]) == {0.0}
    assert on.stop_reason == off.stop_reason and "tolx" in on.stop_reason
    assert on.evaluations == off.evaluations and torch.equal(on.x, off.x)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_model_step_is_a_bool(value) -> None:
    with pytest.raises(TypeError, match="model_step must be True or False"):
        CMAES(model_step=value)


@pytest.mark.parametrize("value", ["svd", 1, None])
def test_model_fit_is_named(value) -> None:
    with pytest.raises(ValueError, match=r"model_fit must be one of \('qr', 'pinv'\)"):
        CMAES(model_fit=value)


def test_the_qr_fit_is_pycmas_least_squares() -> None:
    """Where it solves, the QR fit is pycma's pseudo-inverse solution up to rounding (a
    random weighted problem, and an archive of an exact quadratic, which both recover);
    where the archive does not determine the fit it declines, and the model takes pycma's
    pseudo-inverse, bit for bit."""
    from cma import fitness_models

    from zoopt.estimators.lq_screen import QR_RETRY_AFTER, _qr_model_class, qr_least_squares

    rng = np.random.default_rng(0)
    a, y = rng.standard_normal((132, 66)), rng.standard_normal(132)
    c = qr_least_squares(a, y)
    np.testing.assert_allclose(c, np.linalg.pinv(a) @ y, rtol=1e-10, atol=1e-12)
    # declined: a repeated column, a zero column, fewer rows than unknowns
    assert qr_least_squares(np.column_stack([a, a[:, :1]]), y) is None
    assert qr_least_squares(np.column_stack([a, np.zeros(132)]), y) is None
    assert qr_least_squares(a[:40], y[:40]) is None

    def quadratic(x: np.ndarray) -> float:  # a full quadratic in 4 coordinates
        return float(1.5 + x @ [1.0, -2.0, 0.5, 0.0] + x @ np.diag([1.0, 2.0, 3.0, 4.0]) @ x
                     + 0.7 * x[0] * x[3])  # fmt: skip

    qr, pinv = _qr_model_class()(), fitness_models.LQModel()
    for x in rng.standard_normal((40, 4)):
        qr.add_data_row(x, quadratic(x))
        pinv.add_data_row(x, quadratic(x))
    assert qr.types == pinv.types == ["quadratic", "full"]
    np.testing.assert_allclose(qr.coefficients, pinv.coefficients, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(qr.xopt, pinv.xopt, rtol=1e-9)
    for x in rng.standard_normal((5, 4)):  # the model is the quadratic
        assert qr.eval(x) == pytest.approx(quadratic(x), rel=1e-9, abs=1e-9)
    # points spread over 1e-12 .. 1: the archive's features span too many scales
    qr, pinv = _qr_model_class()(), fitness_models.LQModel()
    for x in rng.standard_normal((40, 4)) * 10.0 ** -rng.integers(0, 13, (40, 1)):
        qr.add_data_row(x, quadratic(x))
        pinv.add_data_row(x, quadratic(x))
    a = qr.weighted_array(qr.Z).T
    assert qr_least_squares(a, qr.weighted_array(qr.Y)) is None
    assert np.array_equal(qr.coefficients, pinv.coefficients)
    # the next fits go to the pseudo-inverse directly, then the QR is tried again
    assert qr._qr_skip == QR_RETRY_AFTER
    for i, x in enumerate(rng.standard_normal((QR_RETRY_AFTER, 4))):
        qr.add_data_row(x, quadratic(x))
        pinv.add_data_row(x, quadratic(x))
        assert np.array_equal(qr.coefficients, pinv.coefficients)
        assert qr._qr_skip == QR_RETRY_AFTER - 1 - i


def test_a_checkpoint_saved_while_the_qr_fit_is_skipped_resumes_exactly(tmp_path) -> None:
    """The count of fits left to the pseudo-inverse after a declined QR rides in the
    checkpoint file: a run saved with it above zero goes on with the same points."""
    from zoopt.checkpoint import load_checkpoint, save_checkpoint

    def shifted(X: torch.Tensor) -> torch.Tensor:  # converges: its archive spans many scales
        return sphere(X - 0.3)

    def build() -> zoopt.Minimizer:
        x0 = torch.full((6,), 0.5, dtype=torch.float64)
        return zoopt.Minimizer(shifted, x0, seed=2, steps=10**6, max_evaluations=3000)

    a = build()
    state = None
    while state is None and a.step_count < 400:
        a.step()
        if getattr(a.estimator._screen.model, "_qr_skip", 0) > 0:
            save_checkpoint(tmp_path / "c.pt", {"minimizer": a.state_dict()})
            state = load_checkpoint(tmp_path / "c.pt")["minimizer"]
    assert state is not None, "no declined QR fit within 400 steps"
    b = build()
    b.load_state_dict(state)
    assert b.estimator._screen.model._qr_skip == a.estimator._screen.model._qr_skip
    for _ in range(60):
        a.step()
        b.step()
        assert torch.equal(a.theta, b.theta)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_surrogate_is_a_bool_or_adaptive(value) -> None:
    with pytest.raises(TypeError, match="surrogate must be True, False or 'adaptive'"):
        CMAES(surrogate=value)


#: the model's optimum injected only (``model_step=False``): on 2-D Rastrigin the mean's
#: steps to the model change which runs trust it, and these cases need one that does not
_ADAPTIVE = dict(
    estimator="cmaes", surrogate="adaptive", model_step=False, seed=0, sigma=2.0, restarts=2
)


def _first_restart(m: zoopt.Minimizer) -> None:
    """Step up to the step that restarts (the estimator reports the run it told)."""
    m.step()
    while m.estimator._restarts_done < 1:
        m.step()


def test_adaptive_surrogate_drops_a_model_that_was_rarely_trusted() -> None:
    """On Rastrigin the model ranks few generations right: the restart runs plain CMA-ES,
    after a first run identical to ``surrogate=True``'s."""
    x0 = torch.full((2,), 2.0, dtype=torch.float64)
    rec_a, rec_b = Evaluated(rastrigin), Evaluated(rastrigin)
    a = zoopt.Minimizer(rec_a, x0, steps=2000, **_ADAPTIVE)
    b = zoopt.Minimizer(rec_b, x0, steps=2000, **{**_ADAPTIVE, "surrogate": True})
    _first_restart(a)
    _first_restart(b)
    est = a.estimator
    assert len(rec_a.rows) == len(rec_b.rows)
    assert all(torch.equal(p, q) for p, q in zip(rec_a.rows, rec_b.rows, strict=True))
    assert set(a.history["surrogate"]) == {1.0} and "surrogate" not in b.history
    assert not est._model_on and b.estimator._model_on
    n = len(a.history["surrogate"])
    a.run()
    assert a.history["surrogate"][n:] == [0.0] * (len(a.history["surrogate"]) - n) != []
    assert est._screen is None  # a plain run screens nothing


def test_adaptive_surrogate_keeps_a_model_that_ranks_well() -> None:
    """On the sphere nearly every generation is told early: every restart keeps the model."""
    kw = {**_ADAPTIVE, "restarts": 3, "options": {"tolfun": 1e-3}}
    m = zoopt.Minimizer(sphere, torch.ones(4, dtype=torch.float64), steps=400, **kw)
    m.run()
    assert m.history["restarts"][-1] == 3.0
    assert set(m.history["surrogate"]) == {1.0}
    screen = m.estimator._screen
    assert screen.trusted >= CMAES_KEEP * screen.told > 0


@pytest.mark.parametrize("restarted", [False, True])
def test_adaptive_surrogate_resumes_exactly(restarted: bool) -> None:
    """Saved at a generation's end, before the first restart (its counts of told and trusted
    generations decide the next run) or after it (the model dropped): the same points."""
    x0 = torch.full((2,), 2.0, dtype=torch.float64)
    kw = dict(steps=1600, **_ADAPTIVE)
    rec_a = Evaluated(rastrigin)
    a = zoopt.Minimizer(rec_a, x0, **kw)
    if restarted:
        _first_restart(a)
    else:
        for _ in range(60):
            a.step()
        while a.estimator._screen.generation is not None:
            a.step()
        assert a.estimator._screen.told > 0
    state = _save_load(a.state_dict())
    rec_b = Evaluated(rastrigin)
    b = zoopt.Minimizer(rec_b, x0, **kw)
    b.load_state_dict(state)
    assert b.estimator._run == a.estimator._run
    if not restarted:
        sa, sb = a.estimator._screen, b.estimator._screen
        assert (sb.told, sb.trusted, sb.best_f) == (sa.told, sa.trusted, sa.best_f)
    assert b.estimator._model_on == a.estimator._model_on == (not restarted)
    start = len(rec_a.rows)
    ra, rb = a.run(), b.run()
    assert len(rec_b.rows) == len(rec_a.rows) - start > 20
    for pa, pb in zip(rec_a.rows[start:], rec_b.rows, strict=True):
        assert torch.equal(pa, pb)
    assert torch.equal(ra.x, rb.x) and ra.best_loss == rb.best_loss


def test_surrogate_model_values_are_pycmas_bits() -> None:
    """The cached features give ``LQModel.eval``'s and ``kendall``'s values bit for bit, as
    the model grows from linear through diagonal to full."""
    from cma import fitness_models

    from zoopt.estimators.lq_screen import _expand, _kendall, _model_values

    rng = np.random.default_rng(0)
    model = fitness_models.SurrogatePopulation(None).model
    model.settings.max_absolute_size = 40
    X = list(rng.standard_normal((8, 4)))
    gen = {"X": X, "Z": _expand(model, X)}
    kinds = set()
    for x in rng.standard_normal((30, 4)):
        model.add_data_row(x, float((x**2).sum() + x[0] * x[1] + rng.normal()))
        kinds.add(len(model.coefficients))
        assert np.array_equal(_model_values(model, gen), [model.eval(x) for x in X])
        for n in (2, 5, 15):
            assert _kendall(model, n) == model.kendall(n)
    assert kinds == {5, 9, 15}  # linear, diagonal and full models were all checked


def test_tau_b_is_pycmas_kendall_tau() -> None:
    """τ-b as scipy computes it through pycma, ties, infinities and NaN (τ = 0) included."""
    from cma.fitness_models import kendall_tau

    from zoopt.estimators.lq_screen import _tau_b

    rng = np.random.default_rng(1)
    for _ in range(500):
        n = int(rng.integers(3, 25))
        x = rng.integers(0, 4, n).astype(float) if rng.random() < 0.5 else rng.normal(size=n)
        y = x + rng.normal(size=n) * rng.random()
        if rng.random() < 0.3:
            y = np.round(y)
        if rng.random() < 0.1:
            x[0] = np.inf
        if rng.random() < 0.05:
            y[1] = np.nan
        assert _tau_b(x, y) == kendall_tau(x, y)
    assert _tau_b(np.ones(5), np.arange(5.0)) == 0  # all tied in x
