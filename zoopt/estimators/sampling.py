"""Importance-weighted sampling of the tilted update distribution.

Draw ε₁..ε_K ~ q, weight them by w = softmax(−L/α + log π(ε) − log q(ε)) and report the
pseudo-gradient g = −(α/σ²)·Σᵢ (wᵢ − vᵢ) εᵢ, where v = softmax(log π − log q) estimates the
π-mean of ε (vᵢ = 1/K when q = π). Limits: α → ∞ gives the ES gradient of the
Gaussian-smoothed loss, σ → 0 the true gradient, α → 0 greedy (1, K) selection.

The *guided* proposal (MLE-guided parameter search; Welleck & Cho, 2020) is the mixture
q = ½N(0, σ²I) + ½N(μ, σ²I) with μ = −c·σ·∇S/‖∇S‖ for a differentiable surrogate S; the
log-ratio above corrects for it, so the estimate targets the same tilted distribution.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from zoopt.estimators import register
from zoopt.estimators.base import (
    Estimate,
    PopulationEstimator,
    check_population,
    check_positive,
)
from zoopt.objectives.base import Objective
from zoopt.population import ExplicitPopulation, GaussianPopulation, Population
from zoopt.weights import (
    check_ess_fraction,
    effective_sample_size,
    importance_weights,
    linear_weights,
    solve_alpha,
    tilt_weights,
)

__all__ = ["Sampling"]


@register("sampling")
class Sampling(PopulationEstimator):
    """Tilted importance sampling around θ.

    Args:
        sigma: σ > 0, the proposal's standard deviation per coordinate.
        population: K ≥ 2 draws per step (even when ``antithetic``).
        alpha: temperature α > 0, ``float("inf")`` (the linear/ES limit), or ``"auto"``
            (α solved each step so that ESS/K = ``ess_fraction``).
        ess_fraction: target ESS/K for ``alpha="auto"``, in (0, 1].
        antithetic: draw pairs (ε, −ε).
        guided: mix in draws shifted along the negative surrogate gradient (needs an
            objective with a differentiable surrogate).
        guide_scale: c, the shift of the guided component in units of σ.
    """

    def __init__(
        self,
        sigma: float = 0.1,
        population: int = 32,
        alpha: float | str = "auto",
        ess_fraction: float = 0.5,
        antithetic: bool = True,
        guided: bool = False,
        guide_scale: float = 1.0,
    ):
        self.sigma = float(check_positive("sigma", sigma))
        self.population = check_population(population, antithetic)
        if alpha != "auto":
            check_positive("alpha", alpha)
        self.alpha = alpha
        self.ess_fraction = check_ess_fraction(ess_fraction)
        self.antithetic = bool(antithetic)
        self.guided = bool(guided)
        self.guide_scale = float(check_positive("guide_scale", guide_scale))
        self._objective: Objective | None = None

    def setup(self, objective: Objective, x0: Tensor) -> None:
        super().setup(objective, x0)
        if self.guided and not objective.has_surrogate:
            raise ValueError(
                "sampling(guided=True) needs an objective with a differentiable surrogate; "
                f"{type(objective).__name__} has none"
            )
        self._objective = objective

    # ask/tell -----------------------------------------------------------------------------
    def ask(self, x: Tensor, seed: int) -> Population:
        pop = GaussianPopulation(x.detach(), self.sigma, seed, self.population, self.antithetic)
        if not self.guided:
            return pop
        # guided: the second half of the draws is shifted by μ (stratified mixture)
        from zoopt.estimators.gradient import surrogate_gradient

        g, _ = surrogate_gradient(self._objective, x, seed)
        norm = g.norm()
        mu = -self.guide_scale * self.sigma * g / norm if norm > 0 else torch.zeros_like(g)
        eps = self.sigma * pop.perturbations()
        k = self.population
        shift = torch.zeros(k, 1, dtype=x.dtype, device=eps.device)
        shift[k // 2 :] = 1.0
        eps = eps + shift * mu
        return ExplicitPopulation(x.detach() + eps, eps, self._mixture_log_ratio(eps, mu))

    def _mixture_log_ratio(self, eps: Tensor, mu: Tensor) -> Tensor:
        """log π(ε) − log q(ε) for q = ½N(0, σ²I) + ½N(μ, σ²I), shape ``(K,)``."""
        s2 = self.sigma**2
        # log N(ε; μ) − log N(ε; 0) = (εᵀμ − ½‖μ‖²)/σ²
        d = (eps @ mu - 0.5 * (mu @ mu)) / s2
        return -(torch.logaddexp(torch.zeros_like(d), d) - math.log(2.0))

    def tell(self, x: Tensor, population: Population, losses: Tensor) -> Estimate:
        if isinstance(population, GaussianPopulation):
            # ε = σz: σ is folded into the scalar factor instead of scaling a (K, D) matrix
            return self.weigh(losses, population.perturbations(), None, unit=self.sigma)
        return self.weigh(losses, population.offsets, population.log_ratio)

    def weigh(
        self, losses: Tensor, eps: Tensor, log_ratio: Tensor | None = None, unit: float = 1.0
    ) -> Estimate:
        """Pseudo-gradient from draws ``unit · eps`` ``(K, D)`` and their losses ``(K,)``."""
        k = losses.numel()
        finite = torch.isfinite(losses)
        v = None  # the importance weights of π alone, for a proposal q ≠ π
        if log_ratio is not None:
            v = importance_weights(log_ratio, finite)
        if self.alpha != "auto":
            alpha = float(self.alpha)
        elif v is not None and self.ess_fraction * k >= 0.99 * effective_sample_size(v):
            # no α reaches the target: the tilt only lowers the ESS of v, so take α → ∞
            alpha = math.inf
        else:
            alpha = solve_alpha(losses, self.ess_fraction, log_ratio)
        if math.isinf(alpha):
            # the linear limit, exactly: α(w − v) → −α·linear_weights, so
            # g = (1/σ²)·Σ vᵢ(Lᵢ − Σⱼ vⱼLⱼ) εᵢ (vᵢ = 1/K for draws from π), failed draws worst
            c = -linear_weights(losses, 1.0, log_ratio)
            grad = (c @ eps) * (unit / self.sigma**2)
            ess = float(finite.sum()) if v is None else effective_sample_size(v)
            return Estimate(grad=grad, alpha=alpha, ess=ess)
        w = tilt_weights(losses, alpha, log_ratio)
        if v is None:
            v = finite.to(losses.dtype) / finite.sum()
        grad = ((w - v) @ eps) * (-(alpha / self.sigma**2) * unit)
        return Estimate(grad=grad, alpha=alpha, ess=effective_sample_size(w))
