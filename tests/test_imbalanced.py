"""The imbalanced classification task and the macro-F1 example's pieces."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from sklearn.metrics import f1_score

import zoopt
from zoopt.datasets import make_imbalanced, mlp
from zoopt.objectives import SupervisedObjective

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "imbalanced_f1.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("imbalanced_f1", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("source", ["digits", "synthetic"])
def test_make_imbalanced_is_deterministic_under_its_seed(source):
    a, b, c = make_imbalanced(source, 3), make_imbalanced(source, 3), make_imbalanced(source, 4)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert any(x.shape != z.shape or not torch.equal(x, z) for x, z in zip(a, c, strict=True))


@pytest.mark.parametrize("source,classes", [("digits", 10), ("synthetic", 6)])
def test_make_imbalanced_keeps_the_imbalance_in_every_split(source, classes):
    data = make_imbalanced(source, 0, rare_fraction=0.1)
    counts = [torch.bincount(y, minlength=classes).float() for y in data[1::2]]
    rare = counts[0] < 0.5 * counts[0].max()
    assert int(rare.sum()) == classes // 2  # the default: half of the classes are rare
    for n in counts:
        assert (n > 0).all()  # every class in every split
        share = n[rare].sum() / n.sum()
        assert share == pytest.approx(float(counts[0][rare].sum() / counts[0].sum()), abs=0.02)
    sizes = [len(y) for y in data[1::2]]
    assert sizes == pytest.approx([0.5 * sum(sizes), 0.25 * sum(sizes), 0.25 * sum(sizes)], abs=2)
    assert data[0].dtype == torch.float32 and data[0].mean(0).abs().max() < 1e-4


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(source="mnist"), "source must be one of"),
        (dict(rare_classes=0), "rare_classes must be an int in \\[1, 9\\]"),
        (dict(rare_classes=10), "rare_classes must be an int"),
        (dict(rare_fraction=0.0), "rare_fraction must be a fraction in \\(0, 1\\]"),
        (dict(splits=(0.5, 0.5)), "splits must be three positive fractions"),
        (dict(splits=(0.5, 0.3, 0.3)), "splits must be three positive fractions"),
    ],
)
def test_make_imbalanced_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_imbalanced(**kwargs)


def test_reported_f1_equals_scikit_learns_on_the_same_predictions(example):
    methods = list(example.METHODS)
    scores, preds, y_test, seconds = example.run_seed(
        0, methods, ce_steps=20, steps=4, check_every=2, hidden=[]
    )
    assert list(scores) == methods and set(seconds) == set(methods)
    for name in methods:
        expected = f1_score(y_test.numpy(), preds[name].numpy(), average="macro")
        assert scores[name] == pytest.approx(expected, abs=1e-6), name  # float32 counts


def test_es_on_macro_f1_improves_it_from_the_cross_entropy_model():
    X, y, *_ = make_imbalanced("synthetic", 0)
    model = mlp(X.shape[1], [], 6, seed=0)
    objective = SupervisedObjective(model, X, y, metric="f1")
    ce = zoopt.minimize(objective, model, estimator="gradient", steps=100, seed=0, lr=0.05)
    start = -float(objective.evaluate(ce.x[None])[0])
    res = zoopt.minimize(
        objective, ce.x, estimator="es", steps=40, seed=0, sigma=0.1, population=16, lr=0.02
    )
    end = -float(objective.evaluate(res.x[None])[0])
    assert end > start + 0.02, (start, end)


def test_bias_tuning_never_lowers_the_tuned_macro_f1(example):
    g = torch.Generator().manual_seed(0)
    targets = torch.cat([torch.zeros(90), torch.ones(10) * 1, torch.ones(10) * 2]).long()
    logits = torch.randn(110, 3, generator=g) + 2.0 * torch.nn.functional.one_hot(targets, 3)
    logits[:, 0] += 1.5  # a model that over-predicts the common class
    bias = example.tune_biases(logits, targets)
    before = f1_score(targets, logits.argmax(-1), average="macro")
    after = f1_score(targets, (logits + bias).argmax(-1), average="macro")
    assert after > before


def test_joint_labelings_are_scored_by_their_macro_f1(example):
    X, y, *_ = make_imbalanced("synthetic", 1)
    X, y = X[:200], y[:200]
    model = mlp(X.shape[1], [], 6, seed=0)
    objective = example.JointLabelF1(model, X, y, metric="f1")
    x = torch.nn.utils.parameters_to_vector(model.parameters()).detach().requires_grad_()
    out = objective.sample_outputs(x, 5, torch.Generator().manual_seed(0))
    assert out.log_probs.shape == (1, 5) and out.losses.shape == (1, 5)
    out.log_probs.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # the same draws again (same generator seed) give labelings whose F1 scikit-learn agrees on
    log_p = torch.log_softmax(objective.logits(x.detach(), X), -1)
    draws = torch.multinomial(log_p.exp(), 5, True, generator=torch.Generator().manual_seed(0))
    for j in range(5):
        expected = f1_score(y.numpy(), draws[:, j].numpy(), average="macro")
        assert -float(out.losses[0, j]) == pytest.approx(expected, abs=1e-6)
