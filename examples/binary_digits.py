"""A network with a hard part: binary weights on digits, searched directly or by straight-through.

Every weight of a 64-H-10 tanh network is ±1 (``sign`` of a latent real weight, scaled by
1/√fan-in; the biases stay real), so the loss is piecewise constant in the latent weights
and ``loss.backward()`` gives zero almost everywhere. Two ways to train it:

* the straight-through estimator (Bengio et al., 2013; Courbariaux et al., 2016): the
  forward pass uses ``sign(θ)``, the backward pass pretends it was ``hardtanh(θ)``, and Adam
  follows the cross-entropy of that network;
* zoopt on the latent weights: ``es`` and ``sampling`` perturb θ, binarise every candidate
  and score its accuracy on the step's minibatch — no surrogate and no pretending (the
  expectation of ``sign(θ + σε)`` is smooth in θ, which is what they follow).

The cost is the number of binary weights, 74·H; the script trains each width ``--widths``
with each method and plots held-out accuracy against that cost (scikit-learn's digits, the
fixed stratified 75/25 split of :func:`zoopt.datasets.load_classification`).

    python examples/binary_digits.py --out binary_digits.png
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch import Tensor

import zoopt
from zoopt.datasets import load_classification
from zoopt.objectives import Objective
from zoopt.objectives.base import seeded_generator

#: zoopt's options on the latent weights (the same budget of steps for both)
SETTINGS: dict[str, dict] = {
    "es": dict(sigma=0.05, population=64, lr=0.01),
    "sampling": dict(sigma=0.05, population=64, lr=0.01, alpha="auto"),
}


def layout(width: int, features: int = 64, classes: int = 10) -> list[tuple[str, int]]:
    """Names and sizes of the flat latent vector: W1 (H·F), b1 (H), W2 (C·H), b2 (C)."""
    return [("W1", width * features), ("b1", width), ("W2", classes * width), ("b2", classes)]


def binary_logits(X: Tensor, inputs: Tensor, width: int, straight_through: bool = False) -> Tensor:
    """Logits ``(K, B, C)`` of K latent vectors ``X`` ``(K, D)`` on ``inputs`` ``(B, F)``.

    Weights are ``sign`` of the latent ones; with ``straight_through`` the gradient passes
    as if they were ``hardtanh`` (the straight-through estimator).
    """
    k, f = X.shape[0], inputs.shape[1]
    names, sizes = zip(*layout(width, f), strict=True)
    parts = dict(zip(names, X.split(list(sizes), 1), strict=True))

    def binary(w: Tensor) -> Tensor:
        b = torch.where(w >= 0, 1.0, -1.0).to(w.dtype)
        if straight_through:
            soft = F.hardtanh(w)
            return soft + (b - soft).detach()
        return b

    W1 = binary(parts["W1"]).view(k, width, f) / math.sqrt(f)
    W2 = binary(parts["W2"]).view(k, -1, width) / math.sqrt(width)
    h = torch.tanh(torch.baddbmm(parts["b1"][:, None], inputs.expand(k, *inputs.shape), W1.mT))
    return torch.baddbmm(parts["b2"][:, None], h, W2.mT)


class BinaryNetAccuracy(Objective):
    """Loss = −accuracy of the binarised network of each latent vector on a minibatch."""

    metric_name = "accuracy"
    metric_sign = -1.0

    def __init__(self, inputs: Tensor, targets: Tensor, width: int, batch_size: int = 256):
        self.inputs, self.targets, self.width = inputs, targets, width
        self.batch_size = batch_size
        self.dim = sum(s for _, s in layout(width, inputs.shape[1]))

    def evaluate(self, X: Tensor, seed: int = 0) -> Tensor:
        idx = torch.randperm(len(self.targets), generator=seeded_generator(seed))
        idx = idx[: self.batch_size]
        with torch.no_grad():
            pred = binary_logits(X, self.inputs[idx], self.width).argmax(-1)
        return -(pred == self.targets[idx]).float().mean(dim=1)


def accuracy(x: Tensor, inputs: Tensor, targets: Tensor, width: int) -> float:
    """Held-out accuracy of the binarised network of one latent vector ``x`` ``(D,)``."""
    with torch.no_grad():
        pred = binary_logits(x[None], inputs, width)[0].argmax(-1)
    return float((pred == targets).float().mean())


def straight_through(
    x0: Tensor, inputs: Tensor, targets: Tensor, width: int, steps: int, seed: int
) -> Tensor:
    """Adam on the cross-entropy of the binarised network through the straight-through
    estimator, minibatches of 256; returns the latent weights."""
    x = x0.clone().requires_grad_()
    opt = torch.optim.Adam([x], lr=0.01)
    for step in range(steps):
        idx = torch.randperm(len(targets), generator=seeded_generator(seed * 100_003 + step))
        idx = idx[:256]
        loss = F.cross_entropy(binary_logits(x[None], inputs[idx], width, True)[0], targets[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return x.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--steps", type=int, default=300, help="steps of every method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=["ste", *SETTINGS])
    parser.add_argument("--out", default="binary_digits.png", help="the trade-off plot")
    args = parser.parse_args()
    torch.set_num_threads(1)
    unknown = [m for m in args.methods if m != "ste" and m not in SETTINGS]
    if unknown:
        parser.error(f"--methods: unknown {unknown}; choose from {['ste', *SETTINGS]}")

    X_tr, y_tr, X_te, y_te = load_classification("digits", test_size=0.25, seed=0)
    print(f"{'method':9s} {'width':>5s} {'binary weights':>14s} {'test acc':>8s} {'wall s':>7s}")
    rows: list[tuple[str, int, int, float]] = []
    for width in args.widths:
        d = sum(s for _, s in layout(width))
        x0 = 0.1 * torch.randn(d, generator=torch.Generator().manual_seed(args.seed))
        cost = d - width - 10  # the binary weights, biases excluded
        for method in args.methods:
            t0 = time.perf_counter()
            if method == "ste":
                x = straight_through(x0, X_tr, y_tr, width, args.steps, args.seed)
            else:
                objective = BinaryNetAccuracy(X_tr, y_tr, width)
                res = zoopt.minimize(
                    objective,
                    x0.clone(),
                    estimator=method,
                    steps=args.steps,
                    seed=args.seed,
                    progress=False,
                    **SETTINGS[method],
                )
                x = res.x
            acc = accuracy(x, X_te, y_te, width)
            rows.append((method, width, cost, acc))
            print(
                f"{method:9s} {width:5d} {cost:14d} {acc:8.4f} {time.perf_counter() - t0:7.1f}",
                flush=True,
            )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method in args.methods:
        pts = [(c, a) for m, _, c, a in rows if m == method]
        ax.plot(*zip(*pts, strict=True), marker="o", label=method)
    ax.set_xscale("log")
    ax.set_xlabel("binary weights (cost)")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"binary-weight MLP on digits, {args.steps} steps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"trade-off plot saved to {args.out}")


if __name__ == "__main__":
    main()
