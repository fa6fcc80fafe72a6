"""The cost of a generation with the quadratic metamodel and importance mixing, at D = 10.

One generation is ask → evaluate → tell of ``snes`` on the sphere through :class:`Minimizer`
(the evaluation itself costs microseconds, so the figures are the estimator's overhead). The
variants run interleaved, in rounds, from the same state: plain, ``importance_mixing=0.1``,
``metamodel=True`` and both; the archive is full (the full quadratic, 66 terms, fitted twice a
generation on 132 points). Prints the median CPU milliseconds (process time, one thread: what a
shared machine's other load does not inflate as much as wall time) per generation of each
variant and the extra cost against plain ``snes`` measured in the same run.

Run: ``python benchmarks/bench_metamodel.py [--dim 10] [--rounds 7] [--steps 60]``
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

import zoopt  # noqa: E402
from zoopt.objectives import sphere  # noqa: E402

torch.set_num_threads(1)

VARIANTS = {  # snes's default at D ≤ 20 is metamodel="auto" (on): plain snes turns it off
    "snes": {"metamodel": False},
    "snes+mixing": {"importance_mixing": 0.1, "antithetic": False, "metamodel": False},
    "snes+metamodel": {"metamodel": True},
    "snes+both": {"metamodel": True, "importance_mixing": 0.1, "antithetic": False},
}


def warm(dim: int, opts: dict) -> zoopt.Minimizer:
    """A minimizer past its first generations (the archive full), far from the optimum."""

    def f(x):
        return sphere(x - 1e3)  # the minimiser is far away: steps keep going

    m = zoopt.Minimizer(
        f,
        torch.zeros(dim, dtype=torch.float64),
        estimator="snes",
        sigma=1.0,
        seed=0,
        evaluate_center=False,
        **opts,
    )
    for _ in range(40):
        m.step()
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dim", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    times: dict = {k: [] for k in VARIANTS}
    for _ in range(args.rounds):
        for name, opts in VARIANTS.items():  # interleaved: each round measures every variant
            m = warm(args.dim, opts)
            t0 = time.process_time()
            for _ in range(args.steps):
                m.step()
            times[name].append((time.process_time() - t0) / args.steps * 1e3)
    base = statistics.median(times["snes"])
    print(
        f"D = {args.dim}: CPU milliseconds per generation (process time, one thread; median of "
        f"{args.rounds} rounds)"
    )
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:16s} {med:6.3f} ms   {med / base:5.2f}x snes   extra {med - base:+.3f} ms")


if __name__ == "__main__":
    main()
