"""Per-generation overhead of zoopt's "cmaes" against pycma driven directly, and evaluations.

Overhead, measured in one run on one thread, on 10-D and 100-D Rosenbrock (the same batched
torch function in every variant, one call per generation):

* reference: ``cma.CMAEvolutionStrategy`` ask → f(whole generation) → tell → stop() (the
  canonical ``while not es.stop()`` loop), with the same options and generator as zoopt's;
* estimator: ``CMAES.estimate`` alone (ask → ExplicitPopulation → local evaluator → tell);
* loop: ``Minimizer.step`` — the full ``zoopt.minimize`` loop per generation, which also
  evaluates the current parameters (the history's "loss" column, one extra f call per
  generation) and keeps history and best-so-far;
* the centre evaluation alone, so that its share of the loop's overhead is visible.

Variants run interleaved in rounds; the median time per generation is reported, and the
ratios against the reference measured in the same round. Times are the process's CPU time
by default (single-threaded work, so it equals wall time on an idle machine and is not
inflated by other processes on a loaded one); ``--clock wall`` measures wall time.

Evaluations (``--evals``): the number of objective evaluations to solve 10-D Rosenbrock
(σ₀ = 0.5 from 0, until pycma's tolfun) and 10-D Rastrigin (IPOP, σ₀ = 2 from 3·1, up to 8
restarts, ftarget 1e-8) for zoopt and for ``cma.fmin2`` with the same settings and
generator. fmin2 also evaluates each run's final mean once; zoopt evaluates its current
parameters once per generation.

Run: ``python benchmarks/bench_cmaes.py [--generations 200] [--rounds 5] [--evals]``
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one BLAS thread

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import cma  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import zoopt  # noqa: E402
from zoopt.estimators.cmaes import CMAES  # noqa: E402
from zoopt.evaluators.local import LocalEvaluator  # noqa: E402
from zoopt.minimize import step_seed  # noqa: E402
from zoopt.objectives import FunctionObjective, rastrigin, rosenbrock  # noqa: E402

torch.set_num_threads(1)

#: the clock: CPU time of this (single-threaded) process, robust to other processes' load;
#: ``--clock wall`` switches to wall time
CLOCK = time.process_time

# pycma's termination criteria off, so that every variant runs all its generations
NEVER_STOP = {"tolfun": 0, "tolx": 0, "tolfunhist": 0, "tolstagnation": 10**9, "maxiter": 10**9}


def direct_strategy(dim: int, seed: int) -> cma.CMAEvolutionStrategy:
    est = CMAES(options=NEVER_STOP)
    rng = np.random.Generator(np.random.PCG64(step_seed(seed, 0)))
    opts = est.pycma_options(dim)
    opts["randn"] = lambda lam, d: rng.standard_normal((lam, d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cma.CMAEvolutionStrategy(np.zeros(dim), est.sigma, opts)


def time_reference(dim: int, gens: int, seed: int) -> float:
    es = direct_strategy(dim, seed)
    t0 = CLOCK()
    for _ in range(gens):
        X = es.ask()
        es.tell(X, rosenbrock(torch.from_numpy(np.asarray(X))).tolist())
        es.stop()  # pycma's canonical loop checks its termination criteria every generation
    return (CLOCK() - t0) / gens


def time_estimator(dim: int, gens: int, seed: int) -> float:
    objective = FunctionObjective(rosenbrock, dim=dim)
    est = CMAES(options=NEVER_STOP)
    x = torch.zeros(dim, dtype=torch.float64)
    est.setup(objective, x)
    ev = LocalEvaluator()
    seed = step_seed(seed, 0)
    t0 = CLOCK()
    for _ in range(gens):
        x = est.estimate(objective, x, ev, seed).x  # the seed is used by the first call only
    return (CLOCK() - t0) / gens


def make_loop(dim: int, gens: int, seed: int) -> zoopt.Minimizer:
    return zoopt.Minimizer(
        rosenbrock, torch.zeros(dim, dtype=torch.float64), estimator="cmaes", steps=gens,
        seed=seed, options=NEVER_STOP, progress=False,
    )  # fmt: skip


def time_loop(dim: int, gens: int, seed: int) -> float:
    m = make_loop(dim, gens, seed)
    t0 = CLOCK()
    for _ in range(gens):
        m.step()
    return (CLOCK() - t0) / gens


def time_centre(dim: int, gens: int, seed: int) -> float:
    m = make_loop(dim, gens, seed)
    t0 = CLOCK()
    for t in range(gens):
        m._evaluate_center(step_seed(seed, t))
    return (CLOCK() - t0) / gens


def overhead(dims: list[int], gens: int, rounds: int) -> None:
    print("per-generation time, Rosenbrock, median over rounds")
    print(f"{'D':>4} {'pycma':>10} {'estimator':>10} {'loop':>10} {'centre f':>10} "
          f"{'est/pycma':>10} {'loop/pycma':>11} {'(loop-centre)/pycma':>20}")  # fmt: skip
    for dim in dims:
        for fn in (time_reference, time_estimator, time_loop, time_centre):
            fn(dim, 5, 99)  # warm-up: imports, first allocations
        rows: dict[str, list[float]] = {"ref": [], "est": [], "loop": [], "centre": []}
        ratios: dict[str, list[float]] = {"est": [], "loop": [], "net": []}
        for r in range(rounds):
            ref = time_reference(dim, gens, r)
            est = time_estimator(dim, gens, r)
            loop = time_loop(dim, gens, r)
            centre = time_centre(dim, gens, r)
            for k, v in zip(rows, (ref, est, loop, centre), strict=True):
                rows[k].append(v)
            ratios["est"].append(est / ref)
            ratios["loop"].append(loop / ref)
            ratios["net"].append((loop - centre) / ref)
        med = {k: statistics.median(v) for k, v in rows.items()}
        rat = {k: statistics.median(v) for k, v in ratios.items()}
        print(
            f"{dim:>4} {med['ref'] * 1e6:>8.0f}us {med['est'] * 1e6:>8.0f}us "
            f"{med['loop'] * 1e6:>8.0f}us {med['centre'] * 1e6:>8.0f}us "
            f"{rat['est']:>9.2f}x {rat['loop']:>10.2f}x {rat['net']:>19.2f}x"
        )


def evaluations(seeds: list[int]) -> None:
    problems = {
        "rosenbrock-10": (rosenbrock, np.zeros(10), 0.5, 0, {}),
        "rastrigin-10": (rastrigin, 3 * np.ones(10), 2.0, 8, {"ftarget": 1e-8}),
    }
    print("\nevaluations to solve (zoopt: candidates + one centre per generation)")
    print(f"{'problem':>14} {'seed':>4} {'zoopt cand.':>11} {'zoopt total':>11} "
          f"{'fmin2':>7} {'runs':>4} {'zoopt f':>9} {'fmin2 f':>9} {'same f':>6}")  # fmt: skip
    for name, (fn, x0, sigma, restarts, options) in problems.items():
        for seed in seeds:
            r = zoopt.minimize(
                fn, torch.from_numpy(x0), estimator="cmaes", steps=100_000, seed=seed,
                sigma=sigma, restarts=restarts, options=options, progress=False,
            )  # fmt: skip
            est = CMAES(sigma=sigma, restarts=restarts, options=options)
            rng = np.random.Generator(np.random.PCG64(step_seed(seed, 0)))
            opts = est.pycma_options(len(x0))
            opts["randn"] = lambda lam, d, rng=rng: rng.standard_normal((lam, d))

            def batched(X: list, fn=fn) -> list:
                return fn(torch.from_numpy(np.asarray(X))).tolist()

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, es = cma.fmin2(
                    None, x0, sigma, opts, restarts=restarts, incpopsize=2,
                    parallel_objective=batched,
                )  # fmt: skip
            cand = int(sum(r.history["popsize"]))
            runs = int(r.history["restarts"][-1]) + 1
            same = es.result.fbest == r.best_loss  # zoopt's best also covers the means
            print(
                f"{name:>14} {seed:>4} {cand:>11} {r.evaluations:>11} "
                f"{es.result.evaluations:>7} {runs:>4} {r.best_loss:>9.2e} "
                f"{es.result.fbest:>9.2e} {str(same):>6}"
            )
    print("(fmin2 counts the final mean of each run; zoopt's best f also covers the mean it")
    print(" evaluates every generation, so it can be lower than the best candidate's)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="*", default=[10, 100], help="none: skip")
    ap.add_argument("--generations", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--evals", action="store_true", help="also count evaluations to solve")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"clock: {args.clock} time")
    if args.dims:
        overhead(args.dims, args.generations, args.rounds)
    if args.evals:
        evaluations(args.seeds)


if __name__ == "__main__":
    main()
