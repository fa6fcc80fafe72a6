"""Train a digits classifier directly for accuracy, with every estimator.

Accuracy is piecewise constant in the weights, so ``loss.backward()`` has nothing to say
about it. Here a 64-32-10 MLP on scikit-learn's 8×8 digits is optimised for accuracy itself
by each parameter-space estimator (sampling, ES, CMA-ES) under the same budget of candidate
evaluations, and by REINFORCE on labels sampled from the network, next to plain gradient
descent on cross-entropy (the differentiable stand-in people usually train on).
Every candidate of a step is scored on the same minibatch of 256 training images, drawn
afresh each step (common random numbers).

The σ of the parameter-space estimators matters more than usual here. They optimise the
accuracy of the σ-smoothed network, so a large σ (0.4, against initial weights of order 0.1)
prefers weights whose predictions survive perturbation — wide margins — and held-out
accuracy follows; with σ = 0.05 the same budget fits the training set as well but scores
0.90–0.92 on the test set.

    python examples/digits.py                       # all estimators, the default budget
    python examples/digits.py --estimators es sampling --budget 50000
"""

from __future__ import annotations

import argparse
import time

import torch

import zoopt
from zoopt.datasets import load_classification, mlp
from zoopt.objectives import SupervisedObjective

#: per-estimator options, tuned on this problem; the population ones share K = 64
SETTINGS: dict[str, dict] = {
    "sampling": dict(sigma=0.4, population=64, alpha="auto", lr=0.05, schedule="cosine"),
    "es": dict(sigma=0.4, population=64, lr=0.05, schedule="cosine"),
    # minibatch accuracy often ties across a generation; pycma's flat-fitness stop would
    # end the run early, so it is switched off
    "cmaes": dict(sigma=0.1, population=64, options={"tolflatfitness": 10**9}),
    "reinforce": dict(samples=16, lr=0.01, schedule="cosine"),
    "gradient": dict(lr=0.01, schedule="cosine"),
}
#: estimators that spend their evaluations on labels sampled from the model, or on one
#: cross-entropy gradient per step: they run a fixed number of steps instead of the budget
FIXED_STEPS = {"reinforce": 500, "gradient": 500}


def run(name: str, budget: int, batch_size: int, seed: int, data) -> dict:
    """Optimise a fresh MLP with estimator ``name``; return its held-out scores."""
    X_tr, y_tr, X_te, y_te = data
    model = mlp(64, 32, 10, activation="tanh", seed=seed)
    objective = SupervisedObjective(model, X_tr, y_tr, metric="accuracy", batch_size=batch_size)
    options = dict(SETTINGS[name])
    if name in FIXED_STEPS:
        steps, limit = FIXED_STEPS[name], None
    else:
        # the budget counts candidate evaluations plus one evaluation of θ per step
        steps, limit = max(1, budget // (options.get("population", 1) + 1)), budget
    t0 = time.perf_counter()
    result = zoopt.minimize(
        objective, model, estimator=name, steps=steps, seed=seed, max_evaluations=limit, **options
    )
    seconds = time.perf_counter() - t0
    train = objective.evaluate_split(result.x, X_tr, y_tr)
    test = objective.evaluate_split(result.x, X_te, y_te)
    return {
        "estimator": name,
        "optimises": "cross-entropy" if name == "gradient" else "accuracy",
        "steps": result.steps,
        "evaluations": result.evaluations,
        "train_accuracy": train["accuracy"],
        "test_accuracy": test["accuracy"],
        "test_macro_f1": test["macro_f1"],
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--estimators",
        nargs="+",
        default=[n for n in SETTINGS if n in zoopt.available_estimators()],
        help="estimators to run (default: every registered one)",
    )
    parser.add_argument(
        "--budget", type=int, default=78_000, help="candidate evaluations per estimator"
    )
    parser.add_argument("--batch-size", type=int, default=256, help="minibatch per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    unknown = [n for n in args.estimators if n not in SETTINGS]
    if unknown:
        parser.error(f"--estimators: unknown {unknown}; choose from {list(SETTINGS)}")
    data = load_classification("digits", test_size=0.25, seed=0)
    print(
        f"digits: {len(data[0])} train / {len(data[2])} test images, MLP 64-32-10 (tanh), "
        f"minibatch {args.batch_size}, budget {args.budget} evaluations"
    )
    header = (
        f"{'estimator':10s} {'optimises':14s} {'steps':>6s} {'evals':>8s} "
        f"{'train acc':>9s} {'test acc':>8s} {'test F1':>8s} {'wall s':>7s}"
    )
    print(header)
    print("-" * len(header))
    for name in args.estimators:
        r = run(name, args.budget, args.batch_size, args.seed, data)
        print(
            f"{r['estimator']:10s} {r['optimises']:14s} {r['steps']:6d} {r['evaluations']:8d} "
            f"{r['train_accuracy']:9.4f} {r['test_accuracy']:8.4f} {r['test_macro_f1']:8.4f} "
            f"{r['seconds']:7.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
