"""Macro-F1 under class imbalance: optimise the metric itself, against cross-entropy.

Cross-entropy rewards getting the common classes right; macro-F1 weighs every class
equally, so a rare class that is never predicted costs 1/C of the score. The task is
``zoopt.datasets.make_imbalanced("synthetic", seed)``: scikit-learn's ``make_classification``
with 6 classes (2 clusters each, 2% flipped labels), 3 of them at 10% of the size of a common
class, split 50/25/25 into train/validation/test with the imbalance kept. The model is
linear, 10 features → 6 logits (multinomial logistic regression; ``--hidden 32`` gives an
MLP), too small to carve out every cluster: it has to choose which errors to make, and
cross-entropy chooses those that cost the rare classes. Every method trains on the training
split and keeps the checkpoint with the best validation macro-F1 (checked every
``--check-every`` steps); the test split is scored once, at the end.

Baselines (cross-entropy, ``gradient``, Adam):

* ``ce``: plain cross-entropy, argmax decisions;
* ``ce-weighted``: cross-entropy with class weights N / (C·N_c);
* ``ce+bias``: the ``ce`` model with one additive logit bias per class tuned on the
  validation split for macro-F1 (coordinate ascent over a grid), i.e. per-class thresholds.

zoopt, warm-started from the ``ce`` model, loss = −macro-F1 of the whole training split:

* ``es`` / ``sampling``: Gaussian perturbations of the parameters (the σ-smoothed macro-F1);
* ``reinforce``: M labelings of the training split drawn from the model's softmax, each
  scored by its macro-F1 (a set-level reward: one row of M draws whose log-probability is
  the sum over the examples).

    python examples/imbalanced_f1.py                      # 5 seeds, every method
    python examples/imbalanced_f1.py --seeds 1 --methods ce es
    python examples/imbalanced_f1.py --hidden 32           # an MLP instead (see the README)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor

import zoopt
from zoopt.datasets import make_imbalanced, mlp
from zoopt.metrics import macro_f1
from zoopt.objectives import SupervisedObjective
from zoopt.objectives.base import OutputSamples

METHODS = ("ce", "ce-weighted", "ce+bias", "es", "sampling", "reinforce")
#: options of the metric-driven runs (set by hand once, the same for every seed)
DIRECT: dict[str, dict] = {
    "es": dict(sigma=0.1, population=32, lr=0.02),
    "sampling": dict(sigma=0.1, population=32, lr=0.02, alpha="auto"),
    "reinforce": dict(samples=32, lr=0.003),
}


class JointLabelF1(SupervisedObjective):
    """A classifier whose sampled outputs are whole labelings of the training split.

    Macro-F1 is a property of a set of predictions, not of one example, so one draw is a
    label for every example at once: ``log_probs (1, M)`` is the sum of the examples'
    log-probabilities, ``losses (1, M)`` the −macro-F1 of each labeling.
    """

    def sample_outputs(
        self, x: Tensor, num_samples: int, generator: torch.Generator, seed: int = 0
    ) -> OutputSamples:
        x = self._check_vector(x)
        xb, yb = self.minibatch(seed, x.device)
        log_p = torch.log_softmax(self.logits(x, xb), dim=-1)  # (B, C)
        draws = torch.multinomial(log_p.detach().exp(), num_samples, True, generator=generator)
        log_probs = log_p.gather(1, draws).sum(dim=0, keepdim=True)  # (1, M)
        losses = -macro_f1(draws.T, yb, self.num_classes)[None]  # (1, M)
        return OutputSamples(log_probs=log_probs, losses=losses.to(log_probs.dtype))


def predict(
    objective: SupervisedObjective, x: Tensor, inputs: Tensor, bias: Tensor | None = None
) -> Tensor:
    """Labels ``(N,)`` of parameters ``x`` ``(D,)``, with optional logit biases ``(C,)``."""
    logits = objective.population_logits(x[None], inputs)[0]
    return (logits if bias is None else logits + bias).argmax(dim=-1)


def train(
    objective: SupervisedObjective,
    x0: Tensor,
    estimator: str,
    steps: int,
    check_every: int,
    seed: int,
    valid: tuple[Tensor, Tensor],
    **options,
) -> tuple[Tensor, int]:
    """Run ``estimator``; return the checkpoint (checked every ``check_every`` steps, the
    start included) with the best validation macro-F1, and its step."""
    m = zoopt.Minimizer(
        objective,
        x0.clone(),
        estimator=estimator,
        steps=steps,
        seed=seed,
        progress=False,
        **options,
    )
    c = objective.num_classes

    def score() -> float:
        return float(macro_f1(predict(objective, m.x.detach(), valid[0]), valid[1], c))

    best, best_x, best_step = score(), m.x.detach().clone(), 0
    while m.step_count < steps:
        for _ in range(min(check_every, steps - m.step_count)):
            m.step()
        if (s := score()) > best:
            best, best_x, best_step = s, m.x.detach().clone(), m.step_count
    m.close()
    return best_x, best_step


def tune_biases(logits: Tensor, targets: Tensor, rounds: int = 3) -> Tensor:
    """Per-class additive logit biases ``(C,)`` maximising macro-F1 on ``logits`` ``(N, C)``,
    by coordinate ascent over a grid in [−4, 4] (ties keep the smallest change)."""
    c = logits.shape[1]
    bias = torch.zeros(c)
    grid = torch.linspace(-4.0, 4.0, 81)
    for _ in range(rounds):
        for k in range(c):
            cand = bias.repeat(len(grid), 1)
            cand[:, k] = grid
            scores = macro_f1((logits[None] + cand[:, None, :]).argmax(-1), targets, c)
            best = scores == scores.max()
            bias = cand[int(torch.where(best, -(grid - bias[k]).abs(), -torch.inf).argmax())]
    return bias


def run_seed(
    seed: int, methods: list[str], ce_steps: int, steps: int, check_every: int, hidden: list[int]
):
    """All ``methods`` on the task of ``seed``.

    Returns ``({method: test macro-F1}, {method: test predictions (N,)}, y_test,
    {method: seconds})``.
    """
    X_tr, y_tr, X_va, y_va, X_te, y_te = make_imbalanced("synthetic", seed)
    c = int(y_tr.max()) + 1
    model = mlp(X_tr.shape[1], hidden, c, activation="tanh", seed=seed)
    x_init = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    valid = (X_va, y_va)
    objective = SupervisedObjective(model, X_tr, y_tr, metric="f1")
    preds: dict[str, Tensor] = {}
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    x_ce, _ = train(objective, x_init, "gradient", ce_steps, check_every, seed, valid, lr=0.02)
    seconds["ce"] = time.perf_counter() - t0
    preds["ce"] = predict(objective, x_ce, X_te)
    if "ce-weighted" in methods:
        w = len(y_tr) / (c * torch.bincount(y_tr, minlength=c).float())
        weighted = SupervisedObjective(
            model, X_tr, y_tr, metric="f1", surrogate=lambda z, y: F.cross_entropy(z, y, w)
        )
        t0 = time.perf_counter()
        x_w, _ = train(weighted, x_init, "gradient", ce_steps, check_every, seed, valid, lr=0.02)
        seconds["ce-weighted"] = time.perf_counter() - t0
        preds["ce-weighted"] = predict(objective, x_w, X_te)
    if "ce+bias" in methods:
        t0 = time.perf_counter()
        bias = tune_biases(objective.population_logits(x_ce[None], X_va)[0], y_va)
        seconds["ce+bias"] = seconds["ce"] + time.perf_counter() - t0
        preds["ce+bias"] = predict(objective, x_ce, X_te, bias)
    for name in ("es", "sampling", "reinforce"):
        if name not in methods:
            continue
        cls = JointLabelF1 if name == "reinforce" else SupervisedObjective
        direct = cls(model, X_tr, y_tr, metric="f1")
        t0 = time.perf_counter()
        x, _ = train(direct, x_ce, name, steps, check_every, seed, valid, **DIRECT[name])
        seconds[name] = seconds["ce"] + time.perf_counter() - t0
        preds[name] = predict(objective, x, X_te)
    preds = {k: preds[k] for k in METHODS if k in methods}
    scores = {k: float(macro_f1(p, y_te, c)) for k, p in preds.items()}
    return scores, preds, y_te, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--ce-steps", type=int, default=1000, help="cross-entropy steps")
    parser.add_argument("--steps", type=int, default=300, help="steps of the direct runs")
    parser.add_argument("--check-every", type=int, default=50, help="validation interval")
    parser.add_argument(
        "--hidden", type=int, nargs="*", default=[], help="hidden widths (default: linear)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods = ["ce", *[m for m in args.methods if m != "ce"]]  # the others start from ce

    X_tr, y_tr, X_va, _, X_te, y_te = make_imbalanced("synthetic", args.seed)
    print(
        f"task: make_imbalanced('synthetic'), {len(X_tr)}/{len(X_va)}/{len(X_te)} "
        f"train/valid/test, train class counts {torch.bincount(y_tr).tolist()}; "
        f"MLP {'-'.join(map(str, [X_tr.shape[1], *args.hidden, int(y_tr.max()) + 1]))}"
    )
    results: dict[str, list[float]] = {m: [] for m in methods}
    times: dict[str, list[float]] = {m: [] for m in methods}
    for seed in range(args.seed, args.seed + args.seeds):
        scores, _, _, seconds = run_seed(
            seed, methods, args.ce_steps, args.steps, args.check_every, args.hidden
        )
        for m in methods:
            results[m].append(scores[m])
            times[m].append(seconds[m])
        print(f"seed {seed}: " + "  ".join(f"{m} {s:.4f}" for m, s in scores.items()), flush=True)

    print("\ntest macro-F1 (scikit-learn's f1_score(average='macro')), mean ± sd over seeds")
    print(f"{'method':12s} {'macro-F1':>8s} {'sd':>7s} {'vs ce':>7s} {'wall s':>7s}")
    base = statistics.mean(results["ce"])
    for m in methods:
        mean = statistics.mean(results[m])
        sd = statistics.stdev(results[m]) if len(results[m]) > 1 else 0.0
        print(f"{m:12s} {mean:8.4f} {sd:7.4f} {mean - base:+7.4f} {statistics.mean(times[m]):7.1f}")


if __name__ == "__main__":
    main()
