"""Quickstart: every estimator on the 10-D Rosenbrock function, one table, one plot.

Each registered estimator minimises Rosenbrock from x0 = 0 for ``--steps`` steps (minimum 0
at (1, …, 1); a start at −1 would lead into the local minimum near (−1, 1, …, 1)). An
estimator that does not apply to a plain function is skipped there: ``"reinforce"`` needs an
objective that samples its own outputs, so it is shown on ``CategoricalBandit`` instead (a
softmax policy over arms with known losses; its loss is the expected loss, whose minimum is
the best arm's).

    python examples/quickstart.py                       # ~10 s on one CPU core
    python examples/quickstart.py --steps 3000 --seed 1 --out curves.png
"""

from __future__ import annotations

import argparse
import time

import torch

import zoopt
from zoopt.objectives import CategoricalBandit, rosenbrock

torch.set_num_threads(1)

#: options per estimator (anything else registered runs with its defaults)
SETTINGS = {
    # a small σ follows the curved valley; the cosine schedule settles into the minimum
    "sampling": dict(sigma=0.01, population=32, lr=0.05, schedule="cosine"),
    "es": dict(sigma=0.01, population=32, lr=0.05, schedule="cosine"),
    "cmaes": dict(sigma=0.3),
    "gradient": dict(lr=0.02, schedule="cosine"),
    "reinforce": dict(samples=16, lr=0.1),
}


def run(name: str, objective, x0: torch.Tensor, steps: int, seed: int) -> zoopt.Result:
    """Minimise ``objective`` from ``x0`` with estimator ``name``."""
    return zoopt.minimize(
        objective,
        x0,
        estimator=name,
        steps=steps,
        seed=seed,
        progress=False,
        **SETTINGS.get(name, {}),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="steps per estimator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="quickstart.png", help="learning-curve PNG")
    args = parser.parse_args()

    # 1. Rosenbrock with every estimator that applies to a plain function
    x0 = torch.zeros(10)
    results: dict[str, tuple[str, zoopt.Result]] = {}
    skipped = []
    for name in zoopt.available_estimators():
        t0 = time.perf_counter()
        try:
            result = run(name, rosenbrock, x0, args.steps, args.seed)
        except TypeError as e:  # does not apply, e.g. "reinforce" on a plain function
            skipped.append(name)
            print(f"{name}: skipped on Rosenbrock: {str(e).split(';')[0]}")
            continue
        results[name] = ("rosenbrock-10", result, time.perf_counter() - t0)

    # 2. "reinforce" on an objective that samples outputs: 5 arms, the best has loss 0.1
    bandit = CategoricalBandit(torch.tensor([1.0, 0.8, 0.6, 0.4, 0.1]), noise=0.1)
    for name in skipped:
        if name == "reinforce":
            t0 = time.perf_counter()
            result = run(name, bandit, torch.zeros(bandit.dim), args.steps, args.seed)
            results[name] = ("bandit-5", result, time.perf_counter() - t0)

    # 3. the table
    print()
    header = f"{'estimator':10s} {'objective':14s} {'steps':>6s} {'evaluations':>11s} "
    header += f"{'final loss':>11s} {'seconds':>8s}"
    print(header)
    print("-" * len(header))
    for name, (objective, r, seconds) in results.items():
        print(
            f"{name:10s} {objective:14s} {r.steps:6d} {r.evaluations:11d} "
            f"{r.loss:11.4g} {seconds:8.2f}"
        )

    # 4. the learning curves: loss against evaluations, log scale
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, (objective, r, _) in results.items():
        # θ's loss where the step evaluated it (population estimators: every 10th step)
        history = zip(r.history["evaluations"], r.history["loss"], strict=True)
        points = [(e, v) for e, v in history if v == v]  # v == v: not NaN
        evaluations, loss = [e for e, _ in points], [v for _, v in points]
        if objective == "bandit-5":  # its minimum is not 0: plot the gap to the best arm
            loss = [v - bandit.best_loss() for v in loss]
            right.plot(evaluations, loss, label=name, color="C4")
        else:
            left.plot(evaluations, loss, label=name)
    left.set_title("Rosenbrock, D = 10")
    left.set_ylabel("loss")
    right.set_title("CategoricalBandit, 5 arms")
    right.set_ylabel("expected loss − best arm's loss")
    for ax in (left, right):
        ax.set_xlabel("evaluations")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"\nlearning curves saved to {args.out}")


if __name__ == "__main__":
    main()
