"""Population evaluation throughput of SupervisedObjective against hand-written batched matmuls.

A 64-32-10 tanh MLP on the digits training set (1,347 samples), K candidates per call.
The reference evaluates the same population with ``torch.baddbmm`` written out by hand
for this one architecture, then argmax and accuracy — the fastest plain-PyTorch code for
the job. Reported: candidate evaluations per second of

* ``SupervisedObjective`` (fast path: the MLP detected, batched matmuls),
* ``SupervisedObjective(fast_path=False)`` (``vmap`` over ``functional_call``),

each as a ratio to the reference measured in the same run (best of several repeats,
interleaved so that load on the machine affects all three alike).

    python benchmarks/bench_supervised.py [--population 64] [--repeats 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor

from zoopt.datasets import load_classification, mlp
from zoopt.objectives import SupervisedObjective


def reference_losses(X: Tensor, inputs: Tensor, targets: Tensor) -> Tensor:
    """−accuracy of a 64-32-10 tanh MLP for each row of ``X`` ``(K, 2410)``, by hand."""
    k = X.shape[0]
    W1 = X[:, :2048].view(k, 32, 64)
    b1 = X[:, 2048:2080].unsqueeze(1)
    W2 = X[:, 2080:2400].view(k, 10, 32)
    b2 = X[:, 2400:2410].unsqueeze(1)
    h = torch.tanh(torch.baddbmm(b1, inputs.expand(k, *inputs.shape), W1.transpose(1, 2)))
    logits = torch.baddbmm(b2, h, W2.transpose(1, 2))
    return -(logits.argmax(-1) == targets).float().mean(1)


def best_seconds(fn, calls: int) -> float:
    """Seconds per call, over ``calls`` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=64, help="K candidates per call")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved repeats")
    parser.add_argument("--calls", type=int, default=5, help="calls per repeat")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    X_tr, y_tr, _, _ = load_classification("digits")
    model = mlp(64, 32, 10, activation="tanh", seed=0)
    fast = SupervisedObjective(model, X_tr, y_tr)
    general = SupervisedObjective(model, X_tr, y_tr, fast_path=False)
    assert fast.uses_fast_path and not general.uses_fast_path and fast.dim == 2410
    x0 = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    X = x0 + 0.1 * torch.randn(
        args.population, fast.dim, generator=torch.Generator().manual_seed(0)
    )

    # the three must compute the same losses before their speed means anything
    ref = reference_losses(X, X_tr, y_tr)
    assert torch.allclose(fast.evaluate(X), ref) and torch.allclose(general.evaluate(X), ref)

    runs = {
        "hand-written baddbmm (reference)": lambda: reference_losses(X, X_tr, y_tr),
        "SupervisedObjective (fast path)": lambda: fast.evaluate(X),
        "SupervisedObjective (vmap)": lambda: general.evaluate(X),
    }
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeats):
        for name, fn in runs.items():
            best[name] = min(best[name], best_seconds(fn, args.calls))

    ref_rate = args.population / best["hand-written baddbmm (reference)"]
    print(
        f"64-32-10 MLP, digits train N={len(X_tr)}, K={args.population}, "
        f"{args.threads} thread(s); best of {args.repeats}×{args.calls} calls"
    )
    print(f"{'evaluator':36s} {'ms/call':>9s} {'cand. evals/s':>14s} {'ratio':>7s}")
    for name, sec in best.items():
        rate = args.population / sec
        print(f"{name:36s} {sec * 1e3:9.2f} {rate:14.0f} {rate / ref_rate:7.2f}")


if __name__ == "__main__":
    main()
