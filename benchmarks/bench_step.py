"""Per-step overhead of zoopt's estimators against a plain-numpy antithetic ES.

One step = draw K = 64 antithetic candidates around θ, evaluate the sphere on all of them,
form the estimate and apply an SGD update. The reference does exactly that in numpy, in the
same process and run. Printed: microseconds per step and the ratio zoopt / numpy.

    .venv/bin/python benchmarks/bench_step.py [--repeats 7]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import zoopt  # noqa: E402
from zoopt.objectives import FunctionObjective, sphere  # noqa: E402

K, SIGMA, LR = 64, 0.1, 0.01


def numpy_es_steps(d: int, n: int) -> float:
    """Seconds per step of a plain-numpy antithetic ES (the reference)."""
    rng = np.random.default_rng(0)
    theta = np.ones(d, dtype=np.float32)
    t0 = time.perf_counter()
    for _ in range(n):
        eps = rng.standard_normal((K // 2, d), dtype=np.float32)
        X = np.concatenate([theta + SIGMA * eps, theta - SIGMA * eps])
        f = (X * X).sum(1)
        g = (f[: K // 2] - f[K // 2 :]) @ eps / (K * SIGMA)
        theta -= LR * g
    return (time.perf_counter() - t0) / n


def zoopt_steps(name: str, d: int, n: int, **options) -> float:
    """Seconds per step of zoopt's estimator + torch.optim.SGD (no logging, no centre eval)."""
    objective = FunctionObjective(sphere)
    est = zoopt.get_estimator(name, sigma=SIGMA, population=K, **options)
    evaluator = zoopt.LocalEvaluator()
    x = torch.ones(d)
    est.setup(objective, x)
    opt = torch.optim.SGD([x], lr=LR)
    t0 = time.perf_counter()
    for t in range(n):
        e = est.estimate(objective, x, evaluator, t)
        x.grad = e.grad
        opt.step()
    return (time.perf_counter() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="interleaved rounds")
    args = p.parse_args()
    torch.set_num_threads(1)
    variants = (
        ("es (raw)", "es", {}),
        ("es (centered_ranks)", "es", {"shaping": "centered_ranks"}),
        ("sampling (alpha=auto)", "sampling", {}),
    )
    print(
        f"K = {K}, one step = sample + evaluate sphere + estimate + SGD update; "
        f"{args.repeats} interleaved rounds, median per-round ratio"
    )
    print(f"{'D':>7} {'estimator':<22} {'zoopt us':>10} {'numpy us':>10} {'ratio':>7}")
    for d, n in ((10, 2000), (10_000, 60)):
        zoopt_steps("es", d, 5)  # warm-up (first optimizer step imports torch internals)
        rounds = []
        for _ in range(args.repeats):
            # the reference and every variant in each round: drifts in machine speed cancel
            ref = numpy_es_steps(d, n)
            rounds.append((ref, [zoopt_steps(name, d, n, **opts) for _, name, opts in variants]))
        ref_med = statistics.median(r for r, _ in rounds)
        for i, (label, _, _) in enumerate(variants):
            t_med = statistics.median(ts[i] for _, ts in rounds)
            ratio = statistics.median(ts[i] / r for r, ts in rounds)
            print(f"{d:>7} {label:<22} {t_med * 1e6:>10.1f} {ref_med * 1e6:>10.1f} {ratio:>7.2f}")


if __name__ == "__main__":
    main()
