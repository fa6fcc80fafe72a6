"""Cost of a generation of ``cmaes(surrogate=True)`` against pycma's own lq-CMA-ES.

Both run lq-CMA-ES (Hansen, 2019, "A global surrogate assisted CMA-ES", GECCO) on 10-D
Rosenbrock from 0 with σ₀ = 0.5 for a fixed number of generations (pycma's ``maxiter``, the
other termination criteria off): pycma through ``cma.fmin_lq_surr2`` (no restarts), zoopt
through ``zoopt.Minimizer`` with ``estimator="cmaes", surrogate=True`` (one loop step per
increment of evaluated candidates). The variants alternate within each round; the first
round (imports, first calls) is left out of the medians. Printed: CPU and wall milliseconds
per generation and per evaluation, and zoopt's ratio to pycma measured in the same round.

Run: ``python benchmarks/bench_surrogate.py [--generations 150] [--rounds 4]``
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
from zoopt.objectives import rosenbrock  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
D = 10
NEVER_STOP = {"tolfun": 0, "tolx": 0, "tolfunhist": 0, "tolstagnation": 10**9}


def run_pycma(seed: int, generations: int) -> tuple[float, float, int]:
    def f(x) -> float:
        return float(rosenbrock(torch.as_tensor(np.asarray(x))[None])[0])

    opts = {"maxiter": generations, "verbose": -9, "seed": seed + 1, "ftarget": -1,
            "tolflatfitness": 10**9, **NEVER_STOP}  # fmt: skip
    cpu, wall = time.process_time(), time.perf_counter()
    _, es = cma.fmin_lq_surr2(f, np.zeros(D), 0.5, opts, restarts=0)
    return time.process_time() - cpu, time.perf_counter() - wall, int(es.countevals)


def run_zoopt(seed: int, generations: int) -> tuple[float, float, int]:
    cpu, wall = time.process_time(), time.perf_counter()
    m = zoopt.Minimizer(rosenbrock, torch.zeros(D, dtype=torch.float64), estimator="cmaes",
                        surrogate=True, sigma=0.5, seed=seed, steps=10**9, progress=False,
                        options={"maxiter": generations, **NEVER_STOP})  # fmt: skip
    while not m.stop_reason:
        m.step()
    return time.process_time() - cpu, time.perf_counter() - wall, m.evaluations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--generations", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    g = args.generations
    rows: dict[str, list] = {"pycma": [], "zoopt": []}
    for r in range(args.rounds):
        order = [("pycma", run_pycma), ("zoopt", run_zoopt)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            cpu, wall, n = fn(r, g)
            print(f"round {r} {name}: {g} generations, {n} evaluations: {cpu / g * 1e3:.2f} ms "
                  f"CPU / generation, {wall / g * 1e3:.2f} ms wall", flush=True)  # fmt: skip
            if r > 0:
                rows[name].append((cpu / g, wall / g, cpu / n, wall / n))
    labels = ["ms CPU / generation", "ms wall / generation", "ms CPU / evaluation",
              "ms wall / evaluation"]  # fmt: skip
    for k, label in enumerate(labels):
        z = statistics.median(v[k] for v in rows["zoopt"]) * 1e3
        p = statistics.median(v[k] for v in rows["pycma"]) * 1e3
        print(f"{label}: zoopt {z:.2f}, pycma {p:.2f}, ratio {z / p:.2f}")


if __name__ == "__main__":
    main()
