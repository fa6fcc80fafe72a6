"""Batched test functions ``f(X: Tensor[K, D]) -> Tensor[K]`` (differentiable torch code)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["sphere", "rosenbrock", "rastrigin", "FUNCTIONS"]


def sphere(X: Tensor) -> Tensor:
    """Σ xᵢ², minimum 0 at the origin."""
    return (X * X).sum(-1)


def rosenbrock(X: Tensor) -> Tensor:
    """Σ 100 (x_{i+1} − xᵢ²)² + (1 − xᵢ)², minimum 0 at (1, …, 1)."""
    a, b = X[..., :-1], X[..., 1:]
    return (100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2).sum(-1)


def rastrigin(X: Tensor) -> Tensor:
    """10 D + Σ xᵢ² − 10 cos(2π xᵢ), minimum 0 at the origin, many local minima."""
    return 10.0 * X.shape[-1] + (X * X - 10.0 * torch.cos(2.0 * math.pi * X)).sum(-1)


FUNCTIONS = {"sphere": sphere, "rosenbrock": rosenbrock, "rastrigin": rastrigin}
