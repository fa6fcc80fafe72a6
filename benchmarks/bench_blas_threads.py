"""The time of a step with numpy's BLAS limited to one thread for the small dense algebra
(:mod:`zoopt.blas_threads`, the default) against the same step on BLAS's own threads.

Each case runs zoopt's loop on the sphere (x0 = 1, seed 0) for a warm-up and then ``--steps``
timed steps, in rounds that alternate the two arms (the order swapped every round); printed:
the median microseconds per step of each arm and their ratio, measured in the same rounds.
The arms evaluate the same points (``tests/test_blas_threads.py``), so only time differs.
The gain depends on the cores and on what else runs on them: print the load with it.

Run: ``python benchmarks/bench_blas_threads.py [--rounds 5] [--steps 300]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import torch

import zoopt
import zoopt.blas_threads as blas_threads
from zoopt.objectives import sphere

warnings.filterwarnings("ignore")
torch.set_num_threads(1)

#: (label, estimator, D, options)
CASES = [
    ("snes", "snes", 10, {}),
    ("es", "es", 10, {}),
    ("ars K=2", "ars", 10, {"population": 2, "top": 1}),
    ("cmaes", "cmaes", 10, {}),
    ("cmaes surrogate", "cmaes", 10, {"surrogate": True}),
    ("snes D=20", "snes", 20, {}),
    ("cmaes D=100", "cmaes", 100, {}),
    ("cmaes D=200 (no limit: control)", "cmaes", 200, {}),
]


def seconds_per_step(estimator: str, dim: int, options: dict, steps: int, limited: bool) -> float:
    saved = blas_threads._blas
    if not limited:
        blas_threads._blas = lambda: None  # the block on BLAS's own threads
    try:
        x0 = torch.ones(dim, dtype=torch.float64)
        m = zoopt.Minimizer(sphere, x0, estimator=estimator, seed=0, steps=10**9,
                            progress=False, **options)  # fmt: skip
        for _ in range(20):
            m.step()
        t0 = time.perf_counter()
        for _ in range(steps):
            m.step()
        return (time.perf_counter() - t0) / steps
    finally:
        blas_threads._blas = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    blas = blas_threads._blas()
    threads = [lib.num_threads for lib in blas.lib_controllers] if blas is not None else []
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"numpy's BLAS threads: {threads}; {os.cpu_count()} CPUs; load average {load}; "
          f"median of {args.rounds} rounds")  # fmt: skip
    print(f"{'case':34s} {'one thread µs':>14s} {'own threads µs':>15s} {'ratio':>6s}")
    for label, est, dim, opts in CASES:
        one, own = [], []
        for r in range(args.rounds):
            arms = [(True, one), (False, own)]
            for limited, out in arms if r % 2 == 0 else arms[::-1]:
                out.append(seconds_per_step(est, dim, opts, args.steps, limited))
        a, b = statistics.median(one) * 1e6, statistics.median(own) * 1e6
        print(f"{label:34s} {a:14.0f} {b:15.0f} {a / b:6.2f}")


if __name__ == "__main__":
    main()
