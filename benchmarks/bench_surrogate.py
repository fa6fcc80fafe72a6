"""Cost of a generation of ``cmaes(surrogate=True)`` against pycma's own lq-CMA-ES, and where
it goes.

Both run lq-CMA-ES (Hansen, 2019, "A global surrogate assisted CMA-ES", GECCO) at D = 10 from
x0 = 0 with σ₀ = 0.5 for a fixed number of generations (pycma's ``maxiter``, the other
termination criteria off) on the sphere, an ellipsoid (condition 10⁶) and Rosenbrock: pycma
through ``cma.fmin_lq_surr2`` (no restarts), zoopt through ``zoopt.Minimizer`` with
``estimator="cmaes", surrogate=True`` (one loop step per increment of evaluated candidates),
with its default ``model_fit="qr"`` (``zoopt``) and with pycma's pseudo-inverse
(``zoopt-pinv``, ``model_fit="pinv"``). The three alternate within each round, the order
reversed every round; the first round (imports, first calls) is left out of the medians.

Each generation's CPU time (process time, one thread) is split by timers around pycma's
entry points, the same in both runs:

* ``cma``: the CMA-ES arithmetic, ``CMAEvolutionStrategy.ask/tell/stop/inject``;
* ``model``: the model's own upkeep and fit, ``LQModel.add_data_row``, ``sort``,
  ``coefficients`` (the weighted least squares: a pseudo-inverse by SVD, or zoopt's QR) and
  ``xopt``;
* ``f``: the objective;
* ``rest``: everything else — in zoopt its own overhead (the loop, the evaluator, the
  screening of each generation: model values, Kendall τ, torch↔numpy), in pycma the
  ``SurrogatePopulation`` loop and ``fmin2``'s.

Printed per function: the median milliseconds per generation of each part and the total, for
each, and zoopt's ratios to pycma measured in the same rounds.

``--evals``: instead, the evaluations ``cmaes(surrogate=True)`` takes to reach f < 1e-8 from
x0 = (1, …, 1) with σ₀ = 0.5 on each function, seeds 0–4, and a hash of every point it
evaluated (in order): the figures that show a change of the code left the search unchanged.
``--surrogate adaptive --restarts 9`` runs those with the model dropped at a restart where
it was rarely trusted, and with ``auto``'s restarts; ``--model-fit pinv`` with pycma's fit,
``--seeds n`` over seeds 0 … n − 1.

Run: ``python benchmarks/bench_surrogate.py [--generations 150] [--rounds 4] [--dim 10]
[--functions sphere,ellipsoid,rosenbrock,rastrigin] [--evals [--surrogate adaptive]
[--restarts 9]]``
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one BLAS thread

import argparse  # noqa: E402
import functools  # noqa: E402
import hashlib  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import cma  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from cma import fitness_models  # noqa: E402

import zoopt  # noqa: E402
from zoopt.estimators.lq_screen import MODEL_FITS, _qr_model_class  # noqa: E402
from zoopt.objectives import rastrigin, rosenbrock, sphere  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
D = 10
NEVER_STOP = {"tolfun": 0, "tolx": 0, "tolfunhist": 0, "tolstagnation": 10**9}
CLOCK = time.process_time
PARTS = ("cma", "model", "f")
_spent = dict.fromkeys(PARTS, 0.0)
_depth = [0]


def ellipsoid(X: torch.Tensor) -> torch.Tensor:
    """Σ 10^(6(i−1)/(D−1)) xᵢ² for rows ``X`` ``(n, D)``."""
    d = X.shape[-1]
    w = 10.0 ** (6 * torch.arange(d, dtype=X.dtype) / (d - 1))
    return (w * X * X).sum(-1)


FUNCTIONS = {
    "sphere": sphere, "ellipsoid": ellipsoid, "rosenbrock": rosenbrock, "rastrigin": rastrigin,
}  # fmt: skip
#: the functions timed unless ``--functions`` names others
DEFAULT_FUNCTIONS = ("sphere", "ellipsoid", "rosenbrock")


def _timed(part: str, fn):
    """``fn`` with its CPU time added to ``part`` (calls nested in a timed call not again)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _depth[0]:
            return fn(*args, **kwargs)
        _depth[0] = 1
        t0 = CLOCK()
        try:
            return fn(*args, **kwargs)
        finally:
            _spent[part] += CLOCK() - t0
            _depth[0] = 0

    return wrapper


def instrument() -> None:
    """Timers around pycma's CMA-ES and model entry points (results unchanged)."""
    es, lq = cma.CMAEvolutionStrategy, fitness_models.LQModel
    for name in ("ask", "tell", "stop", "inject"):
        setattr(es, name, _timed("cma", getattr(es, name)))
    for name in ("add_data_row", "sort"):
        setattr(lq, name, _timed("model", getattr(lq, name)))
    for name in ("coefficients", "xopt"):
        setattr(lq, name, property(_timed("model", getattr(lq, name).fget)))
    qr = _qr_model_class()  # zoopt's default fit overrides the coefficients
    qr.coefficients = property(_timed("model", qr.coefficients.fget))


def run_pycma(f, seed: int, generations: int) -> tuple[float, int, dict]:
    timed_f = _timed("f", lambda x: float(f(torch.as_tensor(np.asarray(x))[None])[0]))
    opts = {"maxiter": generations, "verbose": -9, "seed": seed + 1, "ftarget": -1,
            "tolflatfitness": 10**9, **NEVER_STOP}  # fmt: skip
    _spent.update(dict.fromkeys(PARTS, 0.0))
    cpu = CLOCK()
    _, es = cma.fmin_lq_surr2(timed_f, np.zeros(D), 0.5, opts, restarts=0)
    return CLOCK() - cpu, int(es.countiter), dict(_spent)


def run_zoopt(f, seed: int, generations: int, model_fit: str = "qr") -> tuple[float, int, dict]:
    timed_f = _timed("f", f)
    _spent.update(dict.fromkeys(PARTS, 0.0))
    cpu = CLOCK()
    m = zoopt.Minimizer(timed_f, torch.zeros(D, dtype=torch.float64), estimator="cmaes",
                        surrogate=True, sigma=0.5, seed=seed, steps=10**9, progress=False,
                        model_fit=model_fit,
                        options={"maxiter": generations, **NEVER_STOP})  # fmt: skip
    while not m.stop_reason:
        m.step()
    return CLOCK() - cpu, int(m.estimator.strategy.countiter), dict(_spent)


def evaluations_to_target(
    f, seed: int, surrogate: bool | str = True, restarts: int = 0, model_fit: str = "qr"
) -> tuple[int | None, str]:
    """Evaluations until f < 1e-8 (None: not within 20,000) and a hash of the points."""
    digest, seen = hashlib.sha256(), {"n": 0, "hit": None}

    def counted(X: torch.Tensor) -> torch.Tensor:
        digest.update(X.detach().numpy().tobytes())
        y = f(X)
        for v in y.tolist():
            seen["n"] += 1
            if seen["hit"] is None and v < 1e-8:
                seen["hit"] = seen["n"]
        return y

    m = zoopt.Minimizer(counted, torch.ones(D, dtype=torch.float64), estimator="cmaes",
                        surrogate=surrogate, sigma=0.5, seed=seed, steps=10**9,
                        max_evaluations=20_000, progress=False, restarts=restarts,
                        model_fit=model_fit)  # fmt: skip
    while not m.stop_reason and seen["hit"] is None:
        m.step()
    return seen["hit"], digest.hexdigest()[:12]


def main() -> None:
    global D  # the runs' dimension (--dim)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--generations", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument(
        "--functions", default=",".join(DEFAULT_FUNCTIONS), help=f"of {list(FUNCTIONS)}"
    )
    ap.add_argument("--dim", type=int, default=D, help="D (the --evals counts are for D = 10)")
    ap.add_argument("--evals", action="store_true", help="evaluations to 1e-8, seeds 0-4")
    ap.add_argument("--surrogate", choices=["true", "adaptive"], default="true")
    ap.add_argument("--restarts", type=int, default=0, help="with --evals: cmaes restarts")
    ap.add_argument(
        "--model-fit", choices=MODEL_FITS, default="qr", help="with --evals: cmaes model_fit"
    )
    ap.add_argument("--seeds", type=int, default=5, help="with --evals: seeds 0..n-1")
    args = ap.parse_args()
    D = args.dim
    if args.evals:
        for fname in args.functions.split(","):
            surrogate = True if args.surrogate == "true" else args.surrogate
            runs = [
                evaluations_to_target(
                    FUNCTIONS[fname], seed, surrogate, args.restarts, args.model_fit
                )
                for seed in range(args.seeds)
            ]
            print(f"{fname}: evaluations to 1e-8, seeds 0-{args.seeds - 1}: "
                  f"{[n for n, _ in runs]}; points {' '.join(h for _, h in runs)}")  # fmt: skip
        return
    instrument()
    g = args.generations
    print(f"D = {D}, {g} generations, CPU ms per generation (median of rounds 1-{args.rounds - 1})")
    cols = ("total", "rest", *PARTS)
    for fname in args.functions.split(","):
        f = FUNCTIONS[fname]
        rows: dict[str, list] = {"pycma": [], "zoopt": [], "zoopt-pinv": []}
        pinv = functools.partial(run_zoopt, model_fit="pinv")
        for r in range(args.rounds):
            order = [("pycma", run_pycma), ("zoopt", run_zoopt), ("zoopt-pinv", pinv)]
            for name, fn in order if r % 2 == 0 else order[::-1]:
                total, gens, spent = fn(f, r, g)
                row = {"total": total / gens, **{k: v / gens for k, v in spent.items()}}
                row["rest"] = row["total"] - sum(row[k] for k in PARTS)
                if r > 0:
                    rows[name].append(row)
        med = {n: {c: statistics.median(v[c] for v in rows[n]) * 1e3 for c in cols} for n in rows}
        print(f"{fname}:")
        for n in ("zoopt", "zoopt-pinv", "pycma"):
            own = "pycma's loop" if n == "pycma" else "zoopt's own"
            print(f"  {n:10s} total {med[n]['total']:6.2f}  = rest ({own}) {med[n]['rest']:5.2f}"
                  f" + cma ask/tell {med[n]['cma']:5.2f} + model fit {med[n]['model']:5.2f}"
                  f" + f {med[n]['f']:5.2f}")  # fmt: skip
        z, q, p = med["zoopt"], med["zoopt-pinv"], med["pycma"]
        print(f"  zoopt / pycma: total {z['total'] / p['total']:.2f}, rest "
              f"{z['rest'] / p['rest']:.2f}; zoopt-pinv / pycma: total "
              f"{q['total'] / p['total']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
