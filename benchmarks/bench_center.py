"""Share of evaluation time spent on the centre θ: its own call versus one more row.

An ``es`` run on CartPole-v1 (linear policy, K candidates × E episodes) is driven through
ask/tell. At every step the same rows are evaluated three ways, in rotating order:

* ``population``: the K candidates alone;
* ``separate``: θ alone in its own evaluator call (how the loop evaluated the centre before);
* ``same batch``: the K candidates and θ in one call (how the loop evaluates it now).

The centre's share is ``separate / (population + separate)`` for its own call and
``(same batch − population) / same batch`` for the extra row; with ``evaluate_center=n``
(θ every n-th step) the steps without θ cost ``population``. θ's return is the same both
ways (the episodes derive from the step's seed), which the script checks.

    python benchmarks/bench_center.py --steps 40 --every 5
"""

from __future__ import annotations

import argparse
import time

import torch

import zoopt
from zoopt.objectives import GymObjective
from zoopt.population import ExplicitPopulation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--population", type=int, default=32)
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=5, help="evaluate_center=n to report too")
    args = ap.parse_args()
    torch.set_num_threads(1)

    objective = GymObjective("CartPole-v1", "linear", episodes=args.episodes)
    evaluator = zoopt.LocalEvaluator()
    x0 = 0.1 * torch.randn(objective.dim, generator=torch.Generator().manual_seed(args.seed))
    m = zoopt.Minimizer(
        None, x0, estimator="es", population=args.population, sigma=0.1,
        shaping="centered_ranks", lr=0.05, seed=args.seed, evaluate_center=True,
    )  # fmt: skip
    totals = {"population": 0.0, "separate": 0.0, "same batch": 0.0}
    best = -float("inf")
    periodic = {"centre": 0.0, "total": 0.0}  # evaluate_center=every, from the same timings
    for t in range(args.steps):
        X = m.ask()  # K candidates, then θ
        seed = zoopt.step_seed(args.seed, t)
        calls = {
            "population": ExplicitPopulation(X[:-1]),
            "separate": ExplicitPopulation(X[-1:]),
            "same batch": ExplicitPopulation(X),
        }
        names = list(calls)
        order = names[t % 3 :] + names[: t % 3]  # rotate which call runs first
        out = {}
        for name in order:
            t0 = time.perf_counter()
            out[name] = evaluator.evaluate(objective, calls[name], seed)
            out[name + " s"] = time.perf_counter() - t0
            totals[name] += out[name + " s"]
        if t % args.every == 0:
            periodic["centre"] += max(0.0, out["same batch s"] - out["population s"])
            periodic["total"] += out["same batch s"]
        else:
            periodic["total"] += out["population s"]
        if float(out["separate"][0]) != float(out["same batch"][-1]):
            raise AssertionError(f"step {t}: θ's loss differs between its own call and the batch")
        m.tell(out["same batch"])
        best = max(best, -m.best_loss)
    pop, sep, same = totals["population"], totals["separate"], totals["same batch"]
    print(
        f"CartPole-v1, es, K={args.population}, E={args.episodes}, {args.steps} steps, "
        f"best return {best:.1f}"
    )
    print(f"{'evaluation':<34}{'seconds':>10}")
    for name, value in totals.items():
        print(f"{name:<34}{value:>10.3f}")
    print(f"centre's share, its own call:     {sep / (pop + sep):>9.1%}")
    print(f"centre's share, one more row:     {max(0.0, same - pop) / same:>9.1%}")
    print(
        f"centre's share, evaluate_center={args.every}: "
        f"{periodic['centre'] / periodic['total']:>8.1%}"
    )
    print(f"episodes of the centre:           {1 / (args.population + 1):>9.1%}")
    print(f"evaluation time, same batch / (population + separate): {same / (pop + sep):.2f}")


if __name__ == "__main__":
    main()
