"""PGPE: policy gradients with parameter-based exploration (Sehnke et al. 2010, Neural
Networks 23(4)), with the ClipUp optimizer (Toklu et al. 2020).

Symmetric (antithetic) draws θ ± σ·s ⊙ z, centred ranks as weights cᵢ; the mean moves by
ClipUp along S Σᵢ cᵢ zᵢ (:class:`zoopt.optim.ClipUp`) and the per-coordinate scale by the
diagonal natural-gradient rule of :mod:`zoopt.proposal`,

    log s ← log s + (η_σ/2)·Σᵢ cᵢ (zᵢ² − 1),

which is PGPE's σ ← σ + η·Σ_pairs ū (ε² − σ²)/σ in multiplicative form (η_σ/2 = 0.1, the
learning rate EvoTorch uses by default). The default ``max_speed`` = σ√D/15 makes the
initial search radius fifteen maximal steps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from zoopt.estimators import register
from zoopt.estimators.base import Estimate, check_positive
from zoopt.estimators.es import ES
from zoopt.optim import ClipUp
from zoopt.population import Population

__all__ = ["PGPE"]


@register("pgpe")
class PGPE(ES):
    """PGPE: centred ranks, a per-coordinate σ, the mean moved by ClipUp.

    Args: ``sigma`` (σ0), ``population`` (None: from D), ``eta_sigma``
    (0.2), ``max_speed`` (None: σ√D/15), ``momentum`` (0.9), ``rank`` (None, or low-rank
    draws of a module's weight matrices, with one adapted σ per matrix;
    :mod:`zoopt.lowrank`)."""

    def __init__(
        self,
        sigma: float = 0.1,
        population: int | None = None,
        eta_sigma: float = 0.2,
        max_speed: float | None = None,
        momentum: float = 0.9,
        rank: int | None = None,
    ):
        super().__init__(
            sigma,
            population,
            shaping="centered_ranks",
            covariance="diagonal",
            eta_sigma=eta_sigma,
            eta_mean=1.0,
            rank=rank,
        )
        if max_speed is not None:
            check_positive("max_speed", max_speed)
        self.max_speed, self.momentum = max_speed, momentum

    def _prepare(self, x0: Tensor) -> None:
        super()._prepare(x0)
        speed = self.max_speed or self.sigma * math.sqrt(x0.numel()) / 15
        self._center = x0.detach().clone()
        self._optimizer = ClipUp([self._center], max_speed=speed, momentum=self.momentum)

    def tell(self, x: Tensor, population: Population, losses: Tensor) -> Estimate:
        direction = self._proposal.step(population, self.coefficients(losses))
        with torch.no_grad():
            self._center.copy_(x)
        self._center.grad = -direction  # ascent along S Σ cᵢ zᵢ
        self._optimizer.step()
        self._center.grad = None
        return Estimate(x=self._center.detach().clone())

    def state_dict(self) -> dict:
        return {**self._proposal.state_dict(), "clipup": self._optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self._proposal.load_state_dict(state)
        self._optimizer.load_state_dict(state["clipup"])
