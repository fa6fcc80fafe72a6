"""The gradient baseline: autograd through the objective's differentiable surrogate.

The σ → 0 limit of the tilted step: with ΔL ≈ εᵀ∇L the tilted distribution is exactly
N(−(σ²/α)∇L, σ²I), whose mean is gradient descent. For a plain torch callable the
surrogate is the objective itself; model objectives offer cross-entropy.
"""

from __future__ import annotations

import torch
from torch import Tensor

from zoopt.estimators import register
from zoopt.estimators.base import Estimate, Estimator
from zoopt.objectives.base import Objective
from zoopt.weights import NonFiniteLossError

__all__ = ["Gradient", "surrogate_gradient"]


def surrogate_gradient(objective: Objective, x: Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(∇S(x), S(x)) of the objective's surrogate at ``x`` ``(D,)``; a clear error otherwise."""
    if not objective.has_surrogate:
        raise TypeError(
            f"'gradient' needs a differentiable objective; {type(objective).__name__} offers no "
            "surrogate. Use a parameter-space estimator ('es', 'sampling', 'cmaes') instead."
        )
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        value = objective.surrogate(xg, seed)
        if not isinstance(value, Tensor) or value.numel() != 1:
            raise TypeError(f"surrogate must return a scalar Tensor, got {value!r}")
        # a NaN/Inf value is the fault to report, whether or not it carries a gradient
        if not bool(torch.isfinite(value.detach())):
            raise NonFiniteLossError(
                f"the surrogate is {float(value.detach())} at the current parameters "
                "(the objective returned NaN/Inf)"
            )
        if not value.requires_grad:
            raise TypeError(
                "'gradient' needs a differentiable objective: it returned a tensor without a "
                "grad_fn (non-torch code, .detach(), argmax or comparisons inside). Use 'es', "
                "'sampling' or 'cmaes' for non-differentiable objectives."
            )
        (grad,) = torch.autograd.grad(value.reshape(()), xg, allow_unused=True)
    if grad is None:
        raise TypeError("'gradient': the objective's value does not depend on its parameters")
    return grad.detach(), value.detach().reshape(())


@register("gradient")
class Gradient(Estimator):
    """Plain gradient of the surrogate (the baseline every other estimator approaches)."""

    def estimate(self, objective: Objective, x: Tensor, evaluator, seed: int) -> Estimate:
        grad, value = surrogate_gradient(objective, x, seed)
        return Estimate(grad=grad, losses=value.reshape(1), evaluations=1)

    def setup(self, objective: Objective, x0: Tensor) -> None:
        super().setup(objective, x0)
        if not objective.has_surrogate:
            surrogate_gradient(objective, x0)  # raises the explanatory error
