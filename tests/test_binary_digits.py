"""The binary-weight network of examples/binary_digits.py: its forward pass and training."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import zoopt
from zoopt.datasets import load_classification

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "binary_digits.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("binary_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_weights_are_binary_and_straight_through_has_the_same_forward(example):
    width = 5
    d = sum(s for _, s in example.layout(width))
    g = torch.Generator().manual_seed(0)
    X = torch.randn(3, d, generator=g)
    inputs = torch.randn(7, 64, generator=g)
    hard = example.binary_logits(X, inputs, width)
    # flipping a latent weight's magnitude but not its sign changes nothing
    scaled = X.clone()
    scaled[:, : width * 64] *= 3.0
    assert torch.allclose(example.binary_logits(scaled, inputs, width), hard, atol=1e-6)
    x = X[0].clone().requires_grad_()
    soft = example.binary_logits(x[None], inputs, width, straight_through=True)
    assert torch.allclose(soft[0].detach(), hard[0], atol=1e-6)
    soft.sum().backward()
    assert x.grad[: width * 64].abs().sum() > 0  # the straight-through gradient reaches W1


def test_es_on_the_latent_weights_raises_accuracy(example):
    X, y, _, _ = load_classification("digits")
    objective = example.BinaryNetAccuracy(X, y, width=8, batch_size=None)
    x0 = 0.1 * torch.randn(objective.dim, generator=torch.Generator().manual_seed(0))
    start = -float(objective.evaluate(x0[None])[0])
    res = zoopt.minimize(
        objective, x0, estimator="es", steps=30, seed=0, sigma=0.05, population=32, lr=0.01
    )
    end = -float(objective.evaluate(res.x[None])[0])
    assert end > start + 0.2, (start, end)


def test_straight_through_raises_accuracy(example):
    X, y, _, _ = load_classification("digits")
    d = sum(s for _, s in example.layout(8))
    x0 = 0.1 * torch.randn(d, generator=torch.Generator().manual_seed(0))
    x = example.straight_through(x0, X, y, 8, steps=30, seed=0)
    assert example.accuracy(x, X, y, 8) > example.accuracy(x0, X, y, 8) + 0.2
