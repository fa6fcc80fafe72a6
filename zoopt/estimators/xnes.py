"""xNES: exponential natural evolution strategies (Glasmachers et al. 2010, GECCO).

ES with the NES utilities (Wierstra et al. 2014) as centred weights cᵢ, a full factor A of
the covariance σ²AAᵀ adapted by the natural gradient, and the natural-gradient mean step:

    θ ← θ + η_μ·σ·A Σᵢ cᵢ zᵢ,   G = Σᵢ cᵢ (zᵢzᵢᵀ − I),  g = tr(G)/D,
    A ← A · expm(½ [η_σ g I + η_B (G − g I)])

with the published defaults η_μ = 1, η_σ = η_B = 3(3 + ln D)/(5 D√D), K = 4 + ⌊3 ln D⌋
(rounded up to even: draws come in antithetic pairs). The update lives in
:mod:`zoopt.proposal` (D ≤ ``MAX_FULL_DIM``); this file only names the configuration.
"""

from __future__ import annotations

from zoopt.estimators import register
from zoopt.estimators.es import ES

__all__ = ["XNES"]


@register("xnes")
class XNES(ES):
    """Exponential NES: a full covariance factor A (D ≤ 1,000) by the natural gradient.

    Args: ``sigma`` (σ0), ``population`` (None: from D), ``antithetic``,
    ``eta_sigma``/``eta_cov`` (η_σ/η_B, None: from D), ``eta_mean`` (η_μ, 1),
    ``importance_mixing`` (None, or α₀: reuse draws; :mod:`zoopt.mixing`),
    ``metamodel`` (``"auto"``: a quadratic model's mean step for D ≤ 20; True, False;
    :mod:`zoopt.metamodel`)."""

    def __init__(
        self,
        sigma: float = 0.1,
        population: int | None = None,
        antithetic: bool = True,
        eta_sigma: float | None = None,
        eta_cov: float | None = None,
        eta_mean: float = 1.0,
        importance_mixing: float | None = None,
        metamodel: bool | str = "auto",
    ):
        super().__init__(
            sigma,
            population,
            shaping="utilities",
            antithetic=antithetic,
            covariance="full",
            eta_sigma=eta_sigma,
            eta_cov=eta_cov,
            eta_mean=eta_mean,
            importance_mixing=importance_mixing,
            metamodel=metamodel,
        )
