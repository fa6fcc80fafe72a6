"""Antithetic evolution strategies: the zeroth-order gradient of the Gaussian-smoothed loss.

ĝ = (1/(Kσ))·Σᵢ sᵢ zᵢ with zᵢ ~ N(0, I) in antithetic pairs and sᵢ the shaped losses:
``"raw"`` sᵢ = Lᵢ − L̄ (an unbiased estimate of ∇E[L(θ + σz)], the scale of a true
gradient) or ``"centered_ranks"`` (Salimans et al., 2017: robust to outliers and to the
loss scale; the magnitude is then that of ranks, so pair it with a scale-free optimizer
such as Adam). Antithetic pairs give the symmetric difference (L(θ+σz) − L(θ−σz))/(2σ)
and cancel the even terms of the Taylor expansion.
"""

from __future__ import annotations

from torch import Tensor

from zoopt.estimators import register
from zoopt.estimators.base import (
    Estimate,
    PopulationEstimator,
    check_population,
    check_positive,
)
from zoopt.population import GaussianPopulation, Population
from zoopt.weights import centered_ranks, fill_worst

__all__ = ["ES"]

SHAPINGS = ("raw", "centered_ranks")


@register("es")
class ES(PopulationEstimator):
    """Antithetic ES gradient estimator (OpenAI-ES style).

    Args:
        sigma: σ > 0, the smoothing scale.
        population: K ≥ 2 evaluations per step (even when ``antithetic``).
        shaping: ``"raw"`` or ``"centered_ranks"``.
        antithetic: draw pairs (z, −z).
    """

    def __init__(
        self,
        sigma: float = 0.1,
        population: int = 32,
        shaping: str = "raw",
        antithetic: bool = True,
    ):
        self.sigma = float(check_positive("sigma", sigma))
        self.population = check_population(population, antithetic)
        if shaping not in SHAPINGS:
            raise ValueError(f"shaping must be one of {SHAPINGS}, got {shaping!r}")
        self.shaping = shaping
        self.antithetic = bool(antithetic)

    def ask(self, x: Tensor, seed: int) -> Population:
        return GaussianPopulation(x.detach(), self.sigma, seed, self.population, self.antithetic)

    def tell(self, x: Tensor, population: Population, losses: Tensor) -> Estimate:
        z = population.perturbations()
        return Estimate(grad=self.gradient(losses, z))

    def gradient(self, losses: Tensor, z: Tensor) -> Tensor:
        """ĝ from ``(K,)`` losses and their ``(K, D)`` unit-scale perturbations z."""
        if self.shaping == "centered_ranks":
            s = centered_ranks(losses)
        else:
            s = fill_worst(losses)  # failed → worst
            s = s - s.mean()
        return (s @ z) / (losses.numel() * self.sigma)
