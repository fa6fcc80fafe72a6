"""SNES: separable natural evolution strategies (Schaul et al. 2011, GECCO).

ES with the NES utilities (Wierstra et al. 2014) as centred weights cᵢ, a per-coordinate
scale s adapted by the natural gradient and the natural-gradient mean step:

    θ ← θ + η_μ·σ·s ⊙ Σᵢ cᵢ zᵢ,     log s ← log s + (η_σ/2)·Σᵢ cᵢ (zᵢ² − 1)

with the published defaults η_μ = 1, η_σ = (3 + ln D)/(5√D), K = 4 + ⌊3 ln D⌋ (rounded up to
even: draws come in antithetic pairs). The update lives in :mod:`zoopt.proposal`; this file
only names the configuration.
"""

from __future__ import annotations

from zoopt.estimators import register
from zoopt.estimators.es import ES

__all__ = ["SNES"]


@register("snes")
class SNES(ES):
    """Separable NES: a per-coordinate σ and the mean, both by the natural gradient.

    Args: ``sigma`` (σ0), ``population`` (None: from D), ``antithetic``,
    ``eta_sigma`` (None: from D), ``eta_mean`` (η_μ, 1), ``rank`` (None, or low-rank draws
    of a module's weight matrices, with one adapted σ per matrix; :mod:`zoopt.lowrank`),
    ``importance_mixing`` (None, or α₀: reuse draws; :mod:`zoopt.mixing`),
    ``metamodel`` (``"auto"``: a quadratic model's mean step for D ≤ 20; True, False;
    :mod:`zoopt.metamodel`)."""

    def __init__(
        self,
        sigma: float = 0.1,
        population: int | None = None,
        antithetic: bool = True,
        eta_sigma: float | None = None,
        eta_mean: float = 1.0,
        rank: int | None = None,
        importance_mixing: float | None = None,
        metamodel: bool | str = "auto",
    ):
        super().__init__(
            sigma,
            population,
            shaping="utilities",
            antithetic=antithetic,
            covariance="diagonal",
            eta_sigma=eta_sigma,
            eta_mean=eta_mean,
            rank=rank,
            importance_mixing=importance_mixing,
            metamodel=metamodel,
        )
